"""Benchmark of tinlib.ops.interlace at the fold shapes of TIN-ResNet-50 (N=1, T=8, G=4).

Compares, per stage shape [1, 8, F, HW]:
  - one x.clone() (the memory-traffic yardstick),
  - interlace forward and forward+backward (gradients to x, offset and weight),
  - MMAction2's composition written in plain PyTorch (zero tensors, two integer shifts by
    slicing per group, two weighted sums, weight multiply, scatter into a zero tensor), with
    autograd through it.
On CUDA it also times the Triton kernels alone and reports their bandwidth.

    .venv/bin/python benchmarks/bench_op.py [--device cpu|cuda] [--repeats 50] [--no-write]

Writes section "interlace-op" of results/benchmarks.md (see benchmarks/report.py).
"""
from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinlib import ops  # noqa: E402

STAGES = [(64, 56 * 56), (128, 28 * 28), (256, 14 * 14), (512, 7 * 7)]  # (fold F, H*W)
N, T, G = 1, 8, 4
NOTES_CPU = (
    "Where the CPU time goes (backend `reference`, tinlib/ops/eager.py): the forward is one "
    "`embedding_bag` pass (each output row = weighted sum of two source rows, about 2x a clone) "
    "plus ~15 tiny index/coefficient ops and the custom-op dispatch (a fixed ~0.1 ms per call on "
    "this machine); the backward is one more `embedding_bag` for grad_x and one fused per-row dot "
    "product pass for the offset/weight gradients, plus the same kind of fixed cost. The fixed cost "
    "dominates at the small late-stage shapes, so the clone-ratio targets are out of reach for an "
    "eager composition there; meeting them would take a single fused CPU kernel (a C++ extension "
    "or inductor codegen), which this kit does not ship. On a shared machine absolute times swing "
    "by up to 3x between runs (other jobs evicting the L3 cache, page faults on fresh multi-MB "
    "buffers); the ratios come from interleaved runs and move less.")
TARGETS = "fwd+bwd >= 3x faster than MMAction2's composition; fwd <= 2x clone; fwd+bwd <= 5x clone"


def keep_freed_memory() -> bool:
    """Ask glibc malloc to keep freed memory instead of returning it to the OS (as a caching
    allocator would), so that repeated runs do not pay page faults for fresh multi-MB buffers;
    this applies to every variant measured. Returns False where that is not possible."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_trim_threshold, 1 << 30)) and bool(libc.mallopt(m_mmap_threshold, 1 << 25))


def timeit(fns: dict, repeats: int, device: torch.device) -> dict:
    """Fastest wall time in ms of each fn over `repeats` rounds after warm-up. The functions
    run in turns within each round, so a slow spell on a shared machine hits all of them; the
    minimum is the figure least disturbed by other processes."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = {name: float("inf") for name in fns}
    for rnd in range(repeats + 3):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            if rnd >= 3:  # the first rounds are warm-up
                best[name] = min(best[name], time.perf_counter() - start)
    return {name: 1e3 * t for name, t in best.items()}


def mmaction2_composition(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """MMAction2's linear_sampler + weighting, with mmcv's tin_shift replaced by slicing.

    x: [N, T, F, HW], offset: [N, G], weight: [N, T, G] -> [N, T, F, HW].
    """
    n, steps, fold, _ = x.shape
    groups = offset.shape[1]
    cg = fold // groups
    k = torch.floor(offset)
    frac = offset - k
    k = k.long().tolist()

    def shift(s):
        out = torch.zeros_like(x)
        for i in range(n):
            for g in range(groups):
                sh, ch = s[i][g], slice(g * cg, (g + 1) * cg)
                if sh >= 0 and sh < steps:
                    out[i, sh:, ch] = x[i, :steps - sh, ch]
                elif sh < 0 and -sh < steps:
                    out[i, :steps + sh, ch] = x[i, -sh:, ch]
        return out

    d0 = shift(k)
    d1 = shift([[v + 1 for v in row] for row in k])
    w1 = frac.repeat_interleave(cg, dim=1).view(n, 1, fold, 1)
    y = (1 - w1) * d0 + w1 * d1
    y = y * weight.repeat_interleave(cg, dim=2).view(n, steps, fold, 1)
    out = torch.zeros_like(x)
    out[:, :, :fold] = y
    return out


def bench_stage(fold: int, hw: int, device: torch.device, repeats: int, backend: str) -> dict:
    torch.manual_seed(0)
    x = torch.randn(N, T, fold, hw, device=device)
    o = torch.tensor([[0.49998, -0.73]], device=device)
    offset = torch.cat([o, -o], dim=1)
    weight = 2 * torch.sigmoid(torch.randn(N, T, 2, device=device)).repeat(1, 1, 2)
    grad_out = torch.randn_like(x)
    leaves = [t.clone().requires_grad_() for t in (x, offset, weight)]

    def ours_fwd():
        with torch.no_grad():
            ops.interlace(x, offset, weight, backend=backend)

    def ours_fwd_bwd():
        torch.autograd.grad(ops.interlace(*leaves, backend=backend), leaves, grad_out)

    def mm_fwd_bwd():
        torch.autograd.grad(mmaction2_composition(*leaves), leaves, grad_out)

    row = {"shape": f"[1, 8, {fold}, {hw}]"}
    row.update(timeit({"clone": x.clone, "fwd": ours_fwd, "fwd_bwd": ours_fwd_bwd}, repeats, device))
    row.update(timeit({"mm_fwd_bwd": mm_fwd_bwd}, max(5, repeats // 5), device))
    return row


def triton_bandwidth(fold: int, hw: int, batch: int = 16) -> dict:
    """Kernel-only times (triton.testing.do_bench: CUDA events, L2 flushed) of the Triton
    backend at batch `batch`, and the bandwidth of the minimal traffic: forward reads x and
    writes out (2 passes), backward with all gradients reads grad_out and x, writes grad_x (3)."""
    import triton.testing

    from tinlib.ops import triton_kernels

    x = torch.randn(batch, T, fold, hw, device="cuda")
    o = torch.rand(batch, 2, device="cuda") * 4 - 2
    offset = torch.cat([o, -o], dim=1)
    weight = 2 * torch.sigmoid(torch.randn(batch, T, 2, device="cuda")).repeat(1, 1, 2)
    grad_out = torch.randn_like(x)
    nbytes = x.numel() * x.element_size()
    fwd = triton.testing.do_bench(lambda: triton_kernels.forward(x, offset, weight))
    bwd = triton.testing.do_bench(
        lambda: triton_kernels.backward(grad_out, x, offset, weight, "adjoint", True, True))
    return {"shape": f"[{batch}, 8, {fold}, {hw}]", "fwd": fwd, "bwd": bwd,
            "fwd_gbs": 2 * nbytes / fwd / 1e6, "bwd_gbs": 3 * nbytes / bwd / 1e6}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backend", default="auto", choices=ops.BACKENDS)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--os-malloc", action="store_true",
                        help="leave glibc's default trimming on (fresh buffers then page-fault on every run)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave results/benchmarks.md")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    kept = not args.os_malloc and keep_freed_memory()
    device = torch.device(args.device)
    ops.resolve_backend(args.backend, torch.empty(0, device=device))  # fail early on a bad choice
    rows = [bench_stage(f, hw, device, args.repeats, args.backend) for f, hw in STAGES]
    # what ran ("auto" falls back to the eager backend if a Triton kernel failed its first-call check)
    backend = ops.resolve_backend(args.backend, torch.empty(0, device=device))
    lines = [(f"Interlace op, {device.type}, backend `{backend}`, N=1, T=8, G=4, float32; fastest of "
              f"{args.repeats} runs, ms, {torch.get_num_threads()} CPU threads, "
              f"{'freed memory kept by malloc' if kept else 'default malloc trimming'}. Targets: {TARGETS}."), "",
             ("| x shape | clone ms | fwd ms | fwd+bwd ms | MMAction2 fwd+bwd ms | speed-up vs MMAction2 "
              "| fwd / clone | fwd+bwd / clone |"),
             "|---|---|---|---|---|---|---|---|"]
    met = {"speedup": True, "fwd": True, "fwd_bwd": True}
    for r in rows:
        speedup, rf, rfb = r["mm_fwd_bwd"] / r["fwd_bwd"], r["fwd"] / r["clone"], r["fwd_bwd"] / r["clone"]
        met["speedup"] &= speedup >= 3
        met["fwd"] &= rf <= 2
        met["fwd_bwd"] &= rfb <= 5
        lines.append(f"| {r['shape']} | {r['clone']:.3f} | {r['fwd']:.3f} | {r['fwd_bwd']:.3f} | "
                     f"{r['mm_fwd_bwd']:.3f} | {speedup:.1f}x | {rf:.1f}x | {rfb:.1f}x |")
    if device.type == "cuda":
        lines += ["", ("Triton kernels alone at batch 16 (forward; backward with all three gradients; "
                       "triton.testing.do_bench), bandwidth of the minimal traffic (fwd 2, bwd 3 tensor passes):"), "",
                  "| x shape | fwd ms | fwd GB/s | bwd ms | bwd GB/s |", "|---|---|---|---|---|"]
        for f, hw in STAGES:
            b = triton_bandwidth(f, hw)
            lines.append(f"| {b['shape']} | {b['fwd']:.4f} | {b['fwd_gbs']:.0f} | {b['bwd']:.4f} | "
                         f"{b['bwd_gbs']:.0f} |")
    verdict = {True: "met at every shape", False: "**missed** at some shape"}
    lines += ["", f"- speed-up >= 3x vs MMAction2's composition: {verdict[met['speedup']]}",
              f"- forward <= 2x clone: {verdict[met['fwd']]}",
              f"- forward+backward <= 5x clone: {verdict[met['fwd_bwd']]}"]
    if device.type == "cpu":
        lines += ["", f"Load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
                  "", NOTES_CPU]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        from report import write_section

        print(f"wrote {write_section('interlace-op', text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
