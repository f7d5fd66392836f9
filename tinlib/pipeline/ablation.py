"""The interlace-gradient ablation's runs: one TIN config trained and tested with the true (adjoint)
gradient of the temporal shift and with mmcv's backward, under the same seeds, side by side in
subprocesses; finished runs of the same config are kept. The statistics are :mod:`tinlib.report.ablation`'s.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tinlib.io import atomic_write_text
from tinlib.pipeline.launch import set_arguments
from tinlib.pipeline.runconfig import data_overrides, load_config
from tinlib.pipeline.steps import run_side_by_side
from tinlib.records import AblationSummary, MetricsRecord, SyntheticMeta
from tinlib.report.ablation import DEFAULT_NAME, GRADS, AblationRun, plan, summarize, summary_markdown

log = logging.getLogger(__name__)


def ablation_commands(config: str, run: AblationRun, work: Path, folder: Path,
                      overrides: dict[str, Any]) -> list[list[str]]:
    """The ``tinlib train`` and ``tinlib test`` command lines of ``run``: checkpoints and log in
    ``work``, records in ``folder/<run.name>``; ``overrides`` for both, with the run's
    ``model.interlace_grad``."""
    sets = set_arguments(dict(overrides, **{"model.interlace_grad": run.grad}))
    tinlib = [sys.executable, "-m", "tinlib"]
    train = tinlib + ["train", config, "--work-dir", str(work), "--run", run.name, "--seed", str(run.seed),
                      "--no-progress", "--set", f"results_dir={folder}", *sets]
    test = tinlib + ["test", config, str(work / "latest.pth"), "--run", run.name, "--results-dir", str(folder),
                     "--overwrite", "--no-progress", "--set", *sets]
    return [train, test]


def _execute(config: str, run: AblationRun, work_root: Path, folder: Path, overrides: dict[str, Any],
             meta: SyntheticMeta | None) -> str:
    from tinlib.report.analysis import write_reversal

    work = work_root / run.name
    out = folder / run.name
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "ablation_stdout.log"
    with open(log_path, "w") as log_file:
        for cmd in ablation_commands(config, run, work, folder, overrides):
            log_file.write("$ " + " ".join(cmd) + "\n")
            log_file.flush()
            code = subprocess.run(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=dict(os.environ)).returncode
            if code != 0:
                tail = log_path.read_text().splitlines()[-15:]
                raise RuntimeError(f"ablation run {run.name} failed (exit {code}); full output in {log_path}:\n"
                                   + "\n".join(tail))
    if (work / "log.json").is_file():
        shutil.copyfile(work / "log.json", out / "log.json")
    if meta is not None and meta.reversal_pairs:
        write_reversal(out, meta)
    return run.name


def config_digest(config: str, overrides: dict[str, Any]) -> str:
    """sha256 of the config every run trains with (``config`` resolved with ``overrides``; the
    gradient and seed, which differ per run, are not part of it)."""
    resolved = load_config(config, overrides).to_dict()
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()


def _stale_reason(folder: Path, digest: str) -> str | None:
    """Why the runs kept in ``folder`` cannot be reused with the config of ``digest`` (None: they can,
    or there are none). Runs are kept only when the summary recorded the same config."""
    path = folder / AblationSummary.FILENAME
    if not any(folder.glob(f"*/{MetricsRecord.FILENAME}")):
        return None
    if not path.is_file():
        return "the kept runs have no summary.json that records their config"
    previous = AblationSummary.read(path)
    if previous.config_digest is None:
        return "the kept runs do not record their config (written by an older tin-kit)"
    if previous.config_digest != digest:
        return "the kept runs were trained with another config (the config file or the overrides changed)"
    return None


def _runs_to_do(folder: Path, runs: list[AblationRun], force: bool, empty: AblationSummary) -> list[AblationRun]:
    """The ``runs`` still to do: all when ``force`` or when those finished in ``folder`` were trained
    with another config than the ``empty`` summary's digest (their ``metrics.json`` goes), else those
    without a ``metrics.json``. ``empty`` is written before any run, so that runs finished before
    an interruption are kept."""
    digest = str(empty.config_digest)
    stale = _stale_reason(folder, digest)
    if stale or force:
        if stale:
            log.info(f"{folder}: {stale}; every run is trained again")
        for old in folder.glob(f"*/{MetricsRecord.FILENAME}"):
            old.unlink()  # superseded: a run counts as done only with a metrics.json of this config
    if stale or force or not (folder / AblationSummary.FILENAME).is_file():
        empty.write(folder / AblationSummary.FILENAME)
    todo = [r for r in runs if not (folder / r.name / MetricsRecord.FILENAME).is_file()]
    if len(todo) < len(runs):
        log.info(f"{len(runs) - len(todo)} of {len(runs)} runs already done in {folder}; "
                 f"running the other {len(todo)}")
    return todo


def run_ablation(config: str = "demo_tin_r18_synthetic", *, seeds: Sequence[int] = (0, 1, 2),
                 grads: Sequence[str] = GRADS, data_root: str | os.PathLike | None = None,
                 overrides: dict[str, Any] | None = None, results_dir: str | os.PathLike = "results",
                 work_root: str | os.PathLike = "work_dirs/ablation", name: str = DEFAULT_NAME,
                 parallel: int = 2, force: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train and test the TIN ``config`` once per (gradient of ``grads``, seed of ``seeds``), then summarize.

    Each run is a ``tinlib train`` + ``tinlib test`` pair in a subprocess, so ``parallel`` of them
    share a small CPU (one torch thread each). A run whose ``metrics.json`` exists is not redone
    (unless ``force``) while ``summary.json`` records the same resolved config (its
    ``config_digest``), so an interrupted ablation continues where it stopped. Each run's folder
    under ``<results_dir>/<name>/`` holds ``train.json``, ``log.json``, ``metrics.json``,
    ``scores.npz`` and ``reversal.json``; checkpoints go to ``<work_root>/<grad>_seed<seed>/``.

    Returns the keys of ``summary.json`` (:class:`~tinlib.records.AblationSummary`), also written
    as ``summary.md``.
    """
    from tqdm.auto import tqdm

    from tinlib.report.analysis import read_synthetic_meta

    runs = plan(seeds, grads)
    cfg = load_config(config)
    applied = dict(data_overrides(cfg, data_root))
    applied.update(overrides or {})
    if parallel > 1:  # runs side by side share the cores: one torch thread each
        applied.setdefault("train.num_threads", 1)
    folder, work_root = Path(results_dir) / name, Path(work_root)
    meta = read_synthetic_meta(data_root or cfg.data.root)
    digest = config_digest(config, applied)
    todo = _runs_to_do(folder, runs, force, AblationSummary(config=config, overrides=applied, grads=list(grads),
                                                            seeds=list(seeds), runs=[], config_digest=digest))
    with tqdm(total=len(todo), desc="ablation runs", unit="run", disable=not progress or not todo) as bar:
        def advance(done: str | None) -> None:
            if done:
                bar.set_postfix_str(done)
            bar.update()

        run_side_by_side([functools.partial(_execute, config, r, work_root, folder, applied, meta) for r in todo],
                         failure=RuntimeError, workers=max(1, int(parallel)), on_done=advance)
    summary = summarize(folder, runs, config=config, overrides=applied)
    summary.config_digest = digest
    summary.write(folder / AblationSummary.FILENAME)
    atomic_write_text(folder / "summary.md", summary_markdown(summary))
    return summary.to_dict()
