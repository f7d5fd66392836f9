"""The video backends side by side: ``auto``'s choice, torchcodec beside decord and PyAV (in one
process, any import order), a missing FFmpeg, the fallbacks to PyAV and to CPU decoding, and
batched JPEG decoding with its CPU fallback."""
import inspect
import logging
import os
import subprocess
import sys
import typing

import numpy as np
import pytest
import torch

from tinlib.config import DataConfig
from tinlib.data import build_dataset, build_loader, decoding, video_readers, write_video_list
from tinlib.data.datasets import VideoDataset
from tinlib.data.decoding import DecodeError, imread_rgb, open_video
from tinlib.data.encoding import video_codec, write_video
from tinlib.data.gpu_decode import decode_frame_folder, decode_jpegs
from tinlib.doctor import decoders as doctor_decoders
from tinlib.doctor.checks import SKIPPED

# the text torchcodec 0.17 raises (torchcodec/_internally_replaced_utils.py) when no FFmpeg loads
TORCHCODEC_LOAD_ERROR = ("Could not load libtorchcodec. Likely causes:\n  1. FFmpeg is not properly installed in your "
                         "environment. We support\n versions 4, 5, 6, 7, 8, and 9 ...")


def needs_torchcodec():
    """Skip where torchcodec cannot decode; under CI=true fail instead, so that CI proves these ran."""
    if not decoding.have_torchcodec():
        reason = video_readers.torchcodec_status().detail
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the torchcodec tests: {reason}")
        pytest.skip(reason)


@pytest.fixture
def fresh_state(monkeypatch):
    """This process's torchcodec probe and once-per-process warnings, forgotten for one test."""
    monkeypatch.setattr(video_readers, "_torchcodec_status", None)
    monkeypatch.setattr(video_readers, "_warned", set())


def level(k):
    return (8 * k) % 256


def uniform_video(path, n, size=(32, 48)):
    """Frame ``k`` a uniform grey of ``level(k)`` (survives any codec)."""
    frames = np.stack([np.full((*size, 3), level(k), np.uint8) for k in range(n)])
    write_video(path, frames, video_codec("mp4" if str(path).endswith(".mp4") else "webm"))
    return path


def scene_video(path, n=10, size=(64, 96)):
    """Gradients and a moving square: content on which decoders' colour conversions can differ."""
    ys, xs = np.mgrid[0:size[0], 0:size[1]]
    frames = np.empty((n, *size, 3), np.uint8)
    for t in range(n):
        frames[t, ..., 0] = 40 + 160 * xs // (size[1] - 1)
        frames[t, ..., 1] = 30 + 120 * ys // (size[0] - 1)
        frames[t, ..., 2] = 90
        frames[t, 20:40, 5 * t:5 * t + 20] = 235
    write_video(path, frames, video_codec("mp4" if str(path).endswith(".mp4") else "webm"))
    return path


def test_the_backend_choices_and_their_defaults():
    assert decoding.VIDEO_BACKENDS == ("auto", "torchcodec", "decord", "pyav")
    # the config lists the choices itself (it imports nothing from data)
    assert typing.get_args(DataConfig.model_fields["video_backend"].annotation) == decoding.VIDEO_BACKENDS
    assert typing.get_args(DataConfig.model_fields["decode_device"].annotation) == decoding.DECODE_DEVICES
    assert DataConfig().video_backend == "auto" and DataConfig().decode_device == "cpu"
    for function in (VideoDataset.__init__, build_dataset, open_video):
        params = inspect.signature(function).parameters
        backend = params["video_backend"] if "video_backend" in params else params["backend"]
        assert backend.default == "auto", function


def test_auto_takes_the_first_available_in_the_measured_order(monkeypatch, fresh_state):
    usable = {"torchcodec": True, "decord": True}
    monkeypatch.setattr(video_readers, "have_torchcodec", lambda: usable["torchcodec"])
    monkeypatch.setattr(video_readers, "have_decord", lambda: usable["decord"])
    assert decoding.choose_backend("auto") == "torchcodec"
    usable["torchcodec"] = False
    assert decoding.choose_backend("auto") == "decord" and decoding.choose_backend("torchcodec") == "pyav"
    usable["decord"] = False
    assert decoding.choose_backend("auto") == "pyav" and decoding.choose_backend("decord") == "pyav"


@pytest.mark.parametrize("ext", ["mp4", "webm"])
def test_torchcodec_reads_the_frames_asked_for(tmp_path, ext):
    needs_torchcodec()
    clip = open_video(uniform_video(tmp_path / f"a.{ext}", 20), "torchcodec")
    assert clip.backend == "torchcodec" and len(clip) == 20 and clip.fallback_reason is None
    indices = [19, 3, 3, 0, 7]  # unsorted, with a repeat
    frames = clip.get(indices)
    assert frames.shape == (5, 32, 48, 3) and frames.dtype == np.uint8
    assert np.abs(frames[:, 10, 10, 0].astype(int) - [level(i) for i in indices]).max() <= 4
    with pytest.raises(IndexError, match="out of range"):
        clip.get([20])
    assert open_video(tmp_path / f"a.{ext}").backend == "torchcodec"  # auto


# Run in a fresh process: torchcodec's FFmpeg (the system's) loaded first, then decord's, then
# PyAV's, the reverse of what importing tinlib does (PyAV, decord; torchcodec on first use).
REVERSED_ORDER = """
import sys
import numpy as np
import torchcodec, decord  # noqa: F401
from tinlib.data.decoding import open_video
for path in sys.argv[1:]:
    frames = [open_video(path, backend).get(range(10)) for backend in ("torchcodec", "decord", "pyav")]
    np.save(path + ".npy", np.stack(frames))
"""


def test_all_three_decode_the_same_frames_in_one_process_in_either_order(tmp_path):
    """Each backend links its own FFmpeg build (here the system's 5.1, decord's 4.1, PyAV's 8.0),
    each converting YUV 4:2:0 to RGB with its own swscale version; the decoded pictures are the same
    (lossless decoding of the same stream), so frames may differ only by that conversion's rounding:
    a mean under 2 levels (identical here; a wrong frame, order or channel gives tens)."""
    needs_torchcodec()
    if not decoding.have_decord():
        pytest.skip("decord is not installed")
    paths = [scene_video(tmp_path / f"s.{ext}") for ext in ("mp4", "webm")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", REVERSED_ORDER, *map(str, paths)], check=True, env=env, timeout=120)
    for path in paths:
        in_process = np.stack([open_video(path, b).get(range(10)) for b in ("torchcodec", "decord", "pyav")])
        for frames in (in_process, np.load(f"{path}.npy")):
            assert frames.shape == (3, 10, 64, 96, 3), path
            for other in frames[1:]:
                assert np.abs(frames[0].astype(int) - other).mean() < 2, path


def test_a_torchcodec_failure_falls_back_to_pyav_with_a_warning(tmp_path, monkeypatch, caplog):
    needs_torchcodec()
    path = uniform_video(tmp_path / "a.mp4", 6)

    class Broken:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("simulated torchcodec failure")

    monkeypatch.setattr(video_readers, "TorchcodecReader", Broken)
    with caplog.at_level(logging.WARNING, logger="tinlib.data.decoding"):
        clip = open_video(path, "auto")
    assert clip.backend == "pyav" and clip.get([5]).shape == (1, 32, 48, 3)
    assert "torchcodec failed on" in caplog.text and "simulated torchcodec failure" in caplog.text


def test_a_failure_while_reading_frames_falls_back_to_pyav(tmp_path, monkeypatch):
    needs_torchcodec()
    path = uniform_video(tmp_path / "a.mp4", 6)
    clip = open_video(path, "torchcodec")

    def broken(indices):
        raise RuntimeError("simulated seek failure")

    monkeypatch.setattr(clip._reader, "get", broken)
    frames = clip.get([5, 0])
    assert clip.backend == "pyav" and "simulated seek failure" in clip.fallback_reason
    assert np.abs(frames[:, 0, 0, 0].astype(int) - [level(5), level(0)]).max() <= 4


def test_an_undecodable_video_names_each_backends_reason(tmp_path):
    needs_torchcodec()
    (tmp_path / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(DecodeError) as info:
        open_video(tmp_path / "garbage.mp4", "torchcodec")
    text = str(info.value)
    assert text.startswith(f"cannot decode video {tmp_path / 'garbage.mp4'} (torchcodec: RuntimeError: ")
    assert "; PyAV: " in text and text.endswith("re-download it or drop it from the list")
    assert "Could not open input file" in text and ".cpp:" not in text  # torchcodec's source location left out


def test_missing_ffmpeg_libraries_leave_decord_and_pyav(tmp_path, monkeypatch, fresh_state, caplog):
    """torchcodec imports without FFmpeg (0.17) or raises at import (older versions); either way
    have_torchcodec() says False with the reason, ``auto`` goes on with decord or PyAV, a config
    asking for torchcodec decodes with PyAV after one warning, and the doctor gives one line."""
    def missing():
        raise RuntimeError(TORCHCODEC_LOAD_ERROR)

    monkeypatch.setattr(video_readers, "load_torchcodec", missing)
    assert decoding.have_torchcodec() is False
    detail = video_readers.torchcodec_status().detail
    assert "Could not load libtorchcodec" in detail and "apt install ffmpeg" in detail and "\n" not in detail
    path = uniform_video(tmp_path / "a.webm", 6)
    assert open_video(path).backend == ("decord" if decoding.have_decord() else "pyav")
    with caplog.at_level(logging.WARNING, logger="tinlib.data"):
        clips = [open_video(path, "torchcodec") for _ in range(2)]
    assert [clip.backend for clip in clips] == ["pyav", "pyav"] and clips[0].get([5]).shape == (1, 32, 48, 3)
    assert [r.getMessage() for r in caplog.records if "not usable" in r.getMessage()] == [
        f"video_backend 'torchcodec' is not usable here ({detail}); decoding with PyAV"]
    (row,) = [c for c in doctor_decoders._unavailable_rows().values() if c.name == "decode video [torchcodec]"]
    assert row.result == SKIPPED and "FFmpeg's shared libraries are missing" in row.detail
    assert "`apt install ffmpeg`" in row.detail and "conda install -c conda-forge 'ffmpeg<10'" in row.detail
    assert "decord and PyAV" in row.detail


def test_torchcodec_without_ffmpeg_and_not_installed(monkeypatch, fresh_state):
    """The loader's own check (0.17 imports without FFmpeg, ``ffmpeg_major_version`` None), and a
    missing package."""
    needs_torchcodec()
    import torchcodec

    monkeypatch.setattr(torchcodec, "ffmpeg_major_version", None)
    monkeypatch.setattr(video_readers, "_torchcodec_status", None)  # probed by needs_torchcodec
    status = video_readers.torchcodec_status()
    assert status.installed and not status.loaded and "FFmpeg's shared libraries" in status.detail
    monkeypatch.setattr(video_readers, "_torchcodec_status", None)
    monkeypatch.setitem(sys.modules, "torchcodec", None)  # what `import torchcodec` sees when it is absent
    status = video_readers.torchcodec_status()
    assert (status.installed, status.loaded, status.detail) == (False, False, "torchcodec is not installed")
    assert "not installed" in doctor_decoders._unavailable_rows()["torchcodec"].detail


def test_decord_missing_is_one_doctor_line(monkeypatch):
    monkeypatch.setattr(video_readers, "_decord", None)
    row = doctor_decoders._unavailable_rows()["decord"]
    assert row.result == SKIPPED and "auto decodes with torchcodec or PyAV" in row.detail


def test_cuda_video_decoding_falls_back_to_the_cpu_once(tmp_path, monkeypatch, fresh_state, caplog):
    """Both reasons: torch sees no CUDA device, or it does but torchcodec's CUDA decoder fails (here:
    the machine has none, so torchcodec cannot get a device)."""
    needs_torchcodec()
    path = uniform_video(tmp_path / "a.mp4", 8)
    on_cpu = open_video(path, "torchcodec").get(range(8))
    for cuda_seen in (False, True):
        monkeypatch.setattr(video_readers, "_warned", set())
        monkeypatch.setattr(torch.cuda, "is_available", lambda seen=cuda_seen: seen)
        if cuda_seen and torch.cuda.device_count() > 0:
            continue  # a real GPU decodes: nothing falls back
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tinlib.data"):
            clips = [open_video(path, "torchcodec", device="cuda") for _ in range(2)]
        assert all(clip.backend == "torchcodec" for clip in clips)
        np.testing.assert_array_equal(clips[1].get(range(8)), on_cpu)
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1 and warnings[0].startswith("video decoding on cuda is not available (")
        assert ("torch sees no CUDA device" if not cuda_seen else "torchcodec could not decode on cuda") in warnings[0]


def test_cuda_decoding_spawns_the_loader_workers(tmp_path):
    uniform_video(tmp_path / "a.mp4", 8)
    write_video_list(tmp_path / "list.txt", [("a.mp4", 0)])
    for device, workers, context in (("cuda", 1, "spawn"), ("cuda", 0, None), ("cpu", 1, None)):
        ds = build_dataset(tmp_path / "list.txt", tmp_path, kind="videos", decode_device=device, scale_size=32,
                           input_size=32)
        loader = build_loader(ds, 1, num_workers=workers, shuffle=False)
        method = loader.multiprocessing_context.get_start_method() if loader.multiprocessing_context else None
        assert method == context, (device, workers)
    with pytest.raises(ValueError, match="decode_device must be one of"):
        build_dataset(tmp_path / "list.txt", tmp_path, kind="videos", decode_device="gpu")


@pytest.fixture
def jpegs(tmp_path):
    """Two 100x140 JPEG files (the doctor's gradients and square) and one 48x64."""
    import cv2

    paths = []
    for index, (height, width) in enumerate(((100, 140), (100, 140), (48, 64))):
        frame = doctor_decoders.doctor_frames(height, width)[index * 5]
        paths.append(tmp_path / f"img_{index:05}.jpg")
        cv2.imwrite(str(paths[-1]), frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    return paths


def test_decode_jpegs_on_the_cpu_matches_opencv(jpegs):
    """torchvision and OpenCV each bundle their own libjpeg(-turbo) build; their IDCT and chroma
    upsampling can round differently by a level or two, so pixels may differ by up to 2."""
    frames = decode_jpegs(jpegs[:2])
    assert isinstance(frames, torch.Tensor) and frames.shape == (2, 3, 100, 140) and frames.dtype == torch.uint8
    for frame, path in zip(frames, jpegs):
        assert np.abs(frame.permute(1, 2, 0).numpy().astype(int) - imread_rgb(path)).max() <= 2
    from_bytes = decode_jpegs([p.read_bytes() for p in jpegs[:2]])
    assert torch.equal(from_bytes, frames)
    mixed = decode_jpegs(jpegs)
    assert isinstance(mixed, list) and [tuple(f.shape) for f in mixed] == [(3, 100, 140)] * 2 + [(3, 48, 64)]


def test_decode_jpegs_on_cuda_falls_back_to_the_cpu_once(jpegs, monkeypatch, fresh_state, caplog):
    from torchvision.io import ImageReadMode, decode_image, read_file

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="tinlib.data"):
        runs = [decode_jpegs(jpegs[:2], device="cuda") for _ in range(2)]
    expected = torch.stack([decode_image(read_file(str(p)), mode=ImageReadMode.RGB) for p in jpegs[:2]])
    assert all(torch.equal(frames, expected) and frames.device.type == "cpu" for frames in runs)
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["JPEG decoding on cuda is not available (torch sees no CUDA device); decoding on the CPU "
                        "instead"]


def test_decode_jpegs_names_a_bad_file(jpegs, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg \xff\xd9")
    with pytest.raises(DecodeError, match=r"cannot decode image .*bad\.jpg \(\d+ bytes\): RuntimeError"):
        decode_jpegs([jpegs[0], bad])
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DecodeError, match=r"frame file is empty \(0 bytes\): .*empty\.jpg"):
        decode_jpegs([tmp_path / "empty.jpg"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (benchmarks/gpu_session.sh runs it)")
def test_gpu_decoders_agree_with_the_cpu(tmp_path, jpegs):
    """NVDEC and nvJPEG decode the same pictures; their colour conversion and IDCT round differently
    from FFmpeg's swscale and libjpeg-turbo, by a level or two on average."""
    needs_torchcodec()
    path = scene_video(tmp_path / "s.mp4")
    on_gpu, on_cpu = (open_video(path, "torchcodec", device=d).get(range(10)).astype(int) for d in ("cuda", "cpu"))
    assert on_gpu.shape == on_cpu.shape and np.abs(on_gpu - on_cpu).mean() < 3
    frames = decode_jpegs(jpegs[:2], device="cuda")
    assert frames.device.type == "cuda" and frames.shape == (2, 3, 100, 140)
    assert (frames.cpu().int() - decode_jpegs(jpegs[:2]).int()).abs().float().mean() < 2


def test_frame_folders_with_decode_device_cuda_fall_back_to_the_same_clips(tmp_path, monkeypatch, fresh_state,
                                                                           caplog):
    """data.decode_device=cuda on frame folders: nvJPEG there, torchvision's CPU decoder here (one
    warning); the clips equal the OpenCV path's within the 2 levels two libjpeg builds may differ by,
    and a repeated frame (3 frames, 8 segments) comes out as the same pixels."""
    import cv2

    from tinlib.data import write_rawframe_list

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name, count in (("v", 12), ("short", 3)):
        folder = tmp_path / "frames" / name
        folder.mkdir(parents=True)
        for k in range(count):
            frame = doctor_decoders.doctor_frames(48, 64)[k % 10]
            cv2.imwrite(str(folder / f"img_{k + 1:05}.jpg"), frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    write_rawframe_list(tmp_path / "list.txt", [("v", 12, 0), ("short", 3, 1)])

    def dataset(device):
        return build_dataset(tmp_path / "list.txt", tmp_path / "frames", decode_device=device, scale_size=48,
                             input_size=40, test_mode=True)

    with caplog.at_level(logging.WARNING, logger="tinlib.data"):
        for index in (0, 1):
            on_gpu_option, cpu = dataset("cuda")[index][0], dataset("cpu")[index][0]
            assert on_gpu_option.shape == cpu.shape == (8, 3, 40, 40) and on_gpu_option.dtype == torch.uint8
            assert (on_gpu_option.int() - cpu.int()).abs().max() <= 2
    assert torch.equal(on_gpu_option[0], on_gpu_option[1])  # the short folder's first frame, sampled twice
    assert [r.getMessage() for r in caplog.records if "JPEG" in r.getMessage()] == [
        "JPEG decoding on cuda is not available (torch sees no CUDA device); decoding on the CPU instead"]
    with pytest.raises(DecodeError, match="frame folder not found"):
        decode_frame_folder(tmp_path / "frames" / "gone", [0, 1], device="cuda")
    # a list that promises more frames than the folder holds: the same message as the OpenCV path
    with pytest.raises(DecodeError, match=r"frame file not found: .*img_00004\.jpg \(the folder holds 3 entries\)"):
        decode_frame_folder(tmp_path / "frames" / "short", [0, 3], device="cuda")
