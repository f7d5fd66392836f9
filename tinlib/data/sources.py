"""Single videos for inference: a video file (data.video_backend, PyAV as the fallback) or a folder of frames
(``img_00001.jpg``, ``00001.jpg``, ...: the config's ``data.filename_tmpl`` first), opened so that
frame ``i`` is the frame ``tinlib test`` reads for the same video.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinlib.config import Config
from tinlib.errors import UserError

from .decoding import DecodeError, decode_rawframes, open_video

# frame-file templates tried after the config's own, in this order
FRAME_TEMPLATES = ("img_{:05}.jpg", "{:05}.jpg", "image_{:05}.jpg", "img_{:05}.png", "{:05}.png", "frame_{:05}.jpg")


@dataclass
class VideoSource:
    """An opened video file or frame folder.

    ``num_frames`` frames; ``get(indices)`` returns the frames at 0-based ``indices`` as RGB uint8
    ``[N, H, W, 3]`` with the dataset's ``start_index`` applied exactly as ``tinlib test`` does
    (frame folders: file number ``index + start_index``; video files: frame ``index + start_index``,
    clamped to the last frame). ``fps`` is known for video files only.
    """

    path: str
    kind: str                       # "video" | "frames"
    num_frames: int
    start_index: int
    fps: float | None = None
    filename_tmpl: str | None = None
    _clip: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """Short name for reports: the folder name of frames, the file stem of a video."""
        p = Path(self.path)
        return p.name if self.kind == "frames" else p.stem

    def get(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Decode the frames at 0-based ``indices [N]``: RGB uint8 ``[N, H, W, 3]``."""
        inds = np.asarray(indices, dtype=np.int64).reshape(-1)
        if self.kind == "frames":
            template = self.filename_tmpl or FRAME_TEMPLATES[0]
            return decode_rawframes(self.path, inds.tolist(), template, self.start_index)
        return self._clip.get(np.minimum(inds + self.start_index, self.num_frames - 1))


def _frame_count(folder: Path, tmpl: str, start: int) -> int:
    """Number of frames ``tmpl.format(start), tmpl.format(start + 1), ...`` present without a gap."""
    prefix, _, rest = tmpl.partition("{")
    _, _, suffix = rest.partition("}")
    pattern = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix) + "$")
    numbers = sorted(int(m.group(1)) for entry in os.scandir(folder) if (m := pattern.match(entry.name)))
    numbers = [n for n in numbers if n >= start]
    for expected, number in enumerate(numbers, start=start):
        if number != expected:
            raise UserError(f"frame folder {folder}: {tmpl.format(expected)} is missing (frames go up to "
                            f"{tmpl.format(numbers[-1])}); re-extract the frames without gaps")
    return len(numbers)


def find_frame_template(folder: str | os.PathLike, preferred: str | None = None,
                        preferred_start: int | None = None) -> tuple[str, int, int]:
    """``(filename_tmpl, start_index, num_frames)`` of a frame folder.

    Tries ``preferred`` (the config's template) first, then :data:`FRAME_TEMPLATES`; the frames are
    numbered from the lowest of 0, 1 and ``preferred_start`` whose file exists, and must follow
    without a gap. Raises :class:`UserError` naming the folder when no template matches.
    """
    folder = Path(folder)
    templates = ([preferred] if preferred else []) + [t for t in FRAME_TEMPLATES if t != preferred]
    # the lowest number present: a folder numbered from 0 keeps its first frame
    starts = sorted({0, 1} | ({preferred_start} if preferred_start is not None else set()))
    for tmpl in templates:
        for start in starts:
            if (folder / tmpl.format(start)).is_file():
                return tmpl, start, _frame_count(folder, tmpl, start)
    shown = ", ".join(t.format(1) for t in templates[:4])
    raise UserError(f"no frames found in folder {folder} (looked for {shown}, ...); give a video file or a "
                    "folder of frames numbered from 1 (e.g. img_00001.jpg)")


def _video_fps(path: str) -> float | None:
    try:
        import av

        with av.open(path) as container:
            rate = container.streams.video[0].average_rate
            return float(rate) if rate else None
    except Exception:  # noqa: BLE001 - the rate only labels the timeline in seconds
        return None


def open_source(path: str | os.PathLike, cfg: Config) -> VideoSource:
    """Open a video file or frame folder for ``cfg``'s pipeline; :class:`UserError` naming the path
    when it is missing, empty or cannot be decoded."""
    p = Path(path)
    d = cfg.data
    if p.is_dir():
        start = d.start_index if d.kind == "rawframes" else None
        tmpl, start, count = find_frame_template(p, d.filename_tmpl, start)
        return VideoSource(str(p), "frames", count, start, None, tmpl)
    if not p.exists():
        raise UserError(f"video not found: {p}; give a video file (mp4, webm, avi, ...) or a folder of frames "
                        "(img_00001.jpg, ...)")
    try:
        clip = open_video(p, d.video_backend, d.decode_device)
    except DecodeError as err:
        raise UserError(str(err)) from None
    start = (d.start_index or 0) if d.kind == "videos" else 0
    return VideoSource(str(p), "video", len(clip), start, _video_fps(str(p)), None, clip)

