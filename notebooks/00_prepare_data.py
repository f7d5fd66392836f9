# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python (tin-kit)
#     language: python
#     name: tin-kit
# ---

# %% [markdown]
# # 00 · Prepare the data
#
# Builds the annotation lists (MMAction2's format) from a dataset's official release files, extracting
# frames where the release ships videos, and writes `tinlib_prepare.json` beside the lists; the other
# notebooks read it to point a config at the data. `dataset="synthetic"` first writes the embedded
# synthetic dataset (no download): Something-Something-like classes that differ only in what happens
# over time, four of them pairs of one motion played forwards and backwards.

# %%
import os
import warnings
from pathlib import Path

import pandas as pd
from IPython.display import display
from tqdm import TqdmWarning

from tinlib.data import build_dataset, load_annotations
from tinlib.logs import setup_logging
from tinlib.pipeline import launch
from tinlib.report import plots, tables

warnings.simplefilter("ignore", TqdmWarning)  # no ipywidgets needed for progress bars
setup_logging()  # tinlib's messages (what was prepared, skipped, changed) show below the cells
# run from the repository root wherever the notebook was opened (papermill sets the cwd itself)
if not Path("tinlib").is_dir() and Path("../tinlib").is_dir():
    os.chdir("..")
pd.set_option("display.precision", 2)

# %% tags=["parameters"]
dataset = "synthetic"              # synthetic | sthv1 | sthv2 | k400
data_root = "data/synthetic/sthv1"  # the release files (written here for synthetic)
lists_dir = None                   # where the lists go (default: data_root)
synthetic = {"layout": "sthv1", "size": "demo", "height": 40, "num_train": None, "num_val": None}
workers = None                     # processes for writing / frame extraction (default: a few)
splits = None                      # a release's splits to prepare (default all; ["val"]: what testing reads)
show_examples = True

# %%
options = dict(synthetic) if dataset == "synthetic" else {"splits": splits}
summary = launch.prepare_data(dataset, data_root, lists_dir=lists_dir, workers=workers, **options)
display(tables.prepare_table(summary))
shown = [split for split in ("train", "val") if any(lst.get(split) for lst in summary["lists"].values())]
for kind, lst in summary["lists"].items():
    print(f"{kind}: " + f"\n{' ' * len(kind)}  ".join(lst[split] for split in shown))

# %% [markdown]
# Videos per class in each split (the first classes when there are many):

# %%
kind = summary.get("kind") or next(iter(summary["lists"]))
lst = summary["lists"][kind]
labels = {split: [r.label for r in load_annotations(lst[split], kind)] for split in shown}
tables.class_counts(labels, summary["class_names"], summary.get("reversal_pairs") or []).head(20)

# %% [markdown]
# What the models see: the 8 segments of one validation video per class, as sampled for testing. In
# the synthetic data each second class of a pair is the first one played backwards, so single frames
# cannot tell the two apart.

# %%
if show_examples:
    ds = build_dataset(lst["val"], lst.get("val_data_prefix") or lst["data_prefix"], kind=kind, test_mode=True,
                       filename_tmpl=lst.get("filename_tmpl") or "img_{:05}.jpg", start_index=lst["start_index"],
                       scale_size=64, input_size=64, num_classes=summary["num_classes"])
    if summary["num_classes"] <= 20:
        fig = plots.plot_class_examples(ds, summary["class_names"], per_class=1)
        plots.show(fig, fmt="jpeg")
