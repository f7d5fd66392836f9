"""Data: annotation lists, frame sampling, decoding, transforms, datasets, loaders and the on-device
normalisation (``normalize``) of the uint8 clips they yield.

The names below are imported from their submodule on first use, so that ``tinlib.data.releases``
can be imported without torch, numpy or OpenCV (the make pipeline's data check runs before they are
installed).
"""
from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
_EXPORTS = {
    "AnnotationError": "annotations", "DataError": "annotations", "Record": "annotations",
    "load_annotations": "annotations", "write_rawframe_list": "annotations", "write_video_list": "annotations",
    "ClipDataset": "datasets", "RawframeDataset": "datasets", "VideoDataset": "datasets", "build_dataset": "datasets",
    "DecodeError": "decoding", "decode_rawframes": "decoding", "decode_video": "decoding", "imread_rgb": "decoding",
    "open_video": "decoding", "build_loader": "loader", "sample_frames": "sampling", "sample_views": "sampling",
    "decode_jpegs": "gpu_decode",
    "MEAN": "normalization", "STD": "normalization", "normalize": "normalization",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tinlib.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tinlib.data.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
