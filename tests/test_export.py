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


def test_tin_onnx_matches_pytorch_on_inputs_with_different_offsets(tmp_path):
    model = _spread_model("tin_r18")
    path = export_onnx(model, tmp_path / "tin.onnx", input_size=32)
    first = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    second = torch.randn(3, 4, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 + 0.5
    probe = next(m for m in model.modules() if isinstance(m, TemporalInterlace))
    probe.record = True
    offsets = []
    for frames in (first, second):
        assert onnx_max_abs_diff(model, path, frames) < 1e-4
        offsets.append(probe.last_offsets[0])
    # the two inputs drive the interlace differently: an export that froze the offsets would fail
    assert (offsets[0] - offsets[1]).abs().max() > 1e-2


@pytest.mark.parametrize("arch", ["tsm_r18", "tsn_r18"])
def test_baselines_export(tmp_path, arch):
    model = _spread_model(arch)
    path = export_onnx(model, tmp_path / f"{arch}.onnx", input_size=32, dynamic_batch=False)
    assert onnx_max_abs_diff(model, path, torch.randn(1, 4, 3, 32, 32)) < 1e-4
