"""``tinlib latency [CONFIG]``: inference latency, FLOPs and parameters of TIN, TSM and TSN side by side."""
from __future__ import annotations

import argparse

from tinlib.cli import command_main
from tinlib.commands import add_override_arguments, non_negative_int, overrides_of, positive_int

PROG = "tinlib latency"
DEFAULT_CONFIG = "tin_r50_1x1x8_40e_sthv1_rgb"
DEFAULT_ARCHS = "tin_r50,tsm_r50,tsn_r50"  # an example; without --archs the config's depth is used


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Inference latency per video (MMAction2's "
                                "method), FLOPs, parameters and training GPU memory of TIN, TSM and TSN side by side.")
    p.add_argument("config", nargs="?", default=DEFAULT_CONFIG,
                   help=f"config for the test setting (default {DEFAULT_CONFIG})")
    p.add_argument("--archs", help="comma-separated archs (default: TIN, TSM and TSN at the config's depth, "
                                   "e.g. tin_r50,tsm_r50,tsn_r50)")
    add_override_arguments(p, "data.input_size=256", checkpoint=False)
    p.add_argument("--devices", default="cpu,cuda",
                   help="where to time, comma-separated (default cpu,cuda; cuda is skipped when absent)")
    p.add_argument("--warmup", type=non_negative_int, default=5, help="untimed iterations before timing (default 5)")
    p.add_argument("--iters", type=positive_int,
                   help="timed iterations on every device (default: 20 on CPU, 200 on CUDA)")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.add_argument("--no-train-memory", action="store_true", help="skip the CUDA training-memory measurement")
    p.add_argument("--out", default="results/latency.json",
                   help="the latency record to write (default results/latency.json; make latency writes "
                        "results/<config>/latency.json)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _run(args: argparse.Namespace) -> int:
    import logging

    from tinlib.config import load_config
    from tinlib.engine.latency import benchmark, check_archs, format_table, parse_devices, write_latency
    from tinlib.engine.torch_settings import torch_settings
    from tinlib.errors import UserError
    from tinlib.io import check_output_file
    from tinlib.models import parse_arch

    check_output_file(args.out, "--out")
    cfg = load_config(args.config, overrides_of(args))
    if args.archs is None:
        _, depth = parse_arch(cfg.model.arch)
        archs = [f"{kind}_r{depth}" for kind in ("tin", "tsm", "tsn")]
    else:
        archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    if not archs:
        raise UserError(f"--archs: name at least one arch, e.g. --archs {DEFAULT_ARCHS}")
    for arch in archs:
        try:
            parse_arch(arch)
        except ValueError as err:
            raise UserError(f"--archs: {err}") from None
    check_archs(cfg, archs)  # before any work
    devices = parse_devices(args.devices)
    with torch_settings(threads=args.threads):
        result = benchmark(cfg, archs, devices=devices, warmup=args.warmup,
                           iters_cpu=args.iters or 20, iters_cuda=args.iters or 200,
                           train_memory=not args.no_train_memory, progress=not args.quiet)
    out = write_latency(result, args.out)
    print(format_table(result), flush=True)
    logging.getLogger(__name__).info("wrote %s", out)
    return 0


main = command_main(PROG, build_parser, _run)
