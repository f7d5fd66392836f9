"""The notebooks' tables on small hand-made inputs; every expected value is worked out here."""
import math

import pandas as pd
import pytest

from tinlib.report import tables


def _report(arch, top1, *, reversal=None, samples=10):
    out = {"config": {"model": {"arch": arch}}, "num_samples": samples,
           "metrics_percent": {"top1_acc": top1, "top5_acc": 100.0, "mean_class_accuracy": top1 - 1}}
    if reversal is not None:
        out["reversal"] = reversal
    return out


def _reversal(direction, per_pair, *, other=70.0, pair_id=90.0, top1_rev=45.0, names=True):
    pairs = [{"classes": [0, 1], "names": ["push", "pull"] if names else None, "direction_acc": per_pair[0]},
             {"classes": [2, 3], "names": ["up", "down"] if names else None, "direction_acc": per_pair[1]}]
    return {"direction_acc": direction, "top1_other": other, "pair_id_acc": pair_id, "top1_reversal": top1_rev,
            "per_pair": pairs}


def test_prepare_table_with_counts_and_with_num_train():
    with_counts = tables.prepare_table({"dataset": "sthv1", "num_classes": 174, "prepared_s": 3.5,
                                        "counts": {"train": 7, "val": 2, "test": 1}})
    assert with_counts.to_dict("records") == [{"dataset": "sthv1", "classes": 174, "train": 7, "val": 2, "test": 1,
                                               "seconds": 3.5}]
    plain = tables.prepare_table({"dataset": "synthetic", "num_classes": 4, "prepared_s": 1.0,
                                  "num_train": 12, "num_val": 4})
    assert list(plain.columns) == ["dataset", "classes", "train", "val", "seconds"]
    assert plain.loc[0, "train"] == 12 and plain.loc[0, "val"] == 4


def test_class_counts_fills_missing_classes_with_zero_and_names_twins():
    names = ["a", "b", "c", "d"]
    # train: class 0 twice, 2 once, 3 once; val: class 1 once, 3 twice
    counts = tables.class_counts({"train": [2, 0, 3, 0], "val": [3, 1, 3]}, names, reversal_pairs=[(0, 1)])
    assert list(counts.index) == [0, 1, 2, 3]
    assert list(counts.columns) == ["class", "train", "val", "reversed twin"]
    assert counts["class"].tolist() == names
    assert counts["train"].tolist() == [2, 0, 1, 1]
    assert counts["val"].tolist() == [0, 1, 0, 2]
    assert counts["train"].dtype == "int64"
    assert counts["reversed twin"].tolist() == ["b", "a", "", ""]


def test_class_counts_without_pairs_has_no_twin_column():
    counts = tables.class_counts({"train": [1, 1], "val": [1]}, ["x", "y"])
    assert list(counts.columns) == ["class", "train", "val"]
    assert list(counts.index) == [1]  # class 0 occurs in no split
    assert counts.loc[1].tolist() == ["y", 2, 1]


def test_train_summary_percent_and_missing_keys():
    frame = tables.train_summary({"epochs": 2, "seed": 7, "last_val": {"top1_acc": 0.12346}}, "cfg")
    assert list(frame.columns) == ["cfg"]
    assert list(frame.index) == list(tables.TRAIN_KEYS) + ["val top1_acc"]
    assert frame.loc["epochs", "cfg"] == 2 and frame.loc["seed", "cfg"] == 7
    assert frame.loc["world_size", "cfg"] is None
    assert frame.loc["val top1_acc", "cfg"] == 12.35  # 0.12346 -> 12.346 % -> 12.35


def test_metrics_table_one_row_per_report_in_order():
    table = tables.metrics_table({"tin": _report("tin_r18", 80.0), "tsn": _report("tsn_r18", 30.0, samples=12)})
    assert list(table.columns) == ["config", "arch", "videos", "top1_acc", "top5_acc", "mean_class_accuracy"]
    assert table["config"].tolist() == ["tin", "tsn"]
    assert table["arch"].tolist() == ["tin_r18", "tsn_r18"]
    assert table["videos"].tolist() == [10, 12]
    assert table["mean_class_accuracy"].tolist() == [79.0, 29.0]


def test_reversal_table_skips_reports_without_pairs():
    reports = {"tin": _report("tin_r18", 80.0, reversal=_reversal(90.0, [100.0, 80.0])),
               "tsn": _report("tsn_r18", 30.0, reversal=_reversal(50.0, [50.0, 50.0], other=40.0)),
               "real": _report("tin_r50", 45.0)}
    table = tables.reversal_table(reports)
    assert list(table.columns) == tables.REVERSAL_COLUMNS
    assert table["model"].tolist() == ["tin", "tsn"]
    assert table["top1"].tolist() == [80.0, 30.0]  # the report's overall top-1, not the reversal's
    assert table["direction_acc"].tolist() == [90.0, 50.0]
    assert table["top1_other"].tolist() == [70.0, 40.0]
    assert table.loc[0, ["pair_id_acc", "top1_reversal"]].tolist() == [90.0, 45.0]


def test_reversal_table_empty_without_pairs():
    table = tables.reversal_table({"real": _report("tin_r50", 45.0)})
    assert table.empty and list(table.columns) == tables.REVERSAL_COLUMNS


def test_direction_by_pair_one_column_per_model():
    reports = {"tin": _report("tin_r18", 80.0, reversal=_reversal(90.0, [100.0, 80.0])),
               "tsn": _report("tsn_r18", 30.0, reversal=_reversal(50.0, [25.0, 75.0])),
               "real": _report("tin_r50", 45.0)}
    table = tables.direction_by_pair(reports)
    assert list(table.columns) == ["pair", "tin", "tsn"]
    assert table["pair"].tolist() == ["push / pull", "up / down"]
    assert table["tin"].tolist() == [100.0, 80.0]
    assert table["tsn"].tolist() == [25.0, 75.0]


def test_direction_by_pair_without_names_and_without_pairs():
    reports = {"tin": _report("tin_r18", 80.0, reversal=_reversal(90.0, [100.0, 80.0], names=False))}
    assert tables.direction_by_pair(reports)["pair"].tolist() == ["0 / 1", "2 / 3"]
    assert tables.direction_by_pair({"real": _report("tin_r50", 45.0)}).empty


def test_hardest_and_easiest():
    per_class = pd.DataFrame({"class": list("abcdef"), "accuracy": [50.0, 10.0, 90.0, 30.0, 70.0, 20.0]})
    picked = tables.hardest_and_easiest(per_class, n=2)
    assert picked["class"].tolist() == ["b", "f", "e", "c"]  # 10, 20 | 70, 90
    everything = tables.hardest_and_easiest(per_class, n=3)  # 6 rows <= 2 * 3: all, once, sorted
    assert everything["class"].tolist() == ["b", "f", "d", "a", "e", "c"]


def _class_summary():
    # classes in label order "push", "pull", "idle"; two stages, two groups
    rows = []
    offsets = {"push": [0.5, -0.5, 1.0, 0.0], "pull": [-0.25, 0.5, -1.0, 0.25], "idle": [0.0, 0.0, 0.1, 0.2]}
    for cls, values in offsets.items():
        for k, (stage, group) in enumerate([(1, 0), (1, 1), (4, 0), (4, 1)]):
            rows.append({"cls": cls, "label": list(offsets).index(cls), "stage": stage, "group": group,
                         "offset_mean": values[k], "offset_std": 0.0, "videos": 2, "mean_weight": 1.0})
    return pd.DataFrame(rows)


def test_offsets_by_class_keeps_class_and_stage_order():
    table = tables.offsets_by_class(_class_summary())
    assert list(table.index) == ["push", "pull", "idle"]
    assert list(table.columns) == ["layer1 o0", "layer1 o1", "layer4 o0", "layer4 o1"]
    assert table.loc["pull"].tolist() == [-0.25, 0.5, -1.0, 0.25]
    assert table.loc["idle", "layer4 o1"] == 0.2


def test_pair_offset_differences():
    table = tables.offsets_by_class(_class_summary())
    diff = tables.pair_offset_differences(table, ["push", "pull", "idle"], [(0, 1)])
    assert list(diff.index) == ["push - reversed"]
    assert list(diff.columns) == list(table.columns)
    # push - pull: 0.5 - (-0.25), -0.5 - 0.5, 1.0 - (-1.0), 0.0 - 0.25
    assert diff.loc["push - reversed"].tolist() == [0.75, -1.0, 2.0, -0.25]


def test_ablation_runs_and_mean_and_sd():
    summary = {"runs": [{"grad": "adjoint", "seed": 0, "top1_acc": 80.0, "train_s": None},
                        {"grad": "mmcv", "seed": 0, "top1_acc": 70.0, "train_s": None},
                        {"grad": "adjoint", "seed": 1, "top1_acc": 90.0, "train_s": None}]}
    runs = tables.ablation_runs(summary)
    assert list(runs.index) == [("adjoint", 0), ("mmcv", 0), ("adjoint", 1)]
    assert runs.loc[("adjoint", 1), "top1_acc"] == 90.0
    means = tables.mean_and_sd_by_grad(runs)
    assert list(means.index) == ["adjoint", "mmcv"]
    assert means.loc["adjoint", ("top1_acc", "mean")] == 85.0
    # sample sd of 80 and 90: sqrt(((80-85)^2 + (90-85)^2) / (2-1)) = sqrt(50)
    assert means.loc["adjoint", ("top1_acc", "std")] == pytest.approx(math.sqrt(50))
    assert math.isnan(means.loc["mmcv", ("top1_acc", "std")])  # one seed
    assert math.isnan(means.loc["adjoint", ("train_s", "mean")])  # no value at all: NaN, not an error
