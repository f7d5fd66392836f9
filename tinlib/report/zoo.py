"""``tinlib zoo``: rewrite ``results/model_zoo.md`` from what is under ``results/``.

The published side of every row comes from the ``zoo`` section of the configs (one source of
truth: ``tinlib/configs/<row>.py``); the measured side from the run records that training,
evaluation and latency write below ``results/``, read through :mod:`tinlib.records`:

- ``<run>/metrics.json`` (``tinlib test``): top-1/top-5/mean class accuracy, the config used;
- ``<run>/train.json`` and ``<run>/log.json`` (``tinlib train`` + the train notebook): processes,
  peak GPU memory per iteration (the ``gpu_mem(M)`` column);
- ``<run>/launch.json`` (train notebook): nodes x GPUs per node;
- ``<run>/reversal.json`` (evaluation on the synthetic data): time-reversal pair accuracy;
- ``**/latency.json`` (``tinlib latency``): inference time, FLOPs, parameters per architecture;
- ``<config>_published/metrics.json`` (``make evaluate-published-*``): the row's published
  checkpoint tested here, shown on a second line under its row (never mixed with the user's run).

The tables keep the seed's three sections and columns. A cell with two values reads
*measured / published*; a row that has not been run is marked ``(not run)`` and its ``gpus`` cell
shows the published setting alone; a run whose settings differ from its config (other than paths
and loader details) gets a footnote listing them. Under each table a legend says which annotation
list the accuracies are on and what the ``reference`` columns are.
Nothing here imports torch: ``tinlib zoo`` takes well under a second.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tinlib.io import atomic_write_text
from tinlib.records import (
    LatencyModel,
    LatencyRecord,
    LaunchRecord,
    MetricsRecord,
    Record,
    RecordError,
    ReversalRecord,
    TrainRecord,
    read_log,
)

log = logging.getLogger(__name__)

# The seed page's sections, in its order; configs name theirs in ``zoo.dataset``.
SECTIONS = ("Something-Something V1", "Something-Something V2", "Kinetics-400")
COLUMNS = ("config", "resolution", "gpus", "backbone", "pretrain", "top1 acc", "top5 acc", "reference top1 acc",
           "reference top5 acc", "gpu_mem(M)", "ckpt", "log", "json")
NOT_RUN = "(not run)"
MISSING = "–"
# settings that do not change a result: where the data lives, loader parallelism, bookkeeping
BENIGN_KEYS = ("name", "description", "work_dir", "results_dir", "data.root", "data.train_ann", "data.val_ann",
               "data.test_ann", "data.train_prefix", "data.val_prefix", "data.test_prefix", "data.workers_per_gpu",
               "data.val_videos_per_gpu", "data.test_videos_per_gpu", "data.video_backend", "train.num_threads",
               "train.log_interval", "train.checkpoint_interval", "train.keep_epoch_checkpoints",
               "train.val_interval", "train.save_best", "model.interlace_backend", "zoo",
               "published")
DEMO_TARGETS = {"tin_top1": 90.0, "tsn_pair_window": 10.0}
# the split in an annotation list's name: sthv1_test_list_rawframes.txt -> test
LIST_SPLIT = re.compile(r"_(train|val|test)_list_[a-z]+\.txt$")


# --------------------------------------------------------------------------------------------
# Published rows (from the configs)
# --------------------------------------------------------------------------------------------
@dataclass
class PublishedRow:
    """One model-zoo row as MMAction2 published it (from a config's ``zoo`` section)."""
    config: str
    dataset: str
    resolution: str
    gpus: str
    backbone: str
    pretrain: str
    top1: float | None
    top5: float | None
    ref_top1: float | None
    ref_top5: float | None
    gpu_mem: int | None
    flops: int | None
    params: int | None
    checkpoint: str      # URL of the published checkpoint ("" when none)
    eval_list: str = ""  # the annotation list the config tests on (file name)
    log: str = ""        # URL of the published training log ("" when none)


def published_rows() -> list[PublishedRow]:
    """Every config whose ``zoo`` section carries published accuracies, in the seed's order."""
    from tinlib.config import available_configs, load_config

    rows = []
    for name in available_configs():
        cfg = load_config(name)
        z = cfg.zoo
        if z.top1 is None or not z.dataset:
            continue
        rows.append(PublishedRow(name, z.dataset, z.resolution, z.gpus, z.backbone, z.pretrain, z.top1, z.top5,
                                 z.ref_top1, z.ref_top5, z.gpu_mem, z.flops, z.params, cfg.published.checkpoint,
                                 Path(cfg.data.test_ann).name, log=cfg.published.log))
    order = {s: i for i, s in enumerate(SECTIONS)}
    rows.sort(key=lambda r: (order.get(r.dataset, len(order)), r.dataset, r.config))
    return rows


# --------------------------------------------------------------------------------------------
# Runs (from results/)
# --------------------------------------------------------------------------------------------
R = TypeVar("R", bound=Record)


def _read_or_warn(cls: type[R], path: Path) -> R | None:
    """``cls.read(path)``; None (and a warning naming the file) when it is missing or not usable,
    so one damaged file leaves its cells empty instead of stopping the table."""
    if not path.is_file():
        return None
    try:
        return cls.read(path)
    except RecordError as err:
        log.warning("%s (left out of the table)", err)
        return None


@dataclass
class RunRecord:
    """What ``results/`` holds about one config's run (any part may be missing): the records of
    its folder, and this arch's entry of a ``latency.json`` measured on the same setting."""

    config: str
    folder: Path
    metrics: MetricsRecord | None = None
    train: TrainRecord | None = None
    launch: LaunchRecord | None = None
    reversal: ReversalRecord | None = None
    log_path: Path | None = None
    latency: LatencyModel | None = None
    latency_path: Path | None = None

    # ---- derived values -----------------------------------------------------------------
    @property
    def run_config(self) -> dict | None:
        """The config the run used (from ``metrics.json``, else ``train.json``)."""
        for source in (self.metrics, self.train):
            if source is not None and isinstance(source.config, dict):
                return source.config
        return None

    @property
    def arch(self) -> str | None:
        """The run's model arch (``tin_r50``, ...), None without a config record."""
        cfg = self.run_config
        return cfg["model"]["arch"] if cfg else None

    def metric(self, key: str) -> float | None:
        """Percent value of ``top1_acc``, ``top5_acc`` or ``mean_class_accuracy`` (test split)."""
        return self.metrics.percent(key) if self.metrics is not None else None

    def evaluated_on(self) -> str | None:
        """The annotation list (file name) the run's metrics were computed on, else the split's
        name; None when the run was not evaluated."""
        if self.metrics is None:
            return None
        split = self.metrics.split
        cfg = self.run_config or {}
        ann = cfg.get("data", {}).get(f"{split}_ann") if isinstance(cfg.get("data"), dict) else None
        return Path(ann).name if ann else split

    def evaluated_split(self) -> str | None:
        """The data split the metrics are on, from the list's name (``<prefix>_<split>_list_<kind>.txt``:
        the model-zoo configs test on ``val``, the demo on its held-out ``test``), else the split
        the evaluation was asked for; None when the run was not evaluated."""
        where = self.evaluated_on()
        if where is None or self.metrics is None:
            return None
        found = LIST_SPLIT.search(where)
        return found.group(1) if found else self.metrics.split

    def gpus(self) -> str | None:
        """The ``gpus`` cell: ``nodes x GPUs per node`` as launched (``8``, ``2x4``), ``cpu`` /
        ``cpu xN`` for CPU runs; None when nothing says how it ran."""
        if self.launch is not None and self.launch.world_size:
            world = self.launch.world_size
            if self.launch.device == "cpu":
                return "cpu" if world == 1 else f"cpu x{world}"
            nodes, per_node = self.launch.nodes, self.launch.gpus_per_node
            return f"{nodes}x{per_node}" if nodes and nodes > 1 else str(per_node)
        if self.train is not None:
            world = self.train.world_size
            if self.train.device_name.startswith("cpu"):
                return "cpu" if world == 1 else f"cpu x{world}"
            return str(world)
        return None

    def gpu_mem(self) -> int | None:
        """Peak training memory (MiB): max ``memory`` of the training log, else the latency
        run's measurement; None on the CPU."""
        peak = 0
        if self.log_path is not None and self.log_path.is_file():
            try:
                peak = read_log(self.log_path).peak_memory()
            except RecordError as err:
                log.warning("%s (gpu_mem left out)", err)
        if peak:
            return peak
        if self.latency is not None and self.latency.train_gpu_mem_mib:
            return int(self.latency.train_gpu_mem_mib)
        return None

    def latency_ms(self, device: str = "cuda") -> float | None:
        """Mean ms per video of this arch on ``device`` (``cpu``/``cuda``), None if not measured."""
        return self.latency.mean_ms(device) if self.latency is not None else None

    def changed_settings(self) -> list[str]:
        """``key=value`` for every result-relevant setting that differs from the config file."""
        cfg = self.run_config
        if cfg is None:
            return []
        try:
            from tinlib.config import diff_configs, load_config

            reference = load_config(self.config).to_dict()
        except Exception:  # noqa: BLE001 (the config file is gone or no longer valid: any error)
            return ["(config file not found)"]
        out = []
        for key in diff_configs(reference, cfg):
            if any(key == b or key.startswith(b + ".") for b in BENIGN_KEYS):
                continue
            value: Any = cfg
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            out.append(f"{key}={value!r}")
        return out

    @property
    def time(self) -> str:
        """When the run was evaluated (else trained), ISO 8601; '' when not recorded."""
        for source in (self.metrics, self.train):
            if source is not None and source.time:
                return str(source.time)
        return ""


def _iter_records(results_dir: Path, name: str) -> Iterable[Path]:
    if not results_dir.is_dir():
        return []
    return sorted(p for p in results_dir.rglob(name) if "runs" not in p.relative_to(results_dir).parts[:1])


def collect_runs(results_dir: str | os.PathLike = "results") -> dict[str, RunRecord]:
    """Runs found below ``results_dir``, keyed by config name. When a config was run several
    times, its default run folder (``<results_dir>/<config>/``, what ``tinlib train`` and the
    pipelines write) wins over other names (an ablation's runs, say), then the newest evaluated
    run. Executed notebooks (``results/runs``) are not searched; a damaged record is left out with
    a warning."""
    results_dir = Path(results_dir)
    folders: dict[Path, RunRecord] = {}
    kinds: tuple[tuple[type[MetricsRecord | TrainRecord], str], ...] = (
        (MetricsRecord, "metrics"), (TrainRecord, "train"))
    for cls, attr in kinds:
        for path in _iter_records(results_dir, cls.FILENAME):
            record = _read_or_warn(cls, path)
            if record is None or not record.config_name or is_published_evaluation(path.parent, record):
                continue
            rec = folders.setdefault(path.parent, RunRecord(record.config_name, path.parent))
            if rec.config != record.config_name:
                continue  # a folder mixing two configs: trust the first record
            setattr(rec, attr, record)
    for folder, rec in folders.items():
        rec.launch = _read_or_warn(LaunchRecord, folder / LaunchRecord.FILENAME)
        rec.reversal = _read_or_warn(ReversalRecord, folder / ReversalRecord.FILENAME)
        rec.log_path = folder / "log.json" if (folder / "log.json").is_file() else None
    runs: dict[str, RunRecord] = {}
    for rec in folders.values():
        old = runs.get(rec.config)
        if old is None or _preference(rec, results_dir) > _preference(old, results_dir):
            runs[rec.config] = rec
    latencies = collect_latency(results_dir)
    for rec in runs.values():
        found = find_latency(latencies, rec.config, rec.arch, _test_shape(rec.run_config))
        if found is not None:
            rec.latency_path, rec.latency = found
    return runs


def is_published_evaluation(folder: Path, record: Record) -> bool:
    """Whether a run folder holds a published checkpoint evaluated here: it is named
    ``<config>_published`` (``make evaluate-published-*``), or its record says so."""
    from tinlib.hub import published_run

    config = getattr(record, "config_name", None)
    if not config:
        return False
    return folder.name == published_run(config) or getattr(record, "run", None) == published_run(config)


def collect_published(results_dir: str | os.PathLike = "results", warn: bool = True) -> dict[str, RunRecord]:
    """The published checkpoints evaluated here (``<results_dir>/<config>_published/metrics.json``),
    keyed by config name; the newest when there are several. ``warn=False`` leaves out damaged
    records silently (for a caller that has warned about them through :func:`collect_runs`)."""
    out: dict[str, RunRecord] = {}
    for path in _iter_records(Path(results_dir), MetricsRecord.FILENAME):
        if warn:
            record = _read_or_warn(MetricsRecord, path)
        else:
            try:
                record = MetricsRecord.read(path)
            except RecordError:
                continue
        if record is None or not is_published_evaluation(path.parent, record):
            continue
        rec = RunRecord(record.config_name, path.parent, metrics=record)
        old = out.get(rec.config)
        if old is None or rec.time > old.time:
            out[rec.config] = rec
    return out


def _preference(rec: RunRecord, results_dir: Path) -> tuple:
    default_folder = rec.folder.resolve() == (results_dir / rec.config).resolve()
    return default_folder, rec.metrics is not None, rec.time


def _test_shape(cfg: dict | None) -> list[int] | None:
    if not cfg:
        return None
    s = cfg["data"]["input_size"]
    return [1, cfg["model"]["num_segments"], 3, s, s]


def collect_latency(results_dir: str | os.PathLike) -> list[tuple[Path, LatencyRecord]]:
    """Every ``latency.json`` below ``results_dir`` (not ``results/runs``), newest first."""
    out = []
    for path in _iter_records(Path(results_dir), LatencyRecord.FILENAME):
        record = _read_or_warn(LatencyRecord, path)
        if record is not None:
            out.append((path, record))
    out.sort(key=lambda item: str(item[1].time or ""), reverse=True)  # newest first
    return out


def find_latency(latencies: list[tuple[Path, LatencyRecord]], config: str, arch: str | None,
                 shape: list[int] | None) -> tuple[Path, LatencyModel] | None:
    """The latency entry of ``arch`` measured on ``config``'s test setting, else on any config
    with the same input shape (the demo measures TIN, TSM and TSN in one run)."""
    if arch is None:
        return None
    for path, record in latencies:
        if record.setting.config == config and arch in record.models:
            return path, record.models[arch]
    for path, record in latencies:
        if shape and record.setting.flops_input_shape == shape and arch in record.models:
            return path, record.models[arch]
    return None


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------
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
        evaluated = run is not None and run.metrics is not None
        if run is None:
            name = f"{r.config} {NOT_RUN}"
        elif not evaluated:
            name = f"{r.config} (trained, not evaluated)"
        else:
            name = r.config
        evaluated_on = run.evaluated_on() if run is not None else None
        if evaluated_on and r.eval_list and evaluated_on != r.eval_list:
            name += f" (evaluated on {evaluated_on})"
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
            "log": rel_link(run.log_path, base, "log") if run and run.log_path else MISSING,
            "json": rel_link(run.folder / "metrics.json", base, "json") if run is not None and evaluated else MISSING,
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
    name = PUBLISHED_LINE
    evaluated_on = evaluation.evaluated_on()
    if evaluated_on and row.eval_list and evaluated_on != row.eval_list:
        name += f" (evaluated on {evaluated_on})"
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
    world = metrics.world_size or 1
    device = str((metrics.device or {}).get("device", "")) if isinstance(metrics.device, dict) else ""
    if device.startswith("cpu"):
        return "cpu" if world == 1 else f"cpu x{world}"
    return str(world) if device else None


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
            run.config + ("" if run.metrics else " (trained, not evaluated)"), run.arch or MISSING, frames,
            run.gpus() or MISSING, t.get("epochs", MISSING), run.evaluated_split() or MISSING, _evaluated_cell(run),
            fmt(run.metric("top1_acc")), fmt(run.metric("top5_acc")),
            fmt(run.metric("mean_class_accuracy")), reversal_cell(run), fmt(run.latency_ms("cpu"), 1),
            f"{params / 1e6:.2f} M" if params else MISSING,
            rel_link(run.log_path, base, "log") if run.log_path else MISSING,
            rel_link(run.folder / "metrics.json", base, "json") if run.metrics else MISSING])
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
    checks = []
    tin = by_kind.get("tin")
    value = tin.metric("top1_acc") if tin else None
    checks.append({"name": "TIN top-1 on the synthetic test split", "target": f">= {DEMO_TARGETS['tin_top1']:.0f} %",
                   "value": value, "run": tin.config if tin else None,
                   "met": None if value is None else value >= DEMO_TARGETS["tin_top1"]})
    tsn = by_kind.get("tsn")
    rev = tsn.reversal if tsn else None
    value = rev.direction_acc if rev is not None else None
    chance = rev.chance if rev is not None else 50.0
    window = DEMO_TARGETS["tsn_pair_window"]
    target = f"{chance - window:.0f}–{chance + window:.0f} % (chance {chance:.0f} % ± {window:.0f})"
    checks.append({"name": "TSN direction accuracy on the time-reversal pairs", "target": target,
                   "value": value, "run": tsn.config if tsn else None,
                   "met": None if value is None else abs(value - chance) <= window})
    return checks


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
        name = run.config + ("" if run.metrics else " (trained, not evaluated)")
        body.append([name, cfg.get("data", {}).get("dataset", MISSING), run.arch or MISSING, run.gpus() or MISSING,
                     fmt(run.metric("top1_acc")), fmt(run.metric("top5_acc")), fmt(run.metric("mean_class_accuracy")),
                     fmt(run.gpu_mem()), rel_link(run.log_path, base, "log") if run.log_path else MISSING,
                     rel_link(run.folder / "metrics.json", base, "json") if run.metrics else MISSING])
    return md_table(columns, body)


def render_zoo(results_dir: str | os.PathLike = "results", out: str | os.PathLike | None = None) -> str:
    """The whole model_zoo.md text (links relative to ``out``'s folder)."""
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


def build_parser() -> argparse.ArgumentParser:
    """The ``tinlib zoo`` argument parser."""
    p = argparse.ArgumentParser(prog="tinlib zoo", description="Rewrite the model-zoo table from results/: the "
                                "published rows (from the configs) beside the measured values of the runs found.")
    p.add_argument("--results-dir", default="results", help="where runs wrote their records (default results)")
    p.add_argument("--out", help="output file (default RESULTS_DIR/model_zoo.md)")
    p.add_argument("--print", action="store_true", help="also print the table")
    return p


def _run(args: argparse.Namespace) -> int:
    from tinlib.errors import UserError

    if not Path(args.results_dir).is_dir():
        raise UserError(f"results folder {args.results_dir} does not exist; give the folder the runs wrote to "
                        f"with --results-dir (default results)")
    out = write_zoo(args.results_dir, args.out)
    if args.print:
        print(out.read_text())
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``tinlib zoo``: rewrite the table; returns the exit status (2 when the results folder is missing)."""
    from tinlib.cli import run_command

    return run_command("tinlib zoo", build_parser(), _run, argv)


__all__ = [
    "PUBLISHED_LINE",
    "PublishedRow",
    "RunRecord",
    "checks_markdown",
    "collect_latency",
    "collect_published",
    "collect_runs",
    "demo_checks",
    "demo_runs",
    "find_latency",
    "is_published_evaluation",
    "main",
    "md_table",
    "published_cells",
    "published_legend",
    "published_rows",
    "render_zoo",
    "write_zoo",
    "zoo_legend",
]

if __name__ == "__main__":
    sys.exit(main())
