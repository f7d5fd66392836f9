"""Seeds and RNG state: a run has one seed, and everything random derives its own from it with
:func:`derive_seed` and its position (epoch, rank, iteration, worker), so every position can be
recomputed after a resume without replaying what came before."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def derive_seed(*keys: int) -> int:
    """A seed in ``[0, 2**31)`` from integers (seed, epoch, rank, ...; reduced modulo 2**63), stable
    across runs and platforms; different key tuples give (practically) independent seeds."""
    return int(np.random.SeedSequence([int(k) % (2 ** 63) for k in keys]).generate_state(1)[0] & 0x7FFFFFFF)


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global RNG and torch (CPU and every CUDA device) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)  # also seeds every CUDA device


def random_seed() -> int:
    """A fresh 31-bit seed from the operating system (for runs without a given seed; it is recorded)."""
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF


def rng_state() -> dict:
    """The global RNG states (python, numpy, torch, CUDA when initialized) as tensors and plain
    containers, so that ``torch.save`` can store them without pickling numpy objects."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    state = {"python": random.getstate(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys).astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the states saved by :func:`rng_state` (CUDA only when the device count matches)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
