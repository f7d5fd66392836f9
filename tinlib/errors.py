"""The one base class for problems the user can fix (bad input, missing files, wrong settings). The
command lines print one as a single line (what is wrong, what to do) and exit with ``exit_code``;
any other exception is a bug and keeps its traceback."""
from __future__ import annotations


class UserError(RuntimeError):
    """A problem with the user's input, found by a check; ``str(err)`` names the file or sample
    and what to do. ``exit_code`` is the process exit status a command returns for it."""

    exit_code: int = 2


def one_line(obj: object) -> str:
    """``str(obj)`` with its line breaks and runs of white space folded into single spaces."""
    return " ".join(str(obj).split())
