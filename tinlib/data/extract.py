"""Frame extraction (``tinlib prepare extract``, and :mod:`tinlib.data.prepare` for the video
releases): videos -> folders of JPEG frames, resumable, with the failures collected."""
from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from tinlib.io import atomic_write_text
from tinlib.progress import track
from tinlib.records import ExtractionMarker, RecordError

from .annotations import DataError
from .decoding import iter_video_frames
from .releases import RAWFRAME_TEMPLATE, VIDEO_EXTS
from .transforms import rescale_size

log = logging.getLogger(__name__)

# written into a frame folder once all its frames are; names the settings they were extracted with
DONE_MARKER = ExtractionMarker.FILENAME
# written into the output folder: one ``<video>\t<reason>`` line per failed video
FAILURES_FILE = "extract_failures.txt"


def count_frames(folder: str | os.PathLike[str], prefix: str = "img_", suffix: str = ".jpg") -> int:
    """Number of files in ``folder`` whose names start with ``prefix`` and end with ``suffix``
    (MMAction2's build_file_list rule)."""
    with os.scandir(os.fspath(folder)) as it:
        return sum(1 for e in it if e.name.startswith(prefix) and e.name.endswith(suffix) and e.is_file())


@dataclass
class ExtractReport:
    """What ``extract_frames`` did: frame counts of finished videos (``done``: new and
    ``reused``), and ``failed`` videos with the reason."""

    done: dict[str, int] = field(default_factory=dict)
    reused: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        """Counts and time on one line, then the first 20 failures with their reasons."""
        lines = [f"frame extraction: {len(self.done) - self.reused} extracted, {self.reused} already done "
                 f"(kept), {len(self.failed)} failed, {self.seconds:.1f} s"]
        for rel, why in sorted(self.failed.items())[:20]:
            lines.append(f"  FAILED {rel}: {why}")
        if len(self.failed) > 20:
            lines.append(f"  ... {len(self.failed) - 20} more failures")
        return "\n".join(lines)


def _resize_size(w: int, h: int, short_side: int | None, height: int | None) -> tuple[int, int] | None:
    if short_side:
        return rescale_size(w, h, short_side)
    if height:
        return int(w * height / h + 0.5), int(height)
    return None


def _extract_one(video: str, folder: str, short_side: int | None, height: int | None, tmpl: str,
                 quality: int) -> tuple[str, int | None, str | None, bool]:
    """Worker: extract ``video`` into ``folder``; returns (folder, frames, error, reused)."""
    out = Path(folder)
    marker_path = out / DONE_MARKER
    settings = {"short_side": short_side, "height": height, "filename_tmpl": tmpl,
                "source_bytes": os.path.getsize(video) if os.path.exists(video) else None}
    try:
        marker = ExtractionMarker.read_optional(marker_path)
    except RecordError:  # damaged (a crash while writing it is atomic-safe, but a user may have edited it)
        marker = None
    # the marker is written last: a folder without one (an interrupted run) is never counted as done
    if marker is not None and marker.settings == settings and count_frames(out, "", tmpl[-4:]) == marker.frames:
        return folder, marker.frames, None, True
    shutil.rmtree(out, ignore_errors=True)  # half-written or stale: redo from scratch
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    try:
        size: tuple[int, int] | None = None
        for n, frame in enumerate(iter_video_frames(video), start=1):
            if n == 1:  # every frame of a video has the first one's size
                size = _resize_size(frame.shape[1], frame.shape[0], short_side, height)
            if size:
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
            path = out / tmpl.format(n)
            if not cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]):
                raise OSError(f"cannot write {path} (disk full or not writable?)")
        if n == 0:
            raise DataError(f"no frames decoded from {video}")
    except Exception as err:  # reported per video; the run goes on
        shutil.rmtree(out, ignore_errors=True)
        return folder, None, " ".join(str(err).split())[:300], False
    ExtractionMarker(frames=n, settings=settings).write(marker_path)
    return folder, n, None, False


def _results(jobs: list[tuple], workers: int) -> Iterator[tuple[str, int | None, str | None, bool]]:
    """The results of :func:`_extract_one` for ``jobs``, in this process or as ``workers`` processes finish them."""
    if workers == 1 or len(jobs) <= 1:
        yield from (_extract_one(*job) for job in jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_extract_one, *job) for job in jobs]
        yield from (future.result() for future in as_completed(futures))


def extract_frames(videos_dir: str | os.PathLike, out_dir: str | os.PathLike, *, videos: Iterable[str] | None = None,
                   short_side: int | None = None, height: int | None = None, filename_tmpl: str = RAWFRAME_TEMPLATE,
                   workers: int | None = None, quality: int = 95, progress: bool = True,
                   quiet: bool = False) -> ExtractReport:
    """Decode each video (sequentially, PyAV) into ``out_dir/<relative path without extension>/``.

    ``videos``: paths relative to ``videos_dir`` (default: every video file below it), also the
    report's keys. Frames ``filename_tmpl.format(k)``, k from 1, JPEG, resized to ``short_side``
    or ``height`` (ratio kept), else native size. Resumable: a folder whose completion marker
    (:class:`tinlib.records.ExtractionMarker`, written after its last frame) has the same settings
    is kept, a half-written one is redone. Failures are collected (and written to
    ``out_dir/extract_failures.txt``), not raised.
    """
    if short_side and height:
        raise ValueError("give short_side or height, not both")
    videos_dir, out_dir = Path(videos_dir), Path(out_dir)
    if not videos_dir.exists():
        raise DataError(f"missing video folder: {videos_dir}; download the videos first (see `tinlib prepare --help`)")
    if videos is None:
        videos = sorted(str(p.relative_to(videos_dir)) for p in videos_dir.rglob("*")
                        if p.suffix.lower() in VIDEO_EXTS and p.is_file())
    report = ExtractReport()
    start = time.perf_counter()
    folder_of = {str(out_dir / Path(rel).with_suffix("")): rel for rel in videos}
    jobs = [(str(videos_dir / rel), folder, short_side, height, filename_tmpl, quality)
            for folder, rel in folder_of.items()]
    workers = max(1, workers if workers is not None else min(8, os.cpu_count() or 1))
    with track(total=len(jobs), desc=f"extracting frames into {out_dir}", unit="videos",
               enabled=progress and not quiet) as bar:
        for folder, n, err, reused in _results(jobs, workers):
            rel = folder_of[folder]
            if err is None:
                assert n is not None  # a finished video has its frame count
                report.done[rel] = n
                report.reused += int(reused)
            else:
                report.failed[rel] = err
            bar.update()
    report.seconds = time.perf_counter() - start
    failures = out_dir / FAILURES_FILE
    if report.failed:
        atomic_write_text(failures, "".join(f"{rel}\t{why}\n" for rel, why in sorted(report.failed.items())))
    elif failures.exists():
        failures.unlink()
    if not quiet:
        log.info(report.summary())
    return report
