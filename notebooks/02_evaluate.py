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
# # 02 · Evaluate
#
# Tests the trained checkpoint of `config` (and of the configs in `compare`) on the test split with
# the config's test setting: top-1, top-5 and mean class accuracy as MMAction2 defines them. Writes
# `metrics.json` and `scores.npz` to `results/<config>/`. On the synthetic data it also measures how
# each model does on the time-reversal pairs, where telling a video from its reversed twin needs
# temporal order: 50 % is chance.

# %%
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display
from tqdm import TqdmWarning

from tinlib.logs import setup_logging
from tinlib.pipeline import launch
from tinlib.report import analysis, plots, tables, workflow

warnings.simplefilter("ignore", TqdmWarning)  # no ipywidgets needed for progress bars
setup_logging()  # tinlib's messages (what was prepared, skipped, changed) show below the cells
# run from the repository root wherever the notebook was opened (papermill sets the cwd itself)
if not Path("tinlib").is_dir() and Path("../tinlib").is_dir():
    os.chdir("..")
pd.set_option("display.precision", 2)

# %% tags=["parameters"]
config = "demo_tin_r18_synthetic"
compare = []                       # more configs evaluated the same way, e.g. the TSM/TSN baselines
data_root = "data/synthetic/sthv1"
work_dir = None                    # of `config`; compared configs use <its parent>/<name>
checkpoint = "latest"              # latest (final weights) | best (best validation epoch) | a path
overrides = {}
results_dir = "results"
device = "auto"
batch_size = None                  # None: the config's data.test_videos_per_gpu
num_workers = None

# %%
names = [config] + [c for c in compare if c != config]
reports = {}
for name in names:
    wd = work_dir if name == config else (str(Path(work_dir).parent / name) if work_dir else None)
    reports[name] = launch.launch_evaluation(name, data_root=data_root, work_dir=wd, checkpoint=checkpoint,
                                             overrides=overrides, results_dir=results_dir, device=device,
                                             batch_size=batch_size, num_workers=num_workers, progress=False)

# %%
tables.metrics_table(reports)

# %% [markdown]
# Time-reversal pairs (synthetic data only): *direction acc* is the share of pair videos whose own
# class outscores its reversed twin, *pair id* the share whose top-1 lands in the right pair at all.
# A model without temporal interaction sees the same frames either way and stays at chance on
# direction however well it identifies the pair.

# %%
comparison = tables.reversal_table(reports)
if not comparison.empty:
    display(comparison)
    fig = plots.plot_model_comparison(comparison, chance_top1=100 / reports[config]["num_classes"])
    plt.show()
    display(Markdown("Direction accuracy (%) per pair:"))
    display(tables.direction_by_pair(reports))
else:
    print("no time-reversal pairs in this dataset")

# %%
meta = analysis.synthetic_meta(data_root) or workflow.read_prepare_summary(data_root) or {}
class_names = meta.get("class_names")
main = reports[config]
if main["num_classes"] <= 40:
    fig = plots.plot_confusion(main["confusion_matrix"], class_names, title=f"{config}: confusion (% of true class)")
    plt.show()
    fig = plots.plot_per_class({n: analysis.per_class_frame(r, class_names) for n, r in reports.items()})
    plt.show()
else:
    display(Markdown("The ten hardest and the ten easiest classes:"))
    display(tables.hardest_and_easiest(analysis.per_class_frame(main, class_names), n=10))
