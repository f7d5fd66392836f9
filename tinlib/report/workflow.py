"""Read-only helpers for the notebooks' small tables: a data root's preparation record, a run's
settings, a latency result."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tinlib.records import LatencyRecord, PrepareRecord, SyntheticMeta


def read_data_description(data_root: str | os.PathLike | None) -> PrepareRecord | SyntheticMeta | None:
    """The record the preparation left in ``data_root``: its ``tinlib_prepare.json`` or, for synthetic
    data written without the prepare step, its ``synthetic_meta.json``; None when neither is there.
    A damaged file raises RecordError naming it."""
    if not data_root:
        return None
    return (PrepareRecord.read_optional(Path(data_root) / PrepareRecord.FILENAME)
            or SyntheticMeta.read_optional(Path(data_root) / SyntheticMeta.FILENAME))


def read_prepare_summary(data_root: str | os.PathLike | None) -> dict[str, Any] | None:
    """:func:`read_data_description` as a plain dict (the file's keys), for the notebooks' tables;
    None when ``data_root`` holds neither file."""
    record = read_data_description(data_root)
    return None if record is None else record.to_dict()


def config_summary(cfg, scaling) -> dict[str, Any]:
    """The settings that matter for a run of ``cfg``, for a small table. ``scaling`` is the run's
    learning rate for its process count (``tinlib.engine.optim.scaled_lr(cfg, world_size)``): the
    caller computes it, so that report needs no training code."""
    world_size = scaling.world_size
    d, m, t = cfg.data, cfg.model, cfg.train
    return {"config": cfg.name, "arch": m.arch, "classes": m.num_classes, "segments": m.num_segments,
            "input": f"{d.input_size}x{d.input_size} (short side {d.scale_size})", "data": d.dataset,
            "data root": d.root, "epochs": t.epochs, "processes": world_size,
            "videos / process": d.videos_per_gpu, "lr": f"{scaling.lr:g} ({scaling.message()})",
            "schedule": cfg.schedule.policy + (" by epoch" if cfg.schedule.by_epoch else " by iteration"),
            "pretrained": m.pretrained or "none (from scratch)", "load_from": m.load_from or "-"}


def latency_frame(result: Mapping[str, Any] | LatencyRecord):
    """A latency result (the ``latency.json`` record or its dict) as a frame: one row per
    architecture with parameters, FLOPs and mean/std milliseconds per video on each device."""
    import pandas as pd

    record = result if isinstance(result, LatencyRecord) else LatencyRecord.from_dict(result)
    rows = []
    for arch, e in record.models.items():
        row: dict[str, Any] = {"arch": arch, "params (M)": e.params / 1e6,
                               "GFLOPs (mmcv)": (e.flops_mmcv or 0) / 1e9, "GFLOPs (torch)": (e.flops_torch or 0) / 1e9}
        for dev, lat in e.latency.items():
            row[f"{dev} ms/video"] = lat.mean_ms
            row[f"{dev} ± ms"] = lat.std_ms
        if e.train_gpu_mem_mib:
            row["train gpu_mem(M)"] = e.train_gpu_mem_mib
        rows.append(row)
    return pd.DataFrame(rows).round(3)
