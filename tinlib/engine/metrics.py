"""Classification metrics with MMAction2's definitions (``mmaction.core.evaluation``, 0.x), and the
running tally of the training statistics between two log lines.

``scores``: ``[M, K]`` (one row per video, any monotone score: logits or probabilities),
``labels``: ``[M]`` ints in ``[0, K)``.

- top-k accuracy: the k classes taken are the last k of an ascending **stable** argsort, reversed;
  among exactly equal scores the higher class index therefore comes first (what numpy's default
  sort does in practice for MMAction2). A sample is a hit if its label is among them.
- mean class accuracy: prediction = argmax (ties -> lowest index, so it can disagree with top-1
  on exact ties); per-class recall over the union of classes that occur as a label or as a
  prediction, 0.0 for a class that is predicted but never a label; plain mean over that union.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tinlib.engine import dist
from tinlib.engine.errors import NonFiniteLossError


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


def top_k_accuracy(scores, labels, topk: Sequence[int] | int = (1, 5)) -> list[float]:
    """Fraction of samples whose label is among the top k classes, for each k in ``topk``.

    ``scores [M, K]``, ``labels [M]``; returns one float per k (a list even for a single k)."""
    scores, labels = _as_arrays(scores, labels)
    ks = (topk,) if isinstance(topk, int) else tuple(topk)
    best_first = np.argsort(scores, axis=1, kind="stable")[:, ::-1]  # MMAction2's tie order
    out = []
    for k in ks:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        hits = (best_first[:, :k] == labels[:, None]).any(axis=1)
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


@dataclass
class StepResult:
    """What one training step produced, all on the device (nothing is read back to the host):
    the loss (0-d), the scores ``[B, K]`` and labels ``[B]`` (detached), the gradient norm before
    clipping (0-d; None without clipping) and ``finite`` (0-d bool: the loss and, without a grad
    scaler, the gradient norm are finite)."""

    loss: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    grad_norm: torch.Tensor | None
    finite: torch.Tensor


def top_k_correct(scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> torch.Tensor:
    """``[len(ks)]`` counts of the samples of ``scores [B, K]`` whose label (``labels [B]``) is among
    the top k classes, computed where the scores are (no read-back); float64 (float32 where the
    device has none). Ties rank the higher class first, as :func:`top_k_accuracy`."""
    scores = scores.float()
    target = scores.gather(1, labels.view(-1, 1))
    classes = torch.arange(scores.shape[1], device=scores.device)
    ahead = (scores > target) | ((scores == target) & (classes > labels.view(-1, 1)))
    rank = ahead.sum(dim=1)
    return torch.stack([(rank < k).sum() for k in ks]).to(_tally_dtype(scores.device))


def _tally_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def peak_memory_mib(device: torch.device) -> int:
    """Peak CUDA memory in MiB, the max over the processes (0 on the CPU)."""
    if device.type != "cuda":
        return 0
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20
    if dist.is_initialized():
        box = torch.tensor([peak], device=device)
        dist.all_reduce(box, "max")
        peak = box.item()
    return int(peak)


class IntervalTally:
    """The training statistics of one epoch's iterations since the last log line, summed on the
    device (``loss_cls``, ``top1_acc``, ``top5_acc``, ``grad_norm`` and the count of non-finite
    steps, with the first non-finite iteration and its loss / gradient norm), host-side counts and
    data times, and the epoch's totals so far. Each :meth:`check` is one all-reduce and one read-back."""

    KEYS = ("loss_cls", "top1_acc", "top5_acc", "grad_norm", "nonfinite", "data_time")

    def __init__(self, device: torch.device):
        self.device = device
        self.dtype = _tally_dtype(device)
        self.epoch_sums = {"loss_cls": 0.0, "top1_acc": 0.0, "count": 0.0, "iters": 0.0}
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(len(self.KEYS) - 2, dtype=self.dtype, device=self.device)
        self.nonfinite = torch.zeros((), dtype=self.dtype, device=self.device)
        # [iteration, loss, grad norm] of the first non-finite step; filled in place (a tensor built
        # from a list would be copied from the host, which waits for the device)
        self.first_bad = torch.zeros(3, dtype=self.dtype, device=self.device)
        self.first_bad[0] = math.inf
        self.count = 0
        self.data_time = 0.0
        self.first_iter: int | None = None
        self.has_grad_norm = False
        self.t0 = time.perf_counter()

    def add(self, step: StepResult, iteration: int, data_time: float) -> None:
        """Add ``step`` (0-based ``iteration`` of the epoch, whose batch took ``data_time`` seconds to
        come) to the device-side sums; no read-back."""
        hits = top_k_correct(step.scores, step.labels) / step.labels.numel()
        loss = step.loss.to(self.dtype)
        grad = step.grad_norm.to(self.dtype) if step.grad_norm is not None else torch.zeros_like(loss)
        self.sums += torch.cat([loss.view(1), hits, grad.view(1)])
        bad = ~step.finite
        self.nonfinite += bad.to(self.dtype)
        candidate = torch.stack([torch.where(bad, float(iteration), math.inf).to(self.dtype), loss, grad])
        self.first_bad = torch.where(candidate[0] < self.first_bad[0], candidate, self.first_bad)
        self.has_grad_norm |= step.grad_norm is not None
        self.count += 1
        self.data_time += data_time
        if self.first_iter is None:
            self.first_iter = iteration

    def check(self, epoch: int, upto: int) -> dict[str, float]:
        """The sums over this interval (iterations up to ``upto`` of ``epoch``, both 0-based) and over
        the processes: ``{key: sum}`` for :attr:`KEYS` and ``count`` (iterations x processes). One
        all-reduce, one read-back; :class:`NonFiniteLossError` when a step on any process had a
        non-finite loss or gradient norm, naming the first one and the iterations checked."""
        host = torch.tensor([self.data_time, float(self.count)], dtype=self.dtype).to(self.device, non_blocking=True)
        vec = torch.cat([self.sums, self.nonfinite.view(1), host])
        dist.all_reduce(vec, "sum")  # also the finite-loss check of every process, once per read
        values = vec.tolist()
        sums = {**dict(zip(self.KEYS, values[:-1])), "count": values[-1]}
        if sums["nonfinite"] > 0:
            earliest = self.first_bad[:1].clone()
            dist.all_reduce(earliest, "min")
            it, (own_it, loss, grad) = earliest.item(), self.first_bad.tolist()
            first = self.first_iter if self.first_iter is not None else upto
            span = f"iterations {first + 1}-{upto + 1}" if upto > first else f"iteration {upto + 1}"
            what = (f"loss is {loss}" if not math.isfinite(loss) else f"gradient norm is {grad}") if own_it == it \
                else "loss or gradient norm is not finite (on another process)"
            raise NonFiniteLossError(f"{what} at epoch {epoch + 1}, iteration {int(it) + 1} "
                                     f"(checked after {span} of epoch {epoch + 1}); no checkpoint was written "
                                     "after it")
        return sums

    def close_interval(self, epoch: int, upto: int) -> dict[str, float]:
        """:meth:`check` the interval that ends with iteration ``upto``, add it to the epoch's totals and
        start the next one. Returns its ``loss_cls``, ``loss``, ``top1_acc``, ``top5_acc``, ``grad_norm``
        (when gradients are clipped) and ``data_time`` averaged over its iterations and the processes,
        and ``time`` (wall seconds per iteration)."""
        sums = self.check(epoch, upto)
        seconds = time.perf_counter() - self.t0  # after the read-back: the device has finished
        count = max(sums["count"], 1.0)
        values = {k: sums[k] / count for k in ("loss_cls", "top1_acc", "top5_acc", "grad_norm", "data_time")}
        values["time"] = seconds / max(self.count, 1)
        values["loss"] = values["loss_cls"]
        if not self.has_grad_norm:
            del values["grad_norm"]
        for key in ("loss_cls", "top1_acc", "count"):
            self.epoch_sums[key] += sums[key]
        self.epoch_sums["iters"] += self.count
        self.reset()
        return values

    def epoch_means(self) -> dict[str, float]:
        """``{"loss_cls", "top1_acc"}`` means over the epoch's closed intervals (NaN without any) and ``iters``."""
        count = self.epoch_sums["count"]
        return {"loss_cls": self.epoch_sums["loss_cls"] / count if count else math.nan,
                "top1_acc": self.epoch_sums["top1_acc"] / count if count else math.nan,
                "iters": self.epoch_sums["iters"]}
