"""Whole-model cost of the interlace: TIN-R50 against TSM-R50 (training step) and TSN-R50 (inference).

    .venv/bin/python benchmarks/bench_model.py [--batch 2] [--size 224] [--repeats 3] [--no-write]

Times, on the CPU (or CUDA with --device cuda), interleaved so that a slow spell on a shared
machine hits every model alike, the fastest of ``repeats`` rounds after one warm-up:
  - a training step (forward, cross-entropy, backward, SGD step) at batch B x 8 x 3 x S x S,
  - inference (eval mode, no_grad) at the same shape,
for TIN, TSM and TSN ResNet-50. Targets: TIN train step <= 1.10x TSM's; TIN inference <= 1.10x TSN's.
Writes section "model" of results/benchmarks.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinlib.models import build_recognizer  # noqa: E402

ARCHS = ("tin_r50", "tsm_r50", "tsn_r50")


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


def fastest(fns: dict, repeats: int) -> dict:
    for fn in fns.values():
        fn()  # warm-up
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    frames = torch.randn(args.batch, 8, 3, args.size, args.size, device=device)
    labels = torch.randint(0, 174, (args.batch,), device=device)
    models = {arch: build_recognizer(arch, 174).to(device) for arch in ARCHS}
    train = fastest({a: train_step_fn(m, frames, labels, device) for a, m in models.items()}, args.repeats)
    infer = fastest({a: infer_fn(m, frames, device) for a, m in models.items()}, args.repeats)
    train_ratio = train["tin_r50"] / train["tsm_r50"]
    infer_ratio = infer["tin_r50"] / infer["tsn_r50"]
    rows = "\n".join(f"| {a} | {train[a]:.2f} | {infer[a]:.2f} |" for a in ARCHS)
    verdict = lambda ok: "met" if ok else "**missed**"  # noqa: E731
    text = (f"ResNet-50 recognizers, {device.type}, batch {args.batch} x 8 x 3 x {args.size} x {args.size}, "
            f"fastest of {args.repeats} interleaved rounds, seconds.\n\n"
            "| model | train step s | inference s |\n|---|---|---|\n" + rows + "\n\n"
            f"- TIN train step / TSM train step = {train_ratio:.3f} (target <= 1.10: {verdict(train_ratio <= 1.10)})\n"
            f"- TIN inference / TSN inference = {infer_ratio:.3f} (target <= 1.10: {verdict(infer_ratio <= 1.10)})\n")
    print(text)
    if not args.no_write:
        from report import write_section

        print("wrote", write_section(f"model-{device.type}", text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
