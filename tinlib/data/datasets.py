"""Clip datasets over MMAction2 lists: ``RawframeDataset`` (JPEG folders) and ``VideoDataset``.

An item is ``(clip, label)``: ``clip`` float32 ``[V * T, 3, H, W]`` normalized, frames of one view
consecutive and in temporal order (what TIN/TSM's ``view(N, T, ...)`` relies on), views ordered
crop-major then clip; ``label`` an int. ``V = 1`` in training and
``num_clips * (2 if twice_sample) * crops`` in testing (crops: center 1, three 3, ten 10).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .annotations import KINDS, DataError, Record, load_annotations
from .decoding import VIDEO_BACKENDS, decode_rawframes, open_video
from .sampling import sample_views
from .transforms import TEST_CROPS, normalize, test_transform, train_transform

__all__ = ["ClipDataset", "RawframeDataset", "VideoDataset", "build_dataset"]

log = logging.getLogger(__name__)
MAX_SKIP_TRIES = 20


class ClipDataset(Dataset):
    """Common part: list parsing, sampling, transforms, bad-sample handling.

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
        self.epoch = 0
        # shared with DataLoader workers (they inherit it), so the parent sees every worker's skips
        self._skipped = multiprocessing.Value("l", 0)
        self._local_rng: np.random.Generator | None = None
        self._warned_short: set[int] = set()

    # ------------------------------------------------------------------ info
    @property
    def skipped(self) -> int:
        """Number of bad samples skipped so far (all workers together)."""
        return int(self._skipped.value)

    @property
    def views(self) -> int:
        if not self.test_mode:
            return 1
        crops = {"center": 1, "three": 3, "ten": 10}[self.test_crop]
        return self.num_clips * (2 if self.twice_sample else 1) * crops

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        mode = "test" if self.test_mode else "train"
        return (f"{type(self).__name__}({self.ann_file!r}, {len(self)} samples, {mode}, T={self.num_segments}, "
                f"views={self.views}, {self.scale_size}->{self.input_size})")

    # ------------------------------------------------------------------ sampling
    def _rng(self, idx: int) -> np.random.Generator:
        if self.seed is not None:
            return np.random.default_rng([int(self.seed) % 2**63, int(self.epoch) % 2**63, int(idx)])
        if self._local_rng is None:
            self._local_rng = np.random.default_rng()
        return self._local_rng

    def _decode(self, record: Record, rng: np.random.Generator) -> np.ndarray:
        """``[views_t * T, H, W, 3]`` uint8 frames of the temporal views; implemented per kind."""
        raise NotImplementedError

    def load(self, idx: int) -> tuple[torch.Tensor, int]:
        """Item ``idx`` without bad-sample skipping; raises ``DataError`` naming the sample."""
        record = self.records[idx]
        rng = self._rng(idx)
        try:
            frames = self._decode(record, rng)
        except DataError as err:
            raise type(err)(f"sample {idx} ({record.where()}): {err}") from None
        if self.test_mode:
            frames = test_transform(frames, scale_size=self.scale_size, input_size=self.input_size,
                                    test_crop=self.test_crop)
        else:
            frames = train_transform(frames, rng, scale_size=self.scale_size, input_size=self.input_size,
                                     flip=self.flip, multi_scale_crop=self.multi_scale_crop)
        return normalize(frames), record.label

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int]:
        if not self.skip_bad_samples:
            return self.load(idx)
        for attempt in range(MAX_SKIP_TRIES):
            cur = (idx + attempt) % len(self)
            try:
                return self.load(cur)
            except DataError as err:
                with self._skipped.get_lock():
                    self._skipped.value += 1
                    total = self._skipped.value
                log.warning("skipping bad sample (skip #%d of this run): %s", total, err)
        raise DataError(f"{MAX_SKIP_TRIES} consecutive bad samples from index {idx} in {self.ann_file}; "
                        "the data is broken beyond skipping: check data_prefix and rebuild the list")

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
        if not _spawning():
            state["_skipped"] = int(self._skipped.value)  # a plain copy (pickle, deepcopy): own counter
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state.get("_skipped"), int):
            state["_skipped"] = multiprocessing.Value("l", state["_skipped"])
        self.__dict__.update(state)


def _spawning() -> bool:
    """True while multiprocessing pickles arguments for a new process (spawn/forkserver workers)."""
    from multiprocessing import context

    return context.get_spawning_popen() is not None


class RawframeDataset(ClipDataset):
    """Frame folders ``data_prefix/frame_dir/filename_tmpl.format(k)``, ``k`` from ``start_index``
    (default 1); the list gives each folder's frame count."""

    kind = "rawframes"

    def __init__(self, ann_file, data_prefix, *, filename_tmpl: str = "img_{:05}.jpg", **kwargs):
        super().__init__(ann_file, data_prefix, **kwargs)
        self.filename_tmpl = filename_tmpl

    def _decode(self, record: Record, rng: np.random.Generator) -> np.ndarray:
        inds = self._indices(record.total_frames, rng, record)
        return decode_rawframes(os.path.join(self.data_prefix, record.path), inds, self.filename_tmpl,
                                self.start_index)


class VideoDataset(ClipDataset):
    """Video files ``data_prefix/path``; decoded with decord (PyAV fallback) opened per item, so
    each DataLoader worker opens its own readers."""

    kind = "videos"

    def __init__(self, ann_file, data_prefix, *, video_backend: str = "decord", **kwargs):
        if video_backend not in VIDEO_BACKENDS:
            raise ValueError(f"video_backend must be one of {VIDEO_BACKENDS}, got {video_backend!r}")
        super().__init__(ann_file, data_prefix, **kwargs)
        self.video_backend = video_backend

    def _decode(self, record: Record, rng: np.random.Generator) -> np.ndarray:
        video = open_video(os.path.join(self.data_prefix, record.path), self.video_backend)
        # Video frames are 0-based; a non-zero start_index shifts them like MMAction2 does.
        inds = self._indices(len(video), rng, record) + self.start_index
        return video.get(np.minimum(inds, len(video) - 1))


def build_dataset(ann_file: str | os.PathLike, data_prefix: str | os.PathLike, *, kind: str = "rawframes",
                  num_segments: int = 8, test_mode: bool = False, filename_tmpl: str = "img_{:05}.jpg",
                  start_index: int | None = None, num_clips: int = 1, twice_sample: bool = False,
                  test_crop: str = "center", scale_size: int = 256, input_size: int = 224, flip: bool = False,
                  num_classes: int | None = None, skip_bad_samples: bool = False, video_backend: str = "decord",
                  multi_scale_crop: bool = True) -> ClipDataset:
    """A ``RawframeDataset`` or ``VideoDataset`` with the train or test pipeline (see module doc).

    Items: ``(clip float32 [V * T, 3, H, W], label int)``. ``start_index`` None means 1 for
    rawframes, 0 for videos. In train mode ``num_clips``, ``twice_sample`` and ``test_crop`` are
    not used (one view). ``skip_bad_samples`` replaces an unreadable sample by the next readable
    one, counting (``dataset.skipped``) and logging each skip; otherwise the error is raised.
    """
    common = dict(num_segments=num_segments, test_mode=test_mode, start_index=start_index, num_clips=num_clips,
                  twice_sample=twice_sample, test_crop=test_crop, scale_size=scale_size, input_size=input_size,
                  flip=flip, num_classes=num_classes, skip_bad_samples=skip_bad_samples,
                  multi_scale_crop=multi_scale_crop)
    if kind == "rawframes":
        return RawframeDataset(ann_file, data_prefix, filename_tmpl=filename_tmpl, **common)
    if kind == "videos":
        return VideoDataset(ann_file, data_prefix, video_backend=video_backend, **common)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
