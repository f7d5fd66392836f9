"""The gradient ablation's bookkeeping: the run plan, the paired statistics and the verdict (in
tinlib.report.ablation), and the command lines of its runs (tinlib.pipeline.ablation)."""
import math

import pytest

from tinlib.pipeline.ablation import ablation_commands
from tinlib.report import ablation


def test_plan_pairs_seeds_and_rejects_unknown_gradients():
    runs = ablation.plan([3, 1])
    assert [(r.grad, r.seed, r.name) for r in runs] == [
        ("adjoint", 3, "adjoint_seed3"), ("mmcv", 3, "mmcv_seed3"),
        ("adjoint", 1, "adjoint_seed1"), ("mmcv", 1, "mmcv_seed1")]
    with pytest.raises(ValueError, match="unknown interlace gradient"):
        ablation.plan([0], ["adjoint", "true"])
    with pytest.raises(ValueError, match="at least one seed"):
        ablation.plan([])


def test_paired_difference_matches_a_hand_computed_t_interval():
    d = ablation.paired_difference([91.0, 93.0, 92.0], [90.0, 90.0, 93.0])  # diffs 1, 3, -1
    assert d["n"] == 3 and d["mean"] == pytest.approx(1.0)
    assert d["sd"] == pytest.approx(2.0)
    half = 4.303 * 2.0 / math.sqrt(3)
    assert d["ci95"] == pytest.approx([1.0 - half, 1.0 + half])
    with pytest.raises(ValueError):
        ablation.paired_difference([1.0], [1.0, 2.0])


def test_verdict_says_no_difference_only_when_the_interval_holds_zero():
    unclear = ablation.paired_difference([91.0, 93.0, 92.0], [90.0, 90.0, 93.0])
    assert "no difference this many seeds can resolve" in ablation.verdict(unclear)
    clear = ablation.paired_difference([95.0, 96.0, 95.5], [90.0, 90.5, 90.2])
    text = ablation.verdict(clear)
    assert "adjoint is better" in text and "cannot" not in text and "resolve" not in text
    worse = ablation.paired_difference([80.0, 81.0, 80.5], [90.0, 90.5, 90.2])
    assert "mmcv is better" in ablation.verdict(worse)
    single = ablation.paired_difference([91.0], [90.0])
    assert single["ci95"] is None and "single seed" in ablation.verdict(single)


def test_commands_carry_the_gradient_seed_and_overrides(tmp_path):
    run = ablation.AblationRun("mmcv", 7)
    train, test = ablation_commands("demo_tin_r18_synthetic", run, tmp_path / "w", tmp_path / "r",
                                    {"train.epochs": 1, "data.root": "d"})
    assert train[3:5] == ["train", "demo_tin_r18_synthetic"] and "--seed" in train and "7" in train
    for cmd in (train, test):
        assert "model.interlace_grad='mmcv'" in cmd and "train.epochs=1" in cmd and "data.root='d'" in cmd
    assert test[3] == "test" and test[5] == str(tmp_path / "w" / "latest.pth")


def test_lower_is_better_metrics_and_the_seed_tally():
    loss = ablation.paired_difference([0.20, 0.25, 0.22], [0.90, 0.95, 0.92])
    loss["wins"] = 3
    text = ablation.verdict(loss, "final training loss", unit="", lower_is_better=True)
    assert "adjoint is better" in text and "adjoint ahead in 3 of 3 seeds" in text and "points" not in text
