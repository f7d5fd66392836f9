"""Atomic file writes: a crash or a full disk mid-write leaves the previous file (or none), never a half-written
one. Each write goes to a fsynced temporary file renamed over the target; a temporary left by a killed process
is removed by the next write of that target. The output places of a command are checked before its work
(:func:`check_output_dir`, :func:`check_output_file`). :func:`sha256_of` is the package's one file hash."""
from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tinlib.errors import UserError

# errno -> what it means for the user
_NO_ROOM = {
    errno.ENOSPC: "the disk is full (no space left on device)",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file is larger than this process may write (file-size limit, see `ulimit -f`)",
}



def _read_umask() -> int:
    """The process's umask. ``os.umask`` can only read it by setting it, and it is process-wide: a
    file another thread created in between would get the temporary value. So it is read once, at
    import, before the package starts any thread (a process changing its umask later is not seen)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# atomically written files get the mode a plain open() gives (0644 under umask 022); mkstemp's is 0600
FILE_MODE = 0o666 & ~_read_umask()


class DiskFullError(UserError):
    """A file could not be written for lack of room (full disk, quota, file-size limit); the
    message names the file and says that the previous version, if any, is unchanged."""


class _RecordingWriter:
    """Passes everything to ``handle`` and keeps the first ``OSError`` its ``write`` raised:
    writers such as ``torch.save`` turn it into an error without the errno."""

    def __init__(self, handle: IO):
        self._handle = handle
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._handle.write(data)
        except OSError as err:
            self.error = self.error or err
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(fileobj)`` on a temporary file (opened with ``mode``) beside ``path``, fsync it,
    then rename it over ``path`` (its folder is created if needed). :class:`DiskFullError` when the
    disk, quota or file-size limit ran out (``path`` unchanged); any other error of ``write`` or the
    file system is raised as it is, after the temporary file is removed."""
    path = Path(path)
    tmp: str | None = None
    recorder: _RecordingWriter | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_temp_prefix(path)}{os.getpid()}.", suffix=".tmp")
        if os.name == "posix":
            os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode) as handle:
            recorder = _RecordingWriter(handle)
            write(recorder)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_folder(path.parent)
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        cause = _no_room_error(err, recorder)
        if cause is not None:
            raise _disk_full(path, cause) from err
        raise
    return path


def _temp_prefix(path: Path) -> str:
    """Temporary files of ``path`` are ``.<name>.<host>.<pid>.<random>.tmp`` beside it."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
    return f".{path.name}.{host}."


def _remove_stale_temps(path: Path) -> None:
    """Remove the temporary files of ``path`` left by processes of this host that no longer run
    (killed mid-write); those of running processes, or of other hosts sharing the folder, stay."""
    prefix = _temp_prefix(path)
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = tmp.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            with contextlib.suppress(OSError):  # gone already, or not ours to remove
                tmp.unlink()


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host; True when that cannot be told (not POSIX)."""
    if pid == os.getpid() or os.name != "posix":
        return True  # (on Windows os.kill would end the process)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or cannot tell: keep its file
    return True


def _no_room_error(err: BaseException, recorder: _RecordingWriter | None) -> OSError | None:
    """The OSError behind ``err`` that says the disk (or quota, or size limit) ran out, if any."""
    for candidate in (err, recorder.error if recorder is not None else None, err.__cause__, err.__context__):
        if isinstance(candidate, OSError) and candidate.errno in _NO_ROOM:
            return candidate
    return None


def _disk_full(path: Path, cause: OSError) -> DiskFullError:
    reason = _NO_ROOM[cause.errno] if cause.errno in _NO_ROOM else str(cause)
    kept = f"the previous {path.name} is unchanged" if path.exists() else f"no {path.name} was written"
    return DiskFullError(f"cannot write {path}: {reason}; {kept}. Free some space (or raise the limit) "
                         "and run the command again")


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where folders cannot be opened (Windows) or synced."""
    if os.name != "posix":
        return
    # some file systems do not sync folders (EINVAL); the rename itself already happened
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), mode="wb")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (and a final newline) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))


def check_output_dir(path: str | os.PathLike, what: str) -> Path:
    """Refuse, before any work, a folder a command is to write into (``what`` names it, e.g.
    ``"--results-dir"``) that is a file or cannot be created or written: :class:`UserError`, one line
    naming ``path`` and the problem. Nothing is created. Returns ``path``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder; give a folder (it is created if missing)")
    _check_writable(path, f"{what} {path}")
    return path


def check_output_file(path: str | os.PathLike, what: str) -> Path:
    """Like :func:`check_output_dir` for a file a command is to write (an existing one is replaced):
    refused when ``path`` is a folder, or its folder cannot be created or written."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder, not a file; give the path of the file to write")
    _check_writable(path.parent, f"{what} {path}")
    return path


def _check_writable(folder: Path, place: str) -> None:
    """:class:`UserError` starting with ``place`` when ``folder`` cannot be created (a file on its
    way) or written. Tried by creating and removing a temporary file in it (or in the nearest
    folder that exists): permission bits alone do not tell, e.g. for root or on a read-only mount."""
    existing = folder
    while not existing.is_dir():  # the nearest existing folder: where the missing ones would be created
        if existing.exists():
            raise UserError(f"{place} cannot be created: {existing} is a file, not a folder; give another place")
        existing = existing.parent
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".tinlib-write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        problem = "cannot be written" if existing == folder else f"cannot be created: {existing} is not writable"
        raise UserError(f"{place} {problem} ({err.strerror or err}); give a place you can write to") from None


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 (64 lowercase digits) of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

