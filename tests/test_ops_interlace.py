"""tinlib.ops: tin_shift and interlace semantics, gradients, errors, torch.compile (eager "reference" backend)."""
import pytest
import torch

from tinlib import ops
from tinlib.ops import eager, interlace, interlace_composite, tin_shift


def example_x(steps=4, channels=4):
    """x[t][c] = 10 (c + 1) + (t + 1), shape [1, T, C, 1]: each value names its channel and frame."""
    t = torch.arange(steps, dtype=torch.float64).view(steps, 1)
    c = torch.arange(channels, dtype=torch.float64).view(1, channels)
    return (10 * (c + 1) + (t + 1)).view(1, steps, channels, 1)


def table(rows):
    return torch.tensor(rows, dtype=torch.float64).view(1, len(rows), len(rows[0]), 1)


def shift_loop(x, shift):
    """Straightforward tin_shift oracle: x [N, T, C, HW], shift [N, G] ints."""
    n, steps, c, _ = x.shape
    cg = c // shift.shape[1]
    out = torch.zeros_like(x)
    for i in range(n):
        for ch in range(c):
            s = int(shift[i, ch // cg])
            for t in range(steps):
                if 0 <= t - s < steps:
                    out[i, t, ch] = x[i, t - s, ch]
    return out


def sample_loop(x, offset, weight):
    """Interlace oracle by loops: out[t] = w[t] ((1-f) X(t-k) + f X(t-k-1))."""
    n, steps, c, _ = x.shape
    cg = c // offset.shape[1]
    out = torch.zeros_like(x)
    for i in range(n):
        for ch in range(c):
            g = ch // cg
            o = float(offset[i, g])
            k = int(torch.floor(torch.tensor(o)))
            f = o - k
            for t in range(steps):
                acc = 0.0
                if 0 <= t - k < steps:
                    acc = acc + (1 - f) * x[i, t - k, ch]
                if 0 <= t - k - 1 < steps:
                    acc = acc + f * x[i, t - k - 1, ch]
                out[i, t, ch] = weight[i, t, g] * acc
    return out


def mmcv_data_grad(grad_out, offset, weight):
    """grad_x[t] = (1-f) GW[t-k] + f GW[t-k-1], GW = grad_out * weight (loops)."""
    return sample_loop(grad_out * weight.repeat_interleave(grad_out.shape[2] // weight.shape[2], 2)
                       .unsqueeze(-1), offset, torch.ones_like(weight))


# --- worked examples, computed by hand from the definitions ----------------------------------
# A: one channel per group, shifts +1, -1, +2, 0 (column c is channel c, row t is frame t);
# the adjoint gradient shifts the incoming gradient back, mmcv's shifts it forward again.

EXAMPLE_A_SHIFT = [[1, -1, 2, 0]]
EXAMPLE_A_OUT = [[0, 22, 0, 41], [11, 23, 0, 42], [12, 24, 31, 43], [13, 0, 32, 44]]
EXAMPLE_A_GRAD = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]]
EXAMPLE_A_ADJOINT = [[5, 0, 11, 4], [9, 2, 15, 8], [13, 6, 0, 12], [0, 10, 0, 16]]
EXAMPLE_A_MMCV = [[0, 6, 0, 4], [1, 10, 0, 8], [5, 14, 3, 12], [9, 0, 7, 16]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("grad,expected", [("adjoint", EXAMPLE_A_ADJOINT), ("mmcv", EXAMPLE_A_MMCV)])
def test_example_a_tin_shift(grad, expected, dtype):
    x = example_x().to(dtype).requires_grad_()
    for shift_dtype in (torch.int32, torch.int64):
        out = tin_shift(x, torch.tensor(EXAMPLE_A_SHIFT, dtype=shift_dtype), grad=grad)
        assert out.dtype == dtype
        torch.testing.assert_close(out.double(), table(EXAMPLE_A_OUT), rtol=0, atol=0)
        (gx,) = torch.autograd.grad(out, x, table(EXAMPLE_A_GRAD).to(dtype))
        torch.testing.assert_close(gx.double(), table(expected), rtol=0, atol=0)


# B: TemporalInterlace's four groups (offsets +o0, +o1, -o0, -o1) with per-frame weights, e.g.
# out[0][0] = 1.0 * (0.7 * 11 + 0.3 * 0) = 7.7; C: offsets +-0.5 average neighbouring frames.
EXAMPLE_B_OFFSETS = [0.3, -1.25]
EXAMPLE_B_WEIGHTS = [(1.0, 0.5), (1.2, 0.8), (0.9, 1.1), (1.5, 0.25)]
EXAMPLE_B_OUT = [[7.7, 11.125, 31.3, 0], [14.04, 18.6, 38.76, 24.6],
                 [11.43, 19.8, 29.97, 45.925], [20.55, 0, 35.7, 10.6875]]
EXAMPLE_C_OUT = [[5.5, 10.5, 31.5, 41.5], [11.5, 21.5, 32.5, 42.5],
                 [12.5, 22.5, 33.5, 43.5], [13.5, 23.5, 17, 22]]


def group_params(o, w):
    """TemporalInterlace's expansion: offsets [o0, o1, -o0, -o1], weights [w0, w1, w0, w1]."""
    o = torch.tensor([o], dtype=torch.float64)
    w = torch.tensor([w], dtype=torch.float64)
    return torch.cat([o, -o], 1), torch.cat([w, w], 2)


@pytest.mark.parametrize("fn", [lambda x, o, w: interlace(x, o, w, backend="reference"), interlace_composite],
                         ids=["interlace", "composite"])
def test_examples_b_and_c(fn):
    x = example_x()
    offset, weight = group_params(EXAMPLE_B_OFFSETS, EXAMPLE_B_WEIGHTS)
    torch.testing.assert_close(fn(x, offset, weight), table(EXAMPLE_B_OUT), rtol=0, atol=1e-12)
    offset, weight = group_params([0.5, 0.5], [(1.0, 1.0)] * 4)
    torch.testing.assert_close(fn(x, offset, weight), table(EXAMPLE_C_OUT), rtol=0, atol=1e-12)


# --- forward against loop oracles ---------------------------------------------------------

def random_case(n=2, steps=5, c=8, hw=3, groups=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, steps, c, hw, generator=g, dtype=dtype)
    offset = (torch.rand(n, groups, generator=g, dtype=dtype) - 0.5) * 2 * (steps + 2)
    weight = torch.rand(n, steps, groups, generator=g, dtype=dtype) + 0.5
    return x, offset, weight


def test_tin_shift_matches_loop_oracle_including_large_shifts():
    x, _, _ = random_case(n=2, steps=5, c=8, hw=3)
    shift = torch.tensor([[0, 4, -4, 5], [-6, 1, -1, 100]])
    torch.testing.assert_close(tin_shift(x, shift), shift_loop(x, shift), rtol=0, atol=0)


def test_interlace_matches_loop_oracle_all_offset_kinds():
    x, _, weight = random_case(n=2, steps=5, c=8, hw=3)
    offset = torch.tensor([[0.3, -1.25, 2.0, -7.5], [5.0, -5.0, 1e9, -0.999]], dtype=torch.float64)
    expected = sample_loop(x, offset, weight)
    torch.testing.assert_close(interlace(x, offset, weight, backend="reference"), expected)
    torch.testing.assert_close(interlace_composite(x, offset, weight), expected)


def test_interlace_reads_channel_slices_in_place():
    """The model passes x[:, :F] of a bigger [N*T, C, H, W] tensor, reshaped (strided)."""
    big = torch.randn(2 * 4, 24, 5, dtype=torch.float64)
    x = big[:, :8].reshape(2, 4, 8, 5)
    assert not x.is_contiguous()
    _, offset, weight = random_case(n=2, steps=4, c=8, hw=5)
    torch.testing.assert_close(interlace(x, offset, weight, backend="reference"),
                               interlace_composite(x.contiguous(), offset, weight))


def test_tin_shift_equals_integer_interlace_and_keeps_dtypes():
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        x = torch.randn(1, 4, 4, 2).to(dtype)
        shift = torch.tensor([[1, 0, -2, 3]], dtype=torch.int32)
        out = tin_shift(x, shift)
        assert out.dtype == dtype
        torch.testing.assert_close(out, shift_loop(x.double(), shift).to(dtype), rtol=0, atol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-3), (torch.bfloat16, 2e-2)])
def test_reference_half_precision_accumulates_in_float32(dtype, tol):
    x, offset, weight = fractional_case()
    grad_out = torch.randn_like(x)
    results = []
    for dt in (dtype, torch.float64):
        leaves = [t.to(dt).requires_grad_() for t in (x, offset, weight)]
        out = interlace(*leaves, backend="reference")
        assert out.dtype == dt
        results.append([out] + list(torch.autograd.grad(out, leaves, grad_out.to(dt))))
    for low, high in zip(*results):
        torch.testing.assert_close(low.double(), high, rtol=tol, atol=4 * tol)


# --- gradients ------------------------------------------------------------------------------

def fractional_case():
    x, _, weight = random_case(n=2, steps=4, c=8, hw=3)
    # non-integer offsets in and beyond [-T, T]; gradcheck's perturbation stays inside one cell
    offset = torch.tensor([[0.3, -1.25, 2.6, -3.4], [6.5, -0.7, 1.1, -5.2]], dtype=torch.float64)
    return x, offset, weight


def test_gradcheck_reference_adjoint():
    x, offset, weight = (t.requires_grad_() for t in fractional_case())
    assert torch.autograd.gradcheck(lambda a, b, c: interlace(a, b, c, backend="reference"), (x, offset, weight))


def test_gradcheck_reference_mmcv_mode_offset_and_weight():
    x, offset, weight = fractional_case()
    offset.requires_grad_()
    weight.requires_grad_()
    assert torch.autograd.gradcheck(lambda b, c: interlace(x, b, c, grad="mmcv", backend="reference"),
                                    (offset, weight))


def test_gradcheck_tin_shift_adjoint():
    x = torch.randn(2, 4, 4, 3, dtype=torch.float64, requires_grad=True)
    shift = torch.tensor([[1, -1, 3, 0], [-2, 5, 2, -4]])
    assert torch.autograd.gradcheck(lambda a: tin_shift(a, shift), (x,))


@pytest.mark.parametrize("grad", ["adjoint", "mmcv"])
def test_gradients_against_composite_and_formula(grad):
    x, offset, weight = fractional_case()
    offset[1, 2] = 2.0  # an exact integer: f = 0
    grad_out = torch.randn_like(x)
    leaves = [t.clone().requires_grad_() for t in (x, offset, weight)]
    gx, goff, gw = torch.autograd.grad(interlace(*leaves, grad=grad, backend="reference"), leaves, grad_out)
    cx, coff, cw = torch.autograd.grad(interlace_composite(*leaves), leaves, grad_out)
    if grad == "adjoint":
        torch.testing.assert_close(gx, cx)
    else:
        torch.testing.assert_close(gx, mmcv_data_grad(grad_out, offset, weight))
    torch.testing.assert_close(goff, coff)  # offset/weight gradients do not depend on the mode
    torch.testing.assert_close(gw, cw)


def test_offset_gradient_is_the_finite_difference():
    """d out / d offset = w (X(t-k-1) - X(t-k)), summed against grad_out (k held constant)."""
    x, offset, weight = fractional_case()
    grad_out = torch.randn_like(x)
    off = offset.clone().requires_grad_()
    (goff,) = torch.autograd.grad(interlace(x, off, weight, backend="reference"), off, grad_out)
    k = torch.floor(offset)
    diff = sample_loop(x, k + 1, weight) - sample_loop(x, k, weight)  # integer offsets: f = 0
    cg = x.shape[2] // offset.shape[1]
    expected = (diff * grad_out).sum((1, 3)).view(x.shape[0], -1, cg).sum(-1)
    torch.testing.assert_close(goff, expected)


def test_backward_computes_only_the_requested_gradients(monkeypatch):
    """The backward kernel is asked only for the gradients autograd needs, and x is kept for the
    backward only when the offset/weight gradients need it."""
    calls = []
    real_backward = eager.backward

    def recording_backward(grad_out, x, offset, weight, grad, need_x, need_params):
        calls.append({"need_x": need_x, "need_params": need_params, "got_x": x is not None})
        return real_backward(grad_out, x, offset, weight, grad, need_x, need_params)

    monkeypatch.setattr(eager, "backward", recording_backward)
    x, offset, weight = fractional_case()
    grad_out = torch.randn_like(x)

    xr = x.clone().requires_grad_()
    (gx,) = torch.autograd.grad(interlace(xr, offset, weight, backend="reference"), xr, grad_out)
    assert calls == [{"need_x": True, "need_params": False, "got_x": False}]
    torch.testing.assert_close(gx, torch.autograd.grad(interlace_composite(xr, offset, weight), xr, grad_out)[0])

    w = weight.clone().requires_grad_()
    (gw,) = torch.autograd.grad(interlace(x, offset, w, backend="reference"), w, grad_out)
    assert calls[1:] == [{"need_x": False, "need_params": True, "got_x": True}]
    torch.testing.assert_close(gw, torch.autograd.grad(interlace_composite(x, offset, w), w, grad_out)[0])

    # tin_shift: the offsets made from the integer shift take no gradient
    tin_shift(xr, torch.tensor([[1, 0, -1, 2], [0, 3, 0, -2]]), backend="reference").backward(grad_out)
    assert calls[2:] == [{"need_x": True, "need_params": False, "got_x": False}]


@pytest.mark.parametrize("how", ["op missing", "no kernel for the device"])
def test_eager_parameter_gradients_without_the_private_aten_op(monkeypatch, how):
    """The eager backend's offset/weight gradients use a private aten op when it works, public
    ops otherwise; both give the composite form's gradients."""
    from tinlib.ops import _common

    def no_kernel(*args):
        if how == "op missing":
            raise AssertionError("the fused path ran although the op is reported missing")
        raise NotImplementedError("no kernel for this device")

    if how == "op missing":
        monkeypatch.setattr(_common, "FUSED_DOTS", False)
    monkeypatch.setattr(torch.ops.aten, "_embedding_bag_per_sample_weights_backward", no_kernel)
    x, offset, weight = fractional_case()
    grad_out = torch.randn_like(x)
    leaves = [t.clone().requires_grad_() for t in (offset, weight)]
    got = torch.autograd.grad(interlace(x, *leaves, backend="reference"), leaves, grad_out)
    want = torch.autograd.grad(interlace_composite(x, *leaves), leaves, grad_out)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_empty_input():
    x = torch.zeros(0, 4, 8, 3, requires_grad=True)
    out = interlace(x, torch.zeros(0, 4), torch.zeros(0, 4, 4))
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad.shape == x.shape


# --- argument errors ----------------------------------------------------------------------

def test_tin_shift_errors():
    x = torch.zeros(2, 4, 8, 3)
    shift = torch.zeros(2, 4, dtype=torch.int32)
    with pytest.raises(ValueError, match="batch size of x \\(2\\) and shift \\(1\\) differ"):
        tin_shift(x, shift[:1])
    with pytest.raises(ValueError, match="C=8 must be a positive multiple of the group count G=3"):
        tin_shift(x, torch.zeros(2, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="C=0 must be a positive multiple"):
        tin_shift(torch.zeros(2, 4, 0, 3), shift)
    with pytest.raises(TypeError, match="shift must be an integer tensor \\(got torch.float32\\)"):
        tin_shift(x, shift.float())
    with pytest.raises(ValueError, match="x must have shape \\[N, T, C, HW\\] \\(rank 4\\), got rank 3"):
        tin_shift(x[0], shift)
    with pytest.raises(ValueError, match="shift must have shape \\[N, G\\] \\(rank 2\\), got rank 1"):
        tin_shift(x, shift[0])
    with pytest.raises(ValueError, match="grad must be 'adjoint' .* or 'mmcv'"):
        tin_shift(x, shift, grad="true")
    with pytest.raises(TypeError, match="x must be float32, float64, float16 or bfloat16"):
        tin_shift(x.long(), shift)


def test_interlace_errors(monkeypatch):
    x, offset, weight = torch.zeros(2, 4, 8, 3), torch.zeros(2, 4), torch.zeros(2, 4, 4)
    with pytest.raises(ValueError, match="batch size of x \\(2\\) and offset \\(1\\) differ"):
        interlace(x, offset[:1], weight)
    with pytest.raises(ValueError, match="C=8 must be a positive multiple of the group count G=3"):
        interlace(x, torch.zeros(2, 3), torch.zeros(2, 4, 3))
    with pytest.raises(TypeError, match="offset must be a floating-point tensor"):
        interlace(x, offset.long(), weight)
    with pytest.raises(TypeError, match="weight must be a floating-point tensor"):
        interlace(x, offset, weight.int())
    with pytest.raises(ValueError, match="weight must have shape \\[N, T, G\\] = \\[2, 4, 4\\]"):
        interlace(x, offset, weight[:, :3])
    with pytest.raises(ValueError, match="offset must have shape \\[N, G\\] \\(rank 2\\)"):
        interlace(x, offset[0], weight)
    with pytest.raises(ValueError, match="x must have shape \\[N, T, C, HW\\]"):
        interlace(x.view(2, 4, 24), offset, weight)
    with pytest.raises(ValueError, match="grad must be"):
        interlace(x, offset, weight, grad="MMCV")
    with pytest.raises(ValueError, match="backend must be one of"):
        interlace(x, offset, weight, backend="cuda")
    monkeypatch.setenv("TINLIB_INTERLACE_BACKEND", "fast")
    with pytest.raises(ValueError, match="TINLIB_INTERLACE_BACKEND must be one of"):
        interlace(x, offset, weight)
    monkeypatch.setenv("TINLIB_INTERLACE_BACKEND", "reference")
    interlace(x, offset, weight)  # explicit override works
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="backend='triton' needs CUDA tensors"):
        interlace(x, offset, weight, backend="triton")


def test_backend_resolution(monkeypatch):
    cpu = torch.zeros(1)
    monkeypatch.delenv("TINLIB_INTERLACE_BACKEND", raising=False)
    assert ops.resolve_backend("auto", cpu) == "reference"
    assert ops.resolve_backend("reference", cpu) == "reference"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv("TINLIB_INTERLACE_BACKEND", "triton")
    assert ops.resolve_backend("auto", cpu) == "triton"
    assert ops.resolve_backend("reference", cpu) == "reference"  # the variable only overrides "auto"


# --- torch.compile / torch.library ----------------------------------------------------------

def test_opcheck_registered_ops():
    x, offset, weight = (t.float().requires_grad_() for t in fractional_case())
    torch.library.opcheck(torch.ops.tinlib.interlace.default, (x, offset, weight, "adjoint", "reference"))
    grad_out = torch.randn(x.shape)
    torch.library.opcheck(torch.ops.tinlib.interlace_backward.default,
                          (grad_out, x.detach(), offset.detach(), weight.detach(), "mmcv", "reference", True, True))


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_torch_compile_traces_through_without_graph_breaks(backend):
    torch._dynamo.reset()

    def block(x, o, w):  # what TemporalInterlace does around the op
        y = interlace(x.sin(), torch.cat([o, -o], 1), torch.cat([w, w], 2), grad="mmcv")
        return (y * y).sum() + tin_shift(x, torch.tensor([[1, 0, -1, 2]]).expand(x.shape[0], 4)).sum()

    x, offset, weight = fractional_case()
    inputs = [x.float(), offset[:, :2].float(), weight[:, :, :2].float()]
    leaves = [t.clone().requires_grad_() for t in inputs]
    expected = block(*leaves)
    grads = torch.autograd.grad(expected, leaves)
    compiled = torch.compile(block, backend=backend, fullgraph=True)  # fullgraph: a break would raise
    leaves = [t.clone().requires_grad_() for t in inputs]
    out = compiled(*leaves)
    torch.testing.assert_close(out, expected)
    for got, want in zip(torch.autograd.grad(out, leaves), grads):
        torch.testing.assert_close(got, want)
