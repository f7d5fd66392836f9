"""Data-loading throughput (clips/s) vs what TIN training consumes, written to results/benchmarks.md.

Measures the training pipeline (sampling, decoding, Resize -> MultiScaleCrop -> Resize, Normalize,
collation) through ``build_loader`` with 0 and 2 workers, for JPEG frame folders and videos, at
the zoo settings (8 segments, 224 px crops, SthV1-sized 100 px frames upscaled to 256; SthV2-sized
240 px webm; K400-sized 256 px mp4) and the demo settings (synthetic data, 40 -> 32 px). The data is
the synthetic dataset written to a temporary folder. The consumption side is one training step
(forward, backward, SGD) of TIN-R50 (174 classes, 2 clips x 8 x 224²) and of the demo TIN-R18
(8 clips x 8 x 32²) on this machine's CPU.

Usage: ``python benchmarks/bench_data.py [--clips N] [--keep DIR]``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402

from tinlib.data import build_dataset, build_loader  # noqa: E402
from tinlib.data.synthetic import write_synthetic  # noqa: E402

# name, layout, frame height, scale_size, input_size, batch
SETTINGS = [
    ("zoo: rawframes, SthV1-sized jpg (h 100)", "sthv1", 100, 256, 224, 6),
    ("zoo: videos, SthV2-sized webm (h 240)", "sthv2", 240, 256, 224, 6),
    ("zoo: videos, K400-sized mp4 (short side 256)", "k400", 256, 256, 224, 6),
    ("demo: rawframes, synthetic sthv1 (h 40)", "sthv1", 40, 40, 32, 8),
    ("demo: videos, synthetic sthv2 webm (h 48)", "sthv2", 48, 40, 32, 8),
]


def loader_rate(meta: dict, scale: int, size: int, batch: int, workers: int, clips: int) -> float:
    ds = build_dataset(meta["train_list"], meta["data_prefix"], kind=meta["kind"],
                       filename_tmpl=meta["filename_tmpl"] or "img_{:05}.jpg", scale_size=scale, input_size=size,
                       num_segments=8)
    loader = build_loader(ds, batch, num_workers=workers, shuffle=True, seed=0, drop_last=True)
    done, start = 0, None
    while done < clips:
        for x, _ in loader:
            if start is None:  # the first batch pays for worker start-up
                start = time.perf_counter()
                continue
            done += x.shape[0]
            if done >= clips:
                break
    return done / (time.perf_counter() - start)


def train_rate(arch: str, classes: int, batch: int, size: int, steps: int = 3) -> float | None:
    """Clips/s of full training steps (forward, backward, SGD) on the CPU; None if models are missing."""
    try:
        from tinlib.models import build_recognizer
    except ImportError:
        return None
    model = build_recognizer(arch, classes, 8)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 8, 3, size, size), torch.randint(0, classes, (batch,))
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return batch / (sum(times[1:]) / steps)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=48, help="clips timed per measurement (after one warm-up batch)")
    ap.add_argument("--keep", help="write the benchmark data here (reused by later runs) instead of a temp dir")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave results/benchmarks.md alone")
    args = ap.parse_args(argv)
    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="bench_data_")
    base = Path(args.keep or tmp.name)
    rows = []
    for name, layout, height, scale, size, batch in SETTINGS:
        t = time.perf_counter()
        meta = write_synthetic(base / f"{layout}_{height}", layout, size="demo", height=height, num_train=48,
                               num_val=11, frames=(24, 40), workers=2)
        print(f"[{name}] data ready in {time.perf_counter() - t:.1f} s", flush=True)
        rates = [loader_rate(meta, scale, size, batch, w, args.clips) for w in (0, 2)]
        print(f"[{name}] clips/s: 0 workers {rates[0]:.1f}, 2 workers {rates[1]:.1f}", flush=True)
        rows.append((name, f"{scale}->{size}", batch, *rates))
    zoo = train_rate("tin_r50", 174, 2, 224)
    demo = train_rate("tin_r18", 11, 8, 32)
    print(f"training consumes: TIN-R50 zoo {zoo} clips/s, TIN-R18 demo {demo} clips/s", flush=True)
    lines = ["## Data loading (`benchmarks/bench_data.py`)", "",
             "Training pipeline through `build_loader` (sampling, decode, Resize, MultiScaleCrop, Resize, "
             f"Normalize, collate), 8 segments, clips/s over {args.clips} clips after one warm-up batch. "
             "Synthetic data; the frame sizes match the official releases.", "",
             "| setting | resize -> crop | batch | 0 workers | 2 workers | TIN training consumes | 2 workers keep up |",
             "|---|---|---|---|---|---|---|"]
    for name, sizes, batch, r0, r2 in rows:
        need = zoo if name.startswith("zoo") else demo
        need_s = f"{need:.2f}" if need else "pending"
        ok = ("yes" if r2 >= need else "no") + f" ({r2 / need:.0f}x)" if need else "pending"
        lines.append(f"| {name} | {sizes} | {batch} | {r0:.1f} | {r2:.1f} | {need_s} | {ok} |")
    lines += ["", "Consumption = one training step (forward, backward, SGD) on this CPU: TIN-R50, 174 classes, "
              "2 clips x 8 x 224² for the zoo rows; TIN-R18, 11 classes, 8 clips x 8 x 32² for the demo rows. "
              "Loader and model were timed separately; during training the workers share the same cores."]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_write:
        from report import write_section

        print(f"wrote {write_section('data-loading', markdown)}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
