"""The training loop (``tinlib train CONFIG``), single process or one process per device under torchrun:
:func:`train_step` is one SGD step, :class:`Trainer` runs the epochs around it."""
from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F

from tinlib.config import Config
from tinlib.data.normalization import normalize
from tinlib.engine import dist
from tinlib.engine.build import build_model, set_train_mode
from tinlib.engine.environment import git_info, now_iso
from tinlib.engine.errors import RunError
from tinlib.engine.evaluate import loader_settings, score_dataset
from tinlib.engine.metrics import IntervalTally, StepResult, evaluate_scores, peak_memory_mib
from tinlib.engine.optim import LrScaling, build_optimizer, clip_gradients, scaled_lr
from tinlib.engine.preemption import Preempted, StopSignals, requeue_slurm_job, resume_after_restart
from tinlib.engine.recorder import Recorder
from tinlib.engine.runlock import FolderLock
from tinlib.engine.schedule import LrSchedule
from tinlib.engine.splits import build_split_dataset, check_class_count, check_data_paths
from tinlib.engine.torch_settings import autocast, torch_settings
from tinlib.engine.workdir import WORK_DIR_IN_USE, ResumePoint, check_outputs, restore
from tinlib.seeding import derive_seed, random_seed, rng_state, seed_everything

log = logging.getLogger(__name__)


def clips_channels_last(clips: torch.Tensor) -> torch.Tensor:
    """``clips [B, T, 3, H, W]`` with the same shape and values, laid out in memory as ``[B, T, H, W, 3]``:
    flattened to ``[B*T, 3, H, W]`` by the model, it is a channels_last batch."""
    return clips.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


def train_step(model: torch.nn.Module, batch: tuple[torch.Tensor, Any], optimizer: torch.optim.Optimizer, *,
               device: torch.device, amp: str = "none", scaler: torch.amp.GradScaler | None = None,
               grad_clip: float | None = None, channels_last: bool = False) -> StepResult:
    """One SGD step of ``model`` (``model(clips) -> [B, K]``; a DDP or compiled wrapper too) on
    ``batch`` (``(clips [B, T, 3, H, W] uint8, labels [B])``, moved to ``device`` and normalised
    there): forward under
    ``amp`` autocast (fp16 with its grad ``scaler``, which skips steps with inf gradients itself),
    cross-entropy, backward, clipping to a global L2 norm ``grad_clip``, update.

    Nothing is read back: the returned :class:`~tinlib.engine.metrics.StepResult` stays on the
    device. A non-finite loss is not caught here: its update makes the weights non-finite, so the
    caller must check ``finite`` before it writes a checkpoint (as :meth:`Trainer.train_epoch` does).
    """
    clips, labels = batch
    clips = clips.to(device, non_blocking=True)
    if channels_last:  # laid out while 1 byte per value; normalize keeps the layout
        clips = clips_channels_last(clips)
    clips = normalize(clips)
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


def load_datasets(cfg: Config, given: dict, validate: bool) -> tuple[Any, Any]:
    """The training and (when ``validate`` and ``train.val_interval``) validation datasets: those
    ``given`` (``{"train": ..., "val": ...}``), else the config's, after checking the files that
    every process needs (the checkpoints to start from, the data) and the class counts."""
    from tinlib.engine.build import check_model_checkpoints

    check_model_checkpoints(cfg)  # a path, a URL or published:<config>, as every command takes them
    need_val = validate and cfg.train.val_interval > 0
    splits = tuple(s for s in ("train", "val") if s not in given and (s == "train" or need_val))
    if splits:
        check_data_paths(cfg, splits)
    train_set = given.get("train") or build_split_dataset(cfg, "train")
    val_set = (given.get("val") or build_split_dataset(cfg, "val")) if need_val else None
    for split, dataset in given.items():
        check_class_count(cfg, dataset, split)
    if len(train_set) == 0:
        raise RunError(f"config {cfg.name}: the training set is empty")
    return train_set, val_set


def wrap_for_training(model: torch.nn.Module, ctx: dist.DistContext, compiled: bool) -> torch.nn.Module:
    """The module the training steps run: ``model`` in DDP over the processes, and torch.compile'd
    when ``compiled``. Checkpoints and validation use the plain module (no wrapper prefix in its names)."""
    if ctx.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)
    if compiled:
        model = cast(torch.nn.Module, torch.compile(model))
    return model


class Trainer:
    """One training run: :meth:`setup` checks everything and builds the model, optimizer, loader
    and schedule; :meth:`fit` runs the epochs. :func:`train` is the entry point.

    Every epoch reseeds python/numpy/torch from (seed, epoch, rank), every iteration torch
    (dropout) from (seed, epoch, iteration, rank), the sampler shuffles with (seed, epoch) and
    tinlib datasets augment from (seed, epoch, index). So an iteration depends only on the state
    before it: a run resumed from ``latest.pth`` (written every ``train.checkpoint_interval``
    epochs and ``train.checkpoint_interval_iters`` iterations, and where a stop signal ended the
    run: see :mod:`tinlib.engine.preemption`) ends, in ``--deterministic`` mode on the CPU, with
    the weights of an uninterrupted run; and N processes x B videos see the batches of 1 process
    x N*B videos. Rank 0 holds the work dir's lock (:mod:`tinlib.engine.runlock`) while it runs.

    Options: ``work_dir`` (checkpoints, ``log.json``, ``run.json``; default: the config's), ``resume``
    (``"auto"``: from ``latest.pth`` when there is one; a checkpoint path; None: afresh); ``seed``,
    ``deterministic``, ``amp`` and ``sync_bn`` (None: the config's ``train.*``); ``validate=False``
    skips the validations; ``datasets`` (``{"train": ..., "val": ...}``, items ``(clip [T, 3, H, W],
    label)``) replace the config's data; ``run`` names the records' folder under ``results_dir``.
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
        self.stop = StopSignals()  # entered by train() for the epochs: signals then stop at an iteration boundary
        self.lock: FolderLock | None = None  # rank 0's, on the work dir
        self.saved_position: tuple[int, int] | None = None  # (epochs, iterations) of the last latest.pth

    # ---- set-up: every check before the heavy work ------------------------------------------
    def setup(self) -> None:
        """Every check before the heavy work (work dir, data, checkpoints), then the model, the
        optimizer, the loader and the schedule; a resumed run loads its checkpoint here."""
        cfg = self.cfg
        self.ctx = ctx = dist.init_distributed(self.device_pref)
        self.resume = resume_after_restart(self.resume, announce=ctx.is_main)
        if self.amp == "fp16" and ctx.device.type != "cuda":
            raise RunError("train.amp=fp16 needs CUDA; use bf16 or none on the CPU")
        seed = self.seed_arg if self.seed_arg is not None else random_seed()
        self.seed = int(dist.broadcast_object(seed))

        # Decisions about the work dir are rank 0's (the only writer); data and files needed by
        # every process are checked on every process. A failure anywhere stops all processes with
        # the same message instead of leaving the others waiting in a collective.
        results = Path(cfg.results_dir) / self.run_name
        decision = dist.collective_check(
            (lambda: check_outputs(self.work_dir, cfg, self.resume, results)) if ctx.is_main else (lambda: None),
            RunError)
        self.resume_from, self.warnings = dist.broadcast_object(decision)
        self.train_set, self.val_set = dist.collective_check(
            lambda: load_datasets(cfg, self.datasets, self.validate_enabled), RunError)

        seed_everything(derive_seed(self.seed, 0, ctx.rank, 1))
        self._build()
        point, resume_from = ResumePoint(), self.resume_from
        if resume_from is not None:
            point, warnings = dist.collective_check(
                lambda: restore(resume_from, ctx, model=self.model, optimizer=self.optimizer, scaler=self.scaler,
                                schedule=self.schedule, iters_per_epoch=self.iters_per_epoch), RunError)
            self.warnings += warnings
        self.start_epoch, self.start_inner, self.best = point.epoch, point.inner_iter, point.best
        self.ddp = wrap_for_training(self.model, ctx, cfg.train.compile)

        self.lock = FolderLock(self.work_dir, WORK_DIR_IN_USE) if ctx.is_main else None
        dist.collective_check(self.lock.acquire if self.lock else (lambda: None), RunError)  # one live run
        setting = {"seed": self.seed, "world_size": ctx.world_size, "lr_scaling": self.scaling.to_dict(),
                   "deterministic": self.deterministic, "amp": self.amp, "sync_bn": self.sync_bn}
        self.recorder = Recorder(cfg, self.work_dir, results, setting=setting, iters_per_epoch=self.iters_per_epoch,
                                 device=ctx.device, is_main=ctx.is_main)
        self.recorder.start(resume_from is not None, self.start_epoch, self.start_inner, self.best)
        self.last_loss = math.nan
        dist.barrier()

    def _build(self) -> None:
        """The model (on the device), the optimizer, the grad scaler, the loader and the lr schedule."""
        cfg, ctx = self.cfg, self.ctx
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

    def _loader(self, skip_batches: int = 0):
        """The training loader (shuffled from the run's seed and the epoch, sharded over the
        processes); ``skip_batches`` leaves out the start of an epoch that a resumed run has done."""
        from tinlib.data.loader import build_loader

        cfg, ctx = self.cfg, self.ctx
        return build_loader(self.train_set, cfg.data.videos_per_gpu, num_workers=cfg.data.workers_per_gpu,
                            shuffle=True, seed=self.seed, num_replicas=ctx.world_size, rank=ctx.rank,
                            drop_last=cfg.data.drop_last, skip=skip_batches * cfg.data.videos_per_gpu,
                            **loader_settings(cfg, ctx.device))

    # ---- checkpoints ------------------------------------------------------------------------
    def _checkpoint(self, epoch_done: int, inner_iter: int, names: list[str]) -> None:
        """Write the checkpoints ``names`` (files in the work dir; none is fine) of the position
        after ``epoch_done`` epochs and ``inner_iter`` iterations of the next one, atomically, with
        the model, optimizer, scheduler, grad-scaler and RNG states (of every process) and the
        config, then ``run.json``. Every process must call it; rank 0 writes."""
        from tinlib.checkpoint import save_checkpoint

        rngs = dist.all_gather_object(rng_state())
        if "latest.pth" in names:  # on every process: all decide alike whether to write it again
            self.saved_position = (epoch_done, inner_iter)
        if not self.ctx.is_main:
            return
        cfg = self.cfg
        meta = {"epoch": epoch_done, "inner_iter": inner_iter, "iter": epoch_done * self.iters_per_epoch + inner_iter,
                "seed": self.seed, "config_name": cfg.name, "config": cfg.to_dict(), "world_size": self.ctx.world_size,
                "lr": self.scaling.to_dict(), "deterministic": self.deterministic, "amp": self.amp,
                "sync_bn": self.sync_bn, "time": now_iso(), "git": git_info(), "best": self.best,
                "work_dir": str(self.work_dir)}
        for name in names:
            save_checkpoint(self.work_dir / name, self.model, meta=meta, optimizer=self.optimizer.state_dict(),
                            scheduler=self.schedule.state_dict(),
                            scaler=self.scaler.state_dict() if self.scaler is not None else None, rng=rngs)
        self.recorder.run_state("running", epoch_done, self.best, **({"inner_iter": inner_iter} if inner_iter else {}))

    # ---- one epoch ----------------------------------------------------------------------
    def step(self, epoch: int, inner: int, batch: tuple[torch.Tensor, Any]) -> StepResult:
        """Iteration ``inner`` of ``epoch`` (both 0-based): dropout reseeded from the position, the
        scheduled lr, one :func:`train_step` on ``batch`` (``(clips [B, T, 3, H, W], labels [B])``)."""
        cfg = self.cfg
        torch.manual_seed(derive_seed(self.seed, epoch, inner, self.ctx.rank, 3))
        self.lr = self.schedule.step(self.optimizer, epoch, inner)
        return train_step(self.ddp, batch, self.optimizer, device=self.ctx.device, amp=self.amp, scaler=self.scaler,
                          grad_clip=cfg.optim.grad_clip, channels_last=cfg.train.channels_last)

    def _iteration_end(self, tally: IntervalTally, epoch: int, inner: int, bar) -> None:
        """The boundary after iteration ``inner`` of ``epoch``: the log line every
        ``train.log_interval`` iterations and at the epoch's end, and a mid-epoch checkpoint every
        ``train.checkpoint_interval_iters``."""
        cfg, n = self.cfg, self.iters_per_epoch
        if (inner + 1) % cfg.train.log_interval == 0 or inner + 1 == n:
            self._log_interval(tally, epoch, inner)
            bar.set_postfix(loss=f"{self.last_loss:.4f}", lr=f"{self.lr:.3g}")
        every = cfg.train.checkpoint_interval_iters
        if every and (inner + 1) % every == 0 and inner + 1 < n:
            if tally.count:  # the steps since the last read-back must be finite before their weights are saved
                tally.check(epoch, inner)
            self._checkpoint(epoch, inner + 1, ["latest.pth"])
        if inner + 1 < n:  # the epoch's last boundary is after its validation (fit)
            stop_if_signalled(self, epoch, inner + 1, tally)

    def _log_interval(self, tally: IntervalTally, epoch: int, inner: int) -> None:
        """Read back the interval that ends with iteration ``inner`` and record its lines."""
        values: dict[str, Any] = tally.close_interval(epoch, inner)
        values["memory"] = peak_memory_mib(self.ctx.device)
        self.recorder.interval(epoch, inner, self.lr, values)
        self.recorder.heartbeat()
        self.last_loss = values["loss_cls"]

    def train_epoch(self, epoch: int, skip: int = 0) -> dict[str, float]:
        """Train epoch ``epoch`` (0-based) from its iteration ``skip`` (the ones a resumed run has
        done): :meth:`step` on each batch, then :meth:`_iteration_end`. Returns ``{"loss_cls",
        "top1_acc"}`` means over the iterations of this session, ``iters`` and ``seconds``.

        The steps do not wait for the device: their loss, accuracy and finiteness are summed there
        and read back once per ``train.log_interval`` iterations and before a mid-epoch checkpoint,
        so a non-finite step stops the run within one interval, before a checkpoint holds it.
        """
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        cfg, ctx, n = self.cfg, self.ctx, self.iters_per_epoch
        seed_everything(derive_seed(self.seed, epoch, ctx.rank))
        # the loader seeds its workers from (seed, epoch, rank), and tinlib datasets draw each
        # item's augmentation from (seed, epoch, index): independent of workers and processes
        loader = self._loader(skip) if skip else self.loader
        loader.set_epoch(epoch)
        set_train_mode(self.ddp, cfg)
        show_bar = self.progress and ctx.is_main
        bar = tqdm(total=n, initial=skip, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", disable=not show_bar,
                   dynamic_ncols=True, leave=True)
        # log lines go above the bar instead of through it
        redirect = logging_redirect_tqdm([logging.getLogger("tinlib")]) if show_bar else contextlib.nullcontext()
        tally = IntervalTally(ctx.device)
        t_epoch = end = time.perf_counter()
        self.lr = self.optimizer.param_groups[0]["lr"]
        with redirect:
            for inner, batch in enumerate(loader, start=skip):
                if inner >= n:
                    break
                data_time = time.perf_counter() - end
                tally.add(self.step(epoch, inner, batch), inner, data_time)
                self._iteration_end(tally, epoch, inner, bar)
                bar.update(1)
                end = time.perf_counter()
            if tally.count:  # the loader ran out before n iterations
                self._log_interval(tally, epoch, inner)
        bar.close()
        return {**tally.epoch_means(), "seconds": time.perf_counter() - t_epoch}

    def validate(self, epoch: int) -> dict:
        """Score the validation set after epoch ``epoch`` (0-based) and log the metrics
        ``{"top1_acc", "top5_acc", "mean_class_accuracy"}`` (fractions), which it returns."""
        cfg, ctx = self.cfg, self.ctx
        assert self.val_set is not None
        self.recorder.validating(epoch, len(self.val_set))
        scored = score_dataset(self.model, self.val_set, batch_size=cfg.data.val_videos_per_gpu,
                               num_workers=cfg.data.workers_per_gpu, device=ctx.device,
                               average_clips=cfg.test.average_clips, amp=self.amp, ctx=ctx,
                               progress=self.progress, desc=f"val {epoch + 1}", **loader_settings(cfg, ctx.device))
        metrics = evaluate_scores(scored.scores, scored.labels)
        self.recorder.validation(epoch, scored.num_samples, self.optimizer.param_groups[0]["lr"], metrics)
        return metrics

    # ---- the run ------------------------------------------------------------------------
    def fit(self) -> dict:
        """Run the remaining epochs (validation, checkpoints, records); returns the ``train.json`` record.

        ``run.json`` ends as ``finished`` (after train.json is written), as :func:`stop_if_signalled` says,
        or, when another exception leaves this method, as ``failed`` with its one-line reason in ``error``
        (``interrupted`` for Ctrl-C); it is raised again and the checkpoints already written stay.
        """
        cfg, t0 = self.cfg, time.time()
        self.last_val: dict | None = None
        self.epoch_done = self.start_epoch
        try:
            self.recorder.header(self.start_epoch, self.warnings, self.scaling.message(), len(self.train_set))
            for epoch in range(self.start_epoch, cfg.train.epochs):
                stats = self.train_epoch(epoch, self.start_inner if epoch == self.start_epoch else 0)
                self.epoch_done = epoch + 1
                self._end_epoch(epoch, stats)
                dist.barrier()
                if epoch + 1 < cfg.train.epochs:
                    stop_if_signalled(self, epoch + 1, 0)
            summary = self._finish(time.time() - t0)
        except BaseException as err:  # Ctrl-C too: run.json must not say "running" for a run that stopped
            self.recorder.run_stopped(err, self.epoch_done, self.best)
            self.recorder.close()
            raise
        self.recorder.close()
        dist.barrier()
        return summary

    def _end_epoch(self, epoch: int, stats: dict[str, float]) -> None:
        """After epoch ``epoch`` (0-based): validation when due, its console line, the checkpoints
        due (``latest.pth``, ``epoch_<n>.pth``, ``best.pth`` on a new best score) and ``run.json``."""
        cfg = self.cfg
        val_due = (self.val_set is not None and cfg.train.val_interval > 0
                   and ((epoch + 1) % cfg.train.val_interval == 0 or epoch + 1 == cfg.train.epochs))
        new_best = False
        if val_due:
            self.last_val = val = self.validate(epoch)
            key = cfg.train.save_best
            if key and (self.best is None or val[key] > self.best["value"]):
                self.best = {"metric": key, "value": val[key], "epoch": epoch + 1}
                new_best = True
        self.recorder.epoch_end(epoch, stats, self.last_val if val_due else None)
        names = []
        if (epoch + 1) % cfg.train.checkpoint_interval == 0 or epoch + 1 == cfg.train.epochs:
            names += ["latest.pth"] + ([f"epoch_{epoch + 1}.pth"] if cfg.train.keep_epoch_checkpoints else [])
        if new_best:
            names.append("best.pth")
        self._checkpoint(epoch + 1, 0, names)

    def _finish(self, elapsed: float) -> dict:
        """Write train.json and run.json ``finished``; returns the train.json record (called on every
        process: it gathers the skipped samples)."""
        from tinlib.data.datasets import merge_skipped, skipped_samples_of

        # training samples that could not be read and were replaced (data.skip_bad_samples), all processes
        shards = dist.all_gather_object(skipped_samples_of(self.train_set))
        skipped = merge_skipped(e for shard in shards for e in shard)
        if skipped and self.ctx.is_main:
            log.warning("%d unreadable training sample(s) were replaced by the next readable one %d time(s) in all "
                        "(data.skip_bad_samples); train.json lists them", len(skipped),
                        sum(e["times"] for e in skipped))
        return self.recorder.finished(self.epoch_done, run=self.run_name, last_val=self.last_val, best=self.best,
                                      resumed_from_epoch=self.start_epoch if self.resume_from else None,
                                      skipped=skipped, elapsed=elapsed)


def stop_if_signalled(trainer: Trainer, epoch_done: int, inner_done: int, tally: IntervalTally | None = None) -> None:
    """At ``trainer``'s boundary after ``epoch_done`` epochs and ``inner_done`` iterations: when a
    process received a stop signal (agreed over the processes, so that all stop here), close the
    log interval of ``tally`` (checked finite), checkpoint this position unless just done, and raise
    :class:`~tinlib.engine.preemption.Preempted`. Rank 0 records it in run.json (``preempted`` for
    SIGTERM and SIGUSR1, then requeues a SLURM job; ``interrupted`` for SIGINT)."""
    signum = dist.max_over_processes(trainer.stop.signum)
    if not signum:
        return
    if tally is not None and tally.count:
        trainer._log_interval(tally, epoch_done, inner_done - 1)
    if trainer.saved_position != (epoch_done, inner_done):
        trainer._checkpoint(epoch_done, inner_done, ["latest.pth"])
    stopped = Preempted(signum, epoch_done, inner_done, epoch_done * trainer.iters_per_epoch + inner_done,
                        str(trainer.work_dir / "latest.pth"), is_main=trainer.ctx.is_main)
    trainer.recorder.run_state(stopped.status, epoch_done, trainer.best, inner_iter=inner_done,
                               iteration=stopped.iteration, signal=stopped.signal_name)
    if trainer.ctx.is_main and stopped.status == "preempted":
        stopped.requeued = requeue_slurm_job()
    raise stopped


def train(cfg: Config, **kwargs: Any) -> dict:
    """Train ``cfg`` with the options of :class:`Trainer` (``work_dir``, ``resume``, ``seed``, ...);
    returns the summary written to ``<results_dir>/<run>/train.json``. The torch settings of the run
    (``train.num_threads``, determinism, cuDNN autotuning) apply to this call only, and so do the
    stop-signal handlers (:class:`~tinlib.engine.preemption.StopSignals`) and the work dir's lock."""
    trainer = Trainer(cfg, **kwargs)
    with torch_settings(threads=cfg.train.num_threads, deterministic=trainer.deterministic,
                        cudnn_benchmark=cfg.train.cudnn_benchmark):
        try:
            trainer.setup()
            with trainer.stop:
                return trainer.fit()
        finally:
            if trainer.lock is not None:
                trainer.lock.release()
