"""``tinlib train CONFIG``: the training loop, single process or one process per device under torchrun.

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

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tinlib.engine import dist
from tinlib.engine.common import (RunError, build_model, global_torch_settings, restore_torch_settings, build_split_dataset, check_class_count, check_data_paths, derive_seed,
                                  device_info, git_info, make_loader, now_iso, package_versions, print_main,
                                  random_seed, rng_state, seed_everything, set_deterministic, set_rng_state,
                                  set_train_mode)
from tinlib.engine.config import (Config, ConfigError, LrScaling, available_configs, diff_configs, load_config,
                                  scaled_lr)
from tinlib.engine.evaluate import autocast_context, run_inference
from tinlib.engine.metrics import evaluate_scores, top_k_accuracy
from tinlib.engine.optim import build_optimizer, clip_gradients
from tinlib.engine.schedule import LrSchedule
from tinlib.io import atomic_write_json, atomic_write_text
from tinlib.records import BestScore, CheckpointPaths, LogEntry, LogHeader, LogWriter, RecordError, TrainRecord

# Seconds to sleep after every training iteration: a throttle for tests that must interrupt a
# run at a known point and for watching a demo; it changes no result.
ITER_SLEEP_ENV = "TINLIB_DEBUG_ITER_SLEEP"
EXIT_NONFINITE = 3


class NonFiniteLossError(RuntimeError):
    """The loss (or the gradient norm) became NaN/inf; the run stops, the last checkpoint stays."""


# --------------------------------------------------------------------------------------------
# Work dir bookkeeping
# --------------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def resolve_resume(work_dir: Path, resume: str | None) -> Path | None:
    """``auto`` -> latest.pth if present; a path -> that file; None -> no resume."""
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
    """Refuse a work dir that holds another run; returns warnings about changed settings."""
    record = _read_json(work_dir / "run.json")
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


def _truncate_log(log_path: Path, epoch_done: int, inner_done: int = 0) -> None:
    """Drop log lines after the position we resume from (those iterations are redone)."""
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


class SkipSampler(torch.utils.data.Sampler):
    """``base`` without its first ``skip`` indices (a resumed epoch); call ``base.set_epoch`` first."""

    def __init__(self, base: torch.utils.data.Sampler, skip: int):
        self.base, self.skip = base, skip

    def __iter__(self):
        return itertools.islice(iter(self.base), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.base) - self.skip, 0)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------
class Trainer:
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
        cfg = self.cfg
        if self.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        self.ctx = ctx = dist.init_distributed(self.device_pref)
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        if self.amp == "fp16" and ctx.device.type != "cuda":
            raise RunError("train.amp=fp16 needs CUDA; use bf16 or none on the CPU")
        set_deterministic(self.deterministic, cfg.train.cudnn_benchmark)
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

        self.sampler = torch.utils.data.DistributedSampler(self.train_set, num_replicas=ctx.world_size,
                                                           rank=ctx.rank, shuffle=True, seed=self.seed,
                                                           drop_last=False)
        self.generator = torch.Generator()
        self.loader = make_loader(self.train_set, cfg.data.videos_per_gpu, sampler=self.sampler,
                                  num_workers=cfg.data.workers_per_gpu, generator=self.generator,
                                  pin_memory=ctx.device.type == "cuda", drop_last=cfg.data.drop_last)
        self.iters_per_epoch = len(self.loader)
        if cfg.train.max_iters_per_epoch:
            self.iters_per_epoch = min(self.iters_per_epoch, cfg.train.max_iters_per_epoch)
        if self.iters_per_epoch == 0:
            raise RunError(f"config {cfg.name}: no full batch of {cfg.data.videos_per_gpu} videos per process "
                           f"({len(self.train_set)} videos, {ctx.world_size} processes, drop_last)")
        self.schedule = LrSchedule(cfg.schedule, cfg.train.epochs, self.iters_per_epoch)

        self.start_epoch, self.start_inner, self.best = 0, 0, None
        if self.resume_from is not None:
            dist.collective_check(lambda: self._load_resume(self.resume_from), RunError)
        if ctx.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(self.model, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)
        else:
            self.ddp = self.model

        self.log = LogWriter(None)
        if ctx.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.work_dir / "log.json"
            if self.resume_from is not None:
                _truncate_log(log_path, self.start_epoch, self.start_inner)
            elif log_path.exists():
                log_path.unlink()  # a fresh start in a folder whose earlier attempt never checkpointed
            self.log = LogWriter(self.work_dir / "log.json")
            self._write_run_record("running")
        dist.barrier()

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
        print_main(self.ctx, f"resumed from {path} (after {where})")

    # ---- records ------------------------------------------------------------------------
    def _meta(self, epoch: int, global_iter: int, inner_iter: int = 0) -> dict:
        return {"epoch": epoch, "inner_iter": inner_iter, "iter": global_iter, "seed": self.seed, "config_name": self.cfg.name,
                "config": self.cfg.to_dict(), "world_size": self.ctx.world_size, "lr": self.scaling.to_dict(),
                "deterministic": self.deterministic, "amp": self.amp, "sync_bn": self.sync_bn,
                "time": now_iso(), "git": git_info(), "best": self.best, "work_dir": str(self.work_dir)}

    def _write_run_record(self, status: str, **extra: Any) -> None:
        record = {"config_name": self.cfg.name, "status": status, "epoch": getattr(self, "epoch_done", self.start_epoch),
                  "epochs": self.cfg.train.epochs, "seed": self.seed, "world_size": self.ctx.world_size,
                  "lr": self.scaling.to_dict(), "best": self.best, "time": now_iso(), **extra,
                  "config": self.cfg.to_dict()}
        atomic_write_json(self.work_dir / "run.json", record)

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
        self.generator.manual_seed(derive_seed(self.seed, epoch, ctx.rank, 2))
        self.sampler.set_epoch(epoch)
        # tinlib datasets draw each item's augmentation from (seed, epoch, index): independent of
        # workers and processes (see tinlib.data.ClipDataset)
        if hasattr(self.train_set, "seed"):
            self.train_set.seed = self.seed
        if hasattr(self.train_set, "epoch"):
            self.train_set.epoch = epoch
        set_train_mode(self.ddp, cfg)
        sleep = float(os.environ.get(ITER_SLEEP_ENV, "0") or 0)
        n = self.iters_per_epoch
        loader = self.loader
        if skip:
            loader = make_loader(self.train_set, cfg.data.videos_per_gpu,
                                 sampler=SkipSampler(self.sampler, skip * cfg.data.videos_per_gpu),
                                 num_workers=cfg.data.workers_per_gpu, generator=self.generator,
                                 pin_memory=ctx.device.type == "cuda", drop_last=cfg.data.drop_last)
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
            clips = clips.to(ctx.device, non_blocking=True)
            labels = torch.as_tensor(labels).to(ctx.device, non_blocking=True)
            with autocast_context(ctx.device, self.amp):
                scores = self.ddp(clips)
            loss = F.cross_entropy(scores.float(), labels)
            finite = torch.tensor([1.0 if torch.isfinite(loss).item() else 0.0])
            dist.all_reduce(finite, "min")
            if finite.item() < 1:
                raise NonFiniteLossError(f"loss is {loss.item()} at epoch {epoch + 1}, iteration {inner + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            grad_norm = None
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
                grad_norm = clip_gradients(self.model.parameters(), cfg.optim.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                grad_norm = clip_gradients(self.model.parameters(), cfg.optim.grad_clip)
                if grad_norm is not None and not torch.isfinite(grad_norm):
                    raise NonFiniteLossError(f"gradient norm is {grad_norm.item()} at epoch {epoch + 1}, "
                                             f"iteration {inner + 1}")
                self.optimizer.step()
            top1, top5 = top_k_accuracy(scores.detach().float().cpu().numpy(), labels.cpu().numpy(), (1, 5))
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
                self.log.write(LogEntry(mode="train", epoch=epoch + 1, iter=inner + 1, lr=lr, **values))
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
        cfg, ctx = self.cfg, self.ctx
        scores, labels = run_inference(self.model, self.val_set, batch_size=cfg.data.val_videos_per_gpu,
                                       num_workers=cfg.data.workers_per_gpu, device=ctx.device,
                                       average_clips=cfg.test.average_clips, amp=self.amp, ctx=ctx,
                                       progress=self.progress, desc=f"val {epoch + 1}")
        metrics = evaluate_scores(scores, labels)
        self.log.write(LogEntry.from_dict({"mode": "val", "epoch": epoch + 1, "iter": len(labels),
                                           "lr": self.optimizer.param_groups[0]["lr"], **metrics}))
        print_main(ctx, f"epoch {epoch + 1} val: " + "  ".join(f"{k} {100 * v:.2f}" for k, v in metrics.items()))
        return metrics

    # ---- the run ------------------------------------------------------------------------
    def fit(self) -> dict:
        cfg, ctx = self.cfg, self.ctx
        t0 = time.time()
        for warning in self.warnings:
            print_main(ctx, f"warning: {warning}")
        print_main(ctx, self.scaling.message())
        print_main(ctx, f"{cfg.name}: {len(self.train_set)} training videos, {self.iters_per_epoch} iterations/epoch "
                        f"x {cfg.train.epochs} epochs, {ctx.world_size} process(es) on {ctx.device}, seed {self.seed}")
        self.log.write(LogHeader(env_info={"versions": package_versions(), "device": device_info(ctx.device)},
                                 seed=self.seed, config_name=cfg.name, work_dir=str(self.work_dir),
                                 world_size=ctx.world_size, lr_scaling=self.scaling.to_dict(),
                                 iters_per_epoch=self.iters_per_epoch, resumed_from_epoch=self.start_epoch,
                                 deterministic=self.deterministic, amp=self.amp, sync_bn=self.sync_bn,
                                 git=git_info(), time=now_iso()))
        last_val = None
        self.epoch_done = self.start_epoch
        if self.start_epoch >= cfg.train.epochs:
            print_main(ctx, f"{self.work_dir}: already trained for {self.start_epoch} epochs")
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
            self.log.close()
            raise
        summary = self._summary(last_val, time.time() - t0)
        if ctx.is_main:
            self._write_run_record("finished")
            out = summary.write(Path(cfg.results_dir) / self.run_name / TrainRecord.FILENAME)
            print_main(ctx, f"done: {self.work_dir / 'latest.pth'}; summary {out}")
        self.log.close()
        dist.barrier()
        return summary.to_dict()

    def _summary(self, last_val: dict | None, elapsed: float) -> TrainRecord:
        """The ``train.json`` record of this run (``last_val``: the last validation metrics)."""
        cfg = self.cfg
        return TrainRecord(
            run=self.run_name, config_name=cfg.name, work_dir=str(self.work_dir), epochs=cfg.train.epochs,
            iters_per_epoch=self.iters_per_epoch, world_size=self.ctx.world_size,
            videos_per_gpu=cfg.data.videos_per_gpu, lr_scaling=self.scaling.to_dict(), seed=self.seed,
            deterministic=self.deterministic, amp=self.amp, sync_bn=self.sync_bn, last_val=last_val,
            best=BestScore.from_dict(self.best) if self.best else None,
            resumed_from_epoch=self.start_epoch if self.resume_from else None,
            checkpoints=CheckpointPaths(latest=str(self.work_dir / "latest.pth"),
                                        best=str(self.work_dir / "best.pth") if self.best else None),
            elapsed_s_this_session=round(elapsed, 2), git=git_info(), versions=package_versions(),
            device=device_info(self.ctx.device), time=now_iso(), config=cfg.to_dict())


def train(cfg: Config, **kwargs: Any) -> dict:
    """Train ``cfg``; keyword arguments as :class:`Trainer` (``datasets={"train": ..., "val": ...}``
    replaces the config's data, e.g. with tensors in tests). Returns the summary dict."""
    saved = global_torch_settings()
    try:
        trainer = Trainer(cfg, **kwargs)
        trainer.setup()
        return trainer.fit()
    finally:
        restore_torch_settings(saved)  # threads and determinism apply to this run only


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinlib train", description="Train a config; under torchrun one process per "
                                "device (DDP). Writes checkpoints and log.json to the work dir.",
                                epilog="configs: " + ", ".join(available_configs()) + ". Multi-GPU: torchrun "
                                "--nproc-per-node N -m tinlib train CONFIG (the lr follows the linear scaling rule).")
    p.add_argument("config", help="config name (see tinlib/configs) or path to a .py/.json config")
    p.add_argument("--work-dir", help="output folder (default work_dirs/<config name>)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. --set optim.lr=0.01 data.root=/data/sthv1")
    p.add_argument("--seed", type=int, help="random seed (default: train.seed, else drawn and recorded)")
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms, no cuDNN autotuning")
    p.add_argument("--resume", metavar="auto|PATH", help="continue from work_dir/latest.pth (auto) or a checkpoint")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), help="mixed precision (default train.amp)")
    p.add_argument("--sync-bn", action="store_true", default=None, help="synchronize BN statistics across processes")
    p.add_argument("--no-validate", action="store_true", help="skip the periodic validation")
    p.add_argument("--run", help="results sub-folder for train.json (default: the config name)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        train(cfg, work_dir=args.work_dir, resume=args.resume, seed=args.seed,
              deterministic=True if args.deterministic else None, device=args.device, amp=args.amp,
              sync_bn=args.sync_bn, validate=not args.no_validate, run=args.run, progress=not args.no_progress)
    except (ConfigError, RunError) as err:
        print(f"tinlib train: error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"tinlib train: stopped: {err}. The last good checkpoint is kept in the work dir; lower the lr or "
              "check the data, then --resume auto.", file=sys.stderr)
        return EXIT_NONFINITE
    finally:
        dist.cleanup()
    return 0


__all__ = ["train", "Trainer", "NonFiniteLossError", "main"]
