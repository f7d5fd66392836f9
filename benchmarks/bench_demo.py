"""Cost of one demo training step: the demo config against variants of it, interleaved.

    .venv/bin/python benchmarks/bench_demo.py [--threads 1] [--repeats 10] [--profile] \
        [--variant NAME:key=value,key=value ...]

One step is what ``make demo`` repeats: the recognizer of ``demo_tin_r18_synthetic`` (or the
``--config``) at its batch (videos_per_gpu x num_segments x 3 x input_size^2 uint8), normalisation, forward,
cross-entropy, backward, gradient clipping and the config's optimizer (AdamW), through
``tinlib.engine.train.train_step``. The configs are timed round-robin so that a slow spell of a
shared machine hits all of them alike; the median of ``repeats`` rounds after two warm-ups is
reported, with the cost per training video and each variant's ratio to the first (the baseline)
per video, which is the ratio per epoch when the batch sizes differ. The demo trains its three models
side by side with one torch thread each, hence ``--threads 1`` by default.

``--profile`` prints the top operators of the first config's step (torch.profiler, CPU time).
Set ``ONEDNN_MAX_CPU_ISA=AVX2`` to time the convolutions as on a CPU without AVX-512 (oneDNN picks
its kernels by instruction set, and its AVX2 backward convolutions are the slow part there).
The section "demo" of results/benchmarks.md quotes a run of this script with the training results
it goes with; it is written by hand.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinlib.config import load_config, parse_override  # noqa: E402
from tinlib.engine.build import build_model  # noqa: E402
from tinlib.engine.optim import build_optimizer  # noqa: E402
from tinlib.engine.train import train_step  # noqa: E402

# The demo config as it was (standard-width ResNet-18, 32x32 crops of frames resized to 40, 8
# videos per batch, per-tensor AdamW), as it was before the narrow backbone, and as it is.
# ``bench.fused_adamw=false`` is not a config key: it makes the step use PyTorch's per-tensor AdamW.
DEFAULT_VARIANTS = ("first:model.base_channels=64,data.input_size=32,data.scale_size=40,data.videos_per_gpu=8,"
                    "bench.fused_adamw=false",
                    "24px-b16:model.base_channels=64,bench.fused_adamw=false",
                    "config:")


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``"name:key=value,key=value"`` -> (name, overrides)."""
    name, _, rest = text.partition(":")
    overrides = dict(parse_override(item) for item in rest.split(",") if item)
    return name, overrides


def step_fn(config: str, overrides: dict[str, Any]):
    """A closure that runs one training step of ``config`` with ``overrides`` on random uint8 clips, and
    the videos per step."""
    overrides = dict(overrides)
    fused = overrides.pop("bench.fused_adamw", True)
    cfg = load_config(config, overrides)
    model = build_model(cfg, pretrained=False, load_from=False, verbose=False)
    model.train()
    channels_last = bool(cfg.train.channels_last)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    o = cfg.optim
    optimizer = build_optimizer(model, o.lr, o.momentum, o.weight_decay, o.fc_lr5, o.nesterov, kind=o.type)
    if not fused:
        for group in optimizer.param_groups:
            group["fused"] = False
    d = cfg.data
    clips = torch.randint(0, 256, (d.videos_per_gpu, cfg.model.num_segments, 3, d.input_size, d.input_size),
                          dtype=torch.uint8)  # as the loader yields them: train_step normalises
    labels = torch.randint(0, cfg.model.num_classes, (d.videos_per_gpu,))
    device = torch.device("cpu")

    def step() -> None:
        train_step(model, (clips, labels), optimizer, device=device, grad_clip=o.grad_clip,
                   channels_last=channels_last)
    return step, d.videos_per_gpu


def median_times(fns: dict[str, Any], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, timed round-robin after two warm-up calls each."""
    for fn in fns.values():
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def profile_step(fn: Any, rows: int = 12) -> str:
    """The top operators (self CPU time) of three calls of ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            fn()
    return str(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", default="demo_tin_r18_synthetic")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--variant", action="append", help="NAME:key=value,... (first = baseline)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    variants = [parse_variant(v) for v in (args.variant or DEFAULT_VARIANTS)]
    built = {name: step_fn(args.config, overrides) for name, overrides in variants}
    fns = {name: fn for name, (fn, _) in built.items()}
    batch = {name: videos for name, (_, videos) in built.items()}
    if args.profile:
        print(profile_step(next(iter(fns.values()))))
    med = median_times(fns, args.repeats)
    base = variants[0][0]
    per_video = {name: med[name] / batch[name] for name in med}
    lines = [f"| {name} | {', '.join(f'{k}={v}' for k, v in ov.items()) or '(as is)'} | {batch[name]} | "
             f"{med[name]:.3f} | {1000 * per_video[name]:.1f} | {per_video[base] / per_video[name]:.2f}x |"
             for name, ov in variants]
    head = f"| variant | overrides | videos/step | s/step (median) | ms/video | per-epoch speed-up vs {base} |"
    table = "\n".join([head, "|---|---|---|---|---|---|", *lines])
    print(f"{args.config}, {args.threads} torch thread(s), median of {args.repeats} interleaved rounds")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
