"""Recognizers: parameter counts and layer layout derived from ResNet shapes, TIN's initialisation,
the interlace against hand-computed values, shapes of the test modes, gradients."""
import pytest
import torch
import torchvision
from mmaction_layout import naive_interlace
from torch import nn

from tinlib.models import TemporalInterlace, TemporalShift, build_recognizer, parse_arch


def _resnet50_blocks():
    """torchvision's ResNet-50 (He et al. 2016: bottleneck stages of 3, 4, 6 and 3 blocks)."""
    net = torchvision.models.resnet50()
    return net, [block for layer in (net.layer1, net.layer2, net.layer3, net.layer4) for block in layer]


def _tin_block_parameters(fold: int, t: int) -> int:
    """Parameters TIN adds in front of one block, from its layer shapes: OffsetNet = Conv1d(F, 1, 3)
    + Linear(T, T) + Linear(T, 2); WeightNet = Conv1d(F, 2, 3) (weights and biases)."""
    return (3 * fold + 1) + (t * t + t) + (2 * t + 2) + (6 * fold + 2)


def _expected_parameters(arch: str, classes: int, t: int = 8) -> int:
    """ResNet-50 with a ``classes``-way fc (TSM's shift adds nothing; TSN is the plain ResNet), plus
    for TIN one interlace per block on a quarter of the block's input channels."""
    net, blocks = _resnet50_blocks()
    plain = sum(p.numel() for p in net.parameters()) - net.fc.weight.numel() - net.fc.bias.numel()
    total = plain + 2048 * classes + classes
    if arch == "tin_r50":
        total += sum(_tin_block_parameters(block.conv1.in_channels // 4, t) for block in blocks)
    return total


@pytest.mark.parametrize("arch, classes, published", [
    # "params" of MMAction2 0.x's model-zoo metafiles: configs/recognition/tin/metafile.yml (sthv1/sthv2
    # rows: 174 classes; Kinetics-400 row: 400), configs/recognition/tsm/metafile.yml (Something-Something
    # and Kinetics-400 R50 1x1x8 rows), configs/recognition/tsn/metafile.yml (R50 1x1x8 sthv2 row)
    ("tin_r50", 174, 23_895_566),
    ("tin_r50", 400, 24_358_640),
    ("tsm_r50", 174, 23_864_558),
    ("tsm_r50", 400, 24_327_632),
    ("tsn_r50", 174, 23_864_558),
])
def test_parameter_counts_follow_from_the_layer_shapes_and_match_the_model_zoo(arch, classes, published):
    expected = _expected_parameters(arch, classes)
    assert expected == published  # the derivation above reproduces the published figure
    model = build_recognizer(arch, classes)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_tin_r50_has_one_interlace_per_block_on_a_quarter_of_its_input():
    model = build_recognizer("tin_r50", 174)
    folds = [m.fold for m in model.modules() if isinstance(m, TemporalInterlace)]
    net, blocks = _resnet50_blocks()
    assert folds == [block.conv1.in_channels // 4 for block in blocks]  # shift_div 4, every block
    # the state dict: torchvision's ResNet-50 entries (fc included) plus the 8 tensors of each
    # interlace (weight and bias of OffsetNet's conv, fc1, fc2 and of WeightNet's conv)
    assert len(model.state_dict()) == len(net.state_dict()) + 8 * len(blocks)
    assert len(model.state_dict()) == 448  # the number of tensors in MMAction2's published TIN-R50 checkpoints


def test_tsm_on_deep_resnet_uses_every_second_block_of_layer3():
    model = build_recognizer("tsm_r101", 10)
    shifted = [name for name, m in model.named_modules() if isinstance(m, TemporalShift)]
    layer3 = [n for n in shifted if n.startswith("backbone.layer3.")]
    # ResNet-101 has 3, 4, 23 and 3 blocks; TSM shifts in blocks 0, 2, ..., 22 of layer3 only
    assert layer3 == [f"backbone.layer3.{i}.conv1.temporal" for i in range(0, 23, 2)]
    assert len(shifted) == 3 + 4 + 12 + 3


def test_initialisation_of_new_layers():
    model = build_recognizer("tin_r50", 174)
    tin = model.backbone.layer2[1].conv1.temporal
    # MMAction2's OffsetNet starts fc2's bias at 0.5108 ~ ln(5/3), so that the first offsets,
    # 4 * (sigmoid(0.5108) - 0.5), are half a frame
    assert torch.all(tin.offset_net.fc2.bias == 0.5108)
    assert 4 * (torch.sigmoid(torch.tensor(0.5108)) - 0.5) == pytest.approx(0.5, abs=1e-4)
    assert torch.all(tin.weight_net.conv.bias == 0)
    assert torch.all(model.cls_head.fc_cls.bias == 0)
    assert model.cls_head.fc_cls.weight.std().item() == pytest.approx(0.001, rel=0.05)


def test_temporal_shift_moves_one_eighth_each_way():
    shift = TemporalShift(num_segments=4, shift_div=8)
    x = torch.arange(4 * 16, dtype=torch.float32).reshape(4, 16, 1, 1)  # [T, C] per video
    out = shift(x).reshape(4, 16)
    ref = x.reshape(4, 16)
    assert torch.equal(out[:3, :2], ref[1:, :2]) and torch.all(out[3, :2] == 0)  # from the next frame
    assert torch.equal(out[1:, 2:4], ref[:3, 2:4]) and torch.all(out[0, 2:4] == 0)  # from the previous
    assert torch.equal(out[:, 4:], ref[:, 4:])


class _Fixed(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, pooled):
        return self.value.expand(pooled.shape[0], *self.value.shape[1:])


def test_interlace_on_a_hand_computed_example():
    # N=1, T=4, C=8, shift_div=2 -> fold 4, one channel per quarter; x[t][c] = 10(c+1) + (t+1).
    # Quarter q of the fold is shifted by +o0, +o1, -o0, -o1 and scaled by the weight of its
    # offset group: out[t][q] = w[t][g] * x(t - shift), x linearly interpolated, 0 outside [0, T).
    # E.g. out[0][0] = 1.0 * (0.7 * x[0][0] + 0.3 * 0) = 7.7 and out[1][0] = 1.2 * (0.3 * 11 + 0.7 * 12)
    # = 14.04; the channels after the fold pass through.
    tin = TemporalInterlace(8, num_segments=4, shift_div=2)
    tin.offset_net = _Fixed(torch.tensor([[0.3, -1.25]]))
    tin.weight_net = _Fixed(torch.tensor([[[1.0, 0.5], [1.2, 0.8], [0.9, 1.1], [1.5, 0.25]]]))
    x = torch.tensor([[10.0 * (c + 1) + (t + 1) for c in range(8)] for t in range(4)]).reshape(4, 8, 1, 1)
    out = tin(x).reshape(4, 8)
    expected = torch.tensor([
        [7.7, 11.125, 31.3, 0.0, 51, 61, 71, 81],
        [14.04, 18.6, 38.76, 24.6, 52, 62, 72, 82],
        [11.43, 19.8, 29.97, 45.925, 53, 63, 73, 83],
        [20.55, 0.0, 35.7, 10.6875, 54, 64, 74, 84],
    ])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)


def test_tin_block_equals_direct_formula_computation():
    torch.manual_seed(0)
    model = build_recognizer("tin_r50", 5).eval()
    block_conv = model.backbone.layer2[1].conv1  # C_in 512, fold 128
    tin = block_conv.temporal
    with torch.no_grad():
        tin.offset_net.fc2.weight.normal_(0, 2.0)  # spread the offsets over (-2, 2)
        tin.weight_net.conv.weight.normal_(0, 0.5)
    x = torch.randn(2 * 8, 512, 5, 3)
    with torch.no_grad():
        pooled = x[:, :128].reshape(2, 8, 128, 5, 3).mean(dim=(3, 4)).transpose(1, 2)
        offsets, weights = tin.offset_net(pooled), tin.weight_net(pooled)
        expected = naive_interlace(x.reshape(2, 8, 512, 5, 3), offsets, weights, 128).reshape(16, 512, 5, 3)
        torch.testing.assert_close(tin(x), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(block_conv(x), block_conv.conv(expected), rtol=1e-4, atol=1e-4)
    assert offsets.abs().max() < 2 and offsets.abs().max() > 0.5
    assert (weights > 0).all() and (weights < 2).all()


@pytest.mark.parametrize("arch", ["tin_r18", "tsm_r18", "tsn_r18", "tin_r34"])
def test_recognizer_shapes_and_test_modes(arch):
    torch.manual_seed(0)
    model = build_recognizer(arch, 7, num_segments=4).eval()
    x = torch.randn(2, 4, 3, 32, 32)
    scores = model(x)
    assert scores.shape == (2, 7)
    torch.testing.assert_close(model.predict(x, average_clips=None), scores)
    views = torch.cat([x, x.flip(1)], dim=1)  # two views of 4 segments
    per_view = model.view_scores(views)
    assert per_view.shape == (2, 2, 7)
    torch.testing.assert_close(model.predict(views, "score"), per_view.mean(1))
    torch.testing.assert_close(model.predict(views, "prob"), per_view.softmax(-1).mean(1))
    with pytest.raises(ValueError, match="use 'prob' or 'score'"):
        model.predict(views, None)


def test_gradients_reach_every_parameter_of_tin():
    torch.manual_seed(0)
    model = build_recognizer("tin_r18", 3, num_segments=4, dropout=0.0)
    loss = nn.functional.cross_entropy(model(torch.randn(2, 4, 3, 32, 32)), torch.tensor([0, 2]))
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert dead == []
    # the offsets' gradient reaches every OffsetNet: fc2's bias gets it through the sigmoid (its weight
    # also times relu(fc1), which is zero where all of fc1's few units happen to be off for the batch)
    offset_grads = [m.offset_net.fc2.bias.grad.abs().sum() for m in model.modules()
                    if isinstance(m, TemporalInterlace)]
    assert len(offset_grads) == 8 and all(g > 0 for g in offset_grads)


def test_bad_arch_and_bad_input_have_clear_errors():
    with pytest.raises(ValueError, match="unknown arch 'tin_r51'"):
        parse_arch("tin_r51")
    model = build_recognizer("tsn_r18", 3, num_segments=4)
    with pytest.raises(ValueError, match="not a multiple of num_segments=4"):
        model(torch.randn(1, 6, 3, 32, 32))
    with pytest.raises(ValueError, match=r"expected frames \[B, V\*T, 3, H, W\]"):
        model(torch.randn(4, 3, 32, 32))
    with pytest.raises(ValueError, match="positive multiple of 4"):
        TemporalInterlace(8, shift_div=4)


# --- the TIN module as one op (tinlib.ops.tin_block) -------------------------------------------
# Contiguous float32/float64 input on the eager backend runs the whole module (pooling, nets,
# interlace, pass-through channels) as one op; anything else composes the steps. Both must compute
# the same function, with the same gradients in both grad modes.

def _spread_tin(channels: int, t: int, grad: str) -> TemporalInterlace:
    """A float64 TIN module whose offsets spread over (-2, 2) and weights over (0, 2)."""
    tin = TemporalInterlace(channels, t, 4, grad=grad).double()
    with torch.no_grad():
        tin.offset_net.fc1.bias.normal_(0, 1.0)
        tin.offset_net.fc2.weight.normal_(0, 3.0)
        tin.weight_net.conv.weight.normal_(0, 0.5)
    return tin


def _run(tin: nn.Module, x: torch.Tensor, grad_y: torch.Tensor, x_grad: bool = True, param_grads: bool = True,
         call=None):
    """Output, x's gradient and the gradients of tin's parameters of one forward (tin, or `call`
    computing with tin's parameters) + backward."""
    tin.zero_grad(set_to_none=True)
    for p in tin.parameters():
        p.requires_grad_(param_grads)
    leaf = x.detach().clone().requires_grad_(x_grad)
    y = (tin if call is None else call)(leaf)
    y.backward(grad_y)
    return [y.detach(), leaf.grad] + [p.grad for p in tin.parameters()]


@pytest.fixture
def one_op_calls(monkeypatch):
    """Counts the forwards that ran as one op."""
    from tinlib.ops import tin_block

    calls = []
    forward = tin_block._forward

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(tin_block, "_forward", counted)
    return calls


@pytest.mark.parametrize("grad", ["adjoint", "mmcv"])
@pytest.mark.parametrize("n, t, c, h, w", [(2, 8, 64, 5, 3), (3, 4, 32, 2, 2), (2, 1, 16, 3, 2)])
def test_tin_as_one_op_equals_the_composed_steps(one_op_calls, grad, n, t, c, h, w):
    torch.manual_seed(0)
    tin = _spread_tin(c, t, grad)
    x = torch.randn(n * t, c, h, w, dtype=torch.float64)
    grad_y = torch.randn_like(x)
    tin.record = True
    fused = _run(tin, x, grad_y)
    fused_record = (tin.last_offsets, tin.last_weights)
    assert len(one_op_calls) == 1
    # channels-last input is not NCHW-contiguous: the steps are composed (same values, other strides)
    composed = _run(tin, x.contiguous(memory_format=torch.channels_last), grad_y)
    assert len(one_op_calls) == 1
    for got, want in zip(fused, composed):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fused_record, (tin.last_offsets, tin.last_weights), rtol=1e-12, atol=1e-12)
    assert tin.last_offsets.abs().max() > 0.8  # the offsets spread over several integer shifts
    # only some gradients asked for
    for x_grad, param_grads in ((True, False), (False, True)):
        partial = _run(tin, x, grad_y, x_grad, param_grads)
        expected = [g if (i == 1 and x_grad) or (i > 1 and param_grads) or i == 0 else None
                    for i, g in enumerate(fused)]
        for got, want in zip(partial, expected):
            assert (got is None) == (want is None)
            if want is not None:
                torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dots", ["fused", "public ops"])
def test_tin_as_one_op_has_the_true_gradient_of_the_module(one_op_calls, monkeypatch, dots):
    """Adjoint mode: the gradients are autograd's through the module written with standard ops
    (functional nets on the module's parameters, tinlib.ops.interlace_composite, cat), with the
    offset/weight gradients' dot products from the private aten op or from public ops."""
    from tinlib.ops import _common, interlace_composite

    if dots == "public ops":
        def unreachable(*args):
            raise AssertionError("the private aten op ran although it is reported missing")

        monkeypatch.setattr(_common, "FUSED_DOTS", False)
        monkeypatch.setattr(torch.ops.aten, "_embedding_bag_per_sample_weights_backward", unreachable)

    torch.manual_seed(1)
    n, t, c, h, w = 2, 8, 32, 3, 4
    tin = _spread_tin(c, t, "adjoint")
    off, wgt, fold = tin.offset_net, tin.weight_net, c // 4

    def reference(x):
        pooled = x[:, :fold].reshape(n, t, fold, h, w).mean((3, 4)).transpose(1, 2)  # [N, F, T]
        z = nn.functional.conv1d(pooled, off.conv.weight, off.conv.bias, padding=1).flatten(1)
        z = nn.functional.linear(torch.relu(nn.functional.linear(z, off.fc1.weight, off.fc1.bias)),
                                 off.fc2.weight, off.fc2.bias)
        offsets = 4 * (torch.sigmoid(z) - 0.5)
        weights = 2 * torch.sigmoid(nn.functional.conv1d(pooled, wgt.conv.weight, wgt.conv.bias, padding=1))
        weights = weights.transpose(1, 2)
        y = interlace_composite(x[:, :fold].reshape(n, t, fold, h * w), torch.cat([offsets, -offsets], 1),
                                torch.cat([weights, weights], 2))
        return torch.cat([y.reshape(n * t, fold, h, w), x[:, fold:]], 1)

    x = torch.randn(n * t, c, h, w, dtype=torch.float64)
    grad_y = torch.randn_like(x)
    for got, want in zip(_run(tin, x, grad_y), _run(tin, x, grad_y, call=reference)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert len(one_op_calls) == 1


def test_tin_as_one_op_copies_the_other_channels_exactly_and_infers_like_it_trains(one_op_calls):
    torch.manual_seed(2)
    tin = TemporalInterlace(64, 8, 4)
    x = torch.randn(16, 64, 7, 7) * 1e3
    y = tin(x)
    assert torch.equal(y[:, 16:], x[:, 16:])
    with torch.no_grad():  # no backward to come: the gradient's bookkeeping is skipped
        assert torch.equal(tin(x), y)
    assert len(one_op_calls) == 2


def test_tin_composes_the_steps_where_one_op_does_not_apply(one_op_calls):
    torch.manual_seed(3)
    tin = TemporalInterlace(32, 4, 4)
    x = torch.randn(8, 32, 4, 4)
    expected = tin(x)
    assert len(one_op_calls) == 1
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast keeps its own dtype rules
        tin(x)
    tin(x[:, :, :, :3])  # a non-contiguous slice
    torch.testing.assert_close(tin(x.contiguous(memory_format=torch.channels_last)), expected)
    with torch.device("meta"):  # shape inference
        assert TemporalInterlace(32, 4, 4)(torch.empty(8, 32, 4, 4)).shape == (8, 32, 4, 4)
    assert len(one_op_calls) == 1
    # hooks on the nets or their layers must run: the one op does not call them
    seen = []
    for layer in (tin.offset_net, tin.weight_net.conv, tin.offset_net.fc1):
        handle = layer.register_forward_hook(lambda module, args, out: seen.append(out))
        torch.testing.assert_close(tin(x), expected)
        handle.remove()
    handle = nn.modules.module.register_module_forward_hook(lambda module, args, out: seen.append(out))
    tin(x)
    handle.remove()
    # the global hook saw the module and its seven sub-modules (two nets; conv, fc1, relu, fc2; conv)
    assert len(seen) == 3 + 8 and len(one_op_calls) == 1
    tin(x)
    assert len(one_op_calls) == 2


def test_without_torchs_hook_registries_the_steps_are_composed(one_op_calls, monkeypatch):
    """Where the one-op path cannot see torch's (private) hook registries it composes the steps,
    which call the nets with public module calls: the same values and gradients as the one op."""
    from tinlib.models import temporal

    torch.manual_seed(6)
    tin = _spread_tin(32, 4, "adjoint")
    x = torch.randn(8, 32, 3, 5, dtype=torch.float64)
    grad_y = torch.randn_like(x)
    fused = _run(tin, x, grad_y)
    assert len(one_op_calls) == 1
    monkeypatch.setattr(temporal, "HOOKS_VISIBLE", False)
    composed = _run(tin, x, grad_y)
    assert len(one_op_calls) == 1
    for got, want in zip(composed, fused):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("grad", ["adjoint", "mmcv"])
def test_tin_as_one_op_under_torch_compile(grad):
    """torch.compile traces the module without graph breaks (the op is a torch.library op there)."""
    from tinlib.ops import tin_block

    torch._dynamo.reset()
    torch.manual_seed(4)
    tin = _spread_tin(32, 4, grad)
    x = torch.randn(8, 32, 3, 5, dtype=torch.float64)
    grad_y = torch.randn_like(x)
    expected = _run(tin, x, grad_y)
    compiled = torch.compile(tin, backend="aot_eager", fullgraph=True)
    for got, want in zip(_run(tin, x, grad_y, call=compiled), expected):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # the op's fake (meta) implementation, autograd registration and schema
    params = tin._block_params(x)
    assert params is not None and list(params) == list(tin.parameters())  # NetParams is the modules' order
    torch.library.opcheck(torch.ops.tinlib.tin_block.default,
                          (x.clone().requires_grad_(), *[p.detach().clone().requires_grad_() for p in params], 4, 4,
                           grad))
    assert tin_block.NetParams._fields[0] == "offset_conv_weight"


def test_tin_infers_like_it_trains_under_inference_mode(one_op_calls):
    """The one op without a backward to come (no gradient taps) gives the grad-enabled forward's values."""
    torch.manual_seed(5)
    tin = _spread_tin(32, 4, "adjoint")
    x = torch.randn(8, 32, 3, 5, dtype=torch.float64, requires_grad=True)
    y = tin(x)
    with torch.inference_mode():
        inferred = tin(x.detach())
    assert len(one_op_calls) == 2 and torch.equal(inferred, y.detach())
