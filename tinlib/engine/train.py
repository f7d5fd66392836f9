"""The training loop (``tinlib train CONFIG``), single process or one process per device under torchrun.

What a run writes (rank 0 only) in its work dir (default ``work_dirs/<config name>``):

- ``log.json``: JSON lines. A header line per session (seed, world size, lr scaling, versions),
  then MMAction2's fields every ``train.log_interval`` iterations (``mode``, ``epoch``, ``iter``
  (1-based within the epoch), ``lr`` (first parameter group), ``loss_cls``, ``loss``, ``top1_acc``,
  ``top5_acc`` (on the training batches), ``grad_norm``, ``time``, ``data_time``, ``memory``
  (peak CUDA MiB, max over processes; 0 on the CPU)), averaged over the interval and the
  processes, and a ``mode: "val"`` line after each validation.
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
The sampler shards one global permutation across processes, so N processes x B videos see the
same batches as 1 process x N*B videos (identical results up to float rounding when BN statistics
are synchronized with ``train.sync_bn`` and dropout is off).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tinlib.engine import dist
from tinlib.engine.build import build_model, set_train_mode
from tinlib.engine.config import Config, LrScaling, scaled_lr
from tinlib.engine.environment import device_info, git_info, now_iso, package_versions
from tinlib.engine.errors import NonFiniteLossError, RunError
from tinlib.engine.evaluate import run_inference
from tinlib.engine.metrics import evaluate_scores, top_k_accuracy
from tinlib.engine.optim import build_optimizer, clip_gradients
from tinlib.engine.schedule import LrSchedule
from tinlib.engine.seeding import derive_seed, random_seed, rng_state, seed_everything, set_rng_state
from tinlib.engine.splits import build_split_dataset, check_class_count, check_data_paths
from tinlib.engine.torch_settings import autocast, torch_settings
from tinlib.engine.workdir import check_work_dir, resolve_resume, truncate_log
from tinlib.records import LogWriter, RecordError, RunState, TrainRecord

log = logging.getLogger(__name__)

# Seconds to sleep after every training iteration: a throttle for tests that must interrupt a
# run at a known point and for watching a demo; it changes no result.
ITER_SLEEP_ENV = "TINLIB_DEBUG_ITER_SLEEP"


# --------------------------------------------------------------------------------------------
# One step
# --------------------------------------------------------------------------------------------
@dataclass
class StepResult:
    """What one training step produced: the loss (a 0-d tensor), the scores ``[B, K]`` (detached)
    and the gradient norm before clipping (None without clipping)."""

    loss: torch.Tensor
    scores: torch.Tensor
    grad_norm: torch.Tensor | None


def train_step(model: torch.nn.Module, batch: tuple[torch.Tensor, Any], optimizer: torch.optim.Optimizer, *,
               device: torch.device, amp: str = "none", scaler: torch.amp.GradScaler | None = None,
               grad_clip: float | None = None, where: str = "") -> StepResult:
    """One SGD step on ``batch``: forward, cross-entropy, backward, gradient clipping, update.

    Args:
        model: the recognizer, or its DDP wrapper under torchrun; ``model(clips) -> [B, K]``.
        batch: ``(clips [B, T, 3, H, W], labels [B])``, moved to ``device`` here.
        optimizer: the run's optimizer (its learning rates already set for this iteration).
        device: where the model is.
        amp: ``"none"``, ``"bf16"`` or ``"fp16"`` autocast for the forward pass; ``scaler`` is the
            grad scaler that fp16 needs (None otherwise).
        grad_clip: max global L2 norm of the gradients (None: no clipping).
        where: the position for error messages, e.g. ``"at epoch 2, iteration 1"``.
    Raises:
        NonFiniteLossError: the loss is NaN/inf on any process (checked before the backward pass,
            so the weights stay as they were), or without a scaler the gradient norm is.
    """
    clips, labels = batch
    clips = clips.to(device, non_blocking=True)
    labels = torch.as_tensor(labels).to(device, non_blocking=True)
    with autocast(device, amp):
        scores = model(clips)
    loss = F.cross_entropy(scores.float(), labels)
    finite = torch.tensor([1.0 if torch.isfinite(loss).item() else 0.0])
    dist.all_reduce(finite, "min")
    if finite.item() < 1:
        raise NonFiniteLossError(f"loss is {loss.item()} {where}".rstrip())
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
        if grad_norm is not None and not torch.isfinite(grad_norm):
            raise NonFiniteLossError(f"gradient norm is {grad_norm.item()} {where}".rstrip())
        optimizer.step()
    return StepResult(loss.detach(), scores.detach(), grad_norm)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------
class Trainer:
    """One training run: :meth:`setup` checks everything and builds the model, optimizer, loader
    and schedule; :meth:`fit` runs the epochs and writes the records. :func:`train` is the entry
    point (it also applies the run's torch settings); the arguments are described there and in
    ``tinlib train --help``."""

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
            self.ddp = DistributedDataParallel(self.model, device_ids=device_ids)
        else:
            self.ddp = self.model

        self.json_log = LogWriter(None)
        if ctx.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.work_dir / "log.json"
            if self.resume_from is not None:
                truncate_log(log_path, self.start_epoch, self.start_inner)
            elif log_path.exists():
                log_path.unlink()  # a fresh start in a folder whose earlier attempt never checkpointed
            self.json_log = LogWriter(self.work_dir / "log.json")
            self._write_run_record("running")
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
        """Write ``work_dir/run.json`` (rank 0): the run's status (running, finished, failed), the
        epochs done, seed, world size, lr and best score, and the config (for the work-dir checks)."""
        record = {"config_name": self.cfg.name, "status": status,
                  "epoch": getattr(self, "epoch_done", self.start_epoch), "epochs": self.cfg.train.epochs,
                  "seed": self.seed, "world_size": self.ctx.world_size,
                  "lr": self.scaling.to_dict(), "best": self.best, "time": now_iso(), **extra,
                  "config": self.cfg.to_dict()}
        RunState.from_dict(record).write(self.work_dir / RunState.FILENAME)

    def _save(self, name: str, epoch: int, global_iter: int, rngs: list, inner_iter: int = 0) -> Path:
        from tinlib.checkpoint import save_checkpoint

        return save_checkpoint(self.work_dir / name, self.model, meta=self._meta(epoch, global_iter, inner_iter),
                               optimizer=self.optimizer.state_dict(), scheduler=self.schedule.state_dict(),
                               scaler=self.scaler.state_dict() if self.scaler is not None else None, rng=rngs)

    # ---- one epoch ----------------------------------------------------------------------
    def _reduce_log(self, sums: dict, count: int) -> dict:
        keys = ["loss_cls", "top1_acc", "top5_acc", "grad_norm", "time", "data_time"]
        vec = torch.tensor([sums.get(k, 0.0) / max(count, 1) for k in keys], dtype=torch.float64)
        dist.all_reduce(vec, "mean")
        out = dict(zip(keys, vec.tolist()))
        out["loss"] = out["loss_cls"]
        if "grad_norm" not in sums:
            del out["grad_norm"]
        mem = 0
        if self.ctx.device.type == "cuda":
            peak = torch.tensor([torch.cuda.max_memory_allocated(self.ctx.device) / 2 ** 20], device=self.ctx.device)
            dist.all_reduce(peak, "max")
            mem = int(peak.item())
        out["memory"] = mem
        return out

    def train_epoch(self, epoch: int, skip: int = 0) -> None:
        """Train one epoch (0-based), starting after its first ``skip`` iterations when resuming."""
        from tqdm import tqdm

        cfg, ctx = self.cfg, self.ctx
        seed_everything(derive_seed(self.seed, epoch, ctx.rank))
        # the loader seeds its workers from (seed, epoch, rank), and tinlib datasets draw each
        # item's augmentation from (seed, epoch, index): independent of workers and processes
        loader = self._loader(skip) if skip else self.loader
        loader.set_epoch(epoch)
        set_train_mode(self.ddp, cfg)
        sleep = float(os.environ.get(ITER_SLEEP_ENV, "0") or 0)
        n = self.iters_per_epoch
        bar = tqdm(total=n, initial=skip, desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
                   disable=not (self.progress and ctx.is_main), dynamic_ncols=True, leave=False)
        sums: dict[str, float] = {}
        count = 0
        every = cfg.train.checkpoint_interval_iters
        end = time.perf_counter()
        for inner, (clips, labels) in enumerate(loader, start=skip):
            if inner >= n:
                break
            data_time = time.perf_counter() - end
            torch.manual_seed(derive_seed(self.seed, epoch, inner, ctx.rank, 3))
            lr = self.schedule.step(self.optimizer, epoch, inner)
            step = train_step(self.ddp, (clips, labels), self.optimizer, device=ctx.device, amp=self.amp,
                              scaler=self.scaler, grad_clip=cfg.optim.grad_clip,
                              where=f"at epoch {epoch + 1}, iteration {inner + 1}")
            loss, scores, grad_norm = step.loss, step.scores, step.grad_norm
            top1, top5 = top_k_accuracy(scores.float().cpu().numpy(), torch.as_tensor(labels).numpy(), (1, 5))
            if sleep:
                time.sleep(sleep)
            if ctx.device.type == "cuda":
                torch.cuda.synchronize(ctx.device)
            step_time = time.perf_counter() - end
            for key, value in (("loss_cls", loss.item()), ("top1_acc", top1), ("top5_acc", top5),
                               ("time", step_time), ("data_time", data_time)):
                sums[key] = sums.get(key, 0.0) + value
            if grad_norm is not None:
                sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(grad_norm)
            count += 1
            if (inner + 1) % cfg.train.log_interval == 0 or inner + 1 == n:
                values = self._reduce_log(sums, count)
                self._log_train_line(epoch, inner, lr, values)
                bar.set_postfix(loss=f"{values['loss_cls']:.4f}", lr=f"{lr:.3g}")
                sums, count = {}, 0
            if every and (inner + 1) % every == 0 and inner + 1 < n:
                rngs = dist.all_gather_object(rng_state())
                if ctx.is_main:
                    self._save("latest.pth", epoch, epoch * n + inner + 1, rngs, inner_iter=inner + 1)
                    self._write_run_record("running", inner_iter=inner + 1)
            bar.update(1)
            end = time.perf_counter()
        bar.close()

    def validate(self, epoch: int) -> dict:
        """Score the validation set after epoch ``epoch`` (0-based); logs and returns the metrics
        (``top1_acc``, ``top5_acc``, ``mean_class_accuracy`` as fractions)."""
        cfg, ctx = self.cfg, self.ctx
        scores, labels = run_inference(self.model, self.val_set, batch_size=cfg.data.val_videos_per_gpu,
                                       num_workers=cfg.data.workers_per_gpu, device=ctx.device,
                                       average_clips=cfg.test.average_clips, amp=self.amp, ctx=ctx,
                                       progress=self.progress, desc=f"val {epoch + 1}")
        metrics = evaluate_scores(scores, labels)
        self._log_val_line(epoch, len(labels), metrics)
        log.info("epoch %d val: %s", epoch + 1, "  ".join(f"{k} {100 * v:.2f}" for k, v in metrics.items()))
        return metrics

    # ---- the run ------------------------------------------------------------------------
    def fit(self) -> dict:
        """Run the remaining epochs (validation, checkpoints, records); returns the train.json record."""
        cfg, ctx = self.cfg, self.ctx
        t0 = time.time()
        if ctx.is_main:  # the warnings are the same on every process
            for warning in self.warnings:
                log.warning(warning)
        log.info(self.scaling.message())
        log.info("%s: %d training videos, %d iterations/epoch x %d epochs, %d process(es) on %s, seed %d", cfg.name,
                 len(self.train_set), self.iters_per_epoch, cfg.train.epochs, ctx.world_size, ctx.device, self.seed)
        self.json_log.write(self._log_header())
        last_val = None
        self.epoch_done = self.start_epoch
        if self.start_epoch >= cfg.train.epochs:
            log.info("%s: already trained for %d epochs", self.work_dir, self.start_epoch)
        try:
            for epoch in range(self.start_epoch, cfg.train.epochs):
                self.train_epoch(epoch, self.start_inner if epoch == self.start_epoch else 0)
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
        except NonFiniteLossError as err:
            if ctx.is_main:
                self._write_run_record("failed", error=str(err))
            self.json_log.close()
            raise
        summary = self._train_record(last_val, time.time() - t0)
        if ctx.is_main:
            self._write_run_record("finished")
            out = self._write_train_record(summary)
            log.info("done: %s; summary %s", self.work_dir / "latest.pth", out)
        self.json_log.close()
        dist.barrier()
        return summary

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
        self.json_log.write({"mode": "train", "epoch": epoch + 1, "iter": inner + 1, "lr": lr, **values})

    def _log_val_line(self, epoch: int, num_videos: int, metrics: dict) -> None:
        """The ``mode: "val"`` log.json line after validating ``epoch`` (0-based) on ``num_videos`` videos."""
        self.json_log.write({"mode": "val", "epoch": epoch + 1, "iter": num_videos,
                             "lr": self.optimizer.param_groups[0]["lr"], **metrics})

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
    """Train ``cfg`` and return the summary written to ``<results_dir>/<run>/train.json``.

    Keyword arguments are those of :class:`Trainer` (``work_dir``, ``resume``, ``seed``,
    ``deterministic``, ``device``, ``amp``, ``sync_bn``, ``validate``, ``datasets``, ``run``,
    ``progress``); ``datasets={"train": ..., "val": ...}`` replaces the config's data, e.g. with
    tensors in tests (items ``(clip [T, 3, H, W], label)``). The torch settings of the run
    (``train.num_threads``, determinism, cuDNN autotuning) apply to this call only.
    """
    trainer = Trainer(cfg, **kwargs)
    with torch_settings(threads=cfg.train.num_threads, deterministic=trainer.deterministic,
                        cudnn_benchmark=cfg.train.cudnn_benchmark):
        trainer.setup()
        return trainer.fit()


__all__ = ["ITER_SLEEP_ENV", "NonFiniteLossError", "StepResult", "Trainer", "train", "train_step"]
