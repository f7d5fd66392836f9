"""The tables the notebooks display: plain dicts in (an evaluation report, a prepare summary, ...),
pandas frames out; percentages are 0-100.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

REVERSAL_COLUMNS = ["model", "top1", "top1_other", "direction_acc", "pair_id_acc", "top1_reversal"]


# 00 prepare data
def prepare_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """One row describing a prepared dataset: ``dataset``, ``classes``, videos per split and
    ``seconds``, from a preparation's summary (:func:`tinlib.pipeline.launch.prepare_data`: its
    ``counts``, else ``num_train`` / ``num_val``)."""
    counts = summary.get("counts") or {"train": summary.get("num_train"), "val": summary.get("num_val")}
    row = {"dataset": summary["dataset"], "classes": summary["num_classes"], **counts,
           "seconds": summary.get("prepared_s")}
    return pd.DataFrame([row])


def class_counts(labels_by_split: Mapping[str, Sequence[int]], class_names: Sequence[str],
                 reversal_pairs: Sequence[Sequence[int]] = ()) -> pd.DataFrame:
    """Videos per class in each split: indexed by class index (the classes of at least one split),
    a ``class`` name column, one int column per split of ``labels_by_split`` (split -> the label of
    every video; 0 where a class has none) and, when ``reversal_pairs`` (``[(a, b)]``, b is a
    played backwards) are given, ``reversed twin`` (a name, or "")."""
    counts = pd.DataFrame({split: pd.Series(list(labels), dtype="int64").value_counts()
                           for split, labels in labels_by_split.items()})
    counts = counts.fillna(0).astype("int64").sort_index()
    counts.index.name = None
    counts.insert(0, "class", [class_names[i] for i in counts.index])
    if reversal_pairs:
        from tinlib.report.analysis import reversal_twins

        twin = reversal_twins(reversal_pairs)
        counts["reversed twin"] = [class_names[twin[i]] if i in twin else "" for i in counts.index]
    return counts


# 01 train
TRAIN_KEYS = ("epochs", "iters_per_epoch", "world_size", "videos_per_gpu", "seed", "elapsed_s_this_session")


def train_summary(summary: Mapping[str, Any], name: str) -> pd.DataFrame:
    """The main numbers of a training run (its ``train.json`` summary) as one column ``name``:
    :data:`TRAIN_KEYS` (None where missing), then ``val <metric>`` in % (rounded to 0.01) for each
    metric of ``last_val`` (the last validation, fractions)."""
    row: dict[str, Any] = {k: summary.get(k) for k in TRAIN_KEYS}
    for metric, value in (summary.get("last_val") or {}).items():
        row[f"val {metric}"] = round(100 * value, 2)
    return pd.Series(row, name=name, dtype=object).to_frame()


# 02 evaluate
def metrics_table(reports: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per evaluated config of ``reports`` (name -> ``metrics.json`` as a dict): ``config``,
    ``arch``, ``videos`` and every ``metrics_percent`` value (top-1, top-5, mean class accuracy)."""
    return pd.DataFrame([{"config": name, "arch": r["config"]["model"]["arch"], "videos": r["num_samples"],
                          **r["metrics_percent"]} for name, r in reports.items()])


def reversal_table(reports: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """:data:`REVERSAL_COLUMNS` in % for each report of ``reports`` (name -> evaluation report) that has
    a ``reversal`` entry (:func:`tinlib.report.analysis.reversal_metrics`); ``top1`` is on all
    classes, ``top1_other`` on those outside the pairs. Empty, with those columns, when none has one."""
    rows = [{"model": name, "top1": r["metrics_percent"]["top1_acc"],
             **{k: r["reversal"][k] for k in REVERSAL_COLUMNS[2:]}}
            for name, r in reports.items() if r.get("reversal")]
    return pd.DataFrame(rows, columns=REVERSAL_COLUMNS)


def direction_by_pair(reports: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Direction accuracy (%) on each time-reversal pair (``pair``: "name a / name b", else the class
    indices), one column per report of ``reports`` with a ``reversal`` entry (they list the same pairs
    when evaluated on one dataset); empty when none has one."""
    reversal = {name: r["reversal"] for name, r in reports.items() if r.get("reversal")}
    if not reversal:
        return pd.DataFrame(columns=["pair"])
    first = next(iter(reversal.values()))["per_pair"]
    rows = []
    for i, pair in enumerate(first):
        label = " / ".join(pair.get("names") or [str(c) for c in pair["classes"]])
        rows.append({"pair": label, **{name: v["per_pair"][i]["direction_acc"] for name, v in reversal.items()}})
    return pd.DataFrame(rows)


def hardest_and_easiest(per_class: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` rows of ``per_class`` (:func:`tinlib.report.analysis.per_class_frame`) with the lowest
    ``accuracy``, then the ``n`` with the highest, in ascending (stable) order; every row once when
    there are at most ``2 n``."""
    ranked = per_class.sort_values("accuracy", kind="stable")
    if len(ranked) <= 2 * n:
        return ranked
    return pd.concat([ranked.head(n), ranked.tail(n)])


# 05 explore interlace
def offsets_by_class(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean interlace offset (segments) per class and (stage, group), from
    :func:`tinlib.report.interlace.class_summary`: indexed by class name, one ``layer<stage> o<group>``
    column per (stage, group), both in the order they first appear."""
    table = summary.pivot_table(index="cls", columns=["stage", "group"], values="offset_mean", sort=False)
    table.columns = [f"layer{stage} o{group}" for stage, group in table.columns]
    table.index.name = None
    return table


def pair_offset_differences(table: pd.DataFrame, class_names: Sequence[str],
                            reversal_pairs: Sequence[Sequence[int]]) -> pd.DataFrame:
    """Offsets of each class minus those of its reversed twin: one row per pair ``(a, b)`` of
    ``reversal_pairs``, indexed ``"<name a> - reversed"``, with the columns of ``table``
    (:func:`offsets_by_class`)."""
    rows = [(table.loc[class_names[a]] - table.loc[class_names[b]]).rename(f"{class_names[a]} - reversed")
            for a, b in reversal_pairs]
    return pd.DataFrame(rows, columns=table.columns)


# 06 gradient ablation
def ablation_runs(summary: Mapping[str, Any]) -> pd.DataFrame:
    """The runs of a gradient ablation summary (:func:`tinlib.pipeline.ablation.run_ablation`), indexed
    by (``grad``, ``seed``), one column per number of the run (accuracies in %, ``direction_acc``,
    ``final_train_loss``, ``train_s``), in the order of ``runs``."""
    return pd.DataFrame(list(summary["runs"])).set_index(["grad", "seed"])


def mean_and_sd_by_grad(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample standard deviation over the seeds of every gradient of ``runs``
    (:func:`ablation_runs`): indexed by ``grad``, columns (``<number>``, ``mean`` / ``std``) for every
    numeric column; ``std`` is NaN for a single seed."""
    numeric = runs.apply(pd.to_numeric, errors="coerce").astype("float64")
    return numeric.groupby(level="grad").agg(["mean", "std"])
