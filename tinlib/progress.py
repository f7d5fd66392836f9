"""Progress of long loops: a tqdm bar on a terminal, else a log line every 30 s and one at the end
(without a terminal, in make, a cluster job or a log file, a bar would fill the log with carriage
returns)."""
from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Sized
from time import monotonic
from typing import IO, Any

from tqdm import tqdm

INTERVAL_S = 30.0
log = logging.getLogger(__name__)


class LogProgress:
    """A loop's progress as INFO lines ``"<desc>: <done>/<total> <unit>"``: one when it starts, then
    at most one every :data:`INTERVAL_S` seconds, and one with the time taken when it is closed. Used
    like a tqdm bar: iterate over it, or call :meth:`update` and :meth:`close` (or ``with``)."""

    def __init__(self, iterable: Iterable[Any] | None, total: int | None, desc: str, unit: str):
        self.iterable: Iterable[Any] = () if iterable is None else iterable
        self.total, self.desc, self.unit = total, desc, unit
        self.n = 0
        self.closed = False
        self._start = self._last = monotonic()
        self._log()

    def _log(self, suffix: str = "") -> None:
        of_total = "" if self.total is None else f"/{self.total}"
        log.info(f"{self.desc}: {self.n}{of_total} {self.unit}{suffix}")

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items done."""
        self.n += n
        now = monotonic()
        if now - self._last >= INTERVAL_S and self.n != self.total:  # the last count is closing's line
            self._last = now
            self._log()

    def close(self) -> None:
        """Log the final count and the time taken (once)."""
        if not self.closed:
            self.closed = True
            self._log(f" in {monotonic() - self._start:.1f} s")

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str, unit: str = "items",
          enabled: bool = True, file: IO[str] | None = None) -> tqdm | LogProgress:
    """Show the progress of a loop: a tqdm bar when ``file`` (default stderr) is a terminal, else a
    :class:`LogProgress`, used the same way (iterate, or call ``update(n)`` and ``close()``).
    ``desc``: what the loop does (``"extracting frames into out/"``); ``unit``: what an item is,
    plural; ``enabled=False`` shows nothing at all."""
    if total is None and isinstance(iterable, Sized):
        total = len(iterable)
    stream = sys.stderr if file is None else file
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if stream.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True)
    return LogProgress(iterable, total, desc, unit)
