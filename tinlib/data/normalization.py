"""Pixel normalisation on the device. The datasets and loaders deliver uint8 RGB clips (4x fewer
bytes to move than float32); each consumer calls :func:`normalize` right after moving a batch to
its device, so the float32 model input is made there in one pass."""
from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

MEAN = (123.675, 116.28, 103.53)  # RGB, 0-255 input (ImageNet statistics)
STD = (58.395, 57.12, 57.375)


def normalize(batch: torch.Tensor, mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> torch.Tensor:
    """uint8 RGB frames ``[..., 3, H, W]`` (``[B, V*T, 3, H, W]`` or ``[M, 3, H, W]``) -> float32 of
    the same shape on the same device: ``(x - mean) * (1 / std)`` per channel, ``1 / std`` rounded
    from float64 to float32 (mmcv's imnormalize: the values of the former numpy step, bit for bit).

    ValueError, in one line, for another dtype (pass the clips as the loader yields them) or when
    dim -3 is not the 3 RGB channels."""
    if batch.dtype != torch.uint8:
        raise ValueError(f"normalize takes the uint8 frames the datasets yield (0-255 RGB), got {batch.dtype}: "
                         "pass the clip before any conversion, it is normalised once, on the device")
    if batch.dim() < 3 or batch.shape[-3] != 3:
        raise ValueError(f"normalize takes frames [..., 3, H, W] with the 3 RGB channels at dim -3, got shape "
                         f"{tuple(batch.shape)}")
    shift, scale = _constants(tuple(float(m) for m in mean), tuple(float(s) for s in std), batch.device)
    # three plain passes beat one type-promoting subtraction (1.7x on one CPU thread), same values
    return batch.float().sub_(shift).mul_(scale)


def _constants(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    if torch.compiler.is_compiling():  # traced (torch.compile, ONNX export): constants of the graph, not cached
        return _make_constants(mean, std, device)
    return _cached_constants(mean, std, device)


def _make_constants(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """``(mean, 1 / std)`` float32 ``[3, 1, 1]`` on ``device``."""
    values = torch.tensor([mean, [1.0 / s for s in std]], dtype=torch.float32)  # 1 / s in float64, then rounded
    return tuple(values.view(2, 3, 1, 1).to(device).unbind(0))


# made once per device: a blocking copy to a GPU in every call would wait for the work queued there
_cached_constants = functools.lru_cache(maxsize=None)(_make_constants)
