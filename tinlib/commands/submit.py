"""``tinlib submit CONFIG``: write the sbatch script that trains and tests a config under SLURM
(``srun``, one task per GPU) and submit it with ``sbatch``."""
from __future__ import annotations

import argparse
import sys

from tinlib.cli import command_main
from tinlib.commands import add_override_arguments, overrides_of

PROG = "tinlib submit"


def build_parser() -> argparse.ArgumentParser:
    from tinlib.config import available_configs

    p = argparse.ArgumentParser(prog=PROG, description="Write the sbatch script of a config's training (srun, "
                                "one task per GPU, --resume auto, requeued after a preemption) and its test, "
                                "then submit it with sbatch.", epilog="configs: " + ", ".join(available_configs()))
    p.add_argument("config", help="config name (see tinlib/configs) or path to a .py/.json config")
    add_override_arguments(p, "data.root=/data/sthv1", checkpoint=False)
    p.add_argument("--work-dir", help="checkpoints, the script and the job's log (default work_dirs/<config name>)")
    p.add_argument("--nodes", type=int, help="nodes (default: the config's zoo.gpus, e.g. 8x4: 4)")
    p.add_argument("--gpus-per-node", type=int, help="GPUs, and tasks, per node (default: zoo.gpus, e.g. 8x4: 8)")
    p.add_argument("--cpus-per-task", type=int, help="CPUs per task (default: data.workers_per_gpu + 1)")
    p.add_argument("--partition", help="SLURM partition")
    p.add_argument("--account", help="SLURM account")
    p.add_argument("--time", help="time limit (HH:MM:SS or D-HH:MM:SS); the job is requeued when it runs out")
    p.add_argument("--job-name", help="job name (default: the config name)")
    p.add_argument("--seed", type=int, help="random seed of the training (default: train.seed, else drawn)")
    p.add_argument("--no-test", action="store_true", help="train only")
    p.add_argument("--python", default=sys.executable,
                   help="the interpreter on the compute nodes (default: this one, %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="print the script; write and submit nothing")
    return p


def job_commands(config: str, work_dir: str, overrides: list[str], *, python: str, seed: int | None = None,
                 test: bool = True) -> list[list[str]]:
    """The ``tinlib train`` (resuming from the work dir's latest checkpoint when there is one) and
    ``tinlib test`` command lines of the job."""
    sets = ["--set", *overrides] if overrides else []
    train = [python, "-m", "tinlib", "train", config, "--work-dir", work_dir, "--resume", "auto", "--no-progress"]
    train += ["--seed", str(seed)] if seed is not None else []
    commands = [train + sets]
    if test:
        commands.append([python, "-m", "tinlib", "test", config, f"{work_dir}/latest.pth", "--no-progress", *sets])
    return commands


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tinlib.config import ConfigError, load_config
    from tinlib.engine.slurm import JobSpec, parse_gpus, sbatch_script, submit

    cfg = load_config(args.config, overrides_of(args))
    nodes, gpus = args.nodes, args.gpus_per_node
    if nodes is None or gpus is None:
        try:
            row_nodes, row_gpus = parse_gpus(cfg.zoo.gpus)
        except ValueError:
            raise ConfigError(f"{cfg.name}: its zoo.gpus ({cfg.zoo.gpus!r}) gives no GPU layout; pass --nodes N "
                              "--gpus-per-node G") from None
        nodes, gpus = nodes or row_nodes, gpus or row_gpus
    work_dir = args.work_dir or str(cfg.resolved_work_dir())
    job = JobSpec(nodes=nodes, gpus_per_node=gpus, cpus_per_task=args.cpus_per_task or cfg.data.workers_per_gpu + 1,
                  output=f"{work_dir}/slurm-%j.out", job_name=args.job_name or cfg.name, partition=args.partition,
                  account=args.account, time=args.time)
    commands = job_commands(args.config, work_dir, list(args.overrides), python=args.python, seed=args.seed,
                            test=not args.no_test)
    script = sbatch_script(job, commands)
    if args.dry_run:
        print(script, end="")
        return 0
    # sbatch opens the log before the job starts and does not create its folder
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    print(submit(script, Path(work_dir) / "submit.sbatch"))
    print(f"the job's log: {work_dir}/slurm-<job id>.out")
    return 0


main = command_main(PROG, build_parser, _run)
