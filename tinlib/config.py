"""Run configurations: a typed schema, loading by name or path, validated overrides, LR scaling.

A config file is a Python module that defines ``CONFIG``, a nested dict whose sections are the
dataclasses below (``model``, ``data``, ``optim``, ``schedule``, ``train``, ``test``, ``zoo``,
``published``). Loading turns the dict into a :class:`Config`; any key the schema does not know is
an error that names the valid keys, and so is a value of the wrong type or outside its allowed
set. Overrides (``--set optim.lr=0.01`` on the command line, or a dict from a notebook's
parameters cell) go through the same checks.

Config names are the file names in ``tinlib/configs/`` (the model-zoo rows are named exactly as in
MMAction2's table); a path to any ``.py`` or ``.json`` file works as well.
"""
from __future__ import annotations

import ast
import copy
import dataclasses
import difflib
import importlib
import json
import math
import re
import runpy
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinlib.errors import UserError

CONFIG_PACKAGE = "tinlib.configs"
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
# An architecture name: tin_r50, tsm_r18, tsn_r101 (family, ResNet depth).
ARCH_PATTERN = re.compile(r"^(tin|tsm|tsn)_r(\d+)$")
ARCH_DEPTHS = (18, 34, 50, 101)  # the torchvision ResNets the backbone builds


class ConfigError(UserError, ValueError):
    """A config that cannot be loaded or is not valid (also a ``ValueError``); exit status 2."""


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    """The recognizer (``tinlib.models.build_recognizer``) and its initialization."""

    arch: str = "tin_r50"                      # tin_rD | tsm_rD | tsn_rD (tinlib.models.parse_arch)
    num_classes: int = 174
    num_segments: int = 8                      # T: segments per video (also the data sampling)
    dropout: float = 0.8                       # before fc_cls
    shift_div: int | None = None            # None: 4 for TIN, 8 for TSM
    init_std: float = 0.001                    # fc_cls weight ~ N(0, init_std^2)
    base_channels: int = 64                    # backbone width: stages of 1, 2, 4, 8 x this (64: standard ResNet)
    num_stages: int = 4                        # ResNet stages kept (4: standard; fewer for small CPU models)
    interlace_grad: str = "adjoint"            # tinlib.ops.GRAD_MODES: adjoint | mmcv (data gradient of the shift)
    interlace_backend: str = "auto"            # tinlib.ops.BACKENDS: auto | reference | triton
    pretrained: str | None = None           # None | local file | "torchvision://resnet50"
    load_from: str | None = None            # whole-model init (e.g. the TSM-K400 checkpoint)
    load_strict: bool = True                   # False: load what fits and report the rest (MMAction2)
    tsm_conv1: str = "transfer"                # TSM -> TIN: "transfer" block conv1 weights, or "skip" (MMAction2)
    allow_arch_mismatch: bool = False          # load a checkpoint of another arch (TSM -> TIN fine-tuning)
    norm_eval: bool = False                    # BN layers in eval mode while training (running stats frozen)
    partial_bn: bool = False                   # original TIN/TSM repos: freeze every BN except the first


@dataclass
class DataConfig:
    """Where the videos are and how clips are sampled; paths are relative to ``root``."""

    dataset: str = "sthv1"                     # informational name
    kind: str = "rawframes"                    # rawframes | videos
    root: str = "data/sthv1"
    train_ann: str = "sthv1_train_list_rawframes.txt"
    train_prefix: str = "rawframes"
    val_ann: str = "sthv1_val_list_rawframes.txt"
    val_prefix: str = "rawframes"
    test_ann: str = "sthv1_val_list_rawframes.txt"
    test_prefix: str = "rawframes"
    filename_tmpl: str = "img_{:05}.jpg"
    start_index: int | None = None          # None: 1 for rawframes, 0 for videos
    video_backend: str = "decord"
    videos_per_gpu: int = 6                    # training batch per process
    val_videos_per_gpu: int = 6
    test_videos_per_gpu: int = 1
    workers_per_gpu: int = 2
    scale_size: int = 256                      # Resize(-1, scale_size) before cropping
    input_size: int = 224
    multi_scale_crop: bool = True              # MultiScaleCrop (train); False: plain center crop
    flip: bool = False                         # horizontal flip with p=0.5 (train)
    skip_bad_samples: bool = False
    drop_last: bool = False


@dataclass
class OptimConfig:
    """SGD with MMAction2's TSM parameter groups (fc_lr5) and L2 gradient clipping."""

    type: str = "sgd"                          # sgd (MMAction2) | adamw (same groups; momentum unused)
    lr: float = 0.02                           # for the reference batch ref_gpus x ref_videos_per_gpu
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    fc_lr5: bool = True                        # fc_cls weight lr x5, bias lr x10 (no decay)
    grad_clip: float | None = 20.0          # max L2 norm of all gradients; None: no clipping
    ref_gpus: int = 8
    ref_videos_per_gpu: int = 6
    scale_lr: bool = True                      # linear scaling rule when the total batch differs


@dataclass
class ScheduleConfig:
    """mmcv's LR policies: cosine (by epoch or iteration) or step, with optional warmup."""

    policy: str = "cosine"                     # cosine | step | fixed
    by_epoch: bool = True                      # progress counted in epochs (constant within one) or iterations
    min_lr_ratio: float | None = 0.5        # cosine target = base * ratio (takes precedence) ...
    min_lr: float | None = None             # ... or this absolute value
    steps: list[int] = field(default_factory=list)   # step policy: epochs (or iterations) where lr *= gamma
    gamma: float = 0.1
    warmup: str | None = "linear"           # None | linear | constant | exp
    warmup_epochs: float = 1                   # warmup length in epochs (iteration-wise ramp) ...
    warmup_iters: int = 0                      # ... or in iterations (used when warmup_epochs is 0)
    warmup_ratio: float = 0.1                  # lr starts at ratio x regular


@dataclass
class TrainConfig:
    """The training loop: epochs, validation and checkpoint intervals, logging, precision, seeds."""

    epochs: int = 40
    val_interval: int = 5                      # validate every N epochs (0: never)
    checkpoint_interval: int = 1               # write latest.pth every N epochs
    checkpoint_interval_iters: int = 0         # also write latest.pth every N iterations inside an epoch (0: off)
    keep_epoch_checkpoints: bool = False       # also keep epoch_N.pth
    log_interval: int = 20                     # iterations averaged per log.json line
    save_best: str | None = "top1_acc"      # val metric that selects best.pth (None: no best.pth)
    amp: str = "none"                          # none | bf16 | fp16 (mixed precision, GPU)
    sync_bn: bool = False                      # synchronize BN statistics across processes
    seed: int | None = None                 # None: drawn at random and recorded
    deterministic: bool = False
    cudnn_benchmark: bool = False
    max_iters_per_epoch: int | None = None  # cap on iterations per epoch (demos)
    num_threads: int | None = None          # torch CPU threads per process (None: torch default)
    compile: bool = False                      # torch.compile the model for the training steps
    channels_last: bool = False                # model weights and input frames in channels_last memory format


@dataclass
class TestConfig:
    """Test-time views (clips x crops) and how their scores are combined."""

    num_clips: int = 1
    crop: str = "center"                       # center | three | ten
    twice_sample: bool = False
    average_clips: str | None = None        # None (raw logits, one view; 0.x) | prob (1.x) | score


@dataclass
class ZooConfig:
    """Reference figures of the MMAction2 model-zoo row this config reproduces (for reports)."""

    dataset: str = ""
    resolution: str = ""
    gpus: str = ""
    backbone: str = "ResNet50"
    pretrain: str = ""
    top1: float | None = None
    top5: float | None = None
    ref_top1: float | None = None
    ref_top5: float | None = None
    gpu_mem: int | None = None
    flops: int | None = None
    params: int | None = None


@dataclass
class PublishedConfig:
    """What MMAction2 published for this config, by URL (``""`` where nothing was published): the
    checkpoint (``published:<config>``, ``make evaluate-published-*``), the training log and its
    JSON-lines twin (the published curves the reports draw beside a run's own)."""

    checkpoint: str = ""
    log: str = ""
    log_json: str = ""


@dataclass
class Config:
    """A whole run configuration: its name (the config file's), output folders and the sections."""

    name: str = ""
    description: str = ""
    work_dir: str = ""                         # "" -> work_dirs/<name>
    results_dir: str = "results"               # metrics go to <results_dir>/<run>/
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)
    zoo: ZooConfig = field(default_factory=ZooConfig)
    published: PublishedConfig = field(default_factory=PublishedConfig)

    # ---- conveniences -------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The config as nested plain dicts (what run records store)."""
        return dataclasses.asdict(self)

    def resolved_work_dir(self) -> Path:
        """``work_dir``, or ``work_dirs/<name>`` when it is empty."""
        return Path(self.work_dir or Path("work_dirs") / self.name)

    def data_path(self, relative: str) -> Path:
        """``relative`` under ``data.root`` (an absolute path is returned as it is)."""
        path = Path(relative)
        return path if path.is_absolute() else Path(self.data.root) / path

    def validate(self) -> Config:
        """Check the values beyond their types (allowed sets, ranges, combinations); raises
        :class:`ConfigError` listing every problem, else returns the config."""
        _check_values(self)
        return self


# --------------------------------------------------------------------------------------------
# Value checks beyond types
# --------------------------------------------------------------------------------------------
CHOICES = {
    "optim.type": ("sgd", "adamw"),
    "model.tsm_conv1": ("transfer", "skip"),
    "data.kind": ("rawframes", "videos"),
    "schedule.policy": ("cosine", "step", "fixed"),
    "schedule.warmup": (None, "linear", "constant", "exp"),
    "train.amp": ("none", "bf16", "fp16"),
    "train.save_best": (None, "top1_acc", "top5_acc", "mean_class_accuracy"),
    "test.crop": ("center", "three", "ten"),
    "test.average_clips": (None, "prob", "score"),
}
POSITIVE = ("model.num_classes", "model.num_segments", "model.base_channels", "data.videos_per_gpu",
            "data.val_videos_per_gpu", "data.test_videos_per_gpu", "data.scale_size", "data.input_size",
            "optim.ref_gpus", "optim.ref_videos_per_gpu", "train.epochs", "train.log_interval",
            "train.checkpoint_interval", "test.num_clips")
NON_NEGATIVE = ("data.workers_per_gpu", "train.checkpoint_interval_iters", "optim.lr", "optim.momentum",
                "optim.weight_decay", "train.val_interval",
                "schedule.warmup_epochs", "schedule.warmup_iters")


def _get(cfg: Config, dotted: str) -> Any:
    obj: Any = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _choices() -> dict[str, tuple]:
    """The allowed values of the keys with a fixed set; the model's come from where they are
    defined (``tinlib.ops``), so the config accepts exactly what the model can run."""
    from tinlib.ops import BACKENDS, GRAD_MODES

    return {"model.interlace_grad": tuple(GRAD_MODES), "model.interlace_backend": tuple(BACKENDS), **CHOICES}


def _compile_unavailable() -> str | None:
    """Why ``torch.compile`` cannot run here (None when it can)."""
    import torch

    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    try:
        from torch._dynamo import is_dynamo_supported
    except ImportError:  # pragma: no cover - the private helper moved
        return None
    if not is_dynamo_supported():
        return f"torch.compile does not support this Python ({sys.version.split()[0]}) with torch {torch.__version__}"
    return None


def parse_arch(arch: str) -> tuple[str, int]:
    """'tin_r50' -> ('tin', 50); ``ValueError`` naming the valid forms for anything else."""
    match = ARCH_PATTERN.match(arch)
    if not match or int(match.group(2)) not in ARCH_DEPTHS:
        depths = ", ".join(f"r{d}" for d in ARCH_DEPTHS)
        raise ValueError(f"unknown arch {arch!r}: use tin_/tsm_/tsn_ followed by one of {depths} (e.g. tin_r50)")
    return match.group(1), int(match.group(2))


def _check_values(cfg: Config) -> None:
    errors = []
    try:
        parse_arch(cfg.model.arch)
    except ValueError as err:
        errors.append(f"model.arch={cfg.model.arch!r}: {err}")
    for key, allowed in _choices().items():
        value = _get(cfg, key)
        if value not in allowed:
            errors.append(f"{key}={value!r}: must be one of {', '.join(repr(a) for a in allowed)}")
    for key in POSITIVE:
        if _get(cfg, key) <= 0:
            errors.append(f"{key}={_get(cfg, key)!r}: must be > 0")
    for key in NON_NEGATIVE:
        if _get(cfg, key) < 0:
            errors.append(f"{key}={_get(cfg, key)!r}: must be >= 0")
    if cfg.model.num_stages not in (1, 2, 3, 4):
        errors.append(f"model.num_stages={cfg.model.num_stages!r}: must be 1, 2, 3 or 4")
    if not 0 <= cfg.model.dropout < 1:
        errors.append(f"model.dropout={cfg.model.dropout!r}: must be in [0, 1)")
    if cfg.optim.grad_clip is not None and cfg.optim.grad_clip <= 0:
        errors.append(f"optim.grad_clip={cfg.optim.grad_clip!r}: must be > 0 or None")
    sch = cfg.schedule
    if sch.policy == "cosine" and sch.min_lr_ratio is None and sch.min_lr is None:
        errors.append("schedule: the cosine policy needs min_lr_ratio or min_lr")
    if sch.policy == "step" and (not sch.steps or list(sch.steps) != sorted(sch.steps)):
        errors.append(f"schedule.steps={sch.steps!r}: the step policy needs increasing milestones")
    if sch.warmup is not None:
        if sch.warmup_epochs <= 0 and sch.warmup_iters <= 0:
            errors.append("schedule: warmup needs warmup_epochs > 0 or warmup_iters > 0")
        if not 0 < sch.warmup_ratio <= 1:
            errors.append(f"schedule.warmup_ratio={sch.warmup_ratio!r}: must be in (0, 1]")
    if cfg.train.max_iters_per_epoch is not None and cfg.train.max_iters_per_epoch <= 0:
        errors.append("train.max_iters_per_epoch must be > 0 or None")
    t = cfg.test
    if t.average_clips is None and (t.num_clips > 1 or t.crop != "center" or t.twice_sample):
        errors.append("test.average_clips=None returns raw scores of a single view; with several clips or crops "
                      "use 'prob' or 'score'")
    if cfg.train.compile:
        problem = _compile_unavailable()
        if problem:
            errors.append(f"train.compile=True: {problem}; set train.compile=False")
    if cfg.model.partial_bn and cfg.model.norm_eval:
        errors.append("model.partial_bn and model.norm_eval are alternatives; set at most one")
    if len(errors) == 1:
        raise ConfigError(f"config {cfg.name or '<unnamed>'} is not valid: {errors[0]}")
    if errors:
        raise ConfigError(f"config {cfg.name or '<unnamed>'} is not valid:\n  " + "\n  ".join(errors))


# --------------------------------------------------------------------------------------------
# dict <-> dataclass with strict keys and types
# --------------------------------------------------------------------------------------------
def _is_section(tp: Any) -> bool:
    """Whether a schema annotation is a section (a dataclass) rather than a value."""
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _valid_keys_message(cls: type, where: str, bad: str) -> str:
    names = [f.name for f in dataclasses.fields(cls)]
    close = difflib.get_close_matches(bad, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    section = f"section {where!r}" if where else "the top level"
    return f"unknown key {'.'.join(filter(None, [where, bad]))!r}{hint}; valid keys of {section}: {', '.join(names)}"


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_describe(typing.get_args(tp)[0])}"
    return "None" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected float, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite float, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{key}: expected int, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected bool (True/False), got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected str, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp!r} in the schema")  # pragma: no cover


def _build(cls: type, values: dict, where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'}: expected a dict of keys, got {values!r}")
    hints = _field_types(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(_valid_keys_message(cls, where, key))
        full = ".".join(filter(None, [where, key]))
        tp = hints[key]
        if _is_section(tp):
            kwargs[key] = _build(tp, value, full)
        else:
            kwargs[key] = _coerce(value, tp, full)
    return cls(**kwargs)


def config_from_dict(values: dict, name: str | None = None) -> Config:
    """Validate a nested dict and return a :class:`Config` (missing keys take the schema defaults)."""
    values = copy.deepcopy(values)
    if name is not None:
        values["name"] = name
    return _build(Config, values, "").validate()


def merge(base: dict, update: dict) -> dict:
    """Deep-merge ``update`` into a copy of ``base`` (for configs derived from another config)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------
_LITERALS = {"none": None, "null": None, "true": True, "false": False}


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=0.01"`` -> ``("optim.lr", 0.01)``; values are Python/JSON literals, anything
    else is taken as a string (``data.root=/data/sthv1``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. optim.lr=0.01")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    if not key:
        raise ConfigError(f"override {text!r}: empty key")
    if raw.lower() in _LITERALS:
        return key, _LITERALS[raw.lower()]
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return key, raw


def _override_to_nested(key: str, value: Any) -> dict:
    nested: Any = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    return nested


def apply_overrides(cfg: Config, overrides: dict | list | tuple | None) -> Config:
    """Return a new validated config with ``overrides`` applied: a dict of dotted keys
    (``{"optim.lr": 0.01}``) or nested dicts, or a list of ``"a.b=value"`` strings."""
    if not overrides:
        return cfg
    items: list[tuple[str, Any]] = []
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = [parse_override(o) if isinstance(o, str) else tuple(o) for o in overrides]
    values = cfg.to_dict()
    for key, value in items:
        key = _unalias(key)
        _check_override_key(key)
        if key == "name":
            raise ConfigError("'name' cannot be overridden: it is the config file's name; use --work-dir/--run")
        values = merge(values, _override_to_nested(key, value))
    try:
        return config_from_dict(values)
    except ConfigError as err:
        raise ConfigError(f"bad override: {err}") from None


def _unalias(key: str) -> str:
    """MMAction2 spells backbone options ``model.backbone.<name>`` (``model.backbone.shift_div``);
    tinlib's model section is flat, so those keys map to ``model.<name>``."""
    prefix = "model.backbone."
    if key.startswith(prefix) and key[len(prefix):] in _field_types(ModelConfig):
        return "model." + key[len(prefix):]
    return key


def _check_override_key(key: str) -> None:
    cls: Any = Config
    where = ""
    for part in key.split("."):
        if not _is_section(cls):
            raise ConfigError(f"bad override {key!r}: {where!r} is a value, not a section")
        hints = _field_types(cls)
        if part not in hints:
            raise ConfigError("bad override: " + _valid_keys_message(cls, where, part))
        where = ".".join(filter(None, [where, part]))
        cls = hints[part]


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def available_configs() -> list[str]:
    """The names of the configs in ``tinlib/configs`` (sorted)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.py") if not p.stem.startswith("_"))


def _load_values(name_or_path: str | Path) -> tuple[dict, str, str]:
    """Returns (CONFIG dict, config name, source description)."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".py", ".json") and path.exists():
        if path.suffix == ".json":
            values = json.loads(path.read_text())
        else:
            values = runpy.run_path(str(path)).get("CONFIG")
        if values is None:
            raise ConfigError(f"{path}: defines no CONFIG dict")
        return values, path.stem, str(path)
    if path.suffix in (".py", ".json") or "/" in text:
        raise ConfigError(f"config file not found: {path}")
    if text not in available_configs():
        close = difflib.get_close_matches(text, available_configs(), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown config {text!r}.{hint} Available: {', '.join(available_configs())}")
    module = importlib.import_module(f"{CONFIG_PACKAGE}.{text}")
    values = getattr(module, "CONFIG", None)
    if not isinstance(values, dict):
        raise ConfigError(f"{module.__file__}: defines no CONFIG dict")
    return values, text, str(module.__file__)


def load_config(name_or_path: str | Path, overrides: dict | list | None = None) -> Config:
    """Load a config by name (``tin_r50_1x1x8_40e_sthv1_rgb``) or path, validate it and apply
    ``overrides`` (validated the same way)."""
    values, name, source = _load_values(name_or_path)
    try:
        cfg = config_from_dict(values, name=name)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return apply_overrides(cfg, overrides)


def diff_configs(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    keys = sorted(set(old) | set(new))
    out = []
    for key in keys:
        full = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_configs(a, b, full + ".")
        elif a != b:
            out.append(full)
    return out


__all__ = ["ARCH_DEPTHS", "ARCH_PATTERN", "Config", "ConfigError", "DataConfig", "ModelConfig", "OptimConfig",
           "PublishedConfig", "ScheduleConfig", "TestConfig", "TrainConfig", "ZooConfig", "apply_overrides",
           "available_configs", "config_from_dict", "diff_configs", "load_config", "merge", "parse_arch",
           "parse_override"]
