"""Cluster faults on the CPU, with real processes and real signals: SIGTERM and SIGUSR1 at a random
iteration (one process, and two gloo processes where only one receives the signal) stop every
process at the same iteration boundary with a checkpoint there, exit status 75 and run.json
``preempted``; the run then resumes (also by itself, as a requeued SLURM job) to the weights of an
uninterrupted run, bit for bit. And a torchrun worker killed with SIGKILL: the restarted group
resumes from the last iteration checkpoint to the same weights."""
import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from tinlib.checkpoint import read_checkpoint

CONFIG = "demo_tin_r18_synthetic"
ITERS, EPOCHS = 4, 3  # iterations per epoch (per process), epochs
EVERY = 2  # the two-process runs also checkpoint after the 2nd iteration of each epoch
PAIR = {"train.checkpoint_interval_iters": EVERY}

# `python DRIVER train ARGS...`: the tinlib command line, except that the PAUSE_AT-th training step
# of the process (tinlib.engine.train.train_step, counted from 1; in torchrun's first attempt only)
# writes the process id to PAUSE_DIR/paused.<rank>.<pid> and waits for PAUSE_DIR/go, so that the
# test can signal the run at a known iteration.
DRIVER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import tinlib.engine.train as engine_train

    original, calls = engine_train.train_step, [0]
    first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"

    def train_step(*args, **kwargs):
        calls[0] += 1
        if first_attempt and calls[0] == int(os.environ.get("PAUSE_AT", "0")):
            folder = Path(os.environ["PAUSE_DIR"])
            (folder / f"paused.{os.environ.get('RANK', '0')}.{os.getpid()}").write_text(str(os.getpid()))
            while not (folder / "go").exists():
                time.sleep(0.01)
        return original(*args, **kwargs)

    engine_train.train_step = train_step
    from tinlib.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    path = tmp_path_factory.mktemp("driver") / "driver.py"
    path.write_text(DRIVER)
    return path


@pytest.fixture(scope="module")
def pair_reference(synth, driver, tmp_path_factory):
    """The work dir of an uninterrupted run of two processes (PAIR settings)."""
    ref = tmp_path_factory.mktemp("pair") / "ref"
    assert [code for _, code in finish(start(driver, train_args(synth, ref, **PAIR), nproc=2))] == [0, 0]
    return ref


def train_args(root, work_dir, **extra):
    """``train`` with tiny settings: 4 frames of 32x32, 4 iterations of 2 videos per epoch and
    process, 3 epochs, a log line per iteration, no validation, deterministic."""
    values = {"data.root": str(root), "model.num_segments": 4, "data.input_size": 32, "data.scale_size": 40,
              "data.videos_per_gpu": 2, "data.workers_per_gpu": 0, "train.epochs": EPOCHS,
              "train.max_iters_per_epoch": ITERS, "train.val_interval": 0, "train.log_interval": 1,
              "train.num_threads": 1, "optim.type": "sgd", "results_dir": str(Path(work_dir).parent / "results")}
    values.update(extra)
    return ["train", CONFIG, "--work-dir", str(work_dir), "--seed", "7", "--deterministic", "--no-progress",
            "--device", "cpu", "--set", *(f"{k}={v}" for k, v in values.items())]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(driver, args, nproc=1, env=None):
    """``nproc`` processes of ``python DRIVER ARGS``; for two, a gloo group set up from RANK,
    WORLD_SIZE and MASTER_* as torchrun sets them (started by hand: each exit status is seen)."""
    port, procs = free_port(), []
    for rank in range(nproc):
        group = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(nproc),
                 "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)} if nproc > 1 else {}
        procs.append(subprocess.Popen([sys.executable, str(driver), *args], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, env={**os.environ, **group, **(env or {})}))
    return procs


def finish(procs, timeout=240):
    return [(p.communicate(timeout=timeout)[0], p.returncode) for p in procs]


def wait_for_pauses(pause_dir, procs, count, timeout=240):
    """The pids of the ``count`` paused processes by rank, once all have paused."""
    deadline = time.time() + timeout
    while len(markers := sorted(pause_dir.glob("paused.*"))) < count:
        for proc in procs:
            assert proc.poll() is None, f"a process ended before pausing:\n{proc.communicate()[0][-3000:]}"
        assert time.time() < deadline, f"no pause within {timeout} s"
        time.sleep(0.02)
    return {int(m.name.split(".")[1]): int(m.read_text()) for m in markers}


def signal_at(driver, args, step, signum, pause_dir, nproc=1, to_rank=0, env=None):
    """Run ``args``, send ``signum`` to rank ``to_rank`` during the ``step``-th step of this
    session; returns the outputs and exit statuses of the processes."""
    pause_dir.mkdir()
    procs = start(driver, args, nproc, {**(env or {}), "PAUSE_AT": str(step), "PAUSE_DIR": str(pause_dir)})
    try:
        pids = wait_for_pauses(pause_dir, procs, nproc)
        os.kill(pids[to_rank], signum)
        (pause_dir / "go").write_text("")
        return finish(procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


def position(iteration):
    """(epochs done, iterations of the next epoch) after global iteration ``iteration``."""
    return divmod(iteration, ITERS)


def log_positions(work_dir):
    lines = [json.loads(line) for line in (work_dir / "log.json").read_text().splitlines()]
    return [(e["epoch"], e["iter"]) for e in lines if e.get("mode") == "train"]


def assert_stopped_at(work_dir, iteration, signal_name):
    """run.json says preempted at ``iteration``, the checkpoint holds that iteration, and the last
    log line is that iteration's."""
    epoch, inner = position(iteration)
    state = json.loads((work_dir / "run.json").read_text())
    assert (state["status"], state["epoch"], state["inner_iter"], state["iteration"], state["signal"]) == (
        "preempted", epoch, inner, iteration, signal_name)
    assert {"pid", "host", "heartbeat"} <= set(state)
    meta = read_checkpoint(work_dir / "latest.pth")["meta"]
    assert (meta["epoch"], meta["inner_iter"], meta["iter"]) == (epoch, inner, iteration)
    assert log_positions(work_dir)[-1] == ((iteration - 1) // ITERS + 1, (iteration - 1) % ITERS + 1)
    assert not (work_dir / ".lock").exists()  # given back


def assert_same_weights(ref_dir, work_dir):
    a, b = read_checkpoint(ref_dir / "latest.pth")["state_dict"], read_checkpoint(work_dir / "latest.pth")["state_dict"]
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    assert log_positions(work_dir) == [(e, i) for e in range(1, EPOCHS + 1) for i in range(1, ITERS + 1)]


def fake_scontrol(folder, exit_status):
    """An ``scontrol`` on the PATH that records its arguments in folder/scontrol.args."""
    folder.mkdir()
    script = folder / "scontrol"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {folder / 'scontrol.args'}\n"
                      f"[ {exit_status} = 0 ] || echo 'scontrol: error: Job is not requeueable' >&2\n"
                      f"exit {exit_status}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def one_line_with(output, text):
    lines = [line for line in output.splitlines() if text in line]
    assert len(lines) == 1, output[-3000:]
    return lines[0]


def test_sigterm_then_sigusr1_then_resume_gives_the_uninterrupted_weights(synth, driver, tmp_path):
    """One process under SLURM: SIGTERM inside an epoch, scontrol requeue called; the requeued job
    (SLURM_RESTART_COUNT=1, no --resume) resumes by itself and gets SIGUSR1 at an epoch's last
    iteration (its boundary is after the epoch), the requeue fails with one warning; a last resume
    finishes with the weights of an uninterrupted run."""
    rng = random.Random(18)
    first = rng.choice([i for i in range(1, ITERS * EPOCHS - 1) if i % ITERS])  # inside an epoch
    second = rng.choice([i for i in range(first + 1, ITERS * EPOCHS) if i % ITERS == 0])  # an epoch's end
    ref, wd = tmp_path / "ref", tmp_path / "wd"
    assert finish(start(driver, train_args(synth, ref)))[0][1] == 0

    slurm = {"SLURM_JOB_ID": "4242", **fake_scontrol(tmp_path / "bin_ok", 0)}
    ((out, code),) = signal_at(driver, train_args(synth, wd), first, signal.SIGTERM, tmp_path / "p1", env=slurm)
    assert code == 75, out[-3000:]
    assert_stopped_at(wd, first, "SIGTERM")
    assert (tmp_path / "bin_ok" / "scontrol.args").read_text() == "requeue 4242\n"
    line = one_line_with(out, "continue with")
    assert line.startswith(f"tinlib train: stopped by SIGTERM after epoch {first // ITERS} + {first % ITERS} "
                           f"iterations (iteration {first}), checkpointed in {wd / 'latest.pth'}; the requeued job "
                           f"resumes by itself; or continue with: tinlib train {CONFIG} --work-dir {wd} --seed 7")
    assert line.endswith(" --resume auto") and line.count("--resume") == 1
    assert "Traceback" not in out

    requeued = {"SLURM_JOB_ID": "4242", "SLURM_RESTART_COUNT": "1", **fake_scontrol(tmp_path / "bin_fail", 1)}
    ((out, code),) = signal_at(driver, train_args(synth, wd), second - first, signal.SIGUSR1, tmp_path / "p2",
                               env=requeued)
    assert code == 75, out[-3000:]
    assert "SLURM_RESTART_COUNT=1: the job was started again; resuming as with --resume auto" in out
    assert "resumed from" in out
    assert_stopped_at(wd, second, "SIGUSR1")
    assert "could not requeue SLURM job 4242" in one_line_with(out, "Job is not requeueable")

    ((out, code),) = finish(start(driver, [*train_args(synth, wd), "--resume", "auto"]))
    assert code == 0, out[-3000:]
    assert json.loads((wd / "run.json").read_text())["status"] == "finished"
    assert_same_weights(ref, wd)


def test_two_processes_stop_at_the_same_iteration_and_resume_exactly(synth, driver, pair_reference, tmp_path):
    """Two gloo processes; only rank 1 receives SIGUSR1 (a random iteration inside an epoch). Both
    stop after that iteration with status 75; the resumed pair ends as an uninterrupted pair."""
    step = random.Random(2).choice([i for i in range(2, ITERS * EPOCHS) if i % ITERS])
    wd = tmp_path / "wd"
    results = signal_at(driver, train_args(synth, wd, **PAIR), step, signal.SIGUSR1, tmp_path / "p", nproc=2, to_rank=1)
    assert [code for _, code in results] == [75, 75], results[0][0][-3000:] + results[1][0][-3000:]
    assert_stopped_at(wd, step, "SIGUSR1")
    assert "continue with" in results[0][0] and "continue with" not in results[1][0]  # rank 0 says it

    resumed = finish(start(driver, train_args(synth, wd, **PAIR), nproc=2, env={"SLURM_RESTART_COUNT": "1"}))
    assert [code for _, code in resumed] == [0, 0], resumed[0][0][-3000:]
    assert_same_weights(pair_reference, wd)


def test_a_worker_killed_under_torchrun_is_restarted_and_resumes(synth, driver, pair_reference, tmp_path):
    """torchrun --max-restarts 1: rank 0 is killed with SIGKILL in a step after an iteration
    checkpoint; the restarted pair resumes from it by itself and ends with the uninterrupted weights."""
    # a step after the epoch's iteration checkpoint and before its own: the 3rd or 4th of an epoch
    step = random.Random(3).choice([k for k in range(1, ITERS * EPOCHS + 1) if (k - 1) % ITERS in (2, 3)])
    wd = tmp_path / "wd"

    pause_dir = tmp_path / "p"
    pause_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "--max-restarts", "1", str(driver), *train_args(synth, wd, **PAIR)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                            env={**os.environ, "PAUSE_AT": str(step), "PAUSE_DIR": str(pause_dir)})
    try:
        pids = wait_for_pauses(pause_dir, [proc], 2)
        os.kill(pids[0], signal.SIGKILL)
        (pause_dir / "go").write_text("")  # rank 1 goes on into the step, whose all-reduce fails
        out = proc.communicate(timeout=300)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-5000:]
    assert "TORCHELASTIC_RESTART_COUNT=1: the job was started again; resuming as with --resume auto" in out
    assert f"latest.pth (after epoch {(step - 1) // ITERS} + {EVERY} iterations)" in out, out[-5000:]
    assert "taking over the lock" in out and "its process is gone" in out  # the killed rank 0's
    assert_same_weights(pair_reference, wd)


def test_ctrl_c_stops_at_the_boundary_with_status_130_and_no_requeue(synth, driver, tmp_path):
    step = random.Random(130).choice([i for i in range(1, ITERS * EPOCHS) if i % ITERS])
    wd = tmp_path / "wd"
    slurm = {"SLURM_JOB_ID": "4242", **fake_scontrol(tmp_path / "bin", 0)}
    ((out, code),) = signal_at(driver, train_args(synth, wd), step, signal.SIGINT, tmp_path / "p", env=slurm)
    assert code == 130, out[-3000:]
    state = json.loads((wd / "run.json").read_text())
    assert (state["status"], state["iteration"], state["signal"]) == ("interrupted", step, "SIGINT")
    assert read_checkpoint(wd / "latest.pth")["meta"]["iter"] == step
    assert one_line_with(out, "continue with").startswith("tinlib train: stopped by SIGINT")
    assert not (tmp_path / "bin" / "scontrol.args").exists()  # Ctrl-C is not a preemption: no requeue
