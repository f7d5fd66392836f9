"""``python -m tinlib.pipeline demo|ablation|reproduce|evaluate-published|latency|report|check-data``:
what the make targets run (paths from ``--notebooks-dir``, ``--results-dir``, ``--work-root``).
``check-data`` needs only the standard library: make runs it before the virtual environment exists.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinlib.cli import run_command
from tinlib.data.releases import SPLITS, choose_splits
from tinlib.logs import setup_logging
from tinlib.pipeline import recipes

if TYPE_CHECKING:
    from tinlib.pipeline.steps import Step

PROG = "python -m tinlib.pipeline"
# errors are read by people who typed a make target, not this module's name
ERROR_PREFIX = "tin-kit"

log = logging.getLogger(__name__)


def _add_row_options(p: argparse.ArgumentParser) -> None:
    """The options of a model-zoo row's run: dataset, data and lists folders, torchrun layout, profile."""
    p.add_argument("dataset", choices=sorted(recipes.ZOO_CONFIGS))
    p.add_argument("--data-root", default=os.environ.get("DATA_ROOT"))
    p.add_argument("--lists-dir", help="where lists go (default DATA_ROOT; use it when DATA_ROOT is read-only)")
    p.add_argument("--gpus", type=int, help="processes (GPUs) per node (default: the visible GPUs)")
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--node-rank", type=int, default=0)
    p.add_argument("--master-addr", default="127.0.0.1")
    p.add_argument("--master-port", type=int, default=29500)
    p.add_argument("--profile", choices=sorted(recipes.PROFILES), default="full")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m tinlib.pipeline`` and its sub-commands."""
    p = argparse.ArgumentParser(prog=PROG, description="The make targets' engine: notebook steps run with "
                                                       "papermill, skipped when up to date.")
    p.add_argument("--notebooks-dir", default="notebooks",
                   help="the folder of the notebooks the steps run (default notebooks)")
    p.add_argument("--results-dir", default="results",
                   help="run records, executed notebooks, reports (default results)")
    p.add_argument("--work-root", default="work_dirs", help="checkpoints go to WORK_ROOT/<config> (default work_dirs)")
    p.add_argument("--force", action="store_true", help="rerun steps even when their outputs are up to date")
    p.add_argument("--log-output", action="store_true", help="echo the notebooks' output while they run")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="the synthetic demo: data, TIN/TSM/TSN training, evaluation, latency, zoo, report")
    d.add_argument("--profile", choices=sorted(recipes.PROFILES), default="full")
    d.add_argument("--data-root", default=recipes.DEMO_DATA_ROOT)
    _add_row_options(sub.add_parser("reproduce", help="prepare -> train -> evaluate -> latency -> zoo for a "
                                                      "model-zoo row"))
    e = sub.add_parser("evaluate-published", help="prepare the val split -> evaluate the row's published checkpoint "
                                                  "-> zoo")
    _add_row_options(e)
    e.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides for the test, e.g. --set data.workers_per_gpu=8 (published.checkpoint=URL "
                        "tests another published file the same way)")
    a = sub.add_parser("ablation", help="the interlace-gradient ablation on the synthetic data (notebook 06)")
    a.add_argument("--profile", choices=sorted(recipes.PROFILES), default="full")
    a.add_argument("--data-root", default=recipes.DEMO_DATA_ROOT)
    a.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    c = sub.add_parser("check-data", help="only check that DATA_ROOT holds the dataset")
    c.add_argument("dataset", choices=sorted(recipes.ZOO_CONFIGS))
    c.add_argument("--data-root", default=os.environ.get("DATA_ROOT"))
    c.add_argument("--lists-dir")
    c.add_argument("--splits", default=",".join(SPLITS),
                   help=f"the splits needed, comma-separated (default {','.join(SPLITS)}; val: what "
                        "evaluate-published reads)")
    lat = sub.add_parser("latency", help="run the latency notebook (03) for a config")
    lat.add_argument("--config", default=recipes.ZOO_CONFIGS["sthv1"])
    lat.add_argument("--archs", help="comma-separated (default: the config's arch and its TSM/TSN twins)")
    lat.add_argument("--iters", type=int)
    rep = sub.add_parser("report", help="re-render the HTML reports of every run under RESULTS/runs")
    rep.add_argument("--run", action="append", help="only this run (repeatable)")
    return p


def _check_data(args: argparse.Namespace) -> int:
    from tinlib.pipeline.checks import check_data

    check_data(args.dataset, args.data_root, args.lists_dir, splits=args.splits)
    needed = "" if choose_splits(args.splits) == SPLITS else f" for the {args.splits} split"
    log.info(f"{args.dataset}: {args.data_root} looks complete{needed}")
    return 0


def _row_layout(args: argparse.Namespace) -> dict[str, Any]:
    """The torchrun layout and profile of a model-zoo row's run, from its options."""
    from tinlib.pipeline.checks import detect_gpus

    return dict(gpus=args.gpus or detect_gpus(), nodes=args.nodes, node_rank=args.node_rank,
                master_addr=args.master_addr, master_port=args.master_port, profile=args.profile,
                lists_dir=args.lists_dir)


def _steps(args: argparse.Namespace, notebooks: Path, results: Path, work_root: Path) -> tuple[str, list[Step]]:
    """The run's name and its steps for the sub-commands that run notebooks; the data checks of a
    model-zoo row run first, so that a missing dataset stops before anything starts."""
    from tinlib.pipeline.checks import check_data

    if args.command == "demo":
        return "demo", recipes.demo_steps(notebooks_dir=notebooks, results=results, work_root=work_root / "demo",
                                          data_root=args.data_root, profile=args.profile)
    if args.command == "ablation":
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
        return "ablation", recipes.ablation_steps(notebooks_dir=notebooks, results=results,
                                                  work_root=work_root / "ablation", data_root=args.data_root,
                                                  profile=args.profile, seeds=seeds, force=args.force)
    if args.command == "reproduce":
        check_data(args.dataset, args.data_root, args.lists_dir)
        return args.dataset, recipes.reproduce_steps(args.dataset, args.data_root, notebooks_dir=notebooks,
                                                     results=results, work_root=work_root, **_row_layout(args))
    if args.command == "evaluate-published":
        from tinlib.config import apply_overrides, load_config, parse_override

        overrides = dict(parse_override(o) for o in args.overrides)
        apply_overrides(load_config(recipes.ZOO_CONFIGS[args.dataset]), overrides)  # a bad key stops here, at once
        check_data(args.dataset, args.data_root, args.lists_dir, splits=recipes.EVAL_SPLITS)
        return f"{args.dataset}_published", recipes.evaluate_published_steps(
            args.dataset, args.data_root, notebooks_dir=notebooks, results=results, overrides=overrides,
            **_row_layout(args))
    archs = [a.strip() for a in args.archs.split(",")] if args.archs else None  # latency
    return "latency", recipes.latency_steps(args.config, notebooks_dir=notebooks, results=results, archs=archs,
                                            iters=args.iters)


def run(args: argparse.Namespace) -> int:
    """Run the parsed sub-command; returns the exit status (errors are raised as UserError)."""
    # the pipeline's progress lines go to stdout with the notebooks' echoed output, as make's own do
    setup_logging(logging.getLogger("tinlib").level, stream=sys.stdout)
    if args.command == "check-data":
        return _check_data(args)

    from tinlib.pipeline.steps import build_report, run_steps, show_path

    notebooks, results, work_root = Path(args.notebooks_dir), Path(args.results_dir), Path(args.work_root)
    t0 = time.time()
    if args.command == "report":
        runs = args.run or sorted(p.name for p in (results / "runs").glob("*") if p.is_dir())
        for name in runs:
            out = build_report(results, name)
            log.info(f"{name}: {out if out else 'no executed notebooks'}")
        return 0
    name, steps = _steps(args, notebooks, results, work_root)
    try:
        run_steps(steps, results / "runs" / name, force=args.force, log_output=args.log_output)
    finally:
        report = build_report(results, name, steps)
        if report:
            log.info(f"report: {show_path(report)}")
    if args.command == "demo":
        from tinlib.report.results import collect_runs
        from tinlib.report.zoo import checks_markdown, demo_checks, demo_runs

        log.info("demo targets:\n" + checks_markdown(demo_checks(demo_runs(collect_runs(results)))))
    log.info(f"{name}: finished in {time.time() - t0:.0f} s; tables: {show_path(results / 'model_zoo.md')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tinlib.pipeline ...``: parse ``argv`` (default ``sys.argv[1:]``) and run; returns the exit status."""
    return run_command(ERROR_PREFIX, build_parser(), run, argv)
