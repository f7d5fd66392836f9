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
# # 01 · Train
#
# Trains one config. With one device in total it trains in this kernel and prints its progress
# below (a line per `log_interval`, and a bar when `progress=True`); with
# more (`gpus` per node x `nodes`) it launches `torchrun -m tinlib train ...` as a subprocess and
# streams its output here. Checkpoints and `log.json` go to the work dir; the run summary
# (`train.json`), a copy of the log and `launch.json` to `results/<config>/`. An interrupted run
# continues from its last checkpoint when run again (`resume="auto"`).

# %%
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from tqdm import TqdmWarning

from tinlib.engine.optim import scaled_lr
from tinlib.logs import setup_logging
from tinlib.pipeline import launch, runconfig
from tinlib.report import analysis, plots, tables, workflow

warnings.simplefilter("ignore", TqdmWarning)  # no ipywidgets needed for progress bars
setup_logging()  # tinlib's messages (what was prepared, skipped, changed) show below the cells
# run from the repository root wherever the notebook was opened (papermill sets the cwd itself)
if not Path("tinlib").is_dir() and Path("../tinlib").is_dir():
    os.chdir("..")
pd.set_option("display.precision", 2)

# %% tags=["parameters"]
config = "demo_tin_r18_synthetic"  # a name from tinlib/configs or a path to a config file
data_root = "data/synthetic/sthv1"  # None: the config's data.root
work_dir = None                    # None: work_dirs/<config>
overrides = {}                     # e.g. {"train.epochs": 2, "optim.lr": 0.01}
gpus = 1                           # processes (devices) per node; > 1 launches torchrun
nodes = 1                          # > 1: run this notebook on every node with its node_rank
node_rank = 0
master_addr = "127.0.0.1"
master_port = 29500
results_dir = "results"
resume = "auto"                    # "auto": continue from work_dir/latest.pth if present; None: fresh
seed = None                        # None: the config's train.seed, else drawn and recorded
progress = True

# %%
cfg = runconfig.resolve(config, data_root=data_root, overrides=overrides, results_dir=results_dir)
pd.Series(workflow.config_summary(cfg, scaled_lr(cfg, gpus * nodes)), name="setting").to_frame()

# %%
summary = launch.launch_training(config, data_root=data_root, work_dir=work_dir, overrides=overrides, gpus=gpus,
                                 nodes=nodes, node_rank=node_rank, master_addr=master_addr, master_port=master_port,
                                 results_dir=results_dir, resume=resume, seed=seed, progress=progress)

# %% [markdown]
# Training loss and learning rate per logged interval; top-1 on the training batches and on the
# validation split when the config validates:

# %%
log = runconfig.run_folder(cfg) / "log.json"
if log.is_file():
    train_log, val_log = analysis.read_log(log)
    fig = plots.plot_training(train_log, val_log, title=cfg.name)
    plt.show()

# %%
tables.train_summary(summary, cfg.name)
