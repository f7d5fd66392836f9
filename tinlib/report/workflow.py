"""Read-only helpers the notebooks use for their small tables: the preparation's summary of a data
root, the settings of a run, the latency result as a frame.

Launching (preparation, training, evaluation, latency) is :mod:`tinlib.pipeline.launch`'s; the
config resolution and run places are :mod:`tinlib.pipeline.runconfig`'s.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tinlib.data.releases import PREPARE_SUMMARY, SYNTHETIC


def read_prepare_summary(data_root: str | os.PathLike | None) -> dict | None:
    """The summary the preparation left in ``data_root``.

    Args:
        data_root: a dataset folder (None: no summary).

    Returns:
        ``tinlib_prepare.json`` (or, for synthetic data written without it, ``synthetic_meta.json``)
        as a dict; None when neither is there or it is not valid JSON.
    """
    if not data_root:
        return None
    for name in (PREPARE_SUMMARY, SYNTHETIC.meta_file):
        path = Path(data_root) / name
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except ValueError:
                return None
    return None


def config_summary(cfg, world_size: int = 1) -> dict[str, Any]:
    """The settings that matter for a run of ``cfg`` on ``world_size`` processes, for a small table
    (the learning rate as scaled for that many processes)."""
    from tinlib.engine.config import scaled_lr

    scaling = scaled_lr(cfg, world_size)
    d, m, t = cfg.data, cfg.model, cfg.train
    return {"config": cfg.name, "arch": m.arch, "classes": m.num_classes, "segments": m.num_segments,
            "input": f"{d.input_size}x{d.input_size} (short side {d.scale_size})", "data": d.dataset,
            "data root": d.root, "epochs": t.epochs, "processes": world_size,
            "videos / process": d.videos_per_gpu, "lr": f"{scaling.lr:g} ({scaling.message()})",
            "schedule": cfg.schedule.policy + (" by epoch" if cfg.schedule.by_epoch else " by iteration"),
            "pretrained": m.pretrained or "none (from scratch)", "load_from": m.load_from or "-"}


def latency_frame(result: dict[str, Any]):
    """A latency result (``latency.json``) as a frame: one row per architecture with parameters,
    FLOPs and mean/std milliseconds per video on each device."""
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


__all__ = ["read_prepare_summary", "config_summary", "latency_frame"]
