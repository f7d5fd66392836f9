"""tinlib.report: zoo table, reversal-pair metrics, interlace recording, HTML cleaning, the stored
notebooks. Fast: no notebook is executed. (The pipeline's tests are in test_pipeline.py.)"""
import json
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from tinlib.engine.config import load_config  # noqa: E402
from tinlib.report import analysis, html, interlace, plots, zoo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
ZOO_ROWS = ("tin_r50_1x1x8_40e_sthv1_rgb", "tin_r50_1x1x8_40e_sthv2_rgb", "tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb")


# --------------------------------------------------------------------------------------------
# helpers: run records as the engine writes them
# --------------------------------------------------------------------------------------------
def write_run(results: Path, config: str, *, top1=None, top5=None, mean=None, overrides=None, memory=(0,),
              world_size=1, device="cpu", reversal=None, time_="2026-01-01T00:00:00+00:00", folder=None):
    cfg = load_config(config, overrides or {}).to_dict()
    run = results / (folder or config)
    run.mkdir(parents=True, exist_ok=True)
    (run / "train.json").write_text(json.dumps({
        "run": config, "config_name": config, "world_size": world_size, "device": {"device": device},
        "checkpoints": {"latest": str(results / "wd" / "latest.pth"), "best": None}, "time": time_, "config": cfg}))
    (run / "log.json").write_text("\n".join(json.dumps({"mode": "train", "epoch": 1, "iter": i + 1, "memory": m})
                                            for i, m in enumerate(memory)) + "\n")
    if top1 is not None:
        (run / "metrics.json").write_text(json.dumps({
            "config_name": config, "metrics_percent": {"top1_acc": top1, "top5_acc": top5,
                                                       "mean_class_accuracy": mean},
            "checkpoint": {"path": None}, "time": time_, "config": cfg}))
    if reversal is not None:
        (run / "reversal.json").write_text(json.dumps(reversal))
    return run


# --------------------------------------------------------------------------------------------
# zoo
# --------------------------------------------------------------------------------------------
def test_published_rows_come_from_the_configs():
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
    header_k400 = "| config | resolution | gpus | backbone | pretrain | top1 acc | top5 acc | gpu_mem(M) | ckpt | log | json |"
    assert text.count(header_ref) == 2 and text.count(header_k400) == 1
    for name in ZOO_ROWS:
        assert f"| {name} (not run) |" in text
    assert "| – / 44.25 | – / 73.94 | 44.04 | 72.72 | – / 6181 |" in text
    assert "| – / 70.89 | – / 89.89 | – / 6187 |" in text
    assert "Synthetic demo" not in text


def test_zoo_row_with_a_run_shows_measured_beside_published(tmp_path):
    results = tmp_path / "results"
    write_run(results, ZOO_ROWS[0], top1=43.5, top5=72.25, mean=40.0, memory=(5000, 6100, 6050), world_size=8,
              device="cuda:0")
    (results / ZOO_ROWS[0] / "launch.json").write_text(json.dumps(
        {"nodes": 2, "gpus_per_node": 4, "world_size": 8, "device": "cuda"}))
    text = zoo.render_zoo(results)
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {ZOO_ROWS[0]}"))
    assert "(not run)" not in line
    assert "| 2x4 / 8x4 |" in line and "| 43.50 / 44.25 | 72.25 / 73.94 | 44.04 | 72.72 | 6100 / 6181 |" in line
    assert f"[json]({ZOO_ROWS[0]}/metrics.json)" in line and f"[log]({ZOO_ROWS[0]}/log.json)" in line
    assert f"| {ZOO_ROWS[1]} (not run) |" in text
    assert "[^" not in line  # the run used the config as it is


def test_zoo_footnotes_changed_settings_but_not_paths(tmp_path):
    results = tmp_path / "results"
    write_run(results, ZOO_ROWS[0], top1=10.0, top5=50.0, mean=9.0,
              overrides={"data.root": "/elsewhere", "data.workers_per_gpu": 8, "train.epochs": 1,
                         "model.num_classes": 11})
    text = zoo.render_zoo(results)
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {ZOO_ROWS[0]}"))
    assert "[^1]" in line
    note = next(ln for ln in text.splitlines() if ln.startswith("[^1]:"))
    assert "train.epochs=1" in note and "model.num_classes=11" in note
    assert "data.root" not in note and "workers" not in note


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
    tsn = next(ln for ln in text.splitlines() if ln.startswith("| demo_tsn_r18_synthetic"))
    assert "| 12.5 |" in tsn  # found through the input shape in the TIN config's latency run
    assert "TIN top-1 on the synthetic test split: 93.2 %, target >= 90 %: **met**" in text
    assert "TSN direction accuracy on the time-reversal pairs: 52.5 %" in text
    assert text.count("**met**") == 2
    # the tables stay in the seed's layout
    assert f"| {ZOO_ROWS[0]} (not run) |" in text


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
    lines = [{"env_info": {}, "iters_per_epoch": 4}]
    for epoch in (1, 2):
        for it in (2, 4):
            lines.append({"mode": "train", "epoch": epoch, "iter": it, "lr": 0.1, "loss_cls": 1.0, "top1_acc": 0.5})
        lines.append({"mode": "val", "epoch": epoch, "iter": 10, "top1_acc": 0.6, "mean_class_accuracy": 0.55})
    (tmp_path / "log.json").write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken")
    train, val = analysis.read_log(tmp_path / "log.json")
    assert list(train["epoch_f"]) == [0.5, 1.0, 1.5, 2.0] and list(val["epoch"]) == [1, 2]
    fig = plots.plot_training(train, val, "t")
    assert len(fig.axes) == 3
    plots.save(fig, tmp_path / "f" / "curve.png")
    assert (tmp_path / "f" / "curve.png").stat().st_size > 1000


# --------------------------------------------------------------------------------------------
# interlace recording
# --------------------------------------------------------------------------------------------
def test_collect_records_every_block_and_restores_the_flags():
    from tinlib.models import build_recognizer

    torch.manual_seed(0)
    model = build_recognizer("tin_r18", 5, num_segments=4)
    clips = torch.randn(3, 4, 3, 32, 32)
    trace = interlace.collect(model, clips, labels=[0, 1, 2])
    assert trace.layers == ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0",
                            "layer4.1"]
    assert trace.stages == [1, 1, 2, 2, 3, 3, 4, 4]
    assert trace.offsets.shape == (3, 8, 2) and trace.weights.shape == (3, 8, 4, 2) and trace.scores.shape == (3, 5)
    assert np.all(np.abs(trace.offsets) < 2) and np.all((trace.weights > 0) & (trace.weights < 2))
    with torch.no_grad():
        assert np.allclose(trace.scores, model.eval()(clips).numpy(), atol=1e-5)
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
    trace = interlace.collect(model, torch.randn(2, 4, 3, 32, 32))
    handle.remove()
    assert interlace.short_name(name) == trace.layers[3]
    assert np.allclose(trace.offsets[:, 3], seen[0].numpy())


def test_collect_refuses_models_without_interlace():
    from tinlib.models import build_recognizer

    with pytest.raises(ValueError, match="no TemporalInterlace"):
        interlace.collect(build_recognizer("tsm_r18", 3, num_segments=4), torch.randn(1, 4, 3, 32, 32))


def test_interlace_plots_and_helpers():
    from tinlib.models import build_recognizer

    class Data(torch.utils.data.Dataset):
        labels = [0, 0, 1, 1, 2, 2]

        def __len__(self):
            return 6

        def __getitem__(self, i):
            return torch.randn(4, 3, 32, 32), self.labels[i]

    model = build_recognizer("tin_r18", 3, num_segments=4)
    idx = interlace.pick_per_class(Data.labels, 1)
    assert len(idx) == 3 and sorted(Data.labels[i] for i in idx) == [0, 1, 2]
    trace = interlace.collect_dataset(model, Data(), idx, batch_size=2)
    assert trace.offsets.shape[0] == 3 and list(trace.labels) == [0, 1, 2] and trace.indices == idx
    names = ["left", "right", "still"]
    frames = interlace.denormalize(torch.zeros(4, 3, 8, 8))
    assert frames.shape == (4, 8, 8, 3) and frames.dtype == np.uint8
    assert len(plots.plot_video_interlace(trace, 0, frames, "x").axes) >= 3
    assert len(plots.plot_offsets_by_class(trace, names, [(0, 1)]).axes) == 4
    assert len(plots.plot_weights_by_class(trace, names).axes) == 4


def test_evaluation_plots():
    import pandas as pd

    summary = pd.DataFrame({"model": ["tin", "tsn"], "top1": [90.0, 50.0], "top1_other": [95.0, 90.0],
                            "direction_acc": [98.0, 50.0]})
    plots.plot_model_comparison(summary, chance_top1=9.1)
    plots.plot_confusion(np.eye(3) * 5, ["a", "b", "c"])
    frame = analysis.per_class_frame({"per_class_accuracy": [1.0, None, 0.5], "class_counts": [2, 0, 2]}, list("abc"))
    assert list(frame["accuracy"].fillna(-1)) == [100.0, -1, 50.0]
    plots.plot_per_class({"tin": frame, "tsn": frame})
    plots.plot_zoo_comparison([{"config": "x", "published": 44.25, "measured": None},
                               {"config": "y", "published": 56.7, "measured": 55.0}])
    plots.plot_latency({"setting": {"input_shape": [1, 8, 3, 32, 32]}, "models": {
        "tin_r18": {"params": 1e6, "latency": {"cpu": {"mean_ms": 3.0, "std_ms": 0.1}}}}})


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


# --------------------------------------------------------------------------------------------
# notebooks
# --------------------------------------------------------------------------------------------
def test_notebooks_are_built_from_the_generator():
    proc = subprocess.run([sys.executable, "notebooks/build_notebooks.py", "--check"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_notebooks_are_stored_without_outputs_and_have_parameters():
    import nbformat

    for path in sorted(NOTEBOOK_DIR.glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path.name
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
        assert nb.metadata["kernelspec"]["name"] == "tin-kit"
    names = {p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")}
    assert names == {"00_prepare_data", "01_train", "02_evaluate", "03_latency", "04_model_zoo", "05_explore_interlace",
                     "06_gradient_ablation"}
