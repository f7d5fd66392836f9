"""Correctness of the interlace op at TIN-R50's shapes per device, backend and dtype: forward and
backward against ``interlace_composite`` in float64 on the same rounded inputs, so the difference is
the op's own rounding error and the tolerance can be tight."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from tinlib.doctor.checks import FAIL, PASS, SKIPPED, Check
from tinlib.ops import interlace, interlace_composite

SEGMENTS = 8
GROUPS = 4  # TIN shifts four channel quarters: +o0, +o1, -o0, -o1
# Shapes x: [N, T, C, HW] that the op sees in TIN-R50 at 224 px, one per ResNet stage.
# TemporalInterlace sits in front of conv1 of every Bottleneck block, so it sees the block input;
# it hands the op the first C // shift_div channels (shift_div 4: a quarter of the channels) with
# the spatial axes flattened. torchvision's ResNet-50: the stem (stride-2 conv, stride-2 max pool)
# takes 224 px to 56x56; the blocks of stage s after its first take 256 * 2**(s-1) channels at
# 56 / 2**(s-1) px; stages 2-4 halve the size in their first block's 3x3 conv (conv2), so that
# block's conv1 still sees the previous stage's shape. Per stage (fold channels C/4, H*W):
#   stage 1: 256 channels at 56x56 -> C = 64,  HW = 3136  (blocks 2-3 of stage 1, block 1 of stage 2)
#   stage 2: 512 channels at 28x28 -> C = 128, HW = 784   (blocks 2-4 of stage 2, block 1 of stage 3)
#   stage 3: 1024 channels at 14x14 -> C = 256, HW = 196  (blocks 2-6 of stage 3, block 1 of stage 4)
#   stage 4: 2048 channels at 7x7  -> C = 512, HW = 49    (blocks 2-3 of stage 4)
# The one remaining call, block 1 of stage 1 (64 stem channels at 56x56 -> C = 16, HW = 3136), is
# stage 1's pattern with a quarter of its channels. N is the number of videos: 1, and 6 (the
# per-GPU batch, videos_per_gpu, of the TIN-R50 Something-Something configs).
STAGE_SHAPES: dict[str, tuple[int, int]] = {
    "stage1": (64, 56 * 56),
    "stage2": (128, 28 * 28),
    "stage3": (256, 14 * 14),
    "stage4": (512, 7 * 7),
}
GPU_VIDEOS = (1, 6)
CPU_VIDEOS = (1,)  # the 6-video shapes take seconds more on a CPU and test nothing new there
OP_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# Largest accepted max|op - reference| / max|reference| per dtype, as (values, sums).
# "values" (out, grad_x) are two frames interpolated and weighted in float32, then rounded once
# to the dtype: at most the dtype's unit roundoff u (float16 2^-11 = 4.9e-4, bfloat16 2^-8 =
# 3.9e-3) times the element, 2u where the conversion truncates instead of rounding to nearest
# (Triton's interpreter does); the tolerance is 3u. "sums" (grad_offset, grad_weight) add
# C/G * HW products per frame in float32, in an order that differs between backends, and are
# then rounded once: 4u. float32 results carry float32 compute error only (about 1e-7 for values
# and 1e-6 for sums at these shapes); its tolerances leave room for that. A wrong frame, offset
# or weight gives errors of order 1.
TOLERANCE: dict[torch.dtype, tuple[float, float]] = {
    torch.float32: (1e-5, 1e-4),
    torch.float16: (1.5e-3, 2e-3),
    torch.bfloat16: (1.2e-2, 1.6e-2),
}


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float16`` -> ``"float16"``."""
    return str(dtype).replace("torch.", "")


def op_shapes(videos: tuple[int, ...]) -> list[tuple[str, tuple[int, int, int, int]]]:
    """``[(label, (N, T, C, HW))]`` for every stage and every video count in ``videos``."""
    return [(f"{stage} N={n}", (n, SEGMENTS, channels, hw))
            for n in videos for stage, (channels, hw) in STAGE_SHAPES.items()]


def backends_for(device: torch.device) -> list[tuple[str, str | None]]:
    """``[(backend, reason to skip or None)]`` checked on ``device``: the eager PyTorch kernel
    everywhere, the Triton kernels on CUDA devices (skipped when triton is not installed)."""
    if device.type != "cuda":
        return [("reference", None)]
    triton_missing = None if importlib.util.find_spec("triton") else "triton is not installed (pip install triton)"
    return [("reference", None), ("triton", triton_missing)]


def make_inputs(shape: tuple[int, int, int, int], dtype: torch.dtype, device: torch.device, seed: int = 0):
    """Random op inputs of ``shape`` = (N, T, C, HW), rounded to ``dtype``, on ``device``.

    Returns (x [N, T, C, HW], offset [N, G] in (-2, 2) as TIN's OffsetNet gives, weight
    [N, T, G] in (0, 2) as its WeightNet gives, grad_out [N, T, C, HW]).
    """
    n, steps, _, _ = shape
    generator = torch.Generator(device=device).manual_seed(seed)

    def draw(size, low=None, high=None):
        if low is None:
            values = torch.randn(size, generator=generator, device=device)
        else:
            values = low + (high - low) * torch.rand(size, generator=generator, device=device)
        return values.to(dtype)

    return draw(shape), draw((n, GROUPS), -2.0, 2.0), draw((n, steps, GROUPS), 0.0, 2.0), draw(shape)


@dataclass
class RelError:
    """The :func:`relative_error` of one result tensor, against its tolerance."""

    where: str  # "stage1 N=6 grad_offset"
    error: float
    tolerance: float
    shape: tuple[int, ...] | None = None  # named in the detail of a failure

    @property
    def ratio(self) -> float:
        return self.error / self.tolerance


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max |want| (want in float64); inf when got has inf/nan."""
    got64 = got.detach().to(torch.float64)
    if not torch.isfinite(got64).all():
        return float("inf")
    scale = want.abs().max().item()
    diff = (got64 - want).abs().max().item()
    return diff / scale if scale > 0 else diff


def _compare_shape(label: str, shape, backend: str, dtype: torch.dtype, device: torch.device):
    """Run forward and backward once; return the errors of (out,) and (grad_x, grad_offset, grad_weight)."""
    values_tol, sums_tol = TOLERANCE[dtype]
    x, offset, weight, grad_out = make_inputs(shape, dtype, device)
    inputs = [t.clone().requires_grad_() for t in (x, offset, weight)]
    out = interlace(inputs[0], inputs[1], inputs[2], backend=backend)
    grads = torch.autograd.grad(out, inputs, grad_out)
    ref_inputs = [t.to(torch.float64).requires_grad_() for t in (x, offset, weight)]
    ref_out = interlace_composite(ref_inputs[0], ref_inputs[1], ref_inputs[2])
    ref_grads = torch.autograd.grad(ref_out, ref_inputs, grad_out.to(torch.float64))
    forward = [RelError(f"{label} out", relative_error(out, ref_out), values_tol, tuple(shape))]
    backward = [RelError(f"{label} {name}", relative_error(got, want), tol, tuple(shape))
                for name, got, want, tol in zip(("grad_x", "grad_offset", "grad_weight"), grads, ref_grads,
                                                (values_tol, sums_tol, sums_tol))]
    return forward, backward


def verdict(name: str, device: str, dtype: str, errors: list[RelError], what: str, scope: str,
            reference: str) -> Check:
    """The "op" check ``name``: a failure names the first error over its tolerance (against
    ``reference``), a pass the largest share of its tolerance (``what``: the tensors compared)."""
    worst = max(errors, key=lambda e: e.ratio)
    bad = [e for e in errors if not e.ratio <= 1]  # "not <=" also catches nan
    data = {"scope": scope, "max_rel_error": worst.error, "tolerance": worst.tolerance, "worst": worst.where,
            "errors": {e.where: e.error for e in errors}}
    if bad:
        first = bad[0]
        shape = f" {list(first.shape)}" if first.shape else ""
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        detail = f"{first.where}{shape}: rel. err {first.error:.1e} > tol {first.tolerance:.1e} vs {reference}{more}"
        return Check("op", name, device, dtype, FAIL, detail, data)
    detail = f"{what}: max rel. err {worst.error:.1e} <= tol {worst.tolerance:.1e} ({worst.where}); {scope}"
    return Check("op", name, device, dtype, PASS, detail, data)


def check_interlace(device: torch.device, backend: str, dtype: torch.dtype, videos: tuple[int, ...],
                    skip_reason: str | None = None) -> list[Check]:
    """Two checks, "interlace forward [backend]" and "interlace backward [backend]": every
    TIN-R50 stage shape for each video count in ``videos``, compared with the float64 composite.

    The backward checks the data gradient in "adjoint" mode (the true gradient, which autograd
    of the composite gives) and the offset and weight gradients.
    """
    names = (f"interlace forward [{backend}]", f"interlace backward [{backend}]")
    dev, dt = str(device), dtype_name(dtype)
    if skip_reason:
        return [Check("op", name, dev, dt, SKIPPED, skip_reason) for name in names]
    forward: list[RelError] = []
    backward: list[RelError] = []
    for label, shape in op_shapes(videos):
        fwd, bwd = _compare_shape(label, shape, backend, dtype, device)
        forward += fwd
        backward += bwd
    scope = f"{len(STAGE_SHAPES)} stage shapes x {'/'.join(map(str, videos))} video(s)"
    if set(GPU_VIDEOS) - set(videos):
        scope += f" ({'/'.join(str(n) for n in GPU_VIDEOS if n not in videos)}-video shapes: GPUs only)"
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return [verdict(name, dev, dt, errors, what, scope, "float64 composite")
            for name, errors, what in ((names[0], forward, "out"), (names[1], backward, "grad_x/offset/weight"))]
