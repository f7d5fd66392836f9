"""The architecture a checkpoint was saved from (its meta: tinlib's ``arch``, MMAction2's config text
parsed with :mod:`ast` and never run, a config name; else its tensor names), and the refusal of one
that differs from the model's."""
from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tinlib.checkpoint.layouts import BLOCK
from tinlib.checkpoint.read import CheckpointError
from tinlib.config import ARCH_PATTERN


class ArchMismatchError(CheckpointError):
    """The checkpoint holds another architecture than the model (every tensor may still fit)."""


@dataclass(frozen=True)
class ArchInfo:
    """What is known of a model's architecture: temporal ``kind`` (tin / tsm / tsn), ResNet
    ``depth`` and ``shift_div`` (None where unknown), TSM's ``temporal_pool`` (which tinlib's
    models never do), and where it was read from (``source``)."""

    kind: str
    depth: int | None = None
    shift_div: int | None = None
    temporal_pool: bool = False
    source: str = ""

    @property
    def name(self) -> str:
        """``tsm_r50``, or ``tsm`` when the depth is unknown."""
        return f"{self.kind}_r{self.depth}" if self.depth else self.kind

    def describe(self, options: bool = False) -> str:
        """E.g. ``"tsm_r50 with shift_div=8"``: ``shift_div`` when ``options`` (and known),
        ``temporal_pool=True`` always (no tinlib model has it)."""
        extra = ([f"shift_div={self.shift_div}"] if options and self.shift_div else []) + (
            ["temporal_pool=True"] if self.temporal_pool else [])
        return self.name + (f" with {', '.join(extra)}" if extra else "")

    def differs_from(self, other: ArchInfo) -> bool:
        """Whether this and ``other`` cannot be the same architecture: the kind, ``temporal_pool``,
        the depth or the shift_div differ (a field unknown on either side is not compared, and
        TSN's ``shift_div`` never is)."""
        if self.kind != other.kind or self.temporal_pool != other.temporal_pool:
            return True
        if self.depth and other.depth and self.depth != other.depth:
            return True
        return bool(self.kind != "tsn" and self.shift_div and other.shift_div and self.shift_div != other.shift_div)


# Config and experiment names: "tsm_r50_1x1x8_50e_sthv1_rgb.py", "tin_tsm_finetune_r50_..."
_CONFIG_NAME = re.compile(r"^(tin|tsm|tsn)[_-]")
_CONFIG_NAME_DEPTH = re.compile(r"[_-]r(\d+)(?=[_-]|$)")
# MMAction2 backbone types -> temporal kind (ResNet: the 2D ResNet of TSN)
_MMACTION_BACKBONES = {"ResNetTIN": "tin", "ResNetTSM": "tsm", "ResNet": "tsn"}


def model_arch(model: nn.Module) -> ArchInfo | None:
    """The architecture of a tinlib model, from its ``arch`` attribute (``tin_r50``) and temporal
    modules, else from the names of its parameters; None when neither says."""
    shift_div: int | None = None
    for module in model.modules():
        value = getattr(module, "shift_div", None)
        if type(module).__name__ in ("TemporalShift", "TemporalInterlace") and isinstance(value, int):
            shift_div = value
            break
    match = ARCH_PATTERN.match(str(getattr(model, "arch", "") or ""))
    if match:
        return ArchInfo(match.group(1), int(match.group(2)), shift_div, source="its arch")
    kind = _kind_from_keys(model.state_dict().keys(), "tinlib")
    return ArchInfo(kind, None, shift_div, source="implied by its parameter names") if kind else None


def checkpoint_arch(checkpoint: Any, state: dict[str, torch.Tensor], layout: str) -> ArchInfo | None:
    """The architecture a checkpoint was saved from: what its meta records (tinlib's ``arch``;
    MMAction2's config text ``config`` (0.x) / ``cfg`` (1.x), else its config or experiment name),
    else what its tensor names in ``layout`` imply; None when nothing says."""
    meta = checkpoint.get("meta") if isinstance(checkpoint, dict) else None
    if isinstance(meta, dict):
        recorded = _arch_from_meta(meta)
        if recorded is not None:
            return recorded
    kind = _kind_from_keys(state.keys(), layout)
    return ArchInfo(kind, source="implied by its tensor names") if kind else None


def _arch_from_meta(meta: dict) -> ArchInfo | None:
    match = ARCH_PATTERN.match(str(meta.get("arch") or ""))
    if match:
        shift_div = meta.get("shift_div") if isinstance(meta.get("shift_div"), int) else None
        return ArchInfo(match.group(1), int(match.group(2)), shift_div, source="recorded in its meta 'arch'")
    for key in ("config", "cfg"):
        if isinstance(meta.get(key), str):
            found = _arch_from_config_text(meta[key], key)
            if found is not None:
                return found
    for key in ("config_name", "exp_name", "experiment_name"):
        name = Path(str(meta.get(key) or "")).name
        match = _CONFIG_NAME.match(name)
        if match:
            depth = _CONFIG_NAME_DEPTH.search(name)
            return ArchInfo(match.group(1), int(depth.group(1)) if depth else None,
                            source=f"recorded in its meta '{key}' {name}")
    return None


def _arch_from_config_text(text: str, key: str) -> ArchInfo | None:
    """The backbone of an MMAction2 config text (``model = dict(backbone=dict(type='ResNetTSM',
    depth=50, shift_div=8, ...))``) stored under ``meta[key]``; None when it names no backbone tinlib knows."""
    backbone = _backbone_options(text)
    backbone_type = backbone.get("type")
    if backbone_type not in _MMACTION_BACKBONES:
        return None
    kind = _MMACTION_BACKBONES[backbone_type]
    if (kind == "tsm" and backbone.get("is_shift") is False) or (kind == "tin" and backbone.get("is_tin") is False):
        kind = "tsn"  # the temporal module switched off: a plain ResNet
    depth, shift_div = backbone.get("depth"), backbone.get("shift_div")
    return ArchInfo(kind, depth if isinstance(depth, int) else None,
                    shift_div if kind != "tsn" and isinstance(shift_div, int) else None,
                    temporal_pool=kind == "tsm" and backbone.get("temporal_pool") is True,
                    source=f"recorded in its MMAction2 config, meta '{key}': backbone {backbone_type}")


def _backbone_options(text: str) -> dict[str, Any]:
    """The literal options of the first ``backbone=dict(...)`` (or ``'backbone': {...}``) in a config
    text, read from its syntax tree; options that are no literal, and a text that is no Python, give
    nothing."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    for node in ast.walk(tree):  # breadth first: the model's backbone before any nested one
        backbone = _dict_entries(node).get("backbone")
        options = _dict_entries(backbone) if backbone is not None else {}
        if options:
            return {name: _literal(value) for name, value in options.items()}
    return {}


def _dict_entries(node: ast.AST) -> dict[str, ast.expr]:
    """``{key: value node}`` of a ``dict(key=...)`` call or a ``{'key': ...}`` display; {} for any other node."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return {kw.arg: kw.value for kw in node.keywords if kw.arg is not None}
    if isinstance(node, ast.Dict):
        return {k.value: v for k, v in zip(node.keys, node.values)
                if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return {}


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return None


# How a layout names a block's first conv in TSM (wrapped; TIN's too) and in TSN (plain)
_BLOCK_CONV1 = {"mmaction2": (r"\.conv1\.conv\.net\.weight$", r"\.conv1\.conv\.weight$"),
                "tinlib": (r"\.conv1\.conv\.weight$", r"\.conv1\.weight$")}


def _kind_from_keys(keys: Iterable[str], layout: str) -> str | None:
    """tin / tsm / tsn from the names of a residual block's first conv, None when they do not say
    (torchvision weights, an unknown layout)."""
    keys = list(keys)
    if any(re.search(r"\.(offset_net|weight_net|biasnet|weightnet)\.", k) for k in keys):
        return "tin"
    blocks = [k for k in keys if re.match(rf"^backbone\.{BLOCK}\.", k)]
    conv1_names = _BLOCK_CONV1.get("mmaction2" if layout.startswith("mmaction2") else layout, ())
    for kind, conv1 in zip(("tsm", "tsn"), conv1_names):
        if any(re.search(conv1, k) for k in blocks):
            return kind
    return None


def arch_difference(model: nn.Module, checkpoint: Any, state: dict[str, torch.Tensor], layout: str) -> str | None:
    """``"the checkpoint holds a tsm_r18 model (recorded in its meta 'arch') but the model to load it
    into is tin_r18"``, or None when both are the same architecture as far as is known (a checkpoint
    that records no architecture and whose tensor names imply none passes)."""
    pair = _arch_pair(model, checkpoint, state, layout)
    if pair is None:
        return None
    theirs, source, ours = pair
    return f"the checkpoint holds a {theirs} model ({source}) but the model to load it into is {ours}"


def _arch_pair(model: nn.Module, checkpoint: Any, state: dict[str, torch.Tensor], layout: str
               ) -> tuple[str, str, str] | None:
    """``(the checkpoint's architecture, where that was read, the model's)`` when they differ."""
    ours, theirs = model_arch(model), checkpoint_arch(checkpoint, state, layout)
    if ours is None or theirs is None or not theirs.differs_from(ours):
        return None
    # same kind and depth: the options make the difference
    options = theirs.kind == ours.kind and not (theirs.depth and ours.depth and theirs.depth != ours.depth)
    return theirs.describe(options), theirs.source, ours.describe(options)


def check_arch(model: nn.Module, checkpoint: Any, state: dict[str, torch.Tensor], layout: str,
               path: str | Path = "<checkpoint>", *, allow_arch_mismatch: bool = False) -> str | None:
    """Refuse a checkpoint of another architecture than ``model`` (:func:`arch_difference`): TSM
    weights in a TSN model run without their shift although every tensor fits. Returns a note on
    the mismatch that ``allow_arch_mismatch`` let through, else None; :class:`ArchMismatchError`
    (one line naming both and how to load anyway).
    """
    pair = _arch_pair(model, checkpoint, state, layout)
    if pair is None:
        return None
    if allow_arch_mismatch:
        theirs, source, ours = pair
        return f"the checkpoint is {theirs} ({source}), the model {ours}: loaded anyway (allowed)"
    raise ArchMismatchError(
        f"{path}: {arch_difference(model, checkpoint, state, layout)}; weights of one architecture compute "
        "something else in another even where every tensor fits. Use a config of the checkpoint's architecture, "
        "or load it anyway with --allow-arch-mismatch (allow_arch_mismatch=True)")
