"""Checkpoint layouts (whose tensor names) and the key maps from each onto a tinlib model.

Layouts: ``tinlib`` (``save_checkpoint``); ``mmaction2-0.x`` / ``-1.x`` (mmcv ConvModule names; TIN's
block conv1 is ``conv1.conv.net1`` (interlace) + ``net2``, TSM's ``conv1.conv.net``); ``tin-original``
(the deepcs233/TIN repo); ``torchvision`` (an ImageNet ResNet, backbone only). Each is renamed to a
neutral form (a block's first conv ``layerL.B.conv1.weight``, its temporal module
``layerL.B.conv1.temporal.*``), then fitted to the model (plain conv for TSN, ``conv1.conv`` inside a
TIN/TSM wrapper), so weights move between TIN, TSM and TSN.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tinlib.checkpoint.read import CheckpointError

BACKBONE_ONLY_LAYOUTS = {"torchvision"}
BLOCK = r"(layer\d+\.\d+)"  # a residual block: layerL.B
HEAD_WEIGHT = "cls_head.fc_cls.weight"  # the classifier: [num_classes, features]
HEAD_KEYS = {HEAD_WEIGHT, "cls_head.fc_cls.bias"}


def detect_layout(checkpoint: Any, state: dict[str, torch.Tensor], path: str | Path = "<checkpoint>") -> str:
    """The layout of ``state``'s names: ``tinlib``, ``mmaction2-0.x``, ``mmaction2-1.x``, ``tin-original`` or
    ``torchvision`` (the ``checkpoint``'s ``meta`` and MMAction2 1.x's ``message_hub`` tell some apart);
    :class:`CheckpointError` naming ``path`` and the first keys when none fits."""
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
    raise CheckpointError(f"{path}: unrecognised checkpoint layout (first keys: {sample}); supported: tinlib, "
                          "MMAction2 0.x/1.x, the original TIN repo, torchvision ResNet")


_TIN_CONV1 = rf"^module\.base_model\.{BLOCK}\.conv1\."  # a block's conv1 in the TIN repo
# (pattern, neutral name or None to leave the tensor out); the first match wins. "@tsm" marks
# TSM's block conv1, which a TIN model may take or skip (``tsm_conv1``).
_RULES: dict[str, list[tuple[str, str | None]]] = {
    "mmaction2": [
        (r"^backbone\.conv1\.conv\.weight$", "backbone.conv1.weight"),
        (r"^backbone\.conv1\.bn\.(.+)$", r"backbone.bn1.\1"),
        (rf"^backbone\.{BLOCK}\.conv1\.conv\.net1\.(.+)$", r"backbone.\1.conv1.temporal.\2"),
        (rf"^backbone\.{BLOCK}\.conv1\.conv\.net2\.weight$", r"backbone.\1.conv1.weight"),
        (rf"^backbone\.{BLOCK}\.conv1\.conv\.net\.weight$", r"backbone.\1.conv1.weight@tsm"),
        (rf"^backbone\.{BLOCK}\.conv(\d)\.conv\.weight$", r"backbone.\1.conv\2.weight"),
        (rf"^backbone\.{BLOCK}\.conv(\d)\.bn\.(.+)$", r"backbone.\1.bn\2.\3"),
        (rf"^backbone\.{BLOCK}\.downsample\.conv\.(.+)$", r"backbone.\1.downsample.0.\2"),
        (rf"^backbone\.{BLOCK}\.downsample\.bn\.(.+)$", r"backbone.\1.downsample.1.\2"),
        (r"^cls_head\.fc_cls\.(weight|bias)$", r"cls_head.fc_cls.\1"),
    ],
    "tin-original": [
        (rf"{_TIN_CONV1}net1\.biasnet\.net\.conv\.(.+)$", r"backbone.\1.conv1.temporal.offset_net.conv.\2"),
        (rf"{_TIN_CONV1}net1\.biasnet\.net\.fc\.(.+)$", r"backbone.\1.conv1.temporal.offset_net.fc1.\2"),
        (rf"{_TIN_CONV1}net1\.biasnet\.net\.lastlayer\.(.+)$", r"backbone.\1.conv1.temporal.offset_net.fc2.\2"),
        (rf"{_TIN_CONV1}net1\.weightnet\.net\.lastlayer\.(.+)$", r"backbone.\1.conv1.temporal.weight_net.conv.\2"),
        (rf"{_TIN_CONV1}net2\.weight$", r"backbone.\1.conv1.weight"),
        (r"^module\.base_model\.fc\.", None),  # became Dropout upstream; nothing to load
        (r"^module\.base_model\.(.+)$", r"backbone.\1"),
        (r"^module\.new_fc\.(weight|bias)$", r"cls_head.fc_cls.\1"),
    ],
    "torchvision": [
        (r"^fc\.(weight|bias)$", None),
        (r"^(.+)$", r"backbone.\1"),
    ],
    "tinlib": [
        (rf"^backbone\.{BLOCK}\.conv1\.conv\.weight$", r"backbone.\1.conv1.weight"),
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


@dataclass
class LoadReport:
    """What loading did: the layout found and the tensor names loaded, missing from the
    checkpoint, unexpected, of another shape, skipped on purpose or left at initialization."""

    path: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    kept_initial: list[str] = field(default_factory=list)
    arch_mismatch: str | None = None  # set when a checkpoint of another architecture was loaded on purpose
    # model name -> (its shape in the checkpoint, in the model), for the tensors in ``mismatched``
    shapes: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)

    def head_classes(self) -> int | None:
        """The checkpoint's class count when the classifier head is the only tensor that does not
        fit (another ``num_classes``), else None."""
        head = self.shapes.get(HEAD_WEIGHT)
        if head is None or self.missing or self.unexpected or not set(self.shapes) <= HEAD_KEYS:
            return None
        return head[0][0]

    def misfit(self, whose: str = "the model") -> str:
        """What does not fit, in one line: the class counts of the head when only they differ
        (``whose``: ``"config NAME"``, the model's side), else how many tensors are missing from the
        checkpoint, unexpected and of another shape, with an example of each."""
        classes = self.head_classes()
        if classes is not None:
            ours = self.shapes[HEAD_WEIGHT][1][0]
            shapes = next(m for m in self.mismatched if f" vs model {HEAD_WEIGHT} " in m)
            return (f"the checkpoint has {classes} classes but {whose} has model.num_classes={ours} "
                    f"(shape mismatch: {shapes})")
        counts = [f"{len(items)} {what} (e.g. {items[0]})" for what, items in (
            ("missing in checkpoint", self.missing), ("unexpected", self.unexpected),
            ("of another shape", self.mismatched)) if items]
        return f"its tensors do not fit {whose}: " + ", ".join(counts)

    def __str__(self) -> str:
        lines = [f"{self.path}: layout {self.layout}, {len(self.loaded)} tensors loaded"]
        if self.arch_mismatch:
            lines.append(f"  architecture: {self.arch_mismatch}")
        for name, items in (("missing in checkpoint", self.missing), ("unexpected (not loaded)", self.unexpected),
                            ("shape mismatch (not loaded)", self.mismatched), ("skipped on purpose", self.skipped),
                            ("left at initialization (allowed)", self.kept_initial)):
            if items:
                shown = ", ".join(items[:6]) + (f", ... ({len(items)} in all)" if len(items) > 6 else "")
                lines.append(f"  {name}: {shown}")
        return "\n".join(lines)


def map_state_dict(model: nn.Module, state: dict[str, torch.Tensor], layout: str,
                   tsm_conv1: str = "transfer", path: str = "<checkpoint>"
                   ) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Rename the tensors of ``state`` (in ``layout``) to ``model``'s names -> (the tensors that fit the
    model's names and shapes, under those names; a :class:`LoadReport` whose ``missing`` load_checkpoint
    fills). ``tsm_conv1``: ``"transfer"`` moves a TSM checkpoint's block conv1 weights into a TIN model,
    ``"skip"`` leaves them out (as MMAction2's non-strict TSM->TIN fine-tune did)."""
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
            report.shapes[name] = (list(value.shape), list(target[name].shape))
        else:
            mapped[name] = value
    report.loaded = sorted(mapped)
    return mapped, report
