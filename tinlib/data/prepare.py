"""MMAction2 annotation lists (and frames) from the official releases of Something-Something V1/V2
and Kinetics-400, like MMAction2's ``tools/data`` scripts (``tinlib prepare``). A missing release
file stops with what to download; videos absent or broken on disk are left out and reported.
"""
from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tinlib.io import atomic_write_text
from tinlib.progress import track

from .annotations import AnnotationError, DataError, write_rawframe_list, write_video_list
from .extract import FAILURES_FILE, count_frames, extract_frames
from .releases import (
    K400,
    SPLITS,
    STHV1,
    STHV2,
    VIDEO_EXTS,
    Release,
    choose_splits,
    normalize_k400_label,
    prefix_key,
    sthv2_label_name,
)

log = logging.getLogger(__name__)

Annotations = Mapping[str, str | os.PathLike]  # split -> annotation file
Rows = dict[str, list[tuple[str, int]]]  # split -> (video id, class index) in file order
Entries = dict[str, list[tuple[Any, ...]]]  # split -> the list lines' fields, label last


class PrepareError(DataError):
    """Missing or inconsistent release files; the message says what to download or fix."""


def _require(path: Path, what: str, how: str) -> Path:
    """``path`` when it exists, else PrepareError naming ``what`` is missing and ``how`` to get it."""
    if not path.exists():
        gone = "" if path.parent.is_dir() else f" (the folder {path.parent} does not exist)"
        raise PrepareError(f"missing {what}: {path}{gone}; {how}")
    return path


def _split_word(split: str) -> str:
    """How the Something-Something releases name a split in their files: ``train``, ``validation``."""
    return "validation" if split == "val" else split


def _media_dir(release: Release, root: Path, given: str | os.PathLike | None, what: str, how: str) -> Path:
    """The folder of a Something-Something release's frames or videos: ``given``, else the first
    of the release's names under ``root``; PrepareError when missing."""
    if given:
        return _require(Path(given), what, how)
    names = release.media_dirs[0]
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise PrepareError(f"missing {what}: none of {', '.join(str(root / n) for n in names)} exists; download the "
                       f"{release.archive_parts} archive parts from {release.source} and run "
                       f"`{release.unpack_command}` in {root}")


def _chosen_splits(splits: str | Sequence[str] | None, annotations: Annotations | None) -> tuple[str, ...]:
    """The splits to prepare: ``splits`` among those there are (the keys of ``annotations``, else
    train and val); all of them when None. PrepareError naming the choices for an unknown one."""
    try:
        return choose_splits(splits, tuple(annotations) if annotations is not None else SPLITS)
    except ValueError as err:
        raise PrepareError(str(err)) from None


def _split_files(release: Release, root: Path, annotations: Annotations | None, what: Callable[[str], str], how: str,
                 splits: Sequence[str]) -> dict[str, Path]:
    """The annotation file of each of ``splits``: from ``annotations`` when given, else the first
    of the release's names found under ``root``; PrepareError (see :func:`_require`) when missing."""
    if annotations is not None:
        if "train" not in annotations:
            raise ValueError(f"annotations must name the train split's file, got {sorted(annotations)}")
        return {split: _require(Path(annotations[split]), what(split), how) for split in splits}
    found = {}
    for split in splits:
        cands = [root / name for name in release.split_files[split]]
        hit = next((c for c in cands if c.is_file()), None)
        if hit is None:
            tried = str(cands[0]) if len(cands) == 1 else f"none of {', '.join(map(str, cands))}"
            raise PrepareError(f"missing {what(split)}: {tried}; {how}")
        found[split] = hit
    return found


def _found_entries(rows: Rows, locate: Callable[[str, str], tuple[Any, ...] | str],
                   nothing_found: Callable[[str], str], *, left_out_what: str, desc: str | None, unit: str,
                   quiet: bool) -> tuple[Entries, list[str]]:
    """Per split, the list entries of the annotation ``rows`` found on disk, and what was left out.

    ``locate(split, video id)`` returns the list line's fields before the label, or a str naming
    what is missing (reported as ``left_out_what``). A split with no entry at all stops with
    PrepareError(``nothing_found(split)``). ``desc`` shows the progress (None: none).
    """
    entries: Entries = {}
    left_out: list[str] = []
    with track(total=sum(map(len, rows.values())), desc=desc or "", unit=unit,
               enabled=desc is not None and not quiet) as bar:
        for split, split_rows in rows.items():
            found = []
            for video_id, label in split_rows:
                hit = locate(split, video_id)
                if isinstance(hit, str):
                    left_out.append(hit)
                else:
                    found.append((*hit, label))
                bar.update()
            if not found:
                raise PrepareError(nothing_found(split))
            entries[split] = found
    if left_out and not quiet:
        more = f" (and {len(left_out) - 10} more)" if len(left_out) > 10 else ""
        log.warning(f"{len(left_out)} {left_out_what}: {', '.join(left_out[:10])}{more}")
    return entries, left_out


def _write_lists(release: Release, out_dir: Path, kind: str, entries: Entries,
                 media: Mapping[str, Path]) -> dict[str, Any]:
    """Write the ``kind`` list of each split; returns the list set (list files, ``media`` folders,
    start index, frame template)."""
    write = write_rawframe_list if kind == "rawframes" else write_video_list
    lists: dict[str, Any] = {split: str(write(out_dir / release.list_name(split, kind), split_entries))
                             for split, split_entries in entries.items()}
    lists.update({prefix_key(split): str(media[split]) for split in entries})
    frames = kind == "rawframes"
    lists.update(start_index=1 if frames else 0, filename_tmpl=release.frame_template if frames else None)
    return lists


def _extract_lists(release: Release, out_dir: Path, videos: Mapping[str, Path], entries: Entries, noun: str,
                   **extract_args: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Extract the frames of the listed videos into ``out_dir/<release.frames_dir(split)>`` and write
    the rawframe lists; returns the list set and the failures (keys ``[<split>/]<video>``)."""
    roots = {split: out_dir / release.frames_dir(split) for split in entries}
    frame_entries: Entries = {}
    failed: dict[str, str] = {}
    for root in dict.fromkeys(roots.values()):  # one extraction per frames folder
        splits = [split for split in entries if roots[split] == root]
        report = extract_frames(videos[splits[0]], root, videos=[rel for s in splits for rel, _ in entries[s]],
                                **extract_args)
        tag = f"{splits[0]}/" if len(release.media_dirs) > 1 else ""
        failed.update({tag + rel: why for rel, why in report.failed.items()})
        for split in splits:
            frame_entries[split] = [(str(Path(rel).with_suffix("")), report.done[rel], label)
                                    for rel, label in entries[split] if rel in report.done]
            if not frame_entries[split]:
                raise PrepareError(f"frame extraction failed for every {split} {noun}; see {root / FAILURES_FILE}")
    return _write_lists(release, out_dir, "rawframes", frame_entries, roots), failed


def _summary(release: Release, out_dir: Path, chosen: Sequence[str], names: list[str], entries: Entries,
             left_out: list[str], lists: dict[str, Any], failed: dict[str, str] | None, *, quiet: bool,
             noun: str = "videos", note: str = "") -> dict[str, Any]:
    """What a preparation returns (the keys of a :class:`tinlib.records.PrepareRecord` and
    ``splits``), after logging its counts; no ``failed`` where nothing was extracted (None)."""
    counts = {split: len(split_entries) for split, split_entries in entries.items()}
    per_split = " / ".join(f"{n} {split}" for split, n in counts.items())
    if not quiet:
        log.info(f"{release.list_prefix}: {per_split} {noun}, {len(names)} classes -> {out_dir}{note}")
    summary = dict(dataset=release.key, class_names=names, counts=counts, left_out=left_out, failed=failed,
                   lists=lists, splits=list(chosen))
    if failed is None:
        del summary["failed"]
    return summary


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


def _frame_folder(folder: Path, prefix: str, tmpl: str) -> int | str:
    """The frame count of a complete folder (frames ``tmpl.format(1..n)``), else why it is not."""
    if not folder.is_dir():
        return "frame folder missing"
    n = count_frames(folder, prefix)
    if n == 0:
        return "frame folder holds no frames"
    names = set(os.listdir(folder))
    gap = next((tmpl.format(k) for k in range(1, n + 1) if tmpl.format(k) not in names), None)
    return n if gap is None else f"{n} frame files but {gap} is missing (frames must be numbered from 1 without gaps)"


def prepare_sthv1(root: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                  frames_dir: str | os.PathLike | None = None, rgb_prefix: str = "0",
                  annotations: Annotations | None = None, splits: str | Sequence[str] | None = None,
                  quiet: bool = False) -> dict[str, Any]:
    """Something-Something V1: frame folders + ``;``-separated CSVs -> rawframe lists.

    ``root`` is laid out as ``STHV1.instructions`` says (``frames_dir`` overrides the frame folder);
    ``annotations`` (split -> ``id;class name`` CSV) replaces the release's split files. Every
    listed frame folder is checked (counted, numbered without gaps). Labels are the line order of
    the labels CSV. Returns the summary of :func:`prepare_release`.
    """
    root = Path(root)
    out_dir = Path(out_dir) if out_dir else root
    how = f"download the Something-Something V1 annotation CSVs from {STHV1.source} and put them in {root}"
    assert STHV1.labels_file is not None
    labels_csv = _require(root / STHV1.labels_file, "SthV1 class list", how)
    chosen = _chosen_splits(splits, annotations)
    split_csv = _split_files(STHV1, root, annotations, lambda s: f"SthV1 {_split_word(s)} split", how, chosen)
    frames = _media_dir(STHV1, root, frames_dir, "SthV1 frame folders",
                        "pass the folder that holds one folder of JPEGs per video id")
    names = [line.strip() for line in labels_csv.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise PrepareError(f"{labels_csv} is empty; re-download it ({STHV1.source})")
    index = {name: i for i, name in enumerate(names)}
    rows = {split: _read_sthv1_split(csv_path, index, labels_csv) for split, csv_path in split_csv.items()}

    def locate(split: str, vid: str) -> tuple[str, int] | str:
        count_or_why = _frame_folder(frames / vid, rgb_prefix, STHV1.frame_template)
        return f"{vid} ({count_or_why})" if isinstance(count_or_why, str) else (vid, count_or_why)

    entries, left_out = _found_entries(
        rows, locate, left_out_what="SthV1 videos left out of the lists", quiet=quiet,
        nothing_found=lambda split: f"no frame folder of {split_csv[split]} was found under {frames}; extract the "
                                    f"frame archives there ({STHV1.source})",
        desc=f"checking the frame folders in {frames}", unit="folders")
    lists = {"rawframes": _write_lists(STHV1, out_dir, "rawframes", entries, {split: frames for split in entries})}
    return _summary(STHV1, out_dir, chosen, names, entries, left_out, lists, None, quiet=quiet)


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise PrepareError(f"{path} is not valid JSON ({err}); re-download the {what}") from None


def _read_sthv2_labels(labels_path: Path) -> list[str]:
    """The class names of a SthV2 labels JSON (``{"Holding something": "0", ...}``) in index order."""
    try:
        index = {str(k): int(v) for k, v in _load_json(labels_path, "SthV2 labels").items()}
    except (AttributeError, ValueError, TypeError):
        raise PrepareError(f"{labels_path} must map class names to index strings, e.g. "
                           "{\"Holding something\": \"0\"}") from None
    name_of: dict[int, str] = {}
    for name, i in index.items():
        if not 0 <= i < len(index) or i in name_of:
            raise PrepareError(f"{labels_path}: class indices must be 0..{len(index) - 1} without repeats "
                               f"({name!r} -> {i})")
        name_of[i] = name
    return [name_of[i] for i in range(len(index))]


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
                  height: int | None = None, workers: int | None = None, annotations: Annotations | None = None,
                  splits: str | Sequence[str] | None = None, quiet: bool = False) -> dict[str, Any]:
    """Something-Something V2: webm videos + JSON files -> video lists (+ frames and rawframe lists).

    ``root`` is laid out as ``STHV2.instructions`` says (``videos_dir`` overrides the video folder);
    ``annotations`` (split -> JSON list in the train file's format) replaces the release's split
    files. ``extract`` (default) writes frames to ``out_dir/rawframes/<id>/`` at native size (or
    ``short_side``/``height``) and rawframe lists: seeking in SthV2's VP8/VP9 webm files is
    unreliable, so training from frames is the recommended path.
    """
    root = Path(root)
    out_dir = Path(out_dir) if out_dir else root
    how = f"download the Something-Something V2 label files from {STHV2.source} and put them in {root}"
    assert STHV2.labels_file is not None
    labels_path = _require(root / STHV2.labels_file, "SthV2 class map", how)
    chosen = _chosen_splits(splits, annotations)
    split_json = _split_files(STHV2, root, annotations, lambda s: f"SthV2 {_split_word(s)} split", how, chosen)
    vdir = _media_dir(STHV2, root, videos_dir, "SthV2 video folder", "pass the folder holding <id>.webm files")
    names = _read_sthv2_labels(labels_path)
    index = {name: i for i, name in enumerate(names)}
    rows = {split: _read_sthv2_split(path, index, labels_path) for split, path in split_json.items()}
    entries, left_out = _found_entries(
        rows, lambda split, vid: (f"{vid}.webm",) if (vdir / f"{vid}.webm").is_file() else f"{vid}.webm",
        left_out_what="SthV2 videos missing on disk (left out)", quiet=quiet,
        nothing_found=lambda split: f"none of the videos of {split_json[split]} is in {vdir}; extract the video "
                                    f"archives there ({STHV2.source})",
        desc=f"looking for the videos in {vdir}", unit="videos")
    vdirs = {split: vdir for split in entries}
    lists = {"videos": _write_lists(STHV2, out_dir, "videos", entries, vdirs)}
    failed: dict[str, str] = {}
    if extract:
        lists["rawframes"], failed = _extract_lists(STHV2, out_dir, vdirs, entries, "video", short_side=short_side,
                                                    height=height, workers=workers, quiet=quiet)
    note = "" if extract else " (videos only; extracting frames is recommended for training)"
    return _summary(STHV2, out_dir, chosen, names, entries, left_out, lists, failed, quiet=quiet, note=note)


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


def _k400_class_names(label_map: str | os.PathLike | None, train_csv: Callable[[], Path],
                      train_rows: list[tuple[str, str, int]] | None) -> list[str]:
    """The classes in index order: the lines of ``label_map``, else the sorted normalized class
    names of the train CSV (``train_rows`` when read already), also when only other splits are prepared."""
    if label_map:
        lines = _require(Path(label_map), "class index file", "pass the file with one class name per line")
        names = [normalize_k400_label(x.strip()) for x in lines.read_text(encoding="utf-8").splitlines() if x.strip()]
        if not names:
            raise PrepareError(f"{label_map} lists no class; pass the file with one class name per line")
        return names
    path = train_csv()
    names = sorted({normalize_k400_label(label) for label, _, _ in train_rows or _read_k400_csv(path)})
    if not names:
        raise PrepareError(f"{path} has no rows; re-download it")
    return names


def _k400_labels(rows: list[tuple[str, str, int]], index: Mapping[str, int], csv_path: Path,
                 where: str) -> list[tuple[str, int]]:
    """(clip id, class index) of Kinetics CSV rows; AnnotationError naming the line of an unknown class."""
    labelled = []
    for label, clip, line in rows:
        norm = normalize_k400_label(label)
        if norm not in index:
            raise AnnotationError(f"{csv_path}:{line}: class {label!r} is not among the {len(index)} classes{where}")
        labelled.append((clip, index[norm]))
    return labelled


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
        if not quiet:
            log.info(f"renamed {len(spaced)} class folders in {vdir}")
    found: dict[str, str] = {}
    for entry in track(sorted(vdir.iterdir()), desc=f"indexing the clips in {vdir} (class folders)", unit="entries",
                       enabled=not quiet):
        for p in (entry.rglob("*") if entry.is_dir() else [entry]):
            if p.suffix.lower() in VIDEO_EXTS and p.is_file():
                rel = str(p.relative_to(vdir))
                if any(ch.isspace() for ch in rel):
                    raise PrepareError(f"video path with whitespace: {p}; rename it (list paths cannot hold spaces)")
                found.setdefault(p.stem, rel)
    return found


def prepare_kinetics400(root: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, extract: bool = True,
                        short_side: int | None = K400.extract_short_side, workers: int | None = None,
                        label_map: str | os.PathLike | None = None, rename_class_folders: bool = False,
                        annotations: Annotations | None = None, splits: str | Sequence[str] | None = None,
                        quiet: bool = False) -> dict[str, Any]:
    """Kinetics-400: CSVs + trimmed clips -> video lists (+ frames with short side 256 and rawframe lists).

    ``root`` is laid out as ``K400.instructions`` says, clips anywhere below ``videos_<split>/``
    (class folders or flat). Class index = position in the sorted normalized class names of the
    train CSV, or the line order of ``label_map``; written to ``out_dir/kinetics400_label_map.txt``.
    ``annotations`` (split -> CSV) replaces the release's split files; frames go to
    ``out_dir/rawframes_<split>/``.
    """
    root = Path(root)
    out_dir = Path(out_dir) if out_dir else root
    how = (f"get the Kinetics-400 annotation CSVs ({K400.source}), rename them {K400.split_file('train')} / "
           f"{K400.split_file('val')} and put them in {root}")
    chosen = _chosen_splits(splits, annotations)

    def csv_files(splits: Sequence[str]) -> dict[str, Path]:
        return _split_files(K400, root, annotations, lambda s: f"Kinetics-400 {s} CSV", how, splits)

    split_csv = csv_files(chosen)
    vdirs = {split: _require(root / K400.media_dir(split), f"Kinetics-400 {split} videos",
                             f"download the clips ({K400.source}) into {root}/{K400.media_dir(split)}/<class>/"
                             "<youtube_id>_<start:06d>_<end:06d>.mp4") for split in split_csv}
    csv_rows = {split: _read_k400_csv(path) for split, path in split_csv.items()}
    names = _k400_class_names(label_map, lambda: csv_files(("train",))["train"], csv_rows.get("train"))
    index = {n: i for i, n in enumerate(names)}
    assert K400.label_map_file is not None
    atomic_write_text(out_dir / K400.label_map_file, "".join(f"{n}\n" for n in names))
    where = f" of {label_map}" if label_map else " of the train CSV"
    rows = {split: _k400_labels(csv_rows[split], index, split_csv[split], where) for split in csv_rows}
    on_disk = {split: _index_videos(vdirs[split], rename_class_folders, quiet) for split in rows}
    entries, left_out = _found_entries(
        rows, lambda split, clip: (on_disk[split][clip],) if clip in on_disk[split] else f"{split}/{clip}",
        left_out_what="Kinetics-400 clips missing on disk (left out; usual for removed YouTube videos)", quiet=quiet,
        nothing_found=lambda split: f"none of the clips of {split_csv[split]} is under {vdirs[split]}; download "
                                    f"them ({K400.source})",
        desc=None, unit="clips")
    lists = {"videos": _write_lists(K400, out_dir, "videos", entries, vdirs)}
    failed: dict[str, str] = {}
    if extract:
        lists["rawframes"], failed = _extract_lists(K400, out_dir, vdirs, entries, "clip", short_side=short_side,
                                                    workers=workers, quiet=quiet)
    return _summary(K400, out_dir, chosen, names, entries, left_out, lists, failed, quiet=quiet, noun="clips")


def prepare_release(dataset: str, root: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                    extract: bool = True, workers: int | None = None, splits: str | Sequence[str] | None = None,
                    quiet: bool = False) -> dict[str, Any]:
    """Lists (and frames where the release ships videos) for ``dataset`` (``sthv1``, ``sthv2`` or
    ``k400``) with each one's defaults; ``out_dir`` defaults to ``root``.

    ``splits`` (``train``, ``val``; comma-separated or a sequence; default: both): ``("val",)`` is
    what testing on the validation split reads; a later call with all splits adds the others and
    keeps the frames already extracted. Returns the summary of the ``prepare_<dataset>`` function
    (the keys of a :class:`tinlib.records.PrepareRecord` and ``splits``). PrepareError when a
    release file is missing or ``splits`` names an unknown split.
    """
    if dataset == "sthv1":
        return prepare_sthv1(root, out_dir, splits=splits, quiet=quiet)
    if dataset == "sthv2":
        return prepare_sthv2(root, out_dir, extract=extract, workers=workers, splits=splits, quiet=quiet)
    if dataset == "k400":
        return prepare_kinetics400(root, out_dir, extract=extract, workers=workers, splits=splits, quiet=quiet)
    raise ValueError(f"dataset must be one of sthv1, sthv2, k400, got {dataset!r}")
