"""Spatial transforms (MMAction2's Resize / MultiScaleCrop / CenterCrop / ThreeCrop): sizes, crop
candidates and offsets, crop orders, the uint8 [M, 3, H, W] tensor the datasets yield (normalisation:
test_data_normalization.py)."""
import numpy as np
import pytest
import torch

from tinlib.data import transforms as T


def clip(t=3, h=100, w=176, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("w, h, short, expected", [
    (176, 100, 256, (451, 256)),   # 176 * 2.56 = 450.56 -> int(451.06)
    (340, 256, 256, (340, 256)),
    (100, 176, 256, (256, 451)),   # portrait: the width is the short side
    (132, 100, 64, (84, 64)),      # 84.48 -> 84
    (150, 100, 64, (96, 64)),
])
def test_rescale_size_keeps_ratio_and_rounds_like_mmcv(w, h, short, expected):
    assert T.rescale_size(w, h, short) == expected


def test_resize_short_side_uses_opencv_bilinear():
    import cv2

    frames = clip()
    out = T.resize_short_side(frames, 256)
    assert out.shape == (3, 256, 451, 3) and out.dtype == np.uint8
    assert (out[1] == cv2.resize(frames[1], (451, 256), interpolation=cv2.INTER_LINEAR)).all()


def test_multi_scale_crop_candidates_and_fixed_offsets_at_zoo_size():
    rng = np.random.default_rng(0)
    sizes = [256, 224, 192, 168]  # int(256 * s), 224 exact for .875
    allowed = {(sizes[j], sizes[i]) for i in range(4) for j in range(4) if abs(i - j) <= 1}
    assert len(allowed) == 10
    seen_sizes, seen_offsets = set(), set()
    for _ in range(3000):
        x, y, w, h = T.multi_scale_crop_box(256, 341, 224, rng)
        assert (w, h) in allowed
        ws, hs = (341 - w) // 4, (256 - h) // 4
        assert (x, y) in {(0, 0), (4 * ws, 0), (0, 4 * hs), (4 * ws, 4 * hs), (2 * ws, 2 * hs)}
        seen_sizes.add((w, h))
        if ws and hs:
            seen_offsets.add((x // ws, y // hs))
    assert seen_sizes == allowed
    assert seen_offsets == {(0, 0), (4, 0), (0, 4), (4, 4), (2, 2)}


def test_multi_scale_crop_snaps_sides_within_3px_of_input_size():
    rng = np.random.default_rng(0)
    # base 64: sizes 64, 56, 48, 42; input 62 -> 64 stays (2 px away snaps to 62)
    sides = {T.multi_scale_crop_box(64, 100, 62, rng)[2] for _ in range(500)}
    assert sides == {62, 56, 48, 42}


def test_thirteen_fixed_crops_option():
    rng = np.random.default_rng(0)
    offsets = {T.multi_scale_crop_box(256, 256, 224, rng, scales=(0.5,), num_fixed_crops=13)[:2] for _ in range(2000)}
    step = (256 - 128) // 4
    assert offsets == {(a * step, b * step) for a, b in [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4),
                                                        (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]}


def test_train_transform_same_crop_for_every_frame_and_no_flip_by_default():
    # frames that differ only by a constant: the crop of each must be the crop of the first + k
    base = clip(1, 100, 150)[0].astype(np.int16) // 2
    frames = np.stack([base + 10 * k for k in range(4)]).astype(np.uint8)
    rng = np.random.default_rng(3)
    for _ in range(10):
        out = T.train_transform(frames, rng, scale_size=64, input_size=56).astype(np.int16)
        assert out.shape == (4, 56, 56, 3)
        for k in range(1, 4):
            assert np.abs(out[k] - out[0] - 10 * k).max() <= 2  # rounding of two bilinear resizes


def test_flip_is_whole_clip_and_about_half_the_time():
    frames = clip(2, 64, 64)
    rng = np.random.default_rng(0)
    flips = 0
    for _ in range(200):
        out = T.train_transform(frames, rng, scale_size=64, input_size=64, flip=True, multi_scale_crop=False)
        is_flip = (out == frames[:, :, ::-1]).all()
        assert is_flip or (out == frames).all()
        flips += is_flip
    assert 60 < flips < 140


def test_random_crop_without_multi_scale_crop():
    out = T.train_transform(clip(2, 100, 150), np.random.default_rng(0), scale_size=64, input_size=56,
                            multi_scale_crop=False)
    assert out.shape == (2, 56, 56, 3)


def test_center_crop_offsets():
    assert T.center_crop_box(256, 451, 224) == ((451 - 224) // 2, 16, 224, 224)
    frames = clip()
    out = T.test_transform(frames, scale_size=256, input_size=224, test_crop="center")
    resized = T.resize_short_side(frames, 256)
    assert (out == resized[:, 16:240, 113:337]).all()


def test_three_crop_order_and_constraint():
    assert T.three_crop_boxes(256, 451, 256) == [(0, 0, 256, 256), (194, 0, 256, 256), (97, 0, 256, 256)]
    assert T.three_crop_boxes(451, 256, 256) == [(0, 0, 256, 256), (0, 194, 256, 256), (0, 97, 256, 256)]
    with pytest.raises(ValueError, match="ThreeCrop"):
        T.three_crop_boxes(256, 451, 224)
    frames = clip(2)
    out = T.test_transform(frames, scale_size=64, input_size=56, test_crop="three")
    r = T.resize_short_side(frames, 64)  # 64 x 113
    step = (113 - 64) // 2
    assert out.shape == (6, 64, 64, 3)
    assert (out[0:2] == r[:, :, 0:64]).all() and (out[2:4] == r[:, :, 2 * step:2 * step + 64]).all()
    assert (out[4:6] == r[:, :, step:step + 64]).all()


def test_ten_crop_positions_each_followed_by_its_flip():
    frames = clip(2)
    out = T.test_transform(frames, scale_size=64, input_size=56, test_crop="ten")
    r = T.resize_short_side(frames, 64)
    assert out.shape == (20, 56, 56, 3)
    for k, (x, y, w, h) in enumerate(T.ten_crop_boxes(64, r.shape[2], 56)):
        c = r[:, y:y + h, x:x + w]
        assert (out[4 * k:4 * k + 2] == c).all()
        assert (out[4 * k + 2:4 * k + 4] == c[:, :, ::-1]).all()
    assert T.ten_crop_boxes(64, 113, 56)[1] == (4 * ((113 - 56) // 4), 0, 56, 56)


def test_crop_larger_than_image_is_an_error():
    with pytest.raises(ValueError, match="scale_size"):
        T.test_transform(clip(1, 40, 60), scale_size=48, input_size=56)


def test_chw_tensor_moves_the_channels_first_and_keeps_the_values():
    frames = clip(t=2, h=4, w=5)
    x = T.chw_tensor(frames)
    assert x.shape == (2, 3, 4, 5) and x.dtype == torch.uint8 and x.is_contiguous()
    for m, c, y, col in ((0, 0, 0, 0), (1, 2, 3, 4), (0, 1, 2, 3), (1, 0, 3, 1)):
        assert x[m, c, y, col].item() == frames[m, y, col, c]
    assert not np.shares_memory(x.numpy(), frames)  # a copy in CHW order, not a strided view
    with pytest.raises(ValueError, match=r"expected a clip \[T, H, W, 3\]"):
        T.chw_tensor(frames[..., :2])
