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
# # 04 · Model zoo
#
# Rewrites `results/model_zoo.md` from the run records under `results/` (the same as `make zoo`):
# MMAction2's published TIN rows, taken from the configs, beside what was measured here, and the
# synthetic demo runs.

# %%
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display
from tqdm import TqdmWarning

from tinlib.logs import setup_logging
from tinlib.report import plots, zoo

warnings.simplefilter("ignore", TqdmWarning)  # no ipywidgets needed for progress bars
setup_logging()  # tinlib's messages (what was prepared, skipped, changed) show below the cells
# run from the repository root wherever the notebook was opened (papermill sets the cwd itself)
if not Path("tinlib").is_dir() and Path("../tinlib").is_dir():
    os.chdir("..")
pd.set_option("display.precision", 2)

# %% tags=["parameters"]
results_dir = "results"
out = None                         # None: <results_dir>/model_zoo.md

# %%
path = zoo.write_zoo(results_dir, out)
text = path.read_text()
display(Markdown(text.split("\n", 2)[2]))

# %%
runs = zoo.collect_runs(results_dir)
rows = [{"config": r.config, "published": r.top1,
         "measured": runs[r.config].metric("top1_acc") if r.config in runs else None}
        for r in zoo.published_rows()]
fig = plots.plot_zoo_comparison(rows)
plt.show()
