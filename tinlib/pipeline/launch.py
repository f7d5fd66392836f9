"""What the notebooks launch: data preparation, training (in this process, else under ``torchrun``),
evaluation and the latency benchmark, each leaving its records under ``<results_dir>/<run>/``.
``config``, ``data_root``, ``work_dir``, ``overrides``, ``results_dir`` mean what :mod:`.runconfig` says.
"""
from __future__ import annotations

import codecs
import functools
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from tinlib.data.releases import DATASETS, SPLITS, prefix_key
from tinlib.pipeline.runconfig import (
    default_work_dir,
    find_checkpoint,
    load_config,
    require_train_split,
    resolve,
    run_folder,
    run_overrides,
)
from tinlib.records import Fields, LatencyRecord, LaunchRecord, PrepareRecord, RecordError, TrainRecord


# Data
def prepare_data(dataset: str, data_root: str | os.PathLike, *, lists_dir: str | os.PathLike | None = None,
                 layout: str = "sthv1", size: str = "demo", num_train: int | None = None,
                 num_val: int | None = None, height: int | None = None, frames: Sequence[int] | None = None,
                 seed: int = 0, extract: bool = True, workers: int | None = None,
                 splits: str | Sequence[str] | None = None) -> dict[str, Any]:
    """Build the annotation lists (and frames where the release has none) of ``dataset`` (``sthv1``,
    ``sthv2``, ``k400``: the release files in ``data_root``), or write the embedded ``synthetic``
    dataset in ``layout`` to ``data_root`` (``layout`` to ``seed``: see
    :func:`tinlib.data.synthetic.write_synthetic`). Lists and ``tinlib_prepare.json`` go to
    ``lists_dir`` (default ``data_root``); ``extract``: frames from videos (SthV2, Kinetics-400).

    ``splits``: the release's splits (default ``train`` and ``val``; the synthetic dataset is always
    written whole). The lists of other splits that an earlier run left in ``lists_dir`` stay in
    the record (its ``splits`` names them all).

    Returns the summary as written to ``tinlib_prepare.json`` (the keys of a
    :class:`~tinlib.records.PrepareRecord`; for the synthetic dataset also those of its
    :class:`~tinlib.records.SyntheticMeta`). Raises PrepareError when a release file is missing or
    ``splits`` names an unknown split.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    root = Path(data_root)
    out = Path(lists_dir) if lists_dir else root
    t0 = time.time()
    if dataset == "synthetic":
        from tinlib.data.synthetic import write_synthetic

        written = write_synthetic(root, layout, num_train=num_train, num_val=num_val, seed=seed, size=size,
                                  height=height, frames=(frames[0], frames[1]) if frames else None,
                                  workers=workers, progress=False)
        summary = dict(_plain(written), dataset=f"synthetic-{layout}")
    else:
        from tinlib.data.prepare import prepare_release

        summary = _plain(prepare_release(dataset, root, out, extract=extract, workers=workers, splits=splits))
        summary = _keep_other_splits(summary, out)
    summary.update(data_root=str(root), num_classes=len(summary["class_names"]), prepared_s=round(time.time() - t0, 2))
    record = PrepareRecord.from_dict(summary)
    write_prepare_summary(out, record)
    return record.to_dict()


def _keep_other_splits(summary: dict[str, Any], lists_dir: Path) -> dict[str, Any]:
    """``summary`` of some splits, completed with the lists of the other splits that the record
    already in ``lists_dir`` names (same dataset and classes, list file still there): preparing
    the val split after a full preparation must not hide the train lists from training."""
    try:
        old = PrepareRecord.read_optional(lists_dir / PrepareRecord.FILENAME)
    except RecordError:
        return summary  # damaged: rewritten from this run alone
    done = list(summary.get("splits") or [])
    if old is None or old.dataset != summary["dataset"] or old.class_names != summary["class_names"]:
        return summary
    kept = []
    for kind, new_lists in summary["lists"].items():
        old_lists = old.lists.get(kind)
        if old_lists is None:
            continue
        for split in SPLITS:
            path = getattr(old_lists, split)
            if split in done or split in new_lists or not path or not Path(path).is_file():
                continue
            new_lists[split] = path
            new_lists[prefix_key(split)] = getattr(old_lists, prefix_key(split))
            kept.append(split)
    counts = dict(summary["counts"])
    counts.update({split: old.counts[split] for split in kept if split in old.counts})
    summary["counts"] = {s: counts[s] for s in SPLITS if s in counts}
    ordered = [s for s in SPLITS if s in done or s in kept]
    summary["splits"] = ordered + [s for s in done if s not in ordered]
    return summary


def _plain(summary: Fields | Mapping[str, Any]) -> dict[str, Any]:
    """A preparation's summary (a record or its dict) as a dict, without the record's schema version."""
    data = summary.to_dict() if isinstance(summary, Fields) else dict(summary)
    data.pop("schema", None)
    return data


def write_prepare_summary(lists_dir: str | os.PathLike, summary: PrepareRecord | Mapping[str, Any]) -> Path:
    """Store ``summary`` as ``<lists_dir>/tinlib_prepare.json``; a dict is checked as a
    :class:`~tinlib.records.PrepareRecord` (RecordError without ``dataset``, ``class_names`` or ``lists``)."""
    path = Path(lists_dir) / PrepareRecord.FILENAME
    if not isinstance(summary, PrepareRecord):
        summary = PrepareRecord.from_dict(summary)
    return summary.write(path)


# Command lines
def set_arguments(overrides: dict[str, Any]) -> list[str]:
    """``["key=literal", ...]``: the arguments of ``--set`` for ``overrides``, whose values must be
    Python literals (str, number, bool, None, list, tuple or dict: TypeError otherwise)."""
    for value in overrides.values():
        if not (value is None or isinstance(value, (str, bool, int, float, list, tuple, dict))):
            raise TypeError(f"override value {value!r} is not a literal (str, number, bool, None, list or dict)")
    return [f"{k}={v!r}" for k, v in overrides.items()]


def torchrun_prefix(*, gpus: int, nodes: int = 1, node_rank: int = 0, master_addr: str = "127.0.0.1",
                    master_port: int = 29500) -> list[str]:
    """``python -m torch.distributed.run`` with its layout options, before the module to run:
    ``gpus`` processes per node on ``nodes`` nodes (more than one: ``node_rank``, ``master_addr``
    and ``master_port`` say where this node is, else ``--standalone``)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={gpus}", f"--nnodes={nodes}"]
    if nodes > 1:
        return cmd + [f"--node-rank={node_rank}", f"--master-addr={master_addr}", f"--master-port={master_port}"]
    return cmd + ["--standalone"]


def torchrun_command(config: str, *, gpus: int, nodes: int = 1, node_rank: int = 0, master_addr: str = "127.0.0.1",
                     master_port: int = 29500, work_dir: str | os.PathLike, run: str | None = None,
                     overrides: dict | None = None, resume: str | None = "auto", device: str = "auto",
                     seed: int | None = None, extra: Sequence[str] = ()) -> list[str]:
    """The ``torchrun`` command line of a ``tinlib train`` run (the layout as for :func:`torchrun_prefix`);
    ``work_dir``, ``run``, ``resume``, ``device``, ``seed``: ``tinlib train``'s options of those names,
    ``overrides`` (``{"dotted.key": value}``) for ``--set``, ``extra`` appended as they are."""
    cmd = torchrun_prefix(gpus=gpus, nodes=nodes, node_rank=node_rank, master_addr=master_addr,
                          master_port=master_port)
    cmd += ["-m", "tinlib", "train", str(config), "--work-dir", str(work_dir), "--no-progress", "--device", device]
    if run:
        cmd += ["--run", run]
    if resume:
        cmd += ["--resume", resume]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if overrides:
        cmd += ["--set", *set_arguments(overrides)]
    return cmd + list(extra)


class ConsoleEcho:
    """A text sink (``write`` / ``flush``) that prints what it is given to ``out`` (default: the
    ``sys.stdout`` of the moment) line by line as it comes: each complete line at once (after
    ``prefix``, e.g. the step's name), and progress lines that end in a carriage return (progress
    bars) at most every ``refresh_s`` seconds, the last one on :meth:`close`. Blank lines are
    dropped. Threads may share the console (steps that run side by side print whole lines).
    """

    _lock = threading.Lock()

    def __init__(self, out: TextIO | None = None, *, prefix: str = "", refresh_s: float = 20.0):
        self.out, self.prefix, self.refresh_s = out, prefix, refresh_s
        self.buffer = ""
        self.pending: str | None = None  # the latest progress line not shown yet
        self.last_progress = -math.inf
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # bytes may split a character

    def write(self, text: str | bytes) -> int:
        """Take more output (str, or bytes decoded as UTF-8); prints the lines it completes."""
        size = len(text)
        if isinstance(text, bytes):
            text = self.decoder.decode(text)
        self.buffer += text
        while True:
            cuts = [i for i in (self.buffer.find("\n"), self.buffer.find("\r")) if i >= 0]
            if not cuts:
                break
            cut = min(cuts)
            line, sep, self.buffer = self.buffer[:cut], self.buffer[cut], self.buffer[cut + 1:]
            if sep == "\n":
                if line.strip():
                    self._print(line)
                self.pending = None
            elif line.strip():
                self.pending = line
                if time.monotonic() - self.last_progress >= self.refresh_s:
                    self._print(line)
                    self.last_progress, self.pending = time.monotonic(), None
        return size

    def flush(self) -> None:
        """Nothing to do: complete lines are printed as they come."""

    def close(self) -> None:
        """Print what is left: an unfinished line, else the last progress line not shown."""
        if self.buffer.strip():
            self._print(self.buffer)
        elif self.pending:
            self._print(self.pending)
        self.buffer, self.pending = "", None

    def _print(self, line: str) -> None:
        with self._lock:
            print(self.prefix + line.rstrip(), file=self.out or sys.stdout, flush=True)


def stream_command(cmd: Sequence[str], *, cwd: str | os.PathLike | None = None, env: dict | None = None,
                   refresh_s: float = 20.0, out: TextIO | None = None) -> int:
    """Run ``cmd``, its stdout and stderr printed to ``out`` through a :class:`ConsoleEcho`; returns the exit status."""
    echo = ConsoleEcho(out, refresh_s=refresh_s)
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)
    assert proc.stdout is not None
    try:
        # unbuffered: a read returns what the command has written so far
        for chunk in iter(functools.partial(proc.stdout.read, 65536), b""):
            echo.write(chunk)
        echo.close()
    finally:
        proc.wait()
    return proc.returncode


def run_torchrun(cmd: Sequence[str], *, out: TextIO | None = None, see: str = "the output above") -> None:
    """Print the torchrun command line ``cmd`` and run it, its output streamed to ``out`` (default
    ``sys.stdout``); a failure raises RuntimeError pointing to ``see``."""
    print("$ " + " ".join(cmd), file=out or sys.stdout, flush=True)
    code = stream_command(cmd, out=out)
    if code != 0:
        raise RuntimeError(f"torchrun exited with status {code}; see {see}")


# Training, evaluation, latency
def launch_training(config: str, *, data_root: str | os.PathLike | None = None,
                    work_dir: str | os.PathLike | None = None, overrides: dict | None = None, gpus: int = 1,
                    nodes: int = 1, node_rank: int = 0, master_addr: str = "127.0.0.1", master_port: int = 29500,
                    results_dir: str | os.PathLike = "results", run: str | None = None, resume: str | None = "auto",
                    seed: int | None = None, device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Train ``config`` in this process on one device, or under ``torchrun`` (``gpus`` processes per
    node on ``nodes`` nodes, more than one in all; the layout as for :func:`torchrun_prefix`) with
    its output streamed. ``resume="auto"`` continues from ``work_dir/latest.pth`` when there is
    one, None starts afresh; ``seed`` None takes the config's ``train.seed``; ``progress``: a
    progress bar (single process only).

    Afterwards ``<results_dir>/<run>/`` (``run`` default: the config's name) holds ``train.json``,
    a copy of ``log.json`` and ``launch.json``. Returns ``train.json``'s keys
    (:class:`~tinlib.records.TrainRecord`); empty on nodes other than rank 0.
    """
    require_train_split(data_root)
    cfg = resolve(config, data_root=data_root, overrides=overrides, results_dir=results_dir)
    work = default_work_dir(cfg, work_dir)
    folder = run_folder(cfg, run)
    world = int(gpus) * int(nodes)
    t0 = time.time()
    if world > 1:
        # the subprocess loads the same config and applies the same (resolved) overrides
        applied = run_overrides(load_config(config), data_root, overrides, results_dir)
        cmd = torchrun_command(config, gpus=gpus, nodes=nodes, node_rank=node_rank, master_addr=master_addr,
                               master_port=master_port, work_dir=work, run=run or cfg.name, overrides=applied,
                               resume=resume, device=device, seed=seed)
        # to stderr, like a run in this process logs: the make pipeline echoes the notebooks' stderr
        run_torchrun(cmd, out=sys.stderr, see=f"the output above and {work / 'log.json'}")
    else:
        from tinlib.engine.train import train as engine_train

        engine_train(cfg, work_dir=work, resume=resume, seed=seed, device=device, run=run or cfg.name,
                     progress=progress)
    if node_rank != 0:
        return {}
    record = TrainRecord.read(folder / TrainRecord.FILENAME)  # what rank 0 wrote, whichever way it ran
    if (work / "log.json").is_file():
        shutil.copyfile(work / "log.json", folder / "log.json")
    write_launch_record(folder, config=cfg.name, nodes=int(nodes), gpus_per_node=int(gpus),
                        device="cuda" if record.device_name.startswith("cuda") else "cpu", work_dir=work,
                        wall_s=time.time() - t0)
    return record.to_dict()


def write_launch_record(folder: str | os.PathLike, *, config: str, nodes: int, gpus_per_node: int, device: str,
                        work_dir: str | os.PathLike, wall_s: float) -> Path:
    """Store how a training run was launched as ``<folder>/launch.json``: the layout (more than one
    process in all: torchrun), ``device`` (``cpu``/``cuda``), the work dir and ``wall_s``, seconds
    from launch to the end of training."""
    world = int(nodes) * int(gpus_per_node)
    record = LaunchRecord(config=config, nodes=int(nodes), gpus_per_node=int(gpus_per_node), world_size=world,
                          device=device, torchrun=world > 1, work_dir=str(work_dir), wall_s=round(wall_s, 1))
    return record.write(Path(folder) / LaunchRecord.FILENAME)


def launch_evaluation(config: str, *, data_root: str | os.PathLike | None = None,
                      work_dir: str | os.PathLike | None = None, checkpoint: str = "latest",
                      overrides: dict | None = None, results_dir: str | os.PathLike = "results",
                      run: str | None = None, device: str = "auto", batch_size: int | None = None,
                      num_workers: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Test ``config``'s ``checkpoint`` (see :func:`~tinlib.pipeline.runconfig.find_checkpoint`) on its
    test split in this process; ``metrics.json`` and ``scores.npz`` (and ``reversal.json`` on the
    synthetic dataset) go to ``<results_dir>/<run>/``. Returns ``metrics.json``'s content, plus
    ``reversal`` on the synthetic data."""
    from tinlib.engine.evaluate import evaluate as engine_evaluate
    from tinlib.report.analysis import read_synthetic_meta, write_reversal

    cfg = resolve(config, data_root=data_root, overrides=overrides, results_dir=results_dir, quiet=True)
    ckpt = find_checkpoint(default_work_dir(cfg, work_dir), checkpoint)
    report = engine_evaluate(cfg, ckpt, split="test", run=run or cfg.name, device=device, batch_size=batch_size,
                             num_workers=num_workers, overwrite=True, progress=progress)
    meta = read_synthetic_meta(data_root or cfg.data.root)
    if meta is not None and meta.reversal_pairs:
        report["reversal"] = write_reversal(run_folder(cfg, run), meta)
    return report


def measure_latency(config: str, archs: Sequence[str] | None = None, *, overrides: dict | None = None,
                    results_dir: str | os.PathLike = "results", devices: Sequence[str] = ("cpu", "cuda"),
                    iters: int | None = None, warmup: int = 5, threads: int | None = None,
                    train_memory: bool = True) -> dict[str, Any]:
    """``tinlib latency`` in this process: inference time, FLOPs and parameters of ``archs`` (default:
    the config's arch and its TSM/TSN twins) on the config's test setting, on ``devices`` (those
    there are); writes ``<results_dir>/<config>/latency.json``. ``iters``: timed iterations
    (default 20 on the CPU, 200 on a GPU); ``train_memory``: on a GPU, also the peak training
    memory at the config's videos per GPU.
    """
    import torch

    from tinlib.engine.latency import benchmark, write_latency

    cfg = resolve(config, overrides=overrides, results_dir=results_dir, quiet=True)
    if archs is None:
        kind, depth = cfg.model.arch.split("_")
        archs = [cfg.model.arch] + [f"{k}_{depth}" for k in ("tin", "tsm", "tsn") if k != kind]
    if threads:
        torch.set_num_threads(int(threads))
    result = benchmark(cfg, list(archs), devices=tuple(devices), warmup=warmup, iters_cpu=iters or 20,
                       iters_cuda=iters or 200, train_memory=train_memory, progress=True)
    write_latency(result, run_folder(cfg) / LatencyRecord.FILENAME)
    return result
