"""The temporal module of a TIN block against MMAction2's and TSM's, at the four ResNet-50 stage inputs.

TIN puts its temporal module (pooling, offset/weight nets, interlace, pass-through channels) in
front of conv1 of every Bottleneck, so it sees the block input [N*T, C, H, W]: C = 256, 512, 1024,
2048 at 56, 28, 14, 7 px in the blocks after the first of stages 1-4. Per stage this times, on
the CPU, forward + backward (gradients to x and the nets' parameters) of
  - tinlib's `TemporalInterlace` (grad="mmcv", the semantics of the baseline),
  - the baseline: MMAction2 0.x's `TemporalInterlace` re-implemented in plain PyTorch with mmcv's
    tin_shift as zero-fill + copies (benchmarks/mmaction2_tin.py; MMAction2 itself needs mmcv),
  - TSM's shift module (`TemporalShift`, shift_div 8, which is what tsm_r50 uses),
and the forward alone (inference, no_grad). Before timing, it checks that tinlib's module and the
baseline give the same output and gradients. Variants run in turns within each round (so every
call starts with caches full of the other variants' data, as in a network) and the fastest round
counts, so a busy spell on a shared machine hits all of them alike. Times are wall clock and CPU
time of this process (with one thread: the time the call computed, which other jobs on a busy
machine disturb less).

    .venv/bin/python benchmarks/bench_temporal.py [--videos 2] [--repeats 30] [--threads 1]
        [--keep-freed-memory] [--no-write]

Targets: tinlib's module fwd+bwd >= 3x faster than the baseline and <= 2x TSM's shift module at
every stage. Writes section "temporal-module[-kept-memory]" of results/benchmarks.md.
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
from mmaction2_tin import TemporalInterlaceMMAction2  # noqa: E402
from report import load_and_command  # noqa: E402

from tinlib.models.temporal import TemporalInterlace, TemporalShift  # noqa: E402

STAGES = [(256, 56), (512, 28), (1024, 14), (2048, 7)]  # block input channels, H = W
T = 8


def fastest(fns: dict, repeats: int) -> dict:
    """Fastest wall time ("<name>") and CPU time ("<name>_cpu") in ms of each fn over `repeats`
    interleaved rounds after 2 warm-up rounds."""
    best = {key: float("inf") for name in fns for key in (name, f"{name}_cpu")}
    for rnd in range(repeats + 2):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            if rnd >= 2:
                best[name] = min(best[name], time.perf_counter() - start)
                best[f"{name}_cpu"] = min(best[f"{name}_cpu"], time.process_time() - start_cpu)
    return {key: 1e3 * t for key, t in best.items()}


def check_same(ours: torch.nn.Module, baseline: torch.nn.Module, x: torch.Tensor, grad_y: torch.Tensor) -> float:
    """Largest difference between the two modules' outputs, x gradients and parameter gradients,
    relative to the largest value of each."""
    results = []
    for module in (ours, baseline):
        module.zero_grad(set_to_none=True)
        leaf = x.clone().requires_grad_()
        y = module(leaf)
        y.backward(grad_y)
        results.append([y.detach(), leaf.grad] + [p.grad for p in module.parameters()])
    return max(((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item() for a, b in zip(*results))


def bench_stage(channels: int, size: int, videos: int, repeats: int) -> dict:
    torch.manual_seed(0)
    ours = TemporalInterlace(channels, T, 4, grad="mmcv")
    with torch.no_grad():
        ours.offset_net.fc2.weight.normal_(0, 2.0)  # offsets spread over (-2, 2), as in a trained net
    baseline = TemporalInterlaceMMAction2(channels, T, 4)
    baseline.load_state_dict(ours.state_dict())
    tsm = TemporalShift(T, 8)
    x = torch.randn(videos * T, channels, size, size)
    grad_y = torch.randn_like(x)
    difference = check_same(ours, baseline, x, grad_y)
    if difference > 1e-4:
        raise SystemExit(f"tinlib's TemporalInterlace and the baseline differ by {difference:.2g} at C={channels}")
    leaf = x.clone().requires_grad_()

    def train(module):
        def run():
            module.zero_grad(set_to_none=True)
            leaf.grad = None
            module(leaf).backward(grad_y)
        return run

    def infer(module):
        def run():
            with torch.no_grad():
                module(x)
        return run

    modules = {"tin": ours, "mm": baseline, "tsm": tsm}
    row = {"shape": f"[{videos * T}, {channels}, {size}, {size}]", "difference": difference}
    row.update(fastest({f"{k}_train": train(m) for k, m in modules.items()}, repeats))
    row.update(fastest({f"{k}_infer": infer(m) for k, m in modules.items()}, repeats))
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2, help="videos per batch (x 8 segments), as bench_model.py")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="keep freed buffers in malloc (see benchmarks/memory.py)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave results/benchmarks.md")
    args = parser.parse_args(argv)
    kept = args.keep_freed_memory and keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rows = [bench_stage(c, s, args.videos, args.repeats) for c, s in STAGES]
    load_after = os.getloadavg()[0]
    lines = [(f"TIN's temporal module (pooling, offset/weight nets, interlace, pass-through channels) at the "
              f"ResNet-50 block inputs, CPU, {args.videos} videos x {T} segments, float32, "
              f"{torch.get_num_threads()} torch threads, "
              f"{malloc_setting(kept)}; "
              f"fastest of {args.repeats} interleaved rounds, ms. fwd+bwd = forward, then backward to x and the "
              "nets' parameters; fwd = inference (no_grad). Ratios by wall clock (CPU time in brackets)."), "",
             ("| block input | tinlib fwd+bwd | baseline fwd+bwd | TSM shift fwd+bwd | baseline / tinlib "
              "| tinlib / TSM | tinlib fwd | baseline fwd | TSM fwd |"),
             "|---|---|---|---|---|---|---|---|---|"]
    met = {"speedup": True, "speedup_cpu": True, "tsm": True, "tsm_cpu": True}
    for r in rows:
        speedup, vs_tsm = r["mm_train"] / r["tin_train"], r["tin_train"] / r["tsm_train"]
        speedup_cpu, vs_tsm_cpu = r["mm_train_cpu"] / r["tin_train_cpu"], r["tin_train_cpu"] / r["tsm_train_cpu"]
        met["speedup"] &= speedup >= 3
        met["speedup_cpu"] &= speedup_cpu >= 3
        met["tsm"] &= vs_tsm <= 2
        met["tsm_cpu"] &= vs_tsm_cpu <= 2
        lines.append(f"| {r['shape']} | {r['tin_train']:.2f} | {r['mm_train']:.2f} | {r['tsm_train']:.2f} | "
                     f"{speedup:.1f}x ({speedup_cpu:.1f}x) | {vs_tsm:.2f} ({vs_tsm_cpu:.2f}) | {r['tin_infer']:.2f} | "
                     f"{r['mm_infer']:.2f} | {r['tsm_infer']:.2f} |")
    verdict = {True: "met at every stage", False: "**missed** at some stage"}
    lines += ["", f"- tinlib fwd+bwd >= 3x faster than the baseline: wall clock {verdict[met['speedup']]}, "
                  f"CPU time {verdict[met['speedup_cpu']]}",
              f"- tinlib fwd+bwd <= 2x TSM's shift module: wall clock {verdict[met['tsm']]}, "
              f"CPU time {verdict[met['tsm_cpu']]}",
              f"- largest relative difference of output/gradients, tinlib vs baseline: "
              f"{max(r['difference'] for r in rows):.1e}",
              "", *load_and_command("bench_temporal.py", argv, load_before, load_after),
              "",
              ("The baseline is **our re-implementation** of the computation of MMAction2 0.x's "
               "`TemporalInterlace` in plain PyTorch (benchmarks/mmaction2_tin.py), not MMAction2's code: "
               "MMAction2's TIN needs mmcv's compiled `tin_shift`, which cannot be installed here (and has "
               "only a CUDA kernel). It keeps the module's tensor traffic: the zero-filled output, the "
               "`view`/`contiguous`/`permute` steps, `linear_sampler`'s two integer shifts (each a zero-filled "
               "tensor plus one copy per video and channel group, what mmcv's kernel writes; the backward "
               "shifts the gradient the same way), the `repeat`-expanded interpolation and segment weights, "
               "and the copy of the unshifted channels. Its outputs and gradients equal tinlib's "
               "(grad=\"mmcv\") to the difference above.")]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        from report import write_section

        print("wrote", write_section(f"temporal-module{'-kept-memory' if kept else ''}", text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
