"""JPEG frames decoded in one batch on a CUDA device (nvJPEG through ``torchvision.io.decode_jpeg``),
or on the CPU (torchvision's libjpeg-turbo) when CUDA is not available here, with one warning per
process. Frame-folder datasets use it with ``data.decode_device: cuda`` (else OpenCV,
:func:`tinlib.data.decoding.decode_rawframes`)."""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from .decoding import DecodeError, check_frame_bytes, check_frame_folder, missing_frame_error
from .video_readers import cuda_unavailable_reason, short_error, warn_once

JpegSource = str | os.PathLike | bytes


def _read(source: JpegSource) -> tuple[str, torch.Tensor]:
    """(name for messages, the file's bytes as uint8 ``[N]``); DecodeError for a missing, empty or
    cut-short file."""
    if isinstance(source, bytes):
        name, data = "<bytes>", np.frombuffer(source, dtype=np.uint8)
    else:
        name = os.fspath(source)
        try:
            data = np.fromfile(name, dtype=np.uint8)
        except OSError as err:
            raise DecodeError(f"cannot read frame file {name}: {short_error(err)}") from None
    check_frame_bytes(name, data)
    return name, torch.from_numpy(data.copy())


def _decode_cpu(names: list[str], datas: list[torch.Tensor]) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg

    frames = []
    for name, data in zip(names, datas):  # one by one, so that an undecodable file is named
        try:
            frames.append(decode_jpeg(data, mode=ImageReadMode.RGB))
        except RuntimeError as err:
            raise DecodeError(f"cannot decode image {name} ({data.numel()} bytes): {short_error(err)}; "
                              "re-extract the frames of this video") from None
    return frames


def _stack(frames: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    return torch.stack(frames) if len({f.shape for f in frames}) == 1 else frames


def decode_jpegs(sources: Sequence[JpegSource],
                 device: str | torch.device = "cpu") -> torch.Tensor | list[torch.Tensor]:
    """JPEG files (paths) or their bytes, decoded as RGB: uint8 ``[N, 3, H, W]`` on ``device``, or a
    list of ``[3, H, W]`` when the sizes differ. On a CUDA ``device`` one batched nvJPEG call; when
    CUDA is not available, torchvision's CPU decoder (one warning per process) and the frames stay
    on the CPU; when nvJPEG fails, the CPU decoder and a copy to ``device``. DecodeError naming the
    file that cannot be read or decoded."""
    device = torch.device(device)
    if not sources:
        return torch.empty(0, 3, 0, 0, dtype=torch.uint8, device=device)
    read = [_read(source) for source in sources]
    names, datas = [name for name, _ in read], [data for _, data in read]
    if device.type != "cuda":
        return _stack(_decode_cpu(names, datas))
    reason = cuda_unavailable_reason()
    if reason is None:
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            return _stack(decode_jpeg(datas, mode=ImageReadMode.RGB, device=device))
        except RuntimeError as err:  # no nvJPEG, or a file it refuses: the CPU decoder names a bad file
            warn_once("jpeg-cuda", "JPEG decoding on %s failed (%s); decoding on the CPU instead", device,
                      short_error(err))
            return _stack([frame.to(device) for frame in _decode_cpu(names, datas)])
    warn_once("jpeg-cuda", "JPEG decoding on %s is not available (%s); decoding on the CPU instead", device, reason)
    return _stack(_decode_cpu(names, datas))


def decode_frame_folder(frame_dir: str | os.PathLike, indices: Sequence[int], filename_tmpl: str = "img_{:05}.jpg",
                        start_index: int = 1, device: str | torch.device = "cuda") -> np.ndarray:
    """:func:`~tinlib.data.decoding.decode_rawframes` with the JPEG decoding done by
    :func:`decode_jpegs` on ``device`` (repeats decoded once): RGB uint8 ``[len(indices), H, W, 3]``
    back on the CPU for the OpenCV transforms. DecodeError for a missing folder or file, an
    undecodable file, or frames of different sizes."""
    frame_dir = check_frame_folder(frame_dir)
    unique = sorted({int(i) for i in indices})
    paths = [os.path.join(frame_dir, filename_tmpl.format(i + start_index)) for i in unique]
    try:
        decoded = decode_jpegs(paths, device)
    except DecodeError:
        missing = next((path for path in paths if not os.path.exists(path)), None)  # stat only on failure
        if missing is None:
            raise
        raise missing_frame_error(frame_dir, missing, filename_tmpl, start_index) from None
    if isinstance(decoded, list):
        sizes = sorted({tuple(f.shape[1:]) for f in decoded})
        raise DecodeError(f"frames of {frame_dir} have different sizes {sizes}; re-extract the folder")
    position = {i: k for k, i in enumerate(unique)}
    order = torch.tensor([position[int(i)] for i in indices], device=decoded.device)
    return decoded.index_select(0, order).permute(0, 2, 3, 1).cpu().numpy()
