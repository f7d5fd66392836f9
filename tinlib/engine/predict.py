"""Inference on single videos: what ``tinlib test`` does for one sample, without an annotation list.

A video is a file (mp4/webm/avi/... decoded with decord, PyAV as the fallback) or a folder of
frames (``img_00001.jpg``, ``00001.jpg``, ... the config's ``data.filename_tmpl`` first). It goes
through the config's test pipeline: ``test.num_clips`` x (twice) views of ``model.num_segments``
frames (MMAction2's test-mode sampling), ``Resize(-1, data.scale_size)``, the ``test.crop`` crops,
normalization, and the recognizer's ``predict`` with ``test.average_clips``. The scores are the
numbers ``tinlib test`` writes to ``scores.npz`` for the same video.

Probabilities: with ``average_clips="prob"`` the scores already are the views' mean softmax and are
reported as they are; otherwise (``None``: raw logits of one view, MMAction2 0.x; ``"score"``: the
views' mean logits) the probabilities are the softmax of the scores.

Windows (a stream): a long video is scored window after window. Window ``w`` holds the frames
``[w * stride, w * stride + window)``; windows are taken while they fit in the video (the frames
after the last full window are left out; a video shorter than one window gives one window of
the whole video). Each window is sampled as one test-mode clip of ``model.num_segments`` frames
(no multi-clip or twice sampling) with the config's spatial crops, and timed: decoding plus
transforms, and the model call with the copy to the device (synchronized on CUDA, after one
warm-up call that is not counted).
"""
from __future__ import annotations

import csv
import io
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinlib.config import Config
from tinlib.errors import UserError
from tinlib.models.recognizer import Recognizer

log = logging.getLogger(__name__)

# frame-file templates tried after the config's own, in this order
FRAME_TEMPLATES = ("img_{:05}.jpg", "{:05}.jpg", "image_{:05}.jpg", "img_{:05}.png", "{:05}.png", "frame_{:05}.jpg")
LABELS_HINT = "pass --labels FILE (one class name per line, line i = class i) or sthv1 / sthv2 / k400"


# --------------------------------------------------------------------------------------------
# Video sources
# --------------------------------------------------------------------------------------------
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
        from tinlib.data.decoding import decode_rawframes

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
    count = 0
    for expected, number in enumerate(numbers, start=start):
        if number != expected:
            raise UserError(f"frame folder {folder}: {tmpl.format(expected)} is missing (frames go up to "
                            f"{tmpl.format(numbers[-1])}); re-extract the frames without gaps")
        count += 1
    return count


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
    from tinlib.data.decoding import DecodeError, open_video

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
        clip = open_video(p, d.video_backend)
    except DecodeError as err:
        raise UserError(str(err)) from None
    start = (d.start_index or 0) if d.kind == "videos" else 0
    return VideoSource(str(p), "video", len(clip), start, _video_fps(str(p)), None, clip)


# --------------------------------------------------------------------------------------------
# The test pipeline of a config
# --------------------------------------------------------------------------------------------
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
        """The test pipeline of ``cfg`` (segments, clips, crop, sizes, clip averaging)."""
        t, d = cfg.test, cfg.data
        return cls(cfg.model.num_segments, t.num_clips, t.twice_sample, t.crop, d.scale_size, d.input_size,
                   t.average_clips)

    @property
    def crops(self) -> int:
        """Spatial crops per view: 1 (center), 3 (three) or 10 (ten)."""
        return {"center": 1, "three": 3, "ten": 10}[self.crop]

    @property
    def views(self) -> int:
        """Views per video: clips x (2 with twice sampling) x crops, as the test datasets count them."""
        return self.num_clips * (2 if self.twice_sample else 1) * self.crops

    def frame_indices(self, num_frames: int) -> np.ndarray:
        """0-based frame indices ``[clips * (2 if twice), num_segments]`` of a ``num_frames`` video (test mode)."""
        from tinlib.data.sampling import sample_views

        return sample_views(num_frames, self.num_segments, num_clips=self.num_clips, test_mode=True,
                            twice_sample=self.twice_sample)

    def transform(self, frames: np.ndarray) -> torch.Tensor:
        """``frames`` uint8 ``[M, H, W, 3]`` (temporal views after each other) -> float32 ``[crops * M, 3, S, S]``."""
        from tinlib.data.transforms import normalize, test_transform

        return normalize(test_transform(frames, scale_size=self.scale_size, input_size=self.input_size,
                                        test_crop=self.crop))


class SingleVideoDataset(torch.utils.data.Dataset):
    """One video as a one-item dataset: ``(clip float32 [V * T, 3, H, W], -1)``, the item the
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
    """The clip of the whole video ``source`` through ``pipeline``: float32 ``[V * T, 3, H, W]``."""
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


# --------------------------------------------------------------------------------------------
# Scores -> probabilities -> top-k
# --------------------------------------------------------------------------------------------
def probabilities(scores: np.ndarray, average_clips: str | None) -> np.ndarray:
    """Class probabilities ``[..., K]`` from test scores ``[..., K]``: the scores themselves for
    ``average_clips="prob"`` (already the views' mean softmax), else their softmax."""
    scores = np.asarray(scores, dtype=np.float64)
    if average_clips == "prob":
        return scores
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def class_name(index: int, names: Sequence[str] | None) -> str:
    """``names[index]``, or ``"class <index>"`` when the names are unknown (None)."""
    return names[index] if names is not None else f"class {index}"


def top_k(probs: np.ndarray, k: int, names: Sequence[str] | None = None,
          scores: np.ndarray | None = None) -> list[dict[str, Any]]:
    """The ``k`` most probable classes of ``probs [K]``, most probable first (ties: lower index first):
    ``[{"rank", "index", "name", "prob"(, "score")}]``; ``names`` as in :func:`class_name`, ``score``
    taken from ``scores [K]`` when given."""
    probs = np.asarray(probs)
    order = np.argsort(-probs, kind="stable")[:max(0, k)]
    out = []
    for rank, i in enumerate(order, start=1):
        item: dict[str, Any] = {"rank": rank, "index": int(i), "name": class_name(int(i), names),
                                "prob": float(probs[i])}
        if scores is not None:
            item["score"] = float(scores[i])
        out.append(item)
    return out


# --------------------------------------------------------------------------------------------
# Class names
# --------------------------------------------------------------------------------------------
def class_names_for(cfg: Config, labels: str | os.PathLike | None = None) -> tuple[list[str] | None, str]:
    """``(names or None, where they came from)`` for ``cfg``'s classes.

    ``labels``: a file (one name per line) or a packaged set (``sthv1``, ``sthv2``, ``k400``);
    its length must be ``model.num_classes``. Without it: the packaged set named by
    ``data.dataset`` (the zoo configs), else the ``class_names`` a synthetic dataset stored in
    ``data.root/synthetic_meta.json`` (the demo configs), else None. A damaged
    ``synthetic_meta.json`` raises :class:`~tinlib.records.RecordError` naming it.
    """
    from tinlib.labels import LABEL_SETS, load_labels
    from tinlib.records import SyntheticMeta

    k = cfg.model.num_classes
    if labels is not None:
        names = load_labels(labels)
        if len(names) != k:
            raise UserError(f"{labels}: {len(names)} class names but config {cfg.name} has model.num_classes={k}; "
                            "give one name per class")
        return names, str(labels)
    dataset = cfg.data.dataset.lower()
    if dataset in LABEL_SETS:
        names = load_labels(dataset)
        if len(names) == k:
            return names, f"tinlib/labels ({dataset})"
        log.warning("config %s: data.dataset=%s has %d class names but model.num_classes=%d; showing class "
                    "indices (%s)", cfg.name, dataset, len(names), k, LABELS_HINT)
        return None, "none"
    meta_path = Path(cfg.data.root) / SyntheticMeta.FILENAME
    meta = SyntheticMeta.read_optional(meta_path)
    if meta is not None and len(meta.class_names) == k:
        return list(meta.class_names), str(meta_path)
    return None, "none"


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass
class WindowTimeline:
    """Per-window predictions of one video. ``starts``/``ends`` ``[W]`` (frame ``end`` excluded),
    ``frame_indices [W, T]`` (0-based, in the video), ``scores``/``probs [W, K]``, ``decode_ms``
    and ``model_ms [W]``."""

    window: int
    stride: int
    starts: np.ndarray
    ends: np.ndarray
    frame_indices: np.ndarray
    scores: np.ndarray
    probs: np.ndarray
    decode_ms: np.ndarray
    model_ms: np.ndarray
    fps: float | None = None
    device: str = "cpu"

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def centers(self) -> np.ndarray:
        """Middle of each window in frames (seconds when ``fps`` is known: ``centers / fps``)."""
        return (self.starts + self.ends - 1) / 2.0

    def rows(self, k: int, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One flat dict per window (the CSV rows): position, top-k classes and probabilities, times."""
        rows = []
        for w in range(len(self)):
            row: dict[str, Any] = {"window": w, "start": int(self.starts[w]), "end": int(self.ends[w])}
            if self.fps:
                row["start_s"] = round(self.starts[w] / self.fps, 3)
                row["end_s"] = round(self.ends[w] / self.fps, 3)
            for item in top_k(self.probs[w], k, names):
                r = item["rank"]
                row.update({f"top{r}_index": item["index"], f"top{r}_name": item["name"],
                            f"top{r}_prob": round(item["prob"], 6)})
            row["decode_ms"] = round(float(self.decode_ms[w]), 3)
            row["model_ms"] = round(float(self.model_ms[w]), 3)
            rows.append(row)
        return rows

    def to_dict(self, k: int, names: Sequence[str] | None = None) -> dict[str, Any]:
        """A JSON-ready summary: window settings, mean/median times and each window's top-``k`` classes."""
        return {
            "window": self.window, "stride": self.stride, "count": len(self), "fps": self.fps, "device": self.device,
            "model_ms_mean": float(np.mean(self.model_ms)) if len(self) else None,
            "model_ms_median": float(np.median(self.model_ms)) if len(self) else None,
            "decode_ms_mean": float(np.mean(self.decode_ms)) if len(self) else None,
            "items": [{"window": w, "start": int(self.starts[w]), "end": int(self.ends[w]),
                       "frame_indices": self.frame_indices[w].tolist(),
                       "topk": top_k(self.probs[w], k, names, self.scores[w]),
                       "decode_ms": float(self.decode_ms[w]), "model_ms": float(self.model_ms[w])}
                      for w in range(len(self))],
        }


@dataclass
class VideoPrediction:
    """The prediction for one whole video: ``scores [K]`` exactly as ``tinlib test`` computes them,
    ``probs [K]`` (see :func:`probabilities`), the sampled ``frame_indices [clips, T]``."""

    video: str
    kind: str
    num_frames: int
    fps: float | None
    frame_indices: np.ndarray
    views: int
    average_clips: str | None
    scores: np.ndarray
    probs: np.ndarray
    seconds: float
    device: str = "cpu"
    windows: WindowTimeline | None = None

    def top(self, k: int, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The ``k`` most probable classes of this video (see :func:`top_k`)."""
        return top_k(self.probs, k, names, self.scores)

    def to_dict(self, k: int, names: Sequence[str] | None = None) -> dict[str, Any]:
        """A JSON-ready summary of the prediction with its top-``k`` classes (and windows, when scored)."""
        out: dict[str, Any] = {
            "video": self.video, "kind": self.kind, "num_frames": self.num_frames, "fps": self.fps,
            "views": self.views, "frame_indices": self.frame_indices.tolist(), "average_clips": self.average_clips,
            "probabilities": "mean of the views' softmax" if self.average_clips == "prob"
            else "softmax of the test scores",
            "topk": self.top(k, names), "scores": [float(s) for s in self.scores],
            "seconds": round(self.seconds, 4), "device": self.device,
        }
        if self.windows is not None:
            out["windows"] = self.windows.to_dict(k, names)
        return out


# --------------------------------------------------------------------------------------------
# The predictor
# --------------------------------------------------------------------------------------------
def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


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
        raise UserError(_one_line(str(err))) from None
    except Exception as err:  # noqa: BLE001 - torch.load on a non-checkpoint: pickle, zip or EOF errors
        raise UserError(f"cannot read checkpoint {path} ({type(err).__name__}: {_one_line(str(err))[:160]}); it is "
                        "not a PyTorch checkpoint or it is truncated: download or save it again") from None
    log.info("loaded %s (%s layout, %d tensors)", path, report.layout, len(report.loaded))
    return model.eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Predictor:
    """A config's model and test pipeline, ready to score videos.

    ``Predictor.from_checkpoint(cfg, "model.pth")``; ``p.open(path)`` -> :class:`VideoSource`;
    ``p.predict(source)`` -> :class:`VideoPrediction`; ``p.windows(source, window, stride)`` ->
    :class:`WindowTimeline`.
    """

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

    # ------------------------------------------------------------------ inputs
    def open(self, path: str | os.PathLike) -> VideoSource:
        """Open a video file or frame folder for this predictor's config (UserError when unreadable)."""
        return open_source(path, self.cfg)

    def _source(self, video: VideoSource | str | os.PathLike) -> VideoSource:
        return video if isinstance(video, VideoSource) else self.open(video)

    def clip(self, video: VideoSource | str | os.PathLike) -> torch.Tensor:
        """The whole video's model input ``[V * T, 3, H, W]`` (views crop-major, then clip)."""
        return model_input(self._source(video), self.pipeline)

    # ------------------------------------------------------------------ whole video
    def predict(self, video: VideoSource | str | os.PathLike) -> VideoPrediction:
        """Scores of the whole video through the test pipeline (``tinlib test``'s inference code)."""
        from tinlib.data.decoding import DecodeError
        from tinlib.engine.evaluate import run_inference

        source = self._source(video)
        if source.num_frames < self.pipeline.num_segments:
            log.warning("%s has %d frames, fewer than num_segments=%d: frames are repeated (MMAction2 sampling)",
                        source.path, source.num_frames, self.pipeline.num_segments)
        t0 = time.perf_counter()
        try:
            scores, _ = run_inference(self.model, SingleVideoDataset(source, self.pipeline), batch_size=1,
                                      num_workers=0, device=self.device, average_clips=self.pipeline.average_clips)
        except DecodeError as err:
            raise UserError(str(err)) from None
        seconds = time.perf_counter() - t0
        return VideoPrediction(source.path, source.kind, source.num_frames, source.fps,
                               self.pipeline.frame_indices(source.num_frames), self.pipeline.views,
                               self.pipeline.average_clips, scores[0],
                               probabilities(scores[0], self.pipeline.average_clips), seconds, str(self.device))

    # ------------------------------------------------------------------ windows
    def window_clip(self, source: VideoSource, start: int, length: int) -> tuple[np.ndarray, torch.Tensor]:
        """Frames ``[start, start + length)`` sampled as one test-mode clip: ``(indices [T], clip
        [crops * T, 3, H, W])``."""
        from tinlib.data.sampling import sample_views

        inds = start + sample_views(length, self.pipeline.num_segments, num_clips=1, test_mode=True)[0]
        return inds, self.pipeline.transform(source.get(inds))

    @torch.no_grad()
    def windows(self, video: VideoSource | str | os.PathLike, window: int, stride: int | None = None) -> WindowTimeline:
        """Score the video window by window (see the module docstring); ``stride`` defaults to ``window``."""
        from tinlib.data.decoding import DecodeError

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
                    self.model.predict(x.to(self.device), average_clips=average)
                _sync(self.device)
                t2 = time.perf_counter()
                out = self.model.predict(x.to(self.device), average_clips=average)
                _sync(self.device)
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


# --------------------------------------------------------------------------------------------
# Files and figures
# --------------------------------------------------------------------------------------------
def write_outputs(prediction: VideoPrediction, out_dir: str | os.PathLike, stem: str, k: int,
                  names: Sequence[str] | None = None, extra: dict | None = None) -> list[Path]:
    """``<stem>.json`` (the prediction), and with windows ``<stem>_windows.csv`` and
    ``<stem>_windows.png`` (the timeline) in ``out_dir``. Returns the paths written."""
    from tinlib.io import atomic_write_json, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [atomic_write_json(out / f"{stem}.json", {**(extra or {}), **prediction.to_dict(k, names)})]
    timeline = prediction.windows
    if timeline is not None:
        rows = timeline.rows(k, names)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        written.append(atomic_write_text(out / f"{stem}_windows.csv", buf.getvalue()))
        fig = plot_timeline(timeline, names, title=Path(prediction.video).name)
        png = out / f"{stem}_windows.png"
        fig.savefig(png, dpi=90, bbox_inches="tight")
        _pyplot().close(fig)
        written.append(png)
    return [Path(p) for p in written]


def _pyplot():
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # no display needed; notebooks import pyplot (inline backend) first
    import matplotlib.pyplot as plt

    return plt


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def plot_topk(top: Sequence[dict[str, Any]], title: str = ""):
    """Horizontal bars of a top-k list (most probable on top); returns the Figure."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(top) + 1.0))
    y = np.arange(len(top))
    ax.barh(y, [t["prob"] for t in top], color="#d62728")
    ax.set_yticks(y, [_short(t["name"]) for t in top], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    for yi, t in zip(y, top):
        ax.text(min(t["prob"] + 0.01, 0.9), yi, f"{t['prob']:.3f}", va="center", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_timeline(timeline: WindowTimeline, names: Sequence[str] | None = None, *, max_classes: int = 6,
                  segments: Sequence[tuple[int, int, str]] = (), title: str = ""):
    """Per-window probabilities of the classes that lead some window (up to ``max_classes``, most
    often leading first), over the window centres, and the milliseconds per window below.
    ``segments``: ``(start frame, end frame, name)`` spans to shade (e.g. the true classes)."""
    plt = _pyplot()
    fig, (ax, axt) = plt.subplots(2, 1, figsize=(10, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    unit = timeline.fps or 1.0
    x = timeline.centers / unit
    leaders, counts = np.unique(timeline.probs.argmax(axis=1), return_counts=True)
    shown = [int(c) for c in leaders[np.argsort(-counts, kind="stable")][:max_classes]]
    for i, (s, e, label) in enumerate(segments):
        ax.axvspan(s / unit, e / unit, color=f"C{i % 10}", alpha=0.08)
        ax.text((s + e) / 2 / unit, 0.98, _short(label, 22), ha="center", va="top", fontsize=7,
                transform=ax.get_xaxis_transform())
    for c in shown:
        ax.plot(x, timeline.probs[:, c], marker="o", ms=3, label=_short(class_name(c, names)))
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    axt.plot(x, timeline.model_ms, marker=".", label=f"model ({timeline.device})")
    axt.plot(x, timeline.decode_ms, marker=".", label="decode + transform")
    axt.set_ylabel("ms / window")
    axt.set_xlabel("window centre (s)" if timeline.fps else "window centre (frame)")
    axt.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    what = f"{len(timeline)} windows of {timeline.window} frames, stride {timeline.stride}"
    ax.set_title(f"{title}: {what}" if title else what, fontsize=10)
    return fig


def write_demo_video(path: str | os.PathLike, classes: Sequence[int], *, frames_per_class: int = 24,
                     height: int = 40, seed: int = 0) -> list[tuple[int, int, str]]:
    """A video of synthetic-dataset classes played one after the other (for trying ``predict``
    without data): ``classes`` are indices into ``tinlib.data.synthetic.CLASSES``, each rendered
    for ``frames_per_class`` frames of ``height`` (made even) pixels. Writes an .mp4 or .webm (by
    the suffix of ``path``); returns ``(start frame, end frame, class name)`` spans."""
    from tinlib.data.synthetic import CLASSES, render_video, video_codec, write_video

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


__all__ = ["LABELS_HINT", "InferencePipeline", "Predictor", "SingleVideoDataset", "VideoPrediction", "VideoSource",
           "WindowTimeline", "class_names_for", "find_frame_template", "load_model", "model_input", "open_source",
           "plot_timeline", "plot_topk", "probabilities", "top_k", "window_starts", "write_demo_video",
           "write_outputs"]
