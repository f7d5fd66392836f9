"""``python -m tinlib.pipeline.slurm DATASET``: what ``make reproduce-DATASET LAUNCHER=slurm`` runs.
The model-zoo row's training and test go to SLURM as one sbatch job (``tinlib submit`` with the
row's config and the overrides that point it at the prepared lists), instead of running here.
``tinlib submit`` writes the script; this module only adds what the make pipeline knows (the data
description, the profile, the results and work folders)."""
from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tinlib.cli import run_command
from tinlib.errors import UserError
from tinlib.pipeline import recipes

PROG = "tin-kit"  # errors are read by people who typed a make target


def submit_command(dataset: str, data_root: str, *, lists_dir: str | None = None, profile: str = "full",
                   results_dir: str = "results", work_root: str = "work_dirs",
                   sbatch_options: Sequence[str] = ()) -> list[str]:
    """The ``tinlib submit`` command line of the row of ``dataset`` on the lists in ``lists_dir``
    (default ``data_root``), with the ``profile``'s overrides; ``sbatch_options`` are passed on.

    Raises:
        UserError: the lists are not prepared (training needs them), naming what to run."""
    from tinlib.config import load_config
    from tinlib.pipeline.runconfig import require_train_split, run_overrides
    from tinlib.report.workflow import read_data_description

    config = recipes.ZOO_CONFIGS[dataset]
    lists_root = lists_dir or data_root
    if read_data_description(lists_root) is None:
        out = f" --out {lists_dir}" if lists_dir else ""
        raise UserError(f"{Path(lists_root) / 'tinlib_prepare.json'} not found: prepare the lists before submitting "
                        f"(`tinlib prepare {dataset} --root {data_root}{out}`, in a job of its own for the frame "
                        "extraction of sthv2/k400)")
    require_train_split(lists_root)
    overrides = run_overrides(load_config(config), lists_root, dict(recipes.PROFILES[profile]), results_dir)
    return [sys.executable, "-m", "tinlib", "submit", config, "--work-dir", str(Path(work_root) / config),
            *sbatch_options, "--set", *[_set_argument(key, value) for key, value in overrides.items()]]


def _set_argument(key: str, value: object) -> str:
    """``key=value`` for ``--set``, the value written as a Python literal only where the plain text
    would read back as something else (a path stays readable in the script)."""
    from tinlib.config import parse_override

    plain = f"{key}={value}"
    return plain if parse_override(plain) == (key, value) else f"{key}={value!r}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tinlib.pipeline.slurm",
                                description="Submit a model-zoo row's training and test as one sbatch job.")
    p.add_argument("dataset", choices=sorted(recipes.ZOO_CONFIGS))
    p.add_argument("--data-root", required=True)
    p.add_argument("--lists-dir", help="where the prepared lists are (default DATA_ROOT)")
    p.add_argument("--profile", choices=sorted(recipes.PROFILES), default="full")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--work-root", default="work_dirs", help="checkpoints go to WORK_ROOT/<config>")
    for option in ("--nodes", "--gpus-per-node", "--partition", "--account", "--time"):
        p.add_argument(option, help=f"tinlib submit's {option}")
    p.add_argument("--dry-run", action="store_true", help="print the script; submit nothing")
    return p


def run(args: argparse.Namespace) -> int:
    passed = [(f"--{key.replace('_', '-')}", getattr(args, key))
              for key in ("nodes", "gpus_per_node", "partition", "account", "time")]
    options = [part for option, value in passed if value for part in (option, value)]
    options += ["--dry-run"] if args.dry_run else []
    cmd = submit_command(args.dataset, args.data_root, lists_dir=args.lists_dir, profile=args.profile,
                         results_dir=args.results_dir, work_root=args.work_root, sbatch_options=options)
    return subprocess.run(cmd).returncode


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROG, build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
