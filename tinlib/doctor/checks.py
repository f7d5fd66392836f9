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
    """The verdict of one check."""

    group: str  # "device", "op", "bandwidth", "train" or "decode"
    name: str  # as the table shows it, e.g. "interlace forward [reference]"
    device: str  # "cpu", "cuda:0", ... or "cuda" for GPU checks when no device is visible
    dtype: str  # the floating-point type checked, or NOT_APPLICABLE
    result: str  # one of RESULTS
    detail: str  # the numbers behind a pass, what failed and why, or why the check was skipped
    data: dict[str, Any] = field(default_factory=dict)  # the same numbers for --json

    def __post_init__(self) -> None:
        if self.result not in RESULTS:
            raise ValueError(f"check {self.name!r}: result must be one of {RESULTS}, got {self.result!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_error(err: BaseException) -> str:
    """``"raised TypeName: first line of the message"``, for a detail column."""
    lines = str(err).strip().splitlines()
    return f"raised {type(err).__name__}: {lines[0] if lines else 'no message'}"


def guarded(group: str, name: str, device: str, dtype: str, run: Callable[[], list[Check]]) -> list[Check]:
    """``run()``, or one failed check naming the exception if it raised: a check that crashes is a
    finding, not a crash of the doctor. CUDA out-of-memory frees the cache before the next check."""
    try:
        return run()
    except Exception as err:  # noqa: BLE001 -- any error of the checked code is the check's result
        if type(err).__name__ == "OutOfMemoryError":
            import torch

            torch.cuda.empty_cache()
        return [Check(group, name, device, dtype, FAIL, describe_error(err))]
