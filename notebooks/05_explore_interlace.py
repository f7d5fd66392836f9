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
# # 05 · What the interlace learned
#
# Every residual block of a TIN backbone moves a quarter of its channels (the *fold*) in time before
# its first convolution. For each video an offset network picks two fractional offsets in (-2, 2)
# segments (the fold's four channel quarters move by +o0, +o1, -o0 and -o1) and a weight network
# scales each segment (0 to 2). Here we record them (`TemporalInterlace(record=True)`) for one chosen
# video and for many videos per class, stage by stage.

# %%
import os
import warnings
from pathlib import Path

import pandas as pd
from IPython.display import display
from tqdm import TqdmWarning

from tinlib.logs import setup_logging
from tinlib.pipeline import runconfig
from tinlib.report import analysis, interlace, plots, tables, workflow

warnings.simplefilter("ignore", TqdmWarning)  # no ipywidgets needed for progress bars
setup_logging()  # tinlib's messages (what was prepared, skipped, changed) show below the cells
# run from the repository root wherever the notebook was opened (papermill sets the cwd itself)
if not Path("tinlib").is_dir() and Path("../tinlib").is_dir():
    os.chdir("..")
pd.set_option("display.precision", 2)

# %% tags=["parameters"]
config = "demo_tin_r18_synthetic"
data_root = "data/synthetic/sthv1"
work_dir = None
checkpoint = "latest"
overrides = {}
video = None                       # index in the validation split; None: the first video of a reversal pair
per_class = 8                      # videos per class for the class-level plots
figures_dir = None                 # also save the figures there as PNG

# %%
cfg, model, dataset = runconfig.load_trained(config, data_root=data_root, work_dir=work_dir, checkpoint=checkpoint,
                                             overrides=overrides)
meta = analysis.synthetic_meta(data_root) or workflow.read_prepare_summary(data_root) or {}
class_names = meta.get("class_names") or [str(i) for i in range(cfg.model.num_classes)]
pairs = meta.get("reversal_pairs") or []
print(f"{cfg.name}: {len(interlace.interlace_modules(model))} interlace modules, {len(dataset)} videos")


def keep(fig, name, fmt="png"):
    plots.show(fig, Path(figures_dir) / name if figures_dir else None, fmt=fmt)


# %% [markdown]
# ## One video
#
# Its 8 segments, the offsets each block chose, and the weights per segment. The prediction is shown
# in the title.

# %%
if video is None:
    in_pair = [i for i, lab in enumerate(dataset.labels) if any(lab in p for p in pairs)]
    video = in_pair[0] if in_pair else 0
clip, label = dataset[video]
trace = interlace.collect(model, clip[None], [label], [video])
pred = int(trace.scores[0].argmax())
title = f"video {video}: {class_names[label]} -> predicted {class_names[pred]}"
fig = plots.plot_video_interlace(trace, 0, interlace.display_frames(clip), title=title)
keep(fig, "interlace_one_video", fmt="jpeg")

# %% [markdown]
# ## Per class and stage
#
# The offsets of `per_class` videos of every class (dots) and their mean (bars), pooled over the
# blocks of each stage. Classes of a time-reversal pair share a shade: if the model reads direction
# through the interlace, the two classes of a pair should get different offsets somewhere.

# %%
indices = interlace.pick_per_class(dataset.labels, per_class)
trace_all = interlace.collect_dataset(model, dataset, indices, batch_size=8)
fig = plots.plot_offsets_by_class(trace_all, class_names, pairs)
keep(fig, "interlace_by_class")

# %% [markdown]
# ## Over the dataset
#
# The same videos pooled: how the offsets of each stage and group are distributed (a peak at 0
# means the block barely moves its fold; peaks near +-1 mean whole-segment shifts, as TSM does by
# construction), and the segment weights' mean and spread.

# %%
fig = plots.plot_offset_distribution(trace_all)
keep(fig, "interlace_distribution")

# %%
fig = plots.plot_weights_by_class(trace_all, class_names, group=0)
keep(fig, "interlace_weights_by_class")

# %% [markdown]
# Mean offset per class (rows) and stage (columns), both groups; for the pairs, the difference
# between the two directions:

# %%
table = tables.offsets_by_class(interlace.class_summary(trace_all, class_names))
display(table.round(2))
if pairs:
    display(tables.pair_offset_differences(table, class_names, pairs).round(2))
