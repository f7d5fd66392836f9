"""Writes the notebooks of this folder (stored without outputs). Edit here, then run
``python notebooks/build_notebooks.py``; a test checks that the committed .ipynb files match.

Every notebook: a title, a cell tagged ``parameters`` (papermill injects its values after it;
run by hand in JupyterLab it uses these defaults), then calls into ``tinlib.pipeline`` (launches) and
``tinlib.report`` (tables) and plots.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
KERNEL = {"name": "tin-kit", "display_name": "Python (tin-kit)", "language": "python"}

SETUP = """\
import os, sys, warnings
from pathlib import Path
from tqdm import TqdmWarning
warnings.simplefilter("ignore", TqdmWarning)  # no ipywidgets needed for progress bars
# run from the repository root wherever the notebook was opened (papermill sets the cwd itself)
if not Path("tinlib").is_dir() and Path("../tinlib").is_dir():
    os.chdir("..")
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display
from tinlib.logs import setup_logging
from tinlib.pipeline import launch, runconfig
from tinlib.report import analysis, plots, workflow
setup_logging()  # tinlib's messages (what was prepared, skipped, changed) show below the cells
pd.set_option("display.precision", 2)"""


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, tags: list[str] | None = None):
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = tags
    return cell


def params(text: str):
    return code(text, ["parameters"])


def notebook(cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = KERNEL
    nb.metadata["language_info"] = {"name": "python"}
    return nb


NOTEBOOKS = {}

# ----------------------------------------------------------------------------------------------
NOTEBOOKS["00_prepare_data"] = notebook([
    md("""
# 00 · Prepare the data

Builds the annotation lists (MMAction2's format) from a dataset's official release files, extracting
frames where the release ships videos, and writes `tinlib_prepare.json` beside the lists; the other
notebooks read it to point a config at the data. `dataset="synthetic"` first writes the embedded
synthetic dataset (no download): Something-Something-like classes that differ only in what happens
over time, four of them pairs of one motion played forwards and backwards.
"""),
    params("""
dataset = "synthetic"              # synthetic | sthv1 | sthv2 | k400
data_root = "data/synthetic/sthv1"  # the release files (written here for synthetic)
lists_dir = None                   # where the lists go (default: data_root)
synthetic = {"layout": "sthv1", "size": "demo", "height": 40, "num_train": None, "num_val": None}
workers = None                     # processes for writing / frame extraction (default: a few)
show_examples = True"""),
    code(SETUP),
    code("""
options = dict(synthetic) if dataset == "synthetic" else {}
summary = launch.prepare_data(dataset, data_root, lists_dir=lists_dir, workers=workers, **options)
counts = summary.get("counts") or {"train": summary.get("num_train"), "val": summary.get("num_val")}
display(pd.DataFrame([{"dataset": summary["dataset"], "classes": summary["num_classes"], **counts,
                       "seconds": summary["prepared_s"]}]))
for kind, lst in summary["lists"].items():
    print(f"{kind}: {lst['train']}\\n{' ' * len(kind)}  {lst['val']}")"""),
    md("""
Videos per class in each split (the first classes when there are many):
"""),
    code("""
from tinlib.data import load_annotations
kind = summary.get("kind") or next(iter(summary["lists"]))
lst = summary["lists"][kind]
per_class = pd.DataFrame({split: pd.Series([r.label for r in load_annotations(lst[split], kind)]).value_counts()
                          for split in ("train", "val")}).fillna(0).astype(int).sort_index()
per_class.insert(0, "class", [summary["class_names"][i] for i in per_class.index])
pairs = summary.get("reversal_pairs") or []
if pairs:
    twin = {a: b for a, b in pairs} | {b: a for a, b in pairs}
    per_class["reversed twin"] = [summary["class_names"][twin[i]] if i in twin else "" for i in per_class.index]
per_class.head(20)"""),
    md("""
What the models see: the 8 segments of one validation video per class, as sampled for testing. In
the synthetic data each second class of a pair is the first one played backwards, so single frames
cannot tell the two apart.
"""),
    code("""
if show_examples:
    from tinlib.data import build_dataset
    ds = build_dataset(lst["val"], lst.get("val_data_prefix") or lst["data_prefix"], kind=kind, test_mode=True,
                       filename_tmpl=lst.get("filename_tmpl") or "img_{:05}.jpg", start_index=lst["start_index"],
                       scale_size=64, input_size=64, num_classes=summary["num_classes"])
    if summary["num_classes"] <= 20:
        fig = plots.plot_class_examples(ds, summary["class_names"], per_class=1)
        plots.show(fig, fmt="jpeg")"""),
])

# ----------------------------------------------------------------------------------------------
NOTEBOOKS["01_train"] = notebook([
    md("""
# 01 · Train

Trains one config. With one device in total it trains in this kernel (progress bar below); with
more (`gpus` per node x `nodes`) it launches `torchrun -m tinlib train ...` as a subprocess and
streams its output here. Checkpoints and `log.json` go to the work dir; the run summary
(`train.json`), a copy of the log and `launch.json` to `results/<config>/`. An interrupted run
continues from its last checkpoint when run again (`resume="auto"`).
"""),
    params("""
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
progress = True"""),
    code(SETUP),
    code("""
cfg = runconfig.resolve(config, data_root=data_root, overrides=overrides, results_dir=results_dir)
pd.Series(workflow.config_summary(cfg, gpus * nodes), name="setting").to_frame()"""),
    code("""
summary = launch.launch_training(config, data_root=data_root, work_dir=work_dir, overrides=overrides, gpus=gpus,
                                 nodes=nodes, node_rank=node_rank, master_addr=master_addr, master_port=master_port,
                                 results_dir=results_dir, resume=resume, seed=seed, progress=progress)"""),
    md("""
Training loss and learning rate per logged interval; top-1 on the training batches and on the
validation split when the config validates:
"""),
    code("""
log = runconfig.run_folder(cfg) / "log.json"
if log.is_file():
    train_log, val_log = analysis.read_log(log)
    fig = plots.plot_training(train_log, val_log, title=cfg.name)
    plt.show()"""),
    code("""
keys = ("epochs", "iters_per_epoch", "world_size", "videos_per_gpu", "seed", "elapsed_s_this_session")
row = {k: summary.get(k) for k in keys}
if summary.get("last_val"):
    row.update({f"val {k}": round(100 * v, 2) for k, v in summary["last_val"].items()})
pd.Series(row, name=cfg.name).to_frame()"""),
])

# ----------------------------------------------------------------------------------------------
NOTEBOOKS["02_evaluate"] = notebook([
    md("""
# 02 · Evaluate

Tests the trained checkpoint of `config` (and of the configs in `compare`) on the test split with
the config's test setting: top-1, top-5 and mean class accuracy as MMAction2 defines them. Writes
`metrics.json` and `scores.npz` to `results/<config>/`. On the synthetic data it also measures how
each model does on the time-reversal pairs, where telling a video from its reversed twin needs
temporal order: 50 % is chance.
"""),
    params("""
config = "demo_tin_r18_synthetic"
compare = []                       # more configs evaluated the same way, e.g. the TSM/TSN baselines
data_root = "data/synthetic/sthv1"
work_dir = None                    # of `config`; compared configs use <its parent>/<name>
checkpoint = "latest"              # latest (final weights) | best (best validation epoch) | a path
overrides = {}
results_dir = "results"
device = "auto"
batch_size = None                  # None: the config's data.test_videos_per_gpu
num_workers = None"""),
    code(SETUP),
    code("""
from pathlib import Path
names = [config] + [c for c in compare if c != config]
reports = {}
for name in names:
    wd = work_dir if name == config else (str(Path(work_dir).parent / name) if work_dir else None)
    reports[name] = launch.launch_evaluation(name, data_root=data_root, work_dir=wd, checkpoint=checkpoint,
                                             overrides=overrides, results_dir=results_dir, device=device,
                                             batch_size=batch_size, num_workers=num_workers, progress=False)"""),
    code("""
table = pd.DataFrame([{"config": n, "arch": r["config"]["model"]["arch"], "videos": r["num_samples"],
                       **{k: v for k, v in r["metrics_percent"].items()}} for n, r in reports.items()])
table"""),
    md("""
Time-reversal pairs (synthetic data only): *direction acc* is the share of pair videos whose own
class outscores its reversed twin, *pair id* the share whose top-1 lands in the right pair at all.
A model without temporal interaction sees the same frames either way and stays at chance on
direction however well it identifies the pair.
"""),
    code("""
rev = {n: r["reversal"] for n, r in reports.items() if r.get("reversal")}
if rev:
    comparison = pd.DataFrame([{"model": n, "top1": reports[n]["metrics_percent"]["top1_acc"],
                                "top1_other": v["top1_other"], "direction_acc": v["direction_acc"],
                                "pair_id_acc": v["pair_id_acc"], "top1_reversal": v["top1_reversal"]}
                               for n, v in rev.items()])
    display(comparison)
    fig = plots.plot_model_comparison(comparison, chance_top1=100 / reports[config]["num_classes"])
    plt.show()
    first = next(iter(rev.values()))
    per_pair = pd.DataFrame([{"pair": " / ".join(p["names"] or map(str, p["classes"])),
                              **{n: v["per_pair"][i]["direction_acc"] for n, v in rev.items()}}
                             for i, p in enumerate(first["per_pair"])])
    display(Markdown("Direction accuracy (%) per pair:"))
    display(per_pair)
else:
    print("no time-reversal pairs in this dataset")"""),
    code("""
meta = analysis.synthetic_meta(data_root) or workflow.read_prepare_summary(data_root) or {}
class_names = meta.get("class_names")
main = reports[config]
if main["num_classes"] <= 40:
    fig = plots.plot_confusion(main["confusion_matrix"], class_names, title=f"{config}: confusion (% of true class)")
    plt.show()
    fig = plots.plot_per_class({n: analysis.per_class_frame(r, class_names) for n, r in reports.items()})
    plt.show()
else:
    per_class = analysis.per_class_frame(main, class_names).sort_values("accuracy")
    display(Markdown("The ten hardest and the ten easiest classes:"))
    display(pd.concat([per_class.head(10), per_class.tail(10)]))"""),
])

# ----------------------------------------------------------------------------------------------
NOTEBOOKS["03_latency"] = notebook([
    md("""
# 03 · Latency, FLOPs and parameters

MMAction2's benchmark method: random weights, eval mode, one video per batch in the config's test
setting, the first iterations dropped; the time covers the host-to-device copy and the forward
pass, not data loading. TIN, TSM and TSN side by side on the same input. On a GPU it also measures
the peak training memory at the config's videos per GPU (the zoo's `gpu_mem(M)`). Writes
`results/<config>/latency.json`.
"""),
    params("""
config = "tin_r50_1x1x8_40e_sthv1_rgb"
archs = None                       # None: the config's arch and its TSM/TSN twins
overrides = {}
results_dir = "results"
devices = ["cpu", "cuda"]          # cuda is skipped where there is none
iters = None                       # timed iterations (None: 20 on the CPU, 200 on a GPU)
warmup = 5
threads = None                     # torch CPU threads (None: torch's default)"""),
    code(SETUP),
    code("""
result = launch.measure_latency(config, archs, overrides=overrides, results_dir=results_dir, devices=devices,
                                iters=iters, warmup=warmup, threads=threads)
workflow.latency_frame(result)"""),
    code("""
for device in result["devices"]:
    fig = plots.plot_latency(result, device.split(":")[0])
    plt.show()
print(result["setting"]["method"])"""),
])

# ----------------------------------------------------------------------------------------------
NOTEBOOKS["04_model_zoo"] = notebook([
    md("""
# 04 · Model zoo

Rewrites `results/model_zoo.md` from the run records under `results/` (the same as `make zoo`):
MMAction2's published TIN rows, taken from the configs, beside what was measured here, and the
synthetic demo runs.
"""),
    params("""
results_dir = "results"
out = None                         # None: <results_dir>/model_zoo.md"""),
    code(SETUP),
    code("""
from tinlib.report import zoo
path = zoo.write_zoo(results_dir, out)
text = path.read_text()
display(Markdown(text.split("\\n", 2)[2]))"""),
    code("""
runs = zoo.collect_runs(results_dir)
rows = [{"config": r.config, "published": r.top1, "measured": runs[r.config].metric("top1_acc") if r.config in runs else None}
        for r in zoo.published_rows()]
fig = plots.plot_zoo_comparison(rows)
plt.show()"""),
])

# ----------------------------------------------------------------------------------------------
NOTEBOOKS["05_explore_interlace"] = notebook([
    md("""
# 05 · What the interlace learned

Every residual block of a TIN backbone moves a quarter of its channels (the *fold*) in time before
its first convolution. For each video an offset network picks two fractional offsets in (-2, 2)
segments (the fold's four channel quarters move by +o0, +o1, -o0 and -o1) and a weight network
scales each segment (0 to 2). Here we record them (`TemporalInterlace(record=True)`) for one chosen
video and for many videos per class, stage by stage.
"""),
    params("""
config = "demo_tin_r18_synthetic"
data_root = "data/synthetic/sthv1"
work_dir = None
checkpoint = "latest"
overrides = {}
video = None                       # index in the validation split; None: the first video of a reversal pair
per_class = 8                      # videos per class for the class-level plots
figures_dir = None                 # also save the figures there as PNG"""),
    code(SETUP),
    code("""
import torch
from tinlib.report import interlace
cfg, model, dataset = runconfig.load_trained(config, data_root=data_root, work_dir=work_dir,
                                             checkpoint=checkpoint, overrides=overrides)
meta = analysis.synthetic_meta(data_root) or workflow.read_prepare_summary(data_root) or {}
class_names = meta.get("class_names") or [str(i) for i in range(cfg.model.num_classes)]
pairs = meta.get("reversal_pairs") or []
print(f"{cfg.name}: {len(interlace.interlace_modules(model))} interlace modules, {len(dataset)} videos")

def keep(fig, name, fmt="png"):
    plots.show(fig, Path(figures_dir) / name if figures_dir else None, fmt=fmt)"""),
    md("""
## One video

Its 8 segments, the offsets each block chose, and the weights per segment. The prediction is shown
in the title.
"""),
    code("""
if video is None:
    in_pair = [i for i, lab in enumerate(dataset.labels) if any(lab in p for p in pairs)]
    video = in_pair[0] if in_pair else 0
clip, label = dataset[video]
trace = interlace.collect(model, clip[None], [label], [video])
pred = int(trace.scores[0].argmax())
title = f"video {video}: {class_names[label]} -> predicted {class_names[pred]}"
fig = plots.plot_video_interlace(trace, 0, interlace.denormalize(clip), title=title)
keep(fig, "interlace_one_video", fmt="jpeg")"""),
    md("""
## Per class and stage

The offsets of `per_class` videos of every class (dots) and their mean (bars), pooled over the
blocks of each stage. Classes of a time-reversal pair share a shade: if the model reads direction
through the interlace, the two classes of a pair should get different offsets somewhere.
"""),
    code("""
indices = interlace.pick_per_class(dataset.labels, per_class)
trace_all = interlace.collect_dataset(model, dataset, indices, batch_size=8)
fig = plots.plot_offsets_by_class(trace_all, class_names, pairs)
keep(fig, "interlace_by_class")"""),
    md("""
## Over the dataset

The same videos pooled: how the offsets of each stage and group are distributed (a peak at 0
means the block barely moves its fold; peaks near +-1 mean whole-segment shifts, as TSM does by
construction), and the segment weights' mean and spread.
"""),
    code("""
fig = plots.plot_offset_distribution(trace_all)
keep(fig, "interlace_distribution")"""),
    code("""
fig = plots.plot_weights_by_class(trace_all, class_names, group=0)
keep(fig, "interlace_weights_by_class")"""),
    md("""
Mean offset per class (rows) and stage (columns), both groups; for the pairs, the difference
between the two directions:
"""),
    code("""
summary = interlace.class_summary(trace_all, class_names)
table = summary.pivot_table(index="cls", columns=["stage", "group"], values="offset_mean", sort=False)
table.columns = [f"layer{s} o{g}" for s, g in table.columns]
display(table.round(2))
if pairs:
    rows = []
    for a, b in pairs:
        diff = table.loc[class_names[a]] - table.loc[class_names[b]]
        rows.append(pd.Series(diff, name=f"{class_names[a]} - reversed"))
    display(pd.DataFrame(rows).round(2))"""),
])

# ----------------------------------------------------------------------------------------------
NOTEBOOKS["06_gradient_ablation"] = notebook([
    md("""
# 06 · The interlace gradient: true gradient vs mmcv's

mmcv's `tin_shift` backward, which trained every MMAction2 TIN checkpoint, is not the gradient of
its forward: it shifts the incoming gradient the same way as the forward instead of back. tinlib
computes the true gradient (`model.interlace_grad="adjoint"`) and offers mmcv's as an option
(`"mmcv"`). Here one config is trained with each, under the same seeds, and tested; the runs are
paired by seed. Runs already finished under `results_dir` are not redone.
"""),
    params("""
config = "demo_tin_r18_synthetic"
data_root = "data/synthetic/sthv1"
seeds = [0, 1, 2]
grads = ["adjoint", "mmcv"]
overrides = {}
results_dir = "results"
work_root = "work_dirs/ablation"
parallel = 2                       # runs side by side (one torch thread each when > 1)
figures_dir = None                 # also save the figures there as PNG"""),
    code(SETUP),
    code("""
from tinlib.pipeline.ablation import run_ablation
from tinlib.report import ablation
summary = run_ablation(config, seeds=seeds, grads=grads, data_root=data_root, overrides=overrides,
                       results_dir=results_dir, work_root=work_root, parallel=parallel)
runs = pd.DataFrame(summary["runs"]).set_index(["grad", "seed"])
display(runs)"""),
    md("""
## What the data shows

Per-seed differences (adjoint - mmcv) and their 95 % t-interval: an interval that contains zero
means the gradient's effect is smaller than what this many seeds can resolve.
"""),
    code("""
display(Markdown("\\n".join(f"- {c['verdict']}" for c in summary["comparisons"].values()) or "one gradient only"))
means = runs.groupby(level="grad").agg(["mean", "std"])
display(means)"""),
    md("""
## Training curves

Validation top-1 by epoch and training loss, one line per seed, a colour per gradient.
"""),
    code("""
folder = Path(results_dir) / ablation.DEFAULT_NAME
train, val = ablation.curves(folder, ablation.plan(seeds, grads))
fig = plots.plot_ablation_curves(train, val)
plots.show(fig, Path(figures_dir) / "gradient_ablation_curves.png" if figures_dir else None)"""),
])


def write_all(check: bool = False) -> list[str]:
    """Write every notebook; with ``check`` only report the ones whose file differs."""
    stale = []
    for name, nb in NOTEBOOKS.items():
        for i, cell in enumerate(nb.cells):
            cell.id = f"{name[:2]}-{i:02d}"  # stable ids: rebuilding changes nothing
        path = HERE / f"{name}.ipynb"
        text = nbformat.writes(nb) + "\n"
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(name)
        if not check:
            path.write_text(text)
    return stale


if __name__ == "__main__":
    check = "--check" in sys.argv
    stale = write_all(check)
    if check and stale:
        print("out of date:", ", ".join(stale), "- run python notebooks/build_notebooks.py")
        sys.exit(1)
    print("wrote" if not check else "up to date:", ", ".join(stale) if not check else "all")
