"""The frame decoders (decord, PyAV, OpenCV) through tinlib's decoding functions, on a small video
the doctor writes itself: every frame, at the written size, RGB, close to the written pixels."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from tinlib.doctor.checks import FAIL, NOT_APPLICABLE, PASS, SKIPPED, Check, describe_error

FRAMES, HEIGHT, WIDTH = 12, 48, 64  # even sizes: yuv420p encoding needs them
# Mean |decoded - written| over all pixels, in 0..255 levels. The encoders' settings (high
# quality, smooth content) give about 1-3; swapped colour channels or frames give tens.
MAX_MEAN_ABS_DIFF = 10.0
CONTAINERS = ("mp4", "webm")


def doctor_frames() -> np.ndarray:
    """``[FRAMES, HEIGHT, WIDTH, 3]`` uint8 RGB: red grows to the right, green downwards, blue is
    constant, and a white square moves right by 4 px per frame (so frames differ)."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = np.empty((FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for t in range(FRAMES):
        frames[t, ..., 0] = 40 + 160 * xs // (WIDTH - 1)
        frames[t, ..., 1] = 30 + 120 * ys // (HEIGHT - 1)
        frames[t, ..., 2] = 90
        frames[t, 16:32, 4 * t:4 * t + 12] = 235
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


def _write_videos(folder: Path, frames: np.ndarray) -> tuple[dict[str, Path], list[str]]:
    """Encode ``frames`` once per container that PyAV can write; ({container: path}, notes)."""
    from tinlib.data.encoding import video_codec, write_video

    paths: dict[str, Path] = {}
    notes = []
    for container in CONTAINERS:
        try:
            codec = video_codec(container)
            path = folder / f"doctor.{container}"
            write_video(path, frames, codec)
            paths[f"{container}/{codec}"] = path
        except Exception as err:  # noqa: BLE001 -- a missing encoder leaves that container unchecked
            notes.append(f"{container} not written ({describe_error(err)})")
    return paths, notes


def _check_video_backend(backend: str, videos: dict[str, Path], notes: list[str], frames: np.ndarray) -> Check:
    from tinlib.data.decoding import open_video

    name = f"decode video [{backend}]"
    if not videos:
        return Check("decode", name, "cpu", NOT_APPLICABLE, SKIPPED, "; ".join(notes) or "no video written")
    parts, ok = [], True
    for label, path in videos.items():
        try:
            clip = open_video(path, backend)
            if clip.backend != backend:  # decord failed and tinlib fell back to PyAV
                ok = False
                parts.append(f"{label}: decord failed ({clip.decord_error})")
                continue
            good, text = _compare(clip.get(range(len(clip))), frames)
        except Exception as err:  # noqa: BLE001 -- whatever the decoder raises is the finding
            good, text = False, describe_error(err)
        ok &= good
        parts.append(f"{label}: {text}")
    return Check("decode", name, "cpu", NOT_APPLICABLE, PASS if ok else FAIL, "; ".join(parts + notes))


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


def check_decoders() -> list[Check]:
    """Three checks: "decode video [decord]", "decode video [pyav]" (an .mp4 and a .webm each)
    and "decode JPEG frames [opencv]", on frames written to a temporary folder."""
    from tinlib.data.decoding import have_decord

    frames = doctor_frames()
    with tempfile.TemporaryDirectory(prefix="tinlib-doctor-") as tmp:
        folder = Path(tmp)
        videos, notes = _write_videos(folder, frames)
        checks = []
        if have_decord():
            checks.append(_check_video_backend("decord", videos, notes, frames))
        else:
            checks.append(Check("decode", "decode video [decord]", "cpu", NOT_APPLICABLE, SKIPPED,
                                "decord is not installed (videos are decoded with PyAV instead)"))
        checks.append(_check_video_backend("pyav", videos, notes, frames))
        checks.append(_check_jpeg_frames(folder, frames))
    return checks
