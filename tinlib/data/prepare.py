"""Dataset preparation from the official release files: MMAction2 lists and frame extraction.

The command line is ``tinlib prepare sthv1|sthv2|k400|extract|synthetic ...``
(:mod:`tinlib.commands.prepare`). The file names and layouts of the releases are in
:mod:`tinlib.data.releases`. Produces the same files as MMAction2's ``tools/data`` scripts:

* ``sthv1_{train,val}_list_rawframes.txt`` (``<id> <frames> <label>``; labels = line order of
  ``something-something-v1-labels.csv``; frames counted on disk, template ``{:05}.jpg``);
* ``sthv2_{train,val}_list_{videos,rawframes}.txt`` (``<id>.webm <label>``; labels from
  ``something-something-v2-labels.json`` via each video's template with ``[``/``]`` removed).
  SthV2 is extracted to JPEG frames by default (``rawframes/<id>/img_00001.jpg``, native size):
  seeking in its VP8/VP9 webm files is unreliable, so training from frames is the recommended
  path (``--no-extract`` keeps videos only);
* ``kinetics400_{train,val}_list_{videos,rawframes}.txt`` (paths relative to ``videos_<split>``
  or ``rawframes_<split>``; class index = position in the sorted list of normalized class names,
  written to ``kinetics400_label_map.txt``); frames are extracted with short side 256.

Each step checks its inputs first and stops with a message naming what is missing and what to
download. Videos or folders listed in the annotations but absent (or broken) on disk are left out
of the lists and reported, never silently. Long scans and extractions report progress
(:class:`Progress`: a bar on a terminal, else a line at least every 30 s).

The ``annotations`` argument of the ``prepare_*`` functions names the annotation file of each
split; the default is the release's train and val files. The synthetic dataset passes a third,
labelled ``test`` split (written like the others, e.g. ``sthv1_test_list_rawframes.txt``).
``splits`` limits the work to some of them: ``splits=("val",)`` writes only the val lists and
extracts only the val videos (what testing a published checkpoint reads); a later call with all
splits adds the others and keeps the val frames already extracted (see :func:`extract_frames`).
The summary each returns names the splits it prepared (``splits``).
"""
from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from tinlib.io import atomic_write_text
from tinlib.records import ExtractionMarker, RecordError

from .annotations import AnnotationError, DataError, write_rawframe_list, write_video_list
from .decoding import iter_video_frames
from .releases import (
    K400,
    RAWFRAME_TEMPLATE,
    SPLITS,
    STHV1,
    STHV2,
    VIDEO_EXTS,
    choose_splits,
    normalize_k400_label,
    prefix_key,
    sthv2_label_name,
)
from .transforms import rescale_size

__all__ = ["PrepareError", "ExtractReport", "Progress", "prepare_sthv1", "prepare_sthv2", "prepare_kinetics400",
           "prepare_release", "extract_frames", "count_frames", "normalize_k400_label", "sthv2_label_name",
           "EXTRACT_SLEEP_ENV"]

log = logging.getLogger(__name__)

# written into a frame folder once all its frames are; names the settings they were extracted with
DONE_MARKER = ExtractionMarker.FILENAME
# Seconds to sleep after every frame written by the extraction: a throttle for tests that must
# interrupt an extraction half-way through a video; it changes no result.
EXTRACT_SLEEP_ENV = "TINLIB_DEBUG_EXTRACT_SLEEP"
# Without a terminal, a progress line at least this often (seconds)
PROGRESS_INTERVAL_S = 30.0


class PrepareError(DataError):
    """Missing or inconsistent release files; the message says what to download or fix."""


def _require(path: Path, what: str, how: str) -> Path:
    """``path`` when it exists, else PrepareError in one line: what is missing, where, and ``how`` to get it."""
    if not path.exists():
        gone = "" if path.parent.is_dir() else f" (the folder {path.parent} does not exist)"
        raise PrepareError(f"missing {what}: {path}{gone}; {how}")
    return path


def _info(quiet: bool, message: str) -> None:
    if not quiet:
        log.info(message)


def _split_word(split: str) -> str:
    """How the releases name a split in their files: ``train``, ``validation``."""
    return "validation" if split == "val" else split


def _pick_dir(root: Path, names: Sequence[str], what: str, how: str) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    tried = ", ".join(str(root / n) for n in names)
    raise PrepareError(f"missing {what}: none of {tried} exists; {how}")


class Progress:
    """Progress of a long loop over ``total`` items, so that no scan or extraction runs silently.

    On a terminal (stderr is a TTY) a tqdm bar; otherwise (make, a cluster job, a log file) an INFO
    line on the ``tinlib`` logger when it starts, then ``"<verb> N/M <unit>"`` at most every
    ``interval`` seconds and once at the end. Disabled: nothing at all.

    Args:
        total: the number of items.
        unit: what an item is, plural (``"folders"``, ``"videos"``).
        verb: what was done to them, past tense (``"scanned"``, ``"extracted"``).
        what: the loop, for the first line and the bar (``"SthV1 frame folders"``).
        enabled: False shows nothing (``quiet``).
        interval: seconds between lines without a terminal.
        bar: True/False forces the bar on/off; None (default) uses it when stderr is a terminal.
    """

    def __init__(self, total: int, unit: str, *, verb: str, what: str, enabled: bool = True,
                 interval: float = PROGRESS_INTERVAL_S, bar: bool | None = None):
        self.total, self.unit, self.verb, self.what = int(total), unit, verb, what
        self.enabled, self.interval = enabled, float(interval)
        self.done = 0
        self._start = self._last = time.monotonic()
        self._bar = None
        if not enabled:
            return
        use_bar = sys.stderr.isatty() if bar is None else bar
        if use_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=what, unit=unit.rstrip("s") or unit, dynamic_ncols=True)
        else:
            log.info(f"{what}: {self.total} {unit} to go")

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled:
            now = time.monotonic()
            if now - self._last >= self.interval and self.done < self.total:
                self._last = now
                log.info(f"{self.what}: {self.verb} {self.done}/{self.total} {self.unit}")

    def close(self) -> None:
        """Close the bar, or log the final count and the time taken."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled:
            self.enabled = False
            log.info(f"{self.what}: {self.verb} {self.done}/{self.total} {self.unit} "
                     f"({time.monotonic() - self._start:.1f} s)")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _report_missing(quiet: bool, what: str, missing: list[str], limit: int = 10) -> None:
    if missing:
        more = f" (and {len(missing) - limit} more)" if len(missing) > limit else ""
        if not quiet:
            log.warning(f"{len(missing)} {what}: {', '.join(missing[:limit])}{more}")


# ------------------------------------------------------------------------------ frame counting
def count_frames(folder: str | os.PathLike[str], prefix: str = "img_", suffix: str = ".jpg") -> int:
    """Number of files in ``folder`` whose names start with ``prefix`` and end with ``suffix``
    (MMAction2's build_file_list rule)."""
    with os.scandir(os.fspath(folder)) as it:
        return sum(1 for e in it if e.name.startswith(prefix) and e.name.endswith(suffix) and e.is_file())


def _check_sequence(folder: Path, count: int, tmpl: str) -> str | None:
    """None if ``tmpl.format(1..count)`` all exist in ``folder``, else a reason."""
    names = set(os.listdir(folder))
    for k in range(1, count + 1):
        if tmpl.format(k) not in names:
            return f"{count} frame files but {tmpl.format(k)} is missing (frames must be numbered from 1 without gaps)"
    return None


def _frame_folder_entry(folder: Path, prefix: str, tmpl: str) -> tuple[int | None, str | None]:
    """(count, None) for a complete folder, (None, reason) otherwise."""
    if not folder.is_dir():
        return None, "frame folder missing"
    n = count_frames(folder, prefix)
    if n == 0:
        return None, "frame folder holds no frames"
    problem = _check_sequence(folder, n, tmpl)
    return (None, problem) if problem else (n, None)


# ------------------------------------------------------------------------------- extraction
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
    sleep = float(os.environ.get(EXTRACT_SLEEP_ENV, "0") or 0)
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
            if sleep:
                time.sleep(sleep)
        if n == 0:
            raise DataError(f"no frames decoded from {video}")
    except Exception as err:  # reported per video; the run goes on
        shutil.rmtree(out, ignore_errors=True)
        return folder, None, " ".join(str(err).split())[:300], False
    ExtractionMarker(frames=n, settings=settings).write(marker_path)
    return folder, n, None, False


def extract_frames(videos_dir: str | os.PathLike, out_dir: str | os.PathLike, *, videos: Iterable[str] | None = None,
                   short_side: int | None = None, height: int | None = None, filename_tmpl: str = RAWFRAME_TEMPLATE,
                   workers: int | None = None, quality: int = 95, progress: bool = True,
                   quiet: bool = False) -> ExtractReport:
    """Decode each video (sequentially, PyAV) into ``out_dir/<relative path without extension>/``.

    ``videos``: paths relative to ``videos_dir`` (default: every video file below it). Frames are
    written as ``filename_tmpl.format(k)``, k from 1, JPEG; resized to ``short_side`` (keep ratio)
    or to ``height`` (keep ratio), else native size. Runs ``workers`` processes and shows
    :class:`Progress` (unless ``progress`` is False or ``quiet``). Resumable: a folder with a
    completion marker (:class:`tinlib.records.ExtractionMarker`, written after its last frame) for
    the same settings is kept, a half-written one (interrupted, no marker) is redone. Failures are
    collected (and written to ``out_dir/extract_failures.txt``), not raised. Report keys are the
    relative video paths.
    """
    if short_side and height:
        raise ValueError("give short_side or height, not both")
    videos_dir, out_dir = Path(videos_dir), Path(out_dir)
    _require(videos_dir, "video folder", "download the videos first (see `tinlib prepare --help`)")
    if videos is None:
        videos = sorted(str(p.relative_to(videos_dir)) for p in videos_dir.rglob("*")
                        if p.suffix.lower() in VIDEO_EXTS and p.is_file())
    videos = list(videos)
    report = ExtractReport()
    start = time.perf_counter()
    folder_of = {str(out_dir / Path(rel).with_suffix("")): rel for rel in videos}
    jobs = [(str(videos_dir / rel), folder, short_side, height, filename_tmpl, quality)
            for folder, rel in folder_of.items()]
    workers = max(1, workers if workers is not None else min(8, os.cpu_count() or 1))
    bar = Progress(len(jobs), "videos", verb="extracted", what=f"extracting frames into {out_dir}",
                   enabled=progress and not quiet)

    def record(folder: str, n: int | None, err: str | None, reused: bool) -> None:
        rel = folder_of[folder]
        if err is None:
            assert n is not None  # a finished video has its frame count
            report.done[rel] = n
            report.reused += int(reused)
        else:
            report.failed[rel] = err
        bar.update()

    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            record(*_extract_one(*job))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_extract_one, *job) for job in jobs]
            for fut in as_completed(futures):
                record(*fut.result())
    bar.close()
    report.seconds = time.perf_counter() - start
    failures = out_dir / "extract_failures.txt"
    if report.failed:
        atomic_write_text(failures, "".join(f"{rel}\t{why}\n" for rel, why in sorted(report.failed.items())))
    elif failures.exists():
        failures.unlink()
    _info(quiet, report.summary())
    return report


def _chosen_splits(splits: str | Sequence[str] | None,
                   annotations: Mapping[str, str | os.PathLike] | None) -> tuple[str, ...]:
    """The splits to prepare: ``splits`` among those there are (the keys of ``annotations``, else
    train and val); all of them when None. PrepareError naming the choices for an unknown one."""
    try:
        return choose_splits(splits, tuple(annotations) if annotations is not None else SPLITS)
    except ValueError as err:
        raise PrepareError(str(err)) from None


def _split_files(root: Path, annotations: Mapping[str, str | os.PathLike] | None,
                 official: Mapping[str, Sequence[str]], what: Callable[[str], str], how: str,
                 splits: Sequence[str] = SPLITS) -> dict[str, Path]:
    """The annotation file of each of ``splits``: from ``annotations`` when given, else the first
    of the release's ``official`` names found under ``root``. PrepareError naming the file
    (``what(split)`` describes it) and ``how`` to get it when one is missing."""
    if annotations is not None:
        if "train" not in annotations:
            raise ValueError(f"annotations must name the train split's file, got {sorted(annotations)}")
        return {split: _require(Path(annotations[split]), what(split), how) for split in splits}
    found = {}
    for split in splits:
        cands = [root / name for name in official[split]]
        hit = next((c for c in cands if c.is_file()), None)
        if hit is None:
            tried = str(cands[0]) if len(cands) == 1 else f"none of {', '.join(map(str, cands))}"
            raise PrepareError(f"missing {what(split)}: {tried}; {how}")
        found[split] = hit
    return found


def _prefixes(folders: Mapping[str, Path]) -> dict[str, str]:
    """The list-set keys of each split's media folder: ``data_prefix`` (train), ``<split>_data_prefix``."""
    return {prefix_key(split): str(folder) for split, folder in folders.items()}


def _counts_text(counts: Mapping[str, int]) -> str:
    """``"22 train / 11 val / 11 test"``."""
    return " / ".join(f"{n} {split}" for split, n in counts.items())


# ------------------------------------------------------------------------------------ sthv1
def _read_sthv1_split(csv_path: Path, index: Mapping[str, int], labels_csv: Path) -> list[tuple[str, int]]:
    """(video id, class index) of every row of a SthV1 ``id;class name`` CSV."""
    rows = []
    for lineno, line in enumerate(csv_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if ";" not in line:
            raise AnnotationError(f"{csv_path}:{lineno}: expected 'id;class name', got {line!r}")
        vid, name = (part.strip() for part in line.split(";", 1))
        if name not in index:
            raise AnnotationError(f"{csv_path}:{lineno}: class {name!r} is not in {labels_csv}; the CSVs "
                                  "come from different releases? re-download them together")
        rows.append((vid, index[name]))
    return rows


def prepare_sthv1(root: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                  frames_dir: str | os.PathLike | None = None, rgb_prefix: str = "0",
                  annotations: Mapping[str, str | os.PathLike] | None = None,
                  splits: str | Sequence[str] | None = None, quiet: bool = False) -> dict[str, Any]:
    """Something-Something V1: frame folders + ``;``-separated CSVs -> rawframe lists.

    ``root`` holds ``something-something-v1-{labels,train,validation}.csv`` and the frames in
    ``20bn-something-something-v1/<id>/00001.jpg`` (or ``rawframes/``; ``frames_dir`` overrides).
    ``annotations`` (split -> ``id;class name`` CSV) replaces the train/validation CSVs; ``splits``
    (default: all) names the splits prepared. Every listed frame folder of those splits is checked
    (counted, numbered without gaps), with :class:`Progress`.
    Writes ``out_dir/sthv1_<split>_list_rawframes.txt``; returns a summary dict.
    """
    root = Path(root)
    out_dir = Path(out_dir) if out_dir else root
    how = f"download the Something-Something V1 annotation CSVs from {STHV1.source} and put them in {root}"
    assert STHV1.labels_file is not None
    labels_csv = _require(root / STHV1.labels_file, "SthV1 class list", how)
    chosen = _chosen_splits(splits, annotations)
    split_csv = _split_files(root, annotations, STHV1.split_files, lambda s: f"SthV1 {_split_word(s)} split", how,
                             chosen)
    frames = Path(frames_dir) if frames_dir else _pick_dir(
        root, STHV1.media_dirs[0], "SthV1 frame folders",
        f"download the {STHV1.archive_parts} archive parts from {STHV1.source} and run "
        f"`{STHV1.unpack_command}` in {root}")
    _require(frames, "SthV1 frame folders", "pass the folder that holds one folder of JPEGs per video id")
    names = [line.strip() for line in labels_csv.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise PrepareError(f"{labels_csv} is empty; re-download it ({STHV1.source})")
    index = {name: i for i, name in enumerate(names)}
    rows = {split: _read_sthv1_split(csv_path, index, labels_csv) for split, csv_path in split_csv.items()}
    lists: dict[str, Any] = {}
    counts, problems = {}, []
    with Progress(sum(map(len, rows.values())), "folders", verb="scanned", what=f"checking the frame folders in "
                  f"{frames}", enabled=not quiet) as progress:
        for split, split_rows in rows.items():
            entries = []
            for vid, label in split_rows:
                n, why = _frame_folder_entry(frames / vid, rgb_prefix, STHV1.frame_template)
                progress.update()
                if n is None:
                    problems.append(f"{vid} ({why})")
                    continue
                entries.append((vid, n, label))
            if not entries:
                raise PrepareError(f"no frame folder of {split_csv[split]} was found under {frames}; extract the "
                                   f"frame archives there ({STHV1.source})")
            lists[split] = str(write_rawframe_list(out_dir / STHV1.list_name(split), entries))
            counts[split] = len(entries)
    lists.update(_prefixes({split: frames for split in lists}), filename_tmpl=STHV1.frame_template, start_index=1)
    _report_missing(quiet, "SthV1 videos left out of the lists", problems)
    _info(quiet, f"sthv1: {_counts_text(counts)} videos, {len(names)} classes -> {out_dir}")
    return dict(dataset="sthv1", class_names=names, counts=counts, left_out=problems, lists={"rawframes": lists},
                splits=list(chosen))


# ------------------------------------------------------------------------------------ sthv2
def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise PrepareError(f"{path} is not valid JSON ({err}); re-download the {what}") from None


def _read_sthv2_split(path: Path, index: Mapping[str, int], labels_path: Path) -> list[tuple[str, int]]:
    """(video id, class index) of every entry of a SthV2 split file (class from the template)."""
    items = _load_json(path, "SthV2 split")
    if not isinstance(items, list):
        raise PrepareError(f"{path} must be a JSON list of {{id, label, template, placeholders}} objects")
    rows = []
    for pos, item in enumerate(items):
        try:
            vid, template = str(item["id"]), item["template"]
        except (KeyError, TypeError):
            raise AnnotationError(f"{path}: entry {pos} has no 'id'/'template': {item!r}") from None
        name = sthv2_label_name(template)
        if name not in index:
            raise AnnotationError(f"{path}: entry {pos} (id {vid}) has template {template!r}, whose class "
                                  f"{name!r} is not in {labels_path}")
        rows.append((vid, index[name]))
    return rows


def prepare_sthv2(root: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                  videos_dir: str | os.PathLike | None = None, extract: bool = True, short_side: int | None = None,
                  height: int | None = None, workers: int | None = None,
                  annotations: Mapping[str, str | os.PathLike] | None = None,
                  splits: str | Sequence[str] | None = None, quiet: bool = False) -> dict[str, Any]:
    """Something-Something V2: webm videos + JSON files -> video lists (+ frames and rawframe lists).

    ``root`` holds ``something-something-v2-{labels,train,validation}.json`` and the videos in
    ``20bn-something-something-v2/<id>.webm`` (or ``videos/``; ``videos_dir`` overrides). With
    ``extract`` (default, recommended) frames go to ``out_dir/rawframes/<id>/img_00001.jpg`` at
    native size (or ``short_side``/``height``) and rawframe lists are written too.
    ``annotations`` (split -> JSON list in the train file's format) replaces the train/validation files;
    ``splits`` (default: all) names the splits whose lists are written and whose videos are extracted.
    """
    root = Path(root)
    out_dir = Path(out_dir) if out_dir else root
    how = f"download the Something-Something V2 label files from {STHV2.source} and put them in {root}"
    assert STHV2.labels_file is not None
    labels_path = _require(root / STHV2.labels_file, "SthV2 class map", how)
    chosen = _chosen_splits(splits, annotations)
    split_json = _split_files(root, annotations, STHV2.split_files, lambda s: f"SthV2 {_split_word(s)} split", how,
                              chosen)
    vdir = Path(videos_dir) if videos_dir else _pick_dir(
        root, STHV2.media_dirs[0], "SthV2 videos",
        f"download the {STHV2.archive_parts} archive parts from {STHV2.source} and run "
        f"`{STHV2.unpack_command}` in {root}")
    _require(vdir, "SthV2 video folder", "pass the folder holding <id>.webm files")
    raw_labels = _load_json(labels_path, "SthV2 labels")
    try:
        index = {str(k): int(v) for k, v in raw_labels.items()}
    except (AttributeError, ValueError, TypeError):
        raise PrepareError(f"{labels_path} must map class names to index strings, e.g. "
                           "{\"Holding something\": \"0\"}") from None
    name_of: dict[int, str] = {}
    for name, i in index.items():
        if not 0 <= i < len(index) or i in name_of:
            raise PrepareError(f"{labels_path}: class indices must be 0..{len(index) - 1} without repeats "
                               f"({name!r} -> {i})")
        name_of[i] = name
    names = [name_of[i] for i in range(len(index))]
    rows = {split: _read_sthv2_split(path, index, labels_path) for split, path in split_json.items()}
    video_entries: dict[str, list[tuple[str, int]]] = {}
    missing: list[str] = []
    with Progress(sum(map(len, rows.values())), "videos", verb="found", what=f"looking for the videos in {vdir}",
                  enabled=not quiet) as progress:
        for split, split_rows in rows.items():
            entries = []
            for vid, label in split_rows:
                progress.update()
                if not (vdir / f"{vid}.webm").is_file():
                    missing.append(f"{vid}.webm")
                    continue
                entries.append((f"{vid}.webm", label))
            if not entries:
                raise PrepareError(f"none of the videos of {split_json[split]} is in {vdir}; extract the video "
                                   f"archives there ({STHV2.source})")
            video_entries[split] = entries
    _report_missing(quiet, "SthV2 videos missing on disk (left out)", missing)
    lists: dict[str, Any] = {"videos": {}}
    counts = {}
    for split, entries in video_entries.items():
        lists["videos"][split] = str(write_video_list(out_dir / STHV2.list_name(split, "videos"), entries))
        counts[split] = len(entries)
    lists["videos"].update(_prefixes({split: vdir for split in video_entries}), start_index=0, filename_tmpl=None)
    failed: dict[str, str] = {}
    if extract:
        frames_root = out_dir / "rawframes"
        rels = [rel for entries in video_entries.values() for rel, _ in entries]
        rep = extract_frames(vdir, frames_root, videos=rels, short_side=short_side, height=height, workers=workers,
                             quiet=quiet)
        failed = rep.failed
        lists["rawframes"] = {}
        for split, entries in video_entries.items():
            frame_entries = [(Path(rel).stem, rep.done[rel], label) for rel, label in entries if rel in rep.done]
            if not frame_entries:
                raise PrepareError(f"frame extraction failed for every {split} video; see "
                                   f"{frames_root / 'extract_failures.txt'}")
            lists["rawframes"][split] = str(write_rawframe_list(out_dir / STHV2.list_name(split), frame_entries))
        lists["rawframes"].update(_prefixes({split: frames_root for split in video_entries}), start_index=1,
                                  filename_tmpl=STHV2.frame_template)
    _info(quiet, f"sthv2: {_counts_text(counts)} videos, {len(names)} classes -> {out_dir}"
          + ("" if extract else " (videos only; extracting frames is recommended for training)"))
    return dict(dataset="sthv2", class_names=names, counts=counts, left_out=missing, failed=failed, lists=lists,
                splits=list(chosen))


# ---------------------------------------------------------------------------------- kinetics
def _read_k400_csv(path: Path) -> list[tuple[str, str, int]]:
    """(label, clip id, line) for every row of a Kinetics CSV."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        need = {"label", "youtube_id", "time_start", "time_end"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise AnnotationError(f"{path}:1: header must contain {sorted(need)} (columns label, youtube_id, "
                                  f"time_start, time_end, split), got {reader.fieldnames}")
        rows = []
        for row in reader:
            try:
                clip = f"{row['youtube_id']}_{int(float(row['time_start'])):06d}_{int(float(row['time_end'])):06d}"
            except (TypeError, ValueError):
                raise AnnotationError(f"{path}:{reader.line_num}: bad time_start/time_end in {row}") from None
            rows.append((row["label"], clip, reader.line_num))
    return rows


def _index_videos(vdir: Path, rename: bool, quiet: bool) -> dict[str, str]:
    """clip id (file stem) -> path relative to ``vdir``; class folders with spaces are renamed or refused."""
    spaced = [p for p in vdir.iterdir() if p.is_dir() and " " in p.name]
    if spaced:
        if not rename:
            raise PrepareError(f"{len(spaced)} class folders in {vdir} contain spaces (e.g. {spaced[0].name!r}); list "
                               "paths cannot. Rerun with --rename-class-folders (renames them to use '_', as "
                               "MMAction2's rename_classnames.sh does)")
        for p in spaced:
            p.rename(p.with_name(normalize_k400_label(p.name)))
        _info(quiet, f"renamed {len(spaced)} class folders in {vdir}")
    found: dict[str, str] = {}
    entries = sorted(vdir.iterdir())
    with Progress(len(entries), "entries", verb="indexed", what=f"indexing the clips in {vdir} (class folders)",
                  enabled=not quiet) as progress:
        for entry in entries:
            for p in (entry.rglob("*") if entry.is_dir() else [entry]):
                if p.suffix.lower() in VIDEO_EXTS and p.is_file():
                    rel = str(p.relative_to(vdir))
                    if any(ch.isspace() for ch in rel):
                        raise PrepareError(f"video path with whitespace: {p}; rename it (list paths cannot hold "
                                           "spaces)")
                    found.setdefault(p.stem, rel)
            progress.update()
    return found


def prepare_kinetics400(root: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, extract: bool = True,
                        short_side: int | None = K400.extract_short_side, workers: int | None = None,
                        label_map: str | os.PathLike | None = None, rename_class_folders: bool = False,
                        annotations: Mapping[str, str | os.PathLike] | None = None,
                        splits: str | Sequence[str] | None = None, quiet: bool = False) -> dict[str, Any]:
    """Kinetics-400: CSVs + trimmed clips -> video lists (+ frames with short side 256 and rawframe lists).

    ``root`` holds ``kinetics_{train,val}.csv`` (``label,youtube_id,time_start,time_end,split``)
    and clips named ``<youtube_id>_<start:06d>_<end:06d>.<ext>`` anywhere below
    ``videos_train/`` and ``videos_val/`` (class folders or flat). Class index = position in the
    sorted normalized class names of the train CSV, or the line order of ``label_map``; written
    to ``out_dir/kinetics400_label_map.txt``. Clips missing on disk are reported and left out.
    ``annotations`` (split -> CSV) replaces the train/val CSVs; a further split's clips are under
    ``videos_<split>/``. ``splits`` (default: all) names the splits whose clips are listed and
    extracted; the train CSV is read for the class names all the same (unless ``label_map``).
    """
    root = Path(root)
    out_dir = Path(out_dir) if out_dir else root
    how = (f"get the Kinetics-400 annotation CSVs ({K400.source}), rename them {K400.split_file('train')} / "
           f"{K400.split_file('val')} and put them in {root}")
    chosen = _chosen_splits(splits, annotations)

    def what(split: str) -> str:
        return f"Kinetics-400 {split} CSV"

    split_csv = _split_files(root, annotations, K400.split_files, what, how, chosen)
    vdirs = {split: _require(root / K400.media_dir(split), f"Kinetics-400 {split} videos",
                             f"download the clips ({K400.source}) into {root}/{K400.media_dir(split)}/<class>/"
                             "<youtube_id>_<start:06d>_<end:06d>.mp4") for split in split_csv}
    rows = {split: _read_k400_csv(path) for split, path in split_csv.items()}
    if label_map:
        lines = Path(_require(Path(label_map), "class index file", "pass the file with one class name per line"))
        names = [normalize_k400_label(x.strip()) for x in lines.read_text(encoding="utf-8").splitlines() if x.strip()]
    else:
        # the classes are those of the train CSV, also when only other splits are prepared
        train_csv = split_csv["train"] if "train" in split_csv else _split_files(
            root, annotations, K400.split_files, what, how, ("train",))["train"]
        train_rows = rows["train"] if "train" in rows else _read_k400_csv(train_csv)
        names = sorted({normalize_k400_label(label) for label, _, _ in train_rows})
        if not names:
            raise PrepareError(f"{train_csv} has no rows; re-download it")
    if not names:
        raise PrepareError(f"{label_map} lists no class; pass the file with one class name per line")
    index = {n: i for i, n in enumerate(names)}
    assert K400.label_map_file is not None
    atomic_write_text(out_dir / K400.label_map_file, "".join(f"{n}\n" for n in names))
    lists: dict[str, Any] = {"videos": {}}
    counts, missing, failed, video_entries = {}, [], {}, {}
    for split, split_rows in rows.items():
        on_disk = _index_videos(vdirs[split], rename_class_folders, quiet)
        entries = []
        for label, clip, line in split_rows:
            norm = normalize_k400_label(label)
            if norm not in index:
                where = f" of {label_map}" if label_map else " of the train CSV"
                raise AnnotationError(f"{split_csv[split]}:{line}: class {label!r} is not among the "
                                      f"{len(names)} classes{where}")
            if clip not in on_disk:
                missing.append(f"{split}/{clip}")
                continue
            entries.append((on_disk[clip], index[norm]))
        if not entries:
            raise PrepareError(f"none of the clips of {split_csv[split]} is under {vdirs[split]}; download them "
                               f"({K400.source})")
        video_entries[split] = entries
        lists["videos"][split] = str(write_video_list(out_dir / K400.list_name(split, "videos"), entries))
        counts[split] = len(entries)
    lists["videos"].update(_prefixes(vdirs), start_index=0, filename_tmpl=None)
    _report_missing(quiet, "Kinetics-400 clips missing on disk (left out; usual for removed YouTube videos)", missing)
    if extract:
        lists["rawframes"] = {}
        frame_roots = {}
        for split, entries in video_entries.items():
            frames_root = out_dir / f"rawframes_{split}"
            rep = extract_frames(vdirs[split], frames_root, videos=[rel for rel, _ in entries],
                                 short_side=short_side, workers=workers, quiet=quiet)
            failed.update({f"{split}/{k}": v for k, v in rep.failed.items()})
            frame_entries = [(str(Path(rel).with_suffix("")), rep.done[rel], label) for rel, label in entries
                             if rel in rep.done]
            if not frame_entries:
                raise PrepareError(f"frame extraction failed for every {split} clip; see "
                                   f"{frames_root / 'extract_failures.txt'}")
            lists["rawframes"][split] = str(write_rawframe_list(out_dir / K400.list_name(split), frame_entries))
            frame_roots[split] = frames_root
        lists["rawframes"].update(_prefixes(frame_roots), start_index=1, filename_tmpl=K400.frame_template)
    _info(quiet, f"kinetics400: {_counts_text(counts)} clips, {len(names)} classes -> {out_dir}")
    return dict(dataset="k400", class_names=names, counts=counts, left_out=missing, failed=failed, lists=lists,
                splits=list(chosen))


# ------------------------------------------------------------------------------------ any
def prepare_release(dataset: str, root: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                    extract: bool = True, workers: int | None = None, splits: str | Sequence[str] | None = None,
                    quiet: bool = False) -> dict[str, Any]:
    """Lists (and frames where the release ships videos) for ``dataset`` with each one's defaults.

    Args:
        dataset: ``sthv1``, ``sthv2`` or ``k400`` (see :data:`tinlib.data.releases.RELEASES`).
        root: the folder holding the release files.
        out_dir: where lists and frames go (default ``root``).
        extract: extract frames from the videos (SthV2, Kinetics-400; SthV1 ships frames).
        workers: processes for frame extraction (default: a few).
        splits: the splits prepared (``train``, ``val``; a comma-separated string or a sequence;
            default: both). ``("val",)`` is what testing on the validation split reads.
        quiet: no messages.

    Returns:
        the summary of :func:`prepare_sthv1` / :func:`prepare_sthv2` / :func:`prepare_kinetics400`.

    Raises:
        PrepareError: a release file is missing, or ``splits`` names an unknown split.
    """
    if dataset == "sthv1":
        return prepare_sthv1(root, out_dir, splits=splits, quiet=quiet)
    if dataset == "sthv2":
        return prepare_sthv2(root, out_dir, extract=extract, workers=workers, splits=splits, quiet=quiet)
    if dataset == "k400":
        return prepare_kinetics400(root, out_dir, extract=extract, workers=workers, splits=splits, quiet=quiet)
    raise ValueError(f"dataset must be one of sthv1, sthv2, k400, got {dataset!r}")
