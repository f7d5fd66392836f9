"""Run configurations: the pydantic schema, loading by name (``tinlib/configs/``) or by path (a
``.py`` or ``.json`` file defining ``CONFIG``), and overrides. Unknown keys, wrong types and values
outside their allowed set are a :class:`ConfigError` of one line."""
from __future__ import annotations

import ast
import copy
import difflib
import importlib
import json
import re
import runpy
import sys
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from tinlib.errors import UserError

CONFIG_PACKAGE = "tinlib.configs"
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
# An architecture name: tin_r50, tsm_r18, tsn_r101 (family, ResNet depth).
ARCH_PATTERN = re.compile(r"^(tin|tsm|tsn)_r(\d+)$")
ARCH_DEPTHS = (18, 34, 50, 101)  # the torchvision ResNets the backbone builds


class ConfigError(UserError, ValueError):
    """A config that cannot be loaded or is not valid (also a ``ValueError``); exit status 2."""


def parse_arch(arch: str) -> tuple[str, int]:
    """'tin_r50' -> ('tin', 50); ``ValueError`` naming the valid forms for anything else."""
    match = ARCH_PATTERN.match(arch)
    if not match or int(match.group(2)) not in ARCH_DEPTHS:
        depths = ", ".join(f"r{d}" for d in ARCH_DEPTHS)
        raise ValueError(f"unknown arch {arch!r}: use tin_/tsm_/tsn_ followed by one of {depths} (e.g. tin_r50)")
    return match.group(1), int(match.group(2))


# The sections validate in pydantic's strict mode: a bool is not a number and a str is not one
# either. An int is a float there, and with these types a float such as 2.0 (``1e3`` on the
# command line) is an int and a tuple is a list.
Int = Annotated[int, BeforeValidator(lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)]
Float = Annotated[float, Field(allow_inf_nan=False)]
PositiveInt = Annotated[Int, Field(gt=0)]
PositiveFloat = Annotated[Float, Field(gt=0)]
NonNegativeInt = Annotated[Int, Field(ge=0)]
NonNegativeFloat = Annotated[Float, Field(ge=0)]
IntList = Annotated[list[Int], BeforeValidator(lambda v: list(v) if isinstance(v, tuple) else v)]


class _Section(BaseModel):
    """A config section: unknown keys are errors, and so is assigning a bad value to a field."""

    model_config = ConfigDict(strict=True, extra="forbid", validate_assignment=True)

    def __setattr__(self, name: str, value: Any) -> None:
        section = type(self)
        if name not in section.model_fields and not name.startswith("_"):
            raise ConfigError(_valid_keys_message(section, section.__name__, name))
        try:
            super().__setattr__(name, value)
        except ValidationError as err:
            raise ConfigError(_one_line(err, section, section.__name__)[0]) from None


class ModelConfig(_Section):
    """The recognizer (``tinlib.models.build_recognizer``) and its initialization."""

    arch: str = "tin_r50"                      # tin_rD | tsm_rD | tsn_rD (parse_arch)
    num_classes: PositiveInt = 174
    num_segments: PositiveInt = 8              # T: segments per video (also the data sampling)
    dropout: Annotated[Float, Field(ge=0, lt=1)] = 0.8  # before fc_cls
    shift_div: Int | None = None               # None: 4 for TIN, 8 for TSM
    init_std: Float = 0.001                    # fc_cls weight ~ N(0, init_std^2)
    base_channels: PositiveInt = 64            # backbone width: stages of 1, 2, 4, 8 x this (64: standard ResNet)
    num_stages: Annotated[Int, Field(ge=1, le=4)] = 4  # ResNet stages kept (4: standard; fewer for small CPU models)
    # The data gradient of the shift (the true one, or mmcv's tin_shift backward) and the kernel;
    # the same sets as tinlib.ops.GRAD_MODES and BACKENDS (a test keeps them equal).
    interlace_grad: Literal["adjoint", "mmcv"] = "adjoint"
    interlace_backend: Literal["auto", "reference", "triton"] = "auto"
    pretrained: str | None = None              # None | local file | "torchvision://resnet50"
    load_from: str | None = None               # whole-model init (e.g. the TSM-K400 checkpoint)
    load_strict: bool = True                   # False: load what fits and report the rest (MMAction2)
    tsm_conv1: Literal["transfer", "skip"] = "transfer"  # TSM -> TIN: transfer block conv1 weights or skip them
    allow_arch_mismatch: bool = False          # load a checkpoint of another arch (TSM -> TIN fine-tuning)
    norm_eval: bool = False                    # BN layers in eval mode while training (running stats frozen)
    partial_bn: bool = False                   # original TIN/TSM repos: freeze every BN except the first

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, arch: str) -> str:
        parse_arch(arch)
        return arch


class DataConfig(_Section):
    """Where the videos are and how clips are sampled; paths are relative to ``root``."""

    dataset: str = "sthv1"                     # informational name
    kind: Literal["rawframes", "videos"] = "rawframes"
    root: str = "data/sthv1"
    train_ann: str = "sthv1_train_list_rawframes.txt"
    train_prefix: str = "rawframes"
    val_ann: str = "sthv1_val_list_rawframes.txt"
    val_prefix: str = "rawframes"
    test_ann: str = "sthv1_val_list_rawframes.txt"
    test_prefix: str = "rawframes"
    filename_tmpl: str = "img_{:05}.jpg"
    start_index: Int | None = None             # None: 1 for rawframes, 0 for videos
    # video reader: auto = the fastest available (torchcodec, decord, PyAV; tinlib.data.decoding), PyAV as fallback
    video_backend: Literal["auto", "torchcodec", "decord", "pyav"] = "auto"
    decode_device: Literal["cpu", "cuda"] = "cpu"  # cuda: NVDEC (torchcodec) / nvJPEG (torchvision) in spawned workers
    videos_per_gpu: PositiveInt = 6            # training batch per process
    val_videos_per_gpu: PositiveInt = 6
    test_videos_per_gpu: PositiveInt = 1
    workers_per_gpu: NonNegativeInt = 2
    scale_size: PositiveInt = 256              # Resize(-1, scale_size) before cropping
    input_size: PositiveInt = 224
    multi_scale_crop: bool = True              # MultiScaleCrop (train); False: plain center crop
    flip: bool = False                         # horizontal flip with p=0.5 (train)
    skip_bad_samples: bool = False
    drop_last: bool = False
    persistent_workers: bool = True            # keep the loader workers between epochs (with workers_per_gpu > 0)
    prefetch_factor: PositiveInt = 2           # batches each loader worker loads ahead
    pin_memory: bool | None = None             # page-locked batches for the copy to the GPU; None: when on CUDA


class OptimConfig(_Section):
    """SGD with MMAction2's TSM parameter groups (fc_lr5) and L2 gradient clipping."""

    type: Literal["sgd", "adamw"] = "sgd"      # sgd (MMAction2) | adamw (same groups; momentum unused)
    lr: NonNegativeFloat = 0.02                # for the reference batch ref_gpus x ref_videos_per_gpu
    momentum: NonNegativeFloat = 0.9
    weight_decay: NonNegativeFloat = 5e-4
    nesterov: bool = False
    fc_lr5: bool = True                        # fc_cls weight lr x5, bias lr x10 (no decay)
    grad_clip: PositiveFloat | None = 20.0     # max L2 norm of all gradients; None: no clipping
    ref_gpus: PositiveInt = 8
    ref_videos_per_gpu: PositiveInt = 6
    scale_lr: bool = True                      # linear scaling rule when the total batch differs


class ScheduleConfig(_Section):
    """mmcv's LR policies: cosine (by epoch or iteration) or step, with optional warmup."""

    policy: Literal["cosine", "step", "fixed"] = "cosine"
    by_epoch: bool = True                      # progress counted in epochs (constant within one) or iterations
    min_lr_ratio: Float | None = 0.5           # cosine target = base * ratio (takes precedence) ...
    min_lr: Float | None = None                # ... or this absolute value
    steps: IntList = Field(default_factory=list)  # step policy: epochs (or iterations) where lr *= gamma
    gamma: Float = 0.1
    warmup: Literal["linear", "constant", "exp"] | None = "linear"
    warmup_epochs: NonNegativeFloat = 1        # warmup length in epochs (iteration-wise ramp) ...
    warmup_iters: NonNegativeInt = 0           # ... or in iterations (used when warmup_epochs is 0)
    warmup_ratio: Float = 0.1                  # lr starts at ratio x regular


class TrainConfig(_Section):
    """The training loop: epochs, validation and checkpoint intervals, logging, precision, seeds."""

    epochs: PositiveInt = 40
    val_interval: NonNegativeInt = 5           # validate every N epochs (0: never)
    checkpoint_interval: PositiveInt = 1       # write latest.pth every N epochs
    checkpoint_interval_iters: NonNegativeInt = 0  # also write latest.pth every N iterations inside an epoch (0: off)
    keep_epoch_checkpoints: bool = False       # also keep epoch_N.pth
    log_interval: PositiveInt = 20             # iterations averaged per log.json line
    tensorboard: bool = True                   # also write the log.json numbers to work_dir/tensorboard/
    # the val metric that selects best.pth (None: no best.pth)
    save_best: Literal["top1_acc", "top5_acc", "mean_class_accuracy"] | None = "top1_acc"
    amp: Literal["none", "bf16", "fp16"] = "none"  # mixed precision (GPU)
    sync_bn: bool = False                      # synchronize BN statistics across processes
    seed: Int | None = None                    # None: drawn at random and recorded
    deterministic: bool = False
    cudnn_benchmark: bool = False
    max_iters_per_epoch: PositiveInt | None = None  # cap on iterations per epoch (demos)
    num_threads: Int | None = None             # torch CPU threads per process (None: torch default)
    compile: bool = False                      # torch.compile the model for the training steps
    channels_last: bool = False                # model weights and input frames in channels_last memory format


class TestConfig(_Section):
    """Test-time views (clips x crops) and how their scores are combined."""

    num_clips: PositiveInt = 1
    crop: Literal["center", "three", "ten"] = "center"
    twice_sample: bool = False
    # None: raw logits of one view (MMAction2 0.x) | prob (1.x) | score
    average_clips: Literal["prob", "score"] | None = None


class ZooConfig(_Section):
    """Reference figures of the MMAction2 model-zoo row this config reproduces (for reports)."""

    dataset: str = ""
    resolution: str = ""
    gpus: str = ""
    backbone: str = "ResNet50"
    pretrain: str = ""
    top1: Float | None = None
    top5: Float | None = None
    ref_top1: Float | None = None
    ref_top5: Float | None = None
    gpu_mem: Int | None = None
    flops: Int | None = None
    params: Int | None = None


class PublishedConfig(_Section):
    """What MMAction2 published for this config, by URL (``""`` where nothing was published): the
    checkpoint (``published:<config>``), the training log and its JSON-lines twin."""

    checkpoint: str = ""
    log: str = ""
    log_json: str = ""


class Config(_Section):
    """A whole run configuration: its name (the config file's), output folders and the sections."""

    name: str = ""
    description: str = ""
    work_dir: str = ""                         # "" -> work_dirs/<name>
    results_dir: str = "results"               # metrics go to <results_dir>/<run>/
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    test: TestConfig = Field(default_factory=TestConfig)
    zoo: ZooConfig = Field(default_factory=ZooConfig)
    published: PublishedConfig = Field(default_factory=PublishedConfig)

    def to_dict(self) -> dict:
        """The config as nested plain dicts (what run records store)."""
        return self.model_dump()

    def resolved_work_dir(self) -> Path:
        """``work_dir``, or ``work_dirs/<name>`` when it is empty."""
        return Path(self.work_dir or Path("work_dirs") / self.name)

    def data_path(self, relative: str) -> Path:
        """``relative`` under ``data.root`` (an absolute path is returned as it is)."""
        path = Path(relative)
        return path if path.is_absolute() else Path(self.data.root) / path

    def validate(self) -> Config:  # type: ignore[override]  # BaseModel.validate is pydantic v1's
        """Check the whole config again (after fields were assigned one by one); raises
        :class:`ConfigError` naming every problem, else returns the config."""
        config_from_dict(self.to_dict())
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        """The checks that combine fields; all problems in one message."""
        sch, t, errors = self.schedule, self.test, []
        if sch.policy == "cosine" and sch.min_lr_ratio is None and sch.min_lr is None:
            errors.append("schedule: the cosine policy needs min_lr_ratio or min_lr")
        if sch.policy == "step" and (not sch.steps or sch.steps != sorted(sch.steps)):
            errors.append(f"schedule.steps={sch.steps!r}: the step policy needs increasing milestones")
        if sch.warmup is not None:
            if sch.warmup_epochs <= 0 and sch.warmup_iters <= 0:
                errors.append("schedule: warmup needs warmup_epochs > 0 or warmup_iters > 0")
            if not 0 < sch.warmup_ratio <= 1:
                errors.append(f"schedule.warmup_ratio={sch.warmup_ratio!r}: must be in (0, 1]")
        if t.average_clips is None and (t.num_clips > 1 or t.crop != "center" or t.twice_sample):
            errors.append("test.average_clips=None returns raw scores of a single view; with several clips or "
                          "crops use 'prob' or 'score'")
        if self.train.compile and (problem := _compile_unavailable()):
            errors.append(f"train.compile=True: {problem}; set train.compile=False")
        if self.model.partial_bn and self.model.norm_eval:
            errors.append("model.partial_bn and model.norm_eval are alternatives; set at most one")
        if errors:
            raise ValueError("; ".join(errors))
        return self


def _compile_unavailable() -> str | None:
    """Why ``torch.compile`` cannot run here (None when it can)."""
    import torch

    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    try:  # private, but the check torch.compile itself makes (this Python's version and build)
        from torch._dynamo import is_dynamo_supported

        supported = is_dynamo_supported()
    except (ImportError, AttributeError):  # public fallback: torch.compile's default backend is there
        supported = "inductor" in torch.compiler.list_backends()
    if not supported:
        return f"torch.compile does not support this Python ({sys.version.split()[0]}) with torch {torch.__version__}"
    return None


_TYPE_ERRORS = {"int_type": "int", "float_type": "float", "finite_number": "a finite float", "list_type": "list of int",
                "bool_type": "bool (True/False)", "string_type": "str", "model_type": "a dict of keys"}
_BOUNDS = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"), "less_than": ("<", "lt"),
           "less_than_equal": ("<=", "le")}


def _section_at(root: type[BaseModel], loc: tuple) -> type[BaseModel]:
    """The section (model class) that ``loc`` (a path of keys below ``root``) lies in."""
    for part in loc:
        annotation = root.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        root = annotation
    return root


def _valid_keys_message(section: type[BaseModel], where: str, bad: str) -> str:
    names = list(section.model_fields)
    close = difflib.get_close_matches(bad, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    place = f"section {where!r}" if where else "the top level"
    return f"unknown key {'.'.join(filter(None, [where, bad]))!r}{hint}; valid keys of {place}: {', '.join(names)}"


def _describe(error: Any, root: type[BaseModel], where: str) -> tuple[str, bool]:
    """One pydantic error as ``(text, is_a_type_error)``; ``where``: the dotted place of ``root``."""
    loc, kind, value = error["loc"], error["type"], error["input"]
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in (where, *loc) if p != "").lstrip(".")
    section = _section_at(root, loc[:-1]) if loc else root
    field = section.model_fields.get(loc[-1]) if loc and isinstance(loc[-1], str) else None
    or_none = " or None" if field is not None and type(None) in typing.get_args(field.annotation) else ""
    if kind == "extra_forbidden":
        return _valid_keys_message(section, key.rpartition(".")[0], str(loc[-1])), True
    if kind in _TYPE_ERRORS and isinstance(value, dict) and kind != "model_type":
        return f"{key!r} is a value, not a section", True
    if kind in _TYPE_ERRORS:
        return f"{key or 'config'}: expected {_TYPE_ERRORS[kind]}{or_none}, got {value!r}", True
    if kind == "literal_error":
        return f"{key}={value!r}: must be {error['ctx']['expected']}{',' if or_none else ''}{or_none}", False
    if kind in _BOUNDS:
        op, bound = _BOUNDS[kind]
        return f"{key}={value!r}: must be {op} {error['ctx'][bound]:g}{or_none}", False
    reason = str(error["ctx"]["error"]) if kind == "value_error" else error["msg"]
    return (f"{key}={value!r}: {reason}" if loc else reason), False


def _one_line(err: ValidationError, root: type[BaseModel], where: str = "") -> tuple[str, bool]:
    """A ValidationError as one line: the unknown keys and wrong types, or else every bad value;
    and whether it is about values only (the keys and types are right)."""
    described = [_describe(error, root, where) for error in err.errors()]
    type_errors = [text for text, is_type in described if is_type]
    return "; ".join(type_errors or [text for text, _ in described]), not type_errors


def config_from_dict(values: dict, name: str | None = None) -> Config:
    """Validate a nested dict and return a :class:`Config` (missing keys take the schema defaults)."""
    if name is not None and isinstance(values, dict):
        values = {**values, "name": name}
    try:
        return Config.model_validate(values)
    except ValidationError as err:
        text, values_only = _one_line(err, Config)
        name = values.get("name") if isinstance(values, dict) else None
        raise ConfigError(f"config {name or '<unnamed>'} is not valid: {text}" if values_only else text) from None


def merge(base: dict, update: dict) -> dict:
    """Deep-merge ``update`` into a copy of ``base`` (for configs derived from another config)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


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


def apply_overrides(cfg: Config, overrides: dict | list | tuple | None) -> Config:
    """Return a new validated config with ``overrides`` applied: a dict of dotted keys
    (``{"optim.lr": 0.01}``) or nested dicts, or a list of ``"a.b=value"`` strings."""
    if not overrides:
        return cfg
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = [parse_override(o) if isinstance(o, str) else tuple(o) for o in overrides]
    values = cfg.to_dict()
    for key, value in items:
        key = _unalias(key)
        if key == "name":
            raise ConfigError("'name' cannot be overridden: it is the config file's name; use --work-dir/--run")
        for part in reversed(key.split(".")):  # "a.b", v -> {"a": {"b": v}}
            value = {part: value}
        values = merge(values, value)
    try:
        return config_from_dict(values)
    except ConfigError as err:
        raise ConfigError(f"bad override: {err}") from None


def _unalias(key: str) -> str:
    """MMAction2 spells backbone options ``model.backbone.<name>`` (``model.backbone.shift_div``);
    tinlib's model section is flat, so those keys map to ``model.<name>``."""
    prefix = "model.backbone."
    if key.startswith(prefix) and key[len(prefix):] in ModelConfig.model_fields:
        return "model." + key[len(prefix):]
    return key


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

