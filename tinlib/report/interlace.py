"""What TIN's interlace modules learned, per stage, per video and per class: :func:`collect` records
each module's offsets ``[N, 2]`` and per-segment weights ``[N, T, 2]`` in one forward pass.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from tinlib.data.normalization import normalize
from tinlib.models import TemporalInterlace

_NAME_RE = re.compile(r"layer(\d+)\.(\d+)\.")


def interlace_modules(model: nn.Module) -> list[tuple[str, TemporalInterlace]]:
    """``[(name, module)]`` of every TemporalInterlace in forward order (empty for TSM/TSN)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, TemporalInterlace)]


def short_name(name: str) -> str:
    """``backbone.layer2.1.conv1.temporal`` -> ``layer2.1``."""
    match = _NAME_RE.search(name + ".")
    return f"layer{match.group(1)}.{match.group(2)}" if match else name


def stage_of(name: str) -> int:
    """The ResNet stage (1-4) of a module name, 0 when it is in none (``backbone.layer2.1...`` -> 2)."""
    match = _NAME_RE.search(name + ".")
    return int(match.group(1)) if match else 0


@contextmanager
def recording(model: nn.Module) -> Iterator[list[tuple[str, TemporalInterlace]]]:
    """Turn ``record`` on in every interlace module for the duration; restores the old flags."""
    modules = interlace_modules(model)
    old = [m.record for _, m in modules]
    try:
        for _, m in modules:
            m.record = True
        yield modules
    finally:
        for (_, m), flag in zip(modules, old):
            m.record = flag
            m.last_offsets = m.last_weights = None


@dataclass
class InterlaceTrace:
    """Offsets and weights of every interlace module for a set of videos.

    offsets: ``[N, L, 2]`` in (-2, 2) segments (the fold's four channel quarters move by +o0, +o1,
    -o0, -o1); weights: ``[N, L, T, 2]`` in (0, 2); scores: ``[N, K]`` (L modules in forward order,
    named in ``layers``, stage of each in ``stages``); labels ``[N]`` when known.
    """

    layers: list[str]
    stages: list[int]
    offsets: np.ndarray
    weights: np.ndarray
    scores: np.ndarray
    labels: np.ndarray | None = None
    indices: list[int] = field(default_factory=list)

    @property
    def num_segments(self) -> int:
        """T, the segments per video."""
        return int(self.weights.shape[2])

    def to_frame(self, class_names: Sequence[str] | None = None):
        """Long pandas frame: one row per (video, layer, group) with ``offset`` and ``mean_weight``."""
        import pandas as pd

        rows = []
        for v in range(self.offsets.shape[0]):
            label = int(self.labels[v]) if self.labels is not None else -1
            cls = class_names[label] if class_names is not None and label >= 0 else str(label)
            for li, layer in enumerate(self.layers):
                for g in range(self.offsets.shape[2]):
                    rows.append({"video": v, "index": self.indices[v] if self.indices else v, "label": label,
                                 "cls": cls, "layer": layer, "stage": self.stages[li], "group": g,
                                 "offset": float(self.offsets[v, li, g]),
                                 "mean_weight": float(self.weights[v, li, :, g].mean())})
        return pd.DataFrame(rows)


@torch.no_grad()
def collect(model: nn.Module, clips: torch.Tensor, labels: Sequence[int] | None = None,
            indices: Sequence[int] | None = None) -> InterlaceTrace:
    """One eval-mode forward pass of the TIN ``model`` (its training mode restored afterwards) on
    ``clips: [N, T, 3, H, W]`` (uint8 as the datasets yield them, one view per video, on the model's
    device; normalised here) with recording on: offsets
    ``[N, L, 2]``, weights ``[N, L, T, 2]`` and scores ``[N, K]`` of the L interlace modules, with
    the N ``labels`` and dataset ``indices`` when given."""
    modules = interlace_modules(model)
    if not modules:
        raise ValueError(f"{type(model).__name__} has no TemporalInterlace modules (is it a TIN model?)")
    was_training = model.training
    model.eval()
    try:
        with recording(model):
            scores = model(normalize(clips))
            recorded_offsets, recorded_weights = [], []
            for name, m in modules:
                if m.last_offsets is None or m.last_weights is None:
                    raise RuntimeError(f"{name} recorded nothing in the forward pass (the model skipped it)")
                recorded_offsets.append(m.last_offsets)
                recorded_weights.append(m.last_weights)
            offsets = torch.stack(recorded_offsets, dim=1)  # [N, L, 2]
            weights = torch.stack(recorded_weights, dim=1)  # [N, L, T, 2]
    finally:
        model.train(was_training)
    return InterlaceTrace([short_name(n) for n, _ in modules], [stage_of(n) for n, _ in modules],
                          offsets.float().cpu().numpy(), weights.float().cpu().numpy(), scores.float().cpu().numpy(),
                          None if labels is None else np.asarray(labels, dtype=np.int64),
                          list(indices) if indices is not None else [])


def collect_dataset(model: nn.Module, dataset, indices: Sequence[int], batch_size: int = 8,
                    device: str | torch.device = "cpu") -> InterlaceTrace:
    """:func:`collect` over ``dataset[i]`` for ``i`` in ``indices`` (items ``(clip [T, 3, H, W] uint8,
    label)`` with one view), ``batch_size`` clips at a time on ``device`` (the model is moved there)."""
    model.to(device)
    parts = []
    for start in range(0, len(indices), batch_size):
        chunk = list(indices[start:start + batch_size])
        items = [dataset[i] for i in chunk]
        clips = torch.stack([torch.as_tensor(c) for c, _ in items]).to(device, non_blocking=True)
        parts.append(collect(model, clips, [int(lab) for _, lab in items], chunk))
    first = parts[0]
    return InterlaceTrace(first.layers, first.stages, np.concatenate([p.offsets for p in parts]),
                          np.concatenate([p.weights for p in parts]), np.concatenate([p.scores for p in parts]),
                          np.concatenate([p.labels for p in parts]), [i for p in parts for i in p.indices])


def pick_per_class(labels: Sequence[int], per_class: int, seed: int = 0) -> list[int]:
    """Up to ``per_class`` dataset indices of every class (first ones after a seeded shuffle)."""
    label_array = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for c in np.unique(label_array):
        idx = np.where(label_array == c)[0]
        rng.shuffle(idx)
        out += sorted(int(i) for i in idx[:per_class])
    return sorted(out)


def class_summary(trace: InterlaceTrace, class_names: Sequence[str] | None = None):
    """Mean and spread of the offsets per (class, stage, group), as a pandas frame."""
    frame = trace.to_frame(class_names)
    return (frame.groupby(["cls", "label", "stage", "group"], as_index=False)
            .agg(offset_mean=("offset", "mean"), offset_std=("offset", "std"), videos=("video", "nunique"),
                 mean_weight=("mean_weight", "mean"))
            .sort_values(["label", "stage", "group"]).reset_index(drop=True))


def display_frames(clip: torch.Tensor) -> np.ndarray:
    """A dataset's uint8 clip ``[T, 3, H, W]`` as the images ``[T, H, W, 3]`` uint8 for display (a
    view of the CPU tensor's memory); ValueError for another dtype."""
    clip = torch.as_tensor(clip)
    if clip.dtype != torch.uint8 or clip.dim() != 4 or clip.shape[1] != 3:
        raise ValueError(f"display_frames takes a uint8 clip [T, 3, H, W] as the datasets yield it, got "
                         f"{clip.dtype} {tuple(clip.shape)}")
    return clip.cpu().permute(0, 2, 3, 1).numpy()
