"""The train/val/test splits of a config: their paths, the checks that the data is there and fits
the model, and the dataset of each split with its sampling (training or test views)."""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from tinlib.config import Config
from tinlib.data.releases import RELEASES, SYNTHETIC
from tinlib.engine.errors import RunError

SPLITS = ("train", "val", "test")
log = logging.getLogger(__name__)


def split_paths(cfg: Config, split: str) -> tuple[Path, Path]:
    """``(annotation file, data folder)`` of ``split`` (one of :data:`SPLITS`, else ``ValueError``),
    under ``data.root`` unless the config gives absolute paths."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    d = cfg.data
    ann, prefix = {"train": (d.train_ann, d.train_prefix), "val": (d.val_ann, d.val_prefix),
                   "test": (d.test_ann, d.test_prefix)}[split]
    return cfg.data_path(ann), cfg.data_path(prefix)


# config ``data.dataset`` names that differ from the release's `tinlib prepare` sub-command
_DATASET_ALIASES = {"kinetics400": "k400"}


def prepare_hint(cfg: Config) -> str:
    """The ``tinlib prepare`` command line, in backquotes, that writes the data of ``cfg`` into
    ``data.root``: ``data.dataset`` picks the sub-command (``synthetic-<layout>`` is the embedded
    synthetic dataset, written at the frame height that ``zoo.resolution`` gives, e.g. "height 40");
    ``"`tinlib prepare ...`"`` for a dataset without its own sub-command."""
    name, root = cfg.data.dataset, cfg.data.root
    if name.startswith("synthetic"):
        layout = name.split("-", 1)[1] if "-" in name else "sthv1"
        layout_arg = f" --layout {layout}" if layout in SYNTHETIC.layouts and layout != "sthv1" else ""
        height = re.search(r"\bheight (\d+)", cfg.zoo.resolution)
        height_arg = f" --height {height.group(1)}" if height else ""
        return f"`tinlib prepare synthetic{layout_arg} --out {root}{height_arg}`"
    sub = _DATASET_ALIASES.get(name, name)
    return f"`tinlib prepare {sub} --root RELEASE_DIR --out {root}`" if sub in RELEASES else "`tinlib prepare ...`"


def check_data_paths(cfg: Config, splits: tuple[str, ...]) -> None:
    """Check that the data root and the annotation lists and frame/video folders of ``splits`` exist.

    Every missing path is logged at debug level; the :class:`RunError` is one line naming the
    missing root (or the first missing path and how many others are missing) and how to prepare
    the data or point ``data.root`` at it.
    """
    root = Path(cfg.data.root)
    missing: list[str] = []
    for split in splits:
        ann, prefix = split_paths(cfg, split)
        if not ann.is_file():
            missing.append(f"{split} annotation list {ann}")
        if not prefix.is_dir():
            missing.append(f"{split} data folder {prefix}")
    root_missing = not root.is_dir()
    if not missing and not root_missing:
        return
    for what in missing:
        log.debug("config %s: %s not found", cfg.name, what)
    point = ("or point the config at it with --set data.root=DIR (annotation lists and folders are relative to "
             "data.root)")
    if root_missing:
        raise RunError(f"config {cfg.name}: data root {root} does not exist; prepare the {cfg.data.dataset} data "
                       f"there with {prepare_hint(cfg)}, {point}")
    others = f" (and {len(missing) - 1} other path{'s' if len(missing) > 2 else ''})" if len(missing) > 1 else ""
    raise RunError(f"config {cfg.name}: data for {cfg.data.dataset} is missing: {missing[0]} not found{others}; "
                   f"prepare it with {prepare_hint(cfg)}, {point}")


def build_split_dataset(cfg: Config, split: str):
    """The dataset of ``split``; item ``i`` is ``(clip [V*T, 3, S, S] float32, label int)`` with
    T = ``model.num_segments``, S = ``data.input_size``.

    ``train``: training sampling and augmentation (V = 1); ``val``: single-view test sampling
    with a centre crop (as MMAction2's validation); ``test``: the config's test views
    (``test.num_clips`` x crops, twice sampling). A list that cannot be read, an empty split or
    labels outside ``model.num_classes`` raise :class:`RunError` naming the config and split.
    """
    from tinlib.data import DataError, build_dataset

    ann, prefix = split_paths(cfg, split)
    d, t = cfg.data, cfg.test
    kwargs: dict[str, Any] = dict(kind=d.kind, num_segments=cfg.model.num_segments, filename_tmpl=d.filename_tmpl,
                                  start_index=d.start_index, scale_size=d.scale_size, input_size=d.input_size,
                                  num_classes=cfg.model.num_classes, skip_bad_samples=d.skip_bad_samples,
                                  video_backend=d.video_backend,
                                  decode_device=d.decode_device)
    if split == "train":
        kwargs.update(test_mode=False, flip=d.flip, multi_scale_crop=d.multi_scale_crop)
    elif split == "val":
        kwargs.update(test_mode=True, num_clips=1, test_crop="center", twice_sample=False)
    else:
        kwargs.update(test_mode=True, num_clips=t.num_clips, test_crop=t.crop, twice_sample=t.twice_sample)
    try:
        dataset = build_dataset(str(ann), str(prefix), **kwargs)
    except (DataError, FileNotFoundError, ValueError) as err:
        raise RunError(f"config {cfg.name}, {split} split: {err}") from None
    check_class_count(cfg, dataset, split)
    return dataset


def check_class_count(cfg: Config, dataset, split: str) -> None:
    """:class:`RunError` when ``dataset`` has no samples, a label outside ``[0, model.num_classes)``
    or declares another ``num_classes``; a dataset without ``labels`` is not checked."""
    labels = getattr(dataset, "labels", None)
    if labels is None or len(labels) == 0:
        if labels is not None:
            raise RunError(f"config {cfg.name}: the {split} split has no samples")
        return
    top = int(np.max(np.asarray(labels)))
    if top >= cfg.model.num_classes or int(np.min(np.asarray(labels))) < 0:
        raise RunError(f"config {cfg.name}: the {split} split has labels up to {top} but model.num_classes="
                       f"{cfg.model.num_classes}; fix the annotation list or set --set model.num_classes={top + 1}")
    declared = getattr(dataset, "num_classes", None)
    if isinstance(declared, int) and declared != cfg.model.num_classes:
        raise RunError(f"config {cfg.name}: the {split} dataset declares {declared} classes but model.num_classes="
                       f"{cfg.model.num_classes}")
