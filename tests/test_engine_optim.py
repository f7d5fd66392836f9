"""MMAction2's TSM parameter groups (see tinlib.engine.optim) on real recognizers, SGD and gradient clipping."""
import pytest
import torch
from torch import nn

from tinlib.engine.optim import GROUPS, build_optimizer, build_param_groups, clip_gradients, split_parameters
from tinlib.models import build_recognizer


@pytest.fixture(scope="module")
def tin_r50():
    return build_recognizer("tin_r50", 174, 8)


def test_seven_groups_in_order_with_exact_multipliers(tin_r50):
    groups = build_param_groups(tin_r50, lr=0.02, weight_decay=5e-4)
    assert [g["name"] for g in groups] == ["first_conv_weight", "first_conv_bias", "normal_weight", "normal_bias",
                                           "bn", "lr5_weight", "lr10_bias"]
    assert [g["lr"] for g in groups] == pytest.approx([0.02, 0.04, 0.02, 0.04, 0.02, 0.1, 0.2])
    assert [g["weight_decay"] for g in groups] == pytest.approx([5e-4, 0, 5e-4, 0, 0, 5e-4, 0])


def test_group_membership_on_tin_r50(tin_r50):
    split = split_parameters(tin_r50)
    counts = {k: len(v) for k, v in split.items()}
    # stem conv; 52 other Conv2d + 16 x 2 Conv1d + 16 x 2 Linear (fc1, fc2) weights; their 64 biases;
    # 53 BN layers x (weight, bias); fc_cls weight and bias
    assert counts == {"first_conv_weight": 1, "first_conv_bias": 0, "normal_weight": 52 + 32 + 32,
                      "normal_bias": 64, "bn": 106, "lr5_weight": 1, "lr10_bias": 1}
    assert split["first_conv_weight"][0] is tin_r50.backbone.conv1.weight
    assert split["lr5_weight"][0] is tin_r50.cls_head.fc_cls.weight
    assert split["lr10_bias"][0] is tin_r50.cls_head.fc_cls.bias
    offset_fc1 = tin_r50.backbone.layer1[0].conv1.temporal.offset_net.fc1
    assert any(p is offset_fc1.weight for p in split["normal_weight"])
    assert any(p is offset_fc1.bias for p in split["normal_bias"])
    total = sum(p.numel() for ps in split.values() for p in ps)
    assert total == sum(p.numel() for p in tin_r50.parameters()) == 23_895_566


def test_without_fc_lr5_the_classifier_stays_normal():
    model = build_recognizer("tsn_r18", 5, 4)
    split = split_parameters(model, fc_lr5=False)
    assert split["lr5_weight"] == [] and split["lr10_bias"] == []
    assert split["normal_weight"][-1] is model.cls_head.fc_cls.weight


def test_frozen_bn_parameters_are_left_out_and_unknown_modules_refused():
    model = build_recognizer("tsm_r18", 5, 4)
    model.backbone.layer1[0].bn1.weight.requires_grad_(False)
    model.backbone.layer1[0].bn1.bias.requires_grad_(False)
    assert len(split_parameters(model)["bn"]) == 2 * 20 - 2
    model.cls_head.extra = nn.LayerNorm(4)
    with pytest.raises(ValueError, match="LayerNorm"):
        split_parameters(model)


def test_sgd_decays_the_fc_weight_but_not_its_bias():
    model = build_recognizer("tsn_r18", 3, 2)
    opt = build_optimizer(model, lr=0.1, momentum=0.9, weight_decay=0.5)
    fc = model.cls_head.fc_cls
    with torch.no_grad():
        fc.bias.fill_(1.0)
    w0, b0 = fc.weight.detach().clone(), fc.bias.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    # weight: w - lr*5 * wd * w ; bias unchanged (no decay, zero grad)
    assert torch.allclose(fc.weight, w0 * (1 - 0.5 * 0.5))
    assert torch.equal(fc.bias, b0)
    assert len(opt.param_groups) == len(GROUPS)


def test_clip_gradients_limits_the_global_norm():
    a, b = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(4))
    a.grad, b.grad = torch.full((3,), 3.0), torch.full((4,), 4.0)
    norm = clip_gradients([a, b], 2.0)
    assert norm.item() == pytest.approx((27 + 64) ** 0.5)
    assert torch.cat([a.grad, b.grad]).norm().item() == pytest.approx(2.0, rel=1e-4)
    assert clip_gradients([a, b], None) is None


def test_adamw_keeps_the_groups_and_config_checks_the_type():
    import pytest

    from tinlib.config import ConfigError, load_config
    from tinlib.models import build_recognizer

    model = build_recognizer("tin_r18", 3, num_segments=4)
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.01, kind="adamw")
    assert type(opt).__name__ == "AdamW" and [g["name"] for g in opt.param_groups] == [n for n, _, _ in GROUPS]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01 * d for _, _, d in GROUPS]
    with pytest.raises(ValueError, match="sgd' or 'adamw"):
        build_optimizer(model, lr=1e-3, kind="adam")
    assert load_config("demo_tin_r18_synthetic", {"optim.type": "adamw"}).optim.type == "adamw"
    with pytest.raises(ConfigError, match="optim.type"):
        load_config("demo_tin_r18_synthetic", {"optim.type": "adam"})


def test_adamw_runs_fused_on_the_cpu_and_steps_like_the_per_tensor_loop():
    """The fused kernel is an implementation choice: a step must move the weights as PyTorch's
    plain (for-loop) AdamW does with the same groups. One step: Adam divides by the root of the
    squared gradients, so rounding differences of later steps grow where gradients are tiny."""
    import copy

    from tinlib.models import build_recognizer

    torch.manual_seed(0)
    model = build_recognizer("tin_r18", 3, num_segments=4, dropout=0.0, base_channels=16)
    twin, initial = copy.deepcopy(model), copy.deepcopy(model.state_dict())
    fused = build_optimizer(model, lr=1e-2, weight_decay=0.05, fc_lr5=True, kind="adamw")
    assert fused.defaults["fused"] is True
    plain = torch.optim.AdamW(build_param_groups(twin, 1e-2, 0.05, fc_lr5=True), lr=1e-2, weight_decay=0.05,
                              fused=False, foreach=False)
    clips = torch.randn(2, 4, 3, 32, 32)
    for net, opt in ((model, fused), (twin, plain)):
        net(clips).logsumexp(dim=1).sum().backward()
        opt.step()
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6), name
    assert not torch.equal(model.cls_head.fc_cls.weight, initial["cls_head.fc_cls.weight"])
