import numpy as np
import pytest
import torch

from tinlib.export import export_onnx, onnx_max_abs_diff
from tinlib.models import TemporalInterlace, build_recognizer

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow


def _spread_model(arch: str):
    torch.manual_seed(0)
    model = build_recognizer(arch, 6, num_segments=4).eval()
    with torch.no_grad():
        model.cls_head.fc_cls.weight.normal_(0, 0.5)  # scores of order 1, so 1e-4 is a real test
        for m in model.modules():
            if isinstance(m, TemporalInterlace):
                m.offset_net.fc2.weight.normal_(0, 3.0)  # offsets spread over (-2, 2), input dependent
    return model


def frames(low, high, shape, seed):
    """uint8 frames as the datasets yield them."""
    return torch.randint(low, high, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_tin_onnx_matches_pytorch_on_inputs_with_different_offsets(tmp_path):
    model = _spread_model("tin_r18")
    path = export_onnx(model, tmp_path / "tin.onnx", input_size=32)
    first = frames(0, 256, (1, 4, 3, 32, 32), seed=1)
    second = frames(100, 256, (3, 4, 3, 32, 32), seed=2)
    probe = next(m for m in model.modules() if isinstance(m, TemporalInterlace))
    probe.record = True
    offsets = []
    for clips in (first, second):
        assert onnx_max_abs_diff(model, path, clips) < 1e-4
        offsets.append(probe.last_offsets[0])
    # the two inputs drive the interlace differently: an export that froze the offsets would fail
    assert (offsets[0] - offsets[1]).abs().max() > 1e-2


@pytest.mark.parametrize("arch", ["tsm_r18", "tsn_r18"])
def test_baselines_export(tmp_path, arch):
    model = _spread_model(arch)
    path = export_onnx(model, tmp_path / f"{arch}.onnx", input_size=32, dynamic_batch=False)
    assert onnx_max_abs_diff(model, path, frames(0, 256, (1, 4, 3, 32, 32), seed=3)) < 1e-4


def test_the_graph_takes_uint8_frames_and_normalises_them(tmp_path):
    import onnxruntime as ort

    model = _spread_model("tsm_r18")
    path = export_onnx(model, tmp_path / "tsm.onnx", input_size=32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (given,) = session.get_inputs()
    assert given.type == "tensor(uint8)" and given.shape[1:] == [4, 3, 32, 32] and isinstance(given.shape[0], str)
    clips = frames(0, 256, (2, 4, 3, 32, 32), seed=4)
    # the model on frames normalised by hand with MMAction2's ImageNet mean and std (RGB, 0-255)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    with torch.no_grad():
        expected = model((clips.double() - mean.double()).div(std.double()).float()).numpy()
    got = session.run(None, {given.name: clips.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)
