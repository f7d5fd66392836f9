"""Whole-model cost of the interlace: TIN-R50 against TSM-R50 (training step) and TSN-R50 (inference).

    .venv/bin/python benchmarks/bench_model.py [--batch 2] [--size 224] [--repeats 3] [--threads 1]
        [--keep-freed-memory] [--no-write]

Times, on the CPU (or CUDA with --device cuda), interleaved so that a slow spell on a shared
machine hits every model alike, the fastest of ``repeats`` rounds after one warm-up:
  - a training step (forward, cross-entropy, backward, SGD step) at batch B x 8 x 3 x S x S,
  - inference (eval mode, no_grad) at the same shape,
for TIN, TSM and TSN ResNet-50, by wall clock and (on the CPU) by the CPU time of this process,
which a busy machine disturbs less (with one thread it is the time the step computed).
--keep-freed-memory keeps freed buffers in malloc (see benchmarks/memory.py): without it the
large stage-1 activations page-fault afresh on every step.
Targets: TIN train step <= 1.05x TSM's; TIN inference <= 1.05x TSN's.
Writes section "model-<device>[-kept-memory]" of results/benchmarks.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import keep_freed_memory, malloc_setting  # noqa: E402
from report import load_and_command  # noqa: E402

from tinlib.models import build_recognizer  # noqa: E402

ARCHS = ("tin_r50", "tsm_r50", "tsn_r50")
TARGET = 1.05


def train_step_fn(model, frames, labels, device):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(frames), labels).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return step


def infer_fn(model, frames, device):
    def run():
        model.eval()
        with torch.no_grad():
            model(frames)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return run


def fastest(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Fastest wall-clock and CPU time (s) of each fn over `repeats` interleaved rounds after a warm-up."""
    for fn in fns.values():
        fn()  # warm-up
    wall = {name: float("inf") for name in fns}
    cpu = dict(wall)
    for _ in range(repeats):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name] = min(wall[name], time.perf_counter() - start)
            cpu[name] = min(cpu[name], time.process_time() - start_cpu)
    return wall, cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--keep-freed-memory", action="store_true", help="keep freed buffers in malloc")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    kept = args.keep_freed_memory and keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    frames = torch.randn(args.batch, 8, 3, args.size, args.size, device=device)
    labels = torch.randint(0, 174, (args.batch,), device=device)
    models = {arch: build_recognizer(arch, 174).to(device) for arch in ARCHS}
    load_before = os.getloadavg()[0]
    train_wall, train_cpu = fastest({a: train_step_fn(m, frames, labels, device) for a, m in models.items()},
                                    args.repeats)
    infer_wall, infer_cpu = fastest({a: infer_fn(m, frames, device) for a, m in models.items()}, args.repeats)
    load_after = os.getloadavg()[0]
    show_cpu = device.type == "cpu"
    rows = "\n".join(f"| {a} | {train_wall[a]:.2f} | {infer_wall[a]:.2f} |"
                     + (f" {train_cpu[a]:.2f} | {infer_cpu[a]:.2f} |" if show_cpu else "") for a in ARCHS)
    verdict = lambda ok: "met" if ok else "**missed**"  # noqa: E731
    lines = [f"ResNet-50 recognizers, {device.type}, batch {args.batch} x 8 x 3 x {args.size} x {args.size}, "
             f"{torch.get_num_threads()} torch threads, "
             f"{malloc_setting(kept)}, "
             f"fastest of {args.repeats} interleaved rounds, seconds.", "",
             "| model | train step s | inference s |" + (" train step CPU s | inference CPU s |" if show_cpu else ""),
             "|---|---|---|" + ("---|---|" if show_cpu else ""), rows, ""]
    clocks = [("wall clock", train_wall, infer_wall)] + ([("CPU time", train_cpu, infer_cpu)] if show_cpu else [])
    for clock, train, infer in clocks:
        train_ratio, infer_ratio = train["tin_r50"] / train["tsm_r50"], infer["tin_r50"] / infer["tsn_r50"]
        lines += [f"- {clock}: TIN train step / TSM train step = {train_ratio:.3f} "
                  f"(target <= {TARGET}: {verdict(train_ratio <= TARGET)}); TIN inference / TSN inference = "
                  f"{infer_ratio:.3f} (target <= {TARGET}: {verdict(infer_ratio <= TARGET)})"]
    lines += ["", *load_and_command("bench_model.py", argv, load_before, load_after)]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        from report import write_section

        print("wrote", write_section(f"model-{device.type}{'-kept-memory' if kept else ''}", text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
