"""Command line: ``tinlib prepare|train|test|latency|zoo|export ...``.

Each subcommand lives in the module that does the work; this file only dispatches, so that
``tinlib --help`` stays fast (no torch import) and ``torchrun -m tinlib train ...`` works.
"""
from __future__ import annotations

import importlib
import sys

# subcommand -> (module, function taking argv, one-line help)
COMMANDS = {
    "prepare": ("tinlib.data.prepare", "main", "build annotation lists / extract frames from official files"),
    "train": ("tinlib.engine.train", "main", "train a config (single process or under torchrun)"),
    "test": ("tinlib.engine.evaluate", "main", "evaluate a checkpoint: top-1/top-5/mean class accuracy"),
    "latency": ("tinlib.engine.latency", "main", "inference latency, FLOPs and parameters"),
    "zoo": ("tinlib.report.zoo", "main", "rewrite results/model_zoo.md from results/"),
    "export": ("tinlib.export", "main", "export a recognizer to ONNX"),
}


def _usage() -> str:
    lines = ["usage: tinlib COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "Run 'tinlib COMMAND --help' for the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"tinlib: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        print(f"tinlib {name}: not available in this version of tin-kit ({module_name} is missing)", file=sys.stderr)
        return 2
    return int(getattr(module, func_name)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
