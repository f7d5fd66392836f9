"""Inference on single videos (:mod:`tinlib.data.sources`): the config's test pipeline and the
recognizer's ``predict``, so a video gets the scores ``tinlib test`` writes to ``scores.npz`` for
it, without an annotation list. The result types are :mod:`tinlib.prediction`."""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tinlib.config import Config
from tinlib.data.decoding import DecodeError
from tinlib.data.normalization import normalize
from tinlib.data.sampling import sample_views
from tinlib.data.sources import VideoSource, open_source
from tinlib.data.transforms import CROPS_PER_MODE, chw_tensor, test_transform
from tinlib.errors import UserError, one_line
from tinlib.labels import class_names_for
from tinlib.models.recognizer import Recognizer
from tinlib.prediction import VideoPrediction, WindowTimeline, probabilities

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferencePipeline:
    """The config's test-time sampling and transforms (what ``build_split_dataset(cfg, "test")`` uses)."""

    num_segments: int
    num_clips: int = 1
    twice_sample: bool = False
    crop: str = "center"
    scale_size: int = 256
    input_size: int = 224
    average_clips: str | None = None

    @classmethod
    def from_config(cls, cfg: Config) -> InferencePipeline:
        t, d = cfg.test, cfg.data
        return cls(cfg.model.num_segments, t.num_clips, t.twice_sample, t.crop, d.scale_size, d.input_size,
                   t.average_clips)

    @property
    def views(self) -> int:
        """Views per video: clips x (2 with twice sampling) x crops, as the test datasets count them."""
        return self.num_clips * (2 if self.twice_sample else 1) * CROPS_PER_MODE[self.crop]

    def frame_indices(self, num_frames: int) -> np.ndarray:
        """0-based frame indices ``[clips * (2 if twice), num_segments]`` of a ``num_frames`` video (test mode)."""
        return sample_views(num_frames, self.num_segments, num_clips=self.num_clips, test_mode=True,
                            twice_sample=self.twice_sample)

    def transform(self, frames: np.ndarray) -> torch.Tensor:
        """``frames`` uint8 ``[M, H, W, 3]`` (temporal views after each other) -> uint8 ``[crops * M, 3, S, S]``
        (normalised on the device, by the model's caller)."""
        return chw_tensor(test_transform(frames, scale_size=self.scale_size, input_size=self.input_size,
                                         test_crop=self.crop))


class SingleVideoDataset(torch.utils.data.Dataset):
    """One video as a one-item dataset: ``(clip uint8 [V * T, 3, H, W], -1)``, the item the
    config's test dataset yields for this video (views crop-major, then clip)."""

    def __init__(self, source: VideoSource, pipeline: InferencePipeline):
        self.source, self.pipeline = source, pipeline
        self.labels = [-1]

    def __len__(self) -> int:
        return 1

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int]:
        if idx != 0:
            raise IndexError(idx)
        return model_input(self.source, self.pipeline), -1


def model_input(source: VideoSource, pipeline: InferencePipeline) -> torch.Tensor:
    """The clip of the whole video ``source`` through ``pipeline``: uint8 ``[V * T, 3, H, W]``."""
    inds = pipeline.frame_indices(source.num_frames)
    return pipeline.transform(source.get(inds.reshape(-1)))


def window_starts(num_frames: int, window: int, stride: int) -> list[int]:
    """First frame of each window: ``0, stride, 2 * stride, ...`` while the window fits in
    ``num_frames`` (one window at 0 when the video is shorter than ``window``)."""
    if window < 1 or stride < 1:
        raise UserError(f"--window and --stride must be positive, got {window} and {stride}")
    if num_frames <= window:
        return [0]
    return list(range(0, num_frames - window + 1, stride))


def load_model(cfg: Config, checkpoint: str | os.PathLike, *, trusted: bool = False) -> Recognizer:
    """The config's recognizer with ``checkpoint`` (a local file) loaded strictly, in eval mode.
    A missing, unreadable or non-fitting checkpoint raises :class:`UserError` naming the file."""
    from tinlib.engine.build import build_model, check_checkpoint_fits
    from tinlib.engine.errors import RunError

    path = Path(checkpoint)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}; give an existing file, a URL or published:<config>")
    if path.stat().st_size == 0:
        raise UserError(f"checkpoint {path} is empty (0 bytes); download or save it again")
    model = build_model(cfg, pretrained=False, load_from=False, verbose=False)
    try:
        _, report = check_checkpoint_fits(model, path, cfg, trusted=trusted)
    except RunError as err:
        raise UserError(one_line(str(err))) from None
    except Exception as err:  # noqa: BLE001 - torch.load on a non-checkpoint: pickle, zip or EOF errors
        raise UserError(f"cannot read checkpoint {path} ({type(err).__name__}: {one_line(str(err))[:160]}); it is "
                        "not a PyTorch checkpoint or it is truncated: download or save it again") from None
    log.info("loaded %s (%s layout, %d tensors)", path, report.layout, len(report.loaded))
    return model.eval()


class Predictor:
    """A config's model and test pipeline, ready to score videos: ``Predictor.from_checkpoint(cfg,
    "model.pth")``, then ``p.predict(path)`` or ``p.windows(path, window, stride)``."""

    def __init__(self, cfg: Config, model: Recognizer, device: str | torch.device = "cpu",
                 class_names: Sequence[str] | None = None, *, class_names_source: str = "none",
                 checkpoint: str | None = None):
        self.cfg = cfg
        self.pipeline = InferencePipeline.from_config(cfg)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.class_names = list(class_names) if class_names is not None else None
        self.class_names_source = class_names_source
        self.checkpoint = checkpoint

    @classmethod
    def from_checkpoint(cls, cfg: Config, checkpoint: str | os.PathLike, *, device: str = "auto",
                        labels: str | os.PathLike | None = None, trusted: bool = False) -> Predictor:
        """Resolve ``checkpoint`` (local path, http(s) URL or ``published:<config>``), load it into
        ``cfg``'s model on ``device`` (auto: CUDA when available) and find the class names."""
        from tinlib.engine.dist import resolve_device
        from tinlib.hub import resolve_checkpoint

        try:
            dev = resolve_device(device)
        except (RuntimeError, ValueError) as err:
            raise UserError(str(err)) from None
        names, source = class_names_for(cfg, labels)
        path = resolve_checkpoint(checkpoint)
        model = load_model(cfg, path, trusted=trusted)
        return cls(cfg, model, dev, names, class_names_source=source, checkpoint=str(path))

    def open(self, path: str | os.PathLike) -> VideoSource:
        """Open a video file or frame folder for this predictor's config (UserError when unreadable)."""
        return open_source(path, self.cfg)

    def _source(self, video: VideoSource | str | os.PathLike) -> VideoSource:
        return video if isinstance(video, VideoSource) else self.open(video)

    def clip(self, video: VideoSource | str | os.PathLike) -> torch.Tensor:
        """The whole video's clip, uint8 ``[V * T, 3, H, W]`` (views crop-major, then clip): the model
        takes ``normalize(clip[None].to(device))``."""
        return model_input(self._source(video), self.pipeline)

    def predict(self, video: VideoSource | str | os.PathLike) -> VideoPrediction:
        """Scores of the whole video through the test pipeline (``tinlib test``'s inference code)."""
        from tinlib.engine.evaluate import score_dataset

        source = self._source(video)
        if source.num_frames < self.pipeline.num_segments:
            log.warning("%s has %d frames, fewer than num_segments=%d: frames are repeated (MMAction2 sampling)",
                        source.path, source.num_frames, self.pipeline.num_segments)
        t0 = time.perf_counter()
        try:
            scores = score_dataset(self.model, SingleVideoDataset(source, self.pipeline), batch_size=1,
                                   num_workers=0, device=self.device, average_clips=self.pipeline.average_clips).scores
        except DecodeError as err:
            raise UserError(str(err)) from None
        seconds = time.perf_counter() - t0
        return VideoPrediction(source.path, source.kind, source.num_frames, source.fps,
                               self.pipeline.frame_indices(source.num_frames), self.pipeline.views,
                               self.pipeline.average_clips, scores[0],
                               probabilities(scores[0], self.pipeline.average_clips), seconds, str(self.device))

    def window_clip(self, source: VideoSource, start: int, length: int) -> tuple[np.ndarray, torch.Tensor]:
        """Frames ``[start, start + length)`` sampled as one test-mode clip: ``(indices [T], clip
        uint8 [crops * T, 3, H, W])``."""
        inds = start + sample_views(length, self.pipeline.num_segments, num_clips=1, test_mode=True)[0]
        return inds, self.pipeline.transform(source.get(inds))

    @torch.no_grad()
    def windows(self, video: VideoSource | str | os.PathLike, window: int, stride: int | None = None) -> WindowTimeline:
        """Score the video as a stream of windows (:func:`window_starts`; ``stride`` defaults to
        ``window``), each one test-mode clip of ``model.num_segments`` frames with the config's crops,
        timed: decoding plus transforms, and the model call with the copy to the device and the
        normalisation there (synchronized on CUDA, after one warm-up call that is not counted)."""
        from tinlib.engine.latency import synchronize

        source = self._source(video)
        stride = window if stride is None else stride
        starts = window_starts(source.num_frames, window, stride)
        length = min(window, source.num_frames)
        if length < self.pipeline.num_segments:
            log.warning("windows of %d frames are shorter than num_segments=%d: frames are repeated", length,
                        self.pipeline.num_segments)
        average = self.pipeline.average_clips
        inds_all, scores, decode_ms, model_ms = [], [], [], []
        try:
            for w, start in enumerate(starts):
                t0 = time.perf_counter()
                inds, clip = self.window_clip(source, start, length)
                t1 = time.perf_counter()
                x = clip[None]
                if w == 0:  # warm-up (lazy initialisation, kernel selection), not timed
                    self.model.predict(normalize(x.to(self.device, non_blocking=True)), average_clips=average)
                synchronize(self.device)
                t2 = time.perf_counter()
                out = self.model.predict(normalize(x.to(self.device, non_blocking=True)), average_clips=average)
                synchronize(self.device)
                t3 = time.perf_counter()
                scores.append(out.float().cpu().numpy()[0])
                inds_all.append(inds)
                decode_ms.append(1000 * (t1 - t0))
                model_ms.append(1000 * (t3 - t2))
        except DecodeError as err:
            raise UserError(str(err)) from None
        scores_arr = np.stack(scores)
        starts_arr = np.asarray(starts, np.int64)
        # a video shorter than the window gives one window of the whole video: report its real length
        return WindowTimeline(length, stride, starts_arr, starts_arr + length, np.stack(inds_all), scores_arr,
                              probabilities(scores_arr, average), np.asarray(decode_ms), np.asarray(model_ms),
                              source.fps, str(self.device))
