"""The base of the run records: pydantic models that keep unknown keys, read and write JSON files
atomically, and turn a validation error into one line naming the file."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationError, WrapValidator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from tinlib.errors import UserError
from tinlib.io import atomic_write_json

if TYPE_CHECKING:
    from typing_extensions import Self

PathLike = str | os.PathLike


class RecordError(UserError):
    """A run record that cannot be used: missing, unreadable, not JSON, or not the record expected.
    The message names the file and what to do."""


def _keep_int(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    checked = handler(value)  # strict: a bool or a string is refused
    return value if isinstance(value, int) else checked


# A JSON number. An int stays an int (read and written as such) where a float is expected, so a
# file round-trips unchanged.
Number = Annotated[float, WrapValidator(_keep_int), PlainSerializer(lambda value: value)]


def omitted() -> Any:
    """An optional field (default None) left out of the written file while it is None."""
    return Field(default=None, exclude_if=lambda value: value is None)


class Fields(BaseModel):
    """A typed JSON object: the fields are its known keys (those without a default are required).
    Values are checked strictly (no string for a number, no bool for an int); keys this version does
    not know are kept (:attr:`extra`) and written back after the known ones."""

    model_config = ConfigDict(extra="allow", strict=True, ser_json_inf_nan="constants")

    KIND: ClassVar[str] = "record"  # what the object is, for error messages
    WRITER: ClassVar[str] = ""      # the step that writes it, for error messages

    @property
    def extra(self) -> dict[str, Any]:
        """The keys this version does not know, in file order."""
        return self.model_extra or {}

    @classmethod
    def from_dict(cls, data: Any, source: PathLike | None = None) -> Self:
        """An instance from a parsed JSON object (unknown keys kept); :class:`RecordError` naming
        ``source`` (its file, or a description) and the key path of a missing or wrongly typed value."""
        if isinstance(data, dict) and "schema_version" in cls.model_fields:
            data = {"schema": 1, **data}  # written before records carried a version: version 1
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise record_error(cls, source, _problem(err)) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: known keys in field order (the omitted ones left out while None), then
        the unknown keys kept from the file read."""
        return self.model_dump(mode="json", by_alias=True)


class Record(Fields):
    """A record stored as one JSON file. ``schema_version`` (key ``"schema"``) is the version of the
    file's layout; files written before versions were recorded carry none and read as version 1,
    the layout they have."""

    schema_version: int = Field(default=1, alias="schema")

    FILENAME: ClassVar[str] = ""  # the usual file name

    @classmethod
    def read(cls, path: PathLike) -> Self:
        """The record stored in a JSON file; :class:`RecordError` naming the file when it is missing,
        unreadable, not JSON (a truncated write, say) or not this record."""
        path = Path(path)
        text = read_text(cls, path)
        try:
            data = json.loads(text)
        except ValueError as err:
            where = f" at line {err.lineno}" if isinstance(err, json.JSONDecodeError) else ""
            raise record_error(cls, path, f"not valid JSON{where} (truncated or damaged)") from None
        return cls.from_dict(data, path)

    @classmethod
    def read_optional(cls, path: PathLike) -> Self | None:
        """:meth:`read`, or None when ``path`` is not a file."""
        return cls.read(path) if Path(path).is_file() else None

    def write(self, path: PathLike) -> Path:
        """Write the record atomically (a crash never leaves half a file); returns ``path``."""
        return atomic_write_json(path, self.to_dict())


# Errors in the kit's words: the key path, what was expected, what was found
_EXPECTED = {"int_type": "an integer", "float_type": "a number", "string_type": "a string",
             "bool_type": "true or false", "dict_type": "an object", "model_type": "an object",
             "list_type": "a list"}


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


def _problem(err: ValidationError) -> str:
    """The keys missing in the first object that lacks some, else the first value of the wrong
    type, on one line."""
    errors = err.errors(include_url=False)
    missing = [e["loc"] for e in errors if e["type"] == "missing"]
    if missing:
        parent = missing[0][:-1]
        keys = ", ".join(repr(_key_path(loc)) for loc in missing if loc[:-1] == parent)
        return f"{_key_path(parent)}: missing {keys}" if parent else f"missing {keys}"
    first = errors[0]
    expected = _EXPECTED.get(first["type"])
    problem = f"expected {expected}, found {_type_name(first['input'])}" if expected else first["msg"]
    where = _key_path(first["loc"])
    return f"{where}: {problem}" if where else problem


def read_text(cls: type[Fields], path: Path) -> str:
    """The text of ``path``, a file that should hold a ``cls``; :class:`RecordError` if missing or unreadable."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise record_error(cls, path, "no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise record_error(cls, path, f"cannot be read ({getattr(err, 'strerror', None) or err})") from None


def record_error(cls: type[Fields], source: PathLike | None, problem: str) -> RecordError:
    """The one-line error about ``source`` (a file, ``file:line``, or None) that is not a usable ``cls``."""
    where = str(source) if source is not None else f"the {cls.KIND}"
    fix = f". Rerun {cls.WRITER} to rewrite it, or delete it" if cls.WRITER and source is not None else ""
    return RecordError(f"{where}: not a usable {cls.KIND}: {problem}{fix}")
