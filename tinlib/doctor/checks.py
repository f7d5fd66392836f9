"""One row of the doctor's verdict table, and running a check so that a crash becomes a failed row."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, SKIPPED = "pass", "fail", "skipped"
RESULTS = (PASS, FAIL, SKIPPED)
NOT_APPLICABLE = "-"  # the dtype column of checks without one


@dataclass
class Check:
    """The verdict of one check.

    group: what part of the system it covers ("device", "op", "bandwidth", "train", "decode").
    name: the check, as the table shows it (e.g. "interlace forward [reference]").
    device: "cpu", "cuda:0", ... or "cuda" for GPU checks when no device is visible.
    dtype: the floating-point type checked, or "-".
    result: one of RESULTS. detail: the numbers behind a pass, what failed and why, or why
    the check was skipped. data: the same numbers for ``--json`` (errors, tolerances, GB/s...).
    """

    group: str
    name: str
    device: str
    dtype: str
    result: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.result not in RESULTS:
            raise ValueError(f"check {self.name!r}: result must be one of {RESULTS}, got {self.result!r}")

    def to_dict(self) -> dict[str, Any]:
        """The check as a JSON-ready dict (``name``, ``result``, ``detail``, ``data``, ...)."""
        return asdict(self)


def describe_error(err: BaseException) -> str:
    """``"raised TypeName: first line of the message"``, for a detail column."""
    lines = str(err).strip().splitlines()
    return f"raised {type(err).__name__}: {lines[0] if lines else 'no message'}"


def guarded(group: str, name: str, device: str, dtype: str, run: Callable[[], list[Check]]) -> list[Check]:
    """``run()``, or one failed check naming the exception if it raised.

    A check that crashes is a finding, not a crash of the doctor: the table still comes out and
    the other checks still run. CUDA out-of-memory frees the cache before the next check.
    """
    try:
        return run()
    except Exception as err:  # noqa: BLE001 -- any error of the checked code is the check's result
        if type(err).__name__ == "OutOfMemoryError":
            import torch

            torch.cuda.empty_cache()
        return [Check(group, name, device, dtype, FAIL, describe_error(err))]
