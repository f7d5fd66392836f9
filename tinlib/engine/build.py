"""The recognizer of a config: built with its initialization, put in training mode the way
MMAction2/TSM do, and checked against a checkpoint before any heavy work."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from tinlib.config import Config
from tinlib.engine.errors import RunError
from tinlib.errors import UserError


def build_model(cfg: Config, *, pretrained: bool = True, load_from: bool = True, verbose: bool = True):
    """The recognizer of ``cfg.model`` (``model(x)``, x: ``[B, V*T, 3, H, W]`` -> scores ``[B, K]``).

    ``pretrained``/``load_from``: load ``model.pretrained`` (ImageNet backbone weights) and the
    whole-model checkpoint ``model.load_from`` when the config names them (a ``load_from`` file that
    does not load raises :class:`RunError`). ``model.partial_bn`` freezes the affine parameters of
    every BatchNorm layer but the first.
    """
    from tinlib.models import build_recognizer

    m = cfg.model
    model = build_recognizer(m.arch, m.num_classes, m.num_segments, dropout=m.dropout, shift_div=m.shift_div,
                             interlace_grad=m.interlace_grad, interlace_backend=m.interlace_backend,
                             pretrained=_pretrained_source(m.pretrained) if pretrained and m.pretrained else None,
                             init_std=m.init_std, base_channels=m.base_channels, num_stages=m.num_stages)
    if load_from and m.load_from:
        from tinlib.checkpoint import CheckpointError, load_checkpoint

        try:
            load_checkpoint(model, _checkpoint_file("model.load_from", m.load_from), strict=m.load_strict,
                            tsm_conv1=m.tsm_conv1, verbose=verbose, allow_arch_mismatch=m.allow_arch_mismatch)
        except CheckpointError as err:
            raise RunError(f"model.load_from: {err}") from None
    if m.partial_bn:
        for bn in _norm_layers(model)[1:]:
            for p in bn.parameters(recurse=False):
                p.requires_grad_(False)
    return model


def check_model_checkpoints(cfg: Config) -> None:
    """Resolve the checkpoints ``cfg.model`` starts from before other work: ``model.pretrained``
    (unless ``torchvision://``) and ``model.load_from``, a path, a URL or ``published:<config>``
    (downloaded once into torch's hub cache). :class:`RunError` naming the key for a missing file
    or a folder."""
    if cfg.model.pretrained:
        _pretrained_source(cfg.model.pretrained)
    if cfg.model.load_from:
        _checkpoint_file("model.load_from", cfg.model.load_from)


def _checkpoint_file(key: str, spec: str) -> str:
    """The local file of the checkpoint that config key ``key`` names (a path, a URL or
    ``published:<config>``, see :func:`tinlib.hub.resolve_checkpoint`); :class:`RunError` naming the
    key for a missing file or a folder (a failed download keeps its own error and exit status)."""
    from tinlib.hub import DownloadError, resolve_checkpoint

    try:
        return str(resolve_checkpoint(spec))
    except DownloadError:
        raise
    except UserError as err:
        raise RunError(f"{key}: {err}") from None


def _pretrained_source(spec: str) -> str:
    """``model.pretrained`` as the backbone loader takes it: ``torchvision://resnetD`` as it is, a
    checkpoint as its local file."""
    return spec if spec.startswith("torchvision://") else _checkpoint_file("model.pretrained", spec)


def _norm_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


def set_train_mode(model: torch.nn.Module, cfg: Config) -> None:
    """``model.train()``, then BN layers back to eval mode for ``norm_eval`` (all) or
    ``partial_bn`` (all but the first), as MMAction2/TSM do at every ``train()``."""
    model.train()
    layers = _norm_layers(model)
    if cfg.model.norm_eval:
        for bn in layers:
            bn.eval()
    elif cfg.model.partial_bn:
        for bn in layers[1:]:
            bn.eval()


def check_checkpoint_fits(model: torch.nn.Module, path: str | Path, cfg: Config, *,
                          trusted: bool = False) -> tuple[Any, Any]:
    """Load ``path`` strictly into ``model`` (built from ``cfg``); returns ``(checkpoint, report)``:
    the file's contents and ``load_checkpoint``'s report (``layout``, ``loaded``, ...).

    ``path``: any layout ``tinlib.checkpoint`` reads, as a local file, an http(s) URL or
    ``published:<config>`` (downloaded into torch's hub cache first). ``trusted``: unpickle it fully
    (only for files the user made). A checkpoint that does not fit raises :class:`RunError` naming
    the likely cause (class count, segment count, architecture).
    """
    from tinlib.checkpoint import CheckpointError, MisfitError, load_checkpoint, read_checkpoint
    from tinlib.hub import resolve_checkpoint

    path = resolve_checkpoint(path)  # downloads once
    try:
        checkpoint = read_checkpoint(path, trusted=trusted)
        report = load_checkpoint(model, path, strict=True, tsm_conv1=cfg.model.tsm_conv1, trusted=trusted,
                                 verbose=False, allow_arch_mismatch=cfg.model.allow_arch_mismatch)
    except MisfitError as err:
        classes = err.report.head_classes()
        todo = (f"--set model.num_classes={classes} to match it" if classes is not None else
                "use the config it was trained with (its arch, num_classes and num_segments)")
        raise RunError(f"checkpoint {path} does not fit config {cfg.name}: {err.report.misfit(f'config {cfg.name}')}; "
                       f"{todo}") from None
    except CheckpointError as err:  # unreadable, or another architecture: one line naming the file
        raise RunError(str(err)) from None
    return checkpoint, report
