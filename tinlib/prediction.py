"""What a prediction returns: probabilities and top-k classes for a whole video (:class:`VideoPrediction`)
and window by window (:class:`WindowTimeline`); plain numpy, so that the engine and the reports both read it."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinlib.labels import class_name


def probabilities(scores: np.ndarray, average_clips: str | None) -> np.ndarray:
    """Class probabilities ``[..., K]`` from test scores ``[..., K]``: the scores themselves for
    ``average_clips="prob"`` (already the views' mean softmax), else their softmax (``None``: raw
    logits of one view, MMAction2 0.x; ``"score"``: the views' mean logits)."""
    scores = np.asarray(scores, dtype=np.float64)
    if average_clips == "prob":
        return scores
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def top_k(probs: np.ndarray, k: int, names: Sequence[str] | None = None,
          scores: np.ndarray | None = None) -> list[dict[str, Any]]:
    """The ``k`` most probable classes of ``probs [K]``, most probable first (ties: lower index first):
    ``[{"rank", "index", "name", "prob"(, "score")}]``; ``names`` as in :func:`tinlib.labels.class_name`,
    ``score`` taken from ``scores [K]`` when given."""
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
