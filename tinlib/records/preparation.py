"""The records of the data: the prepare step's ``tinlib_prepare.json``, the synthetic dataset's
``synthetic_meta.json`` and a frame folder's ``.extracted.json``."""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from tinlib.records.base import Fields, Number, Record, omitted


class ListSet(Fields):
    """The annotation lists of one format (``rawframes`` or ``videos``) and how to read them
    (``test``/``test_data_prefix``: only where the data has a held-out test split, the synthetic data)."""

    train: str | None = None
    val: str | None = None
    test: str | None = omitted()
    data_prefix: str | None = None
    val_data_prefix: str | None = None
    test_data_prefix: str | None = omitted()
    filename_tmpl: str | None = None
    start_index: int | None = None


class PrepareRecord(Record):
    """``tinlib_prepare.json``: what the prepare step built for a dataset: ``lists`` per format,
    the class names, videos per split (``counts``), those left out and those whose frame extraction
    failed, the data root and the seconds it took. For the synthetic dataset it also carries the
    :class:`SyntheticMeta` keys (``kind``, the primary list format; ``reversal_pairs``, ...)."""

    KIND: ClassVar[str] = "prepare summary"
    FILENAME: ClassVar[str] = "tinlib_prepare.json"
    WRITER: ClassVar[str] = "the prepare step (notebook 00_prepare_data)"

    dataset: str
    class_names: list[str]
    counts: dict[str, int] = Field(default_factory=dict)
    left_out: list[Any] = Field(default_factory=list)
    failed: dict[str, str] | None = omitted()
    lists: dict[str, ListSet]
    kind: str | None = omitted()
    reversal_pairs: list[list[int]] | None = omitted()
    data_root: str | None = None
    num_classes: int | None = None
    prepared_s: Number | None = None


class SyntheticMeta(Record):
    """``synthetic_meta.json``: the synthetic dataset written under ``root``: the parameters it was
    written with (``params``, compared to reuse it), the lists of its primary ``kind`` (the
    held-out ``test_list`` and ``num_test`` since the test split was added; absent in older
    files), videos per split (``counts``), class names, the time-reversal pairs (class index
    pairs, the second played backwards) and the seconds taken."""

    KIND: ClassVar[str] = "synthetic dataset description"
    FILENAME: ClassVar[str] = "synthetic_meta.json"
    WRITER: ClassVar[str] = "the synthetic dataset writer (notebook 00_prepare_data)"

    layout: str
    root: str
    params: dict[str, Any]
    seed: int | None = None
    num_train: int | None = None
    num_val: int | None = None
    num_test: int | None = omitted()
    counts: dict[str, int] | None = omitted()
    flip_ok: bool | None = None
    kind: str
    train_list: str
    val_list: str
    test_list: str | None = omitted()
    data_prefix: str | None = None
    filename_tmpl: str | None = None
    start_index: int | None = None
    lists: dict[str, ListSet] = Field(default_factory=dict)
    class_names: list[str]
    num_classes: int | None = None
    reversal_pairs: list[list[int]] = Field(default_factory=list)
    reversal_classes: list[int] = Field(default_factory=list)
    seconds: Number | None = None


class ExtractionMarker(Record):
    """``.extracted.json`` in a frame folder: the frames extracted from one video and the settings
    used; a folder whose marker matches the current settings is not extracted again."""

    KIND: ClassVar[str] = "frame-extraction marker"
    FILENAME: ClassVar[str] = ".extracted.json"
    WRITER: ClassVar[str] = "the prepare step (`tinlib prepare`)"

    frames: int
    settings: dict[str, Any]
