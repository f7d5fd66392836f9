"""tinlib latency: JSON with TIN/TSM/TSN side by side; FLOP counting rules."""
import json

import pytest
import torch
from torch import nn

from tinlib.commands.latency import main
from tinlib.engine.config import load_config
from tinlib.engine.latency import count_flops


def test_latency_json_side_by_side(tmp_path):
    out = tmp_path / "latency.json"
    code = main(["demo_tin_r18_synthetic", "--archs", "tin_r18,tsm_r18,tsn_r18", "--set", "model.num_segments=4",
                 "data.input_size=32", "data.scale_size=32", "--iters", "2", "--warmup", "1", "--threads", "1",
                 "--devices", "cpu", "--out", str(out), "--quiet"])
    assert code == 0
    result = json.loads(out.read_text())
    models = result["models"]
    assert list(models) == ["tin_r18", "tsm_r18", "tsn_r18"]
    assert result["setting"]["input_shape"] == [1, 4, 3, 32, 32] and result["setting"]["warmup"] == 1
    for entry in models.values():
        lat = entry["latency"]["cpu"]
        assert lat["iters"] == 2 and lat["mean_ms"] > 0 and lat["fps"] == pytest.approx(1000 / lat["mean_ms"])
        assert entry["macs_torch"] * 2 == entry["flops_torch"]
        assert "cuda" not in entry["latency"] or torch.cuda.is_available()
    # TIN adds parameters and (mmcv-counted) FLOPs; the shift of TSM adds neither
    assert models["tin_r18"]["params"] > models["tsm_r18"]["params"] == models["tsn_r18"]["params"]
    assert models["tin_r18"]["flops_mmcv"] > models["tsm_r18"]["flops_mmcv"] == models["tsn_r18"]["flops_mmcv"]
    assert "versions" in result and "git" in result


def test_bad_arch_is_refused_before_work(tmp_path, capsys):
    assert main(["--archs", "tin_r51", "--out", str(tmp_path / "x.json")]) == 2
    assert "model.arch='tin_r51'" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_mmcv_counting_rules_by_hand():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=True)
            self.bn = nn.BatchNorm2d(4)
            self.relu = nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.pool(self.relu(self.bn(self.conv(x)))).flatten(1))

    counts = count_flops(Net(), torch.randn(1, 3, 5, 5))
    conv = 25 * 4 * 3 * 9 + 25 * 4  # MACs + one per output for the bias
    bn, relu, pool, fc = 2 * 100, 100, 100, 4 * 2
    assert counts["flops_mmcv"] == conv + bn + relu + pool + fc
    assert counts["flops_torch"] == 2 * (25 * 4 * 3 * 9 + 4 * 2)


@pytest.mark.slow
def test_r50_counts_match_the_model_zoo_metafile():
    """SPEC §3.3: mmcv-rule FLOPs and parameters of TIN/TSM R50 equal the metafile figures."""
    from tinlib.engine.build import build_model
    from tinlib.engine.latency import count_parameters

    torch.set_num_threads(1)
    for name in ("tin_r50_1x1x8_40e_sthv1_rgb", "tsm_r50_1x1x8_40e_sthv1_rgb"):
        cfg = load_config(name, {"model.pretrained": None})
        model = build_model(cfg)
        assert count_parameters(model) == cfg.zoo.params
        assert count_flops(model, torch.randn(1, 8, 3, 224, 224))["flops_mmcv"] == cfg.zoo.flops


def test_zoo_figures_come_from_the_matching_baseline_config():
    from tinlib.engine.latency import zoo_figures

    cfg = load_config("tin_r50_1x1x8_40e_sthv1_rgb")
    assert zoo_figures(cfg, "tin_r50") == {"flops": 32_962_097_536, "params": 23_895_566}
    assert zoo_figures(cfg, "tsm_r50") == {"flops": 32_961_859_584, "params": 23_864_558}
    assert zoo_figures(cfg, "tin_r18") == {}
