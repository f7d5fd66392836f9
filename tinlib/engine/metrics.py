"""Classification metrics with MMAction2's definitions (``mmaction.core.evaluation``, 0.x).

``scores``: ``[M, K]`` float array (one row per video, any monotone score: logits or
probabilities), ``labels``: ``[M]`` ints in ``[0, K)``.

- top-k accuracy: the k classes taken are the last k of an ascending **stable** argsort, reversed;
  among exactly equal scores the higher class index therefore comes first (what numpy's default
  sort does in practice for MMAction2). A sample is a hit if its label is among them.
- mean class accuracy: prediction = argmax (ties -> lowest index, so it can disagree with top-1
  on exact ties); per-class recall over the union of classes that occur as a label or as a
  prediction, 0.0 for a class that is predicted but never a label; plain mean over that union.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_arrays(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [M, K], got shape {scores.shape}")
    if scores.shape[0] != labels.shape[0]:
        raise ValueError(f"{scores.shape[0]} score rows but {labels.shape[0]} labels")
    if scores.shape[0] == 0:
        raise ValueError("no samples to score")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f"labels must lie in [0, {scores.shape[1]}), got range [{labels.min()}, {labels.max()}]")
    return scores, labels


def top_k_classes(scores, k: int) -> np.ndarray:
    """``scores [M, K]`` -> ``[M, k]`` class indices, best first, with MMAction2's tie order."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, axis=1, kind="stable")
    return order[:, ::-1][:, :k]


def top_k_accuracy(scores, labels, topk: Sequence[int] | int = (1, 5)) -> list[float]:
    """Fraction of samples whose label is among the top k classes, for each k in ``topk``.

    ``scores [M, K]``, ``labels [M]``; returns one float per k (a list even for a single k)."""
    scores, labels = _as_arrays(scores, labels)
    ks = (topk,) if isinstance(topk, int) else tuple(topk)
    out = []
    for k in ks:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        hits = (top_k_classes(scores, k) == labels[:, None]).any(axis=1)
        out.append(float(hits.mean()))
    return out


def predictions(scores) -> np.ndarray:
    """``scores [M, K]`` -> predicted classes ``[M]`` (argmax; ties go to the lowest class index)."""
    return np.argmax(np.asarray(scores, dtype=np.float64), axis=1)


def confusion_matrix(pred, labels, num_classes: int | None = None) -> np.ndarray:
    """``[K, K]`` counts of ``pred [M]`` against ``labels [M]`` (int class indices), rows = true class,
    columns = predicted class (K = num_classes or 1 + the largest index seen)."""
    pred = np.asarray(pred).astype(np.int64).reshape(-1)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    k = num_classes if num_classes is not None else int(max(pred.max(), labels.max())) + 1
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (labels, pred), 1)
    return matrix


def per_class_accuracy(scores, labels, num_classes: int | None = None) -> np.ndarray:
    """Recall per class ``[K]`` of ``scores [M, K]`` against ``labels [M]``: NaN where a class has no sample.

    K is ``num_classes`` when given, else the score width."""
    scores, labels = _as_arrays(scores, labels)
    k = num_classes or scores.shape[1]
    matrix = confusion_matrix(predictions(scores), labels, k)
    counts = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.diag(matrix) / np.maximum(counts, 1), np.nan)


def mean_class_accuracy(scores, labels) -> float:
    """MMAction2's mean class accuracy of ``scores [M, K]`` against ``labels [M]`` (see module docstring)."""
    scores, labels = _as_arrays(scores, labels)
    pred = predictions(scores)
    classes = np.union1d(labels, pred)  # classes absent from both are ignored
    matrix = confusion_matrix(pred, labels, scores.shape[1])[np.ix_(classes, classes)]
    counts = matrix.sum(axis=1)
    hits = np.diag(matrix)
    recalls = np.where(counts > 0, hits / np.maximum(counts, 1), 0.0)
    return float(recalls.mean())


def evaluate_scores(scores, labels, topk: Sequence[int] = (1, 5)) -> dict[str, float]:
    """``{"top<k>_acc" for k in topk, "mean_class_accuracy"}`` of ``scores [M, K]`` against ``labels [M]``,
    as fractions (MMAction2 log keys)."""
    scores, labels = _as_arrays(scores, labels)
    # k larger than the class count takes every class (accuracy 1.0), as upstream slicing does.
    out = {f"top{k}_acc": acc for k, acc in zip(topk, top_k_accuracy(scores, labels, topk))}
    out["mean_class_accuracy"] = mean_class_accuracy(scores, labels)
    return out


__all__ = ["top_k_accuracy", "top_k_classes", "mean_class_accuracy", "predictions", "confusion_matrix",
           "per_class_accuracy", "evaluate_scores"]
