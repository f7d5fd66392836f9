"""A run's setting and places: the config with the data's and the user's overrides applied
(:func:`resolve`), its work dir, results folder, checkpoint and trained model. The notebooks'
parameters mean the same everywhere: ``config`` (a name or a path), ``data_root`` (its
``tinlib_prepare.json`` points the config at the lists), ``work_dir`` (default
``work_dirs/<config>``), ``overrides`` (``{"dotted.key": value}``) and ``results_dir``.
"""
from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinlib.config import Config, apply_overrides, load_config
from tinlib.records import RecordError
from tinlib.report.workflow import read_data_description

if TYPE_CHECKING:  # the engine (and torch) load on first use, not on import
    from torch import nn
    from torch.utils.data import Dataset

log = logging.getLogger(__name__)


def _relative_to(root: Path, path: str) -> str:
    """``path`` relative to ``root`` when it lies inside it (configs keep paths relative to data.root)."""
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(Path(path).resolve())


def data_overrides(cfg: Config, data_root: str | os.PathLike | None) -> dict[str, Any]:
    """The overrides that point the loaded config ``cfg`` at ``data_root``: ``{"dotted.key": value}``
    for the keys whose value changes; none without a ``data_root``. Its ``tinlib_prepare.json`` (or
    ``synthetic_meta.json``) gives the lists, folders, file-name template and class count.

    Raises:
        RecordError: that file is damaged or its lists are incomplete (the message names it)."""
    if not data_root:
        return {}
    description = read_data_description(data_root)
    wanted: dict[str, Any] = {"data.root": str(data_root)}
    if description is not None:
        lists = description.lists
        kind = cfg.data.kind if cfg.data.kind in lists else description.kind or next(iter(lists), None)
        if kind:
            lst = lists[kind]
            val_prefix_of = lst.val_data_prefix or lst.data_prefix
            train_ok = lst.train is not None and lst.data_prefix is not None
            if lst.val is None or val_prefix_of is None or (lst.train is not None and not train_ok):
                raise RecordError(f"{Path(data_root) / description.FILENAME}: its {kind!r} lists lack the train or "
                                  f"val list or the data prefix; rerun {description.WRITER}")
            rel = functools.partial(_relative_to, Path(data_root))
            val_prefix = rel(val_prefix_of)
            # a held-out test split (the synthetic data) is tested on; the releases test on val
            test_prefix = rel(lst.test_data_prefix) if lst.test_data_prefix else val_prefix
            wanted.update({"data.kind": kind, "data.val_ann": rel(lst.val), "data.test_ann": rel(lst.test or lst.val),
                           "data.val_prefix": val_prefix, "data.test_prefix": test_prefix})
            if train_ok:  # absent when only the val split was prepared (to test a published checkpoint)
                assert lst.train is not None and lst.data_prefix is not None
                wanted.update({"data.train_ann": rel(lst.train), "data.train_prefix": rel(lst.data_prefix)})
            if lst.filename_tmpl:
                wanted["data.filename_tmpl"] = lst.filename_tmpl
            default_start = 1 if kind == "rawframes" else 0
            current_start = cfg.data.start_index if cfg.data.start_index is not None else default_start
            if lst.start_index is not None and lst.start_index != current_start:
                wanted["data.start_index"] = lst.start_index
        if description.num_classes and description.num_classes != cfg.model.num_classes:
            wanted["model.num_classes"] = int(description.num_classes)
    current = cfg.to_dict()
    out = {}
    for key, value in wanted.items():
        node: Any = current
        for part in key.split("."):
            node = node[part]
        if node != value:
            out[key] = value
    return out


def require_train_split(data_root: str | os.PathLike | None) -> None:
    """Stop before a training when ``data_root``'s ``tinlib_prepare.json`` has no train lists
    (only the val split was prepared, as ``make evaluate-published-*`` does).

    Raises:
        UserError: one line saying how to prepare the train split.
    """
    from tinlib.errors import UserError
    from tinlib.records import PrepareRecord

    description = read_data_description(data_root)
    if not isinstance(description, PrepareRecord) or not description.lists:
        return
    if all(lst.train is None for lst in description.lists.values()):
        splits = ", ".join(description.counts) or "val"
        release_root = description.data_root or str(data_root)
        out = "" if Path(release_root) == Path(str(data_root)) else f" --out {data_root}"
        raise UserError(f"{Path(str(data_root)) / description.FILENAME} lists only the {splits} split (prepared to "
                        f"test a published checkpoint); training needs the train split: run `tinlib prepare "
                        f"{description.dataset} --root {release_root}{out}` (all splits; the extracted val frames "
                        f"are kept) or make reproduce-{description.dataset}")


def resolve(config: str, *, data_root: str | os.PathLike | None = None, overrides: dict | None = None,
            results_dir: str | os.PathLike | None = None, quiet: bool = False) -> Config:
    """The validated ``config`` with the overrides of :func:`run_overrides` applied (``data_root``
    None: the config's ``data.root``); ``quiet``: no note when the data changes the class count."""
    cfg = load_config(config)
    return apply_overrides(cfg, run_overrides(cfg, data_root, overrides, results_dir, quiet=quiet))


def run_overrides(cfg: Config, data_root: str | os.PathLike | None, overrides: dict | None = None,
                  results_dir: str | os.PathLike | None = None, *, quiet: bool = True) -> dict[str, Any]:
    """What :func:`resolve` applies to ``cfg``: the data's overrides, the user's (which win) and
    ``results_dir``; a subprocess given them as ``--set`` loads the same config. Without ``quiet``
    a note says when the data changes the class count."""
    auto = data_overrides(cfg, data_root)
    if "model.num_classes" in auto and not quiet:
        log.info(f"note: {data_root} holds {auto['model.num_classes']} classes; model.num_classes set to match "
                 f"(config: {cfg.model.num_classes})")
    merged = dict(auto)
    merged.update(overrides or {})
    if results_dir is not None:
        merged["results_dir"] = str(results_dir)
    return merged


def default_work_dir(cfg: Config, work_dir: str | os.PathLike | None = None) -> Path:
    """``work_dir`` when given, else ``cfg``'s (``work_dirs/<config name>``)."""
    return Path(work_dir) if work_dir else cfg.resolved_work_dir()


def run_folder(cfg: Config, run: str | None = None) -> Path:
    """Where the records of run ``run`` (default: the name of config ``cfg``) go: ``<results_dir>/<run>``."""
    return Path(cfg.results_dir) / (run or cfg.name)


def find_checkpoint(work_dir: str | os.PathLike, which: str = "latest") -> Path:
    """The checkpoint ``which`` in ``work_dir``: ``latest`` (the final weights), ``best`` (the best
    validation epoch; falls back to latest) or a path; FileNotFoundError saying to train first."""
    work_dir = Path(work_dir)
    if which not in ("latest", "best"):
        path = Path(which)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} not found")
        return path
    for name in ([f"{which}.pth"] + (["latest.pth"] if which == "best" else [])):
        if (work_dir / name).is_file():
            return work_dir / name
    raise FileNotFoundError(f"no {which}.pth in {work_dir}: train first (notebook 01_train, or `tinlib train`)")


def load_trained(config: str, *, data_root: str | os.PathLike | None = None,
                 work_dir: str | os.PathLike | None = None, checkpoint: str = "latest", overrides: dict | None = None,
                 split: str = "val") -> tuple[Config, nn.Module, Dataset]:
    """``(cfg, model, dataset)`` for inspection: the model of ``config`` with its trained
    ``checkpoint`` (see :func:`find_checkpoint`), in eval mode on the CPU, and its ``split``
    (``val``: one centre view per video), whose ``dataset[i]`` is ``(clip [T, 3, H, W], label)``."""
    from tinlib.checkpoint import load_checkpoint
    from tinlib.engine.build import build_model
    from tinlib.engine.splits import build_split_dataset

    cfg = resolve(config, data_root=data_root, overrides=overrides, quiet=True)
    model = build_model(cfg, pretrained=False, load_from=False, verbose=False)
    ckpt = find_checkpoint(default_work_dir(cfg, work_dir), checkpoint)
    load_checkpoint(model, ckpt, strict=True, verbose=False)
    return cfg, model.eval(), build_split_dataset(cfg, split)
