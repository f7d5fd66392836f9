"""The backbone's width and stage options (``model.base_channels``, ``model.num_stages``), used by
the CPU demo to make a small ResNet-18."""
import math

import pytest
import torch
import torchvision
from torchvision.models import resnet18

from tinlib.config import ConfigError, load_config
from tinlib.models import build_recognizer
from tinlib.models.backbone import ResNetBackbone, build_backbone

# torchvision's ResNet-18 has 11,689,512 parameters (its model table), 513,000 of them in the
# 1000-class fc layer (512 x 1000 + 1000).
TORCHVISION_R18_PARAMS = 11_689_512
TORCHVISION_R18_FC = 512 * 1000 + 1000


def resnet18_backbone_params(width: int, stages: int = 4) -> int:
    """Parameters of a ResNet-18 trunk whose stages are width x (1, 2, 4, 8), counted by hand:
    the 7x7 stem conv + BN, then two BasicBlocks per stage (two 3x3 convs + two BNs, and a 1x1 conv
    + BN shortcut where the width or stride changes)."""
    total = 3 * 7 * 7 * width + 2 * width
    cin = width
    for stage in range(stages):
        cout = width * 2 ** stage
        for block in range(2):
            total += 9 * cin * cout + 9 * cout * cout + 4 * cout
            if block == 0 and (stage > 0):
                total += cin * cout + 2 * cout
            cin = cout
    return total


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_the_hand_count_matches_torchvision_at_the_standard_width():
    assert resnet18_backbone_params(64) == TORCHVISION_R18_PARAMS - TORCHVISION_R18_FC
    assert count(ResNetBackbone(18)) == TORCHVISION_R18_PARAMS - TORCHVISION_R18_FC


@pytest.mark.parametrize("width,stages", [(32, 4), (16, 4), (64, 3), (32, 2)])
def test_width_and_stages_give_the_counted_trunk(width, stages):
    backbone = ResNetBackbone(18, base_channels=width, num_stages=stages)
    assert count(backbone) == resnet18_backbone_params(width, stages)
    assert backbone.out_channels == width * 2 ** (stages - 1)
    features = backbone(torch.randn(2, 3, 64, 64))
    stride = 4 * 2 ** (stages - 1)
    assert features.shape == (2, width * 2 ** (stages - 1), 64 // stride, 64 // stride)


def test_standard_width_keeps_torchvision_names_and_shapes():
    ours = ResNetBackbone(18).state_dict()
    theirs = {k: v for k, v in resnet18().state_dict().items() if not k.startswith("fc.")}
    assert [(k, v.shape) for k, v in ours.items()] == [(k, v.shape) for k, v in theirs.items()]  # in order


@pytest.mark.parametrize("depth", [18, 50])
def test_standard_width_computes_torchvisions_features(depth):
    """Given torchvision's weights, the backbone computes torchvision's ResNet up to its last stage."""
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, f"resnet{depth}")().double().eval()
    with torch.no_grad():
        for norm in (m for m in theirs.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            norm.weight.uniform_(0.5, 1.5), norm.bias.normal_(0, 0.1)
            norm.running_mean.normal_(0, 0.1), norm.running_var.uniform_(0.5, 1.5)
    ours = ResNetBackbone(depth).double().eval()
    ours.load_state_dict({k: v for k, v in theirs.state_dict().items() if not k.startswith("fc.")})
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        features = theirs.maxpool(theirs.relu(theirs.bn1(theirs.conv1(x))))
        for stage in (theirs.layer1, theirs.layer2, theirs.layer3, theirs.layer4):
            features = stage(features)
        assert torch.equal(ours(x), features)


def test_narrow_stem_gets_the_same_initialization_as_the_other_convs():
    torch.manual_seed(0)
    stem = ResNetBackbone(18, base_channels=32).conv1.weight
    # kaiming normal, fan_out mode: std = sqrt(2 / (out_channels x 7 x 7))
    assert stem.shape == (32, 3, 7, 7)
    assert stem.std().item() == pytest.approx(math.sqrt(2 / (32 * 49)), rel=0.1)


def test_temporal_modules_follow_the_narrow_stages():
    tin = build_backbone("tin", 18, num_segments=8, base_channels=32, num_stages=3)
    temporal = [b.conv1.temporal for stage in tin.stages() for b in stage]
    assert len(temporal) == 6
    assert [t.in_channels for t in temporal] == [32, 32, 32, 64, 64, 128]
    model = build_recognizer("tin_r18", 5, 8, base_channels=32)
    assert model.cls_head.fc_cls.in_features == 256
    assert model(torch.randn(1, 8, 3, 32, 32)).shape == (1, 5)


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="num_stages"):
        ResNetBackbone(18, num_stages=5)
    with pytest.raises(ValueError, match="base_channels"):
        ResNetBackbone(18, base_channels=0)
    with pytest.raises(ConfigError, match="model.num_stages"):
        load_config("demo_tin_r18_synthetic", {"model.num_stages": 0})
    with pytest.raises(ConfigError, match="model.base_channels"):
        load_config("demo_tin_r18_synthetic", {"model.base_channels": -8})
