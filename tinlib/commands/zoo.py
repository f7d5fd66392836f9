"""``tinlib zoo``: rewrite ``results/model_zoo.md`` from the run records under ``results/`` (no torch import);
exit status 2 when the results folder is missing or the table cannot be written."""
from __future__ import annotations

import argparse
from pathlib import Path

from tinlib.cli import command_main

PROG = "tinlib zoo"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Rewrite the model-zoo table from results/: the "
                                "published rows (from the configs) beside the measured values of the runs found.")
    p.add_argument("--results-dir", default="results", help="where runs wrote their records (default results)")
    p.add_argument("--out", help="output file (default RESULTS_DIR/model_zoo.md)")
    p.add_argument("--print", action="store_true", help="also print the table")
    return p


def _run(args: argparse.Namespace) -> int:
    from tinlib.errors import UserError
    from tinlib.io import check_output_file
    from tinlib.report.zoo import write_zoo

    results = Path(args.results_dir)
    if results.exists() and not results.is_dir():
        raise UserError(f"--results-dir {results} is a file, not a folder; give the folder the runs wrote to")
    if not results.is_dir():
        raise UserError(f"results folder {results} does not exist; give the folder the runs wrote to "
                        f"with --results-dir (default results)")
    check_output_file(args.out or results / "model_zoo.md", "--out" if args.out else "the model-zoo table")
    out = write_zoo(args.results_dir, args.out)
    if args.print:
        print(out.read_text())
    print(f"wrote {out}")
    return 0


main = command_main(PROG, build_parser, _run)
