"""Writing videos and frame folders: RGB frames encoded with PyAV (H.264 / VP9, whichever encoder
this build has) or written as JPEG files, via a temporary path so that no half-written file remains.
"""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .releases import SYNTHETIC

DEFAULT_FPS = SYNTHETIC.fps  # the synthetic dataset's frame rate


def _encode(out: Any, codec: str, frames: np.ndarray, fps: int, options: dict[str, Any] | None = None,
            bit_rate: int | None = None) -> None:
    """Encode RGB ``frames [T, H, W, 3]`` as a yuv420p ``codec`` stream of the open PyAV container ``out``."""
    import av
    from av.video.stream import VideoStream

    stream = out.add_stream(codec, rate=fps)
    assert isinstance(stream, VideoStream)
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = "yuv420p"
    if options:
        stream.options = options
    if bit_rate:
        stream.bit_rate = bit_rate
    for frame in frames:
        out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
    out.mux(stream.encode())


def _encoder_works(codec: str, container: str) -> bool:
    """Encode two tiny frames in memory: an encoder can be listed yet fail to open (e.g. when
    decord's bundled FFmpeg was loaded before PyAV's)."""
    import av

    try:
        buf = io.BytesIO()
        with av.open(buf, "w", format=container) as out:
            _encode(out, codec, np.zeros((2, 16, 16, 3), np.uint8), DEFAULT_FPS)
        return buf.tell() > 0
    except Exception:
        return False


def video_codec(container: str) -> str:
    """A working PyAV encoder for ``container`` ('mp4' or 'webm'), the official codec first."""
    prefs = {"mp4": ("libx264", "h264", "mpeg4"), "webm": ("libvpx-vp9", "libvpx", "vp9", "vp8")}[container]
    for name in prefs:
        if _encoder_works(name, container):
            return name
    raise RuntimeError(f"none of the encoders {prefs} works for .{container} in this PyAV build; install a PyAV "
                       "wheel with libx264/libvpx (pip install av), and import av (or tinlib.data.decoding) "
                       "before decord")


def _encoder_options(codec: str) -> tuple[dict[str, Any], int | None]:
    if codec in ("libx264", "h264"):
        return {"crf": "18", "preset": "ultrafast", "threads": "1"}, None
    if codec.startswith("libvpx") or codec in ("vp8", "vp9"):
        return {"crf": "10", "deadline": "realtime", "cpu-used": "8", "threads": "1"}, 2_000_000
    return {"qscale": "3"}, 2_000_000


def write_video(path: str | os.PathLike, frames: np.ndarray, codec: str, fps: int = DEFAULT_FPS) -> None:
    """Encode RGB ``[T, H, W, 3]`` (even H and W) to ``path`` with PyAV, via a temporary file, with
    fast, high-quality encoder settings (the encoder's defaults if it rejects them)."""
    import av

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    options, bit_rate = _encoder_options(codec)
    try:
        with av.open(str(tmp), "w") as container:
            _encode(container, codec, frames, fps, options, bit_rate)
    except av.error.ArgumentError:
        with av.open(str(tmp), "w") as container:
            _encode(container, codec, frames, fps, None, bit_rate)
    os.replace(tmp, path)


def write_frames(folder: Path, frames: np.ndarray, tmpl: str) -> None:
    """Write RGB ``frames [T, H, W, 3]`` as JPEG files ``tmpl.format(1), ...`` (quality 90) into
    ``folder``, replacing it whole: the frames go to a temporary folder first."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for k, frame in enumerate(frames, start=1):
        if not cv2.imwrite(str(tmp / tmpl.format(k)), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise OSError(f"cv2.imwrite failed for {tmp / tmpl.format(k)}")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)

