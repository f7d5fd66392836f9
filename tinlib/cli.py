"""``tinlib COMMAND ...``: dispatch to the command's module under ``tinlib.commands`` (its
``main(argv) -> int``), importing only that one, so ``tinlib --help`` stays fast; and
:func:`command_main`, the ``main`` every command shares."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

DEBUG_ENV = "TINLIB_DEBUG"
BROKEN_PIPE_STATUS = 141  # what a shell reports for a program ended by SIGPIPE (128 + 13)

# command -> (module, one-line help); the module has main(argv) -> int
COMMANDS = {
    "prepare": ("tinlib.commands.prepare", "build annotation lists / extract frames from official files"),
    "fetch": ("tinlib.commands.fetch", "download published checkpoints/logs into torch's hub cache"),
    "train": ("tinlib.commands.train", "train a config (single process or under torchrun)"),
    "submit": ("tinlib.commands.submit", "write a config's sbatch script (srun train + test) and submit it"),
    "test": ("tinlib.commands.test", "evaluate a checkpoint: top-1/top-5/mean class accuracy"),
    "predict": ("tinlib.commands.predict", "top-k classes of single videos (and a per-window timeline)"),
    "latency": ("tinlib.commands.latency", "inference latency, FLOPs and parameters"),
    "zoo": ("tinlib.commands.zoo", "rewrite results/model_zoo.md from results/"),
    "export": ("tinlib.commands.export", "export a recognizer to ONNX"),
    "doctor": ("tinlib.commands.doctor", "check versions, devices, the interlace op, training steps, decoders"),
}


def debug_requested(args: argparse.Namespace) -> bool:
    """True when ``args`` has ``--debug`` set or ``TINLIB_DEBUG`` is a non-empty value other than 0."""
    return getattr(args, "debug", False) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def run_command(prog: str, parser: argparse.ArgumentParser, action: Callable[[argparse.Namespace], int | None],
                argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with ``parser``, run ``action(args)`` and return the exit status: for a
    :class:`~tinlib.errors.UserError` ``err.exit_code`` after ``"<prog>: error: <message>"`` on stderr
    (and the traceback with ``--debug``); 130 after ``"<prog>: interrupted"`` for Ctrl-C."""
    from tinlib.errors import UserError
    from tinlib.logs import setup_logging

    parser.add_argument("--debug", action="store_true",
                        help=f"show the full traceback of an error (or set {DEBUG_ENV}=1)")
    args = parser.parse_args(None if argv is None else list(argv))
    setup_logging(logging.DEBUG if debug_requested(args) else logging.INFO)
    try:
        return int(action(args) or 0)
    except UserError as err:
        if debug_requested(args):
            logging.getLogger("tinlib").exception("traceback (--debug):")
        print(f"{prog}: error: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        return 130


def command_main(prog: str, build_parser: Callable[[], argparse.ArgumentParser],
                 action: Callable[[argparse.Namespace], int | None]) -> Callable[[Sequence[str] | None], int]:
    """A command module's ``main(argv=None) -> int`` (``argv`` default: the process's arguments):
    :func:`run_command` with a fresh parser from ``build_parser``."""

    def main(argv: Sequence[str] | None = None) -> int:
        return run_command(prog, build_parser(), action, argv)

    return main


def _usage() -> str:
    lines = ["usage: tinlib COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'tinlib COMMAND --help' for the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``tinlib COMMAND ...`` (``argv``, default ``sys.argv[1:]``): the command's exit status; 0 after
    printing the usage for no arguments or ``--help``, 2 for an unknown command name, 141 when the
    reader of stdout went away (a closed pipe)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"tinlib: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, _ = COMMANDS[name]
    module = importlib.import_module(module_name)
    try:
        return int(module.main(rest) or 0)
    except BrokenPipeError:
        # stdout went to a reader that stopped early (`tinlib fetch --list | head -1`): no traceback;
        # later writes, including the interpreter's last flush, go nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_STATUS


if __name__ == "__main__":
    sys.exit(main())
