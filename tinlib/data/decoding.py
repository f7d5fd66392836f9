"""Frame decoding: JPEG frame folders (OpenCV) and video files (torchcodec, decord or PyAV, see
:mod:`tinlib.data.video_readers`; PyAV as the fallback), as RGB uint8 frames ``[N, H, W, 3]``; what
cannot be read raises ``DecodeError`` naming the file. Video readers are opened per call, i.e.
inside each DataLoader worker, never in the parent process."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from .annotations import DataError
from .video_readers import (  # noqa: F401 -- have_decord, have_torchcodec, quiet_native_video_logs: re-exported
    AUTO_ORDER,
    VideoReader,
    available_backends,
    have_decord,
    have_torchcodec,
    open_reader,
    quiet_native_video_logs,
    short_error,
    torchcodec_status,
    warn_once,
)

log = logging.getLogger(__name__)
# "auto": the first of AUTO_ORDER this process can use (torchcodec, decord, PyAV)
VIDEO_BACKENDS = ("auto", *AUTO_ORDER)
DECODE_DEVICES = ("cpu", "cuda")


class DecodeError(DataError):
    """A frame or video file that is missing, empty or cannot be decoded."""


_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
_PADDING = b"\x00 \t\r\n"  # what some encoders leave after the end-of-image marker


def jpeg_cut_short(data: np.ndarray) -> bool:
    """Whether ``data`` (a file's bytes, uint8 ``[N]``) is a JPEG whose end is missing: it starts
    with the start-of-image marker but does not end with the end-of-image marker (FF D9), trailing
    zero or white-space padding aside. libjpeg decodes such a file with a warning only (the missing
    rows grey) on some OpenCV builds, so the cut would go unnoticed. Reads the last bytes only."""
    if data.size < 4 or data[:2].tobytes() != _JPEG_START:
        return False
    tail = data[-2:].tobytes()
    if tail != _JPEG_END and tail[-1] in _PADDING:
        tail = data.tobytes().rstrip(_PADDING)[-2:]  # rare: copies the file once
    return tail != _JPEG_END


def imread_rgb(path: str | os.PathLike) -> np.ndarray:
    """A JPEG/PNG file as RGB uint8 ``[H, W, 3]`` (OpenCV decode, as mmcv's cv2 backend);
    DecodeError when it is missing, unreadable, empty or not a decodable image."""
    path = os.fspath(path)
    try:
        return _read_rgb(path)
    except FileNotFoundError:
        raise DecodeError(f"frame file not found: {path}") from None


def check_frame_bytes(name: str, data: np.ndarray) -> None:
    """DecodeError naming the frame file ``name`` when its bytes ``data`` (uint8 ``[N]``) are empty
    or a JPEG cut short (see :func:`jpeg_cut_short`)."""
    if data.size == 0:
        raise DecodeError(f"frame file is empty (0 bytes): {name}; re-extract the frames of this video")
    if jpeg_cut_short(data):
        raise DecodeError(f"cannot decode image {name} ({data.size} bytes): the file is truncated (no JPEG "
                          "end-of-image marker): re-extract the frames of this video")


def _read_rgb(path: str) -> np.ndarray:
    """:func:`imread_rgb`, but a missing file raises FileNotFoundError, for the caller to word."""
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise DecodeError(f"cannot read frame file {path}: {err}") from None
    check_frame_bytes(path, buf)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise DecodeError(f"cannot decode image {path} ({buf.size} bytes): not a valid JPEG/PNG; "
                          "re-extract the frames of this video")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def check_frame_folder(frame_dir: str | os.PathLike) -> str:
    """``frame_dir`` as a string; DecodeError when it is not a folder."""
    frame_dir = os.fspath(frame_dir)
    if not os.path.isdir(frame_dir):
        raise DecodeError(f"frame folder not found: {frame_dir}; extract the frames (`tinlib prepare ...`) "
                          "or fix data_prefix / the list")
    return frame_dir


def missing_frame_error(frame_dir: str, path: str, filename_tmpl: str, start_index: int) -> DecodeError:
    """The error for frame file ``path`` missing from ``frame_dir``: the list and the folder disagree."""
    present = sum(1 for _ in os.scandir(frame_dir))
    return DecodeError(f"frame file not found: {path} (the folder holds {present} entries); the list's frame "
                       f"count or the filename template {filename_tmpl!r} / start_index {start_index} does not match "
                       "the folder: rebuild the list with `tinlib prepare ...` or fix the config")


def decode_rawframes(frame_dir: str | os.PathLike, indices: Sequence[int], filename_tmpl: str = "img_{:05}.jpg",
                     start_index: int = 1) -> np.ndarray:
    """Frames ``frame_dir/filename_tmpl.format(i + start_index)`` for 0-based ``indices`` (repeats
    decoded once): RGB uint8 ``[len(indices), H, W, 3]``. DecodeError for a missing folder, a
    missing or unreadable file, or frames of different sizes."""
    frame_dir = check_frame_folder(frame_dir)
    cache: dict[int, np.ndarray] = {}
    frames = []
    for idx in indices:
        idx = int(idx)
        if idx not in cache:
            path = os.path.join(frame_dir, filename_tmpl.format(idx + start_index))
            try:  # no stat per frame: a missing file is learnt from the failed open
                cache[idx] = _read_rgb(path)
            except FileNotFoundError:
                raise missing_frame_error(frame_dir, path, filename_tmpl, start_index) from None
        frames.append(cache[idx])
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise DecodeError(f"frames of {frame_dir} have different sizes {sorted(shapes)}; re-extract the folder")
    return np.stack(frames)


def _check_video_file(path: str) -> None:
    if not os.path.exists(path):
        raise DecodeError(f"video file not found: {path}; fix data_prefix / the list, or re-download the video")
    if os.path.getsize(path) == 0:
        raise DecodeError(f"video file is empty (0 bytes): {path}; re-download it or drop it from the list")


def choose_backend(backend: str) -> str:
    """The backend that opens a file for ``backend``: for "auto" the first available of
    :data:`AUTO_ORDER`; a named backend this process cannot use gives PyAV (one warning per process
    for torchcodec, which names why; decord is missing on platforms without its wheel)."""
    usable = available_backends()
    if backend == "auto":
        return usable[0]
    if backend in usable:
        return backend
    if backend == "torchcodec":
        warn_once("backend-torchcodec", "video_backend 'torchcodec' is not usable here (%s); decoding with PyAV",
                  torchcodec_status().detail)
    return "pyav"


class VideoClip:
    """An opened video of ``len(clip)`` frames (see :func:`open_video`).

    ``backend`` "auto" (the fastest available: torchcodec, decord, PyAV), "torchcodec", "decord" or
    "pyav"; if the chosen one is missing, or fails to open or decode this file, PyAV decodes the whole
    stream once instead (slower, but robust), with a warning. ``self.backend`` says which one is in
    use; ``self.fallback_reason`` why the chosen one gave way to PyAV (None when it did not).
    ``device`` "cuda" decodes with torchcodec on the GPU when it can (frames still come back as numpy).
    """

    def __init__(self, path: str | os.PathLike, backend: str = "auto", device: str = "cpu"):
        if backend not in VIDEO_BACKENDS:
            raise ValueError(f"video_backend must be one of {VIDEO_BACKENDS}, got {backend!r}")
        if device not in DECODE_DEVICES:
            raise ValueError(f"decode device must be one of {DECODE_DEVICES}, got {device!r}")
        self.path = os.fspath(path)
        _check_video_file(self.path)
        self.fallback_reason: str | None = None
        self._failed: str | None = None  # the backend that gave way to PyAV
        name = choose_backend(backend)
        if device != "cpu" and name != "torchcodec":
            warn_once("video-cuda", "video decoding on %s needs torchcodec (this clip: %s); decoding on the CPU",
                      device, name)
        if name != "pyav":
            try:
                reader = open_reader(name, self.path, device)
                if len(reader) > 0:
                    self._use(name, reader)
                    return
                self._fail(name, f"{name} reports 0 frames")
            except Exception as err:  # noqa: BLE001 -- each backend raises its own types on bad files
                self._fail(name, short_error(err))
        self._open_pyav()

    def _use(self, name: str, reader: VideoReader) -> None:
        self.backend, self._reader, self._len = name, reader, len(reader)

    def _fail(self, name: str, reason: str) -> None:
        self._failed, self.fallback_reason = name, reason

    def _open_pyav(self) -> None:
        try:
            reader = open_reader("pyav", self.path)
        except Exception as err:  # noqa: BLE001 -- whatever PyAV raises is the reason
            raise DecodeError(self._reason(f"PyAV: {short_error(err)}")) from None
        if len(reader) == 0:
            raise DecodeError(self._reason("PyAV decoded 0 frames"))
        self._use("pyav", reader)
        if self._failed:
            log.warning("%s failed on %s (%s); decoded it with PyAV instead", self._failed, self.path,
                        self.fallback_reason)

    def _reason(self, pyav_reason: str) -> str:
        first = f"{self._failed}: {self.fallback_reason}; " if self._failed else ""
        return (f"cannot decode video {self.path} ({first}{pyav_reason}); the file is corrupt or truncated: "
                "re-download it or drop it from the list")

    def __len__(self) -> int:
        return self._len

    def get(self, indices: Sequence[int]) -> np.ndarray:
        """The frames at 0-based ``indices`` (repeats decoded once): RGB uint8 ``[len(indices), H, W, 3]``.

        IndexError for an index out of range; DecodeError when neither the chosen backend nor PyAV
        can decode them.
        """
        indices = [int(i) for i in indices]
        bad = [i for i in indices if not 0 <= i < self._len]
        if bad:
            raise IndexError(f"frame indices {bad} out of range for {self.path} with {self._len} frames")
        unique = sorted(set(indices))
        try:
            batch = self._reader.get(unique)
        except Exception as err:  # noqa: BLE001 -- a seeking reader failing mid-file: PyAV reads it whole
            if self.backend == "pyav":
                raise DecodeError(self._reason(f"PyAV: {short_error(err)}")) from None
            self._fail(self.backend, short_error(err))
            self._open_pyav()
            return self.get(indices)
        pos = {i: k for k, i in enumerate(unique)}
        return batch[[pos[i] for i in indices]]


def open_video(path: str | os.PathLike, backend: str = "auto", device: str = "cpu") -> VideoClip:
    """Open a video for random frame access with ``backend`` (one of :data:`VIDEO_BACKENDS`; PyAV
    as the fallback), decoding on ``device`` ("cuda": torchcodec's GPU decoder, the CPU when it is
    not available, with one warning). DecodeError when the file is missing, empty or cannot be
    decoded (the message gives each tried backend's reason); ValueError for an unknown ``backend``."""
    return VideoClip(path, backend, device)


def decode_video(path: str | os.PathLike, indices: Sequence[int], backend: str = "auto",
                 device: str = "cpu") -> np.ndarray:
    """The frames of a video at 0-based ``indices``: RGB uint8 ``[len(indices), H, W, 3]`` (see
    :func:`open_video` and :meth:`VideoClip.get` for the errors)."""
    return open_video(path, backend, device).get(indices)


def iter_video_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Every frame of a video in order, RGB uint8 ``[H, W, 3]`` each, decoded sequentially with
    PyAV: frame extraction avoids seeking, unreliable for webm/VP9. DecodeError naming the file
    when it is missing or empty, or cannot be opened or decoded."""
    import av

    path = os.fspath(path)
    _check_video_file(path)
    try:
        container = av.open(path)
    except Exception as err:
        raise DecodeError(f"cannot open video {path} (PyAV: {short_error(err)}); re-download it") from None
    with container:
        if not container.streams.video:
            raise DecodeError(f"{path} has no video stream")
        try:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
        except Exception as err:
            raise DecodeError(f"cannot decode video {path} (PyAV: {short_error(err)}); the file is corrupt or "
                              "truncated: re-download it") from None
