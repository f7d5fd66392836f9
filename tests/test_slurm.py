"""SLURM: node lists, the layout of a process started by srun (torchrun's variables win), two
real gloo processes started with srun's variables and no torchrun, and the sbatch script that
`tinlib submit` writes (a golden text for the sthv1 row) and submits."""
import json
import os
import random
import shlex
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from test_engine_e2e import CONFIG, log_lines, overrides, weights

from tinlib.commands.submit import main as submit_main
from tinlib.config import parse_override
from tinlib.engine.slurm import Layout, expand_nodelist, first_host, launch_layout, parse_gpus


@pytest.mark.parametrize("nodelist, hosts", [
    ("localhost", ["localhost"]),
    ("node[01-04,07]", ["node01", "node02", "node03", "node04", "node07"]),
    ("gpu-a[1-2],gpu-b3", ["gpu-a1", "gpu-a2", "gpu-b3"]),
    ("n[8-11]", ["n8", "n9", "n10", "n11"]),  # no padding: the width grows
    ("n[098-101]", ["n098", "n099", "n100", "n101"]),  # padded to the start's width
    ("rack[1-2]-n[01-02]", ["rack1-n01", "rack1-n02", "rack2-n01", "rack2-n02"]),
    ("a[3],b[1-2]-ib,c", ["a3", "b1-ib", "b2-ib", "c"]),
    ("10.0.0.[5-6]", ["10.0.0.5", "10.0.0.6"]),
])
def test_nodelist_expansion(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


def test_a_bad_nodelist_is_named():
    with pytest.raises(ValueError, match=r"node\[a-b\]"):
        expand_nodelist("node[a-b]")


def test_first_host_asks_scontrol_when_it_is_there(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    # scontrol knows forms this module does not need to: its answer is taken as it is
    scontrol.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'asked'}\nprintf 'ib-head-7\\nib-head-8\\n'\n")
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert first_host("head-[7-8]") == "ib-head-7"  # not what the Python expansion gives
    assert (tmp_path / "asked").read_text().split() == ["show", "hostnames", "head-[7-8]"]
    scontrol.write_text("#!/bin/sh\nexit 1\n")  # a failing scontrol: the Python expansion
    assert first_host("node[03-04]") == "node03"


def test_layout_from_srun_variables_torchrun_wins_and_single_process_otherwise():
    srun = {"SLURM_JOB_ID": "123456", "SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
            "SLURM_NODEID": "2", "SLURM_JOB_NODELIST": "gpu[07-10]"}
    # the port from the job id: 20000 + 123456 % 10000
    assert launch_layout(srun) == Layout(5, 8, 1, "gpu07", 23456)
    assert launch_layout({**srun, "MASTER_ADDR": "head", "MASTER_PORT": "29400"}) == Layout(5, 8, 1, "head", 29400)
    # the step's node list (where task 0 runs) before the job's
    assert launch_layout({**srun, "SLURM_STEP_NODELIST": "gpu[09-10]"}).master_addr == "gpu09"
    torchrun = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "3", "MASTER_ADDR": "x", "MASTER_PORT": "1"}
    assert launch_layout({**srun, **torchrun}) == Layout(3, 4, 3, None, None)  # env:// reads MASTER_*
    assert launch_layout({**srun, "SLURM_NTASKS": "1"}) == Layout()  # one task: a single process
    assert launch_layout({k: v for k, v in srun.items() if k != "SLURM_JOB_ID"}) == Layout()
    assert launch_layout({}) == Layout()
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        launch_layout({k: v for k, v in srun.items() if k != "SLURM_JOB_NODELIST"})


def test_zoo_gpus_cell():
    assert parse_gpus("8x4") == (4, 8)  # four nodes of eight GPUs
    assert parse_gpus("8") == (1, 8)
    with pytest.raises(ValueError):
        parse_gpus("cpu")


def free_port_in_derived_range():
    """A free port in the range the job-id derivation gives (20000-29999)."""
    for _ in range(200):
        port = random.randrange(20000, 30000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    pytest.skip("no free port in 20000-29999")


def srun_env(rank, tasks, job_id):
    """The environment srun gives task ``rank`` of ``tasks`` on one node (no torchrun variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC_")) and k not in
           ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    return {**env, "SLURM_JOB_ID": str(job_id), "SLURM_PROCID": str(rank), "SLURM_NTASKS": str(tasks),
            "SLURM_LOCALID": str(rank), "SLURM_NODEID": "0", "SLURM_JOB_NODELIST": "localhost",
            "SLURM_NODELIST": "localhost"}


def run_as_srun(args, cwd, tasks=2, timeout=300):
    """``srun --ntasks TASKS python -m tinlib ARGS`` on one node: the tasks with srun's variables."""
    job_id = 70000 + free_port_in_derived_range() - 20000  # its derived port is the free one
    procs = [subprocess.Popen([sys.executable, "-m", "tinlib", *args], cwd=cwd, env=srun_env(rank, tasks, job_id),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in range(tasks)]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=timeout)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]
    return outputs


@pytest.mark.slow
def test_two_tasks_started_like_srun_form_one_run_equal_to_torchrun(synth, tmp_path):
    common = [CONFIG, "--seed", "1", "--deterministic", "--no-progress", "--device", "cpu"]
    settings = overrides(synth, **{"train.epochs": 1, "train.max_iters_per_epoch": 3, "train.val_interval": 0,
                                   "train.tensorboard": False})
    torchrun, srun = tmp_path / "torchrun", tmp_path / "srun"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "tinlib", "train", *common, "--work-dir", str(torchrun), *settings],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_as_srun(["train", *common, "--work-dir", str(srun), *settings], cwd=tmp_path)

    header = log_lines(srun / "log.json")[0]
    assert header["world_size"] == 2  # one run of two processes, not two runs of one
    assert [(e["epoch"], e["iter"]) for e in log_lines(srun / "log.json") if e.get("mode") == "train"] == \
        [(1, 1), (1, 2), (1, 3)]
    assert json.loads((srun / "run.json").read_text())["world_size"] == 2
    a, b = weights(torchrun / "latest.pth"), weights(srun / "latest.pth")
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"

    # `srun tinlib test`: the two tasks share the test videos and write one metrics.json
    results = tmp_path / "test_results"
    run_as_srun(["test", CONFIG, str(srun / "latest.pth"), "--no-progress", "--device", "cpu",
                 *overrides(synth, results_dir=str(results))], cwd=tmp_path)
    metrics = json.loads((results / CONFIG / "metrics.json").read_text())
    assert (metrics["num_samples"], metrics["world_size"]) == (11, 2)  # the 11 test videos, each once


# The sthv1 row, by hand: zoo.gpus "8x4" is four nodes of eight GPUs, one task per GPU;
# data.workers_per_gpu is 2, so three CPUs per task; the work dir is work_dirs/<config>.
GOLDEN_STHV1 = textwrap.dedent("""\
    #!/bin/bash
    #SBATCH --job-name=tin_r50_1x1x8_40e_sthv1_rgb
    #SBATCH --nodes=4
    #SBATCH --ntasks-per-node=8
    #SBATCH --gpus-per-node=8
    #SBATCH --cpus-per-task=3
    #SBATCH --partition=gpu
    #SBATCH --account=proj42
    #SBATCH --time=2-00:00:00
    #SBATCH --output=work_dirs/tin_r50_1x1x8_40e_sthv1_rgb/slurm-%j.out
    #SBATCH --requeue
    #SBATCH --signal=USR1@120

    # one task per GPU; tinlib reads its rank, the world size and the master address from SLURM_*
    set -euo pipefail
    srun python -m tinlib train tin_r50_1x1x8_40e_sthv1_rgb --work-dir work_dirs/tin_r50_1x1x8_40e_sthv1_rgb \
--resume auto --no-progress --set data.root=/data/sthv1 'data.train_prefix=20bn something'
    srun python -m tinlib test tin_r50_1x1x8_40e_sthv1_rgb work_dirs/tin_r50_1x1x8_40e_sthv1_rgb/latest.pth \
--no-progress --set data.root=/data/sthv1 'data.train_prefix=20bn something'
""")
STHV1_ARGS = ["tin_r50_1x1x8_40e_sthv1_rgb", "--python", "python", "--partition", "gpu", "--account", "proj42",
              "--time", "2-00:00:00", "--set", "data.root=/data/sthv1", "data.train_prefix=20bn something"]


def test_sbatch_script_of_the_sthv1_row(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert submit_main([*STHV1_ARGS, "--dry-run"]) == 0
    assert capsys.readouterr().out == GOLDEN_STHV1
    assert not (tmp_path / "work_dirs").exists()  # a dry run writes nothing
    # --nodes / --gpus-per-node override the row; --no-test leaves the test out
    assert submit_main([*STHV1_ARGS, "--dry-run", "--nodes", "2", "--gpus-per-node", "4", "--no-test"]) == 0
    script = capsys.readouterr().out
    assert "#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-node=4\n" in script
    assert "tinlib train" in script and "tinlib test" not in script


def test_submit_without_sbatch_writes_the_script_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert submit_main(STHV1_ARGS) == 0
    out = capsys.readouterr().out
    script = tmp_path / "work_dirs" / "tin_r50_1x1x8_40e_sthv1_rgb" / "submit.sbatch"
    assert "sbatch is not on this machine" in out and str(script.relative_to(tmp_path)) in out
    assert script.read_text() == GOLDEN_STHV1
    # a config without a GPU layout in its zoo section needs --nodes and --gpus-per-node
    assert submit_main([CONFIG, "--dry-run"]) == 2
    assert "--gpus-per-node" in capsys.readouterr().err


def test_submit_calls_sbatch(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "sbatch"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'submitted'}\necho 'Submitted batch job 4242'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert submit_main(STHV1_ARGS) == 0
    assert "Submitted batch job 4242" in capsys.readouterr().out
    assert (tmp_path / "submitted").read_text().strip() == "work_dirs/tin_r50_1x1x8_40e_sthv1_rgb/submit.sbatch"
    fake.write_text("#!/bin/sh\necho 'sbatch: error: invalid partition specified: gpu' >&2\nexit 1\n")
    assert submit_main(STHV1_ARGS) == 2
    assert "invalid partition specified: gpu" in capsys.readouterr().err


def test_make_launcher_slurm_submits_the_row_on_the_prepared_lists(synth, tmp_path, capfd):
    """`make reproduce-sthv1 LAUNCHER=slurm` runs `python -m tinlib.pipeline.slurm sthv1 ...`: the
    row's config, pointed at the lists the data description names (the synthetic data has 11 classes
    where the row has 174), in one sbatch job."""
    from tinlib.pipeline.slurm import main as row_main

    assert row_main(["sthv1", "--data-root", str(synth), "--results-dir", str(tmp_path / "res"), "--work-root",
                     str(tmp_path / "wd"), "--partition", "gpu", "--time", "1:00:00", "--dry-run"]) == 0
    script = capfd.readouterr().out
    assert "#SBATCH --nodes=4\n#SBATCH --ntasks-per-node=8\n" in script and "#SBATCH --partition=gpu\n" in script
    train_line = next(line for line in script.splitlines() if line.startswith("srun ") and " train " in line)
    assert f"tin_r50_1x1x8_40e_sthv1_rgb --work-dir {tmp_path / 'wd' / 'tin_r50_1x1x8_40e_sthv1_rgb'}" in train_line
    args = shlex.split(train_line)
    sets = dict(parse_override(text) for text in args[args.index("--set") + 1:])
    assert sets["data.root"] == str(synth) and sets["model.num_classes"] == 11
    assert sets["results_dir"] == str(tmp_path / "res")
    assert not (tmp_path / "wd").exists()
    # lists not prepared: one line saying what to run
    (tmp_path / "raw").mkdir()
    assert row_main(["sthv1", "--data-root", str(tmp_path / "raw"), "--dry-run"]) == 2
    err = capfd.readouterr().err
    assert "tinlib_prepare.json not found" in err and f"tinlib prepare sthv1 --root {tmp_path / 'raw'}" in err


def test_console_rank_follows_the_launch_layout(monkeypatch):
    # only rank 0 prints progress: under srun without torchrun the rank is SLURM_PROCID
    from tinlib.logs import process_rank

    for key in ("RANK", "WORLD_SIZE", "SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "1")
    assert process_rank() == 0  # not in a job: a plain process
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert process_rank() == 0  # one task: no process group
    monkeypatch.setenv("SLURM_NTASKS", "2")
    assert process_rank() == 1
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert process_rank() == 0  # torchrun's variables win
