"""tinlib.data.normalize: the uint8 clips of the loaders -> float32 model input on their device,
``(x - mean) / std`` per RGB channel with MMAction2's ImageNet statistics."""
import numpy as np
import pytest
import torch

from tinlib.data import normalize

# MMAction2's img_norm_cfg (RGB, 0-255 input), written out here rather than read from tinlib
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def reference(frames: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` in float64, channels at dim -3."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(3, 1, 1)
    return (frames.double() - mean) / std


def mmcv_imnormalize(frames_hwc: np.ndarray) -> np.ndarray:
    """mmcv's imnormalize in numpy on ``[M, H, W, 3]`` uint8: float32 ``(x - mean) * (1 / std)``,
    the reciprocal taken in float64 and rounded to float32 (what the pipeline computed before)."""
    x = frames_hwc.astype(np.float32)
    x -= np.asarray(IMAGENET_MEAN, np.float32)
    x *= (1.0 / np.asarray(IMAGENET_STD, np.float64)).astype(np.float32)
    return x


@pytest.mark.parametrize("shape", [(2, 6, 3, 5, 7), (4, 3, 8, 6)], ids=["[B, V*T, 3, H, W]", "[M, 3, H, W]"])
def test_values_shape_and_device(shape):
    frames = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = normalize(frames)
    assert out.dtype == torch.float32 and out.shape == frames.shape and out.device == frames.device
    assert (out.double() - reference(frames)).abs().max().item() <= 1e-5
    assert frames.dtype == torch.uint8  # the input is left as it was


def test_equals_the_former_numpy_step_to_one_ulp():
    frames = torch.randint(0, 256, (3, 3, 4, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    former = mmcv_imnormalize(frames.permute(0, 2, 3, 1).numpy()).transpose(0, 3, 1, 2)
    np.testing.assert_array_max_ulp(normalize(frames).numpy(), former, maxulp=1)


def test_every_channel_gets_its_own_statistics():
    frames = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    frames[0, 0], frames[0, 1], frames[0, 2] = 255, 0, 128
    out = normalize(frames)[0, :, 0, 0].tolist()
    expected = [(255 - 123.675) / 58.395, (0 - 116.28) / 57.12, (128 - 103.53) / 57.375]
    assert out == pytest.approx(expected, abs=1e-6)


def test_a_channels_last_layout_is_kept():
    """The training step lays the uint8 clips out channels-last (1 byte a value), then normalises."""
    frames = torch.randint(0, 256, (2, 4, 3, 5, 6), dtype=torch.uint8)
    laid_out = frames.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)  # [B, T, H, W, 3] in memory
    out = normalize(laid_out)
    assert out.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, normalize(frames))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_the_gpu_the_result_stays_there_and_matches_the_cpu():
    frames = torch.randint(0, 256, (2, 4, 3, 8, 8), dtype=torch.uint8)
    out = normalize(frames.cuda())
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), normalize(frames), rtol=0, atol=1e-6)


@pytest.mark.parametrize("frames, needle", [
    (torch.zeros(2, 3, 4, 4), "takes the uint8 frames the datasets yield (0-255 RGB), got torch.float32"),
    (torch.zeros(2, 4, 4, 3, dtype=torch.uint8), "RGB channels at dim -3, got shape (2, 4, 4, 3)"),
    (torch.zeros(4, 4, dtype=torch.uint8), "got shape (4, 4)"),
])
def test_bad_input_is_one_line(frames, needle):
    with pytest.raises(ValueError) as info:
        normalize(frames)
    assert needle in str(info.value) and "\n" not in str(info.value)
