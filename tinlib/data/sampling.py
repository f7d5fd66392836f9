"""Temporal sampling: which frames of a video a clip is made of. ``sample_frames`` is MMAction2's
``SampleFrames`` (0-based indices; the decoders add the dataset's ``start_index``), ``sample_views``
arranges several test-time views the way the datasets feed them to a recognizer."""
from __future__ import annotations

import numpy as np


def _check(total_frames: int, num_clips: int, clip_len: int, frame_interval: int) -> None:
    if int(total_frames) != total_frames or total_frames < 1:
        raise ValueError(f"sample_frames: total_frames must be a positive integer, got {total_frames!r} "
                         "(a video or frame folder with no frames cannot be sampled)")
    for name, value in (("num_clips", num_clips), ("clip_len", clip_len), ("frame_interval", frame_interval)):
        if int(value) != value or value < 1:
            raise ValueError(f"sample_frames: {name} must be a positive integer, got {value!r}")


def _train_offsets(n: int, num_clips: int, span: int, rng: np.random.Generator) -> np.ndarray:
    """Start offsets of ``num_clips`` clips in training mode: one random clip per equal segment."""
    avg = (n - span + 1) // num_clips
    if avg > 0:
        return np.arange(num_clips) * avg + rng.integers(0, avg, size=num_clips)
    if n > max(num_clips, span):
        # Room for every clip but not one segment each: sorted random starts (reachable only when
        # clip_len * frame_interval > 1).
        return np.sort(rng.integers(0, n - span + 1, size=num_clips))
    if avg == 0:
        # Fewer start positions than clips: spread them evenly, numpy's round-half-to-even.
        ratio = (n - span + 1.0) / num_clips
        return np.around(np.arange(num_clips) * ratio).astype(np.int64)
    return np.zeros(num_clips, dtype=np.int64)


def _test_offsets(n: int, num_clips: int, span: int, twice_sample: bool) -> np.ndarray:
    """Deterministic start offsets in test mode: the middle of each segment (plus segment starts)."""
    avg = (n - span + 1) / float(num_clips)
    if n > span - 1:
        base = np.arange(num_clips) * avg
        offsets = (base + avg / 2.0).astype(np.int64)
        if twice_sample:
            offsets = np.concatenate([offsets, base.astype(np.int64)])
        return offsets
    return np.zeros(num_clips * (2 if twice_sample else 1), dtype=np.int64)


def sample_frames(total_frames: int, num_clips: int, clip_len: int = 1, frame_interval: int = 1,
                  test_mode: bool = False, rng: np.random.Generator | None = None,
                  twice_sample: bool = False) -> np.ndarray:
    """0-based frame indices for ``num_clips`` clips of ``clip_len`` frames, MMAction2 semantics.

    Returns an int64 array of length ``num_clips * clip_len`` (twice that with ``twice_sample`` in
    test mode), clip after clip; indices past the end wrap around (``loop``).

    Train mode (random, ``rng``): with ``span = clip_len * frame_interval`` and
    ``avg = (total_frames - span + 1) // num_clips``, clip ``i`` starts at ``i * avg + U[0, avg)``.
    Videos with fewer start positions than clips get evenly spread starts (round half to even).
    Test mode (deterministic): ``avg`` is the float ratio and clip ``i`` starts at
    ``int(i * avg + avg / 2)``; ``twice_sample`` appends the starts ``int(i * avg)``.
    ``twice_sample`` is ignored in train mode (as upstream); ``rng`` defaults to a fresh generator.
    """
    _check(total_frames, num_clips, clip_len, frame_interval)
    n, span = int(total_frames), clip_len * frame_interval
    if test_mode:
        offsets = _test_offsets(n, num_clips, span, twice_sample)
    else:
        rng = np.random.default_rng() if rng is None else rng
        offsets = _train_offsets(n, num_clips, span, rng)
    inds = offsets[:, None] + np.arange(clip_len)[None, :] * frame_interval
    return np.mod(inds.reshape(-1), n).astype(np.int64)


def sample_views(total_frames: int, num_segments: int, *, num_clips: int = 1, test_mode: bool = False,
                 rng: np.random.Generator | None = None, twice_sample: bool = False) -> np.ndarray:
    """0-based frame indices ``[views, num_segments]`` for a TSN-style (clip_len 1) recognizer.

    One view in train mode (``num_clips`` and ``twice_sample`` only apply to testing). In test
    mode each of the ``num_clips`` views spans the whole video: ``num_segments * num_clips``
    test-mode positions are taken and view ``k`` gets every ``num_clips``-th one starting at ``k``,
    i.e. view ``k`` samples segment ``i`` at ``int(i * avg + (k + 0.5) * avg / num_clips)`` with
    ``avg = total_frames / num_segments``. With ``num_clips=1`` this is exactly MMAction2's test
    sampling; ``twice_sample`` appends the same number of views taken at the segment starts
    (MMAction2/TSM twice sampling), so ``views = num_clips * (2 if twice_sample else 1)``.
    """
    if not test_mode:
        return sample_frames(total_frames, num_segments, rng=rng).reshape(1, num_segments)
    inds = sample_frames(total_frames, num_segments * num_clips, test_mode=True, twice_sample=twice_sample)
    halves = inds.reshape(-1, num_segments * num_clips)  # [1 or 2, T * clips]
    views = [half.reshape(num_segments, num_clips).T for half in halves]  # each [clips, T]
    return np.concatenate(views, axis=0)
