"""The doctor's report as text (environment, tolerances, verdict table, summary) or JSON."""
from __future__ import annotations

import json
import math
from typing import Any

from tinlib.doctor import blockcheck
from tinlib.doctor.bandwidth import peak_bandwidth
from tinlib.doctor.checks import FAIL, PASS, SKIPPED, Check
from tinlib.doctor.runner import DoctorReport, tolerances_dict

_BUILD_PARTS = ("CUDA", "cuDNN", "NCCL")  # None means "torch was built without it"
COLUMNS = ("check", "device", "dtype", "result", "detail")


def _version_text(versions: dict[str, str | None]) -> str:
    parts = []
    for name, version in versions.items():
        missing = "none" if name in _BUILD_PARTS else "not installed"
        parts.append(f"{name} {version or missing}")
    return ", ".join(parts)


def _cpu_text(cpu: dict[str, Any]) -> str:
    ram = "RAM unknown" if cpu["ram_gib"] is None else f"RAM {cpu['ram_gib']} GiB"
    if cpu.get("ram_available_gib") is not None:
        ram += f" ({cpu['ram_available_gib']} GiB available)"
    return (f"{cpu['model']}, {cpu['cores']} logical cores ({cpu['usable_cores']} usable, torch uses "
            f"{cpu['torch_threads']} threads), {cpu['isa']}, native bfloat16 {'yes' if cpu['bf16_native'] else 'no'}, "
            f"{ram}")


def _gpu_text(gpu: dict[str, Any]) -> str:
    free = "" if gpu["memory_free_gib"] is None else f" ({gpu['memory_free_gib']} GiB free)"
    peak = peak_bandwidth(gpu["name"], gpu["memory_bytes"])
    peak_text = f"peak {peak.gb_per_s:g} GB/s ({peak.source})" if peak else "peak bandwidth not in the table"
    return (f"{gpu['name']}, compute capability {gpu['capability']}, {gpu['multiprocessors']} SMs, "
            f"{gpu['memory_gib']} GiB{free}, {peak_text}")


def format_table(checks: list[Check]) -> str:
    """A plain-text table, one row per check: check, device, dtype, result, detail."""
    rows = [COLUMNS] + [(c.name, c.device, c.dtype, c.result.upper() if c.result == FAIL else c.result, c.detail)
                        for c in checks]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
        if index == 0:
            lines.append("  ".join("-" * width for width in widths) + "  " + "-" * len(COLUMNS[-1]))
    return "\n".join(line.rstrip() for line in lines)


def format_text(report: DoctorReport) -> str:
    """The whole report for a terminal or a log."""
    lines = ["tinlib doctor" + (" --quick" if report.quick else "") + f" (devices: {report.device})", "",
             f"versions: {_version_text(report.versions)}",
             f"cpu: {_cpu_text(report.cpu)}"]
    lines += [f"{gpu['device']}: {_gpu_text(gpu)}" for gpu in report.gpus] or ["gpu: none visible"]
    tolerance = ", ".join(f"{name} {t['values']:.1e} / {t['sums']:.1e}" for name, t in tolerances_dict().items())
    values, params = blockcheck.TOLERANCE
    lines += ["", ("op tolerances, max |op - float64 composite| / max |composite| (values: out, grad_x / sums: "
                   f"grad_offset, grad_weight): {tolerance}"),
              ("fused TIN module tolerances, max |fused - float64 composed steps| / max |composed| (values: y, "
               f"grad_x / params: the nets' parameter gradients): float32 {values:.1e} / {params:.1e}"),
              "", format_table(report.checks), ""]
    counts = report.counts()
    lines.append(f"summary: {counts[PASS]} pass, {counts[FAIL]} fail, {counts[SKIPPED]} skipped in "
                 f"{report.seconds:.1f} s")
    for check in report.failed:
        dtype = "" if check.dtype == "-" else f" {check.dtype}"
        lines.append(f"FAILED: {check.name} on {check.device}{dtype}: {check.detail}")
    return "\n".join(lines)


def _strict(value: Any) -> Any:
    """``value`` with inf/nan floats as the strings "inf"/"nan" (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    return value


def format_json(report: DoctorReport) -> str:
    """The report as strict JSON: environment, tolerances, ``checks`` (a list of objects with
    group, name, device, dtype, result, detail, data), ``summary`` counts and ``exit_status``."""
    return json.dumps(_strict(report.to_dict()), indent=2, default=str, allow_nan=False)
