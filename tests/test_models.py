
import pytest
import torch
from torch import nn

from tinlib.models import TemporalInterlace, TemporalShift, build_recognizer, parse_arch
from mmaction_layout import naive_interlace


@pytest.mark.parametrize("arch, classes, expected", [
    # parameter counts of MMAction2's model-zoo metafiles
    ("tin_r50", 174, 23_895_566),
    ("tin_r50", 400, 24_358_640),
    ("tsm_r50", 174, 23_864_558),
    ("tsm_r50", 400, 24_327_632),
    ("tsn_r50", 174, 23_864_558),
])
def test_parameter_counts_match_the_model_zoo(arch, classes, expected):
    model = build_recognizer(arch, classes)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_tin_r50_has_one_interlace_per_block_with_the_published_folds():
    model = build_recognizer("tin_r50", 174)
    folds = [m.fold for m in model.modules() if isinstance(m, TemporalInterlace)]
    assert folds == [16, 64, 64, 64, 128, 128, 128] + [128, 256, 256, 256, 256, 256] + [256, 512, 512]
    assert sum(folds) == 3280
    assert len(model.state_dict()) == 448  # as MMAction2's TIN-R50 checkpoints


def test_tsm_on_deep_resnet_uses_every_second_block_of_layer3():
    model = build_recognizer("tsm_r101", 10)
    shifted = [name for name, m in model.named_modules() if isinstance(m, TemporalShift)]
    layer3 = [n for n in shifted if n.startswith("backbone.layer3.")]
    assert len(layer3) == 12 and "backbone.layer3.1.conv1.temporal" not in layer3
    assert len(shifted) == 3 + 4 + 12 + 3


def test_initialisation_of_new_layers():
    model = build_recognizer("tin_r50", 174)
    tin = model.backbone.layer2[1].conv1.temporal
    assert torch.all(tin.offset_net.fc2.bias == 0.5108)
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


def test_interlace_reproduces_worked_example_b():
    # N=1, T=4, C=8, shift_div=2 -> fold 4, one channel per quarter; x[t][c] = 10(c+1) + (t+1)
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
    offset_grads = [m.offset_net.fc2.weight.grad.abs().sum() for m in model.modules() if isinstance(m, TemporalInterlace)]
    assert all(g > 0 for g in offset_grads)


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
