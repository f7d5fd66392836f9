"""One module per ``tinlib`` command: its ``build_parser()`` and ``main`` (:func:`tinlib.cli.command_main`);
the work itself lives in the library modules they call."""
from __future__ import annotations

import argparse

ARCH_MISMATCH_KEY = "model.allow_arch_mismatch"


def add_override_arguments(parser: argparse.ArgumentParser, example: str = "test.num_clips=2",
                           checkpoint: bool = False) -> None:
    """Add ``--set KEY=VALUE ...`` (any number, after one flag or several; ``example`` shows one in the
    help) to ``parser``; with ``checkpoint`` (commands that load one) also ``--trust-checkpoint`` and
    ``--allow-arch-mismatch``."""
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help=f"override config values, e.g. --set {example}")
    if checkpoint:
        parser.add_argument("--trust-checkpoint", action="store_true",
                            help="fully unpickle a checkpoint that holds arbitrary Python objects (only files you "
                                 "trust)")
        parser.add_argument("--allow-arch-mismatch", action="store_true",
                            help=f"load a checkpoint of another architecture than the config's (same as --set "
                                 f"{ARCH_MISMATCH_KEY}=true)")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda`` (default auto: a GPU when there is one)."""
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where to run: auto (a GPU when there is one, else the CPU), cpu or cuda (default auto)")


def overrides_of(args: argparse.Namespace) -> list[str]:
    """The ``--set`` values of ``args``, plus the one ``--allow-arch-mismatch`` stands for."""
    extra = [f"{ARCH_MISMATCH_KEY}=true"] if getattr(args, "allow_arch_mismatch", False) else []
    return list(args.overrides) + extra


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (a count that 0 would not make sense for)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer of at least 0."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_even_int(text: str) -> int:
    """argparse type: an even integer of at least 2 (a frame height that video encoders accept)."""
    value = positive_int(text)
    if value % 2:
        raise argparse.ArgumentTypeError(f"must be even, got {value}; e.g. {value - 1} or {value + 1}")
    return value
