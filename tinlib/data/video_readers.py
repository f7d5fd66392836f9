"""One small reader per video backend (torchcodec, decord, PyAV): ``len(reader)`` frames and
``reader.get(unique_sorted_indices)`` -> RGB uint8 ``[N, H, W, 3]`` numpy. Which backends this
process can use, and why not; :mod:`tinlib.data.decoding` chooses one and falls back to PyAV.

The three bundle or load different FFmpeg builds: torchcodec the system's (libavcodec.so.N, loaded
on first use), decord and PyAV their own copies. Decoding works with all three in one process in any
order (tests/test_video_backends.py); only PyAV's encoders need PyAV imported before decord.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

# Fastest first, as measured with one thread (results/benchmarks.md, "Video decoding":
# benchmarks/bench_decode.py): torchcodec, then decord, then PyAV. ``auto`` takes the first available.
AUTO_ORDER = ("torchcodec", "decord", "pyav")
# FFmpeg majors torchcodec 0.17 loads (its wheel ships libtorchcodec_core4..9; its loader tries 9 down to 4)
TORCHCODEC_FFMPEG_MAJORS = (4, 9)
FFMPEG_INSTALL_HINT = ("install FFmpeg's shared libraries: `apt install ffmpeg` (Debian/Ubuntu) or "
                       f"`conda install -c conda-forge 'ffmpeg<{TORCHCODEC_FFMPEG_MAJORS[1] + 1}'`")

try:  # PyAV first: loading decord's bundled FFmpeg before PyAV breaks PyAV's libvpx/libx264 encoders
    import av  # noqa: F401
except ImportError:  # pragma: no cover
    pass
try:  # decord has no wheels for some platforms; torchcodec or PyAV decode there
    import decord as _decord
except ImportError:  # pragma: no cover - depends on the platform
    _decord = None


# the C++ source location torchcodec and torchvision put before their messages ("Op, /src/x.cpp:41, ")
_SOURCE_PREFIX = re.compile(r"^\w+, \S+\.(?:cpp|cu|h):\d+, ")


def short_error(err: BaseException) -> str:
    """``"TypeName: message"`` on one line, at most 200 characters of the message."""
    text = _SOURCE_PREFIX.sub("", " ".join(str(err).split()))
    return f"{type(err).__name__}: {text[:200]}"


def have_decord() -> bool:
    """True when the decord video reader could be imported."""
    return _decord is not None


@dataclass(frozen=True)
class TorchcodecStatus:
    """Whether torchcodec can decode in this process: ``installed`` (importable at all), ``loaded``
    (FFmpeg's libraries loaded too), ``detail`` its version and FFmpeg's major, or the reason."""

    installed: bool
    loaded: bool
    detail: str


_torchcodec_status: TorchcodecStatus | None = None  # None: not probed yet in this process


def load_torchcodec() -> Any:
    """The ``torchcodec`` module with FFmpeg's shared libraries loaded. ImportError when torchcodec
    is not installed; RuntimeError/OSError when FFmpeg's libraries cannot be loaded (older versions
    raise at import, 0.17 imports without them and leaves ``ffmpeg_major_version`` None)."""
    import torchcodec

    if getattr(torchcodec, "ffmpeg_major_version", 0) is None:
        raise RuntimeError("Could not load libtorchcodec: FFmpeg's shared libraries (libavcodec, majors "
                           f"{TORCHCODEC_FFMPEG_MAJORS[0]}-{TORCHCODEC_FFMPEG_MAJORS[1]}) were not found")
    return torchcodec


def torchcodec_status() -> TorchcodecStatus:
    """Probe torchcodec once per process (imported here, not at tinlib's import) and remember why
    it cannot be used; never raises."""
    global _torchcodec_status
    if _torchcodec_status is None:
        try:
            tc = load_torchcodec()
            detail = f"{getattr(tc, '__version__', 'unknown')} with FFmpeg {tc.ffmpeg_major_version}"
            _torchcodec_status = TorchcodecStatus(True, True, detail)
        except Exception as err:  # noqa: BLE001 -- ImportError, or RuntimeError/OSError from the native libraries
            if isinstance(err, ModuleNotFoundError) and err.name == "torchcodec":
                _torchcodec_status = TorchcodecStatus(False, False, "torchcodec is not installed")
            else:
                _torchcodec_status = TorchcodecStatus(True, False, "torchcodec cannot load FFmpeg's shared libraries "
                                                      f"({short_error(err)}); {FFMPEG_INSTALL_HINT}")
    return _torchcodec_status


def have_torchcodec() -> bool:
    """True when torchcodec and the FFmpeg libraries it needs load in this process."""
    return torchcodec_status().loaded


def available_backends() -> tuple[str, ...]:
    """The backends of :data:`AUTO_ORDER` this process can use, fastest first (PyAV always)."""
    usable = {"torchcodec": have_torchcodec(), "decord": have_decord(), "pyav": True}
    return tuple(name for name in AUTO_ORDER if usable[name])


_warned: set[str] = set()


def warn_once(key: str, message: str, *args: Any) -> None:
    """``log.warning(message, *args)`` the first time ``key`` is seen in this process."""
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


def cuda_unavailable_reason() -> str | None:
    """Why CUDA decoding cannot run here (None when torch sees a CUDA device)."""
    import torch

    return None if torch.cuda.is_available() else "torch sees no CUDA device"


class TorchcodecReader:
    """``torchcodec.decoders.VideoDecoder`` with exact seeking and one FFmpeg thread, on the CPU or
    on a CUDA device (NVDEC), frames copied back to the CPU. Exact: the frame count comes from a scan
    of the file. The approximate mode (duration x fps from the header) was off by one frame on
    several VP9 webm files here, which shifts training's sampling or asks for a frame past the end,
    and saved about 6 % per clip in the recorded run (results/benchmarks.md, "Video decoding")."""

    def __init__(self, path: str, device: str = "cpu"):
        load_torchcodec()
        from torchcodec.decoders import VideoDecoder

        self._decoder = VideoDecoder(path, seek_mode="exact", num_ffmpeg_threads=1, dimension_order="NHWC",
                                     device=device)
        self._len = len(self._decoder)

    def __len__(self) -> int:
        return self._len

    def get(self, indices: list[int]) -> np.ndarray:
        return self._decoder.get_frames_at(indices).data.cpu().numpy()


def open_torchcodec(path: str, device: str = "cpu") -> TorchcodecReader:
    """A :class:`TorchcodecReader` on ``device``; for "cuda", the CPU when CUDA or torchcodec's CUDA
    decoder is not available here (one warning per process naming why)."""
    if device != "cpu":
        reason = cuda_unavailable_reason()
        if reason is None:
            try:
                return TorchcodecReader(path, device)
            except Exception as err:  # noqa: BLE001 -- no NVDEC, a CPU-only build, an unsupported codec...
                reason = f"torchcodec could not decode on {device}: {short_error(err)}"
        warn_once("video-cuda", "video decoding on %s is not available (%s); decoding on the CPU instead",
                  device, reason)
    return TorchcodecReader(path, "cpu")


class DecordReader:
    """``decord.VideoReader`` with one thread."""

    def __init__(self, path: str):
        if _decord is None:
            raise ImportError("decord is not installed")
        quiet_native_video_logs()
        self._reader = _decord.VideoReader(path, num_threads=1)
        self._len = len(self._reader)

    def __len__(self) -> int:
        return self._len

    def get(self, indices: list[int]) -> np.ndarray:
        return self._reader.get_batch(indices).asnumpy()


class PyAVReader:
    """Every frame of the first video stream, decoded sequentially with one thread once at opening
    (no seeking: slower, but it reads what the seeking readers cannot); converted to RGB on ``get``."""

    def __init__(self, path: str):
        import av

        with av.open(path) as container:
            if not container.streams.video:
                raise ValueError("the file has no video stream")
            container.streams.video[0].thread_count = 1  # as the other readers (0: FFmpeg picks)
            self._frames = list(container.decode(video=0))

    def __len__(self) -> int:
        return len(self._frames)

    def get(self, indices: list[int]) -> np.ndarray:
        return np.stack([self._frames[i].to_ndarray(format="rgb24") for i in indices])


class VideoReader(Protocol):
    """What :class:`tinlib.data.decoding.VideoClip` needs of a backend's reader."""

    def __len__(self) -> int: ...

    def get(self, indices: list[int]) -> np.ndarray: ...


def open_reader(backend: str, path: str, device: str = "cpu") -> VideoReader:
    """The reader of ``backend`` ("torchcodec", "decord" or "pyav") on ``path``; ``device`` is
    torchcodec's (the others decode on the CPU). Raises whatever the backend raises."""
    if backend == "torchcodec":
        return open_torchcodec(path, device)
    if backend == "decord":
        return DecordReader(path)
    return PyAVReader(path)


_native_logs_quiet: bool | None = None  # None: not set yet in this process


def quiet_native_video_logs() -> bool:
    """Silence decord's bundled FFmpeg once per process; True when its level was lowered.

    A file decord cannot read otherwise prints FFmpeg's own notes (``moov atom not found``) on
    stderr before the one line of ``DecodeError``. The level is process-wide, so it is set once,
    not around each decode. At debug level (``--debug``) FFmpeg keeps its notes for diagnosis.
    PyAV and torchcodec need nothing (their FFmpeg logging is off by default). Not silenced:
    decord's own C++ line for a file it cannot open (``video_reader.cc:83: ERROR opening: PATH,
    ...``), written straight to stderr with no level to set.
    """
    global _native_logs_quiet
    if _native_logs_quiet is None:
        _native_logs_quiet = _decord is not None and not log.isEnabledFor(logging.DEBUG)
        if _native_logs_quiet:
            _decord.logging.set_level(_decord.logging.QUIET)
    return _native_logs_quiet
