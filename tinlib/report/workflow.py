"""What the notebooks call: one function per notebook step, so a notebook is parameters + calls + plots.

Conventions shared by the notebooks (their ``parameters`` cell):

- ``config``: a config name (``tinlib/configs/<name>.py``) or a path to a config file;
- ``data_root``: the dataset folder; when it holds ``tinlib_prepare.json`` (written by
  :func:`prepare_data`, notebook 00) the list files, frame folders, file-name template and the
  class count found there are applied to the config;
- ``work_dir``: checkpoints and ``log.json`` (default ``work_dirs/<config name>``);
- ``overrides``: ``{"dotted.key": value}`` validated like ``tinlib train --set``;
- ``gpus`` / ``nodes``: devices per node and nodes; more than one device in total launches
  ``torchrun`` as a subprocess and streams its output, one device trains in this process;
- ``results_dir``: where run records go (``<results_dir>/<config name>/``).
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from tinlib.io import atomic_write_json

PREPARE_SUMMARY = "tinlib_prepare.json"
DATASETS = ("sthv1", "sthv2", "k400", "synthetic")


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def prepare_data(dataset: str, data_root: str | os.PathLike, *, lists_dir: str | os.PathLike | None = None,
                 layout: str = "sthv1", size: str = "demo", num_train: int | None = None,
                 num_val: int | None = None, height: int | None = None, frames: Sequence[int] | None = None,
                 seed: int = 0, extract: bool = True, workers: int | None = None) -> dict[str, Any]:
    """Build the annotation lists (and frames where the release has none) for ``dataset``.

    ``synthetic`` writes the embedded synthetic dataset in ``layout`` to ``data_root`` first;
    the others read the official release files in ``data_root``. Lists and the summary
    ``tinlib_prepare.json`` go to ``lists_dir`` (default ``data_root``). Returns the summary.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    data_root = Path(data_root)
    out = Path(lists_dir) if lists_dir else data_root
    t0 = time.time()
    if dataset == "synthetic":
        from tinlib.data.synthetic import write_synthetic

        summary = write_synthetic(data_root, layout, num_train=num_train, num_val=num_val, seed=seed, size=size,
                                  height=height, frames=tuple(frames) if frames else None, workers=workers,
                                  progress=False)
        summary = dict(summary, dataset=f"synthetic-{layout}")
    else:
        from tinlib.data import prepare

        if dataset == "sthv1":
            summary = prepare.prepare_sthv1(data_root, out)
        elif dataset == "sthv2":
            summary = prepare.prepare_sthv2(data_root, out, extract=extract, workers=workers)
        else:
            summary = prepare.prepare_kinetics400(data_root, out, extract=extract, workers=workers)
    summary = dict(summary, data_root=str(data_root), num_classes=len(summary["class_names"]),
                   prepared_s=round(time.time() - t0, 2))
    atomic_write_json(out / PREPARE_SUMMARY, summary)
    return summary


def read_prepare_summary(data_root: str | os.PathLike | None) -> dict | None:
    if not data_root:
        return None
    for name in (PREPARE_SUMMARY, "synthetic_meta.json"):
        path = Path(data_root) / name
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except ValueError:
                return None
    return None


def data_overrides(cfg, data_root: str | os.PathLike | None) -> dict[str, Any]:
    """Overrides that point ``cfg`` at ``data_root`` (lists, folders, template, class count as
    prepared there); only keys whose value changes are returned."""
    if not data_root:
        return {}
    summary = read_prepare_summary(data_root)
    wanted: dict[str, Any] = {"data.root": str(data_root)}
    if summary:
        lists = summary.get("lists") or {}
        kind = cfg.data.kind if cfg.data.kind in lists else summary.get("kind") or next(iter(lists), None)
        if kind:
            lst = lists[kind]
            rel = functools.partial(_relative_to, Path(data_root))
            val_prefix = rel(lst.get("val_data_prefix") or lst["data_prefix"])
            wanted.update({"data.kind": kind, "data.train_ann": rel(lst["train"]), "data.val_ann": rel(lst["val"]),
                           "data.test_ann": rel(lst["val"]), "data.train_prefix": rel(lst["data_prefix"]),
                           "data.val_prefix": val_prefix, "data.test_prefix": val_prefix})
            if lst.get("filename_tmpl"):
                wanted["data.filename_tmpl"] = lst["filename_tmpl"]
            default_start = 1 if kind == "rawframes" else 0
            if lst.get("start_index") is not None and lst["start_index"] != (cfg.data.start_index if cfg.data.start_index is not None else default_start):
                wanted["data.start_index"] = lst["start_index"]
        if summary.get("num_classes") and summary["num_classes"] != cfg.model.num_classes:
            wanted["model.num_classes"] = int(summary["num_classes"])
    current = cfg.to_dict()
    out = {}
    for key, value in wanted.items():
        node: Any = current
        for part in key.split("."):
            node = node[part]
        if node != value:
            out[key] = value
    return out


def _relative_to(root: Path, path: str) -> str:
    """``path`` relative to ``root`` when it lies inside it (configs keep paths relative to data.root)."""
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(Path(path).resolve())


def resolve(config: str, *, data_root: str | os.PathLike | None = None, overrides: dict | None = None,
            results_dir: str | os.PathLike | None = None, quiet: bool = False):
    """The validated config with data and user overrides applied (user overrides win)."""
    from tinlib.engine.config import apply_overrides, load_config

    cfg = load_config(config)
    auto = data_overrides(cfg, data_root)
    if "model.num_classes" in auto and not quiet:
        print(f"note: {data_root} holds {auto['model.num_classes']} classes; model.num_classes set to match "
              f"(config: {cfg.model.num_classes})")
    merged = dict(auto)
    merged.update(overrides or {})
    if results_dir is not None:
        merged["results_dir"] = str(results_dir)
    return apply_overrides(cfg, merged)


def default_work_dir(cfg, work_dir: str | os.PathLike | None = None) -> Path:
    return Path(work_dir) if work_dir else cfg.resolved_work_dir()


def run_folder(cfg, run: str | None = None) -> Path:
    return Path(cfg.results_dir) / (run or cfg.name)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def _literal(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, list, tuple, dict)):
        return repr(value)
    raise TypeError(f"override value {value!r} is not a literal (str, number, bool, None, list or dict)")


def torchrun_command(config: str, *, gpus: int, nodes: int = 1, node_rank: int = 0, master_addr: str = "127.0.0.1",
                     master_port: int = 29500, work_dir: str | os.PathLike, run: str | None = None,
                     overrides: dict | None = None, resume: str | None = "auto", device: str = "auto",
                     seed: int | None = None, extra: Sequence[str] = ()) -> list[str]:
    """The ``torchrun`` command line of a ``tinlib train`` run on ``nodes`` x ``gpus`` processes."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={gpus}", f"--nnodes={nodes}"]
    if nodes > 1:
        cmd += [f"--node-rank={node_rank}", f"--master-addr={master_addr}", f"--master-port={master_port}"]
    else:
        cmd += ["--standalone"]
    cmd += ["-m", "tinlib", "train", str(config), "--work-dir", str(work_dir), "--no-progress", "--device", device]
    if run:
        cmd += ["--run", run]
    if resume:
        cmd += ["--resume", resume]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if overrides:
        cmd += ["--set"] + [f"{k}={_literal(v)}" for k, v in overrides.items()]
    return cmd + list(extra)


def stream_command(cmd: Sequence[str], *, cwd: str | os.PathLike | None = None, env: dict | None = None,
                   refresh_s: float = 20.0, out=None) -> int:
    """Run ``cmd``, printing its output line by line as it comes (progress lines that end in a
    carriage return are shown at most every ``refresh_s`` seconds). Returns the exit code."""
    out = out or sys.stdout
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)
    assert proc.stdout is not None
    buf, pending, last = b"", None, 0.0
    try:
        while True:
            chunk = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else proc.stdout.read(4096)
            if not chunk:
                break
            buf += chunk
            while True:
                cut = min((i for i in (buf.find(b"\n"), buf.find(b"\r")) if i >= 0), default=-1)
                if cut < 0:
                    break
                line, sep, buf = buf[:cut].decode(errors="replace"), buf[cut:cut + 1], buf[cut + 1:]
                if sep == b"\n":
                    if line.strip():
                        print(line, file=out, flush=True)
                    pending = None
                elif line.strip():
                    pending = line
                    if time.time() - last >= refresh_s:
                        print(line, file=out, flush=True)
                        last, pending = time.time(), None
        if buf.strip():
            print(buf.decode(errors="replace"), file=out, flush=True)
        elif pending:
            print(pending, file=out, flush=True)
    finally:
        code = proc.wait()
    return code


def train(config: str, *, data_root: str | os.PathLike | None = None, work_dir: str | os.PathLike | None = None,
          overrides: dict | None = None, gpus: int = 1, nodes: int = 1, node_rank: int = 0,
          master_addr: str = "127.0.0.1", master_port: int = 29500, results_dir: str | os.PathLike = "results",
          run: str | None = None, resume: str | None = "auto", seed: int | None = None, device: str = "auto",
          progress: bool = True) -> dict[str, Any]:
    """Train ``config``: in this process on one device, or under ``torchrun`` (``gpus`` x ``nodes``
    processes) with its output streamed. Afterwards ``<results_dir>/<run>/`` holds ``train.json``,
    a copy of ``log.json`` and ``launch.json`` (how it was launched). Returns the train summary."""
    cfg = resolve(config, data_root=data_root, overrides=overrides, results_dir=results_dir)
    work = default_work_dir(cfg, work_dir)
    folder = run_folder(cfg, run)
    world = int(gpus) * int(nodes)
    t0 = time.time()
    if world > 1:
        # the subprocess loads the same config and applies the same (resolved) overrides
        applied = dict(data_overrides(_load(config), data_root))
        applied.update(overrides or {})
        applied["results_dir"] = str(results_dir)
        cmd = torchrun_command(config, gpus=gpus, nodes=nodes, node_rank=node_rank, master_addr=master_addr,
                               master_port=master_port, work_dir=work, run=run or cfg.name, overrides=applied,
                               resume=resume, device=device, seed=seed)
        print("$ " + " ".join(cmd), flush=True)
        code = stream_command(cmd)
        if code != 0:
            raise RuntimeError(f"torchrun exited with status {code}; see the output above and {work / 'log.json'}")
        summary = json.loads((folder / "train.json").read_text()) if node_rank == 0 else {}
    else:
        from tinlib.engine.train import train as engine_train

        summary = engine_train(cfg, work_dir=work, resume=resume, seed=seed, device=device, run=run or cfg.name,
                               progress=progress)
    if node_rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
        if (work / "log.json").is_file():
            shutil.copyfile(work / "log.json", folder / "log.json")
        device_kind = (summary.get("device") or {}).get("device", "cpu") if summary else "cpu"
        atomic_write_json(folder / "launch.json", {
            "config": cfg.name, "nodes": int(nodes), "gpus_per_node": int(gpus), "world_size": world,
            "device": "cpu" if str(device_kind).startswith("cpu") else "cuda", "torchrun": world > 1,
            "work_dir": str(work), "wall_s": round(time.time() - t0, 1)})
    return summary


def _load(config: str):
    from tinlib.engine.config import load_config

    return load_config(config)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
def find_checkpoint(work_dir: str | os.PathLike, which: str = "latest") -> Path:
    """``latest`` (the final weights), ``best`` (best validation epoch; falls back to latest) or a path."""
    work_dir = Path(work_dir)
    if which not in ("latest", "best"):
        path = Path(which)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} not found")
        return path
    for name in ([f"{which}.pth"] + (["latest.pth"] if which == "best" else [])):
        if (work_dir / name).is_file():
            return work_dir / name
    raise FileNotFoundError(f"no {which}.pth in {work_dir}: train first (notebook 01_train, or `tinlib train`)")


def evaluate(config: str, *, data_root: str | os.PathLike | None = None, work_dir: str | os.PathLike | None = None,
             checkpoint: str = "latest", overrides: dict | None = None, results_dir: str | os.PathLike = "results",
             run: str | None = None, device: str = "auto", batch_size: int | None = None,
             num_workers: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Test ``config``'s checkpoint on its test split; writes ``metrics.json`` and ``scores.npz``
    (and ``reversal.json`` on the synthetic dataset) to ``<results_dir>/<run>/``."""
    from tinlib.engine.evaluate import evaluate as engine_evaluate

    from tinlib.report.analysis import synthetic_meta, write_reversal

    cfg = resolve(config, data_root=data_root, overrides=overrides, results_dir=results_dir, quiet=True)
    ckpt = find_checkpoint(default_work_dir(cfg, work_dir), checkpoint)
    report = engine_evaluate(cfg, ckpt, split="test", run=run or cfg.name, device=device, batch_size=batch_size,
                             num_workers=num_workers, overwrite=True, progress=progress)
    meta = synthetic_meta(data_root or cfg.data.root)
    if meta and meta.get("reversal_pairs"):
        report["reversal"] = write_reversal(run_folder(cfg, run), meta)
    return report


def load_trained(config: str, *, data_root: str | os.PathLike | None = None,
                 work_dir: str | os.PathLike | None = None, checkpoint: str = "latest", overrides: dict | None = None,
                 split: str = "val"):
    """``(cfg, model, dataset)``: the trained model (eval mode, CPU) and a single-view split
    (``val``: one centre view per video) for inspection."""
    from tinlib.checkpoint import load_checkpoint
    from tinlib.engine.build import build_model
    from tinlib.engine.splits import build_split_dataset

    cfg = resolve(config, data_root=data_root, overrides=overrides, quiet=True)
    model = build_model(cfg, pretrained=False, load_from=False, verbose=False)
    ckpt = find_checkpoint(default_work_dir(cfg, work_dir), checkpoint)
    load_checkpoint(model, ckpt, strict=True, verbose=False)
    return cfg, model.eval(), build_split_dataset(cfg, split)


def config_summary(cfg, world_size: int = 1) -> dict[str, Any]:
    """The settings that matter for a run, for a small table."""
    from tinlib.engine.config import scaled_lr

    scaling = scaled_lr(cfg, world_size)
    d, m, t = cfg.data, cfg.model, cfg.train
    return {"config": cfg.name, "arch": m.arch, "classes": m.num_classes, "segments": m.num_segments,
            "input": f"{d.input_size}x{d.input_size} (short side {d.scale_size})", "data": d.dataset,
            "data root": d.root, "epochs": t.epochs, "processes": world_size,
            "videos / process": d.videos_per_gpu, "lr": f"{scaling.lr:g} ({scaling.message()})",
            "schedule": cfg.schedule.policy + (" by epoch" if cfg.schedule.by_epoch else " by iteration"),
            "pretrained": m.pretrained or "none (from scratch)", "load_from": m.load_from or "-"}


# --------------------------------------------------------------------------------------------
# Latency
# --------------------------------------------------------------------------------------------
def latency(config: str, archs: Sequence[str] | None = None, *, overrides: dict | None = None,
            results_dir: str | os.PathLike = "results", devices: Sequence[str] = ("cpu", "cuda"),
            iters: int | None = None, warmup: int = 5, threads: int | None = None,
            train_memory: bool = True) -> dict[str, Any]:
    """``tinlib latency`` for ``archs`` (default: the config's arch and its TSM/TSN twins) on the
    config's test setting; writes ``<results_dir>/<config>/latency.json``."""
    import torch

    from tinlib.engine.latency import benchmark

    cfg = resolve(config, overrides=overrides, results_dir=results_dir, quiet=True)
    if archs is None:
        kind, depth = cfg.model.arch.split("_")
        archs = [cfg.model.arch] + [f"{k}_{depth}" for k in ("tin", "tsm", "tsn") if k != kind]
    if threads:
        torch.set_num_threads(int(threads))
    result = benchmark(cfg, list(archs), devices=tuple(devices), warmup=warmup, iters_cpu=iters or 20,
                       iters_cuda=iters or 200, train_memory=train_memory, progress=True)
    atomic_write_json(run_folder(cfg) / "latency.json", result)
    return result


def latency_frame(result: dict[str, Any]):
    """One row per architecture: params, FLOPs and mean/std ms per device."""
    import pandas as pd

    rows = []
    for arch, e in result["models"].items():
        row = {"arch": arch, "params (M)": e["params"] / 1e6, "GFLOPs (mmcv)": e.get("flops_mmcv", 0) / 1e9,
               "GFLOPs (torch)": e.get("flops_torch", 0) / 1e9}
        for dev, lat in e.get("latency", {}).items():
            row[f"{dev} ms/video"] = lat["mean_ms"]
            row[f"{dev} ± ms"] = lat["std_ms"]
        if e.get("train_gpu_mem_mib"):
            row["train gpu_mem(M)"] = e["train_gpu_mem_mib"]
        rows.append(row)
    return pd.DataFrame(rows).round(3)


__all__ = ["prepare_data", "read_prepare_summary", "data_overrides", "resolve", "train", "torchrun_command",
           "stream_command", "evaluate", "find_checkpoint", "load_trained", "config_summary", "latency", "latency_frame", "run_folder",
           "default_work_dir", "PREPARE_SUMMARY"]
