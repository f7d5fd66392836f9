"""End-to-end on the synthetic dataset written at test time: the command lines, a real training
process killed with SIGKILL and resumed, and 2 gloo processes against 1 process."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tinlib.checkpoint import read_checkpoint
from tinlib.commands.test import main as evaluate_main
from tinlib.commands.train import main as train_main

CONFIG = "demo_tin_r18_synthetic"

# `python -c PAUSE_DRIVER tinlib ARGS...`: runs the tinlib command line, except that the PAUSE_AT-th
# training step of the process (tinlib.engine.train.train_step, counted from 1) first writes the
# process id to PAUSE_SIGNAL and hangs, so that the test can kill the run at a known iteration.
PAUSE_DRIVER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import tinlib.engine.train as engine_train

    original, calls = engine_train.train_step, [0]

    def train_step(*args, **kwargs):
        calls[0] += 1
        if calls[0] == int(os.environ["PAUSE_AT"]):
            Path(os.environ["PAUSE_SIGNAL"]).write_text(str(os.getpid()))
            time.sleep(600)
        return original(*args, **kwargs)

    engine_train.train_step = train_step
    from tinlib.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def overrides(root, **extra):
    values = {"data.root": str(root), "model.num_segments": 4, "data.input_size": 32, "data.scale_size": 40,
              "data.videos_per_gpu": 2, "data.val_videos_per_gpu": 4, "data.test_videos_per_gpu": 4,
              "data.workers_per_gpu": 0, "train.epochs": 3, "train.log_interval": 1, "train.num_threads": 1,
              "results_dir": str(Path(root).parent / "results"),  # not the repository's results/
              # the recipe these tests assert on, whatever the demo config is tuned to
              "optim.type": "sgd", "optim.lr": 0.02, "optim.ref_videos_per_gpu": 8}
    values.update(extra)
    return ["--set"] + [f"{k}={v}" for k, v in values.items()]


def weights(path):
    return read_checkpoint(path)["state_dict"]


def log_lines(path):
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def run_cli(args, env=None, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "tinlib", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_train_and_test_commands_on_synthetic_data(synth, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert train_main([CONFIG, "--work-dir", "wd", "--seed", "0", "--no-progress",
                       *overrides(synth, results_dir="results", **{"train.epochs": 2, "train.val_interval": 1})]) == 0
    log = log_lines(tmp_path / "wd" / "log.json")
    assert [e["epoch"] for e in log if e.get("mode") == "val"] == [1, 2]
    assert (tmp_path / "wd" / "best.pth").is_file()
    train_json = json.loads((tmp_path / "results" / CONFIG / "train.json").read_text())
    assert train_json["lr_scaling"]["lr"] == pytest.approx(0.02 * 2 / 8)
    assert evaluate_main([CONFIG, "wd/latest.pth", "--no-progress", *overrides(synth, results_dir="results")]) == 0
    metrics = json.loads((tmp_path / "results" / CONFIG / "metrics.json").read_text())
    assert metrics["num_samples"] == 11 and metrics["split"] == "test"
    assert metrics["config"]["data"]["root"] == str(synth)
    scores = np.load(tmp_path / "results" / CONFIG / "scores.npz")["scores"]
    assert scores.shape == (11, 11) and np.allclose(scores.sum(1), 1, atol=1e-5)  # average_clips=prob


def test_bad_inputs_give_clear_messages_before_work(synth, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert train_main([CONFIG, *overrides(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "data root" in err and "does not exist" in err and "--set data.root" in err
    assert train_main([CONFIG, *overrides(synth, **{"model.num_classes": 5})]) == 2
    assert "num_classes" in capsys.readouterr().err
    assert train_main([CONFIG, "--set", "optim.lrr=1"]) == 2
    assert "did you mean 'lr'" in capsys.readouterr().err
    assert evaluate_main([CONFIG, str(tmp_path / "none.pth"), *overrides(synth)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert not (tmp_path / "work_dirs").exists()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_identical_weights(synth, tmp_path):
    args = [CONFIG, "--seed", "5", "--deterministic", "--no-progress",
            *overrides(synth, **{"train.checkpoint_interval_iters": 3, "train.val_interval": 2})]
    ref = tmp_path / "ref"
    run_cli(["train", *args, "--work-dir", str(ref)])

    victim, paused = tmp_path / "victim", tmp_path / "paused"
    # 11 iterations per epoch: stop in step 8 of epoch 2, after its mid-epoch checkpoint at iteration 6
    proc = subprocess.Popen([sys.executable, "-c", PAUSE_DRIVER, "train", *args, "--work-dir", str(victim)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PAUSE_AT": str(11 + 8), "PAUSE_SIGNAL": str(paused)})
    deadline = time.time() + 240
    try:
        while not paused.exists():
            assert proc.poll() is None, f"training ended before it could be killed:\n{proc.stdout.read()}"
            assert time.time() < deadline, "training did not reach epoch 2 within 240 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    meta = read_checkpoint(victim / "latest.pth")["meta"]
    assert (meta["epoch"], meta["inner_iter"]) == (1, 6)  # killed mid-epoch 2
    killed_at = [(e["epoch"], e["iter"]) for e in log_lines(victim / "log.json") if e.get("mode") == "train"][-1]
    assert killed_at == (2, 7)
    resumed = run_cli(["train", *args, "--work-dir", str(victim), "--resume", "auto"])
    assert "resumed from" in resumed.stderr  # messages go to the log (stderr)

    a, b = weights(ref / "latest.pth"), weights(victim / "latest.pth")
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    assert read_checkpoint(victim / "latest.pth")["meta"]["epoch"] == 3
    positions = [(e["epoch"], e["iter"]) for e in log_lines(victim / "log.json") if e.get("mode") == "train"]
    assert positions == [(e, i) for e in (1, 2, 3) for i in range(1, 12)]


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(synth, tmp_path):
    """2 processes x 2 videos (gloo) == 1 process x 4 videos, TIN on the synthetic data.

    Per-process BN batch statistics are the one thing that legitimately differs between N
    processes and 1; here BN runs in eval mode (``model.norm_eval``), and dropout is off (its masks
    are drawn per process). BN synchronization (``train.sync_bn``) is checked exactly in
    test_group_batchnorm_under_ddp_equals_batchnorm_on_the_union below: end to end, train-mode BN
    on 8-frame batches of 32x32 clips is too ill-conditioned for a tight tolerance (two 1-process
    runs that differ only in their thread count drift apart as well)."""
    common = [CONFIG, "--seed", "1", "--deterministic", "--no-progress"]
    settings = {"train.epochs": 2, "train.val_interval": 2, "model.dropout": 0.0, "model.norm_eval": True}
    one, two = tmp_path / "one", tmp_path / "two"
    run_cli(["train", *common, "--work-dir", str(one), *overrides(synth, **settings, **{"data.videos_per_gpu": 4})])
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "tinlib", "train", *common, "--work-dir", str(two), "--device", "cpu",
                           *overrides(synth, **settings, **{"data.videos_per_gpu": 2})],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log_one, log_two = log_lines(one / "log.json"), log_lines(two / "log.json")
    assert (log_one[0]["world_size"], log_two[0]["world_size"]) == (1, 2)
    assert log_one[0]["lr_scaling"]["lr"] == log_two[0]["lr_scaling"]["lr"] == pytest.approx(0.02 * 4 / 8)
    assert log_one[0]["iters_per_epoch"] == log_two[0]["iters_per_epoch"] == 6
    # every iteration: the same loss (averaged over processes) and the same gradient norm
    train_one = [e for e in log_one if e.get("mode") == "train"]
    train_two = [e for e in log_two if e.get("mode") == "train"]
    assert len(train_one) == len(train_two) == 12
    for e1, e2 in zip(train_one, train_two):
        assert e1["loss_cls"] == pytest.approx(e2["loss_cls"], rel=1e-5)
        assert e1["grad_norm"] == pytest.approx(e2["grad_norm"], rel=1e-4)
    assert train_one[-1]["loss_cls"] != pytest.approx(train_one[0]["loss_cls"], rel=1e-3)  # it did train
    a, b = weights(one / "latest.pth"), weights(two / "latest.pth")
    assert a.keys() == b.keys()
    for key in a:
        if a[key].is_floating_point():
            assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-6), key
        else:
            assert torch.equal(a[key], b[key]), key
    # validation: every val video scored once, gathered in order, same accuracy
    val_one = [e for e in log_one if e.get("mode") == "val"]
    val_two = [e for e in log_two if e.get("mode") == "val"]
    assert val_one[-1]["iter"] == val_two[-1]["iter"] == 11
    assert val_one[-1]["top1_acc"] == pytest.approx(val_two[-1]["top1_acc"])
    assert val_one[-1]["mean_class_accuracy"] == pytest.approx(val_two[-1]["mean_class_accuracy"])


def _ddp_worker(rank, world, init_file, out_dir):
    import torch.distributed as dist
    from torch import nn

    from tinlib.engine.syncbn import convert_sync_batchnorm

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    net, data, targets = _toy_problem()
    if world > 1:
        net = convert_sync_batchnorm(net, torch.device("cpu"))
        net = nn.parallel.DistributedDataParallel(net)
    _train_toy(net, data[:, rank::world], targets[:, rank::world])
    module = net.module if world > 1 else net
    if rank == 0:
        torch.save({k: v.clone() for k, v in module.state_dict().items()}, f"{out_dir}/ddp.pt")
    # Leave without running gloo's C++ teardown: destroying the group (or letting the interpreter
    # destroy it at exit) can abort a rank with "terminate called without an active exception"
    # (SIGABRT, seen twice in CI even after a barrier). The results are saved; both ranks wait for
    # each other first, so neither leaves while the other still needs it.
    dist.barrier()
    os._exit(0)


def _toy_problem():
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3),
                        nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    data = torch.randn(3, 8, 3, 6, 6) * 2 + 0.5  # 3 steps x 8 samples
    targets = torch.randint(0, 3, (3, 8))
    return net, data, targets


def _train_toy(net, data, targets):
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for x, y in zip(data, targets):  # one SGD step per leading index
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.slow
def test_group_batchnorm_under_ddp_equals_batchnorm_on_the_union(tmp_path):
    """train.sync_bn on the CPU: 2 gloo processes with GroupBatchNorm2d inside DDP give the weights
    and running statistics of one process with plain BatchNorm2d over the whole batch."""
    import torch.multiprocessing as mp

    net, data, targets = _toy_problem()
    _train_toy(net, data, targets)
    reference = net.state_dict()
    # each process takes every 2nd sample of every step (the union is the reference batch)
    mp.start_processes(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    got = torch.load(tmp_path / "ddp.pt")
    assert got.keys() == reference.keys()
    for key in reference:
        assert torch.allclose(got[key].float(), reference[key].float(), rtol=1e-4, atol=1e-5), key


@pytest.mark.slow
def test_a_check_that_fails_on_rank_0_stops_every_process(synth, tmp_path):
    """Under torchrun, a work dir holding another run is found by rank 0 only; rank 1 must stop
    too, with the message, instead of waiting forever in a collective."""
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "run.json").write_text(json.dumps({"config_name": "some_other_config", "epoch": 3}))
    # a process left waiting would keep the command from ending: the timeout fails the test
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "tinlib", "train", CONFIG, "--work-dir", str(wd), "--device", "cpu",
                           *overrides(synth)], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.count("holds a run of config 'some_other_config'") == 2, proc.stderr[-3000:]
    assert not (wd / "log.json").exists()
