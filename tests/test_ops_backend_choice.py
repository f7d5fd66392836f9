"""Backend "auto" with Triton: a failing or wrong kernel falls back to the eager backend.

No GPU needed: `_auto_tries_triton` is patched so that CPU tensors take the path CUDA tensors
take under "auto", and `_triton_kernels` returns a stand-in for the Triton kernel module.
"""
import logging

import pytest
import torch

from tinlib import ops
from tinlib.ops import dispatch, eager, interlace, interlace_composite

LOGGER = "tinlib.ops.dispatch"
EAGER_FORWARD, EAGER_BACKWARD = eager.forward, eager.backward  # unpatched, for the stand-in


class FakeKernels:
    """Stand-in for tinlib.ops.triton_kernels that counts its calls and, on demand, raises (as a
    Triton compile error would) or returns wrong values, in the forward or the backward."""

    def __init__(self, forward="ok", backward="ok"):
        self.modes = {"forward": forward, "backward": backward}
        self.calls = {"forward": 0, "backward": 0}

    def _enter(self, which):
        self.calls[which] += 1
        if self.modes[which] == "raise":
            raise RuntimeError(f"CompilationError: at 12:8: simulated failure of the {which} kernel\nmore")

    def forward(self, x, offset, weight):
        self._enter("forward")
        out = EAGER_FORWARD(x, offset, weight)
        return out + 1 if self.modes["forward"] == "wrong" else out

    def backward(self, grad_out, x, offset, weight, grad, need_x, need_params):
        self._enter("backward")
        gx, goff, gw = EAGER_BACKWARD(grad_out, x, offset, weight, grad, need_x, need_params)
        return gx, goff, (2 * gw if self.modes["backward"] == "wrong" else gw)


@pytest.fixture
def auto_like_cuda(monkeypatch):
    """Makes "auto" on CPU tensors behave as on CUDA tensors with triton installed, with a fresh
    check cache; returns a function that installs a FakeKernels and returns it. Also counts the
    eager backend's forward calls (in eager_calls)."""
    monkeypatch.delenv(ops.BACKEND_ENV, raising=False)
    monkeypatch.setattr(dispatch, "_auto_tries_triton", lambda x: True)
    monkeypatch.setattr(dispatch, "_validated", set())
    monkeypatch.setattr(dispatch, "_fallen_back", {})
    eager_calls = {"forward": 0}
    def counting_forward(*args):
        eager_calls["forward"] += 1
        return EAGER_FORWARD(*args)

    monkeypatch.setattr(eager, "forward", counting_forward)

    def install(**modes):
        kernels = FakeKernels(**modes)
        monkeypatch.setattr(dispatch, "_triton_kernels", lambda: kernels)
        return kernels

    install.eager_calls = eager_calls
    return install


def case(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 3, generator=g).to(dtype)
    offset = torch.tensor([[0.3, -1.25, 2.6, -0.4], [1.5, -0.7, 0.0, 3.2]], dtype=dtype)
    weight = (torch.rand(2, 4, 4, generator=g) + 0.5).to(dtype)
    return x, offset, weight


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def test_matching_kernel_is_checked_once_then_trusted(auto_like_cuda, caplog):
    kernels = auto_like_cuda()
    x, offset, weight = case()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        torch.testing.assert_close(interlace(x, offset, weight), interlace_composite(x, offset, weight))
        assert kernels.calls["forward"] == 1 and auto_like_cuda.eager_calls["forward"] == 1  # the check
        interlace(x, offset, weight)
        assert kernels.calls["forward"] == 2 and auto_like_cuda.eager_calls["forward"] == 1  # no new check
    assert warnings_of(caplog) == []
    assert ops.resolve_backend("auto", x) == "triton"


def test_compile_error_warns_once_and_uses_the_eager_backend(auto_like_cuda, caplog):
    kernels = auto_like_cuda(forward="raise")
    x, offset, weight = case()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        torch.testing.assert_close(interlace(x, offset, weight), interlace_composite(x, offset, weight))
        torch.testing.assert_close(interlace(x, offset, weight), interlace_composite(x, offset, weight))
    assert kernels.calls["forward"] == 1  # not tried again
    (message,) = warnings_of(caplog)
    assert "Triton forward kernel failed (RuntimeError: CompilationError: at 12:8" in message
    assert "more" not in message  # first line of the error only
    assert "cpu torch.float32" in message and "TINLIB_INTERLACE_BACKEND=reference" in message
    assert ops.resolve_backend("auto", x) == "reference"
    # the fallback is per (device type, dtype): float64 tries the kernel again
    interlace(*case(torch.float64))
    assert kernels.calls["forward"] == 2


def test_mismatch_warns_and_returns_the_eager_result(auto_like_cuda, caplog):
    kernels = auto_like_cuda(forward="wrong")
    x, offset, weight = case()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        torch.testing.assert_close(interlace(x, offset, weight), interlace_composite(x, offset, weight))
        interlace(x, offset, weight)
    assert kernels.calls["forward"] == 1
    (message,) = warnings_of(caplog)
    assert "Triton forward result does not match the eager backend's: out differs by up to 1" in message
    assert "TINLIB_INTERLACE_BACKEND" in message


@pytest.mark.parametrize("mode", ["wrong", "raise"])
def test_failing_backward_kernel_falls_back_with_eager_gradients(auto_like_cuda, caplog, mode):
    kernels = auto_like_cuda(backward=mode)
    x, offset, weight = case()
    grad_out = torch.randn_like(x)
    leaves = [t.clone().requires_grad_() for t in (x, offset, weight)]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        got = torch.autograd.grad(interlace(*leaves), leaves, grad_out)
    want = torch.autograd.grad(interlace_composite(*leaves), leaves, grad_out)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    (message,) = warnings_of(caplog)
    assert ("grad_weight differs" if mode == "wrong" else "Triton backward kernel failed") in message
    # from now on the eager backend runs for this key, forward included
    interlace(x, offset, weight)
    assert kernels.calls == {"forward": 1, "backward": 1}


def test_error_after_a_passed_check_still_falls_back(auto_like_cuda, caplog):
    kernels = auto_like_cuda()
    x, offset, weight = case()
    interlace(x, offset, weight)
    kernels.modes["forward"] = "raise"  # e.g. a new specialization that fails to compile
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        torch.testing.assert_close(interlace(x, offset, weight), interlace_composite(x, offset, weight))
    assert len(warnings_of(caplog)) == 1


def test_out_of_memory_is_not_a_kernel_failure(auto_like_cuda):
    kernels = auto_like_cuda()
    x, offset, weight = case()

    def out_of_memory(*args):
        raise torch.cuda.OutOfMemoryError("simulated")

    kernels.forward = out_of_memory
    with pytest.raises(torch.cuda.OutOfMemoryError):
        interlace(x, offset, weight)
    assert dispatch._fallen_back == {}


@pytest.mark.parametrize("how", ["argument", "variable"])
def test_explicit_triton_raises(auto_like_cuda, monkeypatch, how):
    kernels = auto_like_cuda(forward="raise")
    monkeypatch.setattr(dispatch, "_HAS_TRITON", True)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    x, offset, weight = case()
    if how == "variable":
        monkeypatch.setenv(ops.BACKEND_ENV, "triton")
    with pytest.raises(RuntimeError, match="CompilationError"):
        interlace(x, offset, weight, backend="triton" if how == "argument" else "auto")
    assert kernels.calls["forward"] == 1 and dispatch._fallen_back == {}


def test_variable_reference_skips_triton(auto_like_cuda, monkeypatch):
    kernels = auto_like_cuda()
    monkeypatch.setenv(ops.BACKEND_ENV, "reference")
    interlace(*case())
    assert kernels.calls["forward"] == 0


def test_torch_compile_runs_the_check_inside_the_op(auto_like_cuda, caplog):
    """Under torch.compile the choice happens when the op runs (on real tensors), not at tracing."""
    torch._dynamo.reset()
    kernels = auto_like_cuda(forward="wrong")
    x, offset, weight = case()
    compiled = torch.compile(lambda a, b, c: interlace(a, b, c), backend="eager", fullgraph=True)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        torch.testing.assert_close(compiled(x, offset, weight), interlace_composite(x, offset, weight))
    assert kernels.calls["forward"] == 1 and len(warnings_of(caplog)) == 1
