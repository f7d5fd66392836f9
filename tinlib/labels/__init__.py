"""Class names: the zoo datasets' lists shipped here, user label files, and the names of a config.

``<name>.txt`` holds one class name per line, line i (0-based) being class i in the order of the
``fc_cls`` rows of MMAction2's published checkpoints; they are the label maps of the MMAction2
repository (``tools/data/{sthv1,sthv2}/label_map.txt``, ``tools/data/kinetics/label_map_k400.txt``):
``sthv1``, 174 classes in the order of its ``-labels.csv``; ``sthv2``, 174 classes, ids of its
``-labels.json`` (alphabetical); ``kinetics400`` (alias ``k400``), 400 classes, alphabetical."""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from tinlib.errors import UserError

if TYPE_CHECKING:
    from tinlib.config import Config

log = logging.getLogger(__name__)

# name (lower case) -> packaged file
LABEL_SETS = {
    "sthv1": "sthv1.txt",
    "sthv2": "sthv2.txt",
    "kinetics400": "kinetics400.txt",
    "k400": "kinetics400.txt",
}
LABELS_HINT = "pass --labels FILE (one class name per line, line i = class i) or sthv1 / sthv2 / k400"


def load_labels(name_or_path: str | os.PathLike) -> list[str]:
    """Class names (index i at position i) of a packaged set (``sthv1``, ``sthv2``, ``kinetics400`` or
    ``k400``, any case) or of a UTF-8 file with one name per line (surrounding spaces stripped). A
    missing or empty file, an empty line or a repeated name raises :class:`UserError` naming the file."""
    key = os.fspath(name_or_path)
    packaged = LABEL_SETS.get(key.lower())
    if packaged is not None:
        resource = resources.files(__name__).joinpath(packaged)
        return _parse(resource.read_text(encoding="utf-8"), f"tinlib/labels/{packaged}")
    path = Path(key)
    if not path.is_file():
        raise UserError(f"label file not found: {path}; give a file with one class name per line, or one of "
                        f"{', '.join(LABEL_SETS)}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    return _parse(text, str(path))


def _parse(text: str, source: str) -> list[str]:
    names = [line.strip() for line in text.splitlines()]
    if not names:
        raise UserError(f"{source}: no class names (the file is empty)")
    first_line: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if not name:
            raise UserError(f"{source}, line {number}: empty line; write one class name per line, "
                            "without blank lines (line i+1 is class i)")
        if name in first_line:
            raise UserError(f"{source}, line {number}: {name!r} repeats line {first_line[name]}; "
                            "each class needs its own name")
        first_line[name] = number
    return names


def class_name(index: int, names: Sequence[str] | None) -> str:
    """``names[index]``, or ``"class <index>"`` when the names are unknown (None)."""
    return names[index] if names is not None else f"class {index}"


def class_names_for(cfg: Config, labels: str | os.PathLike | None = None) -> tuple[list[str] | None, str]:
    """``(names or None, where they came from)`` for ``cfg``'s classes: ``labels`` (see :func:`load_labels`;
    ``model.num_classes`` names), else the packaged set named by ``data.dataset`` (the zoo configs), else
    the ``class_names`` in ``data.root/synthetic_meta.json`` (the demo configs; a damaged one raises
    :class:`~tinlib.records.RecordError` naming it), else None."""
    from tinlib.records import SyntheticMeta

    k = cfg.model.num_classes
    if labels is not None:
        names = load_labels(labels)
        if len(names) != k:
            raise UserError(f"{labels}: {len(names)} class names but config {cfg.name} has model.num_classes={k}; "
                            "give one name per class")
        return names, str(labels)
    dataset = cfg.data.dataset.lower()
    if dataset in LABEL_SETS:
        names = load_labels(dataset)
        if len(names) == k:
            return names, f"tinlib/labels ({dataset})"
        log.warning("config %s: data.dataset=%s has %d class names but model.num_classes=%d; showing class "
                    "indices (%s)", cfg.name, dataset, len(names), k, LABELS_HINT)
        return None, "none"
    meta_path = Path(cfg.data.root) / SyntheticMeta.FILENAME
    meta = SyntheticMeta.read_optional(meta_path)
    if meta is not None and len(meta.class_names) == k:
        return list(meta.class_names), str(meta_path)
    return None, "none"
