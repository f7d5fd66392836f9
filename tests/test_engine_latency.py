"""tinlib latency: JSON with TIN/TSM/TSN side by side; FLOP counting rules."""
import json

import pytest
import torch
from torch import nn

from tinlib.commands.latency import main
from tinlib.config import load_config
from tinlib.engine.latency import count_flops


def test_latency_json_side_by_side(tmp_path):
    threads_before = torch.get_num_threads()
    out = tmp_path / "latency.json"
    code = main(["demo_tin_r18_synthetic", "--archs", "tin_r18,tsm_r18,tsn_r18", "--set", "model.num_segments=4",
                 "data.input_size=32", "data.scale_size=32", "--iters", "2", "--warmup", "1", "--threads", "1",
                 "--devices", "cpu", "--out", str(out), "--quiet"])
    assert code == 0
    result = json.loads(out.read_text())
    models = result["models"]
    assert list(models) == ["tin_r18", "tsm_r18", "tsn_r18"]
    # the demo's test setting: one centre view of the 4 segments, batch 1
    assert result["setting"]["input_shape"] == [1, 4, 3, 32, 32] and result["setting"]["warmup"] == 1
    for entry in models.values():
        assert list(entry["latency"]) == ["cpu"]  # --devices cpu: no CUDA timing even where CUDA exists
        lat = entry["latency"]["cpu"]
        assert (lat["iters"], lat["warmup"], lat["threads"]) == (2, 1, 1)  # --threads applied while timing
        assert lat["min_ms"] <= lat["median_ms"] and lat["min_ms"] <= lat["mean_ms"]
    assert torch.get_num_threads() == threads_before  # and restored afterwards
    # TIN adds parameters and (mmcv-counted) FLOPs; the shift of TSM adds neither
    assert models["tin_r18"]["params"] > models["tsm_r18"]["params"] == models["tsn_r18"]["params"]
    assert models["tin_r18"]["flops_mmcv"] > models["tsm_r18"]["flops_mmcv"] == models["tsn_r18"]["flops_mmcv"]
    assert "versions" in result and "git" in result


class _Scripted:
    """A stand-in for the ``time`` module whose ``perf_counter`` returns a given sequence."""

    def __init__(self, stamps):
        self.stamps = iter(stamps)

    def perf_counter(self):
        return next(self.stamps)


class _Constant(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []  # the inputs predict was given

    def predict(self, x, average_clips=None):
        self.seen.append(x)
        return torch.zeros(x.shape[0], 3)


def test_latency_statistics_drop_the_warmup_and_follow_mmaction2(monkeypatch):
    from tinlib.engine import latency

    # warm-up 1 iteration of 9 ms, then 2, 4 and 6 ms (start/stop stamps in seconds)
    durations = [0.009, 0.002, 0.004, 0.006]
    stamps, now = [], 100.0
    for d in durations:
        stamps += [now, now + d]
        now += 1.0
    monkeypatch.setattr(latency, "time", _Scripted(stamps))
    model = _Constant()
    lat = latency.measure_latency(model, torch.zeros(1, 4, 3, 8, 8, dtype=torch.uint8), torch.device("cpu"),
                                  warmup=1, iters=3)
    # each timed call normalises the uint8 clip: black is (0 - 123.675) / 58.395 in the red channel
    assert len(model.seen) == 4 and all(x.dtype == torch.float32 for x in model.seen)
    assert model.seen[-1][0, 0, 0, 0, 0].item() == pytest.approx(-123.675 / 58.395)
    timed = durations[1:]
    assert lat["mean_ms"] == pytest.approx(4.0) and lat["median_ms"] == pytest.approx(4.0)
    assert lat["min_ms"] == pytest.approx(2.0) and lat["std_ms"] == pytest.approx(2.0)
    assert lat["fps"] == pytest.approx(250.0)
    # MMAction2 0.x tools/analysis/benchmark.py: the elapsed time of every iteration after the
    # warm-up is added to pure_inf_time; at the last iteration it is added once more before
    # fps = (iterations after warm-up) / pure_inf_time
    pure_inf_time = 0.0
    for i, elapsed in enumerate(durations):
        if i >= 1:
            pure_inf_time += elapsed
        if i + 1 == len(durations):
            pure_inf_time += elapsed
            fps = (i + 1 - 1) / pure_inf_time
    assert lat["fps_mmaction2"] == pytest.approx(fps) and fps == pytest.approx(3 / (sum(timed) + timed[-1]))


def test_bad_arch_is_refused_before_work(tmp_path, capsys):
    assert main(["--archs", "tin_r51", "--out", str(tmp_path / "x.json")]) == 2
    assert "--archs: unknown arch 'tin_r51'" in capsys.readouterr().err
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


# Published in MMAction2 0.x's model-zoo metafiles (FLOPs counted by mmcv's get_model_complexity_info
# for one video of 8 frames at 224 x 224, 174 classes; parameters): configs/recognition/tin/metafile.yml,
# row tin_r50_1x1x8_40e_sthv1_rgb, and configs/recognition/tsm/metafile.yml, the TSM R50 1x1x8
# Something-Something rows
PUBLISHED_R50 = {"tin_r50": (32_962_097_536, 23_895_566), "tsm_r50": (32_961_859_584, 23_864_558)}


@pytest.mark.slow
def test_r50_counts_match_the_model_zoo_metafile():
    """mmcv-rule FLOPs and parameters of TIN/TSM R50 equal the published metafile figures."""
    from tinlib.engine.build import build_model
    from tinlib.engine.latency import count_parameters

    torch.set_num_threads(1)
    for name in ("tin_r50_1x1x8_40e_sthv1_rgb", "tsm_r50_1x1x8_40e_sthv1_rgb"):
        cfg = load_config(name, {"model.pretrained": None})
        model = build_model(cfg)
        flops, params = PUBLISHED_R50[cfg.model.arch]
        assert count_parameters(model) == params
        assert count_flops(model, torch.randn(1, 8, 3, 224, 224))["flops_mmcv"] == flops


def test_zoo_figures_come_from_the_matching_baseline_config():
    from tinlib.engine.latency import zoo_figures

    cfg = load_config("tin_r50_1x1x8_40e_sthv1_rgb")
    for arch in ("tin_r50", "tsm_r50"):
        flops, params = PUBLISHED_R50[arch]
        assert zoo_figures(cfg, arch) == {"flops": flops, "params": params}
    assert zoo_figures(cfg, "tin_r18") == {}  # no zoo row
