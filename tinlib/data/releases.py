"""What the official dataset releases look like on disk, stated once: one :class:`Release` per
dataset, and :data:`SYNTHETIC`. Standard library only: the pipeline's data check imports it
before anything is installed.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "val")
# the summary the preparation writes beside the lists; the other steps read it to find the data
PREPARE_SUMMARY = "tinlib_prepare.json"
# frames extracted by tinlib (and by MMAction2's tools): img_00001.jpg, img_00002.jpg, ...
RAWFRAME_TEMPLATE = "img_{:05}.jpg"
VIDEO_EXTS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".flv")


@dataclass(frozen=True)
class Release:
    """The on-disk layout of one official dataset release."""

    key: str  # the dataset's name on the command line and in the pipeline's file names (``sthv1``)
    url: str  # the download page
    folder: str  # the sub-folder of ``DATA_ROOT`` that ``make reproduce-all`` expects for it
    # per split (``train``, ``val``), the annotation file names accepted, the official one first
    split_files: Mapping[str, tuple[str, ...]]
    # the folders of frames or videos the release unpacks to; each entry lists alternative names of
    # one required folder, the official one first
    media_dirs: tuple[tuple[str, ...], ...]
    list_prefix: str  # the preparation writes ``<list_prefix>_<split>_list_<kind>.txt``
    frame_template: str  # file names of the frames lists point at (``str.format`` of the 1-based index)
    instructions: str  # what to download and where to put it, ``{url}`` for the download page
    url_note: str = ""  # more on where to get it, shown after the URL in messages
    labels_file: str | None = None  # the class list shipped with it (None: from the train split)
    archive_parts: str | None = None  # the shell pattern of the archive parts (None: not in parts)
    extract_short_side: int | None = None  # short side of extracted frames (None: native size)
    label_map_file: str | None = None  # the class index file the preparation writes
    shipped_label_map: str | None = None  # the class index file as MMAction2 ships it

    @property
    def source(self) -> str:
        """Where to download it: the URL and the note, for messages."""
        return f"{self.url} ({self.url_note})" if self.url_note else self.url

    @property
    def unpack_command(self) -> str:
        """The shell command that unpacks the archive parts in ``DATA_ROOT``."""
        if not self.archive_parts:
            raise ValueError(f"{self.key} is not shipped as archive parts")
        return f"cat {self.archive_parts} | tar zx"

    def split_file(self, split: str) -> str:
        """The official annotation file name of ``split`` (``train`` or ``val``)."""
        return self.split_files[split][0]

    def media_dir(self, split: str) -> str:
        """The official folder of ``split``'s frames or videos: the one media folder of a release
        that keeps every split together (Something-Something), else the split's own (Kinetics-400:
        ``videos_train``; a further split such as the synthetic ``test`` gives ``videos_test``)."""
        if len(self.media_dirs) == 1:
            return self.media_dirs[0][0]
        if split in SPLITS:
            return self.media_dirs[SPLITS.index(split)][0]
        return f"videos_{split}"

    def frames_dir(self, split: str) -> str:
        """The folder (under the output folder) the preparation extracts ``split``'s frames into:
        ``rawframes`` for a release that keeps every split in one media folder, else ``rawframes_<split>``."""
        return "rawframes" if len(self.media_dirs) == 1 else f"rawframes_{split}"

    def list_name(self, split: str, kind: str = "rawframes") -> str:
        """The list file the preparation writes for ``split`` and ``kind`` (``rawframes`` or ``videos``)."""
        return f"{self.list_prefix}_{split}_list_{kind}.txt"

    @property
    def list_names(self) -> tuple[str, str]:
        """The train and val rawframe lists, what training reads after the preparation."""
        return self.list_name("train"), self.list_name("val")

    def lists_of(self, splits: Sequence[str] = SPLITS) -> tuple[str, ...]:
        """The rawframe lists the preparation of ``splits`` writes (``("val",)``: what testing reads)."""
        return tuple(self.list_name(s) for s in splits)

    def annotation_paths(self, root: str | Path, splits: Sequence[str] = SPLITS) -> list[Path]:
        """The official annotation files under ``root`` that preparing ``splits`` reads: the class
        list first when there is one, else the train split's file (the classes come from it), then
        the files of ``splits``."""
        root = Path(root)
        wanted = list(splits) if self.labels_file else ["train", *(s for s in splits if s != "train")]
        names = ([self.labels_file] if self.labels_file else []) + [self.split_file(s) for s in wanted]
        return [root / name for name in names]

    def media_dirs_of(self, splits: Sequence[str] = SPLITS) -> tuple[tuple[str, ...], ...]:
        """The entries of :attr:`media_dirs` that preparing ``splits`` needs: the one folder of a
        release that keeps every split together, else the folders of those splits."""
        if len(self.media_dirs) == 1:
            return self.media_dirs
        return tuple(self.media_dirs[SPLITS.index(s)] for s in splits if s in SPLITS)

    def download_help(self) -> str:
        """What to download and how to lay it out, several lines, for a missing-data message."""
        return self.instructions.format(url=self.url)


STHV1 = Release(
    key="sthv1", url="https://developer.qualcomm.com/software/ai-datasets/something-something", folder="sthv1",
    labels_file="something-something-v1-labels.csv",
    split_files={"train": ("something-something-v1-train.csv",), "val": ("something-something-v1-validation.csv",)},
    media_dirs=(("20bn-something-something-v1", "rawframes"),),
    archive_parts="20bn-something-something-v1-??", list_prefix="sthv1", frame_template="{:05}.jpg",
    instructions="""Something-Something V1 ({url}):
  - the frame archives 20bn-something-something-v1-00 ... -22; unpack them in DATA_ROOT with
      cat 20bn-something-something-v1-?? | tar zx
    (gives DATA_ROOT/20bn-something-something-v1/<video id>/00001.jpg ...)
  - something-something-v1-labels.csv, -train.csv and -validation.csv, also in DATA_ROOT""")

STHV2 = Release(
    key="sthv2", url=STHV1.url, folder="sthv2",
    labels_file="something-something-v2-labels.json",
    split_files={"train": ("something-something-v2-train.json",), "val": ("something-something-v2-validation.json",)},
    media_dirs=(("20bn-something-something-v2", "videos"),),
    archive_parts="20bn-something-something-v2-??", list_prefix="sthv2", frame_template=RAWFRAME_TEMPLATE,
    instructions="""Something-Something V2 ({url}):
  - the video archives 20bn-something-something-v2-00 ... -19; unpack them in DATA_ROOT with
      cat 20bn-something-something-v2-?? | tar zx
    (gives DATA_ROOT/20bn-something-something-v2/<video id>.webm)
  - something-something-v2-labels.json, -train.json and -validation.json, also in DATA_ROOT
  frames are extracted at native size on the first run (about 1 TB free disk for the full set)""")

K400 = Release(
    key="k400", url="https://github.com/cvdfoundation/kinetics-dataset",
    url_note="or DeepMind's kinetics CSVs + a downloader", folder="kinetics400",
    split_files={"train": ("kinetics_train.csv", "kinetics400_train.csv", "train.csv"),
                 "val": ("kinetics_val.csv", "kinetics400_val.csv", "validate.csv")},
    media_dirs=(("videos_train",), ("videos_val",)), list_prefix="kinetics400", frame_template=RAWFRAME_TEMPLATE,
    extract_short_side=256, label_map_file="kinetics400_label_map.txt", shipped_label_map="label_map_k400.txt",
    instructions="""Kinetics-400 ({url}):
  - the trimmed clips in DATA_ROOT/videos_train/<class>/<youtube_id>_<start>_<end>.mp4 and
    DATA_ROOT/videos_val/<class>/...
  - the annotation CSVs renamed kinetics_train.csv and kinetics_val.csv in DATA_ROOT
  - for training, the TSM-K400 checkpoint the row fine-tunes from (the config's model.load_from) is
    downloaded into torch's hub cache on first use; offline, `tinlib fetch
    tsm_r50_1x1x8_50e_kinetics400_rgb` says where to put the file
  frames are extracted with short side 256 on the first run""")

RELEASES: dict[str, Release] = {r.key: r for r in (STHV1, STHV2, K400)}


@dataclass(frozen=True)
class Synthetic:
    """The embedded synthetic dataset, written in the layout of one of the official releases.

    Besides train and val it has a held-out ``test`` split that training never sees (the releases'
    own test splits come without labels); its annotations are written in the layout's train/val
    format under :attr:`test_files` (not official names) and prepared like the others.
    """

    layouts: tuple[str, ...] = ("sthv1", "sthv2", "k400")  # keys of RELEASES
    meta_file: str = "synthetic_meta.json"  # the writer's summary (lists, classes, reversal pairs)
    fps: int = 12  # of the encoded videos
    splits: tuple[str, ...] = (*SPLITS, "test")
    test_files: Mapping[str, str] = field(default_factory=lambda: {
        "sthv1": "synthetic-test.csv", "sthv2": "synthetic-test.json", "k400": "synthetic-test.csv"})

    def split_file(self, layout: str, split: str) -> str:
        """The annotation file of ``split`` in ``layout``: the release's own for train/val,
        :attr:`test_files` for test."""
        return self.test_files[layout] if split == "test" else RELEASES[layout].split_file(split)


SYNTHETIC = Synthetic()
DATASETS = (*RELEASES, "synthetic")


def release(key: str) -> Release:
    """The :class:`Release` of ``key`` (``sthv1``, ``sthv2``, ``k400``); ValueError naming the choices."""
    try:
        return RELEASES[key]
    except KeyError:
        raise ValueError(f"dataset must be one of {sorted(RELEASES)}, got {key!r}") from None


def prefix_key(split: str) -> str:
    """The key of a split's media folder in a list set: ``data_prefix`` for train (MMAction2's
    name), ``<split>_data_prefix`` for the others."""
    return "data_prefix" if split == "train" else f"{split}_data_prefix"


def choose_splits(splits: str | Sequence[str] | None, available: Sequence[str] = SPLITS) -> tuple[str, ...]:
    """The splits to prepare, in the order of ``available``: ``splits`` is a sequence or one
    comma-separated string (``"train,val"``), None for all. ValueError naming the choices when a
    name is not among ``available`` or none is given.
    """
    if splits is None:
        return tuple(available)
    names = [s.strip() for s in (splits.split(",") if isinstance(splits, str) else splits) if s.strip()]
    unknown = [s for s in names if s not in available]
    if unknown or not names:
        what = f"unknown split {', '.join(map(repr, unknown))}" if unknown else "no split given"
        raise ValueError(f"{what}; choose from {', '.join(available)} (comma-separated, e.g. --splits val)")
    return tuple(s for s in available if s in names)


def sthv2_label_name(template: str) -> str:
    """The labels.json key of a Something-Something template: the template with ``[`` and ``]`` removed."""
    return template.replace("[", "").replace("]", "")


def normalize_k400_label(label: str) -> str:
    """Kinetics class folder / index name: quotes removed, spaces -> ``_`` (MMAction2's convention)."""
    return label.replace('"', "").replace(" ", "_")
