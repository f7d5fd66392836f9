"""``tinlib test CONFIG CHECKPOINT``: top-1/top-5/mean class accuracy of a checkpoint (multi-view testing)."""
from __future__ import annotations

import argparse
from pathlib import Path

from tinlib.cli import command_main
from tinlib.commands import add_device_argument, add_override_arguments, non_negative_int, overrides_of, positive_int

PROG = "tinlib test"


def build_parser() -> argparse.ArgumentParser:
    from tinlib.config import available_configs

    p = argparse.ArgumentParser(prog=PROG, description="Evaluate a checkpoint: top-1, top-5 and mean "
                                "class accuracy (MMAction2 definitions); writes results/<run>/metrics.json.",
                                epilog="configs: " + ", ".join(available_configs()))
    p.add_argument("config", help="config name (see tinlib/configs) or path to a .py/.json config")
    p.add_argument("checkpoint", help="checkpoint file (tinlib, MMAction2 0.x/1.x or original TIN layout)")
    add_override_arguments(p, "test.num_clips=2 test.average_clips=prob", checkpoint=True)
    p.add_argument("--split", choices=("val", "test"), default="test",
                   help="which annotation list to evaluate on: data.test_ann (default) or data.val_ann")
    p.add_argument("--run", help="results sub-folder name (default: the config name)")
    p.add_argument("--results-dir", help="results root (default: the config's results_dir, 'results')")
    add_device_argument(p)
    p.add_argument("--batch-size", type=positive_int, help="videos per process (default data.test_videos_per_gpu)")
    p.add_argument("--workers", type=non_negative_int, help="loader workers per process (default data.workers_per_gpu)")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), help="autocast dtype for inference")
    p.add_argument("--overwrite", action="store_true", help="replace results of another run in the output folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _run(args: argparse.Namespace) -> int:
    from tinlib.config import load_config
    from tinlib.engine import dist
    from tinlib.engine.evaluate import evaluate
    from tinlib.hub import resolve_checkpoint
    from tinlib.io import check_output_dir

    try:
        cfg = load_config(args.config, overrides_of(args))
        check_output_dir(Path(args.results_dir or cfg.results_dir) / (args.run or cfg.name), "results folder")
        checkpoint = resolve_checkpoint(args.checkpoint)  # a path, an http(s) URL or published:<config>
        evaluate(cfg, checkpoint, split=args.split, run=args.run, results_dir=args.results_dir,
                 device=args.device, batch_size=args.batch_size, num_workers=args.workers, amp=args.amp,
                 overwrite=args.overwrite, trusted=args.trust_checkpoint, progress=not args.no_progress)
    finally:
        dist.cleanup()
    return 0


main = command_main(PROG, build_parser, _run)
