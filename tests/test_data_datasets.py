"""Datasets and loaders: shapes per view setting, which frames arrive in which order, the uint8 items
against the former float pipeline, persistent workers, bad samples."""
import logging
import pickle

import cv2
import numpy as np
import pytest
import torch

from tinlib.data import (
    AnnotationError,
    DataError,
    DecodeError,
    build_dataset,
    build_loader,
    decode_rawframes,
    normalize,
    sample_views,
    transforms,
    write_rawframe_list,
    write_video_list,
)
from tinlib.data.datasets import SkippedSample, skipped_samples_of
from tinlib.data.decoding import VIDEO_BACKENDS
from tinlib.data.encoding import video_codec, write_video


def level(k):
    return 5 * k  # < 256 for the 48-frame folders used here


def write_folder(folder, n, tmpl="img_{:05}.jpg", size=(40, 60)):
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(1, n + 1):
        cv2.imwrite(str(folder / tmpl.format(k)), np.full((*size, 3), level(k), np.uint8))


def frame_numbers(clip, start=0):
    """Invert ``level`` from the red channel of each frame (clip uint8 [M, 3, H, W])."""
    red = clip[:, 0].double().mean(dim=(1, 2))
    return [int(round(v / 5)) - start for v in red.tolist()]


@pytest.fixture
def rawframes(tmp_path):
    """Three frame folders (37, 48 and 3 frames) and a list; labels 0, 1, 2."""
    for name, n in (("a", 37), ("b", 48), ("c", 3)):
        write_folder(tmp_path / "frames" / name, n)
    write_rawframe_list(tmp_path / "list.txt", [("a", 37, 0), ("b", 48, 1), ("c", 3, 2)])
    return tmp_path


def make(root, **kw):
    kw.setdefault("scale_size", 48)
    kw.setdefault("input_size", 40)
    return build_dataset(root / "list.txt", root / "frames", **kw)


def test_test_mode_delivers_mmaction_frames_in_order(rawframes):
    ds = make(rawframes, test_mode=True, num_classes=3)
    clip, label = ds[0]
    assert clip.shape == (8, 3, 40, 40) and clip.dtype == torch.uint8 and clip.is_contiguous() and label == 0
    assert frame_numbers(clip) == [3, 7, 12, 17, 21, 26, 31, 35]  # 1-based file numbers (start_index 1)
    assert ds.labels == [0, 1, 2] and ds.num_classes == 3 and ds.skipped == 0 and len(ds) == 3


def test_short_video_repeats_frames_like_upstream_with_a_warning(rawframes, caplog):
    ds = make(rawframes, test_mode=True)
    # n = 3, test mode: int(i * 3/8 + 3/16) -> 0,0,0,1,1,2,2,2 (0-based) -> files 1,1,1,2,2,3,3,3
    with caplog.at_level(logging.WARNING, logger="tinlib.data.datasets"):
        assert frame_numbers(ds[2][0]) == [1, 1, 1, 2, 2, 3, 3, 3]
        ds[2]
    assert caplog.text.count("fewer than num_segments") == 1  # once per sample
    assert "list.txt:3 ('c') has 3 frames, fewer than num_segments=8: frames are repeated" in caplog.text
    train = make(rawframes)
    # train mode, n = 3 < 8 segments: starts round(i * 3/8) half-to-even = 0,0,1,1,2,2,2,3; 3 wraps to 0
    assert frame_numbers(train[2][0]) == [1, 1, 2, 2, 3, 3, 3, 1]


@pytest.mark.parametrize("opts, views, side", [
    (dict(test_crop="three"), 3, 48),
    (dict(test_crop="ten"), 10, 40),
    (dict(twice_sample=True), 2, 40),
    (dict(num_clips=2), 2, 40),
    (dict(num_clips=2, twice_sample=True, test_crop="three"), 12, 48),
])
def test_multi_view_shapes(rawframes, opts, views, side):
    ds = make(rawframes, test_mode=True, **opts)
    clip, _ = ds[1]
    assert ds.views == views and clip.shape == (views * 8, 3, side, side)


def test_views_keep_temporal_order_within_each_view(rawframes):
    ds = make(rawframes, test_mode=True, twice_sample=True, test_crop="ten")
    nums = np.array(frame_numbers(ds[1][0])).reshape(20, 8)  # crop-major: 10 crops x 2 temporal views
    assert nums[0].tolist() == [4, 10, 16, 22, 28, 34, 40, 46] and nums[1].tolist() == [1, 7, 13, 19, 25, 31, 37, 43]
    assert (nums[::2] == nums[0]).all() and (nums[1::2] == nums[1]).all()


def test_train_mode_random_frames_one_per_segment(rawframes):
    ds = make(rawframes, num_clips=3, twice_sample=True, test_crop="ten")  # test options ignored in training
    ds.seed = 0
    clip, label = ds[1]
    assert clip.shape == (8, 3, 40, 40) and label == 1
    nums = frame_numbers(clip)
    assert [(k - 1) // 6 for k in nums] == list(range(8))
    # reproducible for the same (seed, epoch, index), different across epochs
    ds.epoch = 0
    assert frame_numbers(ds[1][0]) == nums
    assert len({tuple(frame_numbers(ds[1][0])) for ds.epoch in range(6)}) > 1


def imagenet_normalized(frames_hwc):
    """The former float pipeline's last step (mmcv's imnormalize, written out): ``[M, H, W, 3]`` uint8
    -> float32 ``[M, 3, H, W]``, ``(x - mean) * (1 / std)`` per RGB channel."""
    x = frames_hwc.astype(np.float32)
    x -= np.asarray((123.675, 116.28, 103.53), np.float32)
    x *= (1.0 / np.asarray((58.395, 57.12, 57.375), np.float64)).astype(np.float32)
    return x.transpose(0, 3, 1, 2)


@pytest.mark.parametrize("test_crop", ["center", "three"])
def test_a_uint8_item_is_the_transform_output_and_normalises_as_before(tmp_path, test_crop):
    folder = tmp_path / "frames" / "noise"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(1, 11):  # different channels, rows and columns: a wrong transposition shows
        cv2.imwrite(str(folder / f"img_{k:05}.jpg"), rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    write_rawframe_list(tmp_path / "list.txt", [("noise", 10, 0)])
    ds = make(tmp_path, test_mode=True, test_crop=test_crop)
    clip, _ = ds[0]
    # the same video through the transforms by hand: decode the test-mode frames, then the crop
    decoded = decode_rawframes(folder, sample_views(10, 8, test_mode=True).reshape(-1))
    frames = transforms.test_transform(decoded, scale_size=48, input_size=40, test_crop=test_crop)
    assert clip.dtype == torch.uint8 and clip.is_contiguous()
    assert np.array_equal(clip.numpy(), frames.transpose(0, 3, 1, 2))  # 0 of the 1/255 allowed
    np.testing.assert_allclose(normalize(clip).numpy(), imagenet_normalized(frames), rtol=0, atol=1e-5)


def test_sthv1_template(tmp_path):
    write_folder(tmp_path / "frames" / "17", 12, tmpl="{:05}.jpg")
    write_rawframe_list(tmp_path / "list.txt", [("17", 12, 4)])
    ds = make(tmp_path, filename_tmpl="{:05}.jpg", test_mode=True)
    assert frame_numbers(ds[0][0]) == [1, 3, 4, 6, 7, 9, 10, 12]
    wrong = make(tmp_path, test_mode=True)  # default img_{:05}.jpg does not match
    expected = r"sample 0 \(.*list\.txt:1 \('17'\)\): frame file not found: .*img_00001\.jpg"
    with pytest.raises(DecodeError, match=expected):
        wrong[0]


def test_video_dataset(tmp_path):
    codec = video_codec("mp4")
    (tmp_path / "frames").mkdir()
    for name, n in (("a.mp4", 37), ("b.mp4", 5)):
        frames = np.stack([np.full((40, 60, 3), level(k + 1), np.uint8) for k in range(n)])
        write_video(tmp_path / "frames" / name, frames, codec)
    write_video_list(tmp_path / "list.txt", [("a.mp4", 0), ("b.mp4", 1)])
    for backend in VIDEO_BACKENDS:
        ds = make(tmp_path, kind="videos", test_mode=True, video_backend=backend)
        assert ds.start_index == 0
        clip, label = ds[0]
        assert clip.shape == (8, 3, 40, 40) and label == 0
        assert frame_numbers(clip) == [3, 7, 12, 17, 21, 26, 31, 35]  # 0-based index + 1 encoded in the video
        assert frame_numbers(ds[1][0]) == [1, 1, 2, 3, 3, 4, 5, 5]
    train = make(tmp_path, kind="videos")
    assert train[0][0].shape == (8, 3, 40, 40)


def test_bad_input_errors_name_file_and_sample(rawframes):
    # list claims more frames than the folder has
    write_rawframe_list(rawframes / "list.txt", [("a", 37, 0), ("b", 60, 1)])
    ds = make(rawframes, test_mode=True)
    with pytest.raises(DecodeError, match=r"sample 1 \(.*list\.txt:2 \('b'\)\): frame file not found: "
                                          r".*b/img_00049\.jpg \(the folder holds 48 entries\)"):
        ds[1]
    # missing folder
    write_rawframe_list(rawframes / "list.txt", [("a", 37, 0), ("gone", 9, 1)])
    with pytest.raises(DecodeError, match=r"sample 1 .*frame folder not found: .*gone"):
        make(rawframes)[1]
    # label outside num_classes, caught when the dataset is built
    with pytest.raises(AnnotationError, match=r"list\.txt:2: label 1 of 'gone' is outside \[0, 1\)"):
        make(rawframes, num_classes=1)
    with pytest.raises(DataError, match="data_prefix is not a folder"):
        build_dataset(rawframes / "list.txt", rawframes / "nope")


def test_skip_bad_samples_in_training_replaces_counts_and_logs(rawframes, caplog):
    for frame in (rawframes / "frames" / "b").iterdir():  # whichever frames training samples, they are broken
        frame.write_bytes(b"broken")
    write_rawframe_list(rawframes / "list.txt", [("a", 37, 0), ("b", 48, 1), ("missing", 10, 2), ("c", 3, 2)])
    strict = make(rawframes, test_mode=True)
    with pytest.raises(DecodeError, match=r"cannot decode image .*b/img_000\d\d.jpg.*, or skip such samples with "
                                          r"--set data.skip_bad_samples=true$"):
        strict[1]
    ds = make(rawframes, skip_bad_samples=True)
    with caplog.at_level(logging.WARNING, logger="tinlib.data.datasets"):
        clip, label = ds[1]  # b broken, "missing" missing -> c (3 frames: every frame of it is one of 1, 2, 3)
    assert label == 2 and set(frame_numbers(clip)) <= {1, 2, 3}
    assert ds.skipped == 2
    warnings = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(warnings) == 2
    assert warnings[0].startswith("skipping bad sample 1 (") and "list.txt:2 ('b')" in warnings[0]
    assert "cannot decode image" in warnings[0]
    assert "list.txt:3 ('missing')" in warnings[1] and "frame folder not found" in warnings[1]
    ds[1]  # met again (next epoch, say): counted again, listed once
    assert ds.skipped == 4
    listed = ds.skipped_samples()
    assert [(e["index"], e["line"], e["path"], e["times"]) for e in listed] == [(1, 2, "b", 2), (2, 3, "missing", 2)]
    assert "cannot decode image" in listed[0]["reason"] and "frame folder not found" in listed[1]["reason"]


def test_skip_bad_samples_in_test_mode_leaves_the_sample_out(rawframes):
    write_rawframe_list(rawframes / "list.txt", [("a", 37, 0), ("missing", 10, 1), ("c", 3, 2)])
    ds = make(rawframes, test_mode=True, skip_bad_samples=True)
    left_out = ds[1]
    assert isinstance(left_out, SkippedSample)  # not sample 2 in its place: that one would be scored twice
    assert (left_out.index, left_out.line, left_out.path) == (1, 2, "missing")
    assert "frame folder not found" in left_out.reason
    assert ds[2][1] == 2 and ds.skipped == 1
    assert [e["index"] for e in ds.skipped_samples()] == [1]


def test_loader_shapes_and_skips_counted_across_workers(rawframes):
    write_rawframe_list(rawframes / "list.txt", [("a", 37, 0), ("missing", 10, 1), ("b", 48, 1), ("c", 3, 2)])
    ds = make(rawframes, skip_bad_samples=True)
    loader = build_loader(ds, 2, num_workers=2, shuffle=True, seed=1)
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(2, 8, 3, 40, 40)] * 2  # [B, V*T, 3, H, W]
    assert batches[0][0].dtype == torch.uint8 and batches[0][1].dtype == torch.int64
    assert ds.skipped == 1  # the skip happened in a worker process
    assert [(e["index"], e["path"]) for e in ds.skipped_samples()] == [(1, "missing")]
    assert skipped_samples_of(torch.utils.data.Subset(ds, [0, 1])) == ds.skipped_samples()
    copy = pickle.loads(pickle.dumps(ds))  # a plain copy keeps the skips so far and counts its own
    copy[1]
    assert (copy.skipped, ds.skipped) == (2, 1)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_bad_sample_in_a_worker_is_the_same_one_line_error(rawframes, workers):
    write_rawframe_list(rawframes / "list.txt", [("a", 37, 0), ("missing", 10, 1)])
    loader = build_loader(make(rawframes, test_mode=True), 1, num_workers=workers, shuffle=False)
    with pytest.raises(DecodeError) as info:
        list(loader)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message and "DataLoader worker" not in message
    assert message.startswith("sample 1 (") and "list.txt:2 ('missing')" in message
    assert message.endswith("or skip such samples with --set data.skip_bad_samples=true")


def test_loader_reproducible_whatever_the_workers(rawframes):
    def run(workers, epochs=2):
        ds = make(rawframes)
        loader = build_loader(ds, 3, num_workers=workers, shuffle=True, seed=7)
        out = []
        for epoch in range(epochs):
            loader.set_epoch(epoch)
            out.append([(x.clone(), y.clone()) for x, y in loader])
        return out

    a, b = run(0), run(2)
    for ea, eb in zip(a, b):
        for (xa, ya), (xb, yb) in zip(ea, eb):
            assert torch.equal(ya, yb) and torch.equal(xa, xb)
    # a new epoch reshuffles and redraws
    assert not all(torch.equal(x0, x1) for (x0, _), (x1, _) in zip(a[0], a[1])) or \
        not all(torch.equal(y0, y1) for (_, y0), (_, y1) in zip(a[0], a[1]))


def test_persistent_workers_see_each_epoch(rawframes):
    """Two workers kept between passes still draw epoch e's augmentation for epoch e: the draws of
    the in-process loader (which sets the epoch on the very dataset it reads), every run alike."""
    def run(workers, **options):
        loader = build_loader(make(rawframes), 1, num_workers=workers, shuffle=False, seed=5, **options)
        epochs = []
        for epoch in range(2):
            loader.set_epoch(epoch)
            epochs.append(torch.cat([x for x, _ in loader]))
        return loader, epochs

    loader, (first, second) = run(2, persistent_workers=True, prefetch_factor=1)
    assert loader.persistent_workers and loader.prefetch_factor == 1
    assert first.dtype == torch.uint8 and not torch.equal(first, second)  # epoch 1 redraws
    _, (in_process_first, in_process_second) = run(0, persistent_workers=True)
    assert torch.equal(first, in_process_first) and torch.equal(second, in_process_second)
    _, again = run(2, persistent_workers=True)
    assert torch.equal(again[0], first) and torch.equal(again[1], second)


def test_worker_options_apply_only_with_workers(rawframes):
    loader = build_loader(make(rawframes), 1, num_workers=0, shuffle=False, persistent_workers=True,
                          prefetch_factor=4)
    assert loader.persistent_workers is False and loader.prefetch_factor is None


def test_a_copy_of_a_dataset_has_its_own_epoch(rawframes):
    ds = make(rawframes)
    ds.epoch = 3
    copy = pickle.loads(pickle.dumps(ds))
    copy.epoch = 4
    assert (ds.epoch, copy.epoch) == (3, 4)


def test_loader_iterating_again_moves_to_the_next_epoch(rawframes):
    ds = make(rawframes)
    loader = build_loader(ds, 3, num_workers=0, shuffle=False, seed=3)
    first, second = next(iter(loader))[0], next(iter(loader))[0]
    assert loader.epoch == 1 and not torch.equal(first, second)
    loader.set_epoch(0)
    assert torch.equal(next(iter(loader))[0], first)


def test_distributed_sampler(rawframes, tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        loader = build_loader(make(rawframes), 2, num_workers=0, shuffle=True, seed=0, distributed=True)
        assert type(loader.sampler).__name__ == "DistributedSampler"
        loader.set_epoch(3)
        assert sum(len(y) for _, y in loader) == 3 and loader.sampler.epoch == 3
    finally:
        dist.destroy_process_group()


def test_pin_memory_only_with_cuda(rawframes):
    loader = build_loader(make(rawframes), 1, num_workers=0, shuffle=False)
    assert loader.pin_memory == torch.cuda.is_available()
