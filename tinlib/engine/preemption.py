"""Stopping a training run on a signal without losing work, and continuing it: SIGTERM and SIGUSR1
(a scheduler preempting the job; SLURM's ``--signal=USR1@120`` before the time limit) and SIGINT
(Ctrl-C) only set a flag, which the training loop reads at its next iteration boundary; the run
then checkpoints that iteration and ends with :class:`Preempted`. Under SLURM the job is requeued,
and a requeued or restarted job resumes by itself. Exit codes: :data:`EXIT_PREEMPTED`,
:data:`EXIT_INTERRUPTED`."""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
from types import FrameType
from typing import Any

from tinlib.errors import one_line

log = logging.getLogger(__name__)

EXIT_PREEMPTED = 75  # EX_TEMPFAIL (sysexits.h): a temporary failure, run the same command again
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for Ctrl-C
STOP_SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")
# set in a job that its scheduler started again: SLURM after a requeue, torchrun after a worker failed
RESTART_VARIABLES = ("SLURM_RESTART_COUNT", "TORCHELASTIC_RESTART_COUNT")


class Preempted(Exception):
    """A run stopped on signal ``signum`` after writing ``checkpoint`` at an iteration boundary
    (``epoch`` whole epochs and ``inner_iter`` iterations of the next one: global ``iteration``).
    ``status`` (for run.json): ``interrupted`` for SIGINT, else ``preempted``; ``exit_code``: 130
    for SIGINT, else 75; ``requeued``: the SLURM job was requeued; ``is_main``: raised on rank 0."""

    def __init__(self, signum: int, epoch: int, inner_iter: int, iteration: int, checkpoint: str, *,
                 is_main: bool = True):
        self.signal_name = signal.Signals(signum).name
        self.epoch, self.inner_iter, self.iteration = epoch, inner_iter, iteration
        self.requeued, self.is_main = False, is_main
        interrupted = signum == signal.SIGINT
        self.status = "interrupted" if interrupted else "preempted"
        self.exit_code = EXIT_INTERRUPTED if interrupted else EXIT_PREEMPTED
        where = f"epoch {epoch}" + (f" + {inner_iter} iterations" if inner_iter else "")
        super().__init__(f"stopped by {self.signal_name} after {where} (iteration {iteration}), "
                         f"checkpointed in {checkpoint}")


class StopSignals:
    """While entered, SIGTERM, SIGUSR1 and SIGINT record the signal (:attr:`signum`, the first one)
    instead of ending the process; a SIGINT after that raises KeyboardInterrupt (a second Ctrl-C
    stops at once). The previous handlers come back on exit. Outside the main thread, where Python
    cannot install handlers, it does nothing."""

    def __init__(self) -> None:
        self.signum = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                if hasattr(signal, name):  # no SIGUSR1 on Windows
                    number = getattr(signal, name)
                    self._previous[number] = signal.signal(number, self._received)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _received(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.signum:
            raise KeyboardInterrupt
        self.signum = self.signum or signum


def requeue_slurm_job() -> bool:
    """Under SLURM (``SLURM_JOB_ID`` set, ``scontrol`` on the PATH): ``scontrol requeue`` the job,
    so that it starts again and resumes. A failure is one warning line. Returns whether it worked."""
    job, scontrol = os.environ.get("SLURM_JOB_ID"), shutil.which("scontrol")
    if not job or not scontrol:
        return False
    try:
        proc = subprocess.run([scontrol, "requeue", job], capture_output=True, text=True, timeout=60)
        problem = one_line(proc.stderr or proc.stdout) or f"exit status {proc.returncode}"
    except (OSError, subprocess.SubprocessError) as err:
        proc, problem = None, one_line(err)
    if proc is not None and proc.returncode == 0:
        log.info("SLURM job %s requeued: it starts again and resumes from the checkpoint", job)
        return True
    log.warning("could not requeue SLURM job %s (scontrol requeue: %s); submit it again to continue", job, problem)
    return False


def resume_after_restart(resume: str | None, announce: bool = True) -> str | None:
    """``resume``, or ``"auto"`` when none was given and the job was started again by its scheduler
    (a SLURM requeue, a torchrun restart), with a line saying so when ``announce``."""
    if resume is not None:
        return resume
    for name in RESTART_VARIABLES:
        count = os.environ.get(name, "")
        if count.isdigit() and int(count) > 0:
            if announce:
                log.info("%s=%s: the job was started again; resuming as with --resume auto", name, count)
            return "auto"
    return None
