"""The interlace-gradient ablation: one TIN config trained with the true (adjoint) gradient of
the temporal shift and with mmcv's backward (what every MMAction2-trained TIN used), under the
same seeds, then tested and compared.

Each (gradient, seed) run is a ``tinlib train`` + ``tinlib test`` pair in a subprocess, so
``parallel`` of them share a small CPU side by side (one torch thread each). A run whose
``metrics.json`` exists is not redone, so an interrupted ablation continues where it stopped.

Outputs under ``<results_dir>/<name>/``: one folder per run (``train.json``, ``log.json``,
``metrics.json``, ``scores.npz``, ``reversal.json``), ``summary.json`` and ``summary.md``.
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tinlib.io import atomic_write_json, atomic_write_text

GRADS = ("adjoint", "mmcv")
DEFAULT_NAME = "ablation_interlace_grad"
# two-sided 95 % quantiles of Student's t for 1..10 degrees of freedom (beyond: the normal 1.96)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


@dataclass(frozen=True)
class AblationRun:
    grad: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.grad}_seed{self.seed}"


def plan(seeds: Sequence[int], grads: Sequence[str] = GRADS) -> list[AblationRun]:
    """Every (gradient, seed) pair, seeds outermost so a partial ablation is still paired."""
    bad = [g for g in grads if g not in GRADS]
    if bad:
        raise ValueError(f"unknown interlace gradient(s) {bad}; choose from {list(GRADS)}")
    if not seeds:
        raise ValueError("give at least one seed")
    return [AblationRun(g, int(s)) for s in seeds for g in grads]


def _set_args(values: dict[str, Any]) -> list[str]:
    from tinlib.report.workflow import _literal

    return [f"{k}={_literal(v)}" for k, v in values.items()]


def _commands(config: str, run: AblationRun, work: Path, folder: Path, overrides: dict[str, Any]) -> list[list[str]]:
    sets = _set_args(dict(overrides, **{"model.interlace_grad": run.grad}))
    tinlib = [sys.executable, "-m", "tinlib"]
    train = tinlib + ["train", config, "--work-dir", str(work), "--run", run.name, "--seed", str(run.seed),
                      "--no-progress", "--set", f"results_dir={folder}", *sets]
    test = tinlib + ["test", config, str(work / "latest.pth"), "--run", run.name, "--results-dir", str(folder),
                     "--overwrite", "--no-progress", "--set", *sets]
    return [train, test]


def _execute(config: str, run: AblationRun, work_root: Path, folder: Path, overrides: dict[str, Any],
             meta: dict | None) -> str:
    from tinlib.report.analysis import write_reversal

    work = work_root / run.name
    out = folder / run.name
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "ablation_stdout.log"
    with open(log_path, "w") as log:
        for cmd in _commands(config, run, work, folder, overrides):
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ)).returncode
            if code != 0:
                tail = log_path.read_text().splitlines()[-15:]
                raise RuntimeError(f"ablation run {run.name} failed (exit {code}); full output in {log_path}:\n"
                                   + "\n".join(tail))
    if (work / "log.json").is_file():
        shutil.copyfile(work / "log.json", out / "log.json")
    if meta and meta.get("reversal_pairs"):
        write_reversal(out, meta)
    return run.name


def run_ablation(config: str = "demo_tin_r18_synthetic", *, seeds: Sequence[int] = (0, 1, 2),
                 grads: Sequence[str] = GRADS, data_root: str | os.PathLike | None = None,
                 overrides: dict[str, Any] | None = None, results_dir: str | os.PathLike = "results",
                 work_root: str | os.PathLike = "work_dirs/ablation", name: str = DEFAULT_NAME,
                 parallel: int = 2, force: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train and test ``config`` once per (gradient, seed); returns (and writes) the summary."""
    from tqdm.auto import tqdm

    from tinlib.report.analysis import synthetic_meta
    from tinlib.report.workflow import _load, data_overrides

    runs = plan(seeds, grads)
    cfg = _load(config)
    applied = dict(data_overrides(cfg, data_root))
    applied.update(overrides or {})
    if parallel > 1:  # runs side by side share the cores: one torch thread each
        applied.setdefault("train.num_threads", 1)
    folder, work_root = Path(results_dir) / name, Path(work_root)
    meta = synthetic_meta(data_root or cfg.data.root)
    todo = [r for r in runs if force or not (folder / r.name / "metrics.json").is_file()]
    if len(todo) < len(runs):
        print(f"{len(runs) - len(todo)} of {len(runs)} runs already done in {folder}; running the other {len(todo)}")
    with tqdm(total=len(todo), desc="ablation runs", unit="run", disable=not progress or not todo) as bar:
        with ThreadPoolExecutor(max_workers=max(1, int(parallel))) as pool:
            futures = [pool.submit(_execute, config, r, work_root, folder, applied, meta) for r in todo]
            errors = []
            for future in futures:
                try:
                    bar.set_postfix_str(future.result())
                except RuntimeError as err:
                    errors.append(str(err))
                bar.update()
    if errors:
        raise RuntimeError("\n\n".join(errors))
    summary = summarize(folder, runs, config=config, overrides=applied)
    atomic_write_json(folder / "summary.json", summary)
    atomic_write_text(folder / "summary.md", summary_markdown(summary))
    return summary


# --------------------------------------------------------------------------------------------
# Reading and comparing
# --------------------------------------------------------------------------------------------
def run_row(folder: Path, run: AblationRun) -> dict[str, Any]:
    """The numbers of one finished run (percentages)."""
    import json

    from tinlib.report.analysis import read_log

    out = folder / run.name
    metrics = json.loads((out / "metrics.json").read_text())
    m = metrics.get("metrics", metrics)
    row = dict(grad=run.grad, seed=run.seed, top1_acc=100 * m["top1_acc"], top5_acc=100 * m["top5_acc"],
               mean_class_accuracy=100 * m["mean_class_accuracy"])
    reversal = out / "reversal.json"
    if reversal.is_file():
        row["direction_acc"] = json.loads(reversal.read_text())["direction_acc"]
    if (out / "log.json").is_file():
        train, _ = read_log(out / "log.json")
        if not train.empty:
            last = train[train["epoch"] == train["epoch"].max()]
            row["final_train_loss"] = float(last["loss_cls"].mean())
    summary = out / "train.json"
    if summary.is_file():
        row["train_s"] = json.loads(summary.read_text()).get("elapsed_s_this_session")
    return row


def _mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return mean, sd


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """``a - b`` paired by seed: mean, standard deviation and the 95 % t-interval of the mean."""
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
    """One plain sentence on what the paired difference shows."""
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


def summarize(folder: Path, runs: Sequence[AblationRun], *, config: str, overrides: dict | None = None) -> dict:
    rows = [run_row(folder, r) for r in runs]
    grads = list(dict.fromkeys(r.grad for r in runs))
    per_grad = {}
    for g in grads:
        mine = [r for r in rows if r["grad"] == g]
        per_grad[g] = {}
        for key, *_ in METRICS:
            values = [r[key] for r in mine if r.get(key) is not None]
            if values:
                mean, sd = _mean_sd(values)
                per_grad[g][key] = dict(mean=mean, sd=sd, n=len(values))
    comparisons = {}
    if len(grads) == 2:
        a, b = grads
        seeds = sorted({r["seed"] for r in rows if r["grad"] == a} & {r["seed"] for r in rows if r["grad"] == b})
        by = {(r["grad"], r["seed"]): r for r in rows}
        for key, label, unit, lower in METRICS:
            pairs = [(by[a, s].get(key), by[b, s].get(key)) for s in seeds]
            pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
            if pairs:
                diff = paired_difference([x for x, _ in pairs], [y for _, y in pairs])
                diff["wins"] = sum((x < y) if lower else (x > y) for x, y in pairs)
                diff["verdict"] = verdict(diff, label, a, b, unit, lower)
                comparisons[key] = diff
    return dict(config=config, overrides=overrides or {}, grads=grads, seeds=sorted({r.seed for r in runs}),
                runs=rows, per_grad=per_grad, comparisons=comparisons)


def summary_markdown(summary: dict) -> str:
    lines = [f"# Interlace gradient ablation: {summary['config']}", "",
             "The same config trained with the true gradient of the temporal shift (`adjoint`) and with "
             "mmcv's backward (`mmcv`), one run per seed, tested on the synthetic test split.", "",
             "| gradient | seed | top-1 % | top-5 % | direction % (reversal pairs) | final train loss |",
             "|---|---|---|---|---|---|"]
    fmt = (lambda v, d=2: "-" if v is None else f"{v:.{d}f}")
    for r in summary["runs"]:
        lines.append(f"| {r['grad']} | {r['seed']} | {fmt(r['top1_acc'])} | {fmt(r['top5_acc'])} | "
                     f"{fmt(r.get('direction_acc'))} | {fmt(r.get('final_train_loss'), 3)} |")
    lines += ["", "| gradient | top-1 % mean ± sd | direction % mean ± sd |", "|---|---|---|"]
    for g, stats in summary["per_grad"].items():
        cells = []
        for key in ("top1_acc", "direction_acc"):
            s = stats.get(key)
            cells.append("-" if not s else f"{s['mean']:.2f}" + ("" if s["sd"] is None else f" ± {s['sd']:.2f}"))
        lines.append(f"| {g} | {cells[0]} | {cells[1]} |")
    if summary["comparisons"]:
        lines += ["", "What the data shows (paired by seed):", ""]
        lines += [f"- {c['verdict']}" for c in summary["comparisons"].values()]
    return "\n".join(lines) + "\n"


def curves(folder: str | os.PathLike, runs: Sequence[AblationRun]):
    """``(train, val)`` frames of every run with ``grad`` and ``seed`` columns, for plotting."""
    import pandas as pd

    from tinlib.report.analysis import read_log

    trains, vals = [], []
    for r in runs:
        path = Path(folder) / r.name / "log.json"
        if not path.is_file():
            continue
        train, val = read_log(path)
        for frame, bucket in ((train, trains), (val, vals)):
            if not frame.empty:
                bucket.append(frame.assign(grad=r.grad, seed=r.seed))
    join = (lambda parts: pd.concat(parts, ignore_index=True) if parts else pd.DataFrame())
    return join(trains), join(vals)
