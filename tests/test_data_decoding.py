"""Decoding: JPEG frame folders (OpenCV, RGB), videos with each backend and the PyAV fallback, bad files."""
import logging

import cv2
import numpy as np
import pytest

from tinlib.data import decoding, video_readers
from tinlib.data.decoding import DecodeError, decode_rawframes, imread_rgb, iter_video_frames, open_video
from tinlib.data.encoding import video_codec, write_video
from tinlib.doctor.decoders import SIZES as DOCTOR_SIZES


def level(k):
    """Uniform frame colour encoding frame number k (survives JPEG and video coding)."""
    return (8 * k) % 256


def write_folder(folder, n, tmpl="img_{:05}.jpg", start=1, size=(24, 32)):
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(start, start + n):
        img = np.full((*size, 3), level(k), np.uint8)
        img[..., 0] = 200  # OpenCV writes BGR: a constant blue channel
        cv2.imwrite(str(folder / tmpl.format(k)), img)
    return folder


def uniform_video(path, n, codec=None, size=(32, 48)):
    codec = codec or video_codec("mp4" if str(path).endswith(".mp4") else "webm")
    frames = np.stack([np.full((*size, 3), level(k), np.uint8) for k in range(n)])
    write_video(path, frames, codec)
    return path


def test_imread_rgb_returns_rgb(tmp_path):
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR
    cv2.imwrite(str(tmp_path / "r.png"), bgr)
    rgb = imread_rgb(tmp_path / "r.png")
    assert rgb.shape == (8, 8, 3) and rgb[0, 0].tolist() == [255, 0, 0]


def test_rawframes_template_start_index_and_repeats(tmp_path):
    d = write_folder(tmp_path / "v", 10, tmpl="{:05}.jpg")
    frames = decode_rawframes(d, [0, 0, 4, 9], "{:05}.jpg", start_index=1)
    assert frames.shape == (4, 24, 32, 3)
    assert np.abs(frames[:, 0, 0, 0].astype(int) - [level(1), level(1), level(5), level(10)]).max() <= 2
    assert (np.abs(frames[..., 2].astype(int) - 200) <= 2).all()  # blue is the last channel: RGB order
    d0 = write_folder(tmp_path / "z", 3, start=0)
    assert abs(int(decode_rawframes(d0, [0], start_index=0)[0, 0, 0, 0]) - level(0)) <= 2


def test_missing_folder_and_file_messages(tmp_path):
    with pytest.raises(DecodeError, match=r"frame folder not found: .*nothere; extract the frames"):
        decode_rawframes(tmp_path / "nothere", [0])
    d = write_folder(tmp_path / "v", 5)
    with pytest.raises(DecodeError, match=r"frame file not found: .*img_00007\.jpg \(the folder holds 5 entries\)"):
        decode_rawframes(d, [0, 6])
    with pytest.raises(DecodeError, match=r"^frame file not found: .*img_00009\.jpg$"):
        imread_rgb(d / "img_00009.jpg")


def test_frames_are_read_without_a_stat_each(tmp_path, monkeypatch):
    d = write_folder(tmp_path / "v", 4)
    calls = []
    for name in ("exists", "isfile", "getsize"):
        monkeypatch.setattr(decoding.os.path, name, lambda *a, name=name: calls.append(name))
    assert decode_rawframes(d, [0, 1, 2, 3]).shape == (4, 24, 32, 3)
    assert calls == []


def test_unreadable_and_empty_jpg(tmp_path):
    d = write_folder(tmp_path / "v", 3)
    (d / "img_00002.jpg").write_bytes(b"this is not a jpeg" * 10)
    with pytest.raises(DecodeError, match=r"cannot decode image .*img_00002\.jpg \(180 bytes\)"):
        decode_rawframes(d, [0, 1])
    (d / "img_00003.jpg").write_bytes(b"")
    with pytest.raises(DecodeError, match=r"frame file is empty \(0 bytes\): .*img_00003\.jpg"):
        decode_rawframes(d, [2])



def test_a_truncated_jpeg_is_refused_and_padding_after_its_end_is_not(tmp_path):
    """A JPEG ends with the end-of-image marker FF D9 (JPEG, ITU-T T.81 B.2.1); bytes cut off the end
    take it away. Zero or white-space padding after it is left by some encoders and still decodes."""
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    whole = cv2.imencode(".jpg", frame)[1].tobytes()
    assert whole[-2:] == b"\xff\xd9"
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DecodeError) as info:
        imread_rgb(cut)
    assert str(info.value) == (f"cannot decode image {cut} ({len(whole) // 2} bytes): the file is truncated (no JPEG "
                               "end-of-image marker): re-extract the frames of this video")
    for name, padding in (("zeros.jpg", b"\x00" * 300), ("newline.jpg", b"\r\n  \n")):
        (tmp_path / name).write_bytes(whole + padding)
        assert imread_rgb(tmp_path / name).shape == (240, 320, 3)
    png = tmp_path / "frame.png"
    cv2.imwrite(str(png), frame)  # no JPEG markers: not judged by them
    assert imread_rgb(png).shape == (240, 320, 3)


@pytest.mark.parametrize("size", DOCTOR_SIZES)
def test_the_kits_clips_decode_at_the_sizes_it_writes_with_each_backend(tmp_path, size):
    """Clips written as the kit writes them (its mp4 codec and mpeg4), decoded as the loader does:
    with each backend, PyAV where it cannot (decord fails on the 32x48 clips)."""
    height, width = size
    frames = np.stack([np.full((height, width, 3), level(k), np.uint8) for k in range(6)])
    for codec in sorted({video_codec("mp4"), "mpeg4"}):
        path = tmp_path / f"{codec}.mp4"
        write_video(path, frames, codec)
        for backend in decoding.VIDEO_BACKENDS:
            clip = open_video(path, backend)
            assert clip.backend in decoding.VIDEO_BACKENDS and len(clip) == len(frames), (codec, backend)
            decoded = clip.get(range(len(clip)))
            assert decoded.shape == frames.shape, (codec, backend, clip.fallback_reason)
            assert np.abs(decoded.astype(int) - frames).mean() < 4, (codec, backend)


@pytest.mark.parametrize("ext", ["mp4", "webm"])
def test_video_decord_and_pyav_agree(tmp_path, ext):
    path = uniform_video(tmp_path / f"a.{ext}", 20)
    dec = open_video(path, "decord")
    av_ = open_video(path, "pyav")
    assert dec.backend == ("decord" if decoding.have_decord() else "pyav") and av_.backend == "pyav"
    assert len(dec) == len(av_) == 20
    idx = [0, 3, 3, 19, 7]
    a, b = dec.get(idx), av_.get(idx)
    assert a.shape == b.shape == (5, 32, 48, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 3
    assert np.abs(a[:, 10, 10, 0].astype(int) - [level(i) for i in idx]).max() <= 4
    frames = list(iter_video_frames(path))
    assert len(frames) == 20 and np.abs(frames[19].astype(int) - b[3]).max() <= 3
    with pytest.raises(IndexError, match="out of range"):
        dec.get([20])


def test_pyav_fallback_when_decord_missing(tmp_path, monkeypatch):
    path = uniform_video(tmp_path / "a.mp4", 6)
    monkeypatch.setattr(video_readers, "_decord", None)
    clip = open_video(path, "decord")
    assert clip.backend == "pyav" and len(clip) == 6


@pytest.mark.skipif(not decoding.have_decord(), reason="decord not installed")
def test_pyav_fallback_when_decord_fails_on_a_file(tmp_path, monkeypatch, caplog):
    path = uniform_video(tmp_path / "a.mp4", 6)

    def broken(*args, **kwargs):
        raise RuntimeError("simulated decord failure")

    monkeypatch.setattr(video_readers._decord, "VideoReader", broken)
    with caplog.at_level(logging.WARNING, logger="tinlib.data.decoding"):
        clip = open_video(path, "decord")
    assert clip.backend == "pyav" and clip.get([5]).shape == (1, 32, 48, 3)
    assert "decord failed on" in caplog.text and "simulated decord failure" in caplog.text


def test_bad_videos_name_the_file(tmp_path):
    good = uniform_video(tmp_path / "good.mp4", 30).read_bytes()
    (tmp_path / "zero.mp4").write_bytes(b"")
    with pytest.raises(DecodeError, match=r"video file is empty \(0 bytes\): .*zero\.mp4"):
        open_video(tmp_path / "zero.mp4")
    with pytest.raises(DecodeError, match=r"video file not found: .*missing\.mp4"):
        open_video(tmp_path / "missing.mp4")
    (tmp_path / "trunc.mp4").write_bytes(good[: len(good) // 2])
    with pytest.raises(DecodeError, match=r"cannot decode video .*trunc\.mp4 \(.*PyAV: .*corrupt or truncated"):
        open_video(tmp_path / "trunc.mp4")
    (tmp_path / "garbage.webm").write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(DecodeError, match=r"cannot decode video .*garbage\.webm"):
        open_video(tmp_path / "garbage.webm", "pyav")
    with pytest.raises(DecodeError, match=r"cannot open video .*garbage\.webm"):
        list(iter_video_frames(tmp_path / "garbage.webm"))


DECODE_GARBAGE = """
import logging, sys
if sys.argv[2] == "debug":
    logging.getLogger("tinlib").setLevel(logging.DEBUG)
from tinlib.data.decoding import DecodeError, open_video
try:
    open_video(sys.argv[1], "decord")
except DecodeError as err:
    print("ours:", err, file=sys.stderr)
"""


@pytest.mark.skipif(not decoding.have_decord(), reason="decord not installed")
def test_ffmpeg_notes_are_silenced_unless_debugging(tmp_path):
    """An undecodable file: without debug logging the only stderr line besides ours is decord's own
    "ERROR opening" (it has no level to set); FFmpeg's notes (e.g. "moov atom not found") are gone.
    With the tinlib logger at debug level FFmpeg keeps its notes."""
    import os
    import subprocess
    import sys

    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())

    def foreign_lines(mode):
        proc = subprocess.run([sys.executable, "-c", DECODE_GARBAGE, str(path), mode], capture_output=True,
                              text=True, timeout=120, env={**os.environ, "TINLIB_DEBUG": ""})
        lines = proc.stderr.splitlines()
        assert sum(line.startswith("ours: cannot decode video") for line in lines) == 1, proc.stderr
        return [line for line in lines if not line.startswith("ours:")]

    quiet = foreign_lines("quiet")
    assert len(quiet) <= 1 and all("ERROR opening" in line for line in quiet), quiet
    assert [line for line in foreign_lines("debug") if "ERROR opening" not in line], "FFmpeg's notes in debug mode"


def test_tinlib_data_exports_its_public_names():
    import tinlib.data
    from tinlib.data import normalization

    for name in tinlib.data.__all__:
        assert getattr(tinlib.data, name) is not None, name
    # the normalisation step beside the constants it uses
    assert {"normalize", "MEAN", "STD"} <= set(tinlib.data.__all__)
    assert tinlib.data.normalize is normalization.normalize and tinlib.data.MEAN == normalization.MEAN
