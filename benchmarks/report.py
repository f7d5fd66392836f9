"""Write one benchmark's section into results/benchmarks.md, keeping the other sections.

Each benchmark script owns a section delimited by HTML comments; rerunning a script replaces
only its own section. Figures are ratios from one run on a shared, noisy machine.
"""
from __future__ import annotations

import platform
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tinlib.io import atomic_write_text  # noqa: E402

REPORT = ROOT / "results" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Ratios from single runs on a shared machine. Each section names the machine, package versions\n"
    "and load it was measured with, and the command that rewrites it (scripts in benchmarks/).\n"
)


def machine_line() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"_Measured {stamp} on {cpu}, {torch.get_num_threads()} torch threads, {device}; "
            f"Python {platform.python_version()}, torch {torch.__version__}._")


def load_and_command(script: str, argv: list[str] | None, load_before: float, load_after: float) -> list[str]:
    """The closing lines of a section: the load average around the run and the command that
    rewrites the section (``argv``: the script's arguments, None for ``sys.argv``)."""
    import os

    args = " ".join(sys.argv[1:] if argv is None else argv)
    return [f"Load average (1 min) {load_before:.1f} before and {load_after:.1f} after the run, on "
            f"{os.cpu_count()} cores.", "", f"Command: `python benchmarks/{script} {args}`"]


def write_section(name: str, markdown: str) -> Path:
    """Replace (or append) section ``name`` of results/benchmarks.md with ``markdown``."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{markdown.rstrip()}\n\n{machine_line()}\n{end}"
    text = REPORT.read_text() if REPORT.exists() else HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    return atomic_write_text(REPORT, text)
