"""Checkpoints: read safely, recognise the layout, map keys onto a tinlib model, load strictly.

Layouts understood (key names and nesting as published by each project):
- ``tinlib``: this package's own files (``save_checkpoint``).
- ``mmaction2-0.x`` / ``mmaction2-1.x``: ``backbone.layerL.B.convK.conv``/``.bn`` (mmcv ConvModule
  names); TIN wraps block conv1 as ``conv1.conv.net1`` (interlace) + ``conv1.conv.net2`` (conv);
  TSM as ``conv1.conv.net``; head ``cls_head.fc_cls``.
- ``tin-original``: deepcs233/TIN ``module.base_model.*`` with ``biasnet``/``weightnet`` and
  ``module.new_fc``.
- ``torchvision``: an ImageNet ResNet state dict (backbone only; ``fc`` is dropped).

Every layout is first renamed to a neutral form in which a block's first conv is
``layerL.B.conv1.weight`` and its temporal module ``layerL.B.conv1.temporal.*``; the last step
fits those names to the target model (plain conv for TSN, ``conv1.conv`` inside a TIN/TSM
wrapper), so weights move between TIN, TSM and TSN and torchvision weights always land inside
the wrappers.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import pickletools
import re
import shutil
import struct
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from tinlib.errors import UserError
from tinlib.io import atomic_torch_save

BACKBONE_ONLY_LAYOUTS = {"torchvision"}
TORCHVISION_URL = re.compile(r"^torchvision://(resnet(?:18|34|50|101))$")


class CheckpointError(UserError):
    """A checkpoint that cannot be read or does not fit the model; the message is one line that
    names the file, says what is wrong with it and what to do."""


class ArchMismatchError(CheckpointError):
    """The checkpoint holds another architecture than the model (every tensor may still fit)."""


# --------------------------------------------------------------------------------------------
# Reading without running code
# --------------------------------------------------------------------------------------------
class _Opaque:
    """Stand-in for harmless bookkeeping objects in upstream checkpoints (e.g. mmengine's
    HistoryBuffer in ``message_hub``); their state is kept as a plain dict and never executed."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _safe_globals() -> list:
    import numpy as np

    allowed: list = [np.dtype, np.ndarray, np.bool_, np.float16, np.float32, np.float64,
                     np.int8, np.int16, np.int32, np.int64, np.uint8]
    allowed += [type(np.dtype(name)) for name in ("float16", "float32", "float64", "int32", "int64", "uint8", "bool")]
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    allowed += [(scalar, "numpy.core.multiarray.scalar"), (_reconstruct, "numpy.core.multiarray._reconstruct"),
                scalar, _reconstruct]
    for name in ("mmengine.logging.history_buffer.HistoryBuffer", "mmengine.config.config.ConfigDict",
                 "mmcv.utils.config.ConfigDict"):
        allowed.append((_Opaque, name))
    return allowed


def read_checkpoint(path: str | Path, trusted: bool = False) -> dict:
    """Load a checkpoint file on the CPU, safely unless ``trusted``.

    The safe loader (``weights_only=True``) accepts tensors, plain containers, numpy scalars and a
    few upstream bookkeeping types only; ``trusted=True`` unpickles the file fully, which can run
    code: only for files you made.

    Args:
        path: the ``.pth`` file.
        trusted: unpickle everything the file holds (``--trust-checkpoint``).

    Returns:
        The object stored in the file (a dict for every checkpoint tinlib reads), tensors on the CPU.

    Raises:
        CheckpointError: one line (the file, what is wrong, what to do) for a missing, empty,
            truncated or damaged file, a file that is not a PyTorch checkpoint, and a readable
            checkpoint holding objects the safe loader refuses (only then is ``--trust-checkpoint``
            advised).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}; check the path (or download the file first)")
    if not path.is_file():
        raise CheckpointError(f"{path}: is not a file (a checkpoint is one .pth file); check the path")
    try:
        if trusted:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 (torch raises RuntimeError, OSError, EOFError, UnpicklingError, ...)
        raise _read_error(path, err, trusted) from None


# What is wrong with a file torch could not load: judged from its structure, never by running it.
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
    return text.splitlines()[0].strip() if text else type(err).__name__


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
        snippet = " ".join(head.decode("ascii").split())[:40]
        if snippet.lower().startswith(("<!doctype html", "<html")):
            return "it is an HTML page, as a failed download saves"
        return f"it starts with the text {snippet!r}"
    return f"neither a zip archive nor a pickle; it starts with bytes {head[:8].hex(' ')}"


def extract_state_dict(obj: Any, path: str | Path = "<checkpoint>") -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint object.

    Args:
        obj: what :func:`read_checkpoint` returned; its ``state_dict`` or ``model`` entry is used
            when it has one, else the object itself.
        path: the file it came from, for the error message.

    Returns:
        A new dict ``{name: tensor}`` (the tensors are not copied).

    Raises:
        CheckpointError: no non-empty dict of tensors was found.
    """
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: no state dict found (expected a dict of tensors, or one under 'state_dict')")
    return dict(obj)


# --------------------------------------------------------------------------------------------
# Layouts -> neutral names
# --------------------------------------------------------------------------------------------
def detect_layout(checkpoint: Any, state: dict[str, torch.Tensor], path: str | Path = "<checkpoint>") -> str:
    """The naming layout of a checkpoint's tensors.

    Args:
        checkpoint: the whole checkpoint object (its ``meta`` and MMAction2 1.x's ``message_hub``
            tell layouts apart).
        state: its state dict (see :func:`extract_state_dict`).
        path: the file it came from, for the error message.

    Returns:
        ``"tinlib"``, ``"mmaction2-0.x"``, ``"mmaction2-1.x"``, ``"tin-original"`` or ``"torchvision"``.

    Raises:
        CheckpointError: the tensor names match none of these layouts (the message shows the first ones).
    """
    keys = state.keys()
    meta = checkpoint.get("meta", {}) if isinstance(checkpoint, dict) else {}
    if isinstance(meta, dict) and meta.get("format") == "tinlib":
        return "tinlib"
    if any(k.startswith("module.base_model.") for k in keys):
        return "tin-original"
    if "backbone.conv1.conv.weight" in keys:
        is_1x = isinstance(checkpoint, dict) and ("message_hub" in checkpoint or
                                                  (isinstance(meta, dict) and "mmengine_version" in meta))
        return "mmaction2-1.x" if is_1x else "mmaction2-0.x"
    if "backbone.conv1.weight" in keys:
        return "tinlib"
    if "conv1.weight" in keys and "layer1.0.conv1.weight" in keys:
        return "torchvision"
    sample = ", ".join(list(keys)[:5])
    raise CheckpointError(f"{path}: unrecognised checkpoint layout (first keys: {sample}); supported: tinlib, "
                          "MMAction2 0.x/1.x, the original TIN repo, torchvision ResNet")


_BLOCK = r"(layer\d+\.\d+)"
_RULES: dict[str, list[tuple[str, str | None]]] = {
    "mmaction2": [
        (r"^backbone\.conv1\.conv\.weight$", "backbone.conv1.weight"),
        (r"^backbone\.conv1\.bn\.(.+)$", r"backbone.bn1.\1"),
        (rf"^backbone\.{_BLOCK}\.conv1\.conv\.net1\.(.+)$", r"backbone.\1.conv1.temporal.\2"),
        (rf"^backbone\.{_BLOCK}\.conv1\.conv\.net2\.weight$", r"backbone.\1.conv1.weight"),
        (rf"^backbone\.{_BLOCK}\.conv1\.conv\.net\.weight$", r"backbone.\1.conv1.weight@tsm"),
        (rf"^backbone\.{_BLOCK}\.conv(\d)\.conv\.weight$", r"backbone.\1.conv\2.weight"),
        (rf"^backbone\.{_BLOCK}\.conv(\d)\.bn\.(.+)$", r"backbone.\1.bn\2.\3"),
        (rf"^backbone\.{_BLOCK}\.downsample\.conv\.(.+)$", r"backbone.\1.downsample.0.\2"),
        (rf"^backbone\.{_BLOCK}\.downsample\.bn\.(.+)$", r"backbone.\1.downsample.1.\2"),
        (r"^cls_head\.fc_cls\.(weight|bias)$", r"cls_head.fc_cls.\1"),
    ],
    "tin-original": [
        (rf"^module\.base_model\.{_BLOCK}\.conv1\.net1\.biasnet\.net\.conv\.(.+)$",
          r"backbone.\1.conv1.temporal.offset_net.conv.\2"),
        (rf"^module\.base_model\.{_BLOCK}\.conv1\.net1\.biasnet\.net\.fc\.(.+)$",
          r"backbone.\1.conv1.temporal.offset_net.fc1.\2"),
        (rf"^module\.base_model\.{_BLOCK}\.conv1\.net1\.biasnet\.net\.lastlayer\.(.+)$",
          r"backbone.\1.conv1.temporal.offset_net.fc2.\2"),
        (rf"^module\.base_model\.{_BLOCK}\.conv1\.net1\.weightnet\.net\.lastlayer\.(.+)$",
          r"backbone.\1.conv1.temporal.weight_net.conv.\2"),
        (rf"^module\.base_model\.{_BLOCK}\.conv1\.net2\.weight$", r"backbone.\1.conv1.weight"),
        (r"^module\.base_model\.fc\.", None),  # became Dropout upstream; nothing to load
        (r"^module\.base_model\.(.+)$", r"backbone.\1"),
        (r"^module\.new_fc\.(weight|bias)$", r"cls_head.fc_cls.\1"),
    ],
    "torchvision": [
        (r"^fc\.(weight|bias)$", None),
        (r"^(.+)$", r"backbone.\1"),
    ],
    "tinlib": [
        (rf"^backbone\.{_BLOCK}\.conv1\.conv\.weight$", r"backbone.\1.conv1.weight"),
        (r"^(.+)$", r"\1"),
    ],
}


def _neutral_name(layout: str, key: str) -> str | None:
    rules = _RULES["mmaction2" if layout.startswith("mmaction2") else layout]
    for pattern, replacement in rules:
        if re.match(pattern, key):
            return None if replacement is None else re.sub(pattern, replacement, key)
    return key  # unknown keys stay as they are and are reported as unexpected


def _fit_to_model(neutral: str, model_keys: set[str]) -> str:
    """Neutral ``layerL.B.conv1.weight`` -> ``layerL.B.conv1.conv.weight`` where the model wraps it."""
    wrapped = re.sub(r"\.conv1\.weight$", ".conv1.conv.weight", neutral)
    return wrapped if wrapped in model_keys and neutral not in model_keys else neutral


# --------------------------------------------------------------------------------------------
# Architecture: recorded in the checkpoint, or implied by its tensor names
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArchInfo:
    """What is known of a model's architecture: temporal ``kind`` (tin / tsm / tsn), ResNet
    ``depth`` and ``shift_div`` (None where unknown), TSM's ``temporal_pool`` (which tinlib's
    models never do), and where it was read from (``source``)."""

    kind: str
    depth: int | None = None
    shift_div: int | None = None
    temporal_pool: bool = False
    source: str = ""

    @property
    def name(self) -> str:
        """``tsm_r50``, or ``tsm`` when the depth is unknown."""
        return f"{self.kind}_r{self.depth}" if self.depth else self.kind

    def describe(self, options: bool = False) -> str:
        """:attr:`name`, followed by the options that tell it apart.

        Args:
            options: also name ``shift_div`` (when known); ``temporal_pool=True`` is named always,
                since no tinlib model has it.

        Returns:
            E.g. ``"tsm_r50"`` or ``"tsm_r50 with shift_div=8"``.
        """
        extra = ([f"shift_div={self.shift_div}"] if options and self.shift_div else []) + (
            ["temporal_pool=True"] if self.temporal_pool else [])
        return self.name + (f" with {', '.join(extra)}" if extra else "")

    def differs_from(self, other: ArchInfo) -> bool:
        """Whether this and ``other`` cannot be the same architecture.

        Args:
            other: the architecture to compare with; a field unknown (None) on either side is not
                compared, and TSN's ``shift_div`` never is.

        Returns:
            True when the kind, ``temporal_pool``, the depth or the shift_div differ.
        """
        if self.kind != other.kind or self.temporal_pool != other.temporal_pool:
            return True
        if self.depth and other.depth and self.depth != other.depth:
            return True
        return bool(self.kind != "tsn" and self.shift_div and other.shift_div and self.shift_div != other.shift_div)


_ARCH_NAME = re.compile(r"^(tin|tsm|tsn)_r(\d+)$")
_CONFIG_NAME = re.compile(r"^(tin|tsm|tsn)[_-]")
_CONFIG_NAME_DEPTH = re.compile(r"[_-]r(\d+)(?=[_-]|$)")
# MMAction2 backbone types -> temporal kind (ResNet: the 2D ResNet of TSN)
_MMACTION_BACKBONES = {"ResNetTIN": "tin", "ResNetTSM": "tsm", "ResNet": "tsn"}


def model_arch(model: nn.Module) -> ArchInfo | None:
    """The architecture of a tinlib model.

    Args:
        model: a recognizer; its ``arch`` attribute (``tin_r50``) and temporal modules are read,
            else the names of its parameters.

    Returns:
        The :class:`ArchInfo`, or None when neither says.
    """
    shift_div: int | None = None
    for module in model.modules():
        value = getattr(module, "shift_div", None)
        if type(module).__name__ in ("TemporalShift", "TemporalInterlace") and isinstance(value, int):
            shift_div = value
            break
    match = _ARCH_NAME.match(str(getattr(model, "arch", "") or ""))
    if match:
        return ArchInfo(match.group(1), int(match.group(2)), shift_div, source="its arch")
    kind = _kind_from_keys(model.state_dict().keys(), "tinlib")
    return ArchInfo(kind, None, shift_div, source="implied by its parameter names") if kind else None


def checkpoint_arch(checkpoint: Any, state: dict[str, torch.Tensor], layout: str) -> ArchInfo | None:
    """The architecture a checkpoint was saved from.

    What its meta records is used first (tinlib's ``arch``; MMAction2's config text ``config``
    (0.x) / ``cfg`` (1.x), else its config or experiment name), else what its tensor names imply
    (TIN's offset/weight nets; the wrapped or plain block conv1 of TSM and TSN).

    Args:
        checkpoint: the whole checkpoint object (for its ``meta``).
        state: its state dict.
        layout: its layout (see :func:`detect_layout`), which decides how tensor names are read.

    Returns:
        The :class:`ArchInfo` (its ``source`` says where it was read), or None when nothing says.
    """
    meta = checkpoint.get("meta") if isinstance(checkpoint, dict) else None
    if isinstance(meta, dict):
        recorded = _arch_from_meta(meta)
        if recorded is not None:
            return recorded
    kind = _kind_from_keys(state.keys(), layout)
    return ArchInfo(kind, source="implied by its tensor names") if kind else None


def _arch_from_meta(meta: dict) -> ArchInfo | None:
    match = _ARCH_NAME.match(str(meta.get("arch") or ""))
    if match:
        shift_div = meta.get("shift_div") if isinstance(meta.get("shift_div"), int) else None
        return ArchInfo(match.group(1), int(match.group(2)), shift_div, source="recorded in its meta 'arch'")
    for key in ("config", "cfg"):
        if isinstance(meta.get(key), str):
            found = _arch_from_config_text(meta[key], key)
            if found is not None:
                return found
    for key in ("config_name", "exp_name", "experiment_name"):
        name = Path(str(meta.get(key) or "")).name
        match = _CONFIG_NAME.match(name)
        if match:
            depth = _CONFIG_NAME_DEPTH.search(name)
            return ArchInfo(match.group(1), int(depth.group(1)) if depth else None,
                            source=f"recorded in its meta '{key}' {name}")
    return None


def _arch_from_config_text(text: str, key: str) -> ArchInfo | None:
    """Read the backbone of an MMAction2 config text (``model = dict(backbone=dict(type='ResNetTSM',
    depth=50, shift_div=8, ...))``) stored under ``meta[key]``; None when it names no backbone tinlib knows."""
    body = _dict_body(text, "backbone")
    if body is None:
        return None
    typ = re.search(r"""(?:\btype\s*=\s*|['"]type['"]\s*:\s*)['"](\w+)['"]""", body)
    if not typ or typ.group(1) not in _MMACTION_BACKBONES:
        return None

    def option(name: str) -> str | None:
        found = re.search(rf"""(?:\b{name}\s*=\s*|['"]{name}['"]\s*:\s*)(\w+)""", body)
        return found.group(1) if found else None

    kind = _MMACTION_BACKBONES[typ.group(1)]
    if (kind == "tsm" and option("is_shift") == "False") or (kind == "tin" and option("is_tin") == "False"):
        kind = "tsn"  # the temporal module switched off: a plain ResNet
    depth, shift_div = option("depth"), option("shift_div")
    return ArchInfo(kind, int(depth) if depth and depth.isdigit() else None,
                    int(shift_div) if kind != "tsn" and shift_div and shift_div.isdigit() else None,
                    temporal_pool=kind == "tsm" and option("temporal_pool") == "True",
                    source=f"recorded in its MMAction2 config, meta '{key}': backbone {typ.group(1)}")


def _dict_body(text: str, name: str) -> str | None:
    """The text inside ``name=dict(...)`` or ``'name': {...}`` (brackets balanced), None if absent."""
    start = re.search(rf"""(?:\b{name}\s*=\s*dict\(|['"]{name}['"]\s*:\s*\{{)""", text)
    if not start:
        return None
    depth, i = 1, start.end()
    while i < len(text) and depth:
        depth += {"(": 1, "{": 1, "[": 1, ")": -1, "}": -1, "]": -1}.get(text[i], 0)
        i += 1
    return text[start.end():i - 1]


def _kind_from_keys(keys: Iterable[str], layout: str) -> str | None:
    """tin / tsm / tsn from the names of a residual block's first conv, None when they do not say
    (torchvision weights, an unknown layout)."""
    keys = list(keys)
    if any(re.search(r"\.(offset_net|weight_net|biasnet|weightnet)\.", k) for k in keys):
        return "tin"
    if layout.startswith("mmaction2"):  # TSM wraps the conv as conv.net, TSN keeps the ConvModule's conv
        wrapped, plain = r"\.conv1\.conv\.net\.weight$", r"\.conv1\.conv\.weight$"
    elif layout == "tinlib":  # TSM (and TIN) wrap the conv as conv1.conv, TSN keeps conv1
        wrapped, plain = r"\.conv1\.conv\.weight$", r"\.conv1\.weight$"
    else:
        return None
    blocks = [k for k in keys if re.match(rf"^backbone\.{_BLOCK}\.", k)]
    if any(re.search(wrapped, k) for k in blocks):
        return "tsm"
    if any(re.search(plain, k) for k in blocks):
        return "tsn"
    return None


def check_arch(model: nn.Module, checkpoint: Any, state: dict[str, torch.Tensor], layout: str,
               path: str | Path = "<checkpoint>", *, allow_arch_mismatch: bool = False) -> str | None:
    """Refuse a checkpoint of another architecture than ``model``.

    TSM weights in a TSN model run without their shift although every tensor fits, so a
    mismatch is an error unless it is allowed. Checkpoints that record no architecture and whose
    tensor names imply none pass.

    Args:
        model: the model to load into.
        checkpoint: the whole checkpoint object.
        state: its state dict.
        layout: its layout (see :func:`detect_layout`).
        path: the file it came from, for the message.
        allow_arch_mismatch: load anyway and return a note instead of raising.

    Returns:
        A note on the mismatch that was allowed, else None.

    Raises:
        ArchMismatchError: one line naming both architectures and how to load anyway.
    """
    ours, theirs = model_arch(model), checkpoint_arch(checkpoint, state, layout)
    if ours is None or theirs is None or not theirs.differs_from(ours):
        return None
    # same kind and depth: the options make the difference
    options = theirs.kind == ours.kind and not (theirs.depth and ours.depth and theirs.depth != ours.depth)
    theirs_text, ours_text = theirs.describe(options), ours.describe(options)
    if allow_arch_mismatch:
        return f"the checkpoint is {theirs_text} ({theirs.source}), the model {ours_text}: loaded anyway (allowed)"
    raise ArchMismatchError(
        f"{path}: the checkpoint holds a {theirs_text} model ({theirs.source}) but the model to load it into "
        f"is {ours_text}; weights of one architecture compute something else in another even where every tensor "
        "fits. Use a config of the checkpoint's architecture, or load it anyway with --allow-arch-mismatch "
        "(allow_arch_mismatch=True)")


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
@dataclass
class LoadReport:
    """What :func:`load_checkpoint` did: the layout found and the tensor names loaded, missing from the
    checkpoint, unexpected, of another shape, skipped on purpose or left at initialization."""

    path: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    kept_initial: list[str] = field(default_factory=list)
    arch_mismatch: str | None = None  # set when a checkpoint of another architecture was loaded on purpose

    def __str__(self) -> str:
        lines = [f"{self.path}: layout {self.layout}, {len(self.loaded)} tensors loaded"]
        if self.arch_mismatch:
            lines.append(f"  architecture: {self.arch_mismatch}")
        for name, items in (("missing in checkpoint", self.missing), ("unexpected (not loaded)", self.unexpected),
                            ("shape mismatch (not loaded)", self.mismatched), ("skipped on purpose", self.skipped),
                            ("left at initialization (allowed)", self.kept_initial)):
            if items:
                shown = ", ".join(items[:6]) + (f", ... ({len(items)} in all)" if len(items) > 6 else "")
                lines.append(f"  {name}: {shown}")
        return "\n".join(lines)


def _is_temporal_or_head(key: str) -> bool:
    return ".temporal." in key or key.startswith("cls_head.")


def map_state_dict(model: nn.Module, state: dict[str, torch.Tensor], layout: str,
                   tsm_conv1: str = "transfer", path: str = "<checkpoint>"
                   ) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Rename the tensors of ``state`` (in ``layout``) to ``model``'s parameter and buffer names.

    Args:
        model: the model whose names and shapes the tensors must fit.
        state: the checkpoint's state dict.
        layout: its layout (see :func:`detect_layout`).
        tsm_conv1: ``"transfer"`` moves a TSM checkpoint's block conv1 weights into a TIN model;
            ``"skip"`` leaves them out (as MMAction2's non-strict TSM->TIN fine-tune did).
        path: the file it came from, recorded in the report.

    Returns:
        ``(mapped, report)``: the tensors that fit, under the model's names, and a :class:`LoadReport`
        with the loaded, skipped, unexpected and shape-mismatched names (``missing`` is filled by
        :func:`load_checkpoint`).

    Raises:
        ValueError: ``tsm_conv1`` is neither ``"transfer"`` nor ``"skip"``.
    """
    if tsm_conv1 not in ("transfer", "skip"):
        raise ValueError(f"tsm_conv1 must be 'transfer' or 'skip', got {tsm_conv1!r}")
    target = model.state_dict()
    model_keys = set(target)
    has_interlace = any(".temporal.offset_net." in k for k in model_keys)
    report = LoadReport(path=str(path), layout=layout)
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        neutral = _neutral_name(layout, key)
        if neutral is None:
            report.skipped.append(key)
            continue
        if neutral.endswith("@tsm"):
            neutral = neutral[: -len("@tsm")]
            if has_interlace and tsm_conv1 == "skip":
                report.skipped.append(key)  # MMAction2's non-strict TSM->TIN transfer leaves these out
                continue
        name = _fit_to_model(neutral, model_keys)
        if name not in model_keys:
            report.unexpected.append(key)
        elif target[name].shape != value.shape:
            report.mismatched.append(f"{key} {list(value.shape)} vs model {name} {list(target[name].shape)}")
        else:
            mapped[name] = value
    report.loaded = sorted(mapped)
    return mapped, report


# A URL or ``published:<config>`` names a file to download first: tinlib.hub.resolve_checkpoint does
# that (the engine calls it for model.pretrained, model.load_from and the checkpoint arguments).
_REMOTE = re.compile(r"^(https?://|published:)")


def _refuse_remote(spec: str) -> None:
    if _REMOTE.match(spec):
        raise CheckpointError(f"{spec}: a remote checkpoint; download it first with "
                              "tinlib.hub.resolve_checkpoint(spec) (or `tinlib fetch`) and load the local file")


def load_checkpoint(model: nn.Module, path: str | Path, *, strict: bool = True, allow_missing: Iterable[str] = (),
                    tsm_conv1: str = "transfer", trusted: bool = False, verbose: bool = True,
                    allow_arch_mismatch: bool = False) -> LoadReport:
    """Load any supported checkpoint into ``model`` and report what happened.

    Args:
        model: the recognizer to load into (changed in place).
        path: a local ``.pth`` file; a URL or ``published:<config>`` must be resolved first with
            :func:`tinlib.hub.resolve_checkpoint`.
        strict: every checkpoint tensor must land and every model tensor must be filled, except
            those matching a regex in ``allow_missing``; backbone-only layouts (torchvision) never
            fill the head or the temporal modules, so those are not required from them. With
            ``strict=False`` what fits is loaded and the rest is listed in the report (MMAction2's
            behaviour).
        allow_missing: regexes of model tensor names that may stay at their initialization.
        tsm_conv1: ``"transfer"`` moves a TSM checkpoint's block conv1 weights into a TIN model;
            ``"skip"`` leaves them out, as MMAction2's non-strict TSM->TIN fine-tune effectively did.
        trusted: unpickle the file fully (see :func:`read_checkpoint`).
        verbose: print the report.
        allow_arch_mismatch: load a checkpoint whose recorded (or implied) architecture differs from
            the model's (e.g. TSM weights to fine-tune a TIN).

    Returns:
        The :class:`LoadReport`.

    Raises:
        CheckpointError: a remote spec, an unreadable file or unknown layout, an architecture
            mismatch that was not allowed (:class:`ArchMismatchError`), or, with ``strict``,
            tensors that do not fit.
    """
    _refuse_remote(str(path))
    checkpoint = read_checkpoint(path, trusted=trusted)
    state = extract_state_dict(checkpoint, path)
    layout = detect_layout(checkpoint, state, path)
    allowed = check_arch(model, checkpoint, state, layout, path, allow_arch_mismatch=allow_arch_mismatch)
    mapped, report = map_state_dict(model, state, layout, tsm_conv1, str(path))
    report.arch_mismatch = allowed
    patterns = [re.compile(p) for p in allow_missing]
    for key in model.state_dict():
        if key in mapped:
            continue
        if key.endswith("num_batches_tracked"):
            continue  # older files lack BN step counters; they only matter for momentum=None
        if (layout in BACKBONE_ONLY_LAYOUTS and _is_temporal_or_head(key)) or any(p.search(key) for p in patterns):
            report.kept_initial.append(key)
            continue
        report.missing.append(key)
    if strict and (report.missing or report.unexpected or report.mismatched):
        raise CheckpointError(f"checkpoint does not fit {type(model).__name__} "
                              f"{getattr(model, 'arch', '')}:\n{report}\n"
                              "Check the arch/num_classes/num_segments, or load with strict=False.")
    model.load_state_dict(mapped, strict=False)
    if verbose:
        print(report)
    return report


def load_pretrained_backbone(model: nn.Module, spec: str, trusted: bool = False) -> LoadReport:
    """ImageNet initialisation of a recognizer's backbone (the head and temporal modules keep theirs).

    Args:
        model: the recognizer (changed in place).
        spec: a local checkpoint file, or ``torchvision://resnetD`` (downloaded through torchvision,
            so it needs internet; the V1 weights, as mmcv uses).
        trusted: unpickle a local file fully (see :func:`read_checkpoint`).

    Returns:
        The :class:`LoadReport`.

    Raises:
        CheckpointError: an unknown source, or weights that do not fit the backbone.
    """
    match = TORCHVISION_URL.match(spec)
    if match:
        from torchvision.models import get_model_weights

        weights = get_model_weights(match.group(1))["IMAGENET1K_V1"]
        state = weights.get_state_dict(progress=True)
        mapped, report = map_state_dict(model, state, "torchvision", path=spec)
        if report.unexpected or report.mismatched:
            raise CheckpointError(f"torchvision weights do not fit the backbone:\n{report}")
        model.load_state_dict(mapped, strict=False)
        return report
    if "://" in spec and not _REMOTE.match(spec):
        raise CheckpointError(f"unknown pretrained source {spec!r}: use a local file, an http(s) URL or "
                              "torchvision://resnet50")
    # only the backbone's weights are taken, so the temporal kind of the source does not matter
    return load_checkpoint(model, spec, strict=True, allow_missing=(r"^cls_head\.", r"\.temporal\."),
                           trusted=trusted, verbose=False, allow_arch_mismatch=True)


# --------------------------------------------------------------------------------------------
# Saving and publishing
# --------------------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, model: nn.Module, meta: dict | None = None, **extra: Any) -> Path:
    """Write a checkpoint of ``model`` atomically (a temporary file renamed over ``path``).

    Args:
        path: the ``.pth`` file to write.
        model: the recognizer; its state dict is saved on the CPU.
        meta: entries added to the ``meta`` dict, which records tinlib's layout (``format``,
            ``tinlib_version``, ``arch``, ``shift_div``, ``num_classes``, ``num_segments``).
        **extra: further top-level entries (``optimizer``, ``scheduler``, ``rng``, ...).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from tinlib import __version__

    arch = model_arch(model)
    info = {"format": "tinlib", "tinlib_version": __version__, "arch": getattr(model, "arch", None),
            "shift_div": arch.shift_div if arch is not None else None,
            "num_classes": getattr(model, "num_classes", None), "num_segments": getattr(model, "num_segments", None)}
    info.update(meta or {})
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return atomic_torch_save(path, {"state_dict": state, "meta": info, **extra})


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks.

    Args:
        path: the file.

    Returns:
        The 64 lowercase hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def publish_checkpoint(src: str | Path, out_dir: str | Path, name: str) -> Path:
    """Release a training checkpoint as ``<name>-<first 8 hex of sha256>.pth``.

    Only weights and meta are kept (no optimizer or scheduler state); the name follows MMAction2's
    model-zoo files.

    Args:
        src: the training checkpoint.
        out_dir: the folder the released file goes to.
        name: the file name before the hash.

    Returns:
        The path of the released file.

    Raises:
        CheckpointError: ``src`` cannot be read or holds no state dict.
    """
    checkpoint = read_checkpoint(src)
    slim = {"state_dict": extract_state_dict(checkpoint, src), "meta": checkpoint.get("meta", {})}
    out_dir = Path(out_dir)
    tmp = atomic_torch_save(out_dir / f".{name}.unhashed.pth", slim)
    final = out_dir / f"{name}-{sha256_of(tmp)[:8]}.pth"
    shutil.move(str(tmp), final)
    return final


def verify_published(path: str | Path) -> bool:
    """Check a released ``<name>-<hash8>.pth`` file against the hash in its name.

    Args:
        path: the released file.

    Returns:
        True when the file's sha256 starts with the 8 hex digits of its name.

    Raises:
        CheckpointError: the name has no ``-<8 hex digits>.pth`` suffix.
    """
    match = re.search(r"-([0-9a-f]{8})\.pth$", str(path))
    if not match:
        raise CheckpointError(f"{path}: name has no '-<8 hex digits>.pth' suffix to verify")
    return sha256_of(path).startswith(match.group(1))
