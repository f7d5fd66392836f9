"""Configs: the zoo rows carry the published recipes; loading and overrides are validated.

The expected values of the zoo rows are MMAction2 0.x's: the config files
configs/recognition/tin/tin_r50_1x1x8_40e_sthv1_rgb.py, tin_r50_1x1x8_40e_sthv2_rgb.py and
tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb.py (model, data, optimizer, schedule, test settings)
and configs/recognition/tin/metafile.yml (top-1/top-5, parameters, FLOPs).
"""
import json
import typing

import pytest

from tinlib import config as config_module
from tinlib.config import (
    ConfigError,
    ModelConfig,
    apply_overrides,
    available_configs,
    config_from_dict,
    load_config,
    parse_override,
)
from tinlib.engine.optim import scaled_lr
from tinlib.ops import BACKENDS, GRAD_MODES

ZOO = ("tin_r50_1x1x8_40e_sthv1_rgb", "tin_r50_1x1x8_40e_sthv2_rgb", "tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb")


def test_every_config_loads():
    names = available_configs()
    assert set(ZOO) <= set(names)
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name


def test_sthv1_row():
    c = load_config("tin_r50_1x1x8_40e_sthv1_rgb")
    assert (c.model.arch, c.model.num_classes, c.model.num_segments, c.model.dropout) == ("tin_r50", 174, 8, 0.8)
    assert (c.model.shift_div, c.model.init_std, c.model.pretrained) == (4, 0.001, "torchvision://resnet50")
    d = c.data
    assert (d.kind, d.filename_tmpl, d.flip, d.videos_per_gpu) == ("rawframes", "{:05}.jpg", False, 6)
    assert (d.workers_per_gpu, d.test_videos_per_gpu, d.input_size, d.scale_size) == (2, 1, 224, 256)
    assert (c.optim.lr, c.optim.momentum, c.optim.weight_decay, c.optim.grad_clip) == (0.02, 0.9, 5e-4, 20.0)
    assert c.optim.fc_lr5 and (c.optim.ref_gpus, c.optim.ref_videos_per_gpu) == (8, 6)
    s = c.schedule
    assert (s.policy, s.by_epoch, s.min_lr_ratio, s.warmup, s.warmup_epochs, s.warmup_ratio) == \
        ("cosine", True, 0.5, "linear", 1, 0.1)
    assert (c.train.epochs, c.train.val_interval, c.train.checkpoint_interval) == (40, 5, 1)
    assert (c.test.num_clips, c.test.crop, c.test.average_clips) == (1, "center", None)
    assert (c.zoo.top1, c.zoo.top5, c.zoo.params, c.zoo.flops) == (44.25, 73.94, 23_895_566, 32_962_097_536)


def test_sthv2_row_differs_from_sthv1_where_the_mmaction2_configs_differ():
    one, two = load_config(ZOO[0]).to_dict(), load_config(ZOO[1]).to_dict()
    c = load_config(ZOO[1])
    assert c.data.filename_tmpl == "img_{:05}.jpg"
    assert (c.schedule.by_epoch, c.schedule.min_lr_ratio, c.schedule.min_lr) == (False, None, 0.0)
    assert c.train.val_interval == 2
    assert one["optim"] == two["optim"] and one["model"] == two["model"]


def test_k400_row():
    c = load_config(ZOO[2])
    assert (c.model.num_classes, c.model.dropout, c.data.flip) == (400, 0.5, True)
    assert (c.optim.lr, c.optim.weight_decay, c.optim.grad_clip) == (0.01, 1e-4, 20.0)
    assert (c.schedule.policy, c.schedule.steps, c.schedule.gamma, c.schedule.warmup) == ("step", [20, 40], 0.1, None)
    assert (c.train.epochs, c.train.val_interval) == (50, 5)
    # MMAction2's load_from for this row: tsm_r50_1x1x8_50e_kinetics400_rgb_20200607-af7fb746.pth
    assert c.model.load_from == "published:tsm_r50_1x1x8_50e_kinetics400_rgb"
    assert c.model.allow_arch_mismatch  # TSM weights into TIN, by design
    from tinlib.hub import published_url
    assert published_url("tsm_r50_1x1x8_50e_kinetics400_rgb", "ckpt").endswith(
        "/tsm_r50_1x1x8_50e_kinetics400_rgb_20200607-af7fb746.pth")
    assert (c.model.load_strict, c.model.tsm_conv1) == (False, "skip")
    assert (c.data.train_prefix, c.data.val_prefix) == ("rawframes_train", "rawframes_val")


def test_baselines_share_the_tin_recipe():
    for ds in ("sthv1", "sthv2"):
        tin = load_config(f"tin_r50_1x1x8_40e_{ds}_rgb").to_dict()
        for arch in ("tsm", "tsn"):
            base = load_config(f"{arch}_r50_1x1x8_40e_{ds}_rgb").to_dict()
            assert base["model"]["arch"] == f"{arch}_r50"
            for section in ("data", "optim", "schedule", "train", "test"):
                assert base[section] == tin[section]


def test_misspelt_key_lists_the_valid_keys(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("CONFIG = dict(optim=dict(lr=0.1, momentun=0.9))\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "optim.momentun" in text and "did you mean 'momentum'" in text
    for key in ("lr", "momentum", "weight_decay", "grad_clip", "fc_lr5"):
        assert key in text
    assert str(path) in text


def test_bad_overrides_are_errors():
    cfg = load_config(ZOO[0])
    with pytest.raises(ConfigError, match="valid keys of section 'optim'.*weight_decay"):
        apply_overrides(cfg, ["optim.lrate=0.01"])
    with pytest.raises(ConfigError, match="valid keys of the top level"):
        apply_overrides(cfg, ["optimizer.lr=0.01"])
    with pytest.raises(ConfigError, match="optim.lr: expected float"):
        apply_overrides(cfg, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides(cfg, ["optim.lr"])
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_overrides(cfg, ["optim.lr.x=1"])
    with pytest.raises(ConfigError, match="train.amp='fp8'"):
        apply_overrides(cfg, {"train.amp": "fp8"})
    with pytest.raises(ConfigError, match="model.dropout"):
        apply_overrides(cfg, {"model.dropout": 1.5})


def test_good_overrides():
    cfg = load_config(ZOO[0], ["optim.lr=0.01", "model.pretrained=None", "data.root=/data/sth v1",
                               "schedule.steps=[3, 5]", "train.deterministic=true"])
    assert cfg.optim.lr == 0.01 and cfg.model.pretrained is None and cfg.data.root == "/data/sth v1"
    assert cfg.schedule.steps == [3, 5] and cfg.train.deterministic is True
    # notebook style: a dict, ints accepted for floats
    cfg2 = apply_overrides(cfg, {"optim.lr": 1, "train": {"epochs": 2}})
    assert cfg2.optim.lr == 1.0 and isinstance(cfg2.optim.lr, float) and cfg2.train.epochs == 2
    assert cfg.train.epochs == 40  # the original is unchanged
    assert parse_override("data.root=a=b") == ("data.root", "a=b")


def test_mmaction_backbone_spelling_of_model_options():
    cfg = load_config(ZOO[0], ["model.backbone.interlace_grad=mmcv", "model.backbone.shift_div=8"])
    assert cfg.model.interlace_grad == "mmcv" and cfg.model.shift_div == 8
    with pytest.raises(ConfigError, match="interlace_grad"):
        load_config(ZOO[0], ["model.backbone.interlace_grad=true_gradient"])
    with pytest.raises(ConfigError, match="bad override"):
        load_config(ZOO[0], ["model.backbone.depthh=50"])


def test_unknown_config_name_suggests_close_ones():
    with pytest.raises(ConfigError, match="Did you mean: tin_r50_1x1x8_40e_sthv1_rgb"):
        load_config("tin_r50_1x1x8_40e_sthv1")


def test_json_config_roundtrip(tmp_path):
    cfg = load_config(ZOO[1])
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(cfg.to_dict()))
    again = load_config(path)
    assert again.to_dict() == {**cfg.to_dict(), "name": "copy"}


def test_linear_scaling_rule():
    cfg = load_config(ZOO[0])
    ref = scaled_lr(cfg, 8)
    assert (ref.lr, ref.applied) == (0.02, False) and "no scaling" in ref.message()
    two = scaled_lr(cfg, 2)
    assert two.lr == pytest.approx(0.02 * 12 / 48) and two.applied and "12/48" in two.message()
    big = scaled_lr(apply_overrides(cfg, {"data.videos_per_gpu": 4}), 16)
    assert big.lr == pytest.approx(0.02 * 64 / 48)
    off = scaled_lr(apply_overrides(cfg, {"optim.scale_lr": False}), 2)
    assert off.lr == 0.02 and not off.applied and "unscaled" in off.message()


def test_value_checks():
    with pytest.raises(ConfigError, match="average_clips=None"):
        config_from_dict({"test": {"num_clips": 2, "average_clips": None}})
    with pytest.raises(ConfigError, match="increasing milestones"):
        config_from_dict({"schedule": {"policy": "step", "steps": [], "warmup": None}})
    with pytest.raises(ConfigError, match="model.arch"):
        config_from_dict({"model": {"arch": "tin_resnet50"}})
    with pytest.raises(ConfigError, match="model.arch='tsm_r51'"):
        config_from_dict({"model": {"arch": "tsm_r51"}})  # the pattern, but no such ResNet
    for arch in ("tin_r18", "tsm_r34", "tsn_r101"):
        assert config_from_dict({"model": {"arch": arch}}).model.arch == arch


def test_interlace_options_are_checked_when_the_config_is_loaded():
    # a typo fails at load time (not at the first forward pass), on one line naming every valid value
    with pytest.raises(ConfigError) as err:
        load_config(ZOO[0], ["model.interlace_backend=trion"])
    text = str(err.value)
    assert "\n" not in text and "model.interlace_backend='trion'" in text
    assert all(repr(b) in text for b in BACKENDS)
    with pytest.raises(ConfigError) as err:
        load_config(ZOO[0], ["model.interlace_grad=true_gradient"])
    assert all(repr(g) in str(err.value) for g in GRAD_MODES)
    for backend in BACKENDS:
        assert load_config(ZOO[0], [f"model.interlace_backend={backend}"]).model.interlace_backend == backend


def test_interlace_choices_are_the_sets_the_ops_define():
    """The config lists the choices itself (it imports nothing from ops); they must stay the ops' sets."""
    fields = ModelConfig.model_fields
    assert typing.get_args(fields["interlace_grad"].annotation) == tuple(GRAD_MODES)
    assert typing.get_args(fields["interlace_backend"].annotation) == tuple(BACKENDS)


@pytest.mark.parametrize("key,value,expected", [
    ("train.epochs", 2.5, "int"), ("train.epochs", True, "int"), ("train.epochs", "3", "int"),
    ("optim.lr", True, "float"), ("optim.lr", "0.1", "float"), ("optim.lr", float("nan"), "a finite float"),
    ("train.deterministic", 1, "bool (True/False)"), ("data.root", 3, "str"), ("schedule.steps", {3}, "list of int"),
    ("train.seed", True, "int or None")])
def test_a_bool_is_no_number_and_a_str_no_number_or_bool(key, value, expected):
    section, name = key.split(".")
    with pytest.raises(ConfigError) as err:
        config_from_dict({section: {name: value}})
    assert str(err.value) == f"{key}: expected {expected}, got {value!r}"


def test_numbers_convert_where_nothing_is_lost():
    cfg = config_from_dict({"train": {"epochs": 2.0, "seed": 1e3}, "optim": {"lr": 1}, "schedule": {"steps": (3, 5)}})
    assert (cfg.train.epochs, cfg.train.seed, cfg.schedule.steps) == (2, 1000, [3, 5])
    assert isinstance(cfg.train.epochs, int) and isinstance(cfg.optim.lr, float)
    with pytest.raises(ConfigError, match=r"^schedule.steps\[1\]: expected int, got 'a'$"):
        config_from_dict({"schedule": {"steps": [1, "a"]}})
    with pytest.raises(ConfigError, match="^model: expected a dict of keys, got 5$"):
        config_from_dict({"model": 5})


def test_several_problems_are_named_on_one_line():
    with pytest.raises(ConfigError) as err:
        load_config(ZOO[0], {"train.amp": "fp8", "optim.type": "adam", "model.num_classes": 0})
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"bad override: config {ZOO[0]} is not valid: ")
    for part in ("train.amp='fp8'", "optim.type='adam'", "model.num_classes=0: must be > 0"):
        assert part in text
    with pytest.raises(ConfigError) as err:
        config_from_dict({"schedule": {"policy": "step", "steps": [5, 3]},
                          "model": {"partial_bn": True, "norm_eval": True}})
    text = str(err.value)
    assert "\n" not in text and "increasing milestones" in text and "alternatives" in text


def test_assignment_is_checked_like_loading():
    cfg = load_config(ZOO[0])
    cfg.optim.lr = 1
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    with pytest.raises(ConfigError, match="^TrainConfig.amp='fp8': must be 'none', 'bf16' or 'fp16'$"):
        cfg.train.amp = "fp8"
    with pytest.raises(ConfigError, match="did you mean 'momentum'"):
        cfg.optim.momentun = 0.5
    cfg.test.num_clips = 3  # allowed alone; the combination with average_clips=None is checked by validate()
    with pytest.raises(ConfigError, match="average_clips=None"):
        cfg.validate()
    cfg.test.average_clips = "prob"
    assert cfg.validate() is cfg


def test_compile_check_has_a_public_fallback(monkeypatch):
    """Without torch's private dynamo check the config asks the public backend list for torch.compile's
    default backend (inductor)."""
    import torch
    import torch._dynamo

    monkeypatch.delattr(torch._dynamo, "is_dynamo_supported")
    assert config_module._compile_unavailable() is None
    assert config_from_dict({"train": {"compile": True}}).train.compile is True
    monkeypatch.setattr(torch.compiler, "list_backends", lambda *args, **kwargs: ["eager"])
    problem = config_module._compile_unavailable()
    assert problem is not None and "torch.compile does not support this Python" in problem
    with pytest.raises(ConfigError, match="train.compile=True: torch.compile does not support"):
        config_from_dict({"train": {"compile": True}})
