"""DataLoader construction: epoch-seeded shuffling, per-worker seeding, DistributedSampler, pinning.

Reproducibility: given ``seed``, the order of samples in epoch ``e`` and every random draw of the
pipeline (sampling offsets, crops, flips) depend only on ``(seed, e, index)``, not on the number
of workers. ``loader.set_epoch(e)`` selects the epoch explicitly (as with DistributedSampler);
without it, each new pass over the loader moves to the next epoch.
"""
from __future__ import annotations

import functools
import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

__all__ = ["ClipLoader", "EpochShuffleSampler", "build_loader", "seed_worker"]


class EpochShuffleSampler(Sampler[int]):
    """A permutation drawn from ``(seed, epoch)``; same order for a given epoch whatever the workers."""

    def __init__(self, length: int, seed: int = 0):
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(int(self.seed) * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=g).tolist())

    def __len__(self) -> int:
        return self.length


def seed_worker(worker_id: int, seed: int, epoch_holder: list[int]) -> None:
    """Seed python, numpy and torch in a worker from ``(seed, epoch, worker_id)`` (for code that
    uses global RNGs; the datasets themselves draw from per-item generators)."""
    value = (int(seed) * 1_000_003 + epoch_holder[0] * 1_009 + worker_id) % 2**32
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def _base_dataset(dataset: Dataset) -> Dataset:
    while hasattr(dataset, "dataset") and not hasattr(dataset, "epoch"):  # Subset and friends
        dataset = dataset.dataset
    return dataset


class ClipLoader(DataLoader):
    """A DataLoader with ``set_epoch``: forwards the epoch to the sampler and the dataset."""

    def __init__(self, *args, seed: int = 0, **kwargs):
        self._epoch_holder = [0]  # read by seed_worker in the workers (copied at worker start)
        super().__init__(*args, worker_init_fn=functools.partial(seed_worker, seed=seed,
                                                                 epoch_holder=self._epoch_holder), **kwargs)
        self._next_epoch = 0

    @property
    def epoch(self) -> int:
        return self._epoch_holder[0]

    def set_epoch(self, epoch: int) -> None:
        self._next_epoch = int(epoch)

    def __iter__(self):
        epoch = self._next_epoch
        self._epoch_holder[0] = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        base = _base_dataset(self.dataset)
        if hasattr(base, "epoch"):
            base.epoch = epoch
        self._next_epoch = epoch + 1
        return super().__iter__()


def build_loader(dataset: Dataset, batch_size: int, *, num_workers: int = 2, shuffle: bool, seed: int = 0,
                 distributed: bool = False, drop_last: bool = False, pin_memory: bool | None = None) -> ClipLoader:
    """A ``ClipLoader`` over ``dataset``; batches are ``(clips [B, V*T, 3, H, W], labels [B])``.

    ``distributed`` uses ``DistributedSampler`` (needs an initialised process group; each rank
    gets its own shard, shuffled from ``seed`` and the epoch). ``pin_memory`` None pins only when
    CUDA is available. The dataset (if it supports it) gets ``seed`` so augmentations are
    reproducible; call ``loader.set_epoch(epoch)`` at the start of each epoch.
    """
    base = _base_dataset(dataset)
    if hasattr(base, "seed"):
        base.seed = int(seed)
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    elif shuffle:
        sampler = EpochShuffleSampler(len(dataset), seed=seed)
    else:
        sampler = None
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    return ClipLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      pin_memory=pin_memory, drop_last=drop_last, seed=seed,
                      persistent_workers=False, prefetch_factor=2 if num_workers > 0 else None)
