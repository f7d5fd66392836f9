"""Checkpoints: read safely, recognise the layout, map keys onto a tinlib model, load strictly.

Layouts understood (key names and nesting as published by each project):
- ``tinlib``: this package's own files (``save_checkpoint``).
- ``mmaction2-0.x`` / ``mmaction2-1.x``: ``backbone.layerL.B.convK.conv``/``.bn`` (mmcv ConvModule
  names); TIN wraps block conv1 as ``conv1.conv.net1`` (interlace) + ``conv1.conv.net2`` (conv);
  TSM as ``conv1.conv.net``; head ``cls_head.fc_cls``.
- ``tin-original``: deepcs233/TIN ``module.base_model.*`` with ``biasnet``/``weightnet`` and
  ``module.new_fc``.
- ``torchvision``: an ImageNet ResNet state dict (backbone only; ``fc`` is dropped).

Every layout is first renamed to a neutral form in which a block's first conv is
``layerL.B.conv1.weight`` and its temporal module ``layerL.B.conv1.temporal.*``; the last step
fits those names to the target model (plain conv for TSN, ``conv1.conv`` inside a TIN/TSM
wrapper), so weights move between TIN, TSM and TSN and torchvision weights always land inside
the wrappers.
"""
from __future__ import annotations

import hashlib
import pickle
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from tinlib.io import atomic_torch_save

BACKBONE_ONLY_LAYOUTS = {"torchvision"}
TORCHVISION_URL = re.compile(r"^torchvision://(resnet(?:18|34|50|101))$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


# --------------------------------------------------------------------------------------------
# Reading without running code
# --------------------------------------------------------------------------------------------
class _Opaque:
    """Stand-in for harmless bookkeeping objects in upstream checkpoints (e.g. mmengine's
    HistoryBuffer in ``message_hub``); their state is kept as a plain dict and never executed."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _safe_globals() -> list:
    import numpy as np

    allowed: list = [np.dtype, np.ndarray, np.bool_, np.float16, np.float32, np.float64,
                     np.int8, np.int16, np.int32, np.int64, np.uint8]
    allowed += [type(np.dtype(name)) for name in ("float16", "float32", "float64", "int32", "int64", "uint8", "bool")]
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    allowed += [(scalar, "numpy.core.multiarray.scalar"), (_reconstruct, "numpy.core.multiarray._reconstruct"),
                scalar, _reconstruct]
    for name in ("mmengine.logging.history_buffer.HistoryBuffer", "mmengine.config.config.ConfigDict",
                 "mmcv.utils.config.ConfigDict"):
        allowed.append((_Opaque, name))
    return allowed


def read_checkpoint(path: str | Path, trusted: bool = False) -> dict:
    """Load a checkpoint file on the CPU with ``weights_only=True`` (tensors, plain containers,
    numpy scalars and a few upstream bookkeeping types only). A file that needs anything else
    is refused unless ``trusted=True``, which unpickles it fully: only for files you made."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if trusted:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: refused to unpickle it safely ({first}). The file contains Python objects beyond "
            "tensors and plain containers, and unpickling them could run code. If you made this file or "
            "trust its source, load it with trusted=True (CLI: --trust-checkpoint).") from None


def extract_state_dict(obj: Any, path: str | Path = "<checkpoint>") -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint object (``state_dict``/``model`` entry or the object itself)."""
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: no state dict found (expected a dict of tensors, or one under 'state_dict')")
    return dict(obj)


# --------------------------------------------------------------------------------------------
# Layouts -> neutral names
# --------------------------------------------------------------------------------------------
def detect_layout(checkpoint: Any, state: dict[str, torch.Tensor]) -> str:
    keys = state.keys()
    meta = checkpoint.get("meta", {}) if isinstance(checkpoint, dict) else {}
    if isinstance(meta, dict) and meta.get("format") == "tinlib":
        return "tinlib"
    if any(k.startswith("module.base_model.") for k in keys):
        return "tin-original"
    if "backbone.conv1.conv.weight" in keys:
        is_1x = isinstance(checkpoint, dict) and ("message_hub" in checkpoint or
                                                  (isinstance(meta, dict) and "mmengine_version" in meta))
        return "mmaction2-1.x" if is_1x else "mmaction2-0.x"
    if "backbone.conv1.weight" in keys:
        return "tinlib"
    if "conv1.weight" in keys and "layer1.0.conv1.weight" in keys:
        return "torchvision"
    sample = ", ".join(list(keys)[:5])
    raise CheckpointError(f"unrecognised checkpoint layout (first keys: {sample}); supported: tinlib, "
                          "MMAction2 0.x/1.x, the original TIN repo, torchvision ResNet")


_BLOCK = r"(layer\d+\.\d+)"
_RULES = {
    "mmaction2": [
        (r"^backbone\.conv1\.conv\.weight$", "backbone.conv1.weight"),
        (r"^backbone\.conv1\.bn\.(.+)$", r"backbone.bn1.\1"),
        (rf"^backbone\.{_BLOCK}\.conv1\.conv\.net1\.(.+)$", r"backbone.\1.conv1.temporal.\2"),
        (rf"^backbone\.{_BLOCK}\.conv1\.conv\.net2\.weight$", r"backbone.\1.conv1.weight"),
        (rf"^backbone\.{_BLOCK}\.conv1\.conv\.net\.weight$", r"backbone.\1.conv1.weight@tsm"),
        (rf"^backbone\.{_BLOCK}\.conv(\d)\.conv\.weight$", r"backbone.\1.conv\2.weight"),
        (rf"^backbone\.{_BLOCK}\.conv(\d)\.bn\.(.+)$", r"backbone.\1.bn\2.\3"),
        (rf"^backbone\.{_BLOCK}\.downsample\.conv\.(.+)$", r"backbone.\1.downsample.0.\2"),
        (rf"^backbone\.{_BLOCK}\.downsample\.bn\.(.+)$", r"backbone.\1.downsample.1.\2"),
        (r"^cls_head\.fc_cls\.(weight|bias)$", r"cls_head.fc_cls.\1"),
    ],
    "tin-original": [
        (rf"^module\.base_model\.{_BLOCK}\.conv1\.net1\.biasnet\.net\.conv\.(.+)$", r"backbone.\1.conv1.temporal.offset_net.conv.\2"),
        (rf"^module\.base_model\.{_BLOCK}\.conv1\.net1\.biasnet\.net\.fc\.(.+)$", r"backbone.\1.conv1.temporal.offset_net.fc1.\2"),
        (rf"^module\.base_model\.{_BLOCK}\.conv1\.net1\.biasnet\.net\.lastlayer\.(.+)$", r"backbone.\1.conv1.temporal.offset_net.fc2.\2"),
        (rf"^module\.base_model\.{_BLOCK}\.conv1\.net1\.weightnet\.net\.lastlayer\.(.+)$", r"backbone.\1.conv1.temporal.weight_net.conv.\2"),
        (rf"^module\.base_model\.{_BLOCK}\.conv1\.net2\.weight$", r"backbone.\1.conv1.weight"),
        (r"^module\.base_model\.fc\.", None),  # became Dropout upstream; nothing to load
        (r"^module\.base_model\.(.+)$", r"backbone.\1"),
        (r"^module\.new_fc\.(weight|bias)$", r"cls_head.fc_cls.\1"),
    ],
    "torchvision": [
        (r"^fc\.(weight|bias)$", None),
        (r"^(.+)$", r"backbone.\1"),
    ],
    "tinlib": [
        (rf"^backbone\.{_BLOCK}\.conv1\.conv\.weight$", r"backbone.\1.conv1.weight"),
        (r"^(.+)$", r"\1"),
    ],
}


def _neutral_name(layout: str, key: str) -> str | None:
    rules = _RULES["mmaction2" if layout.startswith("mmaction2") else layout]
    for pattern, replacement in rules:
        if re.match(pattern, key):
            return None if replacement is None else re.sub(pattern, replacement, key)
    return key  # unknown keys stay as they are and are reported as unexpected


def _fit_to_model(neutral: str, model_keys: set[str]) -> str:
    """Neutral ``layerL.B.conv1.weight`` -> ``layerL.B.conv1.conv.weight`` where the model wraps it."""
    wrapped = re.sub(r"\.conv1\.weight$", ".conv1.conv.weight", neutral)
    return wrapped if wrapped in model_keys and neutral not in model_keys else neutral


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
@dataclass
class LoadReport:
    path: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    kept_initial: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.path}: layout {self.layout}, {len(self.loaded)} tensors loaded"]
        for name, items in (("missing in checkpoint", self.missing), ("unexpected (not loaded)", self.unexpected),
                            ("shape mismatch (not loaded)", self.mismatched), ("skipped on purpose", self.skipped),
                            ("left at initialization (allowed)", self.kept_initial)):
            if items:
                shown = ", ".join(items[:6]) + (f", ... ({len(items)} in all)" if len(items) > 6 else "")
                lines.append(f"  {name}: {shown}")
        return "\n".join(lines)


def _is_temporal_or_head(key: str) -> bool:
    return ".temporal." in key or key.startswith("cls_head.")


def map_state_dict(model: nn.Module, state: dict[str, torch.Tensor], layout: str,
                   tsm_conv1: str = "transfer", path: str = "<checkpoint>") -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Rename ``state`` (of ``layout``) to ``model``'s names; returns (mapped state, report so far)."""
    if tsm_conv1 not in ("transfer", "skip"):
        raise ValueError(f"tsm_conv1 must be 'transfer' or 'skip', got {tsm_conv1!r}")
    target = model.state_dict()
    model_keys = set(target)
    has_interlace = any(".temporal.offset_net." in k for k in model_keys)
    report = LoadReport(path=str(path), layout=layout)
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        neutral = _neutral_name(layout, key)
        if neutral is None:
            report.skipped.append(key)
            continue
        if neutral.endswith("@tsm"):
            neutral = neutral[: -len("@tsm")]
            if has_interlace and tsm_conv1 == "skip":
                report.skipped.append(key)  # MMAction2's non-strict TSM->TIN transfer leaves these out
                continue
        name = _fit_to_model(neutral, model_keys)
        if name not in model_keys:
            report.unexpected.append(key)
        elif target[name].shape != value.shape:
            report.mismatched.append(f"{key} {list(value.shape)} vs model {name} {list(target[name].shape)}")
        else:
            mapped[name] = value
    report.loaded = sorted(mapped)
    return mapped, report


def load_checkpoint(model: nn.Module, path: str | Path, *, strict: bool = True, allow_missing: Iterable[str] = (),
                    tsm_conv1: str = "transfer", trusted: bool = False, verbose: bool = True) -> LoadReport:
    """Load any supported checkpoint into ``model`` and report what happened.

    strict: every checkpoint tensor must land and every model tensor must be filled, except
    those matching a regex in ``allow_missing``; backbone-only layouts (torchvision) never fill
    the head or the temporal modules, so those are not required from them. With strict=False,
    what fits is loaded and the rest is listed in the report (MMAction2's behaviour).
    tsm_conv1: "transfer" moves a TSM checkpoint's block conv1 weights into a TIN model;
    "skip" leaves them out, as MMAction2's non-strict TSM->TIN fine-tune effectively did.
    """
    checkpoint = read_checkpoint(path, trusted=trusted)
    state = extract_state_dict(checkpoint, path)
    layout = detect_layout(checkpoint, state)
    mapped, report = map_state_dict(model, state, layout, tsm_conv1, path)
    patterns = [re.compile(p) for p in allow_missing]
    for key in model.state_dict():
        if key in mapped:
            continue
        if key.endswith("num_batches_tracked"):
            continue  # older files lack BN step counters; they only matter for momentum=None
        if (layout in BACKBONE_ONLY_LAYOUTS and _is_temporal_or_head(key)) or any(p.search(key) for p in patterns):
            report.kept_initial.append(key)
            continue
        report.missing.append(key)
    if strict and (report.missing or report.unexpected or report.mismatched):
        raise CheckpointError(f"checkpoint does not fit {type(model).__name__} "
                              f"{getattr(model, 'arch', '')}:\n{report}\n"
                              "Check the arch/num_classes/num_segments, or load with strict=False.")
    model.load_state_dict(mapped, strict=False)
    if verbose:
        print(report)
    return report


def load_pretrained_backbone(model: nn.Module, spec: str, trusted: bool = False) -> LoadReport:
    """ImageNet initialisation of a recognizer's backbone from a local file or ``torchvision://resnetD``
    (downloaded through torchvision, so it needs internet; the V1 weights, as mmcv uses)."""
    match = TORCHVISION_URL.match(spec)
    if match:
        from torchvision.models import get_model_weights

        weights = get_model_weights(match.group(1))["IMAGENET1K_V1"]
        state = weights.get_state_dict(progress=True)
        mapped, report = map_state_dict(model, state, "torchvision", path=spec)
        if report.unexpected or report.mismatched:
            raise CheckpointError(f"torchvision weights do not fit the backbone:\n{report}")
        model.load_state_dict(mapped, strict=False)
        return report
    if "://" in spec:
        raise CheckpointError(f"unknown pretrained source {spec!r}: use a local file or torchvision://resnet50")
    return load_checkpoint(model, spec, strict=True, allow_missing=(r"^cls_head\.", r"\.temporal\."),
                           trusted=trusted, verbose=False)


# --------------------------------------------------------------------------------------------
# Saving and publishing
# --------------------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, model: nn.Module, meta: dict | None = None, **extra: Any) -> Path:
    """Write ``{"state_dict", "meta", **extra}`` atomically; ``meta`` records tinlib's layout."""
    from tinlib import __version__

    info = {"format": "tinlib", "tinlib_version": __version__, "arch": getattr(model, "arch", None),
            "num_classes": getattr(model, "num_classes", None), "num_segments": getattr(model, "num_segments", None)}
    info.update(meta or {})
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return atomic_torch_save(path, {"state_dict": state, "meta": info, **extra})


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def publish_checkpoint(src: str | Path, out_dir: str | Path, name: str) -> Path:
    """Release a training checkpoint as ``<name>-<first 8 hex of sha256>.pth``: only weights and
    meta are kept (no optimizer/scheduler state), as MMAction2's model-zoo files are named."""
    checkpoint = read_checkpoint(src)
    slim = {"state_dict": extract_state_dict(checkpoint, src), "meta": checkpoint.get("meta", {})}
    out_dir = Path(out_dir)
    tmp = atomic_torch_save(out_dir / f".{name}.unhashed.pth", slim)
    final = out_dir / f"{name}-{sha256_of(tmp)[:8]}.pth"
    shutil.move(str(tmp), final)
    return final


def verify_published(path: str | Path) -> bool:
    """True when a ``<name>-<hash8>.pth`` file's sha256 starts with its suffix."""
    match = re.search(r"-([0-9a-f]{8})\.pth$", str(path))
    if not match:
        raise CheckpointError(f"{path}: name has no '-<8 hex digits>.pth' suffix to verify")
    return sha256_of(path).startswith(match.group(1))
