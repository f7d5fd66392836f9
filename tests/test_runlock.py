"""One live run per folder: two trainings started together into one work dir (real processes), a
stale lock taken over, a live one refused, the heartbeat, and the results folder of `tinlib test`."""
import json
import logging
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tinlib.checkpoint import save_checkpoint
from tinlib.engine import runlock
from tinlib.engine.errors import RunError
from tinlib.engine.evaluate import evaluate
from tinlib.engine.runlock import FolderLock, Holder
from tinlib.engine.train import train
from tinlib.models import build_recognizer

sys.path.insert(0, str(Path(__file__).parent))
from test_engine_evaluate import K, T, Views, cfg_for  # noqa: E402
from test_engine_train import Clips, tiny_cfg  # noqa: E402
from test_preemption import driver, finish, start, train_args  # noqa: E402,F401  (driver: a fixture)


@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # train.json goes to ./results/<run>/


def iso(moment):
    return moment.isoformat(timespec="seconds")


def write_lock(folder, pid, host, heartbeat_age_s=0.0):
    folder.mkdir(parents=True, exist_ok=True)
    beat = iso(datetime.now(timezone.utc) - timedelta(seconds=heartbeat_age_s))
    (folder / ".lock").write_text(json.dumps({"pid": pid, "host": host, "since": "2026-01-01T00:00:00+00:00",
                                              "heartbeat": beat, "token": "other"}))


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def tiny_run(work_dir):
    return train(tiny_cfg(arch="tsn_r18", train=dict(epochs=1, val_interval=0)), work_dir=work_dir,
                 datasets={"train": Clips(8)}, seed=0, progress=False)


def test_two_trainings_started_together_one_is_refused_in_one_line(synth, driver, tmp_path):  # noqa: F811
    wd, pause_dir = tmp_path / "wd", tmp_path / "p"
    pause_dir.mkdir()
    args = train_args(synth, wd, **{"train.epochs": 1})
    procs = start(driver, args, env={"PAUSE_AT": "1", "PAUSE_DIR": str(pause_dir)}) + start(
        driver, args, env={"PAUSE_AT": "1", "PAUSE_DIR": str(pause_dir)})
    try:
        deadline = time.time() + 240
        while all(p.poll() is None for p in procs):  # the winner waits in its first step
            assert time.time() < deadline, "neither start was refused"
            time.sleep(0.05)
        (refused,) = [p for p in procs if p.poll() is not None]
        (winner,) = [p for p in procs if p is not refused]
        while not list(pause_dir.glob("paused.*")):
            assert winner.poll() is None and time.time() < deadline, "the other start did not train"
            time.sleep(0.05)
        refused_out = refused.communicate()[0]
        assert refused.returncode == 2, refused_out[-3000:]
        (pause_dir / "go").write_text("")
        (winner_out, winner_code), = finish([winner])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert winner_code == 0, winner_out[-3000:]
    assert "Traceback" not in refused_out
    (line,) = [line for line in refused_out.splitlines() if line.startswith("tinlib train: error:")]
    assert line.startswith(f"tinlib train: error: {wd} is in use by pid {winner.pid}@{socket.gethostname()} "
                           "(since ")
    assert line.endswith("wait for that run to end, or choose another --work-dir")
    state = json.loads((wd / "run.json").read_text())
    assert (state["status"], state["pid"], state["host"]) == ("finished", winner.pid, socket.gethostname())
    assert not (wd / ".lock").exists()


@pytest.mark.parametrize("holder, reason", [
    ("dead", "its process is gone"),
    ("silent", "its heartbeat is 10 min old"),
])
def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog, holder, reason):
    wd = tmp_path / "wd"
    if holder == "dead":  # a process of this host that has ended
        write_lock(wd, dead_pid(), socket.gethostname())
    else:  # a process on another host that stopped beating 10 minutes ago
        write_lock(wd, 12345, "other-node", heartbeat_age_s=600)
    with caplog.at_level(logging.WARNING, logger="tinlib"):
        tiny_run(wd)
    (warning,) = [r.getMessage() for r in caplog.records if "taking over the lock" in r.getMessage()]
    assert warning.startswith(f"{wd}: taking over the lock of pid ") and warning.endswith(reason)
    state = json.loads((wd / "run.json").read_text())
    assert (state["status"], state["pid"], state["host"]) == ("finished", os.getpid(), socket.gethostname())
    assert datetime.now(timezone.utc) - datetime.fromisoformat(state["heartbeat"]) < timedelta(minutes=1)
    assert not (wd / ".lock").exists()


def test_a_live_lock_is_refused_and_nothing_is_written(tmp_path):
    wd = tmp_path / "wd"
    write_lock(wd, 12345, "other-node", heartbeat_age_s=30)
    with pytest.raises(RunError, match=r"wd is in use by pid 12345@other-node \(since 2026-01-01T00:00:00\+00:00, "
                                       r"heartbeat 3\d s ago\); wait for that run to end"):
        tiny_run(wd)
    assert sorted(p.name for p in wd.iterdir()) == [".lock"]


def test_the_heartbeat_is_refreshed_and_the_lock_given_back(tmp_path, monkeypatch):
    monkeypatch.setattr(runlock, "HEARTBEAT_EVERY_S", 0.05)
    lock = FolderLock(tmp_path / "folder", "advice").acquire()
    first = Holder.read(lock.path)
    assert (first.pid, first.host) == (os.getpid(), socket.gethostname())
    deadline = time.time() + 10
    while Holder.read(lock.path).heartbeat == first.heartbeat:  # ISO to the second
        assert time.time() < deadline, "the heartbeat was not refreshed"
        time.sleep(0.05)
    lock.release()
    assert not lock.path.exists() and not lock.folder.exists()  # the lock made the folder: removed again


def test_the_results_folder_of_tinlib_test_is_locked(tmp_path):
    model = build_recognizer("tsm_r18", K, T)
    checkpoint = save_checkpoint(tmp_path / "model.pth", model, meta={"epoch": 1})
    cfg = cfg_for(tmp_path)
    out = tmp_path / "results" / "eval_tiny"
    other = FolderLock(out, "-").acquire()  # another evaluation writing there
    try:
        with pytest.raises(RunError, match=f"eval_tiny is in use by pid {os.getpid()}@.*; wait for that evaluation "
                                           "to end, or choose another --run name"):
            evaluate(cfg, checkpoint, dataset=Views(), device="cpu", progress=False)
    finally:
        other.release()
    evaluate(cfg, checkpoint, dataset=Views(), device="cpu", progress=False)
    assert (out / "metrics.json").is_file() and not (out / ".lock").exists()
