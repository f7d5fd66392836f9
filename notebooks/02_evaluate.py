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
#
# `checkpoint="published"` tests the checkpoint MMAction2 published for the config instead (the URL in
# its `published` section; downloaded once into torch's hub cache, its sha256 checked) with the same
# test setting, on one process or under `torchrun` (`gpus` x `nodes`), and writes
# `results/<config>_published/` (`make evaluate-published-sthv1` runs it this way). When the published
# training log and a training run of `config` are both at hand, their curves are drawn together.

# %%
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display
from tqdm import TqdmWarning

from tinlib.logs import setup_logging
from tinlib.pipeline import launch, published
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
checkpoint = "latest"              # latest (final weights) | best (best validation epoch) | a path | published
overrides = {}
results_dir = "results"
device = "auto"
batch_size = None                  # None: the config's data.test_videos_per_gpu
num_workers = None
gpus = 1                           # published checkpoint: processes per node (more than one: torchrun)
nodes = 1
node_rank = 0
master_addr = "127.0.0.1"
master_port = 29500
published_curves = "cached"        # the published log.json beside this run's curves: cached | fetch | none

# %%
names = [config] + [c for c in compare if c != config]
reports = {}
for name in names:
    if checkpoint == "published":
        reports[name] = published.evaluate_published(
            name, data_root=data_root, overrides=overrides, results_dir=results_dir, device=device, gpus=gpus,
            nodes=nodes, node_rank=node_rank, master_addr=master_addr, master_port=master_port,
            batch_size=batch_size, num_workers=num_workers, progress=False)
        continue
    wd = work_dir if name == config else (str(Path(work_dir).parent / name) if work_dir else None)
    reports[name] = launch.launch_evaluation(name, data_root=data_root, work_dir=wd, checkpoint=checkpoint,
                                             overrides=overrides, results_dir=results_dir, device=device,
                                             batch_size=batch_size, num_workers=num_workers, progress=False)
reports = {name: report for name, report in reports.items() if report}  # empty on nodes other than rank 0
if checkpoint == "published" and reports:
    display(Markdown("\n".join(f"- `{name}`: {r['checkpoint']['url']} (sha256 `{r['checkpoint']['sha256'][:12]}…`)"
                                for name, r in reports.items())))

# %%
tables.metrics_table(reports) if reports else Markdown("This node scored its share; rank 0 writes the results.")

# %% [markdown]
# Training curves: loss (the epoch's mean) and validation top-1 of this config's own training run
# (`results/<config>/log.json`) over those of the run MMAction2 published (its `log.json`, parsed into
# the same record shape), when they are at hand. `published_curves="fetch"` downloads the published log;
# `tinlib fetch <config> --what json` and `make evaluate-published-*` put it into the cache.

# %%
own_log = Path(results_dir) / config / "log.json"
curves = {}
if own_log.is_file():
    curves["this run"] = analysis.epoch_curves(*analysis.read_log(own_log))
published_log = None
if published_curves != "none":
    published_log = published.published_log(config, overrides=overrides, fetch=published_curves == "fetch")
if published_log is not None:
    curves["published"] = analysis.epoch_curves(*analysis.read_log(published_log))
if "published" in curves and ("this run" in curves or checkpoint == "published"):
    fig = plots.plot_curves_vs_published(curves.get("this run"), curves["published"],
                                         own_label=f"{config} (trained here)", title=f"{config}: training curves")
    plt.show()
else:
    print(f"no curves to compare ({', '.join(curves) or 'neither log'} at hand; the published log.json is there "
          "for configs with a published section, after `tinlib fetch CONFIG --what json`)")

# %% [markdown]
# Time-reversal pairs (synthetic data only): *direction acc* is the share of pair videos whose own
# class outscores its reversed twin, *pair id* the share whose top-1 lands in the right pair at all.
# A model without temporal interaction sees the same frames either way and stays at chance on
# direction however well it identifies the pair.

# %%
comparison = tables.reversal_table(reports) if reports else pd.DataFrame()
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
main = reports.get(config)
if main is None:
    pass
elif main["num_classes"] <= 40:
    fig = plots.plot_confusion(main["confusion_matrix"], class_names, title=f"{config}: confusion (% of true class)")
    plt.show()
    fig = plots.plot_per_class({n: analysis.per_class_frame(r, class_names) for n, r in reports.items()})
    plt.show()
else:
    display(Markdown("The ten hardest and the ten easiest classes:"))
    display(tables.hardest_and_easiest(analysis.per_class_frame(main, class_names), n=10))
