"""The model-zoo page, ``results/model_zoo.md``: each published row of the configs beside its run
measured here (*measured / published*), the published checkpoints evaluated here, the synthetic
demo with its targets, and the other runs. What it reads is :mod:`tinlib.report.results`'s.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tinlib.io import atomic_write_text
from tinlib.records import MetricsRecord
from tinlib.report.results import (
    PublishedRow,
    RunRecord,
    collect_published,
    collect_runs,
    processes_cell,
    published_rows,
)

COLUMNS = ("config", "resolution", "gpus", "backbone", "pretrain", "top1 acc", "top5 acc", "reference top1 acc",
           "reference top5 acc", "gpu_mem(M)", "ckpt", "log", "json")
NOT_RUN = "(not run)"
MISSING = "–"
DEMO_TARGETS = {"tin_top1": 90.0, "tsn_pair_window": 10.0}


# Formatting
def fmt(value: Any, digits: int = 2) -> str:
    """A table cell: ``value`` with ``digits`` decimals for floats, ``–`` for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def pair(measured: Any, published: Any, digits: int = 2) -> str:
    """``measured / published`` (published alone when there is nothing to compare it with)."""
    if published is None:
        return fmt(measured, digits)
    return f"{fmt(measured, digits)} / {fmt(published, digits)}"


def rel_link(target: Path | str | None, base: Path, text: str) -> str:
    """A markdown link ``[text](href)`` to ``target`` relative to the folder ``base``; ``–`` without a target."""
    if not target:
        return MISSING
    try:
        href = os.path.relpath(Path(target).resolve(), base.resolve())
    except ValueError:  # another drive
        href = str(target)
    return f"[{text}]({href.replace(os.sep, '/')})"


def md_table(columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """A markdown table: a header row of ``columns``, then one row per item of ``rows`` (pipes escaped)."""
    columns = list(columns)
    rule = "|" + "|".join(":---:" if i else ":---" for i in range(len(columns))) + "|"
    lines = ["| " + " | ".join(columns) + " |", rule]
    for row in rows:
        cells = [str(c).replace("|", "\\|").replace("\n", " ") for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _json_cell(run: RunRecord, base: Path) -> str:
    """A link to the run's ``metrics.json``, ``–`` when it was not evaluated."""
    return rel_link(run.folder / "metrics.json", base, "json") if run.metrics is not None else MISSING


def _run_name(run: RunRecord) -> str:
    return run.config + ("" if run.metrics is not None else " (trained, not evaluated)")


def _other_list_note(run: RunRecord, row: PublishedRow) -> str:
    """`` (evaluated on <list>)`` when ``run`` was tested on another list than ``row``'s, else ''."""
    evaluated_on = run.evaluated_on()
    return f" (evaluated on {evaluated_on})" if evaluated_on and row.eval_list and evaluated_on != row.eval_list else ""


def _ckpt_cell(run: RunRecord, base: Path) -> str:
    ckpts = run.train.checkpoints if run.train is not None else None
    where = ((ckpts.best or ckpts.latest) if ckpts is not None else None) or (
        run.metrics.checkpoint.path if run.metrics is not None else None)
    if not where:
        return MISSING
    path = Path(where)
    if not path.is_absolute():
        path = Path.cwd() / path
    return rel_link(path, base, "ckpt") + ("" if path.is_file() else " (local)")


# Tables
def zoo_section(rows: list[PublishedRow], runs: dict[str, RunRecord], base: Path,
                notes: list[str], published: dict[str, RunRecord] | None = None) -> str:
    """The table of one model-zoo section: each published row beside its run (``measured / published``),
    and under it, when ``published`` holds one for the row, the published checkpoint evaluated here;
    appends a footnote to ``notes`` for every run that changed a setting of its config."""
    has_ref = any(r.ref_top1 is not None for r in rows)
    columns = [c for c in COLUMNS if has_ref or not c.startswith("reference")]
    body = []
    for r in rows:
        run = runs.get(r.config)
        name = f"{r.config} {NOT_RUN}" if run is None else _run_name(run) + _other_list_note(run, r)
        changed = run.changed_settings() if run is not None else []
        if changed:
            notes.append(f"{r.config}: run with {', '.join(changed)}")
            name += f" [^{len(notes)}]"
        cells = {
            "config": name,
            "resolution": r.resolution,
            "gpus": _gpus_cell(run, r),
            "backbone": r.backbone,
            "pretrain": r.pretrain,
            "top1 acc": pair(run.metric("top1_acc") if run else None, r.top1),
            "top5 acc": pair(run.metric("top5_acc") if run else None, r.top5),
            "reference top1 acc": fmt(r.ref_top1),
            "reference top5 acc": fmt(r.ref_top5),
            "gpu_mem(M)": pair(run.gpu_mem() if run else None, r.gpu_mem),
            "ckpt": _ckpt_cell(run, base) if run else MISSING,
            "log": rel_link(run.log_path if run else None, base, "log"),
            "json": _json_cell(run, base) if run is not None else MISSING,
        }
        body.append([cells[c] for c in columns])
        evaluation = (published or {}).get(r.config)
        if evaluation is not None:
            published_line = published_cells(r, evaluation, base, notes)
            body.append([published_line.get(c, "") for c in columns])
    return md_table(columns, body)


PUBLISHED_LINE = "↳ published checkpoint, evaluated here"


def published_cells(row: PublishedRow, evaluation: RunRecord, base: Path, notes: list[str]) -> dict[str, str]:
    """The cells of the line under ``row`` for its published checkpoint tested here: accuracies
    ``measured / published``, how it ran, links to the checkpoint's URL, the published log and the
    ``metrics.json``; the cells that describe the row itself stay empty."""
    metrics = evaluation.metrics
    name = PUBLISHED_LINE + _other_list_note(evaluation, row)
    url = metrics.checkpoint.url if metrics is not None else None
    if url and row.checkpoint and url != row.checkpoint:
        name += f" (checkpoint {Path(url).name})"
    section = (evaluation.run_config or {}).get("published")
    log_url = (section.get("log") if isinstance(section, dict) else None) or row.log  # the evaluated file's log
    changed = evaluation.changed_settings()
    if changed:
        notes.append(f"{row.config}, published checkpoint: evaluated with {', '.join(changed)}")
        name += f" [^{len(notes)}]"
    return {
        "config": name,
        "gpus": _evaluation_gpus(metrics) or MISSING,
        "top1 acc": pair(evaluation.metric("top1_acc"), row.top1),
        "top5 acc": pair(evaluation.metric("top5_acc"), row.top5),
        "ckpt": f"[ckpt]({url or row.checkpoint})" if (url or row.checkpoint) else MISSING,
        "log": f"[log]({log_url})" if log_url else MISSING,
        "json": rel_link(evaluation.folder / "metrics.json", base, "json"),
    }


def _evaluation_gpus(metrics: MetricsRecord | None) -> str | None:
    """How an evaluation ran: processes on GPUs (``8``), ``cpu`` or ``cpu xN``; None when unknown."""
    if metrics is None:
        return None
    device = str((metrics.device or {}).get("device", "")) if isinstance(metrics.device, dict) else ""
    return processes_cell(device, metrics.world_size or 1) if device else None


def published_legend() -> str:
    """The line under a table that has published checkpoints evaluated here."""
    return (f"*{PUBLISHED_LINE}*: the checkpoint MMAction2 published for the row (the *ckpt* link; *log*: its "
            "training log), downloaded and tested here on the same list with the row's own test setting "
            "(`make evaluate-published-<dataset>`); its cells read *measured here / published*, and *json* links "
            "the `metrics.json` of that test.")


def _gpus_cell(run: RunRecord | None, row: PublishedRow) -> str:
    """``measured / published`` GPUs; the published setting alone when nothing says how the row ran."""
    measured = run.gpus() if run is not None else None
    return pair(measured, row.gpus) if measured else (row.gpus or MISSING)


def zoo_legend(rows: list[PublishedRow]) -> str:
    """One line under a zoo table: which annotation list its accuracies are on and, when the
    table has them, what the ``reference`` columns are."""
    lists = sorted({r.eval_list for r in rows if r.eval_list})
    where = f"`{lists[0]}`" if len(lists) == 1 else "each config's test list"
    parts = [(f"*top1/top5 acc*: accuracy (%) on {where}, the validation split, which the configs test on as "
              "MMAction2 does (a measured row evaluated on another list says so)")]
    if any(r.ref_top1 is not None for r in rows):
        parts.append("*reference top1/top5 acc*: accuracy of a model trained with the original TIN code (the "
                     "authors' repository) under the same settings, as MMAction2 lists it beside its own; "
                     "published, not measured here")
    return ". ".join(parts) + "."


def reversal_cell(run: RunRecord) -> str:
    """``direction_acc (chance c)`` from the run's ``reversal.json``, ``–`` without one."""
    rev = run.reversal
    if rev is None or rev.direction_acc is None:
        return MISSING
    return f"{rev.direction_acc:.1f} (chance {rev.chance:.0f})"


def demo_runs(runs: dict[str, RunRecord]) -> list[RunRecord]:
    """The runs on the synthetic data, TIN first, then TSM, TSN and any other arch."""
    out = [r for r in runs.values() if r.run_config and str(r.run_config["data"]["dataset"]).startswith("synthetic")]
    kind_order = {"tin": 0, "tsm": 1, "tsn": 2}
    return sorted(out, key=lambda r: (kind_order.get((r.arch or "x_")[:3], 9), r.config))


def demo_section(runs: list[RunRecord], base: Path) -> str:
    """The synthetic demo table: accuracies, reversal-pair direction accuracy, CPU latency, parameters."""
    columns = ("config", "arch", "frames", "gpus", "epochs", "split", "evaluated on", "top1 acc", "top5 acc",
               "mean class acc", "reversal pairs: direction acc (%)", "cpu latency (ms/video)", "params", "log",
               "json")
    body = []
    for run in runs:
        cfg = run.run_config or {}
        d, m, t = cfg.get("data", {}), cfg.get("model", {}), cfg.get("train", {})
        frames = f"{m.get('num_segments')}x{d.get('input_size')}²" if d else MISSING
        params = run.latency.params if run.latency is not None else None
        body.append([
            _run_name(run), run.arch or MISSING, frames,
            run.gpus() or MISSING, t.get("epochs", MISSING), run.evaluated_split() or MISSING, _evaluated_cell(run),
            fmt(run.metric("top1_acc")), fmt(run.metric("top5_acc")),
            fmt(run.metric("mean_class_accuracy")), reversal_cell(run), fmt(run.latency_ms("cpu"), 1),
            f"{params / 1e6:.2f} M" if params else MISSING, rel_link(run.log_path, base, "log"), _json_cell(run, base)])
    return md_table(columns, body)


def _evaluated_cell(run: RunRecord) -> str:
    """``<annotation list> (<n> videos)`` of an evaluated run, ``–`` otherwise."""
    where = run.evaluated_on()
    if where is None:
        return MISSING
    count = run.metrics.num_samples if run.metrics is not None else None
    return f"{where} ({count} videos)" if count else where


def demo_checks(runs: list[RunRecord]) -> list[dict[str, Any]]:
    """The demo's two targets, each with the measured value and whether it was met (None when
    the run is missing): TIN top-1 >= 90 %, TSN within 10 points of chance on reversal pairs."""
    by_kind: dict[str, RunRecord] = {}
    for run in runs:
        if run.arch and run.metrics:
            by_kind.setdefault(run.arch[:3], run)
    tin, tsn = by_kind.get("tin"), by_kind.get("tsn")
    top1 = tin.metric("top1_acc") if tin else None
    rev = tsn.reversal if tsn else None
    direction = rev.direction_acc if rev is not None else None
    chance = rev.chance if rev is not None else 50.0
    window = DEMO_TARGETS["tsn_pair_window"]
    return [{"name": "TIN top-1 on the synthetic test split", "target": f">= {DEMO_TARGETS['tin_top1']:.0f} %",
             "value": top1, "run": tin.config if tin else None,
             "met": None if top1 is None else top1 >= DEMO_TARGETS["tin_top1"]},
            {"name": "TSN direction accuracy on the time-reversal pairs",
             "target": f"{chance - window:.0f}–{chance + window:.0f} % (chance {chance:.0f} % ± {window:.0f})",
             "value": direction, "run": tsn.config if tsn else None,
             "met": None if direction is None else abs(direction - chance) <= window}]


def checks_markdown(checks: list[dict[str, Any]]) -> str:
    """The :func:`demo_checks` as a markdown list, each **met**, **MISSED** or **not measured**."""
    lines = []
    for c in checks:
        if c["met"] is None:
            status = "**not measured** (no evaluated run)"
        else:
            status = "**met**" if c["met"] else "**MISSED**"
        value = MISSING if c["value"] is None else f"{c['value']:.1f} %"
        lines.append(f"- {c['name']}: {value}, target {c['target']}: {status}")
    return "\n".join(lines)


def other_section(runs: list[RunRecord], base: Path) -> str:
    """The table of runs that are neither model-zoo rows nor demo runs (baselines, own configs)."""
    columns = ("config", "dataset", "arch", "gpus", "top1 acc", "top5 acc", "mean class acc", "gpu_mem(M)", "log",
               "json")
    body = []
    for run in sorted(runs, key=lambda r: r.config):
        cfg = run.run_config or {}
        body.append([_run_name(run), cfg.get("data", {}).get("dataset", MISSING), run.arch or MISSING,
                     run.gpus() or MISSING, fmt(run.metric("top1_acc")), fmt(run.metric("top5_acc")),
                     fmt(run.metric("mean_class_accuracy")), fmt(run.gpu_mem()), rel_link(run.log_path, base, "log"),
                     _json_cell(run, base)])
    return md_table(columns, body)


def render_zoo(results_dir: str | os.PathLike = "results", out: str | os.PathLike | None = None) -> str:
    """The whole model_zoo.md text (links relative to ``out``'s folder), in the seed page's three
    sections and columns; a run whose settings differ from its config (other than paths and loader
    details) gets a footnote listing them."""
    results_dir = Path(results_dir)
    out = Path(out) if out else results_dir / "model_zoo.md"
    base = out.parent
    rows = published_rows()
    runs = collect_runs(results_dir)
    published = collect_published(results_dir, warn=False)  # collect_runs warned about damaged records
    notes: list[str] = []
    parts = ["# TIN model zoo: measured here vs published",
             "",
             ("Regenerated by `make zoo` (`tinlib zoo`) from the run records under `results/` alone. Published "
              "values are MMAction2's model zoo (0.x) as carried in the `zoo` section of each config. Cells with "
              "two values read **measured / published**; `–` means not measured. Rows marked "
              f"`{NOT_RUN}` have no run under `results/`: reproduce them with `make reproduce-sthv1` "
              "(`-sthv2`, `-k400`) on the real data. *gpus*: measured as launched (nodes x GPUs per node, or one "
              "number on one node; `cpu` for a CPU run) / published, where MMAction2's `8x4` means 32 GPUs in all "
              "(its metafile says 32); a row that was not run shows the published setting alone."),
             "",
             ("`make evaluate-published-sthv1` (`-sthv2`, `-k400`) tests the checkpoint MMAction2 published for a "
              f"row on your copy of the data; it then shows on a line of its own under the row, *{PUBLISHED_LINE}*."),
             ""]
    for section in dict.fromkeys(r.dataset for r in rows):
        section_rows = [r for r in rows if r.dataset == section]
        parts += [f"## {section}", "", zoo_section(section_rows, runs, base, notes, published), "",
                  zoo_legend(section_rows), ""]
        if any(r.config in published for r in section_rows):
            parts += [published_legend(), ""]
    if any(r.dataset == "Kinetics-400" for r in rows):
        parts += [("The Kinetics-400 row fine-tunes TIN from a TSM model trained on Kinetics-400 (the published "
                   "`pretrain` column)."), ""]
    zoo_names = {r.config for r in rows}
    demo = demo_runs(runs)
    if demo:
        parts += ["## Synthetic demo (CPU, `make demo`)", "",
                  ("Small ResNet-18 models (each config's `model.base_channels` sets the width; *params* counts "
                   "them) trained from scratch on the embedded synthetic dataset (Something-Something V1 layout); "
                   "accuracies on the annotation list named under *evaluated on*, of the *split* named "
                   "(`test`: the held-out test split, which neither training nor the choice of checkpoint saw; "
                   "validation during training used `val`). *Direction acc* is "
                   "measured on the videos of the "
                   "time-reversal pairs (classes that are each other played backwards): the better scored of the "
                   "two classes of the video's pair; 50 % is chance."), "",
                  demo_section(demo, base), "", "Targets:", "", checks_markdown(demo_checks(demo)), ""]
    others = [r for r in runs.values() if r.config not in zoo_names and r not in demo]
    if others:
        parts += ["## Other runs", "", "Baselines and runs of configs that are not model-zoo rows.", "",
                  other_section(others, base), ""]
    if notes:
        parts += ["---", ""] + [f"[^{i}]: {note}" for i, note in enumerate(notes, start=1)] + [""]
    return "\n".join(parts)


def write_zoo(results_dir: str | os.PathLike = "results", out: str | os.PathLike | None = None) -> Path:
    """Write :func:`render_zoo` to ``out`` (default ``<results_dir>/model_zoo.md``) atomically; returns the path."""
    results_dir = Path(results_dir)
    out = Path(out) if out else results_dir / "model_zoo.md"
    return atomic_write_text(out, render_zoo(results_dir, out))
