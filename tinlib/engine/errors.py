"""Errors of a run that the user can fix; the commands print them as one line (see tinlib.cli)."""
from __future__ import annotations

from tinlib.errors import UserError


class RunError(UserError):
    """A problem with the inputs or outputs of a run (data, checkpoint, work dir), found before the
    heavy work where possible; the message says what is wrong and what to do. Exit status 2."""


class NonFiniteLossError(UserError):
    """The loss (or the gradient norm) became NaN/inf: the run stops and the last checkpoint in the
    work dir stays as it was. Exit status 3, so scripts can tell it from a bad input."""

    exit_code = 3
