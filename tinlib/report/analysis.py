"""Analyses of a run's files as plain dicts and pandas frames: time-reversal pairs, per-class
accuracy, training logs (the kit's and MMAction2's published ones)."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tinlib import records
from tinlib.records import MetricsRecord, ReversalRecord, SyntheticMeta

CHANCE_WITHIN_PAIR = 50.0


def load_scores(run_folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(scores [M, K], labels [M])`` from ``<run_folder>/scores.npz`` (written by ``tinlib test``)."""
    path = Path(run_folder) / "scores.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: evaluate the run first (notebook 02_evaluate or `tinlib test`)")
    with np.load(path) as data:
        return data["scores"].astype(np.float64), data["labels"].astype(np.int64)


def read_synthetic_meta(data_root: str | os.PathLike | None) -> SyntheticMeta | None:
    """The ``synthetic_meta.json`` in ``data_root``, or None; RecordError naming a damaged one."""
    if not data_root:
        return None
    return SyntheticMeta.read_optional(Path(data_root) / SyntheticMeta.FILENAME)


def synthetic_meta(data_root: str | os.PathLike | None) -> dict[str, Any] | None:
    """:func:`read_synthetic_meta` as a plain dict (the file's keys), for the notebooks."""
    meta = read_synthetic_meta(data_root)
    return None if meta is None else meta.to_dict()


def reversal_twins(pairs: Sequence[Sequence[int]]) -> dict[int, int]:
    """``{class: its reversed twin}`` for both classes of every pair ``(a, b)`` of ``pairs``."""
    return {int(c): int(twin) for a, b in pairs for c, twin in ((a, b), (b, a))}


def reversal_metrics(scores: np.ndarray, labels: np.ndarray, pairs: Sequence[Sequence[int]],
                     class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """How well a model tells the two classes of each time-reversal pair apart.

    scores: ``[M, K]``; labels: ``[M]``; pairs: ``[(a, b), ...]`` class indices where class b is
    class a played backwards. On the videos whose label belongs to a pair:

    - ``direction_acc``: the video's own class scores higher than its reversed twin (a two-way
      choice: 50 % is chance, which is all a model without temporal order can do);
    - ``pair_id_acc``: the top-1 class is one of the two classes of the pair (what frame
      appearance alone can give);
    - ``top1_reversal``: plain top-1 on those videos (chance-level direction caps it near
      ``pair_id_acc / 2``); ``top1_other``: top-1 on the remaining classes.

    Values are percentages; ``per_pair`` breaks ``direction_acc`` and ``top1`` down by pair.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"scores must be [M, K] with one row per label, got {scores.shape} and {labels.shape}")
    top1 = np.argmax(scores, axis=1)
    twin = reversal_twins(pairs)
    in_pair = np.isin(labels, list(twin))
    twin_of = np.array([twin.get(int(lab), int(lab)) for lab in labels], dtype=np.int64)  # [M]
    rows = np.arange(len(labels))
    direction = scores[rows, labels] > scores[rows, twin_of]
    same_pair = (top1 == labels) | (top1 == twin_of)
    correct = top1 == labels
    per_pair = []
    for a, b in pairs:
        mine = (labels == a) | (labels == b)
        names = [class_names[a], class_names[b]] if class_names else None
        per_pair.append({"classes": [int(a), int(b)], "names": names, "n": int(mine.sum()),
                         "direction_acc": _pct(direction[mine]), "pair_id_acc": _pct(same_pair[mine]),
                         "top1": _pct(correct[mine])})
    return {"chance": CHANCE_WITHIN_PAIR, "n": int(in_pair.sum()), "direction_acc": _pct(direction[in_pair]),
            "pair_id_acc": _pct(same_pair[in_pair]), "top1_reversal": _pct(correct[in_pair]),
            "top1_other": _pct(correct[~in_pair]), "n_other": int((~in_pair).sum()), "per_pair": per_pair}


def _pct(hits: np.ndarray) -> float | None:
    hits = np.asarray(hits, dtype=bool)
    return None if hits.size == 0 else round(100.0 * float(hits.mean()), 2)


def write_reversal(run_folder: str | os.PathLike, meta: Mapping[str, Any] | SyntheticMeta) -> dict[str, Any]:
    """:func:`reversal_metrics` of a run's ``scores.npz`` on the synthetic dataset's ``meta`` (its
    ``reversal_pairs`` and ``class_names``), written to ``<run_folder>/reversal.json``."""
    pairs: Sequence[Sequence[int]] = meta.reversal_pairs if isinstance(meta, SyntheticMeta) else meta["reversal_pairs"]
    names: Sequence[str] | None = meta.class_names if isinstance(meta, SyntheticMeta) else meta.get("class_names")
    scores, labels = load_scores(run_folder)
    record = ReversalRecord.from_dict(reversal_metrics(scores, labels, pairs, names))
    record.write(Path(run_folder) / ReversalRecord.FILENAME)
    return record.to_dict()


def read_log(path: str | os.PathLike | records.TrainingLog):
    """A run's ``log.json`` (or a parsed log, e.g. :func:`read_published_log`'s) as two pandas frames
    ``(train, val)``, one row per entry with the file's keys as columns; ``train`` gets a
    fractional ``epoch_f`` (epoch - 1 + iter / iterations per epoch, from the session header, else
    the largest logged ``iter``) for plotting. A damaged log raises
    :class:`~tinlib.records.RecordError` naming the file and line."""
    import pandas as pd

    log = path if isinstance(path, records.TrainingLog) else records.read_log(path)
    frame = pd.DataFrame([entry.to_dict() for entry in log.entries])
    if frame.empty:
        return frame, frame
    train = frame[frame["mode"] == "train"].copy()
    val = frame[frame["mode"] == "val"].copy()
    ipe = log.iters_per_epoch or (train["iter"].max() if not train.empty else 1)
    if not train.empty:
        train["epoch_f"] = train["epoch"] - 1 + train["iter"] / ipe
    return train.reset_index(drop=True), val.reset_index(drop=True)


# Published training logs (MMAction2 0.x log.json)
def env_info_dict(text: str) -> dict[str, str]:
    """MMAction2's ``env_info`` text (``"key: value"`` lines; indented lines continue the value
    above, as PyTorch's build details do) as a dict."""
    out: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if key is not None and (line[:1].isspace() or ":" not in line):
            out[key] += "\n" + line.strip()
            continue
        key, _, value = line.partition(":")
        key = key.strip()
        out[key] = value.strip()
    return out


_HEADER_TYPES: dict[str, tuple[type, ...]] = {"seed": (int,), "config_name": (str,), "work_dir": (str,)}


def published_log_line(data: Mapping[str, Any]) -> dict[str, Any]:
    """One line of an MMAction2 0.x ``log.json`` as a line of the kit's log.

    MMAction2 writes the run's meta first (``env_info`` as text, ``seed``, ``config`` text, ...),
    then ``{"mode": "train"|"val", "epoch", "iter", "lr", ...}`` entries whose keys the kit's
    :class:`~tinlib.records.LogEntry` shares: they pass as they are. In the meta line ``env_info``
    becomes a dict, and values of another type than the kit's header fields go to ``mmaction2_<key>``.
    """
    if "mode" in data:
        return dict(data)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "env_info" and isinstance(value, str):
            out[key] = env_info_dict(value)
        elif key in _HEADER_TYPES and value is not None and (
                isinstance(value, bool) or not isinstance(value, _HEADER_TYPES[key])):
            out[f"mmaction2_{key}"] = value
        else:
            out[key] = value
    return out


def read_published_log(path: str | os.PathLike) -> records.TrainingLog:
    """A published MMAction2 0.x ``log.json`` (``tinlib fetch CONFIG --what json`` downloads it) as a
    :class:`~tinlib.records.TrainingLog`, so :func:`read_log` and the plots take it like the kit's
    own. A last line cut off is skipped; any other line that is not JSON or not a log line raises
    :class:`~tinlib.records.RecordError` naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise records.RecordError(f"{path}: cannot read the published training log "
                                  f"({getattr(err, 'strerror', None) or err})") from None
    values, skipped = records.json_lines(path, text, "not JSON; the published log is damaged: delete it and fetch "
                                                     "it again (tinlib fetch CONFIG --what json)")
    lines: list[records.LogLine] = []
    for number, data in values:
        if not isinstance(data, dict):
            raise records.RecordError(f"{path}:{number}: expected a JSON object per line, found {type(data).__name__}"
                                      "; is this an MMAction2 log.json?")
        try:
            lines.append(records.parse_log_line(published_log_line(data), f"{path}:{number}"))
        except records.RecordError as err:
            problem = str(err).split(": not a usable ", 1)[-1].split(". Rerun", 1)[0]
            raise records.RecordError(f"{path}:{number}: not an MMAction2 log.json line ({problem})") from None
    return records.TrainingLog(path, lines, skipped)


def epoch_curves(train, val):
    """Per-epoch curves of a log's ``(train, val)`` frames (:func:`read_log`): a pandas frame
    indexed by ``epoch`` with ``loss`` (mean ``loss_cls`` of the epoch's logged training
    entries, else of ``loss``) and ``val_top1`` (validation top-1 in %, the epoch's last
    validation; NaN for epochs without one)."""
    import pandas as pd

    parts = {}
    if train is not None and not train.empty:
        column = "loss_cls" if "loss_cls" in train and train["loss_cls"].notna().any() else "loss"
        if column in train:
            parts["loss"] = train.groupby("epoch")[column].mean()
    if val is not None and not val.empty and "top1_acc" in val:
        parts["val_top1"] = 100 * val.groupby("epoch")["top1_acc"].last()
    frame = pd.DataFrame(parts)
    for column in ("loss", "val_top1"):
        if column not in frame:
            frame[column] = float("nan")
    frame.index.name = "epoch"
    return frame.sort_index()[["loss", "val_top1"]]


def per_class_frame(metrics: Mapping[str, Any] | MetricsRecord, class_names: Sequence[str] | None = None):
    """Per-class accuracy (%) and video count from a ``metrics.json`` record (or its dict, as
    ``tinlib test`` returns it), as a pandas frame with columns ``class``, ``accuracy``, ``videos``."""
    import pandas as pd

    data = metrics.to_dict() if isinstance(metrics, MetricsRecord) else metrics
    acc: list[float | None] = list(data.get("per_class_accuracy") or [])
    counts: list[int | None] = list(data.get("class_counts") or []) or [None] * len(acc)
    names = list(class_names) if class_names else [str(i) for i in range(len(acc))]
    return pd.DataFrame({"class": names[:len(acc)], "accuracy": [None if a is None else 100 * a for a in acc],
                         "videos": counts[:len(acc)]})
