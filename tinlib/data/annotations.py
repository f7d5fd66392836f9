"""MMAction2 annotation lists: reading (with line-numbered errors) and writing (atomically).

Rawframe lists have one video per line, ``frame_dir total_frames label`` (whitespace separated,
``frame_dir`` relative to the data prefix); video lists have ``relative/path.ext label``.
Labels are 0-based class indices.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tinlib.errors import UserError
from tinlib.io import atomic_write_text

KINDS = ("rawframes", "videos")
# a line with the other kind's field count
_OTHER_KIND_HINT = {("rawframes", 2): " (is this a video list? use kind='videos')",
                    ("videos", 3): " (is this a rawframe list? use kind='rawframes')"}


class DataError(UserError):
    """Bad input data (list, frame folder, image or video); the message says which and what to do."""

    exit_code = 1


class AnnotationError(DataError):
    """A malformed or inconsistent annotation list."""


@dataclass(frozen=True)
class Record:
    """One line of an annotation list.

    ``path`` is relative to the data prefix (a frame folder or a video file); ``total_frames`` is
    the count written in a rawframe list (None for videos: the decoder counts them); ``line`` is
    the 1-based line number in ``ann_file`` (for error messages).
    """

    path: str
    label: int
    total_frames: int | None
    line: int
    ann_file: str

    def where(self) -> str:
        """Names this sample in error messages: ``"<ann_file>:<line> (<path>)"``."""
        return f"{self.ann_file}:{self.line} ({self.path!r})"


def _parse_int(token: str, what: str, ann_file: str, lineno: int, raw: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise AnnotationError(f"{ann_file}:{lineno}: {what} must be an integer, got {token!r} in line "
                              f"{raw!r}") from None


def load_annotations(ann_file: str | os.PathLike, kind: str = "rawframes",
                     num_classes: int | None = None) -> list[Record]:
    """Parse an MMAction2 list into ``Record``s, checking every line (blank lines are ignored).

    Raises ``AnnotationError`` naming the file and line for a missing file, a wrong number of
    fields, non-integer counts or labels, a frame count below 1, a label outside
    ``[0, num_classes)``, and for a list without any entry.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    ann_file = str(ann_file)
    if not os.path.isfile(ann_file):
        raise AnnotationError(f"annotation list not found: {ann_file}; build it with `tinlib prepare ...` "
                              "(see `tinlib prepare --help`) or check the path in the config")
    expected = 3 if kind == "rawframes" else 2
    layout = "frame_dir total_frames label" if kind == "rawframes" else "path label"
    records: list[Record] = []
    with open(ann_file, encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, start=1):
            raw = raw.rstrip("\n")
            fields = raw.split()
            if not fields:
                continue
            if len(fields) != expected:
                hint = _OTHER_KIND_HINT.get((kind, len(fields)), "")
                raise AnnotationError(f"{ann_file}:{lineno}: expected {expected} fields ({layout}) for a {kind} "
                                      f"list, got {len(fields)} in line {raw!r}{hint}")
            total = None
            if kind == "rawframes":
                total = _parse_int(fields[1], "total_frames", ann_file, lineno, raw)
                if total < 1:
                    raise AnnotationError(f"{ann_file}:{lineno}: {fields[0]!r} has total_frames={total}; a "
                                          "frame folder needs at least one frame (re-extract it or drop the line)")
            label = _parse_int(fields[-1], "label", ann_file, lineno, raw)
            if label < 0 or (num_classes is not None and label >= num_classes):
                bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
                raise AnnotationError(f"{ann_file}:{lineno}: label {label} of {fields[0]!r} is outside {bound}; "
                                      "the list and the config's num_classes disagree")
            records.append(Record(fields[0], label, total, lineno, ann_file))
    if not records:
        raise AnnotationError(f"annotation list is empty: {ann_file}; rebuild it with `tinlib prepare ...` "
                              "(were the videos or frame folders on disk when it was built?)")
    return records


def _check_path(path: str) -> str:
    if not path or any(ch.isspace() for ch in path):
        raise ValueError(f"list entries must be non-empty and contain no whitespace, got {path!r}")
    return path


def write_rawframe_list(path: str | os.PathLike, entries: Iterable[tuple[str, int, int]]) -> Path:
    """Write ``(frame_dir, total_frames, label)`` ``entries`` to ``path`` atomically; returns ``path``."""
    lines = [f"{_check_path(d)} {int(n)} {int(label)}\n" for d, n, label in entries]
    return atomic_write_text(path, "".join(lines))


def write_video_list(path: str | os.PathLike, entries: Iterable[tuple[str, int]]) -> Path:
    """Write ``(relative_video_path, label)`` ``entries`` to ``path`` atomically; returns ``path``."""
    lines = [f"{_check_path(p)} {int(label)}\n" for p, label in entries]
    return atomic_write_text(path, "".join(lines))
