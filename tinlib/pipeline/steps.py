"""Notebook steps: papermill runs of notebooks, each skipped while up to date like a make rule
(see :func:`freshness`). Standard library only at import time.
"""
from __future__ import annotations

import functools
import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from tinlib.errors import UserError
from tinlib.io import atomic_write_json

log = logging.getLogger(__name__)

# the Jupyter kernel `make setup` registers for the project's virtual environment
KERNEL = "tin-kit"
T = TypeVar("T")


class StepFailed(UserError):
    """A notebook failed (the message names the executed notebook holding the traceback), or ran
    without writing what it declares."""

    exit_code = 1


@dataclass
class Step:
    """One papermill run of the notebook ``source`` with ``parameters`` (injected after its
    ``parameters`` cell), saved as ``<name>.ipynb`` (unique within a run)."""

    name: str
    source: Path
    parameters: dict[str, Any]
    # files whose change makes the step stale (the notebook itself always counts)
    inputs: list[Path] = field(default_factory=list)
    # files the step writes; all present and newer than the inputs = up to date
    outputs: list[Path] = field(default_factory=list)
    always: bool = False  # rerun every time (cheap summary steps, or steps that track their own progress)
    title: str = ""  # the section title in the run's HTML report
    group: str | None = None  # consecutive steps of the same group run side by side

    @property
    def notebook(self) -> str:
        """The notebook's name without folder and suffix (``01_train``)."""
        return Path(self.source).stem


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def show_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies below it (for messages)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def finished_marker(step: Step) -> Path | None:
    """The stamp that says ``step``'s last run finished: ``.<step name>.done.json`` beside its first
    output (so runs that share a step, the demo's and the ablation's data, share it); None for a
    step without outputs.

    Outputs alone do not prove a step: a notebook that failed (or was killed) after writing some
    of them has not done it. Stamps are not committed, so in a fresh clone every step runs once on
    the new machine (the committed results were measured elsewhere)."""
    return Path(step.outputs[0]).parent / f".{step.name}.done.json" if step.outputs else None


def mark_finished(step: Step, executed: Path | None = None) -> Path | None:
    """Write ``step``'s stamp (after its notebook ran to its end); None without outputs."""
    marker = finished_marker(step)
    if marker is not None:
        atomic_write_json(marker, {"step": step.name, "notebook": str(step.source),
                                   "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                   "executed": str(executed) if executed else None,
                                   "outputs": [str(p) for p in step.outputs]})
    return marker


def notebook_finished(executed: Path) -> bool:
    """Whether the executed notebook ``executed`` ran to its end without an exception (papermill
    records ``end_time`` and ``exception`` in the notebook's metadata when it finishes)."""
    try:
        meta = json.loads(executed.read_text(encoding="utf-8")).get("metadata", {}).get("papermill", {})
    except (OSError, ValueError, AttributeError):
        return False
    return bool(meta.get("end_time")) and not meta.get("exception")


def freshness(step: Step, run_dir: Path | None = None) -> tuple[bool, str]:
    """Whether ``step`` is up to date, and why: ``(True, ...)`` when all its outputs exist, none is
    older than its notebook or any of its inputs, and its last run finished here (its
    :func:`finished_marker` exists; ``run_dir`` holds the executed notebooks, which only explain why not)."""
    if step.always:
        return False, "always runs"
    if not step.outputs:
        return False, "declares no outputs"
    out_times = [_mtime(p) for p in step.outputs]
    missing = [p for p, t in zip(step.outputs, out_times) if t is None]
    if missing:
        return False, f"{show_path(missing[0])} does not exist"
    oldest_out = min(t for t in out_times if t is not None)
    newer = [p for p in [Path(step.source), *step.inputs] if (_mtime(p) or 0) > oldest_out]
    if newer:
        return False, f"{show_path(newer[0])} is newer than its outputs"
    marker = finished_marker(step)
    if marker is None or not marker.is_file():
        if run_dir is not None and notebook_finished(Path(run_dir) / f"{step.name}.ipynb"):
            return False, "no finished run on this machine (the outputs came with the repository or an older tin-kit)"
        return False, "its last run did not finish"
    return True, "outputs are newer than the inputs"


def kernel_name() -> str:
    """The project kernel when registered (``make setup``), else this interpreter's ``python3``."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        specs = KernelSpecManager().find_kernel_specs()
    except Exception:  # pragma: no cover - jupyter_client always comes with papermill
        specs = {}
    return KERNEL if KERNEL in specs else "python3"


def execute_notebook(source: Path, output: Path, parameters: dict[str, Any], *, cwd: Path | None = None,
                     log_output: bool = False) -> None:
    """Run the notebook ``source`` with papermill in ``cwd`` (default: this process's), saving the
    executed copy to ``output``. With ``log_output`` the notebook's output is echoed while it runs;
    otherwise only its stderr (tinlib's log lines), a line at a time after the step's name.

    Raises:
        StepFailed: a cell failed; the message names the executed notebook with the traceback."""
    import papermill as pm

    from tinlib.pipeline.launch import ConsoleEcho

    output.parent.mkdir(parents=True, exist_ok=True)
    echo = None if log_output else ConsoleEcho(prefix=f"{output.stem}: ")
    try:
        pm.execute_notebook(str(source), str(output), parameters=parameters, kernel_name=kernel_name(),
                            cwd=str(cwd or Path.cwd()), progress_bar=False, log_output=log_output,
                            stderr_file=echo, request_save_on_cell_execute=True,
                            # keep the kernel's start-up warnings out of the make output
                            extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    except pm.PapermillExecutionError as err:
        raise StepFailed(f"{Path(source).name} failed in cell {err.exec_count}: {err.ename}: {err.evalue}\n"
                         f"  the executed notebook with the traceback: {show_path(output)}") from None
    finally:
        if echo is not None:
            echo.close()


def _run_one(step: Step, label: str, run_dir: Path, force: bool, log_output: bool, cwd: Path | None) -> dict:
    fresh, why = freshness(step, run_dir)
    if fresh and not force:
        log.info(f"{label}: up to date, skipped ({why})")
        return {"step": step.name, "skipped": True, "seconds": 0.0}
    log.info(f"{label}: running {show_path(step.source)} ({why})")
    t0 = time.time()
    executed = run_dir / f"{step.name}.ipynb"
    # from here until the notebook has finished, the step counts as not done (killed, failed, ...)
    marker = finished_marker(step)
    if marker is not None:
        marker.unlink(missing_ok=True)
    executed.unlink(missing_ok=True)
    execute_notebook(Path(step.source), executed, step.parameters, cwd=cwd, log_output=log_output)
    missing = [p for p in step.outputs if not p.exists()]
    if missing:
        raise StepFailed(f"{step.name}: the notebook ran but did not write {', '.join(map(show_path, missing))}")
    mark_finished(step, executed)
    seconds = time.time() - t0
    log.info(f"{label}: done in {seconds:.0f} s -> {show_path(executed)}")
    return {"step": step.name, "skipped": False, "seconds": round(seconds, 1)}


def run_steps(steps: Sequence[Step], run_dir: Path, *, force: bool = False, log_output: bool = False,
              cwd: Path | None = None) -> list[dict[str, Any]]:
    """Run ``steps`` in order, skipping the up-to-date ones (none with ``force``), the executed notebooks
    saved in ``run_dir``; consecutive steps of one ``group`` run side by side. Returns one ``{"step",
    "skipped", "seconds"}`` per step.

    Raises:
        StepFailed: at the first failure (after the rest of its group), naming every failed step."""
    done: list[dict[str, Any]] = []
    for _, group in itertools.groupby(steps, key=lambda s: s.group or id(s)):  # a step without a group: alone
        calls = [functools.partial(_run_one, s, f"[{len(done) + k + 1}/{len(steps)}] {s.name}", run_dir, force,
                                   log_output, cwd) for k, s in enumerate(group)]
        done += [calls[0]()] if len(calls) == 1 else run_side_by_side(calls, failure=StepFailed)
    return done


def run_side_by_side(work: Sequence[Callable[[], T]], *, failure: type[Exception], workers: int | None = None,
                     on_done: Callable[[T | None], object] | None = None) -> list[T]:
    """Run the callables of ``work`` in threads (``workers`` at a time, default all); their results in order.

    A ``failure`` raised by one does not stop the others: once all have finished, the failures are
    raised together as one ``failure`` (their messages apart by a blank line). ``on_done`` is
    called after each, in order, with its result (None when it failed).
    """
    from concurrent.futures import ThreadPoolExecutor

    results: list[T] = []
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=workers or max(1, len(work))) as pool:
        for future in [pool.submit(call) for call in work]:
            result = None
            try:
                result = future.result()
                results.append(result)
            except failure as err:
                errors.append(str(err))
            if on_done is not None:
                on_done(result)
    if errors:
        raise failure("\n\n".join(errors))
    return results


def build_report(results: Path, run: str, steps: Sequence[Step] | None = None,
                 title: str | None = None) -> Path | None:
    """Render the executed notebooks of run ``run`` (``<results>/runs/<run>/``) to
    ``<results>/reports/<run>.html``, in the order and with the titles of its ``steps`` (default: file
    order, no titles) under ``title`` (default ``tin-kit: <run>``); None when there is no notebook."""
    from tinlib.report.html import build_run_report

    run_dir = results / "runs" / run
    if not run_dir.is_dir():
        return None
    order = [s.name for s in steps] if steps else None
    titles = {s.name: s.title for s in steps} if steps else {}
    out = results / "reports" / f"{run}.html"
    return build_run_report(run_dir, out, title=title or f"tin-kit: {run}", order=order, titles=titles,
                            results_dir=results)
