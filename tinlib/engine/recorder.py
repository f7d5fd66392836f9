"""What a training run writes besides its checkpoints: the ``log.json`` lines (fields in
:class:`tinlib.records.LogEntry`) and their TensorBoard scalars, the console lines, ``run.json`` in
the work dir and ``train.json`` in the results folder. Files and console lines come from rank 0 only."""
from __future__ import annotations

import datetime
import logging
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

import torch

from tinlib.config import Config
from tinlib.engine.environment import device_info, git_info, now_iso, package_versions
from tinlib.engine.preemption import Preempted
from tinlib.engine.workdir import truncate_log
from tinlib.errors import UserError
from tinlib.records import LogWriter, RunState, TrainRecord

log = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """``seconds`` as ``H:MM:SS``, rounded to the second (negative counts as 0; ``"?"`` when not finite)."""
    if not math.isfinite(seconds):
        return "?"
    return str(datetime.timedelta(seconds=round(max(seconds, 0.0))))


def stop_reason(err: BaseException) -> str:
    """The one-line reason (at most 500 characters) recorded in ``run.json`` for the exception
    that stopped a run: a :class:`~tinlib.errors.UserError` (bad data, a full disk, a non-finite
    loss) gives its message, Ctrl-C ``"interrupted (KeyboardInterrupt)"``, any other exception its
    type and message."""
    if isinstance(err, KeyboardInterrupt):
        text = "interrupted (KeyboardInterrupt" + (f": {err})" if str(err) else ")")
    elif isinstance(err, UserError):
        text = str(err)
    else:
        text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:497] + "..."


def open_tensorboard(folder: Path, position: int) -> Any:
    """A SummaryWriter on ``folder`` for a session that starts after global iteration ``position``:
    the events of an earlier session after that point (iterations this session redoes) are purged,
    so that a resumed run continues its curves without two points at one step."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(folder), purge_step=position + 1, flush_secs=30)


class Recorder:
    """The records and log lines of one training run: ``log.json`` and ``run.json`` in ``work_dir``,
    ``train.json`` in ``results`` (``<results_dir>/<run>``); only rank 0 (``is_main``) writes.
    ``setting``: ``seed``, ``world_size``, ``lr_scaling`` (a dict), ``deterministic``, ``amp``,
    ``sync_bn``, as the records store them."""

    def __init__(self, cfg: Config, work_dir: Path, results: Path, *, setting: dict[str, Any], iters_per_epoch: int,
                 device: torch.device, is_main: bool):
        self.cfg, self.work_dir, self.results = cfg, work_dir, results
        self.setting, self.iters_per_epoch = setting, iters_per_epoch
        self.device, self.is_main = device, is_main
        self.json_log = LogWriter(None)
        self.tensorboard: Any = None  # a torch.utils.tensorboard.SummaryWriter on rank 0 (train.tensorboard)
        self.recorded_inner_iter: int | None = None
        self.last_state: dict[str, Any] | None = None  # the last run.json record and when it was written
        self.last_state_at = 0.0
        self.session_t0, self.session_start = time.perf_counter(), 0

    def start(self, resumed: bool, epoch: int, inner_iter: int, best: dict | None) -> None:
        """A session starts after ``epoch`` epochs and ``inner_iter`` iterations: ``log.json`` is
        opened (a resumed run keeps its lines up to that point, a fresh start in a folder whose
        earlier attempt never checkpointed starts a new file), ``run.json`` says ``running``, and
        the clock of the ETA starts."""
        self.session_t0, self.session_start = time.perf_counter(), epoch * self.iters_per_epoch + inner_iter
        if not self.is_main:
            return
        self.work_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.work_dir / "log.json"
        if resumed:
            truncate_log(log_path, epoch, inner_iter)
        elif log_path.exists():
            log_path.unlink()
        self.json_log = LogWriter(log_path)
        if self.cfg.train.tensorboard:
            position = epoch * self.iters_per_epoch + inner_iter
            self.tensorboard = open_tensorboard(self.work_dir / "tensorboard", position)
        self.run_state("running", epoch, best, **({"inner_iter": inner_iter} if inner_iter else {}))

    def close(self) -> None:
        self.json_log.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None

    def scalars(self, group: str, step: int, values: dict[str, Any]) -> None:
        """The numbers of ``values`` as TensorBoard scalars ``<group>/<key>`` at global iteration ``step``."""
        if self.tensorboard is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.tensorboard.add_scalar(f"{group}/{key}", value, step)

    def eta(self, global_done: int) -> str:
        """The time left for the run, from this session's pace so far (validations included) and
        the iterations left after ``global_done``."""
        done = global_done - self.session_start
        if done <= 0:
            return "?"
        pace = (time.perf_counter() - self.session_t0) / done
        return format_duration(pace * max(self.cfg.train.epochs * self.iters_per_epoch - global_done, 0))

    # ---- log.json and the console ----------------------------------------------------------
    def header(self, resumed_from_epoch: int, warnings: list[str], lr_message: str, num_videos: int) -> None:
        """Before the first epoch of a session: the warnings about the setting, the lr and the sizes
        on the console, and the log.json header line (environment, seed, world size, lr scaling)."""
        cfg, s = self.cfg, self.setting
        if self.is_main:  # the warnings are the same on every process
            for warning in warnings:
                log.warning(warning)
        log.info(lr_message)
        log.info("%s: %d training videos, %d iterations/epoch x %d epochs, %d process(es) on %s, seed %d", cfg.name,
                 num_videos, self.iters_per_epoch, cfg.train.epochs, s["world_size"], self.device, s["seed"])
        if resumed_from_epoch >= cfg.train.epochs:
            log.info("%s: already trained for %d epochs", self.work_dir, resumed_from_epoch)
        self.json_log.write({"env_info": {"versions": package_versions(), "device": device_info(self.device)},
                             "config_name": cfg.name, "work_dir": str(self.work_dir),
                             "iters_per_epoch": self.iters_per_epoch, "resumed_from_epoch": resumed_from_epoch,
                             **s, "git": git_info(), "time": now_iso()})

    def interval(self, epoch: int, inner: int, lr: float, values: dict[str, float]) -> None:
        """The ``train`` lines after iteration ``inner`` of ``epoch`` (both 0-based): ``values``
        averaged over the interval and the processes, in log.json and on the console."""
        self.json_log.write({"mode": "train", "epoch": epoch + 1, "iter": inner + 1, "lr": lr, **values})
        self.scalars("train", epoch * self.iters_per_epoch + inner + 1, {"lr": lr, **values})
        if self.is_main:
            n, epochs = self.iters_per_epoch, self.cfg.train.epochs
            mem = f"  mem {values['memory']} MiB" if values["memory"] else ""
            log.info(f"epoch {epoch + 1}/{epochs}  iter {inner + 1}/{n}  loss {values['loss_cls']:.4f}  "
                     f"lr {lr:.4g}  top1 {100 * values['top1_acc']:.1f}%  {values['time']:.3f} s/iter  "
                     f"data {values['data_time']:.3f} s{mem}  ETA {self.eta(epoch * n + inner + 1)}")

    def validating(self, epoch: int, num_videos: int) -> None:
        """The console line before validating epoch ``epoch`` (0-based) on ``num_videos`` videos."""
        if self.is_main:
            log.info(f"epoch {epoch + 1}/{self.cfg.train.epochs}: validating on {num_videos} videos")

    def validation(self, epoch: int, num_videos: int, lr: float, metrics: dict[str, float]) -> None:
        """The ``val`` log.json line of epoch ``epoch`` (0-based), scored on ``num_videos`` videos."""
        self.json_log.write({"mode": "val", "epoch": epoch + 1, "iter": num_videos, "lr": lr, **metrics})
        self.scalars("val", (epoch + 1) * self.iters_per_epoch, metrics)

    def epoch_end(self, epoch: int, stats: dict[str, float], val: dict | None) -> None:
        """The console line after epoch ``epoch`` (0-based): its mean training loss and top-1, its
        time, the validation metrics when it was validated, and the time left for the run."""
        if not self.is_main:
            return
        epochs, iters = self.cfg.train.epochs, int(stats["iters"])
        text = (f"epoch {epoch + 1}/{epochs} done  loss {stats['loss_cls']:.4f}  "
                f"top1 {100 * stats['top1_acc']:.1f}%  {iters} iters in {format_duration(stats['seconds'])} "
                f"({stats['seconds'] / max(iters, 1):.3f} s/iter)")
        if val:
            text += "  val " + " ".join(f"{k} {100 * v:.2f}%" for k, v in val.items())
        if epoch + 1 < epochs:
            text += f"  ETA {self.eta((epoch + 1) * self.iters_per_epoch)}"
        log.info(text)

    # ---- run.json and train.json -------------------------------------------------------------
    def run_state(self, status: str, epoch: int, best: dict | None, **extra: Any) -> None:
        """Write ``run.json``: ``status`` (one of :data:`RunState.STATUSES`), the ``epoch`` epochs
        done, seed, world size, lr, ``best`` score, the writer's pid, host and heartbeat (as in the
        work dir's lock) and the config (for the work-dir checks); ``extra``: ``inner_iter`` (the
        iterations of the next epoch in the mid-epoch checkpoint just written), ``error`` (why the
        run stopped), ``iteration`` and ``signal`` (where and why a stop signal ended it)."""
        if not self.is_main:
            return
        cfg, s = self.cfg, self.setting
        record = {"config_name": cfg.name, "status": status, "epoch": epoch, "epochs": cfg.train.epochs,
                  "seed": s["seed"], "world_size": s["world_size"], "lr": s["lr_scaling"], "best": best,
                  "time": now_iso(), **extra, "pid": os.getpid(), "host": socket.gethostname(),
                  "config": cfg.to_dict()}
        self.write_run_state(record)
        self.recorded_inner_iter = extra.get("inner_iter")

    def write_run_state(self, record: dict[str, Any]) -> None:
        """Write ``record`` as run.json, with the heartbeat now."""
        record = {**record, "heartbeat": now_iso()}
        RunState.from_dict(record).write(self.work_dir / RunState.FILENAME)
        self.last_state, self.last_state_at = record, time.monotonic()

    def heartbeat(self, every_s: float = 60.0) -> None:
        """Rewrite run.json with a new ``heartbeat`` when the last write is ``every_s`` old (the
        training loop calls it at its log intervals)."""
        if self.is_main and self.last_state is not None and time.monotonic() - self.last_state_at >= every_s:
            self.write_run_state(self.last_state)

    def run_stopped(self, err: BaseException, epoch: int, best: dict | None) -> None:
        """``run.json`` after ``err`` stopped the run: ``interrupted`` for Ctrl-C, else ``failed``,
        with the one-line reason in ``error``; a mid-epoch position keeps the last record's
        ``inner_iter``. A failure to write it (a full disk) is logged at debug level, not raised:
        the error that stopped the run is the one the user must see. A :class:`Preempted` run
        recorded its stop already."""
        if isinstance(err, Preempted):
            return
        status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
        extra: dict[str, Any] = {"error": stop_reason(err)}
        if self.recorded_inner_iter:
            extra["inner_iter"] = self.recorded_inner_iter
        try:
            self.run_state(status, epoch, best, **extra)
        except Exception as write_err:
            log.debug("could not record the %s run in %s: %s", status, self.work_dir / RunState.FILENAME, write_err)

    def finished(self, epoch: int, *, run: str, last_val: dict | None, best: dict | None,
                 resumed_from_epoch: int | None, skipped: list[dict], elapsed: float) -> dict[str, Any]:
        """The train.json record: the run's setting, last and best validation, checkpoints, the
        replaced training samples (``skipped``, of all processes), environment and config. Rank 0
        writes it, then ``run.json`` as ``finished`` after ``epoch`` epochs (so that "finished"
        means that the summary the reports read is there)."""
        cfg = self.cfg
        summary = {"run": run, "config_name": cfg.name, "work_dir": str(self.work_dir), "epochs": cfg.train.epochs,
                   "iters_per_epoch": self.iters_per_epoch, "videos_per_gpu": cfg.data.videos_per_gpu, **self.setting,
                   "last_val": last_val, "best": best, "resumed_from_epoch": resumed_from_epoch,
                   "checkpoints": {"latest": str(self.work_dir / "latest.pth"),
                                   "best": str(self.work_dir / "best.pth") if best else None},
                   "num_skipped": sum(e["times"] for e in skipped), "skipped_samples": skipped,
                   "elapsed_s_this_session": round(elapsed, 2), "git": git_info(), "versions": package_versions(),
                   "device": device_info(self.device), "time": now_iso(), "config": cfg.to_dict()}
        if self.is_main:
            out = TrainRecord.from_dict(summary).write(self.results / TrainRecord.FILENAME)
            self.run_state("finished", epoch, best)
            log.info("done: %s; summary %s", self.work_dir / "latest.pth", out)
        return summary
