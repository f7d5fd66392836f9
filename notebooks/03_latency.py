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
# # 03 · Latency, FLOPs and parameters
#
# MMAction2's benchmark method: random weights, eval mode, one video per batch in the config's test
# setting, the first iterations dropped; the time covers the host-to-device copy of the uint8 frames,
# their normalisation on the device and the forward pass, not data loading. TIN, TSM and TSN side by
# side on the same input. On a GPU it also measures the peak training memory at the config's videos
# per GPU (the zoo's `gpu_mem(M)`). Writes `results/<config>/latency.json`.

# %%
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from tqdm import TqdmWarning

from tinlib.logs import setup_logging
from tinlib.pipeline import launch
from tinlib.report import plots, workflow

warnings.simplefilter("ignore", TqdmWarning)  # no ipywidgets needed for progress bars
setup_logging()  # tinlib's messages (what was prepared, skipped, changed) show below the cells
# run from the repository root wherever the notebook was opened (papermill sets the cwd itself)
if not Path("tinlib").is_dir() and Path("../tinlib").is_dir():
    os.chdir("..")
pd.set_option("display.precision", 2)

# %% tags=["parameters"]
config = "tin_r50_1x1x8_40e_sthv1_rgb"
archs = None                       # None: the config's arch and its TSM/TSN twins
overrides = {}
results_dir = "results"
devices = ["cpu", "cuda"]          # cuda is skipped where there is none
iters = None                       # timed iterations (None: 20 on the CPU, 200 on a GPU)
warmup = 5
threads = None                     # torch CPU threads (None: torch's default)

# %%
result = launch.measure_latency(config, archs, overrides=overrides, results_dir=results_dir, devices=devices,
                                iters=iters, warmup=warmup, threads=threads)
workflow.latency_frame(result)

# %%
for device in result["devices"]:
    fig = plots.plot_latency(result, device.split(":")[0])
    plt.show()
print(result["setting"]["method"])
