"""The one DataLoader stack of tinlib; batches are ``(clips [B, V*T, 3, H, W] uint8, labels [B])``,
normalised by the consumer on its device (:func:`tinlib.data.normalization.normalize`).

Reproducible given ``seed``: epoch ``e``'s order is ``torch.randperm`` seeded with ``seed + e``
(``DistributedSampler``'s rule), process ``r`` of ``W`` taking positions ``r, r + W, ...`` (padded by
repetition when shuffled); item ``i``'s augmentation draws from ``(seed, e, i)``, whatever the workers
(persistent workers too: the dataset's epoch is in shared memory); the workers' RNGs (torch seeds
``random``, numpy and torch in each) derive from ``derive_seed(seed, e, rank, 2)`` of the pass that
starts them (each pass without persistent workers). ``loader.set_epoch(e)`` selects the epoch, else
each pass moves to the next. A :class:`tinlib.errors.UserError` in a worker comes out as the same
error with its one-line message."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from tinlib.errors import UserError
from tinlib.seeding import derive_seed

# the last key of derive_seed for the loader's generator (the engine uses 1 for the model's
# initialisation and 3 for the per-iteration torch seed)
_WORKER_STREAM = 2


class ShardSampler(Sampler[int]):
    """Process ``rank`` of ``num_replicas`` takes indices ``rank, rank + W, rank + 2W, ...`` of
    ``range(length)``, without padding (every sample is scored exactly once over the processes)."""

    def __init__(self, length: int, num_replicas: int = 1, rank: int = 0):
        self.length, self.num_replicas, self.rank = length, num_replicas, rank

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.num_replicas))


class SkipSampler(Sampler[int]):
    """``base`` without its first ``skip`` indices (the part of an epoch a resumed run has done);
    ``set_epoch`` is passed on to ``base``."""

    def __init__(self, base: Sampler, skip: int):
        self.base, self.skip = base, skip

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch of ``base``."""
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.base), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.base) - self.skip, 0)  # type: ignore[arg-type]


def _base_dataset(dataset: Dataset) -> Dataset:
    while hasattr(dataset, "dataset") and not hasattr(dataset, "epoch"):  # Subset and friends
        dataset = dataset.dataset
    return dataset


class ClipLoader(DataLoader):
    """A DataLoader with ``set_epoch``: at each pass it forwards the epoch to the sampler and the
    dataset and seeds the workers' generator from ``(seed, epoch, rank)``."""

    def __init__(self, dataset: Dataset, *, seed: int = 0, rank: int = 0, **kwargs):
        self.seed, self.rank = int(seed), int(rank)
        self._epoch = 0
        self._next_epoch = 0
        super().__init__(dataset, generator=torch.Generator(), **kwargs)

    @property
    def epoch(self) -> int:
        """The epoch of the latest pass (0 before the first)."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch``."""
        self._next_epoch = int(epoch)

    def __iter__(self):
        epoch = self._epoch = self._next_epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        base = _base_dataset(self.dataset)
        if hasattr(base, "epoch"):
            base.epoch = epoch
        assert self.generator is not None
        self.generator.manual_seed(derive_seed(self.seed, epoch, self.rank, _WORKER_STREAM))
        self._next_epoch = epoch + 1
        return _worker_errors(super().__iter__())


def _worker_errors(batches: Iterator) -> Iterator:
    """``batches`` (a DataLoader iterator), turning a UserError that torch re-raised from a worker
    (its message: "Caught X in DataLoader worker process N. Original Traceback ...") back into the
    worker's error with the worker's message."""
    try:
        yield from batches
    except UserError as err:
        original = worker_message(err)
        if original is None:
            raise
        raise type(err)(original) from err


def worker_message(err: BaseException) -> str | None:
    """The message ``err`` had in the DataLoader worker that raised it, when torch re-raised it in
    this process with the worker's traceback as its message; None for any other error."""
    text = str(err)
    if not (text.startswith("Caught ") and " in DataLoader worker process " in text.split("\n", 1)[0]):
        return None
    cls = type(err)
    marker = f"\n{cls.__module__}.{cls.__qualname__}: "
    pos = text.rfind(marker)
    if pos < 0:
        return None
    return text[pos + len(marker):].rstrip("\n")


def build_loader(dataset: Dataset, batch_size: int, *, num_workers: int = 2, shuffle: bool, seed: int = 0,
                 distributed: bool = False, num_replicas: int | None = None, rank: int | None = None,
                 drop_last: bool = False, pin_memory: bool | None = None, skip: int = 0,
                 persistent_workers: bool = False, prefetch_factor: int = 2,
                 collate_fn: Callable[[list], Any] | None = None) -> ClipLoader:
    """A :class:`ClipLoader` over ``dataset`` (items ``(clip [V*T, 3, H, W] uint8, label)``; a
    dataset with ``seed``/``epoch`` attributes, tinlib's, gets ``seed`` and the epoch of each pass).

    ``shuffle``: a new permutation every epoch (training), else dataset order (evaluation).
    ``distributed``: shard over the initialised process group (``num_replicas`` and ``rank``
    default to its world size and rank); also sharded whenever ``num_replicas`` > 1 is given.
    ``batch_size`` and ``drop_last`` are per process; ``pin_memory`` None pins when CUDA is
    available; ``skip`` leaves out the first ``skip`` samples of this process's order in every
    epoch (the rest of an epoch after a resume). ``persistent_workers`` keeps the workers between
    passes and ``prefetch_factor`` is the batches each worker loads ahead; both apply only with
    ``num_workers`` > 0.
    """
    if num_replicas is None or rank is None:
        if distributed:
            import torch.distributed as dist

            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        else:
            num_replicas, rank = num_replicas or 1, rank or 0
    base = _base_dataset(dataset)
    if hasattr(base, "seed"):
        base.seed = int(seed)
    sampler: Sampler[int]
    if shuffle:
        sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                                     drop_last=False)
    else:
        sampler = ShardSampler(len(dataset), num_replicas, rank)  # type: ignore[arg-type]
    if skip:
        sampler = SkipSampler(sampler, skip)
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    workers = dict(persistent_workers=persistent_workers, prefetch_factor=prefetch_factor) if num_workers > 0 else {}
    # CUDA cannot be initialised in a forked worker: GPU video decoding (decode_device "cuda") spawns them
    context = "spawn" if num_workers > 0 and getattr(base, "decode_device", "cpu") == "cuda" else None
    return ClipLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      pin_memory=pin_memory, drop_last=drop_last, seed=seed, rank=rank, collate_fn=collate_fn,
                      multiprocessing_context=context, **workers)
