"""Faults, on the CPU and small: a process killed with SIGKILL while it writes a checkpoint or a
results file, a run directory on a full disk, and a pipeline step whose notebook failed or was
killed after writing its outputs. Nothing finished may be lost, and nothing unfinished may count
as done. (Frame extraction killed mid-way is tested with the data preparation.)"""
import errno
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tinlib.checkpoint import read_checkpoint
from tinlib.records import MetricsRecord

CONFIG = "demo_tin_r18_synthetic"

# `python -c DRIVER tinlib ARGS...`: runs the tinlib command line, except that the FAULT_NTH-th
# atomic write of a file named FAULT_TARGET writes half its bytes to the temporary file, says so in
# FAULT_SIGNAL and hangs, so that the test can kill the process at exactly that point.
DRIVER = textwrap.dedent("""
    import io, os, sys, time
    from pathlib import Path
    import tinlib.io as tio

    original, seen = tio.atomic_write, [0]

    def atomic_write(path, write, mode="wb"):
        if Path(path).name != os.environ["FAULT_TARGET"]:
            return original(path, write, mode)
        seen[0] += 1
        if seen[0] != int(os.environ.get("FAULT_NTH", "1")):
            return original(path, write, mode)

        def half_then_hang(handle):
            buffer = io.BytesIO() if "b" in mode else io.StringIO()
            write(buffer)
            data = buffer.getvalue()
            handle.write(data[: len(data) // 2])
            handle.flush()
            Path(os.environ["FAULT_SIGNAL"]).write_text(str(os.getpid()))
            time.sleep(600)

        return original(path, half_then_hang, mode)

    tio.atomic_write = atomic_write
    from tinlib.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def overrides(root, results, **extra):
    """Tiny settings: 4 frames of 32x32, two iterations per epoch, no validation."""
    values = {"data.root": str(root), "model.num_segments": 4, "data.input_size": 32, "data.scale_size": 40,
              "data.videos_per_gpu": 2, "data.test_videos_per_gpu": 4, "data.workers_per_gpu": 0,
              "train.epochs": 3, "train.max_iters_per_epoch": 2, "train.val_interval": 0, "train.log_interval": 1,
              "train.num_threads": 1, "optim.type": "sgd", "results_dir": str(results)}
    values.update(extra)
    return ["--set"] + [f"{k}={v}" for k, v in values.items()]


def tinlib(*args, env=None, preexec_fn=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "tinlib", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, preexec_fn=preexec_fn, timeout=timeout)


def kill_while_writing(args, target, tmp_path, nth=1, timeout=240):
    """Run ``tinlib ARGS`` under DRIVER, SIGKILL it in the middle of the ``nth`` write of
    ``target`` (a file name) and return its output."""
    signal_file = tmp_path / f"writing-{target}"
    signal_file.unlink(missing_ok=True)
    env = {**os.environ, "FAULT_TARGET": target, "FAULT_NTH": str(nth), "FAULT_SIGNAL": str(signal_file)}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + timeout
    try:
        while not signal_file.exists():
            assert proc.poll() is None, f"the command ended before writing {target}:\n{proc.stdout.read()}"
            assert time.time() < deadline, f"no write of {target} within {timeout} s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == -signal.SIGKILL
    return output


def temporaries(folder, name):
    return sorted(folder.glob(f".{name}.*.tmp"))


def one_error_line(stderr, prog):
    """The one error line of a failed command (no traceback)."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith(f"{prog}: error:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


# ---------------------------------------------------------------------------------------------
# kill -9 mid-write
# ---------------------------------------------------------------------------------------------
def test_kill_during_checkpoint_write_keeps_the_previous_one_and_resume_continues(synth, tmp_path):
    wd, results = tmp_path / "wd", tmp_path / "results"
    args = ["train", CONFIG, "--work-dir", wd, "--seed", "0", "--no-progress", *overrides(synth, results)]
    kill_while_writing(args, "latest.pth", tmp_path, nth=2)  # the checkpoint after epoch 2
    assert temporaries(wd, "latest.pth"), "the half-written checkpoint should be a temporary file"
    previous = read_checkpoint(wd / "latest.pth")
    assert previous["meta"]["epoch"] == 1 and previous["meta"]["iter"] == 2  # the one after epoch 1, whole
    assert not (results / CONFIG / "train.json").exists()

    resumed = tinlib(*args, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    final = read_checkpoint(wd / "latest.pth")
    assert final["meta"]["epoch"] == 3 and final["meta"]["iter"] == 6
    assert not temporaries(wd, "latest.pth")  # the killed process's temporary file is cleaned up
    summary = json.loads((results / CONFIG / "train.json").read_text())
    assert summary["resumed_from_epoch"] == 1
    positions = [(e["epoch"], e["iter"]) for e in map(json.loads, (wd / "log.json").read_text().splitlines())
                 if e.get("mode") == "train"]
    assert positions == [(e, i) for e in (1, 2, 3) for i in (1, 2)]  # epoch 2 once, redone after the kill


@pytest.fixture(scope="module")
def trained(synth, tmp_path_factory):
    """A checkpoint after one tiny epoch."""
    wd = tmp_path_factory.mktemp("trained") / "wd"
    proc = tinlib("train", CONFIG, "--work-dir", wd, "--seed", "0", "--no-progress",
                  *overrides(synth, wd.parent / "results", **{"train.epochs": 1}))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return wd / "latest.pth"


def test_kill_during_results_write_keeps_the_previous_results(synth, trained, tmp_path):
    results = tmp_path / "results"
    args = ["test", CONFIG, trained, "--no-progress", "--device", "cpu", *overrides(synth, results)]
    first = tinlib(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    metrics = results / CONFIG / "metrics.json"
    before, scored = metrics.read_bytes(), MetricsRecord.read(metrics).num_samples
    kill_while_writing(args, "metrics.json", tmp_path)
    assert temporaries(metrics.parent, "metrics.json")
    assert metrics.read_bytes() == before and MetricsRecord.read(metrics).num_samples == scored
    again = tinlib(*args)  # and the next run writes it normally
    assert again.returncode == 0, again.stderr[-3000:]
    assert MetricsRecord.read(metrics).num_samples == scored and not temporaries(metrics.parent, "metrics.json")


# ---------------------------------------------------------------------------------------------
# full disk
# ---------------------------------------------------------------------------------------------
def _file_size_limit(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_full_disk_during_training_is_one_line_and_keeps_the_checkpoint(synth, trained, tmp_path):
    """A file-size limit (``ulimit -f``) smaller than a checkpoint stands for a disk that fills up
    while the next checkpoint is written: the write fails with EFBIG as it would with ENOSPC."""
    import shutil

    wd, results = tmp_path / "wd", tmp_path / "results"
    shutil.copytree(trained.parent, wd)
    before = (wd / "latest.pth").read_bytes()
    proc = tinlib("train", CONFIG, "--work-dir", wd, "--seed", "0", "--no-progress", "--resume", "auto",
                  *overrides(synth, results, **{"train.epochs": 2}), preexec_fn=_file_size_limit(1 << 20))
    assert proc.returncode != 0
    line = one_error_line(proc.stderr, "tinlib train")
    assert f"cannot write {wd / 'latest.pth'}" in line and "file-size limit" in line
    assert "the previous latest.pth is unchanged" in line
    assert (wd / "latest.pth").read_bytes() == before
    assert read_checkpoint(wd / "latest.pth")["meta"]["epoch"] == 1
    assert not temporaries(wd, "latest.pth")


def test_full_disk_when_writing_results_is_one_line_and_keeps_them(synth, trained, tmp_path, monkeypatch, capsys):
    """ENOSPC while metrics.json is written (a write that fails the way a full disk does)."""
    import tinlib.io as tio
    from tinlib.commands.test import main as tinlib_test

    results = tmp_path / "results"
    args = [CONFIG, str(trained), "--no-progress", "--device", "cpu", *overrides(synth, results)]
    assert tinlib_test(args) == 0
    metrics = results / CONFIG / "metrics.json"
    before = metrics.read_bytes()
    original = tio.atomic_write

    def no_room(path, write, mode="wb"):
        if Path(path).name != "metrics.json":
            return original(path, write, mode)

        def half_then_full(handle):
            handle.write(b"{" if "b" in mode else "{")
            raise OSError(errno.ENOSPC, "No space left on device")

        return original(path, half_then_full, mode)

    monkeypatch.setattr(tio, "atomic_write", no_room)
    capsys.readouterr()
    assert tinlib_test(args) != 0
    line = one_error_line(capsys.readouterr().err, "tinlib test")
    assert f"cannot write {metrics}: the disk is full" in line and "the previous metrics.json is unchanged" in line
    assert metrics.read_bytes() == before and not temporaries(metrics.parent, "metrics.json")


# ---------------------------------------------------------------------------------------------
# pipeline steps: finished means the notebook ran to its end
# ---------------------------------------------------------------------------------------------
def _notebook(path, body):
    import nbformat

    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("out = fail_flag = hang_flag = ''", metadata={"tags": ["parameters"]})
    nb.cells = [parameters, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


WRITE_THEN_MAYBE_FAIL = """\
from pathlib import Path
import time
Path(out).write_text("written")
while Path(hang_flag).is_file():
    time.sleep(0.1)
if Path(fail_flag).is_file():
    raise RuntimeError("a later cell failed")
"""


@pytest.fixture()
def step(tmp_path):
    from tinlib.pipeline.steps import Step

    notebook = _notebook(tmp_path / "writer.ipynb", WRITE_THEN_MAYBE_FAIL)
    out, fail, hang = tmp_path / "out" / "result.txt", tmp_path / "fail", tmp_path / "hang"
    out.parent.mkdir()
    return Step("writer", notebook, {"out": str(out), "fail_flag": str(fail), "hang_flag": str(hang)},
                outputs=[out]), fail, hang


def test_a_step_that_failed_after_writing_its_outputs_reruns(step, tmp_path):
    from tinlib.pipeline.steps import StepFailed, freshness, run_steps

    step, fail, _ = step
    run_dir = tmp_path / "runs"
    fail.write_text("1")
    with pytest.raises(StepFailed, match="writer.ipynb failed in cell .*RuntimeError: a later cell failed"):
        run_steps([step], run_dir)
    assert step.outputs[0].read_text() == "written"
    assert freshness(step, run_dir) == (False, "its last run did not finish")
    fail.unlink()
    (done,) = run_steps([step], run_dir)
    assert not done["skipped"]  # it ran again
    assert freshness(step, run_dir)[0]
    (again,) = run_steps([step], run_dir)
    assert again["skipped"]


def test_a_step_killed_after_writing_its_outputs_reruns(step, tmp_path):
    from tinlib.pipeline.steps import freshness, mark_finished

    step, _, hang = step
    run_dir = tmp_path / "runs"
    mark_finished(step)  # an earlier run of the step had finished
    hang.write_text("1")
    code = (f"from pathlib import Path; from tinlib.pipeline.steps import Step, run_steps; "
            f"run_steps([Step('writer', Path({str(step.source)!r}), {step.parameters!r}, "
            f"outputs=[Path({str(step.outputs[0])!r})])], Path({str(run_dir)!r}), force=True)")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while not step.outputs[0].exists():
            assert proc.poll() is None and time.time() < deadline, "the notebook did not write its output"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the pipeline and its kernel
        proc.wait(timeout=60)
    assert freshness(step, run_dir) == (False, "its last run did not finish")


def test_outputs_without_a_stamp_here_rerun_whatever_the_executed_notebook_says(step, tmp_path):
    """In a fresh clone the results and executed notebooks come with the repository, measured on
    another machine; only this machine's stamp makes a step up to date."""
    from tinlib.pipeline.steps import finished_marker, freshness, notebook_finished

    step, _, _ = step
    run_dir = tmp_path / "runs"
    run_dir.mkdir()
    step.outputs[0].write_text("written")
    executed = run_dir / "writer.ipynb"
    for meta, finished in (({"end_time": "2024-01-01T00:00:00", "exception": None}, True),
                           ({"end_time": "2024-01-01T00:00:00", "exception": True}, False),  # a cell failed
                           ({"end_time": None, "exception": None}, False)):  # killed while running
        executed.write_text(json.dumps({"cells": [], "metadata": {"papermill": meta}}))
        assert notebook_finished(executed) is finished
        fresh, why = freshness(step, run_dir)
        assert not fresh
        assert ("no finished run on this machine" in why) is finished
    assert not finished_marker(step).exists()
