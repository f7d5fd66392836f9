"""``tinlib train CONFIG``: train a config, in one process or one process per device under torchrun.
Exit status 0 when done; 75 after SIGTERM/SIGUSR1 and 130 after Ctrl-C, with a checkpoint at the
iteration where it stopped (see tinlib.engine.preemption); 2 for a bad input, 3 for a NaN loss."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from tinlib.cli import command_main
from tinlib.commands import add_device_argument, add_override_arguments, overrides_of

PROG = "tinlib train"


def build_parser() -> argparse.ArgumentParser:
    """The options of ``tinlib train`` (listing the configs needs no torch import)."""
    from tinlib.config import available_configs

    p = argparse.ArgumentParser(prog=PROG, description="Train a config; under torchrun one process per "
                                "device (DDP). Writes checkpoints and log.json to the work dir.",
                                epilog="configs: " + ", ".join(available_configs()) + ". Multi-GPU: torchrun "
                                "--nproc-per-node N -m tinlib train CONFIG (the lr follows the linear scaling rule).")
    p.add_argument("config", help="config name (see tinlib/configs) or path to a .py/.json config")
    p.add_argument("--work-dir", help="output folder (default work_dirs/<config name>)")
    add_override_arguments(p, "optim.lr=0.01 data.root=/data/sthv1", checkpoint=False)
    p.add_argument("--seed", type=int, help="random seed (default: train.seed, else drawn and recorded)")
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms, no cuDNN autotuning")
    p.add_argument("--resume", metavar="auto|PATH", help="continue from work_dir/latest.pth (auto) or a checkpoint")
    add_device_argument(p)
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), help="mixed precision (default train.amp)")
    p.add_argument("--sync-bn", action="store_true", default=None, help="synchronize BN statistics across processes")
    p.add_argument("--no-validate", action="store_true", help="skip the periodic validation")
    p.add_argument("--run", help="results sub-folder for train.json (default: the config name)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def continue_command(argv: list[str]) -> str:
    """The command line that continues a stopped run: ``tinlib`` ``argv`` (``["train", ...]`` as
    given) with ``--resume auto`` instead of any ``--resume``."""
    words: list[str] = []
    for word in argv:
        if words and words[-1] == "--resume":
            words.pop()
        elif not word.startswith("--resume="):
            words.append(word)
    return shlex.join(["tinlib", *words, "--resume", "auto"])


def _run(args: argparse.Namespace) -> int:
    from tinlib.config import load_config
    from tinlib.engine import dist
    from tinlib.engine import train as engine_train
    from tinlib.engine.errors import NonFiniteLossError
    from tinlib.engine.preemption import Preempted
    from tinlib.hub import resolve_checkpoint
    from tinlib.io import check_output_dir

    try:
        cfg = load_config(args.config, overrides_of(args))
        check_output_dir(args.work_dir or cfg.resolved_work_dir(), "work dir")
        check_output_dir(Path(cfg.results_dir) / (args.run or cfg.name), "results folder")
        resume = args.resume if args.resume in (None, "auto") else str(resolve_checkpoint(args.resume))
        engine_train.train(cfg, work_dir=args.work_dir, resume=resume, seed=args.seed,
                           deterministic=True if args.deterministic else None, device=args.device, amp=args.amp,
                           sync_bn=args.sync_bn, validate=not args.no_validate, run=args.run,
                           progress=not args.no_progress)
    except NonFiniteLossError as err:
        raise NonFiniteLossError(f"{err}. The last good checkpoint is kept in the work dir; lower the lr or "
                                 "check the data, then --resume auto.") from None
    except Preempted as err:
        if err.is_main:
            # the command as typed when it is this process's (python -m tinlib / the tinlib script)
            argv = sys.argv[1:] if sys.argv[1:2] == ["train"] else ["train", args.config, "..."]
            then = "the requeued job resumes by itself; or " if err.requeued else ""
            print(f"{PROG}: {err}; {then}continue with: {continue_command(argv)}", file=sys.stderr, flush=True)
        return err.exit_code
    finally:
        dist.cleanup()
    return 0


main = command_main(PROG, build_parser, _run)
