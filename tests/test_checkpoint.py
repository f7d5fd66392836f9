import hashlib
import os
import sys
import types

import pytest
import torch
import torchvision
from mmaction_layout import expected_tinlib_name, mmaction_state_dict, mmaction_tin_r50_forward

from tinlib.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_pretrained_backbone,
    publish_checkpoint,
    save_checkpoint,
)
from tinlib.models import build_recognizer


@pytest.fixture(scope="module")
def tin_sd():
    return mmaction_state_dict(num_classes=174, kind="tin")


def _assert_landed(model, source: dict, rename) -> None:
    target = model.state_dict()
    for key, value in source.items():
        assert torch.equal(target[rename(key)], value), key


def test_mmaction2_0x_tin_checkpoint_lands_tensor_by_tensor(tmp_path, tin_sd):
    assert len(tin_sd) == 448
    path = tmp_path / "tin_r50_1x1x8_40e_sthv1_rgb_20200729-4a33db86.pth"
    meta = {"mmcv_version": "1.1.0", "epoch": 40, "config": "model = dict(...)"}
    torch.save({"meta": meta, "state_dict": tin_sd}, path)
    model = build_recognizer("tin_r50", 174)
    report = load_checkpoint(model, path, verbose=False)
    assert report.layout == "mmaction2-0.x"
    assert len(report.loaded) == 448 and not report.missing and not report.unexpected
    _assert_landed(model, tin_sd, expected_tinlib_name)


def test_tin_r50_scores_equal_an_independent_mmaction2_forward(tmp_path, tin_sd):
    path = tmp_path / "tin.pth"
    torch.save({"state_dict": tin_sd}, path)
    model = build_recognizer("tin_r50", 174, dropout=0.8).eval()
    load_checkpoint(model, path, verbose=False)
    x = torch.randn(1, 8, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, reference = model(x), mmaction_tin_r50_forward(tin_sd, x)
    assert (ours - reference).abs().max().item() < 1e-4
    assert reference.std() > 1e-3  # the comparison is not between two near-constant outputs


def test_mmaction2_1x_checkpoint_with_mmengine_bookkeeping_loads_safely(tmp_path, tin_sd, monkeypatch):
    # A 1.x file pickles mmengine HistoryBuffer objects in message_hub; build one without mmengine.
    module = types.ModuleType("mmengine.logging.history_buffer")

    class HistoryBuffer:
        def __init__(self):
            self._log_history = [1.0, 2.0]

    HistoryBuffer.__module__, HistoryBuffer.__qualname__ = module.__name__, "HistoryBuffer"
    module.HistoryBuffer = HistoryBuffer
    for name in ("mmengine", "mmengine.logging", "mmengine.logging.history_buffer"):
        monkeypatch.setitem(sys.modules, name, sys.modules.get(name) or types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    path = tmp_path / "tin_1x.pth"
    torch.save({"meta": {"mmengine_version": "0.8.4", "epoch": 40}, "state_dict": tin_sd,
                "message_hub": {"log_scalars": {"train/loss": HistoryBuffer()}}}, path)
    monkeypatch.delitem(sys.modules, module.__name__)
    model = build_recognizer("tin_r50", 174)
    report = load_checkpoint(model, path, verbose=False)
    assert report.layout == "mmaction2-1.x"
    _assert_landed(model, tin_sd, expected_tinlib_name)


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "meta": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        load_checkpoint(build_recognizer("tsn_r18", 3), path)
    assert not marker.exists()


def test_tsm_checkpoint_into_tsm_and_into_tin(tmp_path):
    tsm_sd = mmaction_state_dict(num_classes=400, kind="tsm", seed=3)
    path = tmp_path / "tsm_r50_1x1x8_50e_kinetics400_rgb_20200607-af7fb746.pth"
    torch.save({"state_dict": tsm_sd}, path)
    tsm = build_recognizer("tsm_r50", 400)
    load_checkpoint(tsm, path, verbose=False)
    _assert_landed(tsm, tsm_sd, expected_tinlib_name)

    # fine-tuning TIN from TSM weights (the Kinetics-400 row) is a deliberate change of architecture
    tin = build_recognizer("tin_r50", 400)
    with pytest.raises(CheckpointError, match="holds a tsm model .* is tin_r50"):
        load_checkpoint(tin, path, verbose=False)
    with pytest.raises(CheckpointError, match="missing in checkpoint.*temporal"):
        load_checkpoint(tin, path, verbose=False, allow_arch_mismatch=True)
    report = load_checkpoint(tin, path, allow_missing=[r"\.temporal\."], verbose=False, allow_arch_mismatch=True)
    assert len(report.kept_initial) == 16 * 8
    _assert_landed(tin, tsm_sd, expected_tinlib_name)

    # MMAction2's non-strict fine-tune left the 16 block conv1 weights at their previous values
    tin2 = build_recognizer("tin_r50", 400)
    before = tin2.backbone.layer1[0].conv1.conv.weight.clone()
    report = load_checkpoint(tin2, path, strict=False, tsm_conv1="skip", verbose=False, allow_arch_mismatch=True)
    assert sum(".conv1.conv.net.weight" in k for k in report.skipped) == 16
    assert torch.equal(tin2.backbone.layer1[0].conv1.conv.weight, before)
    assert torch.equal(tin2.backbone.layer1[0].conv2.weight, tsm_sd["backbone.layer1.0.conv2.conv.weight"])


def test_original_tin_repo_checkpoint(tmp_path, tin_sd):
    def original_name(key: str) -> str:
        key = key.replace("cls_head.fc_cls.", "module.new_fc.")
        key = key.replace("backbone.conv1.conv.weight", "backbone.conv1.weight")
        key = key.replace("backbone.conv1.bn.", "backbone.bn1.")
        for a, b in [(".conv1.conv.net1.offset_net.conv.", ".conv1.net1.biasnet.net.conv."),
                     (".conv1.conv.net1.offset_net.fc1.", ".conv1.net1.biasnet.net.fc."),
                     (".conv1.conv.net1.offset_net.fc2.", ".conv1.net1.biasnet.net.lastlayer."),
                     (".conv1.conv.net1.weight_net.conv.", ".conv1.net1.weightnet.net.lastlayer."),
                     (".conv1.conv.net2.", ".conv1.net2."), (".conv2.conv.", ".conv2."), (".conv3.conv.", ".conv3."),
                     (".conv1.bn.", ".bn1."), (".conv2.bn.", ".bn2."), (".conv3.bn.", ".bn3."),
                     (".downsample.conv.", ".downsample.0."), (".downsample.bn.", ".downsample.1.")]:
            key = key.replace(a, b)
        return key.replace("backbone.", "module.base_model.")

    original = {original_name(k): v for k, v in tin_sd.items()}
    assert "module.base_model.layer4.2.conv1.net1.weightnet.net.lastlayer.weight" in original
    path = tmp_path / "ckpt.best.pth.tar"
    torch.save({"epoch": 40, "arch": "resnet50", "state_dict": original, "best_prec1": 44.0,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.02}]}}, path)
    model = build_recognizer("tin_r50", 174)
    report = load_checkpoint(model, path, verbose=False)
    assert report.layout == "tin-original"
    _assert_landed(model, tin_sd, expected_tinlib_name)


def test_torchvision_weights_land_inside_every_wrapper(tmp_path):
    resnet = torchvision.models.resnet50()
    for p in resnet.parameters():
        torch.nn.init.normal_(p)
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(resnet.state_dict(), path)
    for arch in ("tin_r50", "tsm_r50", "tsn_r50"):
        model = build_recognizer(arch, 10, pretrained=str(path))
        target = model.state_dict()
        for key, value in resnet.state_dict().items():
            if key.startswith("fc."):
                continue
            name = "backbone." + key
            if name not in target:
                name = name.replace(".conv1.weight", ".conv1.conv.weight")
            assert torch.equal(target[name], value), (arch, key)


def test_pretrained_source_errors(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        build_recognizer("tsn_r18", 3, pretrained=str(tmp_path / "missing.pth"))
    with pytest.raises(CheckpointError, match="unknown pretrained source"):
        load_pretrained_backbone(build_recognizer("tsn_r18", 3), "hub://something")


def test_class_count_mismatch_is_reported(tmp_path):
    model = build_recognizer("tsm_r18", 5)
    path = save_checkpoint(tmp_path / "m.pth", model)
    with pytest.raises(CheckpointError, match=r"shape mismatch.*cls_head.fc_cls.weight \[5, 512\] vs model"):
        load_checkpoint(build_recognizer("tsm_r18", 7), path, verbose=False)


def test_own_checkpoints_roundtrip_between_tsm_and_tsn(tmp_path):
    torch.manual_seed(0)
    tsm = build_recognizer("tsm_r18", 5)
    path = save_checkpoint(tmp_path / "tsm.pth", tsm, meta={"epoch": 3})
    tsn = build_recognizer("tsn_r18", 5)
    report = load_checkpoint(tsn, path, verbose=False, allow_arch_mismatch=True)  # refused without it
    assert report.layout == "tinlib"
    assert torch.equal(tsn.backbone.layer2[0].conv1.weight, tsm.backbone.layer2[0].conv1.conv.weight)
    again = build_recognizer("tsm_r18", 5)
    load_checkpoint(again, path, verbose=False)
    for (k, a), b in zip(tsm.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k


def test_publish_names_file_with_sha256_prefix(tmp_path):
    model = build_recognizer("tsn_r18", 3)
    src = save_checkpoint(tmp_path / "latest.pth", model, optimizer={"state": {}})
    released = publish_checkpoint(src, tmp_path / "release", "tsn_r18_demo_20261124")
    assert released.name == f"tsn_r18_demo_20261124-{hashlib.sha256(released.read_bytes()).hexdigest()[:8]}.pth"
    assert "optimizer" not in torch.load(released, weights_only=True)
