"""What ``results/`` holds for the tables, read through :mod:`tinlib.records` (no torch): each
config's run, the published checkpoints evaluated here, the latency entries; and the published
model-zoo rows from the configs' ``zoo`` sections.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

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

# settings that do not change a result: where the data lives, loader parallelism, bookkeeping
BENIGN_KEYS = ("name", "description", "work_dir", "results_dir", "data.root", "data.train_ann", "data.val_ann",
               "data.test_ann", "data.train_prefix", "data.val_prefix", "data.test_prefix", "data.workers_per_gpu",
               "data.persistent_workers", "data.prefetch_factor", "data.pin_memory", "data.val_videos_per_gpu",
               "data.test_videos_per_gpu", "data.video_backend", "train.num_threads",
               "train.log_interval", "train.checkpoint_interval", "train.keep_epoch_checkpoints",
               "train.val_interval", "train.save_best", "model.interlace_backend", "zoo",
               "published")
# the split in an annotation list's name: sthv1_test_list_rawframes.txt -> test
LIST_SPLIT = re.compile(r"_(train|val|test)_list_[a-z]+\.txt$")


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


R = TypeVar("R", bound=Record)


def _read_or_warn(cls: type[R], path: Path, warn: bool = True) -> R | None:
    """``cls.read(path)``; None (and a warning naming the file) when it is missing or not usable,
    so one damaged file leaves its cells empty instead of stopping the table."""
    if not path.is_file():
        return None
    try:
        return cls.read(path)
    except RecordError as err:
        if warn:
            log.warning("%s (left out of the table)", err)
        return None


@dataclass
class RunRecord:
    """What ``results/`` holds about one config's run (any part may be missing): ``metrics.json``
    (``tinlib test``), ``train.json`` and ``log.json`` (``tinlib train``), ``launch.json`` (how the
    train notebook launched it), ``reversal.json`` (the synthetic data's reversal pairs), and this
    arch's entry of a ``latency.json`` measured on the same setting."""

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
            nodes, per_node = self.launch.nodes, self.launch.gpus_per_node
            layout = f"{nodes}x{per_node}" if nodes and nodes > 1 else str(per_node)
            return processes_cell(self.launch.device, self.launch.world_size, layout)
        if self.train is not None:
            return processes_cell(self.train.device_name, self.train.world_size)
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


def processes_cell(device: str, world: int, gpu_layout: str | None = None) -> str:
    """How a run ran, for a ``gpus`` cell: ``cpu`` / ``cpu xN`` on the CPU, else ``gpu_layout``
    (``2x4``: nodes x GPUs per node) or the number of processes."""
    if device.startswith("cpu"):
        return "cpu" if world == 1 else f"cpu x{world}"
    return gpu_layout or str(world)


def _iter_records(results_dir: Path, name: str) -> Iterable[Path]:
    if not results_dir.is_dir():
        return []
    return sorted(p for p in results_dir.rglob(name) if "runs" not in p.relative_to(results_dir).parts[:1])


def collect_runs(results_dir: str | os.PathLike = "results") -> dict[str, RunRecord]:
    """Runs found below ``results_dir`` (not in ``results/runs``), keyed by config name. Of several
    runs of a config, its default run folder (``<results_dir>/<config>/``) wins over other names
    (an ablation's runs, say), then the newest evaluated run. A damaged record is left out with a
    warning."""
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
    return published_run(config) in (folder.name, getattr(record, "run", None))


def collect_published(results_dir: str | os.PathLike = "results", warn: bool = True) -> dict[str, RunRecord]:
    """The published checkpoints evaluated here (``<results_dir>/<config>_published/metrics.json``),
    keyed by config name; the newest when there are several. ``warn=False`` leaves out damaged
    records silently (for a caller that has warned about them through :func:`collect_runs`)."""
    out: dict[str, RunRecord] = {}
    for path in _iter_records(Path(results_dir), MetricsRecord.FILENAME):
        record = _read_or_warn(MetricsRecord, path, warn)
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
