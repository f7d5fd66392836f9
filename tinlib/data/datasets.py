"""Clip datasets over MMAction2 lists: ``RawframeDataset`` (JPEG folders) and ``VideoDataset``.

An item is ``(clip [V*T, 3, H, W] uint8 RGB, label)``, the frames of a view consecutive (what
TIN/TSM's ``view(N, T, ...)`` relies on), views crop-major; the consumer normalises the batch on its
device with :func:`tinlib.data.normalization.normalize`. A bad sample raises ``DataError``
naming it, or with ``skip_bad_samples`` is replaced by the next readable one (training) or returned
as a :class:`SkippedSample` that the evaluation drops; skips are logged and recorded."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
import weakref
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .annotations import KINDS, DataError, Record, load_annotations
from .decoding import DECODE_DEVICES, VIDEO_BACKENDS, decode_rawframes, open_video
from .gpu_decode import decode_frame_folder
from .sampling import sample_views
from .transforms import CROPS_PER_MODE, TEST_CROPS, chw_tensor, test_transform, train_transform

log = logging.getLogger(__name__)
MAX_SKIP_TRIES = 20
SKIP_HINT = "or skip such samples with --set data.skip_bad_samples=true"


@dataclasses.dataclass(frozen=True)
class SkippedSample:
    """A sample that could not be read (``line`` is 1-based in the list, ``reason`` the decoder's
    message); a test-mode dataset with ``skip_bad_samples`` returns one in place of ``(clip, label)``."""

    index: int
    line: int
    path: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """What metrics.json and train.json record."""
        return dataclasses.asdict(self)


class _Journal:
    """The skips of one dataset as JSON lines in a small file, appended by whichever process met
    them (DataLoader workers included, whatever their start method) and read back by the parent.

    Without ``path``, a new temporary file holding ``entries``, removed when this object goes away
    in the process that made it (not by a worker that shares the file)."""

    def __init__(self, path: str | None = None, entries: Iterable[dict[str, Any]] = ()):
        if path is None:
            fd, path = tempfile.mkstemp(prefix="tinlib-skipped-", suffix=".jsonl")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(e) + "\n" for e in entries)
            weakref.finalize(self, _remove_owned, path, os.getpid())
        self.path = path

    def append(self, entry: dict[str, Any]) -> None:
        # one small write in append mode: lines of concurrent workers do not interleave
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def entries(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line cut short by a killed worker
        return out


def _remove_owned(path: str, owner: int) -> None:
    if os.getpid() == owner:  # not in a forked worker that inherited the object
        with contextlib.suppress(OSError):
            os.unlink(path)


def merge_skipped(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per sample, in dataset order: ``{"index", "line", "path", "reason", "times"}``,
    ``times`` counting how often it was met (a training sample is met every epoch, and by several
    processes under torchrun); entries may already carry ``times``."""
    merged: dict[int, dict[str, Any]] = {}
    for e in entries:
        index = int(e["index"])
        entry = merged.setdefault(index, {"index": index, "line": e.get("line"), "path": e.get("path"),
                                          "reason": e.get("reason"), "times": 0})
        entry["times"] += int(e.get("times", 1))
    return [merged[i] for i in sorted(merged)]


def skipped_samples_of(dataset: Any) -> list[dict[str, Any]]:
    """The samples ``dataset`` (a tinlib dataset, possibly inside a ``Subset``) skipped so far in
    this process and its loader workers (see :func:`merge_skipped`); [] for other datasets."""
    while not hasattr(dataset, "skipped_samples") and hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    getter = getattr(dataset, "skipped_samples", None)
    return getter() if callable(getter) else []


class ClipDataset(Dataset):
    """Common part: list parsing, sampling, transforms, bad-sample handling (see the module doc).

    ``num_segments`` is T, the frames per view; ``start_index`` None means 1 for rawframes, 0 for
    videos; ``num_clips``, ``twice_sample`` and ``test_crop`` only apply in test mode (training
    has one view); ``scale_size`` is the short side after resizing, ``input_size`` the crop side;
    ``flip`` and ``multi_scale_crop`` (else a random crop) only apply in training; ``num_classes``
    bounds the labels (None: not checked); ``skip_bad_samples`` as in the module doc.

    Randomness: with ``self.seed`` set (``build_loader`` does it), the random draws of item ``i``
    in epoch ``e`` come from ``numpy.random.default_rng([seed, e, i])``, so a run is reproducible
    whatever the number of workers; without a seed, from a fresh generator per process.
    """

    kind = "rawframes"

    def __init__(self, ann_file: str | os.PathLike, data_prefix: str | os.PathLike, *, num_segments: int = 8,
                 test_mode: bool = False, start_index: int | None = None, num_clips: int = 1,
                 twice_sample: bool = False, test_crop: str = "center", scale_size: int = 256,
                 input_size: int = 224, flip: bool = False, num_classes: int | None = None,
                 skip_bad_samples: bool = False, multi_scale_crop: bool = True):
        if test_crop not in TEST_CROPS:
            raise ValueError(f"test_crop must be one of {TEST_CROPS}, got {test_crop!r}")
        if scale_size < input_size:
            raise ValueError(f"scale_size ({scale_size}) must be >= input_size ({input_size})")
        if num_segments < 1 or num_clips < 1:
            raise ValueError(f"num_segments and num_clips must be >= 1, got {num_segments}, {num_clips}")
        self.ann_file = os.fspath(ann_file)
        self.data_prefix = os.fspath(data_prefix)
        if not os.path.isdir(self.data_prefix):
            raise DataError(f"data_prefix is not a folder: {self.data_prefix}; prepare the data "
                            "(`tinlib prepare --help`) or fix the config")
        self.records: list[Record] = load_annotations(self.ann_file, self.kind, num_classes)
        self.num_segments, self.test_mode = num_segments, test_mode
        self.start_index = (1 if self.kind == "rawframes" else 0) if start_index is None else int(start_index)
        self.num_clips, self.twice_sample, self.test_crop = num_clips, twice_sample, test_crop
        self.scale_size, self.input_size = scale_size, input_size
        self.flip, self.multi_scale_crop = flip, multi_scale_crop
        self.num_classes = num_classes
        self.skip_bad_samples = skip_bad_samples
        self.labels: list[int] = [r.label for r in self.records]
        self.seed: int | None = None
        self._epoch_cell = _epoch_cell(0)
        # shared with the DataLoader workers, so the parent sees every worker's skips
        self._journal = _Journal()
        self._local_rng: np.random.Generator | None = None
        self._warned_short: set[int] = set()

    @property
    def epoch(self) -> int:
        """The epoch of the current pass, set by the loader before each pass. It lives in shared
        memory, so that persistent DataLoader workers (started once, with a copy of this dataset)
        read the epoch the parent sets."""
        return int(self._epoch_cell.item())

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch_cell.fill_(int(value))

    @property
    def skipped(self) -> int:
        """How many times a bad sample was skipped so far, all workers together."""
        return len(self._journal.entries())

    def skipped_samples(self) -> list[dict[str, Any]]:
        """The bad samples skipped so far, all workers together (see :func:`merge_skipped`)."""
        return merge_skipped(self._journal.entries())

    @property
    def views(self) -> int:
        """Views per item: 1 in training; clips x (2 with twice_sample) x crops (1, 3 or 10) in test mode."""
        if not self.test_mode:
            return 1
        return self.num_clips * (2 if self.twice_sample else 1) * CROPS_PER_MODE[self.test_crop]

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        mode = "test" if self.test_mode else "train"
        return (f"{type(self).__name__}({self.ann_file!r}, {len(self)} samples, {mode}, T={self.num_segments}, "
                f"views={self.views}, {self.scale_size}->{self.input_size})")

    def _rng(self, idx: int) -> np.random.Generator:
        if self.seed is not None:
            return np.random.default_rng([int(self.seed) % 2**63, int(self.epoch) % 2**63, int(idx)])
        if self._local_rng is None:
            self._local_rng = np.random.default_rng()
        return self._local_rng

    def _decode(self, record: Record, rng: np.random.Generator) -> np.ndarray:
        """``[views_t * T, H, W, 3]`` uint8 frames of the temporal views; implemented per kind."""
        raise NotImplementedError

    def _load(self, idx: int) -> tuple[torch.Tensor, int]:
        record = self.records[idx]
        rng = self._rng(idx)
        frames = self._decode(record, rng)
        if self.test_mode:
            frames = test_transform(frames, scale_size=self.scale_size, input_size=self.input_size,
                                    test_crop=self.test_crop)
        else:
            frames = train_transform(frames, rng, scale_size=self.scale_size, input_size=self.input_size,
                                     flip=self.flip, multi_scale_crop=self.multi_scale_crop)
        return chw_tensor(frames), record.label

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int] | SkippedSample:
        """``(clip [V*T, 3, H, W] uint8, label)``; for a bad sample see the module doc (raise, replace or
        return a :class:`SkippedSample`)."""
        if not self.skip_bad_samples:
            try:
                return self._load(idx)
            except DataError as err:
                raise type(err)(f"sample {idx} ({self.records[idx].where()}): {err}, {SKIP_HINT}") from None
        if self.test_mode:  # left out, never replaced: a replacement would be scored twice
            try:
                return self._load(idx)
            except DataError as err:
                skipped = self._skip(idx, err)
                log.debug("left out sample %d (%s): %s", idx, self.records[idx].where(), err)
                return skipped
        for attempt in range(MAX_SKIP_TRIES):
            cur = (idx + attempt) % len(self)
            try:
                return self._load(cur)
            except DataError as err:
                self._skip(cur, err)
                log.warning("skipping bad sample %d (%s): %s; the next readable sample takes its place in "
                            "this epoch", cur, self.records[cur].where(), err)
        raise DataError(f"{MAX_SKIP_TRIES} consecutive bad samples from index {idx} in {self.ann_file}; "
                        "the data is broken beyond skipping: check data_prefix and rebuild the list")

    def _skip(self, idx: int, err: DataError) -> SkippedSample:
        record = self.records[idx]
        skipped = SkippedSample(index=idx, line=record.line, path=record.path, reason=str(err))
        self._journal.append(dict(skipped.to_dict(), epoch=int(self.epoch)))
        return skipped

    def _indices(self, total_frames: int, rng: np.random.Generator, record: Record) -> np.ndarray:
        """0-based frame indices ``[views_t * T]`` (temporal views after each other)."""
        if total_frames < self.num_segments and record.line not in self._warned_short:
            # legal (MMAction2 repeats frames) but worth knowing: such clips carry little motion
            self._warned_short.add(record.line)
            log.warning("%s has %d frames, fewer than num_segments=%d: frames are repeated (MMAction2 sampling)",
                        record.where(), total_frames, self.num_segments)
        return sample_views(total_frames, self.num_segments, num_clips=self.num_clips, test_mode=self.test_mode,
                            rng=rng, twice_sample=self.twice_sample).reshape(-1)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_local_rng"] = None
        if _spawning():  # a loader worker being started: it appends to this dataset's journal
            state["_journal"] = ("shared", self._journal.path)  # (and shares the epoch cell)
        else:  # a plain copy (pickle, deepcopy): its own journal, starting with the skips so far
            state["_journal"] = ("copy", self._journal.entries())
            state["_epoch_cell"] = self.epoch  # and its own epoch
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        how, value = state["_journal"]
        state["_journal"] = _Journal(value) if how == "shared" else _Journal(entries=value)
        if not isinstance(state["_epoch_cell"], torch.Tensor):
            state["_epoch_cell"] = _epoch_cell(state["_epoch_cell"])
        self.__dict__.update(state)


def _epoch_cell(epoch: int) -> torch.Tensor:
    """A 0-d int64 tensor in shared memory holding ``epoch``: forked workers inherit it, spawned
    ones receive it through torch's multiprocessing pickler, and both see the parent's writes."""
    return torch.tensor(int(epoch), dtype=torch.int64).share_memory_()


def _spawning() -> bool:
    """True while multiprocessing pickles arguments for a new process (spawn/forkserver workers)."""
    from multiprocessing import context

    return context.get_spawning_popen() is not None


class RawframeDataset(ClipDataset):
    """Frame folders ``data_prefix/frame_dir/filename_tmpl.format(k)``, ``k`` from ``start_index``
    (default 1); the list gives each folder's frame count."""

    kind = "rawframes"

    def __init__(self, ann_file, data_prefix, *, filename_tmpl: str = "img_{:05}.jpg", decode_device: str = "cpu",
                 **kwargs):
        if decode_device not in DECODE_DEVICES:
            raise ValueError(f"decode_device must be one of {DECODE_DEVICES}, got {decode_device!r}")
        super().__init__(ann_file, data_prefix, **kwargs)
        self.filename_tmpl, self.decode_device = filename_tmpl, decode_device

    def _decode(self, record: Record, rng: np.random.Generator) -> np.ndarray:
        if record.total_frames is None:  # load_annotations gives every rawframe line its count
            raise DataError(f"{record.where()} has no frame count; rebuild the list")
        inds = self._indices(record.total_frames, rng, record).tolist()
        frame_dir = os.path.join(self.data_prefix, record.path)
        if self.decode_device == "cuda":  # nvJPEG in a spawned worker (build_loader), frames back on the CPU
            return decode_frame_folder(frame_dir, inds, self.filename_tmpl, self.start_index, self.decode_device)
        return decode_rawframes(frame_dir, inds, self.filename_tmpl, self.start_index)


class VideoDataset(ClipDataset):
    """Video files ``data_prefix/path``; decoded with ``video_backend`` ("auto": the fastest
    available, PyAV as the fallback) on ``decode_device``, opened per item, so each DataLoader worker
    opens its own readers. "cuda" decoding in workers needs the "spawn" start method (build_loader
    uses it then); frames come back to the CPU either way."""

    kind = "videos"

    def __init__(self, ann_file, data_prefix, *, video_backend: str = "auto", decode_device: str = "cpu", **kwargs):
        if video_backend not in VIDEO_BACKENDS:
            raise ValueError(f"video_backend must be one of {VIDEO_BACKENDS}, got {video_backend!r}")
        if decode_device not in DECODE_DEVICES:
            raise ValueError(f"decode_device must be one of {DECODE_DEVICES}, got {decode_device!r}")
        super().__init__(ann_file, data_prefix, **kwargs)
        self.video_backend = video_backend
        self.decode_device = decode_device

    def _decode(self, record: Record, rng: np.random.Generator) -> np.ndarray:
        video = open_video(os.path.join(self.data_prefix, record.path), self.video_backend, self.decode_device)
        # Video frames are 0-based; a non-zero start_index shifts them like MMAction2 does.
        inds = self._indices(len(video), rng, record) + self.start_index
        return video.get(np.minimum(inds, len(video) - 1))


def build_dataset(ann_file: str | os.PathLike, data_prefix: str | os.PathLike, *, kind: str = "rawframes",
                  filename_tmpl: str = "img_{:05}.jpg", video_backend: str = "auto", decode_device: str = "cpu",
                  **common: Any) -> ClipDataset:
    """A ``RawframeDataset`` (folders of ``filename_tmpl`` images) or ``VideoDataset`` (read with
    ``video_backend`` on ``decode_device``) for ``kind``, with the train or test pipeline; ``common``
    are the keywords of :class:`ClipDataset`. Items: ``(clip uint8 [V * T, 3, H, W], label int)``."""
    if kind == "rawframes":
        return RawframeDataset(ann_file, data_prefix, filename_tmpl=filename_tmpl, decode_device=decode_device,
                               **common)
    if kind == "videos":
        return VideoDataset(ann_file, data_prefix, video_backend=video_backend, decode_device=decode_device, **common)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
