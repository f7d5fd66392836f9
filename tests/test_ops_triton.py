"""Triton backend == eager "reference" backend (run under TRITON_INTERPRET=1 on the CPU; kept small)."""
import logging
import os

import pytest
import torch

from tinlib import ops
from tinlib.ops import dispatch, interlace, tin_shift

triton = pytest.importorskip("triton")
if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("needs CUDA or TRITON_INTERPRET=1", allow_module_level=True)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def run(x, offset, weight, grad, backend, grad_out):
    """Forward plus the three gradients as float64 tensors."""
    leaves = [t.clone().requires_grad_() for t in (x, offset, weight)]
    out = interlace(*leaves, grad=grad, backend=backend)
    assert out.dtype == x.dtype and out.shape == x.shape
    return [out.detach().double()] + [g.double() for g in torch.autograd.grad(out, leaves, grad_out)]


def make(n, steps, c, hw, offsets, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, steps, c, hw, generator=g).to(dtype).to(DEVICE)
    offset = torch.tensor(offsets, dtype=torch.float32).view(n, -1).to(DEVICE)
    weight = (torch.rand(n, steps, offset.shape[1], generator=g) + 0.5).to(DEVICE)
    grad_out = torch.randn(x.shape, generator=g).to(dtype).to(DEVICE)
    return x, offset, weight, grad_out


CASES = {
    # (N, T, C, HW, offsets): exact integers, beyond +-T, negative, fractional
    "T8_hw49": (2, 8, 8, 49, [[0.3, -1.25, 2.0, -3.0], [0.0, 9.5, -8.75, 1.999]]),
    "T1": (1, 1, 4, 5, [[0.0, 0.4, -0.6, 1.0]]),
    "cg1_odd_hw": (2, 3, 4, 7, [[-1.0, 2.5, -0.25, 3.0], [1.5, -2.0, 0.0, -7.3]]),
    "G2_hw5": (1, 4, 6, 5, [[1.75, -1e6]]),
}


@pytest.mark.parametrize("grad", ["adjoint", "mmcv"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_triton_matches_reference_float32(case, grad):
    x, offset, weight, grad_out = make(*CASES[case][:4], CASES[case][4])
    got = run(x, offset, weight, grad, "triton", grad_out)
    want = run(x, offset, weight, grad, "reference", grad_out)
    for name, a, b in zip(("out", "grad_x", "grad_offset", "grad_weight"), got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=lambda m, name=name: f"{case} {grad} {name}: {m}")


def test_triton_several_blocks_and_strided_input(monkeypatch):
    """Partial sums over several D-blocks, and x a channel slice of a bigger tensor."""
    from tinlib.ops import triton_kernels

    monkeypatch.setattr(triton_kernels, "MAX_BLOCK", 16)
    _, offset, weight, _ = make(2, 4, 8, 9, [[0.5, -1.5, 1.0, 2.25], [-0.1, 0.0, 3.5, -4.0]])
    big = torch.randn(2 * 4, 16, 9, device=DEVICE)
    x = big[:, :8].reshape(2, 4, 8, 9)  # D = 2 * 9 = 18 -> two blocks of 16
    assert not x.is_contiguous()
    grad_out = torch.randn(x.shape, device=DEVICE)
    for grad in ("adjoint", "mmcv"):
        got = run(x, offset, weight, grad, "triton", grad_out)
        want = run(x.contiguous(), offset, weight, grad, "reference", grad_out)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-3), (torch.bfloat16, 2e-2)])
def test_triton_half_precision(dtype, tol):
    x, offset, weight, grad_out = make(1, 4, 8, 5, [[0.3, -1.25, 2.0, -0.5]], dtype=dtype)
    got = run(x, offset, weight, "adjoint", "triton", grad_out)
    want = run(x.double(), offset.double(), weight.double(), "adjoint", "reference", grad_out.double())
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * 4)


def test_triton_tin_shift_example_a():
    x = torch.tensor([[10 * (c + 1) + (t + 1) for c in range(4)] for t in range(4)], dtype=torch.float32,
                     device=DEVICE).view(1, 4, 4, 1).requires_grad_()
    shift = torch.tensor([[1, -1, 2, 0]], device=DEVICE)
    g = torch.arange(1.0, 17.0, device=DEVICE).view(1, 4, 4, 1)
    out = tin_shift(x, shift, backend="triton")
    assert out.view(4, 4).tolist() == [[0, 22, 0, 41], [11, 23, 0, 42], [12, 24, 31, 43], [13, 0, 32, 44]]
    (gx,) = torch.autograd.grad(out, x, g)
    assert gx.view(4, 4).tolist() == [[5, 0, 11, 4], [9, 2, 15, 8], [13, 6, 0, 12], [0, 10, 0, 16]]
    (gx,) = torch.autograd.grad(tin_shift(x, shift, grad="mmcv", backend="triton"), x, g)
    assert gx.view(4, 4).tolist() == [[0, 6, 0, 4], [1, 10, 0, 8], [5, 14, 3, 12], [9, 0, 7, 16]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_auto_check_accepts_the_real_kernels(monkeypatch, caplog, dtype):
    """Under "auto" the first forward and backward are checked against the eager backend; the
    real kernels pass the check (no warning) and are used from then on."""
    monkeypatch.delenv(ops.BACKEND_ENV, raising=False)
    monkeypatch.setattr(dispatch, "_auto_tries_triton", lambda x: True)  # CPU tensors: as on CUDA
    monkeypatch.setattr(dispatch, "_validated", set())
    monkeypatch.setattr(dispatch, "_fallen_back", {})
    x, offset, weight, grad_out = make(*CASES["T8_hw49"][:4], CASES["T8_hw49"][4], dtype=dtype)
    with caplog.at_level(logging.WARNING, logger="tinlib.ops.dispatch"):
        for grad in ("adjoint", "mmcv"):
            run(x, offset, weight, grad, "auto", grad_out)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    device_type = torch.device(DEVICE).type
    assert dispatch._validated == {(device_type, dtype, "forward"), (device_type, dtype, "backward")}
    assert ops.resolve_backend("auto", x) == "triton"
