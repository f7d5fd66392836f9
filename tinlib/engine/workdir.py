"""The work dir of a training run: the checks that it (and the results folder) belong to this run,
which checkpoint to resume from and restoring the training state from it, and cutting ``log.json``
back to the resume point."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tinlib.config import Config, diff_configs
from tinlib.engine import dist
from tinlib.engine.errors import RunError
from tinlib.engine.runlock import FolderLock
from tinlib.engine.schedule import LrSchedule
from tinlib.io import atomic_write_text
from tinlib.records import RecordError, TrainRecord
from tinlib.seeding import set_rng_state

log = logging.getLogger(__name__)

WORK_DIR_IN_USE = "wait for that run to end, or choose another --work-dir"


def resolve_resume(work_dir: Path, resume: str | None) -> Path | None:
    """The checkpoint to resume from: ``"auto"`` -> ``work_dir/latest.pth`` if present (else None);
    a path -> that file (:class:`RunError` if missing); None -> no resume."""
    if resume is None:
        return None
    if resume == "auto":
        latest = work_dir / "latest.pth"
        return latest if latest.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise RunError(f"--resume {resume}: no such checkpoint")
    return path


def check_work_dir(work_dir: Path, cfg: Config, resume_from: Path | None) -> list[str]:
    """Refuse a work dir that holds another run (another config, or a checkpoint without
    ``--resume``, or changed model settings on resume) with :class:`RunError`; returns warnings
    about other settings that changed since the checkpoint (``run.json`` holds the old config)."""
    try:
        record = json.loads((work_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        record = None  # missing or unreadable
    has_ckpt = (work_dir / "latest.pth").is_file()
    if record is None and not has_ckpt:
        return []
    old_name = (record or {}).get("config_name")
    if old_name is not None and old_name != cfg.name:
        raise RunError(f"work dir {work_dir} holds a run of config {old_name!r}, not {cfg.name!r}; "
                       "choose another --work-dir")
    if resume_from is None and has_ckpt:
        epoch = (record or {}).get("epoch", "?")
        raise RunError(f"work dir {work_dir} already holds a run of {cfg.name} (checkpoint after epoch {epoch}); "
                       "continue it with --resume auto, or choose another --work-dir")
    warnings = []
    if record and record.get("config"):
        changed = diff_configs(record["config"], cfg.to_dict())
        fatal = [k for k in changed if k.startswith("model.") and k not in ("model.pretrained", "model.load_from")]
        if fatal and resume_from is not None:
            raise RunError(f"work dir {work_dir}: cannot resume, the model settings changed ({', '.join(fatal)}); "
                           "choose another --work-dir")
        if changed and resume_from is not None:
            warnings.append(f"resuming with changed settings: {', '.join(changed)}")
    return warnings


def check_outputs(work_dir: Path, cfg: Config, resume: str | None, results: Path) -> tuple[Path | None, list[str]]:
    """Where a run may write (rank 0 decides): the work dir, refused while another live run holds
    its lock, or by :func:`check_work_dir`; and the results folder ``results``, refused when its
    ``train.json`` is of another config. Returns the checkpoint to resume from
    (:func:`resolve_resume`) and the warnings about changed settings."""
    FolderLock(work_dir, WORK_DIR_IN_USE).check_free()
    resume_from = resolve_resume(work_dir, resume)
    warnings = check_work_dir(work_dir, cfg, resume_from)
    if resume_from is None:
        keep_earlier_log(work_dir, resume == "auto")
    try:
        previous = TrainRecord.read_optional(results / TrainRecord.FILENAME)
    except RecordError:
        previous = None  # a damaged summary is replaced when this run ends
    if previous is not None and previous.config_name != cfg.name:
        raise RunError(f"{results} holds the results of config {previous.config_name!r}; choose another --run name")
    return resume_from, warnings


def keep_earlier_log(work_dir: Path, resume_asked: bool) -> Path | None:
    """Before a new run in ``work_dir``: the ``log.json`` of an earlier attempt (one that never wrote
    a checkpoint) is renamed to ``log.<n>.json`` (the first free n from 1), not replaced. With
    ``resume_asked`` (``--resume auto``) says that there was nothing to resume. Returns the new name."""
    if resume_asked:
        log.warning("nothing to resume in %s: starting a new run", work_dir)
    earlier = work_dir / "log.json"
    if not earlier.is_file():
        return None
    n = 1
    while (work_dir / f"log.{n}.json").exists():
        n += 1
    kept = earlier.rename(work_dir / f"log.{n}.json")
    log.info("kept the earlier %s as %s", earlier.name, kept.name)
    return kept


@dataclass
class ResumePoint:
    """Where a run continues: after ``epoch`` whole epochs and ``inner_iter`` iterations of the
    next one, with the best validation score so far (``{"metric", "value", "epoch"}`` or None)."""

    epoch: int = 0
    inner_iter: int = 0
    best: dict | None = None


def read_training_checkpoint(path: Path, ctx: dist.DistContext) -> dict[str, Any]:
    """The training checkpoint ``path``: rank 0 reads it and sends it to the others (no shared file
    system needed). Raises :class:`RunError` when it cannot be read or holds no training state."""
    from tinlib.checkpoint import CheckpointError, read_checkpoint

    state, error = None, None
    if ctx.is_main:
        try:
            state = read_checkpoint(path)
        except CheckpointError as err:
            error = f"cannot resume: {err}"
    state, error = dist.broadcast_object((state, error)) if ctx.world_size > 1 else (state, error)
    if error:
        raise RunError(error)
    assert isinstance(state, dict)
    if "optimizer" not in state or "meta" not in state:
        raise RunError(f"cannot resume from {path}: it is not a tinlib training checkpoint (no optimizer state); "
                       "use model.load_from to initialize from it instead")
    return state


def restore(path: Path, ctx: dist.DistContext, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            scaler: torch.amp.GradScaler | None, schedule: LrSchedule,
            iters_per_epoch: int) -> tuple[ResumePoint, list[str]]:
    """Load the training state saved in ``path`` (weights, optimizer, grad scaler, schedule and this
    process's RNG state) into the run's objects. Returns where the run continues, and warnings about
    a setting that differs from the checkpoint's (the process count, the iterations per epoch)."""
    state = read_training_checkpoint(path, ctx)
    try:
        model.load_state_dict(state["state_dict"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError) as err:  # torch's message lists every key: name the cause instead
        from tinlib.checkpoint import describe_misfit
        from tinlib.errors import one_line

        why = (describe_misfit(model, state, path, "this config")
               or f"its optimizer state does not fit this config's ({one_line(err)[:200]})")
        raise RunError(f"cannot resume from {path}: {why}; resume with the config and --set values it was trained "
                       "with, or start a new run in another --work-dir") from None
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    meta = state["meta"]
    point = ResumePoint(int(meta["epoch"]), int(meta.get("inner_iter") or 0), meta.get("best"))
    warnings = []
    old_world = meta.get("world_size")
    if old_world is not None and old_world != ctx.world_size:
        warnings.append(f"resuming with {ctx.world_size} processes, the checkpoint was written by {old_world}: "
                        "the data order and lr scaling differ from an uninterrupted run")
    sched = state.get("scheduler") or {}
    if sched.get("iters_per_epoch") not in (None, iters_per_epoch):
        warnings.append(f"iterations per epoch changed ({sched['iters_per_epoch']} -> {iters_per_epoch})")
    schedule.load_state_dict(sched)
    rng = state.get("rng") or []
    if ctx.rank < len(rng) and rng[ctx.rank]:
        set_rng_state(rng[ctx.rank])
    where = f"epoch {point.epoch}" + (f" + {point.inner_iter} iterations" if point.inner_iter else "")
    log.info("resumed from %s (after %s)", path, where)
    return point, warnings


def truncate_log(log_path: Path, epoch_done: int, inner_done: int = 0) -> None:
    """Drop the lines of ``log_path`` written after the position a run resumes from (``epoch_done``
    whole epochs plus ``inner_done`` iterations of the next one): those iterations are redone.
    Lines cut by a kill are dropped as well; header lines stay."""
    if not log_path.is_file():
        return
    kept = []
    for line in log_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill
        if "epoch" in entry and "mode" in entry:
            after = entry["epoch"] > epoch_done + 1 or (entry["epoch"] == epoch_done + 1 and (
                entry["mode"] != "train" or entry.get("iter", 0) > inner_done))
            if after:
                continue
        kept.append(line)
    atomic_write_text(log_path, "".join(k + "\n" for k in kept))
