"""The training loop (``tinlib train CONFIG``), single process or one process per device under torchrun.

What a run writes (rank 0 only) in its work dir (default ``work_dirs/<config name>``):

- ``log.json``: JSON lines. A header line per session (seed, world size, lr scaling, versions),
  then MMAction2's fields every ``train.log_interval`` iterations (``mode``, ``epoch``, ``iter``
  (1-based within the epoch), ``lr`` (first parameter group), ``loss_cls``, ``loss``, ``top1_acc``,
  ``top5_acc`` (on the training batches), ``grad_norm``, ``data_time`` (averaged over the interval
  and the processes), ``time`` (wall seconds per iteration over the interval), ``memory`` (peak
  CUDA MiB, max over processes; 0 on the CPU)), and a ``mode: "val"`` line after each validation.
- The console (logging, rank 0): the same interval as one line (epoch, iteration, loss, lr,
  top-1, s/iter, data time, ETA of the run), a line per epoch (mean loss and top-1, time,
  validation metrics, ETA), with or without the progress bar.
- ``latest.pth`` every ``train.checkpoint_interval`` epochs and ``best.pth`` on a new best
  validation score, written atomically, with model, optimizer, scheduler, grad-scaler and RNG
  states and the config; ``run.json`` (what the folder holds, for the checks below).
- ``<results_dir>/<run>/train.json`` at the end: the summary the reports read.

Reproducibility: the sampler shuffles with (seed, epoch), tinlib datasets draw each item's
augmentation from (seed, epoch, index), every epoch reseeds python/numpy/torch from (seed, epoch,
rank) and every iteration reseeds torch (dropout) from (seed, epoch, iteration, rank). So an
iteration depends only on the weights and optimizer state before it, not on how the run got there.
``--resume auto`` continues from ``latest.pth``, written at epoch ends and, with
``train.checkpoint_interval_iters``, inside epochs too (the resumed epoch skips the batches already
done). In ``--deterministic`` mode on the CPU a run killed at any point and resumed ends with the
same weights as an uninterrupted run.
The steps do not wait for the device: loss, accuracy and the finite-loss check stay there and are
read back once per ``train.log_interval`` (and before each checkpoint), so a NaN/inf loss stops the
run within one interval, naming the iteration, and no checkpoint is written after it.
The sampler shards one global permutation across processes, so N processes x B videos see the
same batches as 1 process x N*B videos (identical results up to float rounding when BN statistics
are synchronized with ``train.sync_bn`` and dropout is off).
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F

from tinlib.config import Config
from tinlib.engine import dist
from tinlib.engine.build import build_model, set_train_mode
from tinlib.engine.environment import device_info, git_info, now_iso, package_versions
from tinlib.engine.errors import NonFiniteLossError, RunError
from tinlib.engine.evaluate import run_inference
from tinlib.engine.metrics import evaluate_scores
from tinlib.engine.optim import LrScaling, build_optimizer, clip_gradients, scaled_lr
from tinlib.engine.schedule import LrSchedule
from tinlib.engine.splits import build_split_dataset, check_class_count, check_data_paths
from tinlib.engine.torch_settings import autocast, torch_settings
from tinlib.engine.workdir import check_work_dir, resolve_resume, truncate_log
from tinlib.errors import UserError
from tinlib.records import LogWriter, RecordError, RunState, TrainRecord, parse_log_line
from tinlib.seeding import derive_seed, random_seed, rng_state, seed_everything, set_rng_state

log = logging.getLogger(__name__)

# Seconds to sleep after every training iteration: a throttle for tests that must interrupt a
# run at a known point and for watching a demo; it changes no result.
ITER_SLEEP_ENV = "TINLIB_DEBUG_ITER_SLEEP"


def format_duration(seconds: float) -> str:
    """A duration for the log lines.

    Args:
        seconds: the duration (negative counts as 0).

    Returns:
        ``H:MM:SS`` rounded to the second (``"?"`` when ``seconds`` is not finite).
    """
    if not math.isfinite(seconds):
        return "?"
    return str(datetime.timedelta(seconds=round(max(seconds, 0.0))))


def stop_reason(err: BaseException) -> str:
    """The one-line reason recorded in ``run.json`` for the exception that stopped a run.

    Args:
        err: the exception; a :class:`~tinlib.errors.UserError` (bad data, a full disk, a
            non-finite loss) gives its message, Ctrl-C ``"interrupted (KeyboardInterrupt)"``, any
            other exception its type and message.

    Returns:
        The reason on one line (whitespace runs, newlines included, become one space), at most
        500 characters.
    """
    if isinstance(err, KeyboardInterrupt):
        text = "interrupted (KeyboardInterrupt" + (f": {err})" if str(err) else ")")
    elif isinstance(err, UserError):
        text = str(err)
    else:
        text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:497] + "..."


# --------------------------------------------------------------------------------------------
# One step
# --------------------------------------------------------------------------------------------
@dataclass
class StepResult:
    """What one training step produced, all on the device (nothing is read back to the host):
    the loss (0-d), the scores ``[B, K]`` and labels ``[B]`` (detached), the gradient norm before
    clipping (0-d; None without clipping) and ``finite`` (0-d bool: the loss and, without a grad
    scaler, the gradient norm are finite)."""

    loss: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    grad_norm: torch.Tensor | None
    finite: torch.Tensor


def clips_channels_last(clips: torch.Tensor) -> torch.Tensor:
    """The clips laid out for a channels_last model.

    Args:
        clips: ``[B, T, 3, H, W]``.

    Returns:
        The same shape and values, laid out in memory as ``[B, T, H, W, 3]``: flattened to
        ``[B*T, 3, H, W]`` by the model it is a channels_last batch.
    """
    return clips.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


def train_step(model: torch.nn.Module, batch: tuple[torch.Tensor, Any], optimizer: torch.optim.Optimizer, *,
               device: torch.device, amp: str = "none", scaler: torch.amp.GradScaler | None = None,
               grad_clip: float | None = None, channels_last: bool = False) -> StepResult:
    """One SGD step on ``batch``: forward, cross-entropy, backward, gradient clipping, update,
    without waiting for the device (no value is read back; the caller checks ``finite`` later).

    Args:
        model: the recognizer (or its DDP / compiled wrapper); ``model(clips) -> [B, K]``.
        batch: ``(clips [B, T, 3, H, W], labels [B])``, moved to ``device`` here.
        optimizer: the run's optimizer (its learning rates already set for this iteration).
        device: where the model is.
        amp: ``"none"``, ``"bf16"`` or ``"fp16"`` autocast for the forward pass; ``scaler`` is the
            grad scaler that fp16 needs (None otherwise; it skips steps with inf gradients itself).
        grad_clip: max global L2 norm of the gradients (None: no clipping).
        channels_last: lay the clips out channels-last (for a model converted to channels_last).

    Returns:
        The step's :class:`StepResult` (loss, detached scores and labels, gradient norm, finiteness),
        all still on the device.

    A non-finite loss is not caught here: its update makes the weights non-finite, so the caller
    must check ``finite`` before it writes a checkpoint (the training loop does, see
    :meth:`Trainer.train_epoch`).
    """
    clips, labels = batch
    clips = clips.to(device, non_blocking=True)
    if channels_last:
        clips = clips_channels_last(clips)
    labels = torch.as_tensor(labels).to(device, non_blocking=True)
    with autocast(device, amp):
        scores = model(clips)
    loss = F.cross_entropy(scores.float(), labels)
    finite = torch.isfinite(loss)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grad_norm = clip_gradients(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        grad_norm = clip_gradients(model.parameters(), grad_clip)
        if grad_norm is not None:
            finite = finite & torch.isfinite(grad_norm)
        optimizer.step()
    return StepResult(loss.detach(), scores.detach(), labels, grad_norm, finite)


def top_k_correct(scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> torch.Tensor:
    """How many samples have their label among the top k classes, for each k, computed where the
    scores are (no read-back). Ties rank the higher class index first, as
    :func:`tinlib.engine.metrics.top_k_accuracy` does.

    Args:
        scores: ``[B, K]``.
        labels: ``[B]`` class indices.
        ks: the k of each count.

    Returns:
        ``[len(ks)]`` float64 counts (float32 where the device has no float64).
    """
    scores = scores.float()
    target = scores.gather(1, labels.view(-1, 1))
    classes = torch.arange(scores.shape[1], device=scores.device)
    ahead = (scores > target) | ((scores == target) & (classes > labels.view(-1, 1)))
    rank = ahead.sum(dim=1)
    return torch.stack([(rank < k).sum() for k in ks]).to(_tally_dtype(scores.device))


def _tally_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


class IntervalTally:
    """The training statistics of the iterations since the last read-back, summed on the device
    (``loss_cls``, ``top1_acc``, ``top5_acc``, ``grad_norm`` and the count of non-finite steps),
    plus the first non-finite iteration and its loss / gradient norm; host-side counts and data
    times. :meth:`read` copies them to the host: one read-back per call."""

    KEYS = ("loss_cls", "top1_acc", "top5_acc", "grad_norm", "nonfinite", "data_time")

    def __init__(self, device: torch.device):
        self.device = device
        self.dtype = _tally_dtype(device)
        self.reset()

    def reset(self) -> None:
        """Start a new interval."""
        self.sums = torch.zeros(len(self.KEYS) - 2, dtype=self.dtype, device=self.device)
        self.nonfinite = torch.zeros((), dtype=self.dtype, device=self.device)
        # [iteration, loss, grad norm] of the first non-finite step; filled in place (a tensor built
        # from a list would be copied from the host, which waits for the device)
        self.first_bad = torch.zeros(3, dtype=self.dtype, device=self.device)
        self.first_bad[0] = math.inf
        self.count = 0
        self.data_time = 0.0
        self.first_iter: int | None = None
        self.has_grad_norm = False
        self.t0 = time.perf_counter()

    def add(self, step: StepResult, iteration: int, data_time: float) -> None:
        """Add one step's statistics to the device-side sums; no read-back.

        Args:
            step: what :func:`train_step` returned.
            iteration: the step's iteration, 0-based within the epoch.
            data_time: seconds spent waiting for the step's batch.
        """
        hits = top_k_correct(step.scores, step.labels) / step.labels.numel()
        loss = step.loss.to(self.dtype)
        grad = step.grad_norm.to(self.dtype) if step.grad_norm is not None else torch.zeros_like(loss)
        self.sums += torch.cat([loss.view(1), hits, grad.view(1)])
        bad = ~step.finite
        self.nonfinite += bad.to(self.dtype)
        candidate = torch.stack([torch.where(bad, float(iteration), math.inf).to(self.dtype), loss, grad])
        self.first_bad = torch.where(candidate[0] < self.first_bad[0], candidate, self.first_bad)
        self.has_grad_norm |= step.grad_norm is not None
        self.count += 1
        self.data_time += data_time
        if self.first_iter is None:
            self.first_iter = iteration

    def read(self) -> dict[str, float]:
        """The sums over this interval and over the processes (one all-reduce, one read-back):
        ``{key: sum}`` for :attr:`KEYS`, ``count`` (iterations x processes)."""
        host = torch.tensor([self.data_time, float(self.count)], dtype=self.dtype).to(self.device, non_blocking=True)
        vec = torch.cat([self.sums, self.nonfinite.view(1), host])
        dist.all_reduce(vec, "sum")  # also the finite-loss check of every process, once per read
        values = vec.tolist()
        return {**dict(zip(self.KEYS, values[:-1])), "count": values[-1]}

    def first_non_finite(self) -> tuple[int, float, float, bool]:
        """``(iteration, loss, grad_norm, here)`` of the earliest non-finite step over the processes
        (``here``: this process saw it, so the values are its own); call only when :meth:`read`
        counted one (it is a collective)."""
        earliest = self.first_bad[:1].clone()
        dist.all_reduce(earliest, "min")
        it, own = earliest.item(), self.first_bad.tolist()
        return int(it), own[1], own[2], own[0] == it


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------
class Trainer:
    """One training run: :meth:`setup` checks everything and builds the model, optimizer, loader
    and schedule; :meth:`fit` runs the epochs and writes the records. :func:`train` is the entry
    point (it also applies the run's torch settings); see also ``tinlib train --help``.

    Args:
        cfg: the validated config.
        work_dir: checkpoints and ``log.json`` (default: the config's work dir).
        resume: ``"auto"`` (continue from ``latest.pth`` when there is one), a checkpoint path, or
            None (start afresh).
        seed: None takes ``train.seed``.
        deterministic: None takes ``train.deterministic``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        amp: ``"none"``, ``"bf16"`` or ``"fp16"``; None takes ``train.amp``.
        sync_bn: None takes ``train.sync_bn``.
        validate: False skips the validation after epochs.
        datasets: ``{"train": ..., "val": ...}`` replacing the config's data (items
            ``(clip [T, 3, H, W], label)``), e.g. tensors in tests.
        run: the records' folder name under ``results_dir`` (default: the config's name).
        progress: show progress bars (on the main process).
    """

    def __init__(self, cfg: Config, *, work_dir: str | Path | None = None, resume: str | None = None,
                 seed: int | None = None, deterministic: bool | None = None, device: str = "auto",
                 amp: str | None = None, sync_bn: bool | None = None, validate: bool = True,
                 datasets: dict | None = None, run: str | None = None, progress: bool = True):
        self.cfg = cfg
        self.work_dir = Path(work_dir) if work_dir else cfg.resolved_work_dir()
        self.resume = resume
        self.seed_arg = seed if seed is not None else cfg.train.seed
        self.deterministic = cfg.train.deterministic if deterministic is None else deterministic
        self.device_pref = device
        self.amp = amp or cfg.train.amp
        self.sync_bn = cfg.train.sync_bn if sync_bn is None else sync_bn
        self.validate_enabled = validate
        self.datasets = datasets or {}
        self.run_name = run or cfg.name
        self.progress = progress

    # ---- set-up: every check before the heavy work ------------------------------------------
    def setup(self) -> None:
        """Every check before the heavy work (work dir, data, checkpoints), then the model, the
        optimizer, the loader and the schedule; a resumed run loads its checkpoint here."""
        cfg = self.cfg
        self.ctx = ctx = dist.init_distributed(self.device_pref)
        if self.amp == "fp16" and ctx.device.type != "cuda":
            raise RunError("train.amp=fp16 needs CUDA; use bf16 or none on the CPU")
        seed = self.seed_arg if self.seed_arg is not None else random_seed()
        self.seed = int(dist.broadcast_object(seed))

        # Decisions about the work dir are rank 0's (the only writer); data and files needed by
        # every process are checked on every process. A failure anywhere stops all processes with
        # the same message instead of leaving the others waiting in a collective.
        decision = dist.collective_check(self._check_outputs if ctx.is_main else (lambda: None), RunError)
        resume_from, self.warnings = dist.broadcast_object(decision)
        self.resume_from = Path(resume_from) if resume_from else None
        dist.collective_check(self._check_inputs, RunError)

        seed_everything(derive_seed(self.seed, 0, ctx.rank, 1))
        model = dist.collective_check(lambda: build_model(cfg, verbose=ctx.is_main), RunError)
        if self.sync_bn and ctx.world_size > 1:
            from tinlib.engine.syncbn import convert_sync_batchnorm

            model = convert_sync_batchnorm(model, ctx.device)
        self.model = model.to(ctx.device)
        if cfg.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.scaling: LrScaling = scaled_lr(cfg, ctx.world_size)
        o = cfg.optim
        self.optimizer = build_optimizer(self.model, self.scaling.lr, o.momentum, o.weight_decay, o.fc_lr5, o.nesterov,
                                         kind=o.type)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == "fp16" else None

        self.loader = self._loader()
        self.iters_per_epoch = len(self.loader)
        if cfg.train.max_iters_per_epoch:
            self.iters_per_epoch = min(self.iters_per_epoch, cfg.train.max_iters_per_epoch)
        if self.iters_per_epoch == 0:
            raise RunError(f"config {cfg.name}: no full batch of {cfg.data.videos_per_gpu} videos per process "
                           f"({len(self.train_set)} videos, {ctx.world_size} processes, drop_last)")
        self.schedule = LrSchedule(cfg.schedule, cfg.train.epochs, self.iters_per_epoch)

        self.start_epoch, self.start_inner = 0, 0
        self.best: dict | None = None
        resume_from = self.resume_from
        if resume_from is not None:
            dist.collective_check(lambda: self._load_resume(resume_from), RunError)
        if ctx.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [ctx.device] if ctx.device.type == "cuda" else None
            self.ddp: torch.nn.Module = DistributedDataParallel(self.model, device_ids=device_ids)
        else:
            self.ddp = self.model
        if cfg.train.compile:
            # only the training forward/backward is compiled; checkpoints and validation use the
            # plain module (its parameter names carry no wrapper prefix)
            self.ddp = cast(torch.nn.Module, torch.compile(self.ddp))

        self.json_log = LogWriter(None)
        if ctx.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.work_dir / "log.json"
            if self.resume_from is not None:
                truncate_log(log_path, self.start_epoch, self.start_inner)
            elif log_path.exists():
                log_path.unlink()  # a fresh start in a folder whose earlier attempt never checkpointed
            self.json_log = LogWriter(self.work_dir / "log.json")
            # a run resumed from a mid-epoch checkpoint starts at that iteration
            self._write_run_record("running", **({"inner_iter": self.start_inner} if self.start_inner else {}))
        self.session_t0, self.session_iters = time.perf_counter(), 0  # the pace behind the ETA
        self.last_loss = math.nan
        dist.barrier()

    def _loader(self, skip_batches: int = 0):
        """The training loader (shuffled from the run's seed and the epoch, sharded over the
        processes); ``skip_batches`` leaves out the start of an epoch that a resumed run has done."""
        from tinlib.data.loader import build_loader

        cfg, ctx = self.cfg, self.ctx
        return build_loader(self.train_set, cfg.data.videos_per_gpu, num_workers=cfg.data.workers_per_gpu,
                            shuffle=True, seed=self.seed, num_replicas=ctx.world_size, rank=ctx.rank,
                            drop_last=cfg.data.drop_last, pin_memory=ctx.device.type == "cuda",
                            skip=skip_batches * cfg.data.videos_per_gpu)

    def _check_outputs(self) -> tuple[str | None, list[str]]:
        cfg = self.cfg
        resume_from = resolve_resume(self.work_dir, self.resume)
        warnings = check_work_dir(self.work_dir, cfg, resume_from)
        try:
            previous = TrainRecord.read_optional(Path(cfg.results_dir) / self.run_name / TrainRecord.FILENAME)
        except RecordError:
            previous = None  # a damaged summary is replaced when this run ends
        if previous is not None and previous.config_name != cfg.name:
            raise RunError(f"{Path(cfg.results_dir) / self.run_name} holds the results of config "
                           f"{previous.config_name!r}; choose another --run name")
        return (str(resume_from) if resume_from else None), warnings

    def _check_inputs(self) -> None:
        cfg = self.cfg
        if cfg.model.load_from and not Path(cfg.model.load_from).is_file():
            raise RunError(f"model.load_from: checkpoint {cfg.model.load_from} not found; download it or "
                           "--set model.load_from=None")
        pretrained = cfg.model.pretrained
        if pretrained and "://" not in pretrained and not Path(pretrained).is_file():
            raise RunError(f"model.pretrained: {pretrained} not found")
        need_val = self.validate_enabled and cfg.train.val_interval > 0
        splits = tuple(s for s in ("train", "val") if s not in self.datasets and (s == "train" or need_val))
        if splits:
            check_data_paths(cfg, splits)
        self.train_set = self.datasets.get("train") or build_split_dataset(cfg, "train")
        self.val_set = (self.datasets.get("val") or build_split_dataset(cfg, "val")) if need_val else None
        for split, given in self.datasets.items():
            check_class_count(cfg, given, split)
        if len(self.train_set) == 0:
            raise RunError(f"config {cfg.name}: the training set is empty")

    def _load_resume(self, path: Path) -> None:
        from tinlib.checkpoint import CheckpointError, read_checkpoint

        # rank 0 reads the file and sends it to the others (no shared file system needed)
        state, error = None, None
        if self.ctx.is_main:
            try:
                state = read_checkpoint(path)
            except CheckpointError as err:
                error = f"cannot resume: {err}"
        state, error = dist.broadcast_object((state, error)) if self.ctx.world_size > 1 else (state, error)
        if error:
            raise RunError(error)
        assert isinstance(state, dict)
        if "optimizer" not in state or "meta" not in state:
            raise RunError(f"cannot resume from {path}: it is not a tinlib training checkpoint (no optimizer state); "
                           "use model.load_from to initialize from it instead")
        try:
            self.model.load_state_dict(state["state_dict"], strict=True)
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError) as err:
            raise RunError(f"cannot resume from {path}: it does not fit this config ({err})") from None
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        meta = state["meta"]
        self.start_epoch = int(meta["epoch"])
        self.start_inner = int(meta.get("inner_iter") or 0)
        self.best = meta.get("best")
        old_world = meta.get("world_size")
        if old_world is not None and old_world != self.ctx.world_size:
            self.warnings.append(f"resuming with {self.ctx.world_size} processes, the checkpoint was written by "
                                 f"{old_world}: the data order and lr scaling differ from an uninterrupted run")
        sched = state.get("scheduler") or {}
        if sched.get("iters_per_epoch") not in (None, self.iters_per_epoch):
            self.warnings.append(f"iterations per epoch changed ({sched['iters_per_epoch']} -> {self.iters_per_epoch})")
        self.schedule.load_state_dict(sched)
        rng = state.get("rng") or []
        if self.ctx.rank < len(rng) and rng[self.ctx.rank]:
            set_rng_state(rng[self.ctx.rank])
        where = f"epoch {self.start_epoch}" + (f" + {self.start_inner} iterations" if self.start_inner else "")
        log.info("resumed from %s (after %s)", path, where)

    # ---- records ------------------------------------------------------------------------
    def _meta(self, epoch: int, global_iter: int, inner_iter: int = 0) -> dict:
        """The ``meta`` of a checkpoint: its position, the seed, the setting and the config."""
        return {"epoch": epoch, "inner_iter": inner_iter, "iter": global_iter, "seed": self.seed,
                "config_name": self.cfg.name, "config": self.cfg.to_dict(), "world_size": self.ctx.world_size,
                "lr": self.scaling.to_dict(),
                "deterministic": self.deterministic, "amp": self.amp, "sync_bn": self.sync_bn,
                "time": now_iso(), "git": git_info(), "best": self.best, "work_dir": str(self.work_dir)}

    def _write_run_record(self, status: str, **extra: Any) -> None:
        """Write ``work_dir/run.json`` (rank 0): the run's status (one of :data:`RunState.STATUSES`),
        the epochs done, seed, world size, lr and best score, and the config (for the work-dir checks).

        Args:
            status: ``running``, ``finished``, ``failed`` or ``interrupted``.
            **extra: further :class:`RunState` fields: ``inner_iter`` (the iterations of the next
                epoch in the mid-epoch checkpoint just written), ``error`` (why the run stopped).
        """
        record = {"config_name": self.cfg.name, "status": status,
                  "epoch": getattr(self, "epoch_done", self.start_epoch), "epochs": self.cfg.train.epochs,
                  "seed": self.seed, "world_size": self.ctx.world_size,
                  "lr": self.scaling.to_dict(), "best": self.best, "time": now_iso(), **extra,
                  "config": self.cfg.to_dict()}
        RunState.from_dict(record).write(self.work_dir / RunState.FILENAME)
        self.recorded_inner_iter = extra.get("inner_iter")

    def _write_stop_record(self, err: BaseException) -> None:
        """Write ``run.json`` after ``err`` stopped the run (rank 0): ``interrupted`` for Ctrl-C
        (:class:`KeyboardInterrupt`), ``failed`` for any other exception, with the one-line reason in
        ``error``; the position stays that of the last record (so a mid-epoch checkpoint keeps its
        ``inner_iter``). A failure to write it (a full disk) is logged at debug level and not
        raised: the error that stopped the run is the one the user must see.

        Args:
            err: the exception that is leaving :meth:`fit`.
        """
        status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
        extra: dict[str, Any] = {"error": stop_reason(err)}
        if getattr(self, "recorded_inner_iter", None):
            extra["inner_iter"] = self.recorded_inner_iter
        try:
            self._write_run_record(status, **extra)
        except Exception as write_err:
            log.debug("could not record the %s run in %s: %s", status, self.work_dir / RunState.FILENAME, write_err)

    def _save(self, name: str, epoch: int, global_iter: int, rngs: list, inner_iter: int = 0) -> Path:
        from tinlib.checkpoint import save_checkpoint

        return save_checkpoint(self.work_dir / name, self.model, meta=self._meta(epoch, global_iter, inner_iter),
                               optimizer=self.optimizer.state_dict(), scheduler=self.schedule.state_dict(),
                               scaler=self.scaler.state_dict() if self.scaler is not None else None, rng=rngs)

    # ---- one epoch ----------------------------------------------------------------------
    def _memory_mib(self) -> int:
        """Peak CUDA memory in MiB, the max over the processes (0 on the CPU)."""
        if self.ctx.device.type != "cuda":
            return 0
        peak = torch.cuda.max_memory_allocated(self.ctx.device) / 2 ** 20
        if self.ctx.world_size > 1:
            box = torch.tensor([peak], device=self.ctx.device)
            dist.all_reduce(box, "max")
            peak = box.item()
        return int(peak)

    def _read_tally(self, tally: IntervalTally, epoch: int, upto: int) -> dict[str, float]:
        """Read back ``tally`` (iterations ``tally.first_iter`` .. ``upto``, 0-based, of ``epoch``);
        raises :class:`NonFiniteLossError` naming the first non-finite iteration and the range
        checked. The only place the training loop waits for the device."""
        sums = tally.read()
        if sums["nonfinite"] > 0:
            it, loss, grad, here = tally.first_non_finite()
            first = tally.first_iter if tally.first_iter is not None else upto
            span = f"iterations {first + 1}-{upto + 1}" if upto > first else f"iteration {upto + 1}"
            what = (f"loss is {loss}" if not math.isfinite(loss) else f"gradient norm is {grad}") if here \
                else "loss or gradient norm is not finite (on another process)"
            raise NonFiniteLossError(f"{what} at epoch {epoch + 1}, iteration {it + 1} "
                                     f"(checked after {span} of epoch {epoch + 1}); no checkpoint was written "
                                     "after it")
        return sums

    def _log_interval(self, tally: IntervalTally, epoch: int, inner: int, lr: float,
                      epoch_sums: dict[str, float]) -> None:
        """Read back the interval that ends with iteration ``inner`` (0-based), write its log.json
        line and its console line, add it to ``epoch_sums`` and start the next interval."""
        sums = self._read_tally(tally, epoch, inner)
        seconds = time.perf_counter() - tally.t0  # after the read-back: the device has finished
        count = max(sums["count"], 1.0)
        values = {k: sums[k] / count for k in ("loss_cls", "top1_acc", "top5_acc", "grad_norm", "data_time")}
        values["time"] = seconds / max(tally.count, 1)
        values["loss"] = values["loss_cls"]
        if not tally.has_grad_norm:
            del values["grad_norm"]
        values["memory"] = self._memory_mib()
        self._log_train_line(epoch, inner, lr, values)
        self.last_loss = values["loss_cls"]
        for key in ("loss_cls", "top1_acc"):
            epoch_sums[key] = epoch_sums.get(key, 0.0) + sums[key]
        epoch_sums["count"] = epoch_sums.get("count", 0.0) + sums["count"]
        epoch_sums["iters"] = epoch_sums.get("iters", 0.0) + tally.count
        self.session_iters += tally.count
        if self.ctx.is_main:
            n, epochs = self.iters_per_epoch, self.cfg.train.epochs
            mem = f"  mem {values['memory']} MiB" if values["memory"] else ""
            log.info(f"epoch {epoch + 1}/{epochs}  iter {inner + 1}/{n}  loss {values['loss_cls']:.4f}  "
                     f"lr {lr:.4g}  top1 {100 * values['top1_acc']:.1f}%  {values['time']:.3f} s/iter  "
                     f"data {values['data_time']:.3f} s{mem}  ETA {self._eta(epoch * n + inner + 1)}")
        tally.reset()

    def _eta(self, global_done: int) -> str:
        """The time left for the run as ``H:MM:SS``, from this session's pace so far (validations
        included) and the iterations left after ``global_done``."""
        done = self.session_iters
        if done <= 0:
            return "?"
        pace = (time.perf_counter() - self.session_t0) / done
        left = max(self.cfg.train.epochs * self.iters_per_epoch - global_done, 0)
        return format_duration(pace * left)

    def train_epoch(self, epoch: int, skip: int = 0) -> dict[str, float]:
        """Train one epoch.

        The steps run without waiting for the device: their loss, accuracy and finiteness are summed
        there and read back once per ``train.log_interval`` iterations, at the epoch's end and
        before a mid-epoch checkpoint. A non-finite step stops the run at that read-back, before any
        checkpoint holds its weights.

        Args:
            epoch: the epoch, 0-based.
            skip: iterations of this epoch already done (when resuming mid-epoch); it starts after them.

        Returns:
            ``{"loss_cls", "top1_acc"}`` means over the epoch's iterations run in this session,
            ``iters`` and ``seconds``.
        """
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        cfg, ctx = self.cfg, self.ctx
        seed_everything(derive_seed(self.seed, epoch, ctx.rank))
        # the loader seeds its workers from (seed, epoch, rank), and tinlib datasets draw each
        # item's augmentation from (seed, epoch, index): independent of workers and processes
        loader = self._loader(skip) if skip else self.loader
        loader.set_epoch(epoch)
        set_train_mode(self.ddp, cfg)
        sleep = float(os.environ.get(ITER_SLEEP_ENV, "0") or 0)
        n = self.iters_per_epoch
        show_bar = self.progress and ctx.is_main
        bar = tqdm(total=n, initial=skip, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", disable=not show_bar,
                   dynamic_ncols=True, leave=True)
        # log lines go above the bar instead of through it
        redirect = logging_redirect_tqdm([logging.getLogger("tinlib")]) if show_bar else contextlib.nullcontext()
        tally = IntervalTally(ctx.device)
        epoch_sums: dict[str, float] = {}
        every = cfg.train.checkpoint_interval_iters
        t_epoch = time.perf_counter()
        end = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        with redirect:
            for inner, (clips, labels) in enumerate(loader, start=skip):
                if inner >= n:
                    break
                data_time = time.perf_counter() - end
                torch.manual_seed(derive_seed(self.seed, epoch, inner, ctx.rank, 3))
                lr = self.schedule.step(self.optimizer, epoch, inner)
                step = train_step(self.ddp, (clips, labels), self.optimizer, device=ctx.device, amp=self.amp,
                                  scaler=self.scaler, grad_clip=cfg.optim.grad_clip,
                                  channels_last=cfg.train.channels_last)
                tally.add(step, inner, data_time)
                if sleep:
                    time.sleep(sleep)
                if (inner + 1) % cfg.train.log_interval == 0 or inner + 1 == n:
                    self._log_interval(tally, epoch, inner, lr, epoch_sums)
                    bar.set_postfix(loss=f"{self.last_loss:.4f}", lr=f"{lr:.3g}")
                if every and (inner + 1) % every == 0 and inner + 1 < n:
                    if tally.count:  # the steps since the last read-back must be finite before their weights are saved
                        self._read_tally(tally, epoch, inner)
                    rngs = dist.all_gather_object(rng_state())
                    if ctx.is_main:
                        self._save("latest.pth", epoch, epoch * n + inner + 1, rngs, inner_iter=inner + 1)
                        self._write_run_record("running", inner_iter=inner + 1)
                bar.update(1)
                end = time.perf_counter()
            if tally.count:  # the loader ran out before n iterations
                self._log_interval(tally, epoch, inner, lr, epoch_sums)
        bar.close()
        count = max(epoch_sums.get("count", 0.0), 1.0)
        return {"loss_cls": epoch_sums.get("loss_cls", math.nan) / count,
                "top1_acc": epoch_sums.get("top1_acc", math.nan) / count,
                "iters": epoch_sums.get("iters", 0.0), "seconds": time.perf_counter() - t_epoch}

    def validate(self, epoch: int) -> dict:
        """Score the validation set and log the metrics.

        Args:
            epoch: the epoch just trained, 0-based.

        Returns:
            ``{"top1_acc", "top5_acc", "mean_class_accuracy"}`` as fractions.
        """
        cfg, ctx = self.cfg, self.ctx
        if ctx.is_main:
            assert self.val_set is not None
            log.info(f"epoch {epoch + 1}/{cfg.train.epochs}: validating on {len(self.val_set)} videos")
        scores, labels = run_inference(self.model, self.val_set, batch_size=cfg.data.val_videos_per_gpu,
                                       num_workers=cfg.data.workers_per_gpu, device=ctx.device,
                                       average_clips=cfg.test.average_clips, amp=self.amp, ctx=ctx,
                                       progress=self.progress, desc=f"val {epoch + 1}")
        metrics = evaluate_scores(scores, labels)
        self._log_val_line(epoch, len(labels), metrics)
        return metrics

    # ---- the run ------------------------------------------------------------------------
    def fit(self) -> dict:
        """Run the remaining epochs (validation, checkpoints, records).

        Returns:
            The ``train.json`` record as a dict.

        ``run.json`` ends as ``finished`` (after train.json is written), or, when an exception
        leaves this method, as ``failed`` with the one-line reason in ``error`` (``interrupted`` for
        Ctrl-C); the exception is raised again and the checkpoints already written stay as they are.
        """
        cfg, ctx = self.cfg, self.ctx
        t0 = time.time()
        if ctx.is_main:  # the warnings are the same on every process
            for warning in self.warnings:
                log.warning(warning)
        log.info(self.scaling.message())
        log.info("%s: %d training videos, %d iterations/epoch x %d epochs, %d process(es) on %s, seed %d", cfg.name,
                 len(self.train_set), self.iters_per_epoch, cfg.train.epochs, ctx.world_size, ctx.device, self.seed)
        self.session_t0, self.session_iters = time.perf_counter(), 0  # the pace behind the ETA
        last_val = None
        self.epoch_done = self.start_epoch
        if self.start_epoch >= cfg.train.epochs:
            log.info("%s: already trained for %d epochs", self.work_dir, self.start_epoch)
        try:
            self.json_log.write(parse_log_line(self._log_header()))
            for epoch in range(self.start_epoch, cfg.train.epochs):
                epoch_stats = self.train_epoch(epoch, self.start_inner if epoch == self.start_epoch else 0)
                self.epoch_done = epoch + 1
                global_iter = (epoch + 1) * self.iters_per_epoch
                val_due = (self.val_set is not None and cfg.train.val_interval > 0
                           and ((epoch + 1) % cfg.train.val_interval == 0 or epoch + 1 == cfg.train.epochs))
                new_best = False
                if val_due:
                    last_val = self.validate(epoch)
                    key = cfg.train.save_best
                    if key and (self.best is None or last_val[key] > self.best["value"]):
                        self.best = {"metric": key, "value": last_val[key], "epoch": epoch + 1}
                        new_best = True
                self._log_epoch_summary(epoch, epoch_stats, last_val if val_due else None)
                rngs = dist.all_gather_object(rng_state())
                if ctx.is_main:
                    save_due = ((epoch + 1) % cfg.train.checkpoint_interval == 0 or epoch + 1 == cfg.train.epochs)
                    if save_due:
                        self._save("latest.pth", epoch + 1, global_iter, rngs)
                        if cfg.train.keep_epoch_checkpoints:
                            self._save(f"epoch_{epoch + 1}.pth", epoch + 1, global_iter, rngs)
                    if new_best:
                        self._save("best.pth", epoch + 1, global_iter, rngs)
                    self._write_run_record("running")
                dist.barrier()
            summary = self._train_record(last_val, time.time() - t0)
            if ctx.is_main:
                # train.json first: "finished" means that the summary the reports read is there
                out = self._write_train_record(summary)
                self._write_run_record("finished")
                log.info("done: %s; summary %s", self.work_dir / "latest.pth", out)
        except BaseException as err:  # Ctrl-C too: run.json must not say "running" for a run that stopped
            if ctx.is_main:
                self._write_stop_record(err)
            self.json_log.close()
            raise
        self.json_log.close()
        dist.barrier()
        return summary

    def _log_epoch_summary(self, epoch: int, stats: dict[str, float], val: dict | None) -> None:
        """The console line after epoch ``epoch`` (0-based): its mean training loss and top-1, its
        time, the validation metrics when it was validated, and the time left for the run."""
        if not self.ctx.is_main:
            return
        cfg = self.cfg
        iters = int(stats["iters"])
        text = (f"epoch {epoch + 1}/{cfg.train.epochs} done  loss {stats['loss_cls']:.4f}  "
                f"top1 {100 * stats['top1_acc']:.1f}%  {iters} iters in {format_duration(stats['seconds'])} "
                f"({stats['seconds'] / max(iters, 1):.3f} s/iter)")
        if val:
            text += "  val " + " ".join(f"{k} {100 * v:.2f}%" for k, v in val.items())
        if epoch + 1 < cfg.train.epochs:
            text += f"  ETA {self._eta((epoch + 1) * self.iters_per_epoch)}"
        log.info(text)

    def _log_header(self) -> dict:
        """The first log.json line of a session: environment, seed, world size, lr scaling."""
        cfg, ctx = self.cfg, self.ctx
        return {"env_info": {"versions": package_versions(), "device": device_info(ctx.device)},
                "seed": self.seed, "config_name": cfg.name, "work_dir": str(self.work_dir),
                "world_size": ctx.world_size, "lr_scaling": self.scaling.to_dict(),
                "iters_per_epoch": self.iters_per_epoch, "resumed_from_epoch": self.start_epoch,
                "deterministic": self.deterministic, "amp": self.amp, "sync_bn": self.sync_bn,
                "git": git_info(), "time": now_iso()}

    def _log_train_line(self, epoch: int, inner: int, lr: float, values: dict) -> None:
        """A ``mode: "train"`` log.json line after iteration ``inner`` (0-based) of ``epoch`` (0-based):
        MMAction2's fields, ``values`` averaged over the interval and the processes."""
        self.json_log.write(parse_log_line({"mode": "train", "epoch": epoch + 1, "iter": inner + 1, "lr": lr,
                                            **values}))

    def _log_val_line(self, epoch: int, num_videos: int, metrics: dict) -> None:
        """The ``mode: "val"`` log.json line after validating ``epoch`` (0-based) on ``num_videos`` videos."""
        self.json_log.write(parse_log_line({"mode": "val", "epoch": epoch + 1, "iter": num_videos,
                                            "lr": self.optimizer.param_groups[0]["lr"], **metrics}))

    def _write_train_record(self, record: dict) -> Path:
        """Write ``<results_dir>/<run>/train.json`` (rank 0); returns its path."""
        return TrainRecord.from_dict(record).write(Path(self.cfg.results_dir) / self.run_name / TrainRecord.FILENAME)

    def _train_record(self, last_val: dict | None, elapsed: float) -> dict:
        """The train.json record: the run's setting, last and best validation, checkpoints,
        environment and config (called on every process: it gathers the skipped samples)."""
        from tinlib.data.datasets import merge_skipped, skipped_samples_of

        cfg = self.cfg
        # training samples that could not be read and were replaced (data.skip_bad_samples), all processes
        shards = dist.all_gather_object(skipped_samples_of(self.train_set))
        skipped = merge_skipped(e for shard in shards for e in shard)
        if skipped and self.ctx.is_main:
            log.warning("%d unreadable training sample(s) were replaced by the next readable one %d time(s) in all "
                        "(data.skip_bad_samples); train.json lists them", len(skipped),
                        sum(e["times"] for e in skipped))
        return {"run": self.run_name, "config_name": cfg.name, "work_dir": str(self.work_dir),
                "epochs": cfg.train.epochs, "iters_per_epoch": self.iters_per_epoch,
                "world_size": self.ctx.world_size, "videos_per_gpu": cfg.data.videos_per_gpu,
                "lr_scaling": self.scaling.to_dict(), "seed": self.seed, "deterministic": self.deterministic,
                "amp": self.amp, "sync_bn": self.sync_bn, "last_val": last_val, "best": self.best,
                "resumed_from_epoch": self.start_epoch if self.resume_from else None,
                "checkpoints": {"latest": str(self.work_dir / "latest.pth"),
                                "best": str(self.work_dir / "best.pth") if self.best else None},
                "num_skipped": sum(e["times"] for e in skipped), "skipped_samples": skipped,
                "elapsed_s_this_session": round(elapsed, 2), "git": git_info(), "versions": package_versions(),
                "device": device_info(self.ctx.device), "time": now_iso(), "config": cfg.to_dict()}


def train(cfg: Config, **kwargs: Any) -> dict:
    """Train ``cfg``. The torch settings of the run (``train.num_threads``, determinism, cuDNN
    autotuning) apply to this call only.

    Args:
        cfg: the validated config.
        **kwargs: those of :class:`Trainer`: ``work_dir``, ``resume``, ``seed``, ``deterministic``,
            ``device``, ``amp``, ``sync_bn``, ``validate``, ``datasets`` (``{"train": ..., "val": ...}``
            replacing the config's data, e.g. tensors in tests: items ``(clip [T, 3, H, W], label)``),
            ``run``, ``progress``.

    Returns:
        The summary written to ``<results_dir>/<run>/train.json``.
    """
    trainer = Trainer(cfg, **kwargs)
    with torch_settings(threads=cfg.train.num_threads, deterministic=trainer.deterministic,
                        cudnn_benchmark=cfg.train.cudnn_benchmark):
        trainer.setup()
        return trainer.fit()


__all__ = ["ITER_SLEEP_ENV", "IntervalTally", "NonFiniteLossError", "StepResult", "Trainer", "clips_channels_last",
           "format_duration", "stop_reason", "top_k_correct", "train", "train_step"]
