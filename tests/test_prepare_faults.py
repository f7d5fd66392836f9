"""Fault test of frame extraction: ``kill -9`` in the middle of ``tinlib prepare extract``, then
the same command again. Every video finished before the kill is kept as it is (not extracted
again), the interrupted one is redone from scratch, and a half-written frame folder is never
taken for a finished one.

The command runs in a subprocess whose ``cv2.imwrite`` sleeps after every frame (patched from the
outside, by :data:`SLOW_CLI`), so that the kill lands while a video is half done; the test polls
for that state, with a timeout, instead of timing it.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinlib.data.encoding import video_codec, write_video
from tinlib.data.extract import DONE_MARKER, extract_frames

FRAMES = 12
VIDEOS = ("v1.mp4", "v2.mp4", "v3.mp4", "v4.mp4")
# `python -c SLOW_CLI ARGS` runs `tinlib ARGS` with a 0.15 s sleep after every JPEG written
SLOW_CLI = """import sys, time, cv2
imwrite = cv2.imwrite
def slow_imwrite(*args, **kwargs):
    written = imwrite(*args, **kwargs)
    time.sleep(0.15)
    return written
cv2.imwrite = slow_imwrite
from tinlib.cli import main
sys.exit(main(sys.argv[1:]))"""


def frame_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.jpg")) if folder.is_dir() else []


def snapshot(folder: Path) -> dict[str, int]:
    """mtime (ns) of every file in ``folder``, the marker included."""
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


@pytest.fixture
def videos(tmp_path):
    src = tmp_path / "videos"
    src.mkdir()
    codec = video_codec("mp4")
    for k, name in enumerate(VIDEOS):
        frames = np.stack([np.full((24, 40, 3), (20 * k + 9 * t) % 256, np.uint8) for t in range(FRAMES)])
        write_video(src / name, frames, codec)
    return src


def interrupted_extraction(src: Path, out: Path) -> tuple[list[str], str]:
    """Run ``tinlib prepare extract`` slowly and kill -9 it once some videos are finished and one is
    half written. Returns (finished folders, the half-written folder) as they were at the kill."""
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CLI, "prepare", "extract", "--videos", str(src), "--out",
                             str(out), "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            folders = [out / Path(v).stem for v in VIDEOS]
            done = [f.name for f in folders if (f / DONE_MARKER).is_file()]
            partial = [f.name for f in folders if not (f / DONE_MARKER).exists() and 0 < len(frame_files(f)) < FRAMES]
            if done and partial:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                return done, partial[0]
            time.sleep(0.02)
        pytest.fail("the extraction never reached a half-written video (finished or too slow to start)")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    raise AssertionError("unreachable")


def test_kill_during_extraction_then_rerun_keeps_finished_videos(videos, tmp_path):
    out = tmp_path / "frames"
    done, partial = interrupted_extraction(videos, out)
    assert 1 <= len(done) < len(VIDEOS)
    # what the kill left: the finished folders complete with their marker, the half-written one without
    for name in done:
        assert frame_files(out / name) == [f"img_{k:05}.jpg" for k in range(1, FRAMES + 1)]
    left = frame_files(out / partial)
    assert 0 < len(left) < FRAMES and not (out / partial / DONE_MARKER).exists()
    before = {name: snapshot(out / name) for name in done}
    for name in left:  # date the leftovers in the past, to tell them from frames written again
        os.utime(out / partial / name, ns=(10**18, 10**18))

    report = extract_frames(videos, out, workers=1, quiet=True)

    # every video is done, each with all its frames; the finished ones were kept (reused, files untouched)
    assert report.failed == {} and report.done == {v: FRAMES for v in VIDEOS}
    assert report.reused == len(done)
    for name in done:
        assert snapshot(out / name) == before[name]
    # the interrupted one was redone from scratch: all frames and a marker, none left from the killed run
    assert frame_files(out / partial) == [f"img_{k:05}.jpg" for k in range(1, FRAMES + 1)]
    assert (out / partial / DONE_MARKER).is_file()
    assert all(stamp > 10**18 for stamp in snapshot(out / partial).values())  # all written by the rerun
    # a third run has nothing left to do
    again = extract_frames(videos, out, workers=1, quiet=True)
    assert again.reused == len(VIDEOS) and again.done == report.done


def test_a_folder_without_its_marker_is_not_counted_as_done(videos, tmp_path):
    # the state a kill leaves when it lands after the last frame but before the marker is written
    out = tmp_path / "frames"
    extract_frames(videos, out, videos=["v1.mp4"], workers=1, quiet=True)
    (out / "v1" / DONE_MARKER).unlink()
    (out / "v1" / f"img_{FRAMES:05}.jpg").unlink()
    report = extract_frames(videos, out, videos=["v1.mp4"], workers=1, quiet=True)
    assert report.reused == 0 and report.done == {"v1.mp4": FRAMES}
    assert len(frame_files(out / "v1")) == FRAMES
