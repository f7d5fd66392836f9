"""Bad checkpoint files and checkpoints of another architecture: each is refused with one line that
names the file, says what is wrong and what to do; ``--trust-checkpoint`` is advised only for a
readable checkpoint that holds objects the safe loader refuses.

Facts used below: ``torch.save`` writes a zip archive by default (the archive's directory is at its
end, so a cut-off file has none) and a sequence of pickles with ``_use_new_zipfile_serialization=False``
(the legacy format). MMAction2 (0.x) stores the config text under ``meta['config']`` and its name
under ``meta['config_name']``; 1.x stores the config text under ``meta['cfg']``; the backbone types
are ``ResNetTIN`` (TIN), ``ResNetTSM`` (TSM, ``shift_div`` 8 by default) and ``ResNet`` (TSN)."""
import argparse
import io
import pickle
import random
import zipfile

import pytest
import torch
from mmaction_layout import mmaction_state_dict
from torch import nn

from tinlib.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from tinlib.cli import run_command
from tinlib.errors import UserError
from tinlib.models import build_recognizer


class CustomMeta:
    """A class of this test module: pickled by reference, so the safe loader refuses it."""

    def __init__(self, note: str = "made by a test"):
        self.note = note


def _small_checkpoint(path, legacy: bool = False):
    """A real training checkpoint of a small model (weights, meta and optimizer state)."""
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.Flatten(), nn.Linear(16, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 3, 3)).sum().backward()
    optimizer.step()
    if not legacy:
        return save_checkpoint(path, model, meta={"epoch": 3}, optimizer=optimizer.state_dict())
    torch.save({"state_dict": model.state_dict(), "meta": {"epoch": 3}, "optimizer": optimizer.state_dict()}, path,
               _use_new_zipfile_serialization=False)
    return path


def _cut_point(size: int, keep: float) -> int:
    """Bytes to keep: ``keep`` itself when a positive int, ``size + keep`` when negative, a fraction
    of ``size`` when a float."""
    if isinstance(keep, float):
        return int(size * keep)
    return keep if keep > 0 else size + keep


def _refusal(path, trusted: bool = False) -> str:
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path, trusted=trusted)
    assert isinstance(info.value, UserError)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


# --------------------------------------------------------------------------------------------
# Bad files
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [1, 100, 0.3, 0.5, 0.9, -22, -1])
def test_truncated_zip_checkpoint(tmp_path, keep):
    full = _small_checkpoint(tmp_path / "full.pth").read_bytes()
    assert full.startswith(b"PK\x03\x04")  # the zip format
    cut = _cut_point(len(full), keep)
    path = tmp_path / "cut.pth"
    path.write_bytes(full[:cut])
    for trusted in (False, True):
        message = _refusal(path, trusted)
        assert "is truncated" in message and "download or save it again" in message
        assert "trust" not in message.lower()


@pytest.mark.parametrize("keep", [5, 40, 0.3, 0.7, -3])
def test_truncated_legacy_checkpoint(tmp_path, keep):
    full = _small_checkpoint(tmp_path / "full.pth", legacy=True).read_bytes()
    assert full.startswith(b"\x80")  # a pickle, not a zip
    cut = _cut_point(len(full), keep)
    path = tmp_path / "cut.pth"
    path.write_bytes(full[:cut])
    for trusted in (False, True):
        message = _refusal(path, trusted)
        assert "is truncated" in message and "download or save it again" in message
        assert "trust" not in message.lower()


def test_intact_files_of_both_formats_load(tmp_path):
    for legacy in (False, True):
        path = _small_checkpoint(tmp_path / f"ok{legacy}.pth", legacy=legacy)
        assert read_checkpoint(path)["meta"]["epoch"] == 3


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pth"
    path.touch()
    message = _refusal(path)
    assert "is empty (0 bytes)" in message and "download or save it again" in message
    assert "trust" not in message.lower()


def test_random_bytes(tmp_path):
    data = random.Random(0).randbytes(4096)
    data = b"\x13" + data[1:]  # neither a zip ("PK") nor a pickle (0x80) header
    path = tmp_path / "noise.pth"
    path.write_bytes(data)
    for trusted in (False, True):
        message = _refusal(path, trusted)
        assert "is not a PyTorch checkpoint" in message and "check the path" in message
        assert "trust" not in message.lower()


def test_random_bytes_behind_a_pickle_header(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(b"\x80\x02" + random.Random(1).randbytes(4096))
    message = _refusal(path)
    assert ("is not a PyTorch checkpoint" in message or "is truncated" in message)
    assert "trust" not in message.lower()


def test_html_page_saved_by_a_failed_download(tmp_path):
    path = tmp_path / "tin.pth"
    path.write_text("<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n")
    message = _refusal(path)
    assert "is not a PyTorch checkpoint" in message and "HTML page" in message


def test_plain_pickle_and_other_zip_are_not_checkpoints(tmp_path):
    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=2))
    assert "is a Python pickle but not a PyTorch checkpoint" in _refusal(plain)
    other = tmp_path / "other.pth"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes/readme.txt", "hello")
    other.write_bytes(buffer.getvalue())
    message = _refusal(other)
    assert "zip archive but not a PyTorch checkpoint" in message and "trust" not in message.lower()


def test_missing_file_and_folder(tmp_path):
    assert "checkpoint not found" in _refusal(tmp_path / "nowhere.pth")
    assert f"{tmp_path} is a directory, not a checkpoint file; give the .pth inside it" in _refusal(tmp_path)



def test_a_folder_names_a_checkpoint_it_holds(tmp_path):
    """The same words from the resolver every command uses (hub.resolve_checkpoint) and from
    read_checkpoint: the folder's latest.pth as the example, else a .pth it holds."""
    from tinlib.hub import resolve_checkpoint

    runs = tmp_path / "runs"
    runs.mkdir()
    _small_checkpoint(runs / "epoch_3.pth")
    expected = f"{runs} is a directory, not a checkpoint file; give the .pth inside it (e.g. {runs / 'epoch_3.pth'})"
    with pytest.raises(UserError) as info:
        resolve_checkpoint(runs)
    assert str(info.value) == expected == _refusal(runs)
    _small_checkpoint(runs / "latest.pth")
    assert _refusal(runs).endswith(f"(e.g. {runs / 'latest.pth'})")


def test_the_checkpoints_a_config_starts_from_are_resolved_with_the_same_words(tmp_path):
    from tinlib.config import load_config
    from tinlib.engine.build import check_model_checkpoints
    from tinlib.engine.errors import RunError

    (tmp_path / "runs").mkdir()
    for key in ("load_from", "pretrained"):
        cfg = load_config("demo_tin_r18_synthetic", [f"model.{key}={tmp_path / 'runs'}"])
        with pytest.raises(RunError) as info:
            check_model_checkpoints(cfg)
        assert str(info.value) == (f"model.{key}: {tmp_path / 'runs'} is a directory, not a checkpoint file; give "
                                   f"the .pth inside it (e.g. {tmp_path / 'runs' / 'latest.pth'})")
    check_model_checkpoints(load_config("demo_tin_r18_synthetic", ["model.pretrained=torchvision://resnet18"]))

def test_a_checkpoint_of_another_class_count_is_one_line_naming_the_head(tmp_path):
    """The head [num_classes, features] is the only tensor whose shape differs: its shapes and the
    config keys that make it load, not a list of missing tensors."""
    from tinlib.checkpoint import MisfitError, describe_misfit

    path = save_checkpoint(tmp_path / "seven.pth", build_recognizer("tsm_r18", 7))
    model = build_recognizer("tsm_r18", 5)
    with pytest.raises(MisfitError) as info:
        load_checkpoint(model, path, verbose=False)
    message = str(info.value)
    assert "\n" not in message and "missing" not in message and info.value.report.head_classes() == 7
    assert message == (f"{path}: the checkpoint has 7 classes but the model has model.num_classes=5 (shape mismatch: "
                       "cls_head.fc_cls.weight [7, 512] vs model cls_head.fc_cls.weight [5, 512]); --set "
                       "model.num_classes=7 to match the checkpoint, or --set model.load_strict=false to load what "
                       "fits (strict=False in Python)")
    assert describe_misfit(model, read_checkpoint(path), path, "this config").startswith(
        "the checkpoint has 7 classes but this config has model.num_classes=5")
    assert describe_misfit(build_recognizer("tsm_r18", 7), read_checkpoint(path), path) == ""
    tin = describe_misfit(build_recognizer("tin_r18", 7), read_checkpoint(path), path)
    assert tin.startswith("the checkpoint holds a tsm_r18 model") and tin.endswith("is tin_r18")

@pytest.mark.parametrize("legacy", [False, True])
def test_only_a_readable_checkpoint_with_refused_objects_advises_trust(tmp_path, legacy):
    path = tmp_path / "custom.pth"
    obj = {"state_dict": {"w": torch.ones(2)}, "meta": CustomMeta()}
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    message = _refusal(path)
    assert "refused to unpickle it safely" in message and "--trust-checkpoint" in message
    assert f"{CustomMeta.__module__}.CustomMeta" in message
    # the advice holds: the trusted loader reads it
    loaded = read_checkpoint(path, trusted=True)
    assert isinstance(loaded["meta"], CustomMeta) and torch.equal(loaded["state_dict"]["w"], torch.ones(2))


def test_a_command_prints_one_line_and_exits_non_zero(tmp_path, capsys):
    path = tmp_path / "cut.pth"
    path.write_bytes(_small_checkpoint(tmp_path / "full.pth").read_bytes()[:500])
    parser = argparse.ArgumentParser(prog="tinlib test")
    parser.add_argument("checkpoint")
    status = run_command("tinlib test", parser, lambda args: read_checkpoint(args.checkpoint) and 0, [str(path)])
    err = capsys.readouterr().err
    assert status != 0
    assert err.count("\n") == 1 and str(path) in err and "truncated" in err and "Traceback" not in err


# --------------------------------------------------------------------------------------------
# Architecture
# --------------------------------------------------------------------------------------------
def test_tinlib_tsm_checkpoint_into_tsn_is_refused_and_vice_versa(tmp_path):
    tsm_path = save_checkpoint(tmp_path / "tsm.pth", build_recognizer("tsm_r18", 5))
    tsn_path = save_checkpoint(tmp_path / "tsn.pth", build_recognizer("tsn_r18", 5))
    for path, into, recorded in ((tsm_path, "tsn_r18", "tsm_r18"), (tsn_path, "tsm_r18", "tsn_r18")):
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(build_recognizer(into, 5), path, verbose=False)
        message = str(info.value)
        assert "\n" not in message and str(path) in message
        assert f"holds a {recorded} model" in message and f"is {into}" in message
        assert "meta 'arch'" in message and "--allow-arch-mismatch" in message


def test_override_loads_another_architecture_and_says_so(tmp_path):
    torch.manual_seed(0)
    tsm = build_recognizer("tsm_r18", 5)
    path = save_checkpoint(tmp_path / "tsm.pth", tsm)
    tsn = build_recognizer("tsn_r18", 5)
    report = load_checkpoint(tsn, path, verbose=False, allow_arch_mismatch=True)
    assert report.arch_mismatch and "tsm_r18" in report.arch_mismatch and "tsn_r18" in report.arch_mismatch
    assert "architecture:" in str(report)
    assert torch.equal(tsn.backbone.layer3[1].conv1.weight, tsm.backbone.layer3[1].conv1.conv.weight)


def test_matching_architecture_loads(tmp_path):
    torch.manual_seed(0)
    tsm = build_recognizer("tsm_r18", 5)
    path = save_checkpoint(tmp_path / "tsm.pth", tsm)
    again = build_recognizer("tsm_r18", 5)
    report = load_checkpoint(again, path, verbose=False)
    assert report.arch_mismatch is None and not report.missing
    assert torch.equal(again.backbone.layer1[0].conv1.conv.weight, tsm.backbone.layer1[0].conv1.conv.weight)


def test_other_shift_div_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "tsm.pth", build_recognizer("tsm_r18", 5))  # TSM's default: 1/8 shifted
    with pytest.raises(CheckpointError, match="shift_div=8 model .* is tsm_r18 with shift_div=4"):
        load_checkpoint(build_recognizer("tsm_r18", 5, shift_div=4), path, verbose=False)


def test_tin_checkpoint_into_tsm_is_refused_by_its_tensor_names(tmp_path):
    tin = build_recognizer("tin_r18", 5)
    path = tmp_path / "tin_no_meta.pth"
    torch.save({"state_dict": tin.state_dict()}, path)  # no meta: only the names tell
    with pytest.raises(CheckpointError, match="holds a tin model \\(implied by its tensor names\\) .* is tsm_r18"):
        load_checkpoint(build_recognizer("tsm_r18", 5), path, verbose=False)


def test_mmaction2_tin_checkpoint_into_tsm_is_refused_by_its_tensor_names(tmp_path):
    path = tmp_path / "tin.pth"
    torch.save({"state_dict": mmaction_state_dict(num_classes=174, kind="tin")}, path)
    with pytest.raises(CheckpointError, match="holds a tin model .* is tsm_r50"):
        load_checkpoint(build_recognizer("tsm_r50", 174), path, verbose=False)


def _tsn_layout(state: dict) -> dict:
    """An MMAction2 TSM state dict renamed to MMAction2's TSN names (the block conv1 not wrapped)."""
    return {k.replace(".conv1.conv.net.weight", ".conv1.conv.weight"): v for k, v in state.items()}


TSM_CONFIG_TEXT = """model = dict(
    type='Recognizer2D',
    backbone=dict(
        type='ResNetTSM',
        pretrained='torchvision://resnet50',
        depth=50,
        norm_eval=False,
        shift_div=8),
    cls_head=dict(type='TSMHead', num_classes=174, in_channels=2048, is_shift=True))
"""
TSN_CONFIG_TEXT = TSM_CONFIG_TEXT.replace("type='ResNetTSM'", "type='ResNet'").replace(
    ",\n        shift_div=8", "").replace("type='TSMHead'", "type='TSNHead'")


@pytest.fixture(scope="module")
def tsn_layout_state():
    return _tsn_layout(mmaction_state_dict(num_classes=174, kind="tsm", seed=5))


@pytest.mark.parametrize("meta", [
    {"mmcv_version": "1.3.0", "config": TSM_CONFIG_TEXT},
    {"mmengine_version": "0.8.4", "cfg": TSM_CONFIG_TEXT},
    {"mmcv_version": "1.3.0", "config_name": "tsm_r50_1x1x8_50e_sthv1_rgb.py"},
])
def test_mmaction2_checkpoint_whose_meta_names_tsm_is_refused_by_tsn(tmp_path, tsn_layout_state, meta):
    path = tmp_path / "mm.pth"
    torch.save({"meta": meta, "state_dict": tsn_layout_state}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(build_recognizer("tsn_r50", 174), path, verbose=False)
    message = str(info.value)
    assert "\n" not in message and "holds a tsm_r50 model" in message and "is tsn_r50" in message
    assert ("ResNetTSM" in message) == ("config_name" not in meta)


def test_mmaction2_checkpoint_whose_meta_names_tsn_loads_into_tsn(tmp_path, tsn_layout_state):
    path = tmp_path / "mm.pth"
    torch.save({"meta": {"mmcv_version": "1.3.0", "config": TSN_CONFIG_TEXT}, "state_dict": tsn_layout_state}, path)
    report = load_checkpoint(build_recognizer("tsn_r50", 174), path, verbose=False)
    assert report.arch_mismatch is None and not report.missing and not report.unexpected


def test_tsm_with_temporal_pool_is_refused_even_by_tsm(tmp_path):
    text = TSM_CONFIG_TEXT.replace("shift_div=8)", "shift_div=8,\n        temporal_pool=True)")
    path = tmp_path / "mm.pth"
    torch.save({"meta": {"config": text}, "state_dict": mmaction_state_dict(num_classes=174, kind="tsm")}, path)
    with pytest.raises(CheckpointError, match="temporal_pool=True"):
        load_checkpoint(build_recognizer("tsm_r50", 174), path, verbose=False)


def test_config_text_as_dict_displays_with_the_shift_switched_off_means_tsn(tmp_path, tsn_layout_state):
    # MMAction2 may print nested configs as {'key': value} displays; is_shift=False turns ResNetTSM into a plain ResNet
    text = ("model = {'type': 'Recognizer2D', 'backbone': {'type': 'ResNetTSM', 'depth': 50, 'is_shift': False, "
            "'shift_div': 8}, 'cls_head': {'type': 'TSMHead', 'num_classes': 174}}\n")
    path = tmp_path / "mm.pth"
    torch.save({"meta": {"mmengine_version": "0.8.4", "cfg": text}, "state_dict": tsn_layout_state}, path)
    assert load_checkpoint(build_recognizer("tsn_r50", 174), path, verbose=False).arch_mismatch is None
    with pytest.raises(CheckpointError, match="holds a tsn_r50 model .*backbone ResNetTSM.* is tsm_r50"):
        load_checkpoint(build_recognizer("tsm_r50", 174), path, verbose=False)


def test_config_text_is_read_not_run_and_a_computed_option_is_unknown(tmp_path, tsn_layout_state):
    marker = tmp_path / "ran"
    text = (f"open({str(marker)!r}, 'w').close()\ndepth = 50\n"
            "model = dict(backbone=dict(type='ResNetTSM', depth=depth, shift_div=8))\n")
    path = tmp_path / "mm.pth"
    torch.save({"meta": {"config": text}, "state_dict": tsn_layout_state}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(build_recognizer("tsn_r50", 174), path, verbose=False)
    assert "holds a tsm model" in str(info.value) and "is tsn_r50" in str(info.value)  # the depth is a name: unknown
    assert not marker.exists()
