"""Published artifacts as data of the zoo configs, MMAction2's published training logs in the kit's
log record shape, their curves beside a run's own, and ``evaluate-published`` end to end: a tiny
synthetic SthV1 release, an MMAction2-layout TIN-R50 checkpoint served by a local HTTP server under
a model-zoo style name, and the records, the zoo line and the executed notebook it leaves.

No test reaches the internet: the download mirror variable points ``download.openmmlab.com`` at
a server on 127.0.0.1 started here."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from tinlib import hub  # noqa: E402
from tinlib.config import available_configs, load_config  # noqa: E402
from tinlib.errors import UserError  # noqa: E402
from tinlib.pipeline import published, recipes  # noqa: E402
from tinlib.records import LogEntry, LogHeader, RecordError  # noqa: E402
from tinlib.report import analysis, plots  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ROW = "tin_r50_1x1x8_40e_sthv1_rgb"
ZOO = "https://download.openmmlab.com"

# An MMAction2 0.x log.json as its TextLoggerHook writes it: the run's meta (env_info as text), then
# train entries every `log_interval` iterations and a val entry after each validation; a resumed
# session starts with a meta line again; the last line was cut off by a kill.
PUBLISHED_LOG_LINES = [
    {"env_info": "sys.platform: linux\nPython: 3.7.7 (default, May  7 2020) [GCC 7.3.0]\nCUDA available: True\n"
                 "GPU 0,1,2,3,4,5,6,7: Tesla V100-SXM2-32GB\nPyTorch: 1.5.0\nPyTorch compiling details: PyTorch "
                 "built with:\n  - GCC 7.3\n  - CUDA Runtime 10.1\n\nTorchVision: 0.6.0\nMMCV: 1.0.2\n"
                 "MMAction2: 0.5.0+a4a6cba",
     "seed": None, "config": "model = dict(type='Recognizer2D')\n"},
    {"mode": "train", "epoch": 1, "iter": 20, "lr": 0.002, "memory": 6181, "data_time": 0.31, "top1_acc": 0.0125,
     "top5_acc": 0.0417, "loss_cls": 5.10, "loss": 5.10, "grad_norm": 1.2, "time": 0.95},
    {"mode": "train", "epoch": 1, "iter": 40, "lr": 0.004, "memory": 6181, "data_time": 0.02, "top1_acc": 0.0208,
     "top5_acc": 0.0625, "loss_cls": 5.00, "loss": 5.00, "grad_norm": 1.4, "time": 0.61},
    {"mode": "train", "epoch": 2, "iter": 20, "lr": 0.02, "memory": 6181, "data_time": 0.3, "top1_acc": 0.05,
     "top5_acc": 0.15, "loss_cls": 4.60, "loss": 4.60, "grad_norm": 2.0, "time": 0.9},
    {"mode": "train", "epoch": 2, "iter": 40, "lr": 0.02, "memory": 6185, "data_time": 0.02, "top1_acc": 0.07,
     "top5_acc": 0.2, "loss_cls": 4.40, "loss": 4.40, "grad_norm": 2.2, "time": 0.6},
    {"mode": "val", "epoch": 2, "iter": 1441, "lr": 0.02, "top1_acc": 0.0825, "top5_acc": 0.2567,
     "mean_class_accuracy": 0.0512},
    {"env_info": "sys.platform: linux\nPyTorch: 1.5.0", "seed": 7, "exp_name": "tin_r50_1x1x8_40e_sthv1_rgb.py"},
    {"mode": "train", "epoch": 3, "iter": 20, "lr": 0.0199, "memory": 6181, "data_time": 0.3, "top1_acc": 0.1,
     "top5_acc": 0.3, "loss_cls": 4.0, "loss": 4.0, "time": 0.9},
]
PUBLISHED_LOG = "\n".join(json.dumps(line) for line in PUBLISHED_LOG_LINES) + '\n{"mode": "train", "ep'


# --------------------------------------------------------------------------------------------
# The published artifacts are data of the configs
# --------------------------------------------------------------------------------------------
def test_registry_is_the_configs_published_sections_plus_the_tsm_init():
    from_configs = {name: load_config(name).published for name in available_configs()}
    with_checkpoint = {name for name, p in from_configs.items() if p.checkpoint}
    # the three TIN rows of MMAction2's 0.x model zoo; the TSM/TSN baselines and demos have nothing published
    assert with_checkpoint == {"tin_r50_1x1x8_40e_sthv1_rgb", "tin_r50_1x1x8_40e_sthv2_rgb",
                               "tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb"}
    assert set(hub.PUBLISHED) == with_checkpoint | {"tsm_r50_1x1x8_50e_kinetics400_rgb"}
    for name in with_checkpoint:
        entry, section = hub.PUBLISHED[name], from_configs[name]
        assert (entry.checkpoint, entry.log, entry.log_json) == (section.checkpoint, section.log, section.log_json)
        # MMAction2's naming: <folder>/<config>/<config>_<date>-<sha256[:8]>.pth beside <time>.log(.json)
        folder = f"{ZOO}/mmaction/recognition/tin/{name}/"
        assert entry.checkpoint.startswith(folder + name + "_") and hub.expected_hash_prefix(entry.checkpoint)
        assert entry.log.startswith(folder) and entry.log_json == entry.log + ".json"
    # the K400 row loads the TSM-K400 init by its registry name
    assert load_config("tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb").model.load_from == \
        "published:tsm_r50_1x1x8_50e_kinetics400_rgb"


def test_cached_published_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv(hub.MIRROR_ENV, "http://127.0.0.1:9")  # nothing listens there
    assert hub.cached_published(ROW, "json", tmp_path) is None
    name = hub.published_file_name(ROW, "json", hub.published_url(ROW, "json"))
    assert name == f"{ROW}_20200729_034132.log.json"
    (tmp_path / name).write_text("{}")
    assert hub.cached_published(ROW, "json", tmp_path) == tmp_path / name
    assert hub.cached_published("demo_tin_r18_synthetic", "json", tmp_path) is None
    assert hub.published_run(ROW) == f"{ROW}_published"


def test_a_config_without_a_published_checkpoint_is_a_user_error():
    with pytest.raises(UserError, match="demo_tin_r18_synthetic has no published checkpoint.*" + ROW):
        published.published_checkpoint_url(load_config("demo_tin_r18_synthetic"))


# --------------------------------------------------------------------------------------------
# Published log.json -> the kit's log record shape -> curves
# --------------------------------------------------------------------------------------------
@pytest.fixture
def published_log_file(tmp_path) -> Path:
    path = tmp_path / f"{ROW}_20200729_034132.log.json"
    path.write_text(PUBLISHED_LOG)
    return path


def test_published_log_is_read_into_headers_and_entries(published_log_file):
    log = analysis.read_published_log(published_log_file)
    assert log.skipped == 1  # the cut-off last line
    assert [type(x) for x in log.lines] == [LogHeader] + [LogEntry] * 5 + [LogHeader, LogEntry]
    first, resumed = log.headers
    assert first.env_info["PyTorch"] == "1.5.0" and first.env_info["MMCV"] == "1.0.2"
    assert first.env_info["GPU 0,1,2,3,4,5,6,7"] == "Tesla V100-SXM2-32GB"
    assert first.env_info["PyTorch compiling details"] == "PyTorch built with:\n- GCC 7.3\n- CUDA Runtime 10.1"
    assert first.seed is None and first.extra["config"].startswith("model = dict(")
    assert resumed.seed == 7 and resumed.extra["exp_name"] == "tin_r50_1x1x8_40e_sthv1_rgb.py"
    train, val = log.mode("train"), log.mode("val")
    assert [(e.epoch, e.iter, e.loss_cls) for e in train] == [(1, 20, 5.10), (1, 40, 5.00), (2, 20, 4.60),
                                                              (2, 40, 4.40), (3, 20, 4.0)]
    assert (val[0].epoch, val[0].top1_acc, val[0].mean_class_accuracy) == (2, 0.0825, 0.0512)
    assert log.peak_memory() == 6185


def test_published_log_frames_and_epoch_curves(published_log_file):
    train, val = analysis.read_log(analysis.read_published_log(published_log_file))
    assert len(train) == 5 and len(val) == 1
    curves = analysis.epoch_curves(train, val)
    assert list(curves.index) == [1, 2, 3]
    # epoch means of the logged training losses, worked out by hand from the lines above
    assert curves["loss"].tolist() == pytest.approx([5.05, 4.50, 4.0])
    assert curves["val_top1"].iloc[1] == pytest.approx(8.25)
    assert curves["val_top1"].isna().tolist() == [True, False, True]


def test_the_kits_own_log_gives_the_same_curve_shape(tmp_path):
    from tinlib.records import LogWriter

    writer = LogWriter(tmp_path / "log.json")
    writer.write(LogHeader(seed=0, iters_per_epoch=2))
    for epoch, losses in ((1, (3.0, 2.0)), (2, (1.5, 0.5))):
        for i, loss in enumerate(losses, start=1):
            writer.write(LogEntry(mode="train", epoch=epoch, iter=i, loss_cls=loss, top1_acc=0.5))
    writer.write(LogEntry(mode="val", epoch=2, iter=10, top1_acc=0.6))
    writer.close()
    curves = analysis.epoch_curves(*analysis.read_log(tmp_path / "log.json"))
    assert curves["loss"].tolist() == pytest.approx([2.5, 1.0])
    assert curves["val_top1"].tolist()[1] == pytest.approx(60.0)


@pytest.mark.parametrize("bad, words", [
    ('{"mode": "train", "epoch": "one", "iter": 1}', ["line 2", "epoch"]),
    ("not json at all", ["not JSON"]),
    ("[1, 2]", ["JSON object"]),
])
def test_a_damaged_published_log_names_the_file_and_line(tmp_path, bad, words):
    path = tmp_path / "x.log.json"
    path.write_text(json.dumps(PUBLISHED_LOG_LINES[0]) + "\n" + bad + "\n" + json.dumps(PUBLISHED_LOG_LINES[1]) + "\n")
    with pytest.raises(RecordError) as err:
        analysis.read_published_log(path)
    message = str(err.value).replace(f"{path}:2", "line 2")
    assert str(path) in str(err.value) and "\n" not in message
    for word in words:
        assert word in message


def test_curves_plot_draws_the_run_over_the_published_curves(published_log_file):
    import pandas as pd

    published_curves = analysis.epoch_curves(*analysis.read_log(analysis.read_published_log(published_log_file)))
    own = pd.DataFrame({"loss": [4.9, 4.3], "val_top1": [float("nan"), 9.5]}, index=pd.Index([1, 2], name="epoch"))
    fig = plots.plot_curves_vs_published(own, published_curves, own_label="mine")
    ax_loss, ax_val = fig.axes
    loss_lines = {line.get_label(): line for line in ax_loss.get_lines()}
    assert set(loss_lines) == {"mine", "published (MMAction2)"}
    assert list(loss_lines["mine"].get_ydata()) == [4.9, 4.3]
    assert list(loss_lines["published (MMAction2)"].get_ydata()) == pytest.approx([5.05, 4.5, 4.0])
    assert loss_lines["published (MMAction2)"].get_linestyle() == "--"
    val_lines = {line.get_label(): line for line in ax_val.get_lines()}
    assert list(val_lines["mine"].get_xdata()) == [2] and list(val_lines["mine"].get_ydata()) == [9.5]
    assert list(val_lines["published (MMAction2)"].get_ydata()) == pytest.approx([8.25])
    alone = plots.plot_curves_vs_published(None, published_curves)
    assert [len(ax.get_lines()) for ax in alone.axes] == [1, 1]
    matplotlib.pyplot.close("all")


# --------------------------------------------------------------------------------------------
# The recipe and its command line
# --------------------------------------------------------------------------------------------
def test_evaluate_published_steps_are_wired(tmp_path):
    import nbformat

    steps = recipes.evaluate_published_steps("sthv1", str(tmp_path / "d"), notebooks_dir=ROOT / "notebooks",
                                             results=tmp_path / "r", gpus=8, nodes=2, node_rank=1, profile="smoke",
                                             overrides={"published.checkpoint": "https://example.org/x-12345678.pth"})
    assert [s.notebook for s in steps] == ["00_prepare_data", "02_evaluate", "04_model_zoo"]
    evaluate = steps[1]
    assert evaluate.parameters["checkpoint"] == "published" and evaluate.parameters["config"] == ROW
    assert (evaluate.parameters["gpus"], evaluate.parameters["nodes"], evaluate.parameters["node_rank"]) == (8, 2, 1)
    assert evaluate.parameters["overrides"]["data.input_size"] == 32  # the smoke profile
    assert evaluate.parameters["overrides"]["published.checkpoint"] == "https://example.org/x-12345678.pth"
    assert evaluate.outputs == [tmp_path / "r" / f"{ROW}_published" / "metrics.json"]
    assert set(steps[0].outputs) <= set(evaluate.inputs)  # new lists make the evaluation stale
    # only what the test reads is prepared: the val split (no train list, no train frames)
    prepare = steps[0]
    assert prepare.parameters["splits"] == ["val"]
    assert prepare.outputs == [tmp_path / "d" / "tinlib_prepare.json", tmp_path / "d" / "sthv1_val_list_rawframes.txt"]
    k400 = recipes.evaluate_published_steps("k400", str(tmp_path / "k"), notebooks_dir=ROOT / "notebooks",
                                            results=tmp_path / "r", gpus=1)[0]
    assert [p.name for p in k400.outputs] == ["tinlib_prepare.json", "kinetics400_val_list_rawframes.txt"]
    demo_predict = next(s for s in recipes.demo_steps(notebooks_dir=ROOT / "notebooks", results=tmp_path / "r",
                                                      work_root=tmp_path / "w") if s.notebook == "07_predict")
    assert demo_predict.parameters["checkpoint"] == str(tmp_path / "w" / "demo_tin_r18_synthetic" / "latest.pth")
    assert demo_predict.parameters["test_video"] == 0
    for step in [*steps, demo_predict]:  # every parameter a step passes exists in its notebook
        nb = nbformat.read(str(step.source), as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        names = {line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line}
        assert set(step.parameters) <= names, (step.notebook, set(step.parameters) - names)


def test_torchrun_test_command():
    cmd = published.torchrun_test_command(ROW, "/cache/x.pth", gpus=4, nodes=2, node_rank=1, master_addr="n0",
                                          run=f"{ROW}_published", overrides={"data.root": "/d e", "test.num_clips": 1})
    assert cmd[1:3] == ["-m", "torch.distributed.run"]
    assert "--nnodes=2" in cmd and "--node-rank=1" in cmd and "--master-addr=n0" in cmd
    tail = cmd[cmd.index("tinlib"):]
    assert tail[:4] == ["tinlib", "test", ROW, "/cache/x.pth"]
    assert tail[tail.index("--run") + 1] == f"{ROW}_published" and "--overwrite" in tail
    assert tail[tail.index("--set") + 1:] == ["data.root='/d e'", "test.num_clips=1"]


def _pipeline(*args, env=None, timeout=900):
    full_env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and k != "DATA_ROOT"}
    full_env.update(PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "tinlib.pipeline", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def test_evaluate_published_refuses_a_bad_override_and_a_missing_data_root_at_once(tmp_path):
    proc = _pipeline("--results-dir", str(tmp_path), "evaluate-published", "sthv1", "--data-root", str(tmp_path),
                     "--set", "publishd.checkpoint=x")
    assert proc.returncode == 2 and "publishd" in proc.stderr and "published" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _pipeline("--results-dir", str(tmp_path), "evaluate-published", "sthv1")
    assert proc.returncode == 2 and "DATA_ROOT is not set" in proc.stderr
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------
@pytest.fixture
def release_server(tmp_path):
    """A static file server on 127.0.0.1 standing in for download.openmmlab.com."""
    folder = tmp_path / "server"
    folder.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def sthv1_release(tmp_path):
    """A tiny synthetic dataset in the SthV1 release layout: CSVs + JPEG folders, no lists."""
    from tinlib.data.synthetic import write_synthetic

    root = tmp_path / "sthv1"
    write_synthetic(root, "sthv1", size="tiny", height=40, workers=1)
    for name in ("sthv1_train_list_rawframes.txt", "sthv1_val_list_rawframes.txt", "synthetic_meta.json"):
        (root / name).unlink()  # leave only what the official release has
    return root


@pytest.mark.slow
def test_evaluate_published_end_to_end(tmp_path, release_server, sthv1_release):
    import nbformat
    import numpy as np
    import torch
    from mmaction_layout import mmaction_state_dict, mmaction_tin_r50_forward

    from tinlib.config import config_from_dict
    from tinlib.data import load_annotations
    from tinlib.engine.splits import build_split_dataset

    # a "release": an MMAction2 0.x TIN-R50 checkpoint for the 11 synthetic classes, named as the zoo names
    # its files (<config>_<date>-<first 8 hex digits of its sha256>.pth), and a published log.json
    folder, base = release_server
    state = mmaction_state_dict(num_classes=11, kind="tin")
    unnamed = tmp_path / "release.pth"
    torch.save({"meta": {"epoch": 40, "mmcv_version": "1.0.2"}, "state_dict": state}, unnamed)
    sha256 = hashlib.sha256(unnamed.read_bytes()).hexdigest()
    name = f"{ROW}_20990101-{sha256[:8]}.pth"
    release = folder / "mmaction" / "recognition" / "tin" / "toy_release"
    release.mkdir(parents=True)
    unnamed.rename(release / name)
    (release / "20990101_000000.log.json").write_text(PUBLISHED_LOG)
    url = f"{ZOO}/mmaction/recognition/tin/toy_release/{name}"
    log_url = f"{ZOO}/mmaction/recognition/tin/toy_release/20990101_000000.log.json"

    results, torch_home = tmp_path / "results", tmp_path / "torch"
    proc = _pipeline("--results-dir", str(results), "--work-root", str(tmp_path / "work"), "evaluate-published",
                     "sthv1", "--data-root", str(sthv1_release), "--profile", "smoke", "--gpus", "1",
                     "--set", f"published.checkpoint={url}", f"published.log_json={log_url}",
                     env={hub.MIRROR_ENV: base, "TORCH_HOME": str(torch_home)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # downloaded once into torch's hub cache, hash checked; the log beside it under a descriptive name
    cached = torch_home / "hub" / "checkpoints" / name
    assert cached.is_file() and (torch_home / "hub" / "checkpoints" / f"{ROW}_20990101_000000.log.json").is_file()
    out = results / f"{ROW}_published"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config_name"] == ROW and metrics["run"] == f"{ROW}_published" and metrics["split"] == "test"
    assert metrics["checkpoint"]["url"] == url and metrics["checkpoint"]["sha256"] == sha256
    assert metrics["checkpoint"]["path"] == str(cached) and metrics["checkpoint"]["layout"].startswith("mmaction")
    # the row's own test setting (MMAction2 0.x: one clip, centre crop, raw scores)
    assert {k: metrics["test_setting"][k] for k in ("num_segments", "num_clips", "crop", "average_clips")} == \
        {"num_segments": 8, "num_clips": 1, "crop": "center", "average_clips": None}
    assert not (results / ROW).exists()  # the user's own run folder stays untouched

    # the scores are the published weights' own: an independent forward from the MMAction2 state dict
    with np.load(out / "scores.npz") as data:
        scores, labels = data["scores"], data["labels"]
    assert metrics["metrics_percent"]["top1_acc"] == pytest.approx(100 * float((scores.argmax(1) == labels).mean()),
                                                                     abs=0.01)
    dataset = build_split_dataset(config_from_dict(metrics["config"]), "test")
    assert len(dataset) == len(labels) == metrics["num_samples"]
    for i in range(2):
        clip, label = dataset[i]
        with torch.no_grad():
            # MMAction2's img_norm_cfg for these rows: mean (123.675, 116.28, 103.53), std (58.395, 57.12, 57.375)
            mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
            std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
            reference = mmaction_tin_r50_forward(state, ((clip.float() - mean) / std)[None])[0].numpy()
        assert label == labels[i]
        assert np.abs(reference - scores[i]).max() < 1e-3 * max(1.0, np.abs(reference).max())

    # the zoo table: the row is still "(not run)", and under it the published checkpoint evaluated here
    lines = (results / "model_zoo.md").read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(f"| {ROW}"))
    assert "(not run)" in lines[i]
    line = lines[i + 1]
    assert line.startswith("| ↳ published checkpoint, evaluated here") and f"(checkpoint {name})" in line
    assert f"| {metrics['metrics_percent']['top1_acc']:.2f} / 44.25 |" in line
    assert f"[ckpt]({url})" in line and f"[json]({ROW}_published/metrics.json)" in line
    assert "[^1]" in line  # the smoke settings are footnoted
    text = "\n".join(lines)
    assert "[^1]: tin_r50_1x1x8_40e_sthv1_rgb, published checkpoint: evaluated with" in text
    assert "[^2]" not in text
    assert "data.input_size=32" in text

    # the executed notebook shows the checkpoint's URL and the published curves (there is no run of ours)
    nb = nbformat.read(str(results / "runs" / "sthv1_published" / "02_evaluate.ipynb"), as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(url in o.get("data", {}).get("text/markdown", "") for o in outputs)
    curves_cell = next(c for c in nb.cells if c.cell_type == "code" and "plot_curves_vs_published" in c.source)
    assert any("image/png" in o.get("data", {}) for o in curves_cell.outputs)
    assert (results / "reports" / "sthv1_published.html").is_file()

    # only the val split was prepared (the test list); a full preparation afterwards adds the train split
    from tinlib.pipeline.launch import prepare_data
    from tinlib.records import PrepareRecord

    record = PrepareRecord.read(sthv1_release / PrepareRecord.FILENAME)
    assert record.extra["splits"] == ["val"] and set(record.counts) == {"val"}
    assert not (sthv1_release / "sthv1_train_list_rawframes.txt").exists()
    assert record.lists["rawframes"].train is None
    summary = prepare_data("sthv1", sthv1_release)
    assert summary["splits"] == ["train", "val"] and summary["counts"]["val"] == record.counts["val"]
    assert len(load_annotations(sthv1_release / "sthv1_train_list_rawframes.txt", "rawframes")) == \
        summary["counts"]["train"] > 0
