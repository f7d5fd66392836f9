"""Which checks run where, in what order, with a progress line per group of checks."""
from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from tinlib.doctor import bandwidth, blockcheck, decoders, environment, opcheck, train_step
from tinlib.doctor.checks import FAIL, NOT_APPLICABLE, PASS, RESULTS, SKIPPED, Check, describe_error, guarded

logger = logging.getLogger(__name__)

DEVICE_CHOICES = ("cpu", "cuda", "all")


@dataclass
class DoctorReport:
    """Everything the doctor found: the environment and the verdict of every check."""

    device: str
    quick: bool
    versions: dict[str, str | None]
    cpu: dict[str, Any]
    gpus: list[dict[str, Any]]
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if check.result == FAIL]

    @property
    def exit_status(self) -> int:
        return 1 if self.failed else 0

    def counts(self) -> dict[str, int]:
        return {result: sum(check.result == result for check in self.checks) for result in RESULTS}

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: environment, tolerances, every check and the summary."""
        block_tolerances = {opcheck.dtype_name(blockcheck.DTYPE): dict(zip(("values", "params"), blockcheck.TOLERANCE))}
        return {"device": self.device, "quick": self.quick, "versions": self.versions, "cpu": self.cpu,
                "gpus": self.gpus, "tolerances": tolerances_dict(), "block_tolerances": block_tolerances,
                "checks": [c.to_dict() for c in self.checks], "summary": self.counts(),
                "seconds": round(self.seconds, 2), "exit_status": self.exit_status}


def tolerances_dict() -> dict[str, dict[str, float]]:
    """The op tolerances by dtype name: ``{"float16": {"values": 1e-3, "sums": 2e-3}, ...}``."""
    return {opcheck.dtype_name(dtype): {"values": values, "sums": sums}
            for dtype, (values, sums) in opcheck.TOLERANCE.items()}


def _device_context(device: torch.device):
    # Triton launches on the current CUDA device's stream: make the checked device current
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _op_checks(device: torch.device, progress: Callable[[str], None]) -> list[Check]:
    videos = opcheck.GPU_VIDEOS if device.type == "cuda" else opcheck.CPU_VIDEOS
    dtypes = "/".join(opcheck.dtype_name(d) for d in opcheck.OP_DTYPES)
    checks: list[Check] = []
    for backend, skip in opcheck.backends_for(device):
        progress(f"interlace op on {device} [{backend}]: {dtypes}, {len(opcheck.STAGE_SHAPES)} stage shapes x "
                 f"{'/'.join(map(str, videos))} video(s), forward and backward vs float64")
        for dtype in opcheck.OP_DTYPES:
            checks += guarded("op", f"interlace forward/backward [{backend}]", str(device), opcheck.dtype_name(dtype),
                              functools.partial(opcheck.check_interlace, device, backend, dtype, videos, skip))
    return checks


def _block_checks(quick: bool, progress: Callable[[str], None]) -> list[Check]:
    modes = blockcheck.GRAD_MODES_QUICK if quick else blockcheck.GRAD_MODES_FULL
    progress(f"TIN module as one op on cpu [fused]: float32, {len(blockcheck.BLOCK_SHAPES)} stage inputs, grad "
             f"{'/'.join(modes)}, forward and backward vs the composed steps in float64")
    return guarded("op", "TIN module forward/backward [fused]", "cpu", opcheck.dtype_name(blockcheck.DTYPE),
                   functools.partial(blockcheck.check_tin_block, modes))


def _bandwidth_checks(device: torch.device, gpu: dict[str, Any], progress: Callable[[str], None]) -> list[Check]:
    peak = bandwidth.peak_bandwidth(gpu["name"], gpu["memory_bytes"])
    checks: list[Check] = []
    for backend, skip in opcheck.backends_for(device):
        progress(f"interlace bandwidth on {device} [{backend}]: {list(bandwidth.BANDWIDTH_SHAPE)}, CUDA events")
        for dtype in opcheck.OP_DTYPES:
            checks += guarded("bandwidth", f"interlace bandwidth [{backend}]", str(device), opcheck.dtype_name(dtype),
                              functools.partial(bandwidth.check_bandwidth, device, backend, dtype, skip, peak,
                                                gpu["name"]))
    return checks


def _train_checks(device: torch.device, quick: bool, progress: Callable[[str], None]) -> list[Check]:
    modes = (True,) if quick else (False, True)
    iterations = 1 if quick else train_step.ITERATIONS
    checks: list[Check] = []
    for amp in modes:
        name = f"train step [{'amp' if amp else 'fp32'}]"
        progress(f"{name} on {device}: {train_step.ARCH}, {iterations} iteration(s)")
        checks += guarded("train", name, str(device), "-",
                          functools.partial(train_step.check_train_step, device, amp, iterations))
    return checks


def _skipped_gpu_checks(reason: str, quick: bool) -> list[Check]:
    rows = [("op", "interlace forward/backward")]
    if not quick:
        rows += [("bandwidth", "interlace bandwidth"), ("train", "train step [fp32]")]
    rows += [("train", "train step [amp]")]
    return [Check(group, name, "cuda", NOT_APPLICABLE, SKIPPED, reason) for group, name in rows]


def run_doctor(device: str = "all", quick: bool = False,
               progress: Callable[[str], None] | None = None) -> DoctorReport:
    """Check the devices selected by ``device`` ("cpu", "cuda": every visible GPU, "all": both).

    Full run: the interlace op (each backend, float32/float16/bfloat16, forward and backward,
    at TIN-R50's stage shapes) on each device, TIN's temporal module as one fused op on the CPU
    (float32, both data-gradient modes), the op's memory bandwidth on each GPU, TIN-R50 training
    steps in float32 and with AMP, and the data decoders (with "cpu" or "all"). ``quick`` (what
    runs before training): the op checks (the fused module in the adjoint mode only) and one AMP
    training step. ``progress(line)`` is called before each group of checks (default: log at INFO).
    """
    if device not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {DEVICE_CHOICES}, got {device!r}")
    say = progress or logger.info
    start = time.perf_counter()
    say("doctor: versions and devices")
    gpus: list[dict[str, Any]] = []
    gpu_error = None
    if device in ("cuda", "all") and torch.cuda.is_available():
        try:
            gpus = environment.gpu_info()
        except Exception as err:  # noqa: BLE001 -- a broken driver or GPU is a finding, not a crash
            gpu_error = Check("device", "CUDA devices", "cuda", NOT_APPLICABLE, FAIL,
                              f"cannot query the GPUs: {describe_error(err)}")
    report = DoctorReport(device, quick, environment.versions(), environment.cpu_info(), gpus)
    if gpu_error is not None:
        report.checks.append(gpu_error)
    targets: list[tuple[torch.device, dict[str, Any] | None]] = []
    if device in ("cpu", "all"):
        targets.append((torch.device("cpu"), None))
    if device in ("cuda", "all"):
        targets += [(torch.device(gpu["device"]), gpu) for gpu in gpus]
    for target, gpu in targets:
        with _device_context(target):
            report.checks += _op_checks(target, say)
            if target.type == "cpu":  # the fused module runs on the CPU only
                report.checks += _block_checks(quick, say)
            if gpu is not None and not quick:
                report.checks += _bandwidth_checks(target, gpu, say)
            report.checks += _train_checks(target, quick, say)
        if target.type == "cpu" and not quick:  # decoding runs on the CPU whatever device trains
            say("data decoders: torchcodec, decord, PyAV (mp4, webm), OpenCV (JPEG) on frames written to a temp folder")
            report.checks += guarded("decode", "decoders", "cpu", NOT_APPLICABLE, decoders.check_decoders)
    if device in ("cuda", "all") and not gpus and gpu_error is None:
        if device == "cuda":
            report.checks.append(Check("device", "CUDA device", "cuda", NOT_APPLICABLE, FAIL,
                                       f"{environment.no_cuda_reason()}; --device cuda asks for GPU checks"))
        else:
            report.checks += _skipped_gpu_checks(environment.no_cuda_reason(), quick)
    report.seconds = time.perf_counter() - start
    counts = report.counts()
    say(f"doctor: {counts[PASS]} pass, {counts[FAIL]} fail, {counts[SKIPPED]} skipped in {report.seconds:.1f} s")
    return report
