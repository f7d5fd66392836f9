"""Spatial transforms with MMAction2's semantics, on clips ``[T, H, W, 3]`` uint8 RGB (one random
draw per clip, from a ``numpy.random.Generator``; sizes in OpenCV's ``(w, h)`` order where noted).
Train: ``Resize -> MultiScaleCrop -> Resize -> [Flip]``; test: ``Resize -> CenterCrop | ThreeCrop |
TenCrop``; :func:`chw_tensor` then makes the uint8 tensor ``[M, 3, H, W]`` the datasets yield (MMAction2's
Normalize is :func:`tinlib.data.normalization.normalize`, run on the device)."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

MSC_SCALES = (1, 0.875, 0.75, 0.66)
TEST_CROPS = ("center", "three", "ten")
CROPS_PER_MODE = {"center": 1, "three": 3, "ten": 10}  # spatial crops per view of each test_crop mode

Box = tuple[int, int, int, int]  # x, y, w, h


def _check_clip(frames: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected a clip [T, H, W, 3], got shape {tuple(frames.shape)}")


def rescale_size(w: int, h: int, short_side: int) -> tuple[int, int]:
    """``(new_w, new_h)`` under Resize(scale=(-1, short_side)): aspect ratio kept, each side
    ``int(side * factor + 0.5)`` (mmcv's rescale rule)."""
    factor = short_side / min(w, h)
    return int(w * factor + 0.5), int(h * factor + 0.5)


def resize_exact(frames: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Bilinear (OpenCV) resize ``[T, H, W, 3] -> [T, h, w, 3]``, ``size_wh = (w, h)``."""
    _check_clip(frames)
    w, h = size_wh
    if frames.shape[1:3] == (h, w):
        return frames
    out = np.empty((len(frames), h, w, 3), np.uint8)
    for frame, resized in zip(frames, out):  # written in place: no list of frames to stack
        cv2.resize(frame, (w, h), dst=resized, interpolation=cv2.INTER_LINEAR)
    return out


def resize_short_side(frames: np.ndarray, short_side: int) -> np.ndarray:
    """Resize(scale=(-1, short_side)): ``[T, H, W, 3] -> [T, H', W', 3]``, ratio kept."""
    _check_clip(frames)
    h, w = frames.shape[1:3]
    return resize_exact(frames, rescale_size(w, h, short_side))


def crop(frames: np.ndarray, box: Box) -> np.ndarray:
    """Cut ``box`` out of every frame: ``[T, H, W, 3] -> [T, h, w, 3]`` (a view); ValueError when it
    does not fit."""
    x, y, w, h = box
    H, W = frames.shape[1:3]
    if x < 0 or y < 0 or x + w > W or y + h > H:
        raise ValueError(f"crop box {box} (x, y, w, h) does not fit frames of {W}x{H}; "
                         "scale_size must be >= input_size")
    return frames[:, y:y + h, x:x + w]


def flip_horizontal(frames: np.ndarray) -> np.ndarray:
    """Mirror every frame left-right (a contiguous copy)."""
    return np.ascontiguousarray(frames[:, :, ::-1])


def _fixed_offsets(w_step: int, h_step: int, num_fixed_crops: int) -> list[tuple[int, int]]:
    offsets = [(0, 0), (4 * w_step, 0), (0, 4 * h_step), (4 * w_step, 4 * h_step), (2 * w_step, 2 * h_step)]
    if num_fixed_crops == 13:
        offsets += [(0, 2 * h_step), (4 * w_step, 2 * h_step), (2 * w_step, 4 * h_step), (2 * w_step, 0),
                    (w_step, h_step), (3 * w_step, h_step), (w_step, 3 * h_step), (3 * w_step, 3 * h_step)]
    elif num_fixed_crops != 5:
        raise ValueError(f"num_fixed_crops must be 5 or 13, got {num_fixed_crops}")
    return offsets


def multi_scale_crop_box(img_h: int, img_w: int, input_size: int, rng: np.random.Generator,
                         scales: Sequence[float] = MSC_SCALES, max_wh_scale_gap: int = 1,
                         num_fixed_crops: int = 5) -> Box:
    """MultiScaleCrop (``random_crop=False``): a crop ``(x, y, w, h)`` to be resized to ``input_size``.

    Side lengths ``int(min(h, w) * s)`` for each scale; (w, h) pairs whose scale indices differ by
    at most ``max_wh_scale_gap`` are the candidates (one drawn uniformly); a side within 3 px of
    ``input_size`` snaps to it; the offset is drawn among ``num_fixed_crops`` (5: corners and
    centre, or 13; else ValueError) fixed positions on a quarter grid.
    """
    base = min(img_h, img_w)
    sizes = [int(base * s) for s in scales]
    candidates = [(w, h) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= max_wh_scale_gap]
    crop_w, crop_h = candidates[int(rng.integers(len(candidates)))]
    crop_w = input_size if abs(crop_w - input_size) < 3 else crop_w
    crop_h = input_size if abs(crop_h - input_size) < 3 else crop_h
    crop_w, crop_h = min(crop_w, img_w), min(crop_h, img_h)
    offsets = _fixed_offsets((img_w - crop_w) // 4, (img_h - crop_h) // 4, num_fixed_crops)
    x, y = offsets[int(rng.integers(len(offsets)))]
    return x, y, crop_w, crop_h


def random_crop_box(img_h: int, img_w: int, size: int, rng: np.random.Generator) -> Box:
    """RandomCrop: a ``size`` x ``size`` box at a position drawn from ``rng``."""
    if size > img_h or size > img_w:
        raise ValueError(f"crop size {size} larger than frames of {img_w}x{img_h}")
    return int(rng.integers(img_w - size + 1)), int(rng.integers(img_h - size + 1)), size, size


def center_crop_box(img_h: int, img_w: int, size: int) -> Box:
    """CenterCrop box: ``left = (img_w - size) // 2``, ``top = (img_h - size) // 2``."""
    if size > img_h or size > img_w:
        raise ValueError(f"center crop {size} larger than frames of {img_w}x{img_h}; scale_size must be >= input_size")
    return (img_w - size) // 2, (img_h - size) // 2, size, size


def three_crop_boxes(img_h: int, img_w: int, size: int) -> list[Box]:
    """ThreeCrop boxes: ``size`` must equal one side (else ValueError); crops at the start, the end
    and the middle of the other side, in that order (``step = (long - size) // 2``)."""
    if size == img_h and size <= img_w:
        step = (img_w - size) // 2
        return [(0, 0, size, size), (2 * step, 0, size, size), (step, 0, size, size)]
    if size == img_w and size <= img_h:
        step = (img_h - size) // 2
        return [(0, 0, size, size), (0, 2 * step, size, size), (0, step, size, size)]
    raise ValueError(f"ThreeCrop({size}) needs the crop side to equal one side of the {img_w}x{img_h} frames")


def ten_crop_boxes(img_h: int, img_w: int, size: int) -> list[Box]:
    """The five TenCrop boxes (corners and centre on the quarter grid); the caller also flips each.
    ValueError when ``size`` exceeds a side."""
    if size > img_h or size > img_w:
        raise ValueError(f"TenCrop({size}) larger than frames of {img_w}x{img_h}")
    w_step, h_step = (img_w - size) // 4, (img_h - size) // 4
    return [(x, y, size, size) for x, y in _fixed_offsets(w_step, h_step, 5)]


def chw_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``[M, H, W, 3]`` -> uint8 tensor ``[M, 3, H, W]``, contiguous (the one copy of the layout
    change, made here in numpy, in the DataLoader worker)."""
    _check_clip(frames)
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))


def train_transform(frames: np.ndarray, rng: np.random.Generator, *, scale_size: int = 256, input_size: int = 224,
                    flip: bool = False, multi_scale_crop: bool = True, flip_ratio: float = 0.5) -> np.ndarray:
    """``[T, H, W, 3] -> [T, input_size, input_size, 3]`` uint8 with one random crop (and flip) per clip.

    ``scale_size`` is the short side after the first resize. ``multi_scale_crop=False`` replaces
    MultiScaleCrop + Resize by a random ``input_size`` crop. ``flip`` (taken with probability
    ``flip_ratio``) must stay False for Something-Something (left/right is part of the label).
    """
    frames = resize_short_side(frames, scale_size)
    h, w = frames.shape[1:3]
    if multi_scale_crop:
        frames = crop(frames, multi_scale_crop_box(h, w, input_size, rng))
        frames = resize_exact(frames, (input_size, input_size))
    else:
        frames = crop(frames, random_crop_box(h, w, input_size, rng))
    if flip and rng.random() < flip_ratio:
        frames = flip_horizontal(frames)
    return np.ascontiguousarray(frames)


def test_transform(frames: np.ndarray, *, scale_size: int = 256, input_size: int = 224,
                   test_crop: str = "center") -> np.ndarray:
    """``[T, H, W, 3] -> [crops * T, S, S, 3]`` uint8, crop-major (all frames of crop 0, then crop 1...).

    ``center``: one ``input_size`` crop. ``ten``: five ``input_size`` crops, each followed by its
    horizontal flip (10 crops). ``three``: three ``scale_size`` crops along the long side (MMAction2's
    ThreeCrop needs the crop side to equal the short side), so S is ``scale_size`` for it; any
    other ``test_crop`` is a ValueError.
    """
    frames = resize_short_side(frames, scale_size)
    h, w = frames.shape[1:3]
    if test_crop == "center":
        return np.ascontiguousarray(crop(frames, center_crop_box(h, w, input_size)))
    if test_crop == "three":
        return np.concatenate([crop(frames, b) for b in three_crop_boxes(h, w, min(h, w))])
    if test_crop == "ten":
        out = []
        for box in ten_crop_boxes(h, w, input_size):
            c = crop(frames, box)
            out += [c, flip_horizontal(c)]
        return np.ascontiguousarray(np.concatenate(out))
    raise ValueError(f"test_crop must be one of {TEST_CROPS}, got {test_crop!r}")
