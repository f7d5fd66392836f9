"""Loading a checkpoint of any supported layout into a tinlib model, strictly unless told otherwise."""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import nn

from tinlib.checkpoint.arch import arch_difference, check_arch
from tinlib.checkpoint.layouts import BACKBONE_ONLY_LAYOUTS, LoadReport, detect_layout, map_state_dict
from tinlib.checkpoint.read import CheckpointError, extract_state_dict, read_checkpoint
from tinlib.config import ARCH_DEPTHS
from tinlib.hub import is_remote

# torchvision's ImageNet ResNets, of the depths the backbone builds
TORCHVISION_URL = re.compile(rf"^torchvision://(resnet(?:{'|'.join(map(str, ARCH_DEPTHS))}))$")


def load_checkpoint(model: nn.Module, path: str | Path, *, strict: bool = True, allow_missing: Iterable[str] = (),
                    tsm_conv1: str = "transfer", trusted: bool = False, verbose: bool = True,
                    allow_arch_mismatch: bool = False) -> LoadReport:
    """Load any supported checkpoint into ``model`` (in place) and report what happened.

    ``path`` is a local file: resolve a URL or ``published:<config>`` first with
    :func:`tinlib.hub.resolve_checkpoint`. With ``strict``, every checkpoint tensor must land and every
    model tensor be filled, except those matching a regex of ``allow_missing`` and, from a
    backbone-only layout (torchvision), the head and temporal modules; ``strict=False`` loads what fits
    and lists the rest (MMAction2's behaviour). ``tsm_conv1``: see :func:`.layouts.map_state_dict`;
    ``trusted``: see :func:`.read.read_checkpoint`; ``allow_arch_mismatch`` loads a checkpoint of
    another architecture (TSM weights to fine-tune a TIN); ``verbose`` prints the report.
    :class:`CheckpointError` for a remote spec, an unreadable file or unknown layout, an architecture
    mismatch not allowed (:class:`ArchMismatchError`), or, with ``strict``, tensors that do not fit
    (:class:`MisfitError`).
    """
    if is_remote(path):
        raise CheckpointError(f"{path}: a remote checkpoint; download it first with "
                              "tinlib.hub.resolve_checkpoint(spec) (or `tinlib fetch`) and load the local file")
    checkpoint = read_checkpoint(path, trusted=trusted)
    state = extract_state_dict(checkpoint, path)
    layout = detect_layout(checkpoint, state, path)
    allowed = check_arch(model, checkpoint, state, layout, path, allow_arch_mismatch=allow_arch_mismatch)
    mapped, report = _fit(model, state, layout, str(path), tsm_conv1, allow_missing)
    report.arch_mismatch = allowed
    if strict and (report.missing or report.unexpected or report.mismatched):
        raise MisfitError(report)
    model.load_state_dict(mapped, strict=False)
    if verbose:
        print(report)
    return report


class MisfitError(CheckpointError):
    """A checkpoint whose tensors do not fit the model, in one line (:meth:`LoadReport.misfit`) with
    what to do; ``report`` says which tensors."""

    def __init__(self, report: LoadReport):
        classes = report.head_classes()
        todo = (f"--set model.num_classes={classes} to match the checkpoint, or " if classes is not None
                else "check the config's arch, num_classes and num_segments, or ")
        super().__init__(f"{report.path}: {report.misfit()}; {todo}--set model.load_strict=false to load what "
                         "fits (strict=False in Python)")
        self.report = report


def _fit(model: nn.Module, state: dict, layout: str, path: str, tsm_conv1: str = "transfer",
         allow_missing: Iterable[str] = ()) -> tuple[dict, LoadReport]:
    """:func:`map_state_dict`, with the report's ``missing``: the model's tensors the checkpoint
    does not fill (a tensor of another shape counts as mismatched only), except BN step counters
    and, kept at their initialization, those matching ``allow_missing`` and, from a backbone-only
    layout, the head and temporal modules."""
    mapped, report = map_state_dict(model, state, layout, tsm_conv1, path)
    patterns = [re.compile(p) for p in allow_missing]
    for key in model.state_dict():
        if key in mapped or key in report.shapes:
            continue
        if key.endswith("num_batches_tracked"):
            continue  # older files lack BN step counters; they only matter for momentum=None
        backbone_only = layout in BACKBONE_ONLY_LAYOUTS and (".temporal." in key or key.startswith("cls_head."))
        if backbone_only or any(p.search(key) for p in patterns):
            report.kept_initial.append(key)
            continue
        report.missing.append(key)
    return mapped, report


def describe_misfit(model: nn.Module, checkpoint: Any, path: str | Path, whose: str = "the model") -> str:
    """Why ``checkpoint`` (an object read from ``path``) does not load strictly into ``model``, in
    one line: another architecture (:func:`.arch.arch_difference`), another class count, or which
    tensors do not fit (:meth:`LoadReport.misfit`, ``whose`` naming the model's side); "" when its
    weights fit."""
    state = extract_state_dict(checkpoint, path)
    layout = detect_layout(checkpoint, state, path)
    difference = arch_difference(model, checkpoint, state, layout)
    if difference:
        return difference
    _, report = _fit(model, state, layout, str(path))
    return report.misfit(whose) if report.missing or report.unexpected or report.mismatched else ""


def load_pretrained_backbone(model: nn.Module, spec: str, trusted: bool = False) -> LoadReport:
    """ImageNet initialisation of a recognizer's backbone (the head and temporal modules keep theirs)
    from a local checkpoint file, or from ``torchvision://resnetD`` (torchvision's V1 weights, as mmcv
    uses; downloaded, so it needs internet). ``trusted``: see :func:`.read.read_checkpoint`.
    :class:`CheckpointError` for an unknown source, or weights that do not fit the backbone.
    """
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
    if "://" in spec and not is_remote(spec):
        raise CheckpointError(f"unknown pretrained source {spec!r}: use a local file, an http(s) URL or "
                              "torchvision://resnet50")
    # only the backbone's weights are taken, so the temporal kind of the source does not matter
    return load_checkpoint(model, spec, strict=True, allow_missing=(r"^cls_head\.", r"\.temporal\."),
                           trusted=trusted, verbose=False, allow_arch_mismatch=True)
