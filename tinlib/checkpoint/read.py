"""Reading a checkpoint file without running its code, and saying what is wrong with one that fails.

The diagnosis judges a file from its structure (zip directory, CRCs, pickle opcodes), never by
unpickling it, so that a damaged or hostile file gets one line naming it and what to do.
"""
from __future__ import annotations

import io
import pickle
import pickletools
import re
import struct
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import torch

from tinlib.errors import UserError, one_line
from tinlib.hub import checkpoint_file_problem


class CheckpointError(UserError):
    """A checkpoint that cannot be read or does not fit the model; the message is one line that
    names the file, says what is wrong with it and what to do."""


class _Opaque:
    """Stand-in for harmless bookkeeping objects in upstream checkpoints (e.g. mmengine's
    HistoryBuffer in ``message_hub``); their state is kept as a plain dict and never executed."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _safe_globals() -> list:
    """What the safe loader may build besides tensors: numpy arrays, scalars and dtypes, and the
    upstream bookkeeping objects, as :class:`_Opaque` state."""
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    dtypes = [np.dtype(name) for name in ("bool", "float16", "float32", "float64", "int8", "int16", "int32",
                                          "int64", "uint8")]
    allowed: list = [np.dtype, np.ndarray, scalar, _reconstruct, (scalar, "numpy.core.multiarray.scalar"),
                     (_reconstruct, "numpy.core.multiarray._reconstruct")]
    allowed += [dtype.type for dtype in dtypes] + [type(dtype) for dtype in dtypes]
    for name in ("mmengine.logging.history_buffer.HistoryBuffer", "mmengine.config.config.ConfigDict",
                 "mmcv.utils.config.ConfigDict"):
        allowed.append((_Opaque, name))
    return allowed


def read_checkpoint(path: str | Path, trusted: bool = False) -> dict:
    """The object a checkpoint file holds (a dict for every checkpoint tinlib reads), tensors on the CPU.

    The safe loader (``weights_only=True``) accepts tensors, plain containers, numpy scalars and a few
    upstream bookkeeping types only; ``trusted=True`` (``--trust-checkpoint``) unpickles fully, which
    can run code: only for files you made. :class:`CheckpointError` (one line: the file, what is wrong,
    what to do) for a missing, empty, truncated or damaged file, one that is no PyTorch checkpoint, and
    one holding objects the safe loader refuses (only then is ``--trust-checkpoint`` advised).
    """
    path = Path(path)
    problem = checkpoint_file_problem(path)  # missing, or a folder: the words of every command
    if problem:
        raise CheckpointError(problem)
    try:
        if trusted:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 (torch raises RuntimeError, OSError, EOFError, UnpicklingError, ...)
        raise _read_error(path, err, trusted) from None


def extract_state_dict(obj: Any, path: str | Path = "<checkpoint>") -> dict[str, torch.Tensor]:
    """A new ``{name: tensor}`` dict (tensors not copied) of a checkpoint object: its ``state_dict``
    or ``model`` entry when it has one, else the object itself; :class:`CheckpointError` naming
    ``path`` when that is no non-empty dict of tensors."""
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: no state dict found (expected a dict of tensors, or one under 'state_dict')")
    return dict(obj)


# The diagnosis of a file torch could not load.
_ZIP_MAGIC = b"PK\x03\x04"
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+) was not an allowed global")
_REDOWNLOAD = "download or save it again"


def _read_error(path: Path, err: Exception, trusted: bool) -> CheckpointError:
    """The one-line error for a file torch failed to load with ``err``."""
    problem = _file_problem(path)
    if problem:
        return CheckpointError(f"{path}: {problem}")
    first = _first_line(err)
    if not trusted and isinstance(err, pickle.UnpicklingError):
        # the file is intact (checked above), so the safe loader refused what it holds
        refused = sorted(set(_REFUSED_GLOBAL.findall(str(err))))
        what = (f"Python objects ({', '.join(refused)})" if refused else
                "pickle content that the safe loader does not accept")
        return CheckpointError(
            f"{path}: refused to unpickle it safely: besides tensors and plain containers it holds {what}, and "
            "unpickling those could run code; if you made this file or trust its source, load it with "
            "--trust-checkpoint (trusted=True in Python)")
    if isinstance(err, EOFError) or "EOF" in first or "truncated" in first:
        return CheckpointError(f"{path}: is truncated: its tensor data ends early ({first.split('. ')[0]}); "
                               f"{_REDOWNLOAD}")
    if trusted and isinstance(err, (ImportError, AttributeError)):
        return CheckpointError(f"{path}: unpickling it needs Python code that is not available here ({first}); "
                               "install the package that wrote it, or load it where that package is installed")
    return CheckpointError(f"{path}: cannot be read as a PyTorch checkpoint ({type(err).__name__}: {first}); "
                           f"{_REDOWNLOAD}")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return one_line(text.splitlines()[0]) if text else type(err).__name__


def _file_problem(path: Path) -> str | None:
    """What is wrong with the file's structure (empty, truncated, damaged, not a checkpoint) and
    what to do, or None when it looks like an intact PyTorch checkpoint."""
    size = path.stat().st_size
    if size == 0:
        return f"is empty (0 bytes): it was never written or downloaded completely; {_REDOWNLOAD}"
    with open(path, "rb") as handle:
        head = handle.read(64)
    if head.startswith(_ZIP_MAGIC) or _ZIP_MAGIC.startswith(head) or zipfile.is_zipfile(path):
        return _zip_problem(path, size)
    if head[:1] == b"\x80":  # a pickle (protocol 2 or later): torch's legacy format starts with one
        with open(path, "rb") as handle:
            return _legacy_problem(handle, size)
    return f"is not a PyTorch checkpoint ({_describe_head(head)}); check the path (is it the file you meant?)"


def _zip_problem(path: Path, size: int) -> str | None:
    """torch.save's default format: a zip archive ``<name>/data.pkl`` (the object tree) + ``<name>/data/<i>``
    (the tensor bytes); the zip's directory is at its end, so a cut-off file has none."""
    if not zipfile.is_zipfile(path):
        return (f"is truncated: a PyTorch (zip) checkpoint whose end is missing ({size} bytes; the download or "
                f"save was cut short); {_REDOWNLOAD}")
    try:
        with zipfile.ZipFile(path) as archive:
            pickled = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if not pickled:
                return "is a zip archive but not a PyTorch checkpoint (it has no data.pkl); check the path"
            damaged = archive.testzip()  # reads every member and checks its CRC
            if damaged is not None:
                return f"is damaged: its member {damaged} fails its checksum; {_REDOWNLOAD}"
            object_tree = archive.read(pickled[0])
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        return f"is a damaged zip archive ({_first_line(err)}); {_REDOWNLOAD}"
    if _scan_pickle(io.BytesIO(object_tree), len(object_tree)) != "complete":
        return f"is damaged: its object tree (data.pkl) is incomplete; {_REDOWNLOAD}"
    return None


def _legacy_problem(handle: BinaryIO, size: int) -> str | None:
    """torch's legacy (pre-1.6) format: consecutive pickles (magic number, protocol version, system
    info, the object tree, the storage keys), then the raw tensor bytes."""
    first = _scan_pickle(handle, size, magic=torch.serialization.MAGIC_NUMBER)
    if first == "invalid":
        return "is not a PyTorch checkpoint (neither a zip archive nor a valid pickle); check the path"
    if first == "no-magic":
        return "is a Python pickle but not a PyTorch checkpoint (no torch.save header); check the path"
    truncated = f"is truncated: a PyTorch (legacy format) checkpoint that ends early ({size} bytes); {_REDOWNLOAD}"
    if first == "ends-early":
        return truncated
    for _ in range(4):  # protocol version, system info, object tree, storage keys
        if _scan_pickle(handle, size) != "complete":
            return truncated
    return None


def _scan_pickle(handle: BinaryIO, size: int, magic: int | None = None) -> str:
    """Read the opcodes (never build objects) of the pickle at ``handle``'s position: "complete"
    (up to its STOP opcode), "ends-early" (the file ends first), "invalid" (not a pickle), or
    "no-magic" (complete, but without the integer ``magic``)."""
    found_magic = magic is None
    try:
        for opcode, arg, _ in pickletools.genops(handle):
            if magic is not None and arg == magic and opcode.name in ("LONG1", "LONG4", "LONG", "INT"):
                found_magic = True
            if opcode.name == "STOP":
                return "complete" if found_magic else "no-magic"
    except (ValueError, EOFError, UnicodeDecodeError, struct.error):
        return "ends-early" if handle.tell() >= size else "invalid"
    return "ends-early"


def _describe_head(head: bytes) -> str:
    """A few words on what the first bytes of a file that is not a checkpoint look like."""
    if all(32 <= byte < 127 or byte in b"\t\n\r" for byte in head):
        snippet = one_line(head.decode("ascii"))[:40]
        if snippet.lower().startswith(("<!doctype html", "<html")):
            return "it is an HTML page, as a failed download saves"
        return f"it starts with the text {snippet!r}"
    return f"neither a zip archive nor a pickle; it starts with bytes {head[:8].hex(' ')}"
