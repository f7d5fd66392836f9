"""Input-pipeline throughput: clips/s per loader worker, the workers per GPU a training rate needs,
and the bytes each clip moves from a worker to the GPU.

One worker is measured as what it is: one process, one thread (torch and OpenCV), drawing items of
the training pipeline (sampling, decoding, Resize -> MultiScaleCrop -> Resize, collation) in a
shuffled order; the batch is then normalised on this CPU with ``tinlib.data.normalize`` (on a GPU
it runs there, so counting it here is conservative).

    python benchmarks/bench_data.py --baseline a48cfb3
        synthetic data at the official frame sizes (SthV1 JPEG frames 100 px high, SthV2 VP9 webm
        240 px, K400 H.264 mp4 short side 256), this tree against tinlib as of git revision
        a48cfb3 (float32 pipeline, decord), rounds interleaved; writes results/benchmarks.md
    python benchmarks/bench_data.py --config tin_r50_1x1x8_40e_sthv1_rgb --set data.root=/data/sthv1 --consume 300
        your data, the config's training split: clips/s per worker and the workers per GPU needed
        to feed ``--consume`` clips/s per GPU (prints only)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# TIN-R50, 8 x 224², on one current datacenter GPU: about ResNet-50's training rate in images/s
# divided by 8 frames. An estimate; pass your own measured rate with --consume.
DEFAULT_CONSUME = 300.0

# name, synthetic layout, frame height, clips per measurement
SETTINGS = [
    ("SthV1-sized JPEG frames (h 100)", "sthv1", 100, 96),
    ("SthV2-sized VP9 webm (h 240)", "sthv2", 240, 24),
    ("K400-sized H.264 mp4 (short side 256)", "k400", 256, 24),
]


def measure(dataset, clips: int, batch: int = 6) -> dict:
    """Time ``clips`` items of ``dataset`` (after one warm-up batch) through collation and
    normalisation, one thread; returns clips/s and bytes per clip as the loader delivers it."""
    import cv2
    import numpy as np
    import torch
    from torch.utils.data import default_collate

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if hasattr(dataset, "seed"):
        dataset.seed = 0
    order = np.random.default_rng(0).permutation(len(dataset)).tolist()
    normalize = _normalize_fn()

    normalizing = [0.0]

    def one_batch(start: int) -> torch.Tensor:
        items = [dataset[order[(start + k) % len(order)]] for k in range(batch)]
        clips_, _ = default_collate(items)
        if clips_.dtype == torch.uint8:  # the float32 pipeline normalised inside the items already
            begin_ = time.perf_counter()
            normalize(clips_)
            normalizing[0] += time.perf_counter() - begin_
        return clips_

    first = one_batch(0)
    normalizing[0] = 0.0
    begin, done = time.perf_counter(), 0
    while done < clips:
        one_batch(batch + done)
        done += batch
    seconds = time.perf_counter() - begin
    return {"clips_per_s": done / seconds, "worker_clips_per_s": done / (seconds - normalizing[0]),
            "bytes_per_clip": first[0].numel() * first.element_size(),
            "dtype": str(first.dtype).replace("torch.", ""), "shape": list(first.shape[1:])}


def _normalize_fn():
    import tinlib.data

    fn = getattr(tinlib.data, "normalize", None)
    return fn if fn is not None else (lambda x: x)


def write_data(data_dir: Path, layout: str, height: int) -> dict:
    """The synthetic release (written once, by this tree): what a training dataset needs of it."""
    from tinlib.data.synthetic import write_synthetic

    meta = write_synthetic(data_dir, layout, size="demo", height=height, num_train=48, num_val=4,
                           frames=(24, 40), workers=2)
    return {"ann_file": str(meta["train_list"]), "data_prefix": str(meta["data_prefix"]), "kind": meta["kind"],
            "filename_tmpl": meta["filename_tmpl"] or "img_{:05}.jpg"}


def child_main(args: argparse.Namespace) -> int:
    """One measurement with the tinlib found at ``--tinlib-root`` (a checkout of any revision), zoo
    settings: 8 segments, short side 256, 224 crops."""
    sys.path.insert(0, args.tinlib_root)
    import tinlib
    from tinlib.data import build_dataset

    assert Path(tinlib.__file__).resolve().is_relative_to(Path(args.tinlib_root).resolve()), tinlib.__file__
    spec = json.loads(args.child)
    dataset = build_dataset(spec.pop("ann_file"), spec.pop("data_prefix"), scale_size=256, input_size=224,
                            num_segments=8, **spec)
    print(json.dumps(measure(dataset, args.clips)))
    return 0


def checkout(rev: str, into: Path) -> Path:
    """tinlib as of git revision ``rev``, unpacked under ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "tinlib"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def run_child(tinlib_root: Path, data: dict, clips: int) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps(data), "--tinlib-root", str(tinlib_root),
           "--clips", str(clips)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH="")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(args: argparse.Namespace) -> list[dict]:
    """Each setting measured ``--rounds`` times per tree, the trees alternating; medians."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        trees: dict[str, Path] = {"now": ROOT}
        if args.baseline:
            trees[args.baseline] = checkout(args.baseline, Path(tmp) / "baseline")
        for name, layout, height, clips in SETTINGS:
            data = write_data(Path(tmp) / f"{layout}_{height}", layout, height)
            runs: dict[str, list[dict]] = {tree: [] for tree in trees}
            for r in range(args.rounds):
                for tree, root in trees.items():
                    runs[tree].append(run_child(root, data, clips))
                    print(f"[{name}] round {r + 1}/{args.rounds} {tree}: {runs[tree][-1]['clips_per_s']:.1f} clips/s",
                          flush=True)
            rows.append({"setting": name, **{tree: _median_run(ms) for tree, ms in runs.items()}})
    return rows


def _median_run(runs: list[dict]) -> dict:
    return {"clips_per_s": statistics.median(m["clips_per_s"] for m in runs),
            "worker_clips_per_s": statistics.median(m.get("worker_clips_per_s", m["clips_per_s"]) for m in runs),
            "bytes_per_clip": runs[0]["bytes_per_clip"], "dtype": runs[0]["dtype"]}


def table(rows: list[dict], baseline: str | None, consume: float) -> str:
    head = "| setting | clips/s per worker | with normalisation on the CPU |"
    rule = "|---|---|---|"
    if baseline:
        head += f" {baseline} (normalised in the worker) | speed-up, normalisation included | bytes per clip |"
        rule += "---|---|---|"
    head += f" workers per GPU at {consume:g} clips/s |"
    rule += "---|"
    lines = [head, rule]
    for row in rows:
        now = row["now"]
        line = f"| {row['setting']} | {now['worker_clips_per_s']:.1f} | {now['clips_per_s']:.1f} |"
        if baseline:
            old = row[baseline]
            line += (f" {old['clips_per_s']:.1f} | {now['clips_per_s'] / old['clips_per_s']:.2f}x |"
                     f" {now['bytes_per_clip'] / 1e6:.2f} MB {now['dtype']} (was {old['bytes_per_clip'] / 1e6:.2f} MB"
                     f" {old['dtype']}: {old['bytes_per_clip'] / now['bytes_per_clip']:.0f}x fewer) |")
        line += f" {math.ceil(consume / now['worker_clips_per_s'])} |"
        lines.append(line)
    return "\n".join(lines)


def config_main(args: argparse.Namespace) -> int:
    """Clips/s per worker on the data of ``--config``'s training split, and workers per GPU."""
    sys.path.insert(0, str(ROOT))
    from tinlib.config import load_config
    from tinlib.engine.splits import build_split_dataset

    cfg = load_config(args.config, args.set)
    dataset = build_split_dataset(cfg, "train")
    result = measure(dataset, args.clips)
    rate = result["worker_clips_per_s"]
    print(f"{cfg.name}: {rate:.1f} clips/s per worker (one thread; {result['bytes_per_clip'] / 1e6:.2f} MB "
          f"{result['dtype']} per clip {result['shape']}); to feed {args.consume:g} clips/s per GPU: "
          f"{math.ceil(args.consume / rate)} loader worker(s) per GPU (data.workers_per_gpu), a core each")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", help="git revision of tinlib to measure beside this tree (e.g. a48cfb3)")
    ap.add_argument("--rounds", type=int, default=3, help="measurements per tree and setting (median)")
    ap.add_argument("--clips", type=int, help="clips per measurement (default: 96 frames, 24 videos; config: 96)")
    ap.add_argument("--consume", type=float, default=DEFAULT_CONSUME,
                    help="clips/s one GPU trains on (default %(default)s: an estimate for TIN-R50 8x224² on a "
                         "current datacenter GPU)")
    ap.add_argument("--config", help="measure this config's training data instead of synthetic data")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides (key=value), e.g. data.root=/data/sthv1")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave results/benchmarks.md alone")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--tinlib-root", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args)
    if args.config:
        args.clips = args.clips or 96
        return config_main(args)
    if args.clips:
        global SETTINGS
        SETTINGS = [(n, layout, h, args.clips) for n, layout, h, _ in SETTINGS]
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from report import load_and_command, write_section

    load_before = os.getloadavg()[0]
    rows = compare(args)
    lines = ["## Data loading (`benchmarks/bench_data.py`)", "",
             "One loader worker (one process, one thread) through the training pipeline: sampling, decoding, "
             "Resize(-1, 256), MultiScaleCrop, Resize(224), collation in batches of 6; the next column adds the "
             "normalisation of the uint8 batch on this CPU (in training it runs on the GPU). 8 segments; synthetic "
             f"data at the official frame sizes; medians of {args.rounds} rounds, the trees alternating, each "
             "measurement in its own process with one torch and one OpenCV thread (the footer's thread count is the "
             "parent's). Videos use each tree's default backend.", "",
             table(rows, args.baseline, args.consume), "",
             f"Workers per GPU = ceil({args.consume:g} / clips/s per worker), one core each, {args.consume:g} clips/s "
             "being an "
             "estimate of what TIN-R50 (8 x 224²) trains on one current datacenter GPU; measure yours with "
             "`python benchmarks/bench_data.py --config CONFIG --set data.root=... --consume RATE`.", "",
             *load_and_command("bench_data.py", argv, load_before, os.getloadavg()[0])]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_write:
        print(f"wrote {write_section('data-loading', markdown)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
