"""Writing the embedded synthetic dataset (``tinlib prepare synthetic``; classes and rendering are
in :mod:`tinlib.data.synthetic_render`) in the layout of an official release, so that
:mod:`tinlib.data.prepare` runs on it unchanged (``k400`` without the left/right pair: Kinetics-style
training flips frames). Deterministic given ``seed`` (encoded files are byte-equal for a codec build).
"""
from __future__ import annotations

import logging
import os
import shutil
import string
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from tinlib.errors import UserError
from tinlib.io import atomic_write_json, atomic_write_text
from tinlib.progress import track
from tinlib.records import ListSet, RecordError, SyntheticMeta

from . import prepare
from .encoding import video_codec, write_frames, write_video
from .releases import K400, RELEASES, STHV1, STHV2, SYNTHETIC
from .synthetic_render import CLASSES, SynthClass, classes_for, render_video

log = logging.getLogger(__name__)

LAYOUTS = SYNTHETIC.layouts
META_NAME = SyntheticMeta.FILENAME
assert META_NAME == SYNTHETIC.meta_file
MIN_HEIGHT = 16  # pixels; smaller frames leave the objects a few pixels wide
# bumped when the same parameters write different data (2: the held-out test split), so that an
# older dataset is rewritten instead of reused
PARAMS_VERSION = 2


class SyntheticError(UserError, ValueError):
    """A bad option or an output folder it must not overwrite (a ValueError too, for Python callers)."""


# size presets: videos per class in each split (train, val for validation during training, the
# held-out test split), frames per video, frame height per layout
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(per_class_train=2, per_class_val=1, per_class_test=1, frames=(8, 14),
                 height={"sthv1": 48, "sthv2": 48, "k400": 48}),
    "demo": dict(per_class_train=60, per_class_val=20, per_class_test=20, frames=(16, 36),
                 height={"sthv1": 100, "sthv2": 96, "k400": 96}),
    "large": dict(per_class_train=200, per_class_val=50, per_class_test=50, frames=(24, 48),
                  height={"sthv1": 100, "sthv2": 240, "k400": 256}),
}


def _render_task(task: dict[str, Any]) -> dict[str, Any]:
    """Worker: render sample ``task`` and write it where the layout wants it."""
    rng = np.random.default_rng(task["seed_seq"])
    n = int(rng.integers(task["frames"][0], task["frames"][1] + 1))
    frames, desc = render_video(task["motion"], rng, task["height"], n, width=task.get("width"),
                                reverse=task["reverse"])
    if task["kind"] == "rawframes":
        write_frames(Path(task["out"]), frames, task["tmpl"])
    else:
        write_video(task["out"], frames, task["codec"])
    return {"index": task["index"], "num_frames": n, **desc}


def _ytid(rng: np.random.Generator) -> str:
    alphabet = string.ascii_letters + string.digits + "-_"
    return "".join(alphabet[int(i)] for i in rng.integers(0, len(alphabet), size=11))


def _run_tasks(tasks: list[dict[str, Any]], workers: int, progress: bool) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with track(total=len(tasks), desc="writing the synthetic videos", unit="videos", enabled=progress) as bar:
        if workers <= 1:
            for task in tasks:
                results.append(_render_task(task))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for res in pool.map(_render_task, tasks, chunksize=max(1, len(tasks) // (8 * workers))):
                    results.append(res)
                    bar.update()
    return sorted(results, key=lambda r: r["index"])


_COUNT_OPTIONS = {"train": "num_train", "val": "num_val", "test": "num_test"}


def _params(layout: str, preset: str, counts: dict[str, int | None], seed: int, height: int | None,
            frames: tuple[int, int] | None) -> dict[str, Any]:
    """The parameters the dataset is written with (stored in the meta, compared to reuse it);
    SyntheticError naming the option and what to give for a bad value."""
    if layout not in LAYOUTS:
        raise SyntheticError(f"layout must be one of {', '.join(LAYOUTS)} (--layout), got {layout!r}")
    if preset not in PRESETS:
        raise SyntheticError(f"size must be one of {', '.join(sorted(PRESETS))} (--size), got {preset!r}")
    p = PRESETS[preset]
    k = len(classes_for(layout))
    sizes = {}
    for split in SYNTHETIC.splits:
        given = counts.get(split)
        n = int(given) if given is not None else p[f"per_class_{split}"] * k
        if n < 1:
            option = _COUNT_OPTIONS[split]
            raise SyntheticError(f"--{option.replace('_', '-')} {n}: every split needs at least one video; give a "
                                 f"positive count ({option}=...), or leave it out for the '{preset}' size's "
                                 f"{p[f'per_class_{split}'] * k}")
        sizes[split] = n
    lo, hi = frames or p["frames"]
    h = int(height or p["height"][layout])
    if h < MIN_HEIGHT:
        raise SyntheticError(f"--height {h}: frames must be at least {MIN_HEIGHT} pixels high")
    if layout != "sthv1" and h % 2:
        raise SyntheticError(f"--height {h}: video frames must have an even height (yuv420p encoding); give "
                             f"{h + 1} or {h - 1}")
    if lo < 1 or hi < lo:
        raise SyntheticError(f"frames must be (min, max) with 1 <= min <= max, got {(lo, hi)}")
    return dict(layout=layout, size=preset, seed=int(seed), height=h, frames=[int(lo), int(hi)],
                num_train=sizes["train"], num_val=sizes["val"], num_test=sizes["test"], version=PARAMS_VERSION)


def _reusable(meta_path: Path, params: dict[str, Any]) -> SyntheticMeta | None:
    """The meta of a dataset already written with ``params`` whose lists are all there, else None."""
    try:
        meta = SyntheticMeta.read_optional(meta_path)
    except RecordError as err:
        log.warning("%s; writing the dataset again", err)
        return None
    if meta is None or meta.params != params:
        return None
    lists = [meta.train_list, meta.val_list, meta.test_list]
    return meta if all(lst and Path(lst).exists() for lst in lists) else None


def _clear_output(root: Path, overwrite: bool) -> None:
    """Make ``root`` an empty folder: refuse (SyntheticError) to delete anything that is not a
    synthetic dataset unless ``overwrite``."""
    if root.exists() and not root.is_dir():
        raise SyntheticError(f"{root} is a file, not a folder; choose another --out")
    if root.is_dir() and any(root.iterdir()):
        if not (overwrite or (root / META_NAME).exists()):
            raise SyntheticError(f"{root} is not empty and holds no synthetic dataset written by tinlib; choose an "
                                 "empty or new --out folder, or pass --overwrite (overwrite=True) to delete its "
                                 "contents and write the dataset there")
        log.info(f"replacing the synthetic dataset in {root}" if (root / META_NAME).exists() else
                 f"deleting the contents of {root} (--overwrite)")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)


def write_synthetic(root: str | os.PathLike, layout: str = "sthv1", *, num_train: int | None = None,
                    num_val: int | None = None, num_test: int | None = None, seed: int = 0, size: str = "demo",
                    height: int | None = None, frames: tuple[int, int] | None = None, workers: int | None = None,
                    extract_frames: bool = False, overwrite: bool = False, progress: bool = False) -> dict[str, Any]:
    """Write the synthetic dataset in ``layout`` under ``root`` and build its MMAction2 lists.

    Splits ``train``, ``val`` (validation during training) and a held-out ``test`` (what the demo
    configs evaluate on), each balanced over the classes. ``size`` is a preset of :data:`PRESETS`;
    ``num_train``/``num_val``/``num_test``/``height``/``frames`` override it. The lists are built
    from the release's annotation files with :mod:`tinlib.data.prepare`, as for the real datasets;
    ``extract_frames`` (video layouts) adds rawframe lists. A folder holding a dataset written with
    the same parameters is reused unless ``overwrite``; one holding anything else is refused
    (SyntheticError) unless ``overwrite``.

    Returns the :class:`tinlib.records.SyntheticMeta` stored in ``root/synthetic_meta.json`` as a
    dict (``kind``, the lists, ``data_prefix``, ``filename_tmpl``, ``start_index``: what to pass
    to ``build_dataset``).
    """
    root = Path(root)
    params = _params(layout, size, {"train": num_train, "val": num_val, "test": num_test}, seed, height, frames)
    params["extract_frames"] = bool(extract_frames)
    if workers is not None and workers < 1:
        raise SyntheticError(f"--workers {workers}: give at least 1 process")
    meta_path = root / META_NAME
    if not overwrite:
        existing = _reusable(meta_path, params)
        if existing is not None:
            return existing.to_dict()
    _clear_output(root, overwrite)
    start = time.perf_counter()
    classes = classes_for(layout)
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    tasks, entries = _plan(root, layout, params, classes)
    results = _run_tasks(tasks, workers, progress)
    _write_official_annotations(root, layout, classes, entries, results)
    report = _build_lists(root, layout, params, workers)
    meta = _meta(root, layout, params, classes, report, round(time.perf_counter() - start, 2))
    meta.write(meta_path)
    return meta.to_dict()


def _plan(root: Path, layout: str, params: dict[str, Any],
          classes: list[SynthClass]) -> tuple[list[dict[str, Any]], list[tuple[str, str, SynthClass, int]]]:
    """The render tasks of every sample (what to draw, with which seed, where to write it) and the
    ``(split, video id, class, start second)`` entries of the annotation files."""
    k = len(classes)
    master = np.random.default_rng([params["seed"], 7])
    samples = []  # (split, index in split, class)
    for code, split in enumerate(SYNTHETIC.splits):
        labels = np.arange(params[_COUNT_OPTIONS[split]]) % k
        np.random.default_rng([params["seed"], 11, code]).shuffle(labels)
        samples += [(split, i, int(c)) for i, c in enumerate(labels)]
    ids = (master.permutation(len(samples)) + 1).tolist()
    tasks, entries = [], []
    codec = video_codec("webm") if layout == "sthv2" else video_codec("mp4")
    for g, (split, _, c) in enumerate(samples):
        cls = classes[c]
        task = dict(index=g, seed_seq=[params["seed"], 13, g], motion=cls.motion, reverse=cls.reverse,
                    height=params["height"], frames=params["frames"])
        media = root / RELEASES[layout].media_dir(split)  # sthv1: frame folders; sthv2: videos; k400: per split
        if layout == "sthv1":
            vid = str(ids[g])
            task.update(kind="rawframes", out=str(media / vid), tmpl=STHV1.frame_template)
        elif layout == "sthv2":
            vid = str(ids[g])
            task.update(kind="videos", out=str(media / f"{vid}.webm"), codec=codec)
        else:
            begin = int(master.integers(0, 290))
            vid = f"{_ytid(master)}_{begin:06d}_{begin + 10:06d}"
            task.update(kind="videos", out=str(media / cls.k400_name / f"{vid}.mp4"), codec=codec, width=2 * int(
                round(params["height"] * (16 / 9 if master.random() < 0.5 else 4 / 3) / 2)), begin=begin)
        Path(task["out"]).parent.mkdir(parents=True, exist_ok=True)
        tasks.append(task)
        entries.append((split, vid, cls, task.get("begin", 0)))
    return tasks, entries


def _build_lists(root: Path, layout: str, params: dict[str, Any], workers: int) -> dict[str, Any]:
    """The lists, built from the annotation files as for the real datasets; prepare's report."""
    annotations = {split: root / SYNTHETIC.split_file(layout, split) for split in SYNTHETIC.splits}
    extract = params["extract_frames"]
    if layout == "sthv1":
        return prepare.prepare_sthv1(root, root, annotations=annotations, quiet=True)
    if layout == "sthv2":
        return prepare.prepare_sthv2(root, root, extract=extract, workers=workers, annotations=annotations,
                                     quiet=True)
    assert K400.shipped_label_map is not None
    return prepare.prepare_kinetics400(root, root, extract=extract, workers=workers, quiet=True,
                                       short_side=params["height"], label_map=root / K400.shipped_label_map,
                                       annotations=annotations)


def _meta(root: Path, layout: str, params: dict[str, Any], classes: list[SynthClass], report: dict[str, Any],
          seconds: float) -> SyntheticMeta:
    """The summary stored beside the dataset: lists, counts, class names and the reversal pairs."""
    names = report["class_names"]
    index = {name: i for i, name in enumerate(names)}
    key = (lambda c: c.name) if layout != "k400" else (lambda c: c.k400_name)
    by_motion: dict[str, list[int]] = {}
    for cls in classes:
        if cls.motion in ("horizontal", "vertical", "scale", "light"):
            by_motion.setdefault(cls.motion, [-1, -1])[int(cls.reverse)] = index[key(cls)]
    pairs = [list(v) for v in by_motion.values()]
    primary = "rawframes" if "rawframes" in report["lists"] else "videos"
    lists = {kind: ListSet.from_dict(value) for kind, value in report["lists"].items()}
    main = lists[primary]
    assert main.train and main.val and main.test
    return SyntheticMeta(
        layout=layout, root=str(root), params=params, seed=params["seed"], num_train=params["num_train"],
        num_val=params["num_val"], num_test=params["num_test"], counts=dict(report["counts"]),
        flip_ok=not any(c.flip_sensitive for c in classes), kind=primary, train_list=main.train,
        val_list=main.val, test_list=main.test, data_prefix=main.data_prefix, filename_tmpl=main.filename_tmpl,
        start_index=main.start_index, lists=lists, class_names=names, num_classes=len(names),
        reversal_pairs=pairs, reversal_classes=sorted(i for p in pairs for i in p), seconds=seconds)


def _write_official_annotations(root: Path, layout: str, classes: list[SynthClass], entries, results) -> None:
    """The release's own annotation files for the samples written (what prepare reads); the test
    split's in the same format under its own name (:meth:`Synthetic.split_file`)."""
    if layout == "sthv1":
        assert STHV1.labels_file is not None
        atomic_write_text(root / STHV1.labels_file, "".join(f"{c.name}\n" for c in classes))
        for split in SYNTHETIC.splits:
            lines = [f"{vid};{cls.name}\n" for s, vid, cls, _ in entries if s == split]
            atomic_write_text(root / SYNTHETIC.split_file(layout, split), "".join(lines))
    elif layout == "sthv2":
        assert STHV2.labels_file is not None
        atomic_write_json(root / STHV2.labels_file, {c.name: str(i) for i, c in enumerate(classes)})
        for split in SYNTHETIC.splits:
            items = []
            for (s, vid, cls, _), res in zip(entries, results):
                if s != split:
                    continue
                thing = f"{res['color']} {res['shape']}"
                items.append(dict(id=vid, label=cls.template.replace("[something]", thing)
                                  .replace("[several things]", "several things"),
                                  template=cls.template, placeholders=[thing]))
            atomic_write_json(root / SYNTHETIC.split_file(layout, split), items)
    else:
        # class-index file as MMAction2 ships it (names in index order), so that small splits
        # without some class keep the full class list
        assert K400.shipped_label_map is not None
        ordered = sorted(classes, key=lambda c: c.k400_name)
        atomic_write_text(root / K400.shipped_label_map, "".join(f"{c.k400}\n" for c in ordered))
        for split in SYNTHETIC.splits:
            lines = ["label,youtube_id,time_start,time_end,split\n"]
            for s, vid, cls, begin in entries:
                if s == split:
                    label = f'"{cls.k400}"' if "," in cls.k400 or "(" in cls.k400 else cls.k400
                    lines.append(f"{label},{vid[:11]},{begin},{begin + 10},{split}\n")
            atomic_write_text(root / SYNTHETIC.split_file(layout, split), "".join(lines))


def write_demo_video(path: str | os.PathLike, classes: Sequence[int], *, frames_per_class: int = 24,
                     height: int = 40, seed: int = 0) -> list[tuple[int, int, str]]:
    """A video of synthetic-dataset classes played one after the other (for trying ``predict``
    without data): ``classes`` are indices into :data:`~tinlib.data.synthetic_render.CLASSES`, each
    rendered for ``frames_per_class`` frames of ``height`` (made even) pixels. Writes an .mp4 or
    .webm (by the suffix of ``path``); returns ``(start frame, end frame, class name)`` spans."""
    rng = np.random.default_rng(seed)
    height = height + height % 2
    width = 2 * round(height * 1.4 / 2)
    parts, spans, start = [], [], 0
    for c in classes:
        cls = CLASSES[c]
        frames, _ = render_video(cls.motion, rng, height, frames_per_class, width=width, reverse=cls.reverse)
        parts.append(frames)
        spans.append((start, start + frames_per_class, cls.name))
        start += frames_per_class
    path = Path(path)
    if path.suffix not in (".mp4", ".webm"):
        raise ValueError(f"write_demo_video writes .mp4 or .webm files, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, np.concatenate(parts), video_codec(path.suffix.lstrip(".")))
    return spans
