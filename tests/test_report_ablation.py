"""The gradient ablation's bookkeeping: the run plan, the paired statistics and the verdict, the
summary read from the runs' records (in tinlib.report.ablation), and the command lines of its runs
(tinlib.pipeline.ablation)."""
import math

import pytest

from tinlib.pipeline.ablation import ablation_commands
from tinlib.records import (
    AblationSummary,
    LogEntry,
    LogHeader,
    LogWriter,
    MetricsRecord,
    RecordError,
    ReversalRecord,
    TrainRecord,
)
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


def _write_run(folder, run, top1, direction, losses, seconds):
    """The records a finished ablation run leaves: metrics.json, reversal.json, log.json, train.json."""
    out = folder / run.name
    MetricsRecord(config_name="c", config={}, metrics={"top1_acc": top1, "top5_acc": 1.0, "mean_class_accuracy": top1},
                  metrics_percent={}).write(out / "metrics.json")
    ReversalRecord(chance=50.0, n=4, direction_acc=direction).write(out / "reversal.json")
    writer = LogWriter(out / "log.json")
    writer.write(LogHeader(seed=run.seed, iters_per_epoch=2))
    for epoch, (a, b) in enumerate(losses, start=1):
        writer.write(LogEntry(mode="train", epoch=epoch, iter=1, loss_cls=a))
        writer.write(LogEntry(mode="train", epoch=epoch, iter=2, loss_cls=b))
    writer.close()
    TrainRecord(config_name="c", config={}, elapsed_s_this_session=seconds).write(out / "train.json")


def test_summarize_reads_every_record_of_the_runs(tmp_path):
    runs = ablation.plan([0, 1])
    _write_run(tmp_path, runs[0], 0.90, 100.0, [(2.0, 1.0), (0.5, 0.3)], 10.0)   # adjoint, seed 0
    _write_run(tmp_path, runs[1], 0.80, 50.0, [(2.0, 1.0), (0.9, 0.7)], 11.0)    # mmcv, seed 0
    _write_run(tmp_path, runs[2], 0.95, 90.0, [(2.0, 1.0), (0.2, 0.2)], 12.0)    # adjoint, seed 1
    _write_run(tmp_path, runs[3], 0.85, 60.0, [(2.0, 1.0), (0.6, 0.6)], 13.0)    # mmcv, seed 1
    summary = ablation.summarize(tmp_path, runs, config="c", overrides={"train.epochs": 2})
    first = summary.runs[0]
    assert first["grad"] == "adjoint" and first["seed"] == 0
    assert first["top1_acc"] == pytest.approx(90.0) and first["direction_acc"] == 100.0
    assert first["final_train_loss"] == pytest.approx(0.4) and first["train_s"] == 10.0  # mean of the last epoch
    assert summary.per_grad["mmcv"]["top1_acc"]["mean"] == pytest.approx(82.5)
    top1 = summary.comparisons["top1_acc"]  # adjoint - mmcv per seed: 10 and 10 points
    assert (top1["n"], top1["wins"]) == (2, 2) and top1["mean"] == pytest.approx(10.0)
    assert top1["sd"] == pytest.approx(0.0, abs=1e-9)
    assert summary.comparisons["final_train_loss"]["wins"] == 2  # lower is better: 0.4 < 0.8, 0.2 < 0.6
    path = summary.write(tmp_path / "summary.json")
    assert AblationSummary.read(path).to_dict() == summary.to_dict()
    text = ablation.summary_markdown(summary)
    assert "# Interlace gradient ablation: c" in text and "| mmcv | 1 | 85.00 | 100.00 | 60.00 | 0.600 |" in text


def test_a_run_without_metrics_is_named(tmp_path):
    with pytest.raises(RecordError, match=r"adjoint_seed0/metrics\.json: .*no such file"):
        ablation.run_row(tmp_path, ablation.AblationRun("adjoint", 0))


def test_kept_runs_are_reused_only_with_the_config_they_were_trained_with(tmp_path, monkeypatch):
    """An interrupted ablation continues (finished runs are kept), but after a change of the config
    or the overrides every run is trained again, instead of mixing old and new runs in one table."""
    from tinlib.pipeline import ablation as pipeline_ablation

    trained = []

    def fake_execute(config, run, work_root, folder, overrides, meta):
        trained.append(run.name)
        _write_run(folder, run, 0.9, 100.0, [(2.0, 1.0)], 1.0)
        return run.name

    monkeypatch.setattr(pipeline_ablation, "_execute", fake_execute)
    options = dict(seeds=[0], data_root=tmp_path / "data", results_dir=tmp_path, work_root=tmp_path / "w",
                   parallel=1, progress=False)
    pipeline_ablation.run_ablation(overrides={"train.epochs": 3}, **options)
    assert sorted(trained) == ["adjoint_seed0", "mmcv_seed0"]
    summary = AblationSummary.read(tmp_path / "ablation_interlace_grad" / "summary.json")
    assert summary.config_digest and len(summary.runs) == 2

    trained.clear()  # same config: nothing to train, the summary is rebuilt from the kept runs
    pipeline_ablation.run_ablation(overrides={"train.epochs": 3}, **options)
    assert trained == []

    (tmp_path / "ablation_interlace_grad" / "mmcv_seed0" / "metrics.json").unlink()  # as after a kill
    pipeline_ablation.run_ablation(overrides={"train.epochs": 3}, **options)
    assert trained == ["mmcv_seed0"]

    trained.clear()  # another config: both runs again
    pipeline_ablation.run_ablation(overrides={"train.epochs": 4}, **options)
    assert sorted(trained) == ["adjoint_seed0", "mmcv_seed0"]
