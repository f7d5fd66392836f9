"""Frame decoding: JPEG frame folders (OpenCV) and video files (decord, PyAV as the fallback), as RGB
uint8 frames ``[N, H, W, 3]``; what cannot be read raises ``DecodeError`` naming the file. Video
readers are opened per call, i.e. inside each DataLoader worker, never in the parent process."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from .annotations import DataError

log = logging.getLogger(__name__)
VIDEO_BACKENDS = ("decord", "pyav")

try:  # PyAV first: loading decord's bundled FFmpeg before PyAV breaks PyAV's libvpx/libx264 encoders
    import av  # noqa: F401
except ImportError:  # pragma: no cover
    pass
try:  # decord has no wheels for some platforms; PyAV is the fallback everywhere
    import decord as _decord
except ImportError:  # pragma: no cover - depends on the platform
    _decord = None


def have_decord() -> bool:
    """True when the decord video reader could be imported."""
    return _decord is not None


_native_logs_quiet: bool | None = None  # None: not set yet in this process


def quiet_native_video_logs() -> bool:
    """Silence decord's bundled FFmpeg once per process; True when its level was lowered.

    A file decord cannot read otherwise prints FFmpeg's own notes (``moov atom not found``) on
    stderr before the one line of :class:`DecodeError`. The level is process-wide, so it is set
    once, not around each decode. At debug level (``--debug``) FFmpeg keeps its notes for
    diagnosis. PyAV needs nothing (its FFmpeg logging is off by default). Not silenced: decord's
    own C++ line for a file it cannot open (``video_reader.cc:83: ERROR opening: PATH, ...``),
    written straight to stderr with no level to set.
    """
    global _native_logs_quiet
    if _native_logs_quiet is None:
        _native_logs_quiet = _decord is not None and not log.isEnabledFor(logging.DEBUG)
        if _native_logs_quiet:
            _decord.logging.set_level(_decord.logging.QUIET)
    return _native_logs_quiet


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


def _read_rgb(path: str) -> np.ndarray:
    """:func:`imread_rgb`, but a missing file raises FileNotFoundError, for the caller to word."""
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise DecodeError(f"cannot read frame file {path}: {err}") from None
    if buf.size == 0:
        raise DecodeError(f"frame file is empty (0 bytes): {path}; re-extract the frames of this video")
    if jpeg_cut_short(buf):
        raise DecodeError(f"cannot decode image {path} ({buf.size} bytes): the file is truncated (no JPEG "
                          "end-of-image marker): re-extract the frames of this video")
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise DecodeError(f"cannot decode image {path} ({buf.size} bytes): not a valid JPEG/PNG; "
                          "re-extract the frames of this video")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def decode_rawframes(frame_dir: str | os.PathLike, indices: Sequence[int], filename_tmpl: str = "img_{:05}.jpg",
                     start_index: int = 1) -> np.ndarray:
    """Frames ``frame_dir/filename_tmpl.format(i + start_index)`` for 0-based ``indices`` (repeats
    decoded once): RGB uint8 ``[len(indices), H, W, 3]``. DecodeError for a missing folder, a
    missing or unreadable file, or frames of different sizes."""
    frame_dir = os.fspath(frame_dir)
    if not os.path.isdir(frame_dir):
        raise DecodeError(f"frame folder not found: {frame_dir}; extract the frames (`tinlib prepare ...`) "
                          "or fix data_prefix / the list")
    cache: dict[int, np.ndarray] = {}
    frames = []
    for idx in indices:
        idx = int(idx)
        if idx not in cache:
            path = os.path.join(frame_dir, filename_tmpl.format(idx + start_index))
            try:  # no stat per frame: a missing file is learnt from the failed open
                cache[idx] = _read_rgb(path)
            except FileNotFoundError:
                present = sum(1 for _ in os.scandir(frame_dir))
                raise DecodeError(
                    f"frame file not found: {path} (the folder holds {present} entries); the list's frame "
                    f"count or the filename template {filename_tmpl!r} / start_index {start_index} does not match "
                    "the folder: rebuild the list with `tinlib prepare ...` or fix the config") from None
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


def _pyav_frames(path: str) -> list:
    """All decoded frames of the first video stream of ``path`` (``av.VideoFrame``s, not converted)."""
    import av

    with av.open(path) as container:
        if not container.streams.video:
            raise DecodeError(f"{path} has no video stream")
        return list(container.decode(video=0))


class VideoClip:
    """An opened video of ``len(clip)`` frames (see :func:`open_video`).

    ``backend='decord'`` uses ``decord.VideoReader(num_threads=1)``; if decord is missing, or fails
    to open or decode this file, PyAV decodes the whole stream once instead (slower, but robust).
    ``self.backend`` says which one is in use.
    """

    def __init__(self, path: str | os.PathLike, backend: str = "decord"):
        if backend not in VIDEO_BACKENDS:
            raise ValueError(f"video_backend must be one of {VIDEO_BACKENDS}, got {backend!r}")
        self.path = os.fspath(path)
        _check_video_file(self.path)
        self._reader = None
        self._frames: list | None = None
        self.decord_error: str | None = None
        if backend == "decord" and _decord is not None:
            quiet_native_video_logs()
            try:
                self._reader = _decord.VideoReader(self.path, num_threads=1)
                self._len = len(self._reader)
                self.backend = "decord"
                if self._len > 0:
                    return
                self.decord_error = "decord reports 0 frames"
            except Exception as err:  # decord raises RuntimeError / DECORDError on bad files
                self.decord_error = _short(err)
            self._reader = None
        self._open_pyav()

    def _open_pyav(self) -> None:
        try:
            self._frames = _pyav_frames(self.path)
        except DecodeError:
            raise
        except Exception as err:
            raise DecodeError(self._reason(f"PyAV: {_short(err)}")) from None
        if not self._frames:
            raise DecodeError(self._reason("PyAV decoded 0 frames"))
        self._len = len(self._frames)
        self.backend = "pyav"
        if self.decord_error:
            log.warning("decord failed on %s (%s); decoded it with PyAV instead", self.path, self.decord_error)

    def _reason(self, pyav_reason: str) -> str:
        decord_part = f"decord: {self.decord_error}; " if self.decord_error else ""
        return (f"cannot decode video {self.path} ({decord_part}{pyav_reason}); the file is corrupt or truncated: "
                "re-download it or drop it from the list")

    def __len__(self) -> int:
        return self._len

    def get(self, indices: Sequence[int]) -> np.ndarray:
        """The frames at 0-based ``indices`` (repeats decoded once): RGB uint8 ``[len(indices), H, W, 3]``.

        IndexError for an index out of range; DecodeError when neither decord nor PyAV can decode them.
        """
        indices = [int(i) for i in indices]
        bad = [i for i in indices if not 0 <= i < self._len]
        if bad:
            raise IndexError(f"frame indices {bad} out of range for {self.path} with {self._len} frames")
        if self._reader is not None:
            try:
                unique = sorted(set(indices))
                batch = self._reader.get_batch(unique).asnumpy()
                pos = {i: k for k, i in enumerate(unique)}
                return batch[[pos[i] for i in indices]]
            except Exception as err:
                self.decord_error = _short(err)
                self._reader = None
                self._open_pyav()
                return self.get(indices)
        frames = self._frames
        assert frames is not None  # opened with PyAV when there is no decord reader
        decoded = {i: frames[i].to_ndarray(format="rgb24") for i in set(indices)}
        return np.stack([decoded[i] for i in indices])


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}"


def open_video(path: str | os.PathLike, backend: str = "decord") -> VideoClip:
    """Open a video for random frame access with ``backend`` (``"decord"``, PyAV as the fallback,
    or ``"pyav"``). DecodeError when the file is missing, empty or cannot be decoded (the message
    gives each backend's reason); ValueError for an unknown ``backend``."""
    return VideoClip(path, backend)


def decode_video(path: str | os.PathLike, indices: Sequence[int], backend: str = "decord") -> np.ndarray:
    """The frames of a video at 0-based ``indices``: RGB uint8 ``[len(indices), H, W, 3]`` (see
    :func:`open_video` and :meth:`VideoClip.get` for the errors)."""
    return open_video(path, backend).get(indices)


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
        raise DecodeError(f"cannot open video {path} (PyAV: {_short(err)}); re-download it") from None
    with container:
        if not container.streams.video:
            raise DecodeError(f"{path} has no video stream")
        try:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
        except Exception as err:
            raise DecodeError(f"cannot decode video {path} (PyAV: {_short(err)}); the file is corrupt or "
                              "truncated: re-download it") from None
