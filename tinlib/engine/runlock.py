"""One live run per folder: a lock file ``.lock`` in a work dir (or a results folder) holding the
pid, host, start time and a heartbeat that a background thread refreshes. A second run is refused
in one line naming the holder; a stale lock (its process gone on this host, or its heartbeat older
than :data:`STALE_AFTER_S`) is taken over with a warning."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from tinlib.engine.errors import RunError
from tinlib.io import atomic_write_text

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
HEARTBEAT_EVERY_S = 30.0
# a holder that has not refreshed its heartbeat for this long is taken for dead (a killed process on
# another host, a node that went down); hosts sharing a folder are assumed to keep their clocks in sync
STALE_AFTER_S = 300.0


class LockHeldError(RunError):
    """Another live process holds the folder's lock (exit status 2)."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _age_text(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (True when that cannot be told)."""
    if pid == os.getpid() or os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process, or cannot tell
    return True


@dataclass
class Holder:
    """What a lock file says: the holder's ``pid`` on ``host``, when it took the lock (``since``)
    and last proved alive (``heartbeat``), both ISO 8601 UTC; ``token`` tells two holders apart."""

    pid: int
    host: str
    since: str
    heartbeat: str
    token: str

    @classmethod
    def read(cls, path: Path) -> Holder | None:
        """The holder recorded in ``path``; None when there is no lock. A lock file that cannot be
        parsed (written by hand, damaged) reads as held by an unknown process since its mtime."""
        try:
            text = path.read_text(encoding="utf-8")
            mtime = _iso(datetime.fromtimestamp(path.stat().st_mtime, timezone.utc))
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
            return cls(int(data["pid"]), str(data["host"]), str(data["since"]), str(data["heartbeat"]),
                       str(data["token"]))
        except (ValueError, KeyError, TypeError):
            return cls(-1, "?", mtime, mtime, f"unreadable:{text!r}")

    def describe(self) -> str:
        """``pid 123@node01 (since ..., heartbeat 5 s ago)``."""
        if self.pid < 0:
            return f"an unreadable lock file (written {self.since})"
        age = (_now() - datetime.fromisoformat(self.heartbeat)).total_seconds()
        return f"pid {self.pid}@{self.host} (since {self.since}, heartbeat {_age_text(age)} ago)"

    def stale_reason(self) -> str | None:
        """Why this holder is no longer alive, or None when it may be."""
        if self.host == socket.gethostname() and self.pid > 0 and not pid_alive(self.pid):
            return "its process is gone"
        age = (_now() - datetime.fromisoformat(self.heartbeat)).total_seconds()
        if age > STALE_AFTER_S:
            return f"its heartbeat is {_age_text(age)} old"
        return None


class FolderLock:
    """The lock on ``folder`` for one process; ``advice`` ends the refusal line (what to do instead).
    Use as a context manager, or :meth:`acquire` / :meth:`release`."""

    def __init__(self, folder: str | os.PathLike, advice: str):
        self.folder, self.advice = Path(folder), advice
        self.path = self.folder / LOCK_NAME
        now = _iso(_now())
        self.holder = Holder(os.getpid(), socket.gethostname(), now, now, uuid.uuid4().hex)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._made_folder = False

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def fields(self) -> dict[str, object]:
        """``pid``, ``host`` and ``heartbeat`` (now) of this process, as run.json mirrors them."""
        return {"pid": self.holder.pid, "host": self.holder.host, "heartbeat": _iso(_now())}

    def acquire(self) -> FolderLock:
        """Take the lock, taking over a stale one (one warning line), and start the heartbeat;
        :class:`LockHeldError` when a live process holds it."""
        self._made_folder = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a stale lock removed here may be taken by a third process meanwhile
            if self._create():
                self._thread = threading.Thread(target=self._beat, name=f"heartbeat {self.path}", daemon=True)
                self._thread.start()
                return self
            other = Holder.read(self.path)
            if other is None:
                continue  # released in between
            reason = other.stale_reason()
            if reason is None:
                raise self._held_by(other)
            if self._remove_stale(other):
                log.warning("%s: taking over the lock of %s: %s", self.folder, other.describe(), reason)
        raise LockHeldError(f"{self.folder}: could not take its lock {self.path} (other processes keep taking "
                            f"it); {self.advice}")

    def check_free(self) -> None:
        """:class:`LockHeldError` when a live process holds the lock (nothing is taken here)."""
        other = Holder.read(self.path)
        if other is not None and other.token != self.holder.token and other.stale_reason() is None:
            raise self._held_by(other)

    def _held_by(self, other: Holder) -> LockHeldError:
        return LockHeldError(f"{self.folder} is in use by {other.describe()}; {self.advice}")

    def _create(self) -> bool:
        """Create the lock file whole, or return False when it exists. A complete file is written
        under a unique name and hard-linked to ``.lock`` (atomic and exclusive, NFS included, as
        open(2) advises); where hard links are not supported, O_CREAT|O_EXCL."""
        text = json.dumps(asdict(self.holder))
        unique = self.folder / f"{LOCK_NAME}.{self.holder.token}"
        unique.write_text(text, encoding="utf-8")
        try:
            os.link(unique, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            return True
        finally:
            unique.unlink(missing_ok=True)

    def _remove_stale(self, stale: Holder) -> bool:
        """Remove the lock file if it still is ``stale``'s. It is moved aside first: when another
        process replaced it meanwhile, the fresh lock is put back."""
        aside = self.folder / f"{LOCK_NAME}.{self.holder.token}.stale"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        moved = Holder.read(aside)
        if moved is not None and moved.token != stale.token:
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return True

    def _beat(self) -> None:
        """Refresh the heartbeat every :data:`HEARTBEAT_EVERY_S` until released; stop (with a
        warning) if another process took the lock over."""
        while not self._stop.wait(HEARTBEAT_EVERY_S):
            current = Holder.read(self.path)
            if current is None or current.token != self.holder.token:
                log.warning("%s: the lock was taken over by %s", self.folder,
                            current.describe() if current else "nobody (removed)")
                return
            self.holder.heartbeat = _iso(_now())
            try:
                atomic_write_text(self.path, json.dumps(asdict(self.holder)))
            except OSError as err:
                log.debug("%s: heartbeat not written: %s", self.path, err)

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file if it is still this process's (and the
        folder, if taking the lock made it and nothing else was written there)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            current = Holder.read(self.path)
            if current is not None and current.token == self.holder.token:
                self.path.unlink(missing_ok=True)
            if self._made_folder:
                with contextlib.suppress(OSError):
                    self.folder.rmdir()
