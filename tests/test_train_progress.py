"""Long runs are never silent: ``tinlib train`` logs a line per ``log_interval`` and a summary per
epoch (with or without a progress bar), and the make pipeline echoes a notebook's stderr (where
those lines go) to its console while the step runs."""
import io
import logging
import re
import sys
from pathlib import Path

import nbformat
import pytest

from tinlib.engine.recorder import format_duration
from tinlib.engine.train import train
from tinlib.pipeline.launch import ConsoleEcho
from tinlib.pipeline.steps import Step, run_steps

sys.path.insert(0, str(Path(__file__).parent))
from test_engine_train import Clips, read_log, tiny_cfg  # noqa: E402

INTERVAL_LINE = re.compile(
    r"^epoch (?P<epoch>\d+)/(?P<epochs>\d+)  iter (?P<iter>\d+)/(?P<iters>\d+)  loss (?P<loss>\d+\.\d{4})  "
    r"lr (?P<lr>\S+)  top1 (?P<top1>\d+\.\d)%  (?P<time>\d+\.\d{3}) s/iter  data (?P<data>\d+\.\d{3}) s  "
    r"ETA (?P<eta>\d+:\d\d:\d\d)$")
SUMMARY_LINE = re.compile(
    r"^epoch (?P<epoch>\d+)/(?P<epochs>\d+) done  loss (?P<loss>\d+\.\d{4})  top1 (?P<top1>\d+\.\d)%  "
    r"(?P<iters>\d+) iters in (?P<time>\d+:\d\d:\d\d) \((?P<pace>\d+\.\d{3}) s/iter\)"
    r"(?P<val>  val top1_acc (?P<val_top1>\d+\.\d\d)% top5_acc \d+\.\d\d% mean_class_accuracy \d+\.\d\d%)?"
    r"(  ETA (?P<eta>\d+:\d\d:\d\d))?$")


@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def console():
    """The training loop's log lines (the loggers under tinlib.engine at INFO), whatever the logging setup."""
    logger = logging.getLogger("tinlib.engine")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield lambda: stream.getvalue().splitlines()
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def run(tmp_path, name, *, log_interval, progress=False, epochs=2):
    cfg = tiny_cfg(train=dict(epochs=epochs, log_interval=log_interval, val_interval=1))
    train(cfg, work_dir=tmp_path / name, datasets={"train": Clips(16), "val": Clips(8, seed=1)}, seed=0,
          deterministic=True, progress=progress, run=name)
    return [e for e in read_log(tmp_path / name / "log.json") if e.get("mode") == "train"]


@pytest.mark.parametrize("progress", [False, True])
def test_a_line_per_log_interval_and_a_summary_per_epoch(tmp_path, console, progress):
    # the reference: the same run logged every iteration (the runs are deterministic)
    per_iter = [e["loss_cls"] for e in run(tmp_path, "every", log_interval=1)]
    assert len(per_iter) == 2 * 4  # 16 clips, 4 per batch, 2 epochs
    start = len(console())
    logged = run(tmp_path, "pairs", log_interval=2, progress=progress)
    lines = console()[start:]
    intervals = [m.groupdict() for m in map(INTERVAL_LINE.match, lines) if m]
    summaries = [m.groupdict() for m in map(SUMMARY_LINE.match, lines) if m]
    assert [(int(d["epoch"]), int(d["iter"])) for d in intervals] == [(1, 2), (1, 4), (2, 2), (2, 4)]
    assert all((d["epochs"], d["iters"]) == ("2", "4") for d in intervals)
    # each line is the mean over its two iterations
    pair_means = [(per_iter[i] + per_iter[i + 1]) / 2 for i in range(0, 8, 2)]
    assert [float(d["loss"]) for d in intervals] == pytest.approx(pair_means, abs=6e-5)
    # and says what log.json says
    assert [float(d["loss"]) for d in intervals] == pytest.approx([e["loss_cls"] for e in logged], abs=6e-5)
    assert [float(d["lr"]) for d in intervals] == pytest.approx([e["lr"] for e in logged], rel=1e-3)
    assert [float(d["top1"]) for d in intervals] == pytest.approx([100 * e["top1_acc"] for e in logged], abs=0.06)
    assert all(float(d["time"]) > 0 and float(d["data"]) >= 0 for d in intervals)
    assert intervals[-1]["eta"] == "0:00:00"
    # a summary per epoch: the epoch's mean loss, its validation, and an ETA after the first one
    assert [int(d["epoch"]) for d in summaries] == [1, 2]
    assert [float(d["loss"]) for d in summaries] == pytest.approx(
        [sum(per_iter[:4]) / 4, sum(per_iter[4:]) / 4], abs=6e-5)
    assert all(d["iters"] == "4" and d["val"] for d in summaries)
    assert summaries[0]["eta"] is not None and summaries[1]["eta"] is None
    val = [e for e in read_log(tmp_path / "pairs" / "log.json") if e.get("mode") == "val"]
    assert [float(d["val_top1"]) for d in summaries] == pytest.approx([100 * e["top1_acc"] for e in val], abs=0.006)


def test_format_duration():
    assert format_duration(0.4) == "0:00:00"
    assert format_duration(3725.2) == "1:02:05"
    assert format_duration(float("nan")) == "?"


def test_console_echo_prints_lines_as_they_complete_and_throttles_progress():
    out = io.StringIO()
    echo = ConsoleEcho(out, prefix="step: ", refresh_s=3600)
    echo.write("epoch 1/2  it")
    assert out.getvalue() == ""  # half a line waits for its end
    echo.write("er 1/4\n\nwarning: x\n")
    assert out.getvalue().splitlines() == ["step: epoch 1/2  iter 1/4", "step: warning: x"]
    for i in range(5):
        echo.write(f"bar {i}/5\r")
    echo.write(b"bar 5/5\r" + "caf\xe9"[:3].encode())
    echo.write("\xe9 \u2588".encode()[:3])  # a character split between two writes
    echo.write("\xe9 \u2588".encode()[3:] + b"\n")
    echo.write("bar 6/6\r")
    echo.close()
    assert out.getvalue().splitlines()[2:] == ["step: bar 0/5", "step: caf\xe9 \u2588", "step: bar 6/6"]


NOTEBOOK_CELL = '''
import torch
from tinlib.config import config_from_dict
from tinlib.engine.train import train
from tinlib.logs import setup_logging

setup_logging()
print("stdout stays in the notebook")
x = torch.randint(0, 256, (8, 4, 3, 32, 32), dtype=torch.uint8)
data = [(x[i], i % 3) for i in range(8)]
cfg = config_from_dict(dict(model=dict(arch="tsn_r18", num_classes=3, num_segments=4, pretrained=None),
                            data=dict(videos_per_gpu=4, workers_per_gpu=0),
                            optim=dict(ref_gpus=1, ref_videos_per_gpu=4),
                            train=dict(epochs=1, val_interval=0, log_interval=1, num_threads=1)), name="nb_tiny")
train(cfg, work_dir="wd", datasets={"train": data}, seed=0, progress=True)
'''


@pytest.mark.slow
def test_a_pipeline_step_echoes_its_training_lines_to_the_console(tmp_path, capsys):
    """The make targets run notebooks with papermill; the training in the kernel logs to the kernel's
    stderr, which the pipeline prints, after the step's name, while the step runs."""
    source = tmp_path / "train.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 0", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell(NOTEBOOK_CELL)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, source)
    run_steps([Step("01_train_tiny", source, {"x": 1})], tmp_path / "runs", cwd=tmp_path)
    out = capsys.readouterr().out.splitlines()
    lines = [line.removeprefix("01_train_tiny: ") for line in out if line.startswith("01_train_tiny: ")]
    assert [m.group("iter") for m in map(INTERVAL_LINE.match, lines) if m] == ["1", "2"]
    assert any(SUMMARY_LINE.match(line) for line in lines)
    assert any(line.startswith("epoch 1/1: 100%") for line in lines)  # the bar, kept when it ends
    assert not any("stdout stays" in line for line in out)  # only stderr is echoed
