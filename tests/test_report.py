"""tinlib.report: zoo table, reversal-pair metrics, interlace recording, figures, HTML cleaning.
Fast: no notebook is executed (the pipeline's tests are in test_pipeline.py).

Published numbers below are MMAction2's (0.x) TIN model zoo, ``configs/recognition/tin/README.md``:
SthV1 ``tin_r50_1x1x8_40e_sthv1_rgb``: height 100, 8x4 GPUs, ResNet50, ImageNet, top-1 44.25, top-5
73.94, reference (original repo) 44.04 / 72.72, gpu_mem 6181 MiB; SthV2 ``tin_r50_1x1x8_40e_sthv2_rgb``:
56.70 / 83.62, reference 56.48 / 83.45, gpu_mem 6185; Kinetics-400
``tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb``: 70.89 / 89.89, gpu_mem 6187, no reference columns.
The page lists SthV1, SthV2 and Kinetics-400 in that order, with the columns ``config resolution gpus
backbone pretrain top1 acc top5 acc [reference top1 acc reference top5 acc] gpu_mem(M) ckpt log json``.
The demo's targets are the README's: TIN >= 90 % top-1, TSN within 10 points of chance (50 %) on
the time-reversal pairs."""
import json
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from tinlib.config import load_config  # noqa: E402
from tinlib.records import (  # noqa: E402
    CheckpointInfo,
    CheckpointPaths,
    LatencyRecord,
    LogEntry,
    LogWriter,
    MetricsRecord,
    PrepareRecord,
    RecordError,
    ReversalRecord,
    SyntheticMeta,
    TrainRecord,
)
from tinlib.report import analysis, html, interlace, plots, workflow, zoo  # noqa: E402

ZOO_ROWS = ("tin_r50_1x1x8_40e_sthv1_rgb", "tin_r50_1x1x8_40e_sthv2_rgb",
            "tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb")


# --------------------------------------------------------------------------------------------
# helpers: run records as the engine writes them
# --------------------------------------------------------------------------------------------
def write_run(results: Path, config: str, *, top1=None, top5=None, mean=None, overrides=None, memory=(0,),
              world_size=1, device="cpu", reversal=None, time_="2026-01-01T00:00:00+00:00", folder=None):
    """A run folder with the records training and evaluation write: ``train.json``, a ``log.json``
    with one training entry per value of ``memory`` (MiB), and with ``top1`` given ``metrics.json``
    (percentages; the fractions are the same / 100) and ``reversal.json``."""
    cfg = load_config(config, overrides or {}).to_dict()
    run = results / (folder or config)
    TrainRecord(run=config, config_name=config, world_size=world_size, device={"device": device},
                checkpoints=CheckpointPaths(latest=str(results / "wd" / "latest.pth")), time=time_,
                config=cfg).write(run / "train.json")
    log = LogWriter(run / "log.json")
    for i, m in enumerate(memory):
        log.write(LogEntry(mode="train", epoch=1, iter=i + 1, memory=m))
    log.close()
    if top1 is not None:
        percent = {"top1_acc": top1, "top5_acc": top5, "mean_class_accuracy": mean}
        MetricsRecord(config_name=config, metrics={k: v / 100 for k, v in percent.items()}, metrics_percent=percent,
                      time=time_, config=cfg).write(run / "metrics.json")
    if reversal is not None:
        ReversalRecord.from_dict(reversal).write(run / "reversal.json")
    return run


# --------------------------------------------------------------------------------------------
# zoo
# --------------------------------------------------------------------------------------------
def test_published_rows_come_from_the_configs():
    # published values: MMAction2's TIN README (module docstring)
    rows = {r.config: r for r in zoo.published_rows()}
    assert set(ZOO_ROWS) <= set(rows)
    assert [r.config for r in zoo.published_rows()][:3] == list(ZOO_ROWS)
    v1 = rows[ZOO_ROWS[0]]
    assert (v1.top1, v1.top5, v1.ref_top1, v1.ref_top5, v1.gpu_mem) == (44.25, 73.94, 44.04, 72.72, 6181)
    assert (v1.resolution, v1.gpus, v1.backbone, v1.pretrain) == ("height 100", "8x4", "ResNet50", "ImageNet")
    assert rows[ZOO_ROWS[2]].ref_top1 is None and rows[ZOO_ROWS[2]].top1 == 70.89


def test_zoo_without_runs_has_the_seed_tables_and_marks_every_row(tmp_path):
    text = zoo.render_zoo(tmp_path)
    for section in ("## Something-Something V1", "## Something-Something V2", "## Kinetics-400"):
        assert section in text
    header_ref = ("| config | resolution | gpus | backbone | pretrain | top1 acc | top5 acc | reference top1 acc | "
                  "reference top5 acc | gpu_mem(M) | ckpt | log | json |")
    header_k400 = ("| config | resolution | gpus | backbone | pretrain | top1 acc | top5 acc | gpu_mem(M) | ckpt | "
                   "log | json |")
    assert text.count(header_ref) == 2 and text.count(header_k400) == 1
    for name in ZOO_ROWS:
        assert f"| {name} (not run) |" in text
    # nothing measured: "–" beside every published value (MMAction2's TIN README, module docstring)
    assert "| – / 44.25 | – / 73.94 | 44.04 | 72.72 | – / 6181 |" in text
    assert "| – / 56.70 | – / 83.62 | 56.48 | 83.45 | – / 6185 |" in text
    assert "| – / 70.89 | – / 89.89 | – / 6187 |" in text
    assert "Synthetic demo" not in text


def test_zoo_row_with_a_run_shows_measured_beside_published(tmp_path):
    results = tmp_path / "results"
    memory = (5000, 6100, 6050)
    write_run(results, ZOO_ROWS[0], top1=43.5, top5=72.25, mean=40.0, memory=memory, world_size=8, device="cuda:0")
    # a launch.json as written before records carried a schema version (read as version 1)
    launch = {"nodes": 2, "gpus_per_node": 4, "world_size": 8, "device": "cuda"}
    (results / ZOO_ROWS[0] / "launch.json").write_text(json.dumps(launch))
    text = zoo.render_zoo(results)
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {ZOO_ROWS[0]}"))
    assert "(not run)" not in line
    # measured / published; gpus as launched (nodes x per node), gpu_mem the log's peak
    assert f"| {launch['nodes']}x{launch['gpus_per_node']} / 8x4 |" in line
    assert f"| 43.50 / 44.25 | 72.25 / 73.94 | 44.04 | 72.72 | {max(memory)} / 6181 |" in line
    assert f"[json]({ZOO_ROWS[0]}/metrics.json)" in line and f"[log]({ZOO_ROWS[0]}/log.json)" in line
    assert f"| {ZOO_ROWS[1]} (not run) |" in text
    assert "[^" not in line  # the run used the config as it is


def test_zoo_gpus_cell_and_legends_explain_themselves(tmp_path):
    text = zoo.render_zoo(tmp_path)
    lines = text.splitlines()
    row = next(ln for ln in lines if ln.startswith(f"| {ZOO_ROWS[0]} (not run)"))
    # nothing ran: the published setting alone (MMAction2's TIN README: 8x4), no "– / 8x4"
    assert "| height 100 | 8x4 | ResNet50 |" in row and "– / 8x4" not in text
    assert "`8x4` means 32 GPUs" in text  # the published metafile's count
    # one legend line under each zoo table: the list its accuracies are on; reference columns where present
    for section, val_list, has_ref in (("## Something-Something V1", "sthv1_val_list_rawframes.txt", True),
                                       ("## Something-Something V2", "sthv2_val_list_rawframes.txt", True),
                                       ("## Kinetics-400", "kinetics400_val_list_rawframes.txt", False)):
        start = lines.index(section)
        table_end = next(i for i in range(start + 2, len(lines)) if not lines[i].startswith("|"))
        legend = lines[table_end + 1]
        assert f"`{val_list}`" in legend and "validation split" in legend
        assert ("*reference top1/top5 acc*" in legend) == has_ref
        if has_ref:
            assert "original TIN code" in legend and "not measured here" in legend


def test_zoo_row_evaluated_on_another_list_says_so(tmp_path):
    write_run(tmp_path, ZOO_ROWS[0], top1=40.0, top5=70.0, mean=39.0,
              overrides={"data.test_ann": "sthv1_mini_list_rawframes.txt"})
    row = next(ln for ln in zoo.render_zoo(tmp_path).splitlines() if ln.startswith(f"| {ZOO_ROWS[0]}"))
    assert "(evaluated on sthv1_mini_list_rawframes.txt)" in row
    write_run(tmp_path, ZOO_ROWS[1], top1=50.0, top5=80.0, mean=49.0)  # the config's own list: nothing added
    row = next(ln for ln in zoo.render_zoo(tmp_path).splitlines() if ln.startswith(f"| {ZOO_ROWS[1]}"))
    assert "evaluated on" not in row


def test_the_split_a_run_reports_comes_from_its_list(tmp_path):
    # the model-zoo configs test on the releases' validation lists, the demo on its test split
    write_run(tmp_path, ZOO_ROWS[0], top1=40.0, top5=70.0, mean=39.0)
    write_run(tmp_path, "demo_tin_r18_synthetic", top1=90.0, top5=99.0, mean=90.0)
    write_run(tmp_path, "demo_tsm_r18_synthetic", top1=90.0, top5=99.0, mean=90.0,
              overrides={"data.test_ann": "my_own_list.txt"})  # a name without a split: the evaluated split
    runs = zoo.collect_runs(tmp_path)
    assert runs[ZOO_ROWS[0]].evaluated_split() == "val"
    assert runs["demo_tin_r18_synthetic"].evaluated_split() == "test"
    assert runs["demo_tsm_r18_synthetic"].evaluated_split() == "test"
    write_run(tmp_path, "demo_tsn_r18_synthetic")  # trained, not evaluated
    assert zoo.collect_runs(tmp_path)["demo_tsn_r18_synthetic"].evaluated_split() is None


def test_zoo_footnotes_changed_settings_but_not_paths(tmp_path):
    results = tmp_path / "results"
    write_run(results, ZOO_ROWS[0], top1=10.0, top5=50.0, mean=9.0,
              overrides={"data.root": "/elsewhere", "data.workers_per_gpu": 8, "train.epochs": 1,
                         "model.num_classes": 11, "data.persistent_workers": False, "data.prefetch_factor": 4,
                         "data.pin_memory": False})
    text = zoo.render_zoo(results)
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {ZOO_ROWS[0]}"))
    assert "[^1]" in line
    note = next(ln for ln in text.splitlines() if ln.startswith("[^1]:"))
    assert "train.epochs=1" in note and "model.num_classes=11" in note
    assert "data.root" not in note and "workers" not in note and "prefetch" not in note and "pin_memory" not in note


def test_zoo_trained_but_not_evaluated(tmp_path):
    write_run(tmp_path, ZOO_ROWS[1])
    text = zoo.render_zoo(tmp_path)
    assert f"| {ZOO_ROWS[1]} (trained, not evaluated) |" in text


def test_zoo_takes_the_newest_run_of_a_config(tmp_path):
    write_run(tmp_path, ZOO_ROWS[0], top1=1.0, top5=2.0, mean=1.0, folder="old", time_="2026-01-01T00:00:00+00:00")
    write_run(tmp_path, ZOO_ROWS[0], top1=3.0, top5=4.0, mean=3.0, folder="new", time_="2026-02-01T00:00:00+00:00")
    assert zoo.collect_runs(tmp_path)[ZOO_ROWS[0]].metric("top1_acc") == 3.0


def test_zoo_prefers_the_configs_own_folder_over_newer_ablation_runs(tmp_path):
    write_run(tmp_path, ZOO_ROWS[0], top1=1.0, top5=2.0, mean=1.0, time_="2026-01-01T00:00:00+00:00")
    write_run(tmp_path / "ablation_interlace_grad", ZOO_ROWS[0], top1=3.0, top5=4.0, mean=3.0, folder="mmcv_seed0",
              time_="2026-02-01T00:00:00+00:00")
    assert zoo.collect_runs(tmp_path)[ZOO_ROWS[0]].metric("top1_acc") == 1.0


def test_zoo_ignores_executed_notebook_folder(tmp_path):
    write_run(tmp_path / "runs", ZOO_ROWS[0], top1=1.0, top5=2.0, mean=1.0)
    assert zoo.collect_runs(tmp_path) == {}


# The sthv1 row's files as MMAction2's TIN README links them.
STHV1_RELEASE = "https://download.openmmlab.com/mmaction/recognition/tin/tin_r50_1x1x8_40e_sthv1_rgb/"
STHV1_CKPT = STHV1_RELEASE + "tin_r50_1x1x8_40e_sthv1_rgb_20200729-4a33db86.pth"
STHV1_LOG = STHV1_RELEASE + "20200729_034132.log"


def write_published_evaluation(results: Path, config: str, *, top1: float, top5: float, url: str, world_size=1,
                               device="cuda:0", overrides=None, time_="2026-03-01T00:00:00+00:00"):
    """The metrics.json ``make evaluate-published-*`` leaves in ``<results>/<config>_published/``."""
    cfg = load_config(config, overrides or {}).to_dict()
    percent = {"top1_acc": top1, "top5_acc": top5, "mean_class_accuracy": top1 - 1}
    run = f"{config}_published"
    MetricsRecord(run=run, config_name=config, metrics={k: v / 100 for k, v in percent.items()},
                  metrics_percent=percent, checkpoint=CheckpointInfo(path="/cache/x.pth", url=url, sha256="4a33db86"),
                  world_size=world_size, device={"device": device}, time=time_, config=cfg
                  ).write(results / run / "metrics.json")


def test_zoo_shows_the_published_checkpoint_evaluated_here_under_its_row(tmp_path):
    write_run(tmp_path, ZOO_ROWS[0], top1=43.5, top5=72.25, mean=40.0, world_size=8, device="cuda:0")
    write_published_evaluation(tmp_path, ZOO_ROWS[0], top1=44.1, top5=73.8, url=STHV1_CKPT, world_size=8)
    lines = zoo.render_zoo(tmp_path).splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(f"| {ZOO_ROWS[0]}"))
    assert "| 43.50 / 44.25 | 72.25 / 73.94 |" in lines[i]  # the row is the user's own run
    assert lines[i + 1] == (
        "| ↳ published checkpoint, evaluated here |  | 8 |  |  | 44.10 / 44.25 | 73.80 / 73.94 |  |  |  | "
        f"[ckpt]({STHV1_CKPT}) | [log]({STHV1_LOG}) | [json]({ZOO_ROWS[0]}_published/metrics.json) |")
    assert not lines[i + 2].startswith("|")  # one extra line, for this row only
    assert sum(line.startswith("| ↳") for line in lines) == 1
    legend = next(line for line in lines if line.startswith("*↳ published checkpoint, evaluated here*"))
    assert "make evaluate-published-<dataset>" in legend and "measured here / published" in legend
    assert zoo.collect_runs(tmp_path)[ZOO_ROWS[0]].folder == tmp_path / ZOO_ROWS[0]


def test_a_published_evaluation_alone_is_not_the_users_run(tmp_path):
    write_published_evaluation(tmp_path, ZOO_ROWS[1], top1=56.0, top5=83.0, device="cpu",
                               url=load_config(ZOO_ROWS[1]).published.checkpoint)
    assert zoo.collect_runs(tmp_path) == {}
    text = zoo.render_zoo(tmp_path)
    lines = text.splitlines()
    i = lines.index(next(line for line in lines if line.startswith(f"| {ZOO_ROWS[1]}")))
    assert "(not run)" in lines[i] and "| – / 56.70 | – / 83.62 |" in lines[i]
    assert lines[i + 1].startswith("| ↳ published checkpoint, evaluated here |  | cpu |")
    assert "| 56.00 / 56.70 | 83.00 / 83.62 |" in lines[i + 1] and "[^" not in lines[i + 1]
    assert "## Other runs" not in text


def test_zoo_says_when_another_checkpoint_or_setting_was_evaluated(tmp_path):
    other = "https://download.openmmlab.com/mmaction/recognition/tin/x/tin_r50_1x1x8_40e_sthv1_rgb_2099-12345678.pth"
    write_published_evaluation(tmp_path, ZOO_ROWS[0], top1=1.0, top5=5.0, url=other,
                               overrides={"published.checkpoint": other, "data.input_size": 32})
    text = zoo.render_zoo(tmp_path)
    line = next(line for line in text.splitlines() if line.startswith("| ↳"))
    assert "(checkpoint tin_r50_1x1x8_40e_sthv1_rgb_2099-12345678.pth) [^1]" in line and f"[ckpt]({other})" in line
    note = next(line for line in text.splitlines() if line.startswith("[^1]:"))
    assert "published checkpoint" in note and "data.input_size=32" in note and "published.checkpoint" not in note
    assert "[^2]" not in text  # one footnote for the one line


def reversal(direction, chance=50.0):
    return {"direction_acc": direction, "chance": chance, "pair_id_acc": 90.0, "top1_reversal": direction * 0.9,
            "top1_other": 80.0, "n": 160, "per_pair": []}


def test_demo_section_and_targets(tmp_path):
    write_run(tmp_path, "demo_tin_r18_synthetic", top1=93.2, top5=100.0, mean=93.0, reversal=reversal(97.0))
    write_run(tmp_path, "demo_tsn_r18_synthetic", top1=50.0, top5=90.0, mean=49.0, reversal=reversal(52.5))
    size = load_config("demo_tin_r18_synthetic").data.input_size
    (tmp_path / "demo_tin_r18_synthetic" / "latency.json").write_text(json.dumps({
        "setting": {"config": "demo_tin_r18_synthetic", "flops_input_shape": [1, 8, 3, size, size]}, "time": "t",
        "models": {a: {"arch": a, "params": 11_200_000, "latency": {"cpu": {"mean_ms": 12.5, "std_ms": 1.0}}}
                   for a in ("tin_r18", "tsm_r18", "tsn_r18")}}))
    text = zoo.render_zoo(tmp_path)
    assert "## Synthetic demo" in text
    tin = next(ln for ln in text.splitlines() if ln.startswith("| demo_tin_r18_synthetic"))
    assert "| 93.20 |" in tin and "97.0 (chance 50)" in tin and "| 12.5 |" in tin and "11.20 M" in tin
    test_list = load_config("demo_tin_r18_synthetic").data.test_ann
    assert test_list == "sthv1_test_list_rawframes.txt"  # the demo tests on its held-out test split
    # the split the metrics are on and the list they were computed on (write_run records no count)
    assert f"| test | {test_list} |" in tin
    assert "*split* named (`test`: the held-out test split" in text
    tsn = next(ln for ln in text.splitlines() if ln.startswith("| demo_tsn_r18_synthetic"))
    assert "| 12.5 |" in tsn  # found through the input shape in the TIN config's latency run
    assert "TIN top-1 on the synthetic test split: 93.2 %, target >= 90 %: **met**" in text
    assert "TSN direction accuracy on the time-reversal pairs: 52.5 %" in text
    assert text.count("**met**") == 2
    # the tables stay in the seed's layout
    assert f"| {ZOO_ROWS[0]} (not run) |" in text
    # the HTML report's summary shows the same numbers
    summary = html.summary_markdown(tmp_path)
    assert "| demo_tin_r18_synthetic (tin_r18) | 93.2 | 97.0 (chance 50) |" in summary
    assert "| demo_tsn_r18_synthetic (tsn_r18) | 50.0 | 52.5 (chance 50) |" in summary


def test_zoo_leaves_out_a_damaged_record_with_a_warning(tmp_path, caplog):
    write_run(tmp_path, ZOO_ROWS[0], top1=43.5, top5=72.25, mean=40.0)
    metrics = tmp_path / ZOO_ROWS[0] / "metrics.json"
    metrics.write_text(metrics.read_text()[:50])  # a write cut short
    with caplog.at_level("WARNING", logger="tinlib.report.results"):
        runs = zoo.collect_runs(tmp_path)
    assert runs[ZOO_ROWS[0]].metrics is None and runs[ZOO_ROWS[0]].train is not None
    assert str(metrics) in caplog.text and "not valid JSON" in caplog.text
    line = next(ln for ln in zoo.render_zoo(tmp_path).splitlines() if ln.startswith(f"| {ZOO_ROWS[0]}"))
    assert "(trained, not evaluated)" in line


def test_demo_targets_missed_are_reported(tmp_path):
    write_run(tmp_path, "demo_tin_r18_synthetic", top1=71.0, top5=99.0, mean=70.0, reversal=reversal(80.0))
    write_run(tmp_path, "demo_tsn_r18_synthetic", top1=40.0, top5=90.0, mean=40.0, reversal=reversal(71.0))
    checks = zoo.demo_checks(zoo.demo_runs(zoo.collect_runs(tmp_path)))
    assert [c["met"] for c in checks] == [False, False]
    assert "**MISSED**" in zoo.checks_markdown(checks)


def test_demo_targets_without_runs():
    checks = zoo.demo_checks([])
    assert [c["met"] for c in checks] == [None, None]
    assert "not measured" in zoo.checks_markdown(checks)


def test_tinlib_zoo_cli_writes_the_file(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tinlib", "zoo", "--results-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "model_zoo.md").read_text().startswith("# TIN model zoo")


def test_md_table_escapes_pipes():
    out = zoo.md_table(["a", "b"], [["x|y", 1]])
    assert out.splitlines()[2] == "| x\\|y | 1 |"


# --------------------------------------------------------------------------------------------
# analysis
# --------------------------------------------------------------------------------------------
def test_reversal_metrics_by_hand():
    # classes 0/1 and 2/3 are pairs, 4 is not; 6 videos
    labels = np.array([0, 1, 2, 3, 4, 4])
    scores = np.array([
        [5, 1, 0, 0, 0],   # 0: right direction, top-1 right
        [5, 1, 0, 0, 0],   # 1: wrong direction (0 > 1), pair identified
        [0, 0, 1, 2, 9],   # 2: wrong direction, top-1 outside the pair
        [0, 0, 1, 2, 0],   # 3: right direction, top-1 right
        [0, 0, 0, 0, 1],   # 4: right
        [1, 0, 0, 0, 0],   # 4: wrong
    ], dtype=float)
    m = analysis.reversal_metrics(scores, labels, [(0, 1), (2, 3)], ["a", "a-rev", "b", "b-rev", "c"])
    assert m["n"] == 4 and m["n_other"] == 2 and m["chance"] == 50.0
    assert m["direction_acc"] == 50.0 and m["pair_id_acc"] == 75.0 and m["top1_reversal"] == 50.0
    assert m["top1_other"] == 50.0
    assert [p["direction_acc"] for p in m["per_pair"]] == [50.0, 50.0]
    assert m["per_pair"][1]["names"] == ["b", "b-rev"] and m["per_pair"][1]["top1"] == 50.0


def test_reversal_metrics_of_a_time_blind_model_is_chance():
    # a model that cannot see order scores both classes of a pair alike: ties count as misses
    labels = np.repeat(np.arange(4), 10)
    scores = np.zeros((40, 4))
    scores[:, :2] += (labels < 2)[:, None] * 3
    scores[:, 2:] += (labels >= 2)[:, None] * 3
    m = analysis.reversal_metrics(scores, labels, [(0, 1), (2, 3)])
    assert m["pair_id_acc"] == 100.0 and m["direction_acc"] == 0.0  # strict: a tie is not a win
    flip = np.random.default_rng(0).random(40) < 0.5
    scores[np.arange(40), np.where(flip, labels, labels ^ 1)] += 0.1
    assert analysis.reversal_metrics(scores, labels, [(0, 1), (2, 3)])["direction_acc"] == pytest.approx(
        100 * flip.mean())


def test_write_reversal_and_load_scores(tmp_path):
    np.savez(tmp_path / "scores.npz", scores=np.eye(4, dtype=np.float32), labels=np.arange(4), index=np.arange(4))
    out = analysis.write_reversal(tmp_path, {"reversal_pairs": [[0, 1]], "class_names": list("abcd")})
    assert out["direction_acc"] == 100.0
    assert json.loads((tmp_path / "reversal.json").read_text())["per_pair"][0]["names"] == ["a", "b"]
    with pytest.raises(FileNotFoundError, match="evaluate the run first"):
        analysis.load_scores(tmp_path / "nothing")


def test_read_log_and_plot_training(tmp_path):
    # 4 iterations per epoch, logged every 2; the last line was cut off by a kill
    lines = [{"env_info": {}, "iters_per_epoch": 4}]
    losses = iter([1.0, 0.8, 0.6, 0.4])
    val_top1 = {1: 0.6, 2: 0.75}
    for epoch in (1, 2):
        for it in (2, 4):
            lines.append({"mode": "train", "epoch": epoch, "iter": it, "lr": 0.1, "loss_cls": next(losses),
                          "top1_acc": 0.5})
        lines.append({"mode": "val", "epoch": epoch, "iter": 10, "top1_acc": val_top1[epoch],
                      "mean_class_accuracy": 0.55})
    (tmp_path / "log.json").write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken")
    train, val = analysis.read_log(tmp_path / "log.json")
    # epoch_f = epoch - 1 + iter / 4
    assert list(train["epoch_f"]) == [0.5, 1.0, 1.5, 2.0] and list(val["epoch"]) == [1, 2]
    assert list(train["loss_cls"]) == [1.0, 0.8, 0.6, 0.4]
    fig = plots.plot_training(train, val, "t")
    ax_loss, ax_acc, ax_lr = fig.axes  # the learning rate shares the loss panel's x axis
    assert fig._suptitle.get_text() == "t"
    (loss_line,) = ax_loss.get_lines()
    assert list(loss_line.get_xdata()) == [0.5, 1.0, 1.5, 2.0] and list(loss_line.get_ydata()) == [1.0, 0.8, 0.6, 0.4]
    assert list(ax_lr.get_lines()[0].get_ydata()) == [0.1] * 4
    curves = {line.get_label(): line for line in ax_acc.get_lines()}
    val_line = curves["top-1 (validation)"]
    assert list(val_line.get_xdata()) == [1, 2]
    assert list(val_line.get_ydata()) == pytest.approx([100 * val_top1[1], 100 * val_top1[2]])
    fig.savefig(tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_read_log_refuses_a_damaged_line_in_the_middle(tmp_path):
    from tinlib.records import RecordError

    path = tmp_path / "log.json"
    path.write_text(json.dumps({"mode": "train", "epoch": 1, "iter": 1}) + "\nnot json\n"
                    + json.dumps({"mode": "train", "epoch": 1, "iter": 2}) + "\n")
    with pytest.raises(RecordError, match=f"{path}:2"):
        analysis.read_log(path)


# --------------------------------------------------------------------------------------------
# interlace recording
# --------------------------------------------------------------------------------------------
def test_collect_records_every_block_and_restores_the_flags():
    from tinlib.models import build_recognizer

    torch.manual_seed(0)
    model = build_recognizer("tin_r18", 5, num_segments=4)
    clips = torch.randint(0, 256, (3, 4, 3, 32, 32), dtype=torch.uint8)  # as the datasets yield them
    trace = interlace.collect(model, clips, labels=[0, 1, 2])
    assert trace.layers == ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0",
                            "layer4.1"]
    assert trace.stages == [1, 1, 2, 2, 3, 3, 4, 4]
    assert trace.offsets.shape == (3, 8, 2) and trace.weights.shape == (3, 8, 4, 2) and trace.scores.shape == (3, 5)
    assert np.all(np.abs(trace.offsets) < 2) and np.all((trace.weights > 0) & (trace.weights < 2))
    # collect normalised the clips as mmcv's imnormalize does: (x - mean) / std per channel
    mean, std = torch.tensor([123.675, 116.28, 103.53]), torch.tensor([58.395, 57.12, 57.375])
    with torch.no_grad():
        normalized = (clips.float() - mean.view(3, 1, 1)) / std.view(3, 1, 1)
        assert np.allclose(trace.scores, model.eval()(normalized).numpy(), atol=1e-5)
    assert all(not m.record and m.last_offsets is None for _, m in interlace.interlace_modules(model))
    frame = trace.to_frame(list("abcde"))
    assert len(frame) == 3 * 8 * 2 and set(frame["cls"]) == {"a", "b", "c"}
    summary = interlace.class_summary(trace, list("abcde"))
    assert len(summary) == 3 * 4 * 2


def test_offsets_match_a_forward_hook_on_the_offset_net():
    """The recorded offsets are what OffsetNet returned in the same forward pass."""
    from tinlib.models import build_recognizer

    torch.manual_seed(1)
    model = build_recognizer("tin_r18", 3, num_segments=4).eval()
    seen = []
    name, module = interlace.interlace_modules(model)[3]
    handle = module.offset_net.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    trace = interlace.collect(model, torch.randint(0, 256, (2, 4, 3, 32, 32), dtype=torch.uint8))
    handle.remove()
    assert interlace.short_name(name) == trace.layers[3]
    assert np.allclose(trace.offsets[:, 3], seen[0].numpy())


def test_collect_refuses_models_without_interlace():
    from tinlib.models import build_recognizer

    with pytest.raises(ValueError, match="no TemporalInterlace"):
        interlace.collect(build_recognizer("tsm_r18", 3, num_segments=4),
                          torch.zeros(1, 4, 3, 32, 32, dtype=torch.uint8))


def test_interlace_plots_and_helpers():
    from tinlib.models import build_recognizer

    class Data(torch.utils.data.Dataset):
        labels = [0, 0, 1, 1, 2, 2]

        def __len__(self):
            return 6

        def __getitem__(self, i):
            return torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), self.labels[i]

    model = build_recognizer("tin_r18", 3, num_segments=4)
    idx = interlace.pick_per_class(Data.labels, 1)
    assert len(idx) == 3 and sorted(Data.labels[i] for i in idx) == [0, 1, 2]
    trace = interlace.collect_dataset(model, Data(), idx, batch_size=2)
    assert trace.offsets.shape[0] == 3 and list(trace.labels) == [0, 1, 2] and trace.indices == idx
    names = ["left", "right", "still"]
    clip = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    frames = interlace.display_frames(clip)
    assert frames.shape == (4, 8, 8, 3) and frames.dtype == np.uint8
    assert frames[2, 5, 1, 0] == clip[2, 0, 5, 1] and frames[3, 0, 7, 2] == clip[3, 2, 0, 7]  # [T, H, W, RGB]
    with pytest.raises(ValueError, match=r"display_frames takes a uint8 clip \[T, 3, H, W\]"):
        interlace.display_frames(clip.float())
    assert len(plots.plot_video_interlace(trace, 0, frames, "x").axes) >= 3
    assert len(plots.plot_offsets_by_class(trace, names, [(0, 1)]).axes) == 4
    assert len(plots.plot_weights_by_class(trace, names).axes) == 4


def bar_sizes(ax, horizontal=False):
    """Per bar group (one call of ax.bar / ax.barh), the bar lengths in drawing order."""
    from matplotlib.container import BarContainer

    return [[p.get_width() if horizontal else p.get_height() for p in c]
            for c in ax.containers if isinstance(c, BarContainer)]


def test_model_comparison_plot_shows_the_three_metrics_per_model():
    import pandas as pd

    summary = pd.DataFrame({"model": ["tin", "tsn"], "top1": [90.0, 50.0], "top1_other": [95.0, 90.0],
                            "direction_acc": [98.0, 50.0]})
    fig = plots.plot_model_comparison(summary, chance_top1=9.1)
    (ax,) = fig.axes
    # one bar group per metric, one bar per model, heights the input percentages
    assert bar_sizes(ax) == [[90.0, 50.0], [95.0, 90.0], [98.0, 50.0]]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["tin", "tsn"]
    chance_lines = sorted(line.get_ydata()[0] for line in ax.get_lines())
    assert chance_lines == [9.1, 50.0]  # top-1 chance as given, and 50 % within a pair
    without = plots.plot_model_comparison(summary.drop(columns=["top1_other"]))
    assert bar_sizes(without.axes[0]) == [[90.0, 50.0], [98.0, 50.0]]
    assert [line.get_ydata()[0] for line in without.axes[0].get_lines()] == [50.0]



def test_glyphs_the_font_lacks_warn_nowhere_and_other_warnings_still_do():
    """DejaVu Sans (matplotlib's default) has no CJK characters and no emoji: drawing them warns once
    per glyph unless inside ``missing_glyphs_quiet``, which lets other warnings through and leaves
    the warning filters as they were."""
    import io
    import warnings

    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with plots.missing_glyphs_quiet():
            plots.plot_confusion(np.eye(2), ["类别 零 🎬", "latin"]).savefig(io.BytesIO(), format="png")
            warnings.warn("another warning", UserWarning)
        assert [str(w.message) for w in seen] == ["another warning"]
        # outside, other glyphs (matplotlib warns once per glyph it lays out): a warning each
        plots.plot_confusion(np.eye(2), ["动作 一 🎥", "latin"]).savefig(io.BytesIO(), format="png")
        assert any("missing from font" in str(w.message) for w in seen[1:])
    assert warnings.filters == before

def test_confusion_plot_is_row_normalized():
    matrix = np.array([[3, 1, 0], [0, 2, 2], [1, 0, 0]])
    fig = plots.plot_confusion(matrix, ["a", "b", "c"], title="conf")
    ax = fig.axes[0]  # fig.axes[1] is the colour bar
    assert len(fig.axes) == 2 and ax.get_title() == "conf"
    expected = 100 * matrix / matrix.sum(axis=1, keepdims=True)  # % of each true class (row)
    assert np.allclose(ax.images[0].get_array(), expected)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    # the non-zero cells are written in the plot as whole percentages
    assert sorted(t.get_text() for t in ax.texts) == sorted(f"{v:.0f}" for v in expected[expected > 0])
    counts = plots.plot_confusion(matrix, normalize=False).axes[0]
    assert np.allclose(counts.images[0].get_array(), matrix)


def test_per_class_plot_has_one_bar_per_model_and_class():
    tin = analysis.per_class_frame({"per_class_accuracy": [1.0, None, 0.5], "class_counts": [2, 0, 2]}, list("abc"))
    assert list(tin["accuracy"].fillna(-1)) == [100.0, -1, 50.0] and list(tin["videos"]) == [2, 0, 2]
    tsn = analysis.per_class_frame({"per_class_accuracy": [0.25, 0.75, 0.0], "class_counts": [4, 4, 4]},
                                   list("abc"))
    fig = plots.plot_per_class({"tin": tin, "tsn": tsn}, title="per class")
    (ax,) = fig.axes
    # a class without videos (accuracy None) is drawn as an empty bar
    assert bar_sizes(ax, horizontal=True) == [[100.0, 0.0, 50.0], [25.0, 75.0, 0.0]]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"] and ax.get_title() == "per class"


def test_zoo_comparison_plot_marks_rows_not_run():
    rows = [{"config": "x", "published": 44.25, "measured": None}, {"config": "y", "published": 56.7, "measured": 55.0}]
    fig = plots.plot_zoo_comparison(rows)
    (ax,) = fig.axes
    assert bar_sizes(ax, horizontal=True) == [[44.25, 56.7], [0.0, 55.0]]  # published, then measured
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y"]
    assert [t.get_text() for t in ax.texts] == ["not run", "55.00"]


def test_latency_plot_from_a_record_and_from_its_dict():
    record = LatencyRecord.from_dict({
        "setting": {"config": "c", "input_shape": [1, 8, 3, 32, 32]},
        "models": {"tin_r18": {"arch": "tin_r18", "params": 2_000_000,
                               "latency": {"cpu": {"mean_ms": 3.0, "std_ms": 0.1}}},
                   "tsn_r18": {"arch": "tsn_r18", "params": 1_500_000,
                               "latency": {"cpu": {"mean_ms": 2.0, "std_ms": 0.2},
                                           "cuda": {"mean_ms": 0.5, "std_ms": 0.01}}}}})
    for result in (record, record.to_dict()):
        fig = plots.plot_latency(result, "cpu")
        (ax,) = fig.axes
        assert bar_sizes(ax) == [[3.0, 2.0]]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["tin_r18", "tsn_r18"]
        assert "[1, 8, 3, 32, 32]" in ax.get_title()
        assert [t.get_text() for t in ax.texts] == ["3.0 ms\n2.0 M params", "2.0 ms\n1.5 M params"]
    cuda = plots.plot_latency(record, "cuda").axes[0]
    assert bar_sizes(cuda) == [[0.5]]  # only the arch timed on that device


def test_latency_frame_from_a_record_and_from_its_dict():
    record = LatencyRecord.from_dict({
        "setting": {"config": "c"},
        "models": {"tin_r18": {"arch": "tin_r18", "params": 2_500_000, "flops_mmcv": 3_000_000_000,
                               "latency": {"cpu": {"mean_ms": 3.0, "std_ms": 0.1}}, "train_gpu_mem_mib": 900},
                   "tsn_r18": {"arch": "tsn_r18", "params": 1_500_000, "latency": {}}}})
    for result in (record, record.to_dict()):
        frame = workflow.latency_frame(result)
        assert list(frame["arch"]) == ["tin_r18", "tsn_r18"]
        assert list(frame["params (M)"]) == [2.5, 1.5] and list(frame["GFLOPs (mmcv)"]) == [3.0, 0.0]
        assert frame.loc[0, "cpu ms/video"] == 3.0 and np.isnan(frame.loc[1, "cpu ms/video"])
        assert frame.loc[0, "train gpu_mem(M)"] == 900
    with pytest.raises(RecordError, match="latency record: models.tin_r18: missing 'models.tin_r18.params'$"):
        workflow.latency_frame({"setting": {"config": "c"}, "models": {"tin_r18": {"arch": "tin_r18"}}})


def test_data_description_prefers_the_prepare_summary_and_names_a_damaged_file(tmp_path):
    assert workflow.read_data_description(tmp_path) is None and workflow.read_prepare_summary(None) is None
    meta = {"layout": "sthv1", "root": str(tmp_path), "params": {}, "kind": "rawframes", "train_list": "t",
            "val_list": "v", "class_names": ["a", "b"], "reversal_pairs": [[0, 1]]}
    (tmp_path / "synthetic_meta.json").write_text(json.dumps(meta))
    assert isinstance(workflow.read_data_description(tmp_path), SyntheticMeta)
    assert workflow.read_prepare_summary(tmp_path)["reversal_pairs"] == [[0, 1]]
    assert analysis.synthetic_meta(tmp_path)["class_names"] == ["a", "b"]
    (tmp_path / "tinlib_prepare.json").write_text(json.dumps({"dataset": "synthetic-sthv1", "class_names": ["a"],
                                                              "lists": {}, "kind": "rawframes"}))
    description = workflow.read_data_description(tmp_path)
    assert isinstance(description, PrepareRecord) and description.kind == "rawframes"
    (tmp_path / "tinlib_prepare.json").write_text("{")
    with pytest.raises(RecordError, match="tinlib_prepare.json: .*not valid JSON"):
        workflow.read_prepare_summary(tmp_path)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------
def test_collapse_progress_and_clean_outputs():
    assert html.collapse_progress("a\r b\r c\nd\x1b[31mred\x1b[0m") == " c\ndred"
    outs = [{"output_type": "stream", "name": "stderr", "text": "".join(f"line {i}\n" for i in range(30))},
            {"output_type": "stream", "name": "stderr", "text": "10%\r50%\r100%\n"},
            {"output_type": "display_data", "data": {"image/png": "x"}, "metadata": {}},
            {"output_type": "stream", "name": "stdout", "text": "\r\n"}]
    cleaned = html.clean_outputs(outs, max_lines=5)
    assert len(cleaned) == 2
    lines = cleaned[0]["text"].splitlines()
    assert lines[0] == "[... 26 earlier lines not shown ...]" and lines[-1] == "100%" and len(lines) == 6


def test_build_run_report(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    for name, fail in (("01_a", False), ("02_b", True)):
        cell = new_code_cell("print('x')", outputs=[new_output("stream", name="stdout", text="hello from " + name)])
        cells = [new_markdown_cell("# Title " + name), new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                 new_code_cell("x = 2", metadata={"tags": ["injected-parameters"]}), cell]
        if fail:
            cells.append(new_code_cell("1/0", outputs=[new_output("error", ename="ZeroDivisionError",
                                                                  evalue="division by zero", traceback=["tb"])]))
        nb = new_notebook(cells=cells, metadata={"papermill": {"parameters": {"x": 2}}})
        nbformat.write(nb, run / f"{name}.ipynb")
    out = html.build_run_report(run, tmp_path / "reports" / "r.html", title="T", order=["02_b", "01_a"],
                                titles={"01_a": "First step"})
    text = out.read_text()
    assert "hello from 01_a" in text and "First step" in text and "FAILED" in text
    assert text.index("02_b") < text.index("First step")
    assert "print(&#39;x&#39;)" not in text and "print('x')" not in text  # code hidden
    assert html.build_run_report(tmp_path / "empty", tmp_path / "x.html", title="T") is None
