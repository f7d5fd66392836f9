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
# # 06 · The interlace gradient: true gradient vs mmcv's
#
# mmcv's `tin_shift` backward, which trained every MMAction2 TIN checkpoint, is not the gradient of
# its forward: it shifts the incoming gradient the same way as the forward instead of back. tinlib
# computes the true gradient (`model.interlace_grad="adjoint"`) and offers mmcv's as an option
# (`"mmcv"`). Here one config is trained with each, under the same seeds, and tested; the runs are
# paired by seed. Runs already finished under `results_dir` are not redone.

# %%
import os
import warnings
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display
from tqdm import TqdmWarning

from tinlib.logs import setup_logging
from tinlib.pipeline.ablation import run_ablation
from tinlib.report import ablation, plots, tables

warnings.simplefilter("ignore", TqdmWarning)  # no ipywidgets needed for progress bars
setup_logging()  # tinlib's messages (what was prepared, skipped, changed) show below the cells
# run from the repository root wherever the notebook was opened (papermill sets the cwd itself)
if not Path("tinlib").is_dir() and Path("../tinlib").is_dir():
    os.chdir("..")
pd.set_option("display.precision", 2)

# %% tags=["parameters"]
config = "demo_tin_r18_synthetic"
data_root = "data/synthetic/sthv1"
seeds = [0, 1, 2]
grads = ["adjoint", "mmcv"]
overrides = {}
results_dir = "results"
work_root = "work_dirs/ablation"
parallel = 2                       # runs side by side (one torch thread each when > 1)
force = False                      # retrain the runs already in results_dir (make ablation FORCE=1)
figures_dir = None                 # also save the figures there as PNG

# %%
summary = run_ablation(config, seeds=seeds, grads=grads, data_root=data_root, overrides=overrides,
                       results_dir=results_dir, work_root=work_root, parallel=parallel, force=force)
runs = tables.ablation_runs(summary)
display(runs)

# %% [markdown]
# ## What the data shows
#
# Per-seed differences (adjoint - mmcv) and their 95 % t-interval: an interval that contains zero
# means the gradient's effect is smaller than what this many seeds can resolve.

# %%
display(Markdown("\n".join(f"- {c['verdict']}" for c in summary["comparisons"].values()) or "one gradient only"))
display(tables.mean_and_sd_by_grad(runs))

# %% [markdown]
# ## Training curves
#
# Validation top-1 by epoch and training loss, one line per seed, a colour per gradient.

# %%
folder = Path(results_dir) / ablation.DEFAULT_NAME
train, val = ablation.curves(folder, ablation.plan(seeds, grads))
fig = plots.plot_ablation_curves(train, val)
plots.show(fig, Path(figures_dir) / "gradient_ablation_curves.png" if figures_dir else None)
