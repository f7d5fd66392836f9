"""The frame decoders (torchcodec, decord, PyAV, OpenCV) through tinlib's decoding functions, on videos the doctor
writes itself at the sizes the kit writes and reads: every frame, at the written size, RGB, close to
the written pixels."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from tinlib.doctor.checks import FAIL, NOT_APPLICABLE, PASS, SKIPPED, Check, describe_error

FRAMES, HEIGHT, WIDTH = 12, 48, 64  # even sizes: yuv420p encoding needs them
# (height, width) of the videos checked: the tests' smallest clips (decord cannot decode 32x48 and
# the loader falls back to PyAV), the demo configs' data (--height 40), and the synthetic presets'
# tiny (48), demo (100) and large k400 (256, 16:9) heights
SIZES = ((32, 48), (40, 56), (HEIGHT, WIDTH), (100, 140), (256, 456))
# Mean |decoded - written| over all pixels, in 0..255 levels. The encoders' settings (high
# quality, smooth content) give about 1-3; swapped colour channels or frames give tens.
MAX_MEAN_ABS_DIFF = 10.0
CONTAINERS = ("mp4", "webm")


def doctor_frames(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """``[FRAMES, height, width, 3]`` uint8 RGB: red grows to the right, green downwards, blue is
    constant, and a white square a third of the height high moves right across the frame (so
    frames differ)."""
    ys, xs = np.mgrid[0:height, 0:width]
    side = height // 3
    frames = np.empty((FRAMES, height, width, 3), dtype=np.uint8)
    for t in range(FRAMES):
        frames[t, ..., 0] = 40 + 160 * xs // (width - 1)
        frames[t, ..., 1] = 30 + 120 * ys // (height - 1)
        frames[t, ..., 2] = 90
        left = t * (width - side) // (FRAMES - 1)
        frames[t, side:2 * side, left:left + side] = 235
    return frames


def _compare(decoded: np.ndarray, written: np.ndarray) -> tuple[bool, str]:
    """(ok, description) for decoded ``[N, H, W, 3]`` frames against the written ones."""
    if decoded.shape != written.shape:
        return False, (f"{decoded.shape[0]} frames of {list(decoded.shape[1:])}, expected {written.shape[0]} "
                       f"of {list(written.shape[1:])}")
    diff = float(np.abs(decoded.astype(np.int16) - written.astype(np.int16)).mean())
    text = f"{decoded.shape[0]} frames of {list(decoded.shape[1:])}, mean |diff| {diff:.1f}"
    if not diff <= MAX_MEAN_ABS_DIFF:
        return False, f"{text} > {MAX_MEAN_ABS_DIFF:g} (wrong colours or frame order?)"
    return True, text


def _write_videos(folder: Path) -> tuple[dict[str, tuple[Path, np.ndarray]], list[str]]:
    """Encode :func:`doctor_frames` at each of :data:`SIZES` once per container that PyAV can
    write; ({"mp4/libx264 32x48": (path, frames)}, notes)."""
    from tinlib.data.encoding import video_codec, write_video

    videos: dict[str, tuple[Path, np.ndarray]] = {}
    notes = []
    for container in CONTAINERS:
        try:
            codec = video_codec(container)
            for height, width in SIZES:
                frames = doctor_frames(height, width)
                path = folder / f"doctor_{height}x{width}.{container}"
                write_video(path, frames, codec)
                videos[f"{container}/{codec} {height}x{width}"] = (path, frames)
        except Exception as err:  # noqa: BLE001 -- a missing encoder leaves that container unchecked
            notes.append(f"{container} not written ({describe_error(err)})")
    return videos, notes


def _check_video_backend(backend: str, videos: dict[str, tuple[Path, np.ndarray]], notes: list[str]) -> Check:
    """Decode every video with ``backend`` as the loader does: where it fails, PyAV takes over
    (named in the detail; the row fails only when the frames that come out are wrong or missing)."""
    from tinlib.data.decoding import open_video

    name = f"decode video [{backend}]"
    if not videos:
        return Check("decode", name, "cpu", NOT_APPLICABLE, SKIPPED, "; ".join(notes) or "no video written")
    diffs, fallbacks, failures = [], [], []
    decoding_log = logging.getLogger("tinlib.data.decoding")
    level = decoding_log.level
    decoding_log.setLevel(logging.ERROR)  # the fallback's warning is the detail of this row
    try:
        for label, (path, frames) in videos.items():
            try:
                clip = open_video(path, backend)
                good, text = _compare(clip.get(range(len(clip))), frames)
            except Exception as err:  # noqa: BLE001 -- whatever the decoder raises is the finding
                good, text = False, describe_error(err)
            if not good:
                failures.append(f"{label}: {text}")
            elif clip.backend != backend:
                fallbacks.append(f"{label} ({(clip.fallback_reason or '').split(': ')[0]})")
            diffs.append(float(text.rsplit(" ", 1)[-1]) if good else 0.0)
    finally:
        decoding_log.setLevel(level)
    sizes = ", ".join(f"{h}x{w}" for h, w in SIZES)
    parts = failures or [f"{len(videos)} videos ({', '.join(sorted({k.split()[0] for k in videos}))} at {sizes}): "
                         f"every frame, max mean |diff| {max(diffs):.1f}"]
    if fallbacks:
        parts.append(f"{backend} failed on " + ", ".join(fallbacks) + ": PyAV decoded them, as the loader falls back")
    return Check("decode", name, "cpu", NOT_APPLICABLE, FAIL if failures else PASS, "; ".join(parts + notes))


def _check_jpeg_frames(folder: Path, frames: np.ndarray) -> Check:
    import cv2

    from tinlib.data.decoding import decode_rawframes

    name = "decode JPEG frames [opencv]"
    frame_dir = folder / "frames"
    frame_dir.mkdir()
    for index, frame in enumerate(frames, start=1):
        if not cv2.imwrite(str(frame_dir / f"img_{index:05}.jpg"), frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95]):
            return Check("decode", name, "cpu", NOT_APPLICABLE, FAIL, "cv2.imwrite could not write a JPEG")
    ok, text = _compare(decode_rawframes(frame_dir, range(len(frames))), frames)
    return Check("decode", name, "cpu", NOT_APPLICABLE, PASS if ok else FAIL, f"jpg: {text}")


def _unavailable_rows() -> dict[str, Check]:
    """A skipped row for each of torchcodec and decord that cannot decode here, saying what to do."""
    from tinlib.data.video_readers import FFMPEG_INSTALL_HINT, have_decord, torchcodec_status

    rows = {}
    status = torchcodec_status()
    if not status.installed:
        rows["torchcodec"] = ("torchcodec is not installed (pip install 'tinlib[video]', at the version matching "
                              "torch's); auto decodes with decord or PyAV")
    elif not status.loaded:
        rows["torchcodec"] = (f"FFmpeg's shared libraries are missing, so torchcodec cannot decode: "
                              f"{FFMPEG_INSTALL_HINT}; decord and PyAV (their own FFmpeg) decode meanwhile")
    if not have_decord():
        rows["decord"] = "decord is not installed (no wheel for this platform): auto decodes with torchcodec or PyAV"
    return {name: Check("decode", f"decode video [{name}]", "cpu", NOT_APPLICABLE, SKIPPED, detail)
            for name, detail in rows.items()}


def check_decoders() -> list[Check]:
    """Four checks: "decode video [torchcodec]", "[decord]" and "[pyav]" (an .mp4 and a .webm at each
    of :data:`SIZES`; a backend that cannot run here is one skipped row saying why and what to do)
    and "decode JPEG frames [opencv]", on frames written to a temporary folder."""
    from tinlib.data.video_readers import AUTO_ORDER, torchcodec_status

    frames = doctor_frames()
    unavailable = _unavailable_rows()
    with tempfile.TemporaryDirectory(prefix="tinlib-doctor-") as tmp:
        folder = Path(tmp)
        videos, notes = _write_videos(folder)
        checks = []
        for backend in AUTO_ORDER:
            if backend in unavailable:
                checks.append(unavailable[backend])
                continue
            check = _check_video_backend(backend, videos, notes)
            if backend == "torchcodec":
                check.detail = f"torchcodec {torchcodec_status().detail}: {check.detail}"
            checks.append(check)
        checks.append(_check_jpeg_frames(folder, frames))
    return checks
