"""``tinlib doctor``: check versions, devices, the interlace op, training steps and the decoders; a
verdict table (``--json``: one JSON object) on stdout. Exit status: 0 every check passed or was
skipped, 1 a check failed, 2 bad usage.
"""
from __future__ import annotations

import argparse

from tinlib.cli import command_main

DEVICE_CHOICES = ("cpu", "cuda", "all")  # tinlib.doctor.DEVICE_CHOICES, without importing torch for --help


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinlib doctor",
        description="Check this machine before a long run: package versions and devices; the interlace op "
                    "(each backend, float32/float16/bfloat16, forward and backward at TIN-R50's shapes) against "
                    "its float64 definition; its memory bandwidth on GPUs; TIN's temporal module as one fused op "
                    "on the CPU (what CPU training runs) against its composed steps in float64; TIN-R50 training "
                    "steps in float32 and mixed precision; the video and frame decoders.",
        epilog="Exit status: 0 all checks passed or were skipped, 1 a check failed, 2 bad usage.")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="all",
                        help="check the CPU, every visible GPU, or both (default: all; GPU checks are skipped "
                             "when there is no GPU, except with --device cuda, where that is a failure)")
    parser.add_argument("--quick", action="store_true",
                        help="only the op and fused-module checks and one mixed-precision training step (with --device "
                             "cuda: what make reproduce-* runs before training)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (a list of checks and the "
                                                            "environment) instead of the table")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the checks chosen by ``args`` and print the report; returns 0 when none failed, else 1."""
    from tinlib.doctor import run_doctor
    from tinlib.doctor.report import format_json, format_text

    report = run_doctor(args.device, quick=args.quick)
    print(format_json(report) if args.json else format_text(report), flush=True)
    return report.exit_status


main = command_main("tinlib doctor", build_parser, run)
