"""The interlace-gradient ablation's statistics and tables: TIN trained with the true (adjoint)
gradient of the temporal shift and with mmcv's backward (what every MMAction2-trained TIN used),
paired by seed, from the records of the runs :mod:`tinlib.pipeline.ablation` launched.
"""
from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinlib.records import AblationSummary, MetricsRecord, ReversalRecord, TrainRecord

GRADS = ("adjoint", "mmcv")
DEFAULT_NAME = "ablation_interlace_grad"
# two-sided 95 % quantiles of Student's t for 1..10 degrees of freedom (beyond: the normal 1.96)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


@dataclass(frozen=True)
class AblationRun:
    """One run of the ablation: the interlace gradient (``adjoint`` or ``mmcv``) and the seed."""

    grad: str
    seed: int

    @property
    def name(self) -> str:
        """The run's folder name: ``<grad>_seed<seed>``."""
        return f"{self.grad}_seed{self.seed}"


def plan(seeds: Sequence[int], grads: Sequence[str] = GRADS) -> list[AblationRun]:
    """Every (gradient in ``grads``, seed in ``seeds``) pair, seeds outermost so a partial ablation is
    still paired.

    Raises:
        ValueError: an unknown gradient, or no seed.
    """
    bad = [g for g in grads if g not in GRADS]
    if bad:
        raise ValueError(f"unknown interlace gradient(s) {bad}; choose from {list(GRADS)}")
    if not seeds:
        raise ValueError("give at least one seed")
    return [AblationRun(g, int(s)) for s in seeds for g in grads]


# Reading and comparing
def run_row(folder: Path, run: AblationRun) -> dict[str, Any]:
    """The numbers of one finished run under ``folder``: top-1/top-5/mean class accuracy and, where
    recorded, direction accuracy on the reversal pairs (percentages), final training loss (the mean
    ``loss_cls`` of the last epoch's log entries) and training seconds.

    Raises:
        RecordError: the run's ``metrics.json`` is missing or damaged (or another of its records
            is damaged); the message names the file.
    """
    from tinlib.report.analysis import read_log

    out = folder / run.name
    m = MetricsRecord.read(out / MetricsRecord.FILENAME).metrics
    row: dict[str, Any] = dict(grad=run.grad, seed=run.seed, top1_acc=100 * m["top1_acc"],
                               top5_acc=100 * m["top5_acc"], mean_class_accuracy=100 * m["mean_class_accuracy"])
    reversal = ReversalRecord.read_optional(out / ReversalRecord.FILENAME)
    if reversal is not None:
        row["direction_acc"] = reversal.direction_acc
    if (out / "log.json").is_file():
        train, _ = read_log(out / "log.json")
        if not train.empty:
            last = train[train["epoch"] == train["epoch"].max()]
            row["final_train_loss"] = float(last["loss_cls"].mean())
    summary = TrainRecord.read_optional(out / TrainRecord.FILENAME)
    if summary is not None:
        row["train_s"] = summary.elapsed_s_this_session
    return row


def _mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean and the sample standard deviation (None for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """``a - b`` paired by seed (one value per seed each, in the same seed order): ``{"n", "mean",
    "sd", "ci95": [low, high]}``, the 95 % t-interval of the mean (``sd`` and ``ci95`` None for one seed)."""
    if len(a) != len(b) or not a:
        raise ValueError("paired difference needs the same non-zero number of values on both sides")
    diffs = [x - y for x, y in zip(a, b)]
    mean, sd = _mean_sd(diffs)
    n = len(diffs)
    if sd is None:
        return dict(n=n, mean=mean, sd=None, ci95=None)
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    half = t * sd / math.sqrt(n)
    return dict(n=n, mean=mean, sd=sd, ci95=[mean - half, mean + half])


def verdict(diff: dict[str, Any], metric: str = "top-1", a: str = "adjoint", b: str = "mmcv", unit: str = " points",
            lower_is_better: bool = False) -> str:
    """One plain sentence on what the :func:`paired_difference` ``diff`` (with ``wins``, the seeds where
    ``a`` is ahead, if known) shows for ``metric`` (in ``unit``) between the sides ``a`` and ``b``;
    ``lower_is_better`` for a loss."""
    n = diff["n"]
    if diff["ci95"] is None:
        return (f"{metric}: {a} - {b} = {diff['mean']:+.2f}{unit} from a single seed; one seed cannot "
                f"separate the gradient's effect from seed-to-seed noise.")
    lo, hi = diff["ci95"]
    wins = diff.get("wins")
    tally = f"; {a} ahead in {wins} of {n} seeds" if wins is not None else ""
    span = f"{diff['mean']:+.2f}{unit} (95 % interval {lo:+.2f} to {hi:+.2f}, {n} seeds{tally})"
    if lo <= 0 <= hi:
        return f"{metric}: no difference this many seeds can resolve; {a} - {b} = {span}."
    better = a if (diff["mean"] > 0) != lower_is_better else b
    return f"{metric}: {better} is better; {a} - {b} = {span}."


# key, label, unit, lower is better
METRICS = (("top1_acc", "top-1", " points", False), ("direction_acc", "direction (reversal pairs)", " points", False),
           ("final_train_loss", "final training loss", "", True))


def summarize(folder: Path, runs: Sequence[AblationRun], *, config: str,
              overrides: dict[str, Any] | None = None) -> AblationSummary:
    """The ``summary.json`` record of the finished ``runs`` under the ablation's ``folder``: ``config``
    and ``overrides`` (the settings every run used) as given, ``grads``, ``seeds``, ``runs`` (one
    :func:`run_row` each), ``per_grad`` (mean, sd, n per metric) and, with two gradients,
    ``comparisons`` (per metric a :func:`paired_difference` with ``wins`` and ``verdict``).
    """
    rows = [run_row(folder, r) for r in runs]
    grads = list(dict.fromkeys(r.grad for r in runs))
    per_grad: dict[str, dict[str, dict[str, Any]]] = {}
    for g in grads:
        mine = [r for r in rows if r["grad"] == g]
        per_grad[g] = {}
        for key, *_ in METRICS:
            values = [r[key] for r in mine if r.get(key) is not None]
            if values:
                mean, sd = _mean_sd(values)
                per_grad[g][key] = dict(mean=mean, sd=sd, n=len(values))
    comparisons: dict[str, dict[str, Any]] = {}
    if len(grads) == 2:
        a, b = grads
        seeds = sorted({r["seed"] for r in rows if r["grad"] == a} & {r["seed"] for r in rows if r["grad"] == b})
        by = {(r["grad"], r["seed"]): r for r in rows}
        for key, label, unit, lower in METRICS:
            pairs = [(float(by[a, s][key]), float(by[b, s][key])) for s in seeds
                     if by[a, s].get(key) is not None and by[b, s].get(key) is not None]
            if pairs:
                diff = paired_difference([x for x, _ in pairs], [y for _, y in pairs])
                diff["wins"] = sum((x < y) if lower else (x > y) for x, y in pairs)
                diff["verdict"] = verdict(diff, label, a, b, unit, lower)
                comparisons[key] = diff
    return AblationSummary(config=config, overrides=dict(overrides or {}), grads=grads,
                           seeds=sorted({r.seed for r in runs}), runs=rows, per_grad=per_grad, comparisons=comparisons)


def summary_markdown(summary: AblationSummary) -> str:
    """The :func:`summarize` record ``summary`` as Markdown: per-run table, per-gradient means, the verdicts."""
    lines = [f"# Interlace gradient ablation: {summary.config}", "",
             "The same config trained with the true gradient of the temporal shift (`adjoint`) and with "
             "mmcv's backward (`mmcv`), one run per seed, tested on the synthetic test split.", "",
             "| gradient | seed | top-1 % | top-5 % | direction % (reversal pairs) | final train loss |",
             "|---|---|---|---|---|---|"]

    def fmt(v: float | None, d: int = 2) -> str:
        return "-" if v is None else f"{v:.{d}f}"

    for r in summary.runs:
        lines.append(f"| {r['grad']} | {r['seed']} | {fmt(r['top1_acc'])} | {fmt(r['top5_acc'])} | "
                     f"{fmt(r.get('direction_acc'))} | {fmt(r.get('final_train_loss'), 3)} |")
    lines += ["", "| gradient | top-1 % mean ± sd | direction % mean ± sd |", "|---|---|---|"]
    for g, stats in summary.per_grad.items():
        cells = []
        for key in ("top1_acc", "direction_acc"):
            s = stats.get(key)
            cells.append("-" if not s else f"{s['mean']:.2f}" + ("" if s["sd"] is None else f" ± {s['sd']:.2f}"))
        lines.append(f"| {g} | {cells[0]} | {cells[1]} |")
    if summary.comparisons:
        lines += ["", "What the data shows (paired by seed):", ""]
        lines += [f"- {c['verdict']}" for c in summary.comparisons.values()]
    return "\n".join(lines) + "\n"


def curves(folder: str | os.PathLike, runs: Sequence[AblationRun]):
    """``(train, val)`` frames of every run of ``runs`` under the ablation's ``folder`` (their
    ``log.json``, see :func:`tinlib.report.analysis.read_log`) with ``grad`` and ``seed`` columns,
    for plotting; runs without a log are left out."""
    import pandas as pd

    from tinlib.report.analysis import read_log

    trains: list[pd.DataFrame] = []
    vals: list[pd.DataFrame] = []
    for r in runs:
        path = Path(folder) / r.name / "log.json"
        if not path.is_file():
            continue
        train, val = read_log(path)
        for frame, bucket in ((train, trains), (val, vals)):
            if not frame.empty:
                bucket.append(frame.assign(grad=r.grad, seed=r.seed))

    def join(parts: list) -> pd.DataFrame:
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    return join(trains), join(vals)
