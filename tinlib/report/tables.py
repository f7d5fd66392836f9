"""The tables the notebooks display: plain dicts in (an evaluation report, a prepare summary, ...),
pandas frames out; percentages are 0-100.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

REVERSAL_COLUMNS = ["model", "top1", "top1_other", "direction_acc", "pair_id_acc", "top1_reversal"]


# --------------------------------------------------------------------------------------------
# 00 prepare data
# --------------------------------------------------------------------------------------------
def prepare_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """One row describing a prepared dataset.

    Args:
        summary: what ``workflow.prepare_data`` returns: ``dataset``, ``num_classes``,
            ``prepared_s`` and either ``counts`` (videos per split) or ``num_train`` / ``num_val``.

    Returns:
        One row with columns ``dataset``, ``classes``, one column per split (``train``, ``val``
        when the summary has no ``counts``) and ``seconds``.
    """
    counts = summary.get("counts") or {"train": summary.get("num_train"), "val": summary.get("num_val")}
    row = {"dataset": summary["dataset"], "classes": summary["num_classes"], **counts,
           "seconds": summary.get("prepared_s")}
    return pd.DataFrame([row])


def class_counts(labels_by_split: Mapping[str, Sequence[int]], class_names: Sequence[str],
                 reversal_pairs: Sequence[Sequence[int]] = ()) -> pd.DataFrame:
    """Videos per class in each split.

    Args:
        labels_by_split: split name -> the class index of every video of that split.
        class_names: the name of every class index.
        reversal_pairs: ``[(a, b), ...]`` class indices where b is a played backwards; when given,
            a column names each class's reversed twin.

    Returns:
        Indexed by class index (ascending; classes that occur in at least one split), columns
        ``class`` (name), one int column per split in the order given (0 where a class has no
        video), and ``reversed twin`` (name, or "" for classes outside the pairs) when
        ``reversal_pairs`` is not empty.
    """
    counts = pd.DataFrame({split: pd.Series(list(labels), dtype="int64").value_counts()
                           for split, labels in labels_by_split.items()})
    counts = counts.fillna(0).astype("int64").sort_index()
    counts.index.name = None
    counts.insert(0, "class", [class_names[i] for i in counts.index])
    if reversal_pairs:
        twin = {}
        for a, b in reversal_pairs:
            twin[int(a)], twin[int(b)] = int(b), int(a)
        counts["reversed twin"] = [class_names[twin[i]] if i in twin else "" for i in counts.index]
    return counts


# --------------------------------------------------------------------------------------------
# 01 train
# --------------------------------------------------------------------------------------------
TRAIN_KEYS = ("epochs", "iters_per_epoch", "world_size", "videos_per_gpu", "seed", "elapsed_s_this_session")


def train_summary(summary: Mapping[str, Any], name: str) -> pd.DataFrame:
    """The main numbers of a training run as a one-column table.

    Args:
        summary: what ``workflow.train`` returns (``train.json``); ``last_val`` holds the last
            validation metrics as fractions when the config validates.
        name: the column title (the config name).

    Returns:
        One column ``name``, indexed by :data:`TRAIN_KEYS` (None where the summary lacks a key),
        then ``val <metric>`` in percent (rounded to 0.01) for every metric of ``last_val``.
    """
    row: dict[str, Any] = {k: summary.get(k) for k in TRAIN_KEYS}
    for metric, value in (summary.get("last_val") or {}).items():
        row[f"val {metric}"] = round(100 * value, 2)
    return pd.Series(row, name=name, dtype=object).to_frame()


# --------------------------------------------------------------------------------------------
# 02 evaluate
# --------------------------------------------------------------------------------------------
def metrics_table(reports: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Test metrics of several evaluated configs, one row each.

    Args:
        reports: config name -> what ``workflow.evaluate`` returns (``metrics.json``):
            ``config`` (the resolved config as a dict), ``num_samples`` and ``metrics_percent``.

    Returns:
        Columns ``config``, ``arch``, ``videos`` and then every key of ``metrics_percent``
        (``top1_acc``, ``top5_acc``, ``mean_class_accuracy``), in percent; rows in the order of
        ``reports``.
    """
    return pd.DataFrame([{"config": name, "arch": r["config"]["model"]["arch"], "videos": r["num_samples"],
                          **r["metrics_percent"]} for name, r in reports.items()])


def reversal_table(reports: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """How each model does on the time-reversal pairs of the synthetic data.

    Args:
        reports: config name -> evaluation report; reports without a ``reversal`` entry (the
            output of ``analysis.reversal_metrics``) are left out.

    Returns:
        One row per model with a ``reversal`` entry, columns :data:`REVERSAL_COLUMNS`: ``model``,
        ``top1`` (top-1 on all classes), ``top1_other`` (on the classes outside the pairs),
        ``direction_acc``, ``pair_id_acc`` and ``top1_reversal``, all in percent. Empty (with those
        columns) when no report has one.
    """
    rows = [{"model": name, "top1": r["metrics_percent"]["top1_acc"],
             **{k: r["reversal"][k] for k in REVERSAL_COLUMNS[2:]}}
            for name, r in reports.items() if r.get("reversal")]
    return pd.DataFrame(rows, columns=REVERSAL_COLUMNS)


def direction_by_pair(reports: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Direction accuracy on each time-reversal pair, one column per model.

    Args:
        reports: config name -> evaluation report; those with a ``reversal`` entry are used and
            must list the same pairs in the same order (they do when evaluated on one dataset).

    Returns:
        One row per pair: ``pair`` ("name a / name b", or the class indices when the pairs have no
        names), then one column per model with its ``direction_acc`` on that pair in percent.
        Empty when no report has a ``reversal`` entry.
    """
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
    """The ``n`` classes with the lowest and the ``n`` with the highest accuracy.

    Args:
        per_class: a frame with an ``accuracy`` column (``analysis.per_class_frame``).
        n: classes from each end.

    Returns:
        The rows of ``per_class`` sorted by ascending accuracy (stable: ties keep their order),
        the first ``n`` then the last ``n``; every row once when there are at most ``2 n`` rows.
    """
    ranked = per_class.sort_values("accuracy", kind="stable")
    if len(ranked) <= 2 * n:
        return ranked
    return pd.concat([ranked.head(n), ranked.tail(n)])


# --------------------------------------------------------------------------------------------
# 05 explore interlace
# --------------------------------------------------------------------------------------------
def offsets_by_class(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean interlace offset per class and (stage, group).

    Args:
        summary: ``interlace.class_summary``: one row per (class, stage, group) with columns
            ``cls``, ``stage``, ``group`` and ``offset_mean``.

    Returns:
        Indexed by class name in the order the classes first appear in ``summary``; one column
        ``layer<stage> o<group>`` per (stage, group), in the order they first appear, holding
        ``offset_mean`` (in segments).
    """
    table = summary.pivot_table(index="cls", columns=["stage", "group"], values="offset_mean", sort=False)
    table.columns = [f"layer{stage} o{group}" for stage, group in table.columns]
    table.index.name = None
    return table


def pair_offset_differences(table: pd.DataFrame, class_names: Sequence[str],
                            reversal_pairs: Sequence[Sequence[int]]) -> pd.DataFrame:
    """Offsets of each class minus those of its reversed twin.

    Args:
        table: :func:`offsets_by_class` (indexed by class name).
        class_names: the name of every class index.
        reversal_pairs: ``[(a, b), ...]`` class indices where b is a played backwards.

    Returns:
        One row per pair, indexed ``"<name a> - reversed"``, with the columns of ``table``:
        row a minus row b.
    """
    rows = [(table.loc[class_names[a]] - table.loc[class_names[b]]).rename(f"{class_names[a]} - reversed")
            for a, b in reversal_pairs]
    return pd.DataFrame(rows, columns=table.columns)


# --------------------------------------------------------------------------------------------
# 06 gradient ablation
# --------------------------------------------------------------------------------------------
def ablation_runs(summary: Mapping[str, Any]) -> pd.DataFrame:
    """The runs of an interlace-gradient ablation, one row each.

    Args:
        summary: what ``ablation.run_ablation`` returns; ``runs`` is a list of dicts with ``grad``,
            ``seed`` and the run's numbers (``top1_acc``, ``top5_acc``, ``mean_class_accuracy`` in
            percent, ``direction_acc`` on synthetic data, ``final_train_loss``, ``train_s``).

    Returns:
        Indexed by (``grad``, ``seed``), one column per number, in the order of ``runs``.
    """
    return pd.DataFrame(list(summary["runs"])).set_index(["grad", "seed"])


def mean_and_sd_by_grad(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample standard deviation over the seeds of every gradient.

    Args:
        runs: :func:`ablation_runs`.

    Returns:
        Indexed by ``grad`` (sorted), columns (``<number>``, ``mean``) and (``<number>``,
        ``std``) for every numeric column of ``runs``; ``std`` is NaN for a single seed.
    """
    numeric = runs.apply(pd.to_numeric, errors="coerce").astype("float64")
    return numeric.groupby(level="grad").agg(["mean", "std"])


__all__ = ["REVERSAL_COLUMNS", "TRAIN_KEYS", "ablation_runs", "class_counts", "direction_by_pair",
           "hardest_and_easiest", "mean_and_sd_by_grad", "metrics_table", "offsets_by_class",
           "pair_offset_differences", "prepare_table", "reversal_table", "train_summary"]
