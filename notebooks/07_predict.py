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
# # 07 · Predict on a video
#
# One video (a file, or a folder of frames) through a checkpoint, as `tinlib predict` does: the
# config's test pipeline (sampling, resize, crops, views, averaging: what `tinlib test` does for one
# sample), the top-k classes with their probabilities, a per-window timeline of a long video scored
# as a stream, and the interlace offsets TIN chose for this video. Nothing is written to `results/`.
#
# Without a `video` the notebook takes video number `test_video` of the config's test list under
# `data_root` (and shows its true class; the demo runs it so on a synthetic test video), or, without
# those either, writes one: classes of the synthetic dataset played one after the other, so the
# timeline has something to follow.

# %%
import os
import tempfile
import warnings
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display
from tqdm import TqdmWarning

from tinlib.config import load_config
from tinlib.data.annotations import load_annotations
from tinlib.data.synthetic import write_demo_video
from tinlib.engine.predict import Predictor
from tinlib.labels import class_name
from tinlib.pipeline.runconfig import resolve
from tinlib.report import interlace, plots, prediction

warnings.simplefilter("ignore", TqdmWarning)  # no ipywidgets needed for progress bars
# run from the repository root wherever the notebook was opened (papermill sets the cwd itself)
if not Path("tinlib").is_dir() and Path("../tinlib").is_dir():
    os.chdir("..")
pd.set_option("display.precision", 3)

# %% tags=["parameters"]
config = "demo_tin_r18_synthetic"
checkpoint = "work_dirs/demo_tin_r18_synthetic/latest.pth"  # local file, http(s) URL or published:<config>
video = None                       # video file or frame folder; None: test_video, else a video of synthetic classes
test_video = None                  # None, or the number of a video in the config's test list under data_root
data_root = "data/synthetic/sthv1"  # with test_video: the dataset folder (its lists and class names)
topk = 5
window = 16                        # frames per window for the timeline; None: whole video only
stride = 4                         # frames between window starts
labels = None                      # class-name file (or sthv1 / sthv2 / k400); None: from the config
overrides = {}
device = "auto"
video_dir = None                   # where the generated video goes; None: a temporary folder
figures_dir = None                 # also save the top-k figure there (predict_topk.png)

# %%
if test_video is not None and data_root:  # the lists, folders and class names found there
    cfg = resolve(config, data_root=data_root, overrides=overrides, quiet=True)
else:
    cfg = load_config(config, overrides)
predictor = Predictor.from_checkpoint(cfg, checkpoint, device=device, labels=labels)
names = predictor.class_names
spans = []
true_class = None
if video is None and test_video is not None:
    entry = load_annotations(cfg.data_path(cfg.data.test_ann), cfg.data.kind)[test_video]
    video, true_class = str(cfg.data_path(cfg.data.test_prefix) / entry.path), entry.label
if video is None:
    folder = Path(video_dir) if video_dir else Path(tempfile.mkdtemp(prefix="tinlib_predict_"))
    video = str(folder / "synthetic_classes.mp4")
    # moving up, light turning on, moving left to right, shaking: 24 frames each
    spans = write_demo_video(video, [2, 6, 0, 9], frames_per_class=24, height=cfg.data.scale_size)
source = predictor.open(video)
pipe = predictor.pipeline
display(Markdown(f"**{source.path}**: {source.num_frames} frames ({source.kind}"
                 + (f", {source.fps:g} fps" if source.fps else "") + f"); {cfg.name} tests {pipe.views} view(s) of "
                 f"{pipe.num_segments} segments, crop `{pipe.crop}`, average_clips `{pipe.average_clips}`; "
                 f"class names: {predictor.class_names_source}"
                 + (f"; true class: **{class_name(true_class, names)}** (line {entry.line} of "
                    f"`{Path(entry.ann_file).name}`)" if true_class is not None else "")))

# %% [markdown]
# ## What the model sees
#
# The frames of the first view after sampling, resizing and cropping (the sampled frame numbers in
# the title).

# %%
clip = predictor.clip(source)                           # uint8 [V * T, 3, H, W]
frames = interlace.display_frames(clip[:pipe.num_segments])
indices = pipe.frame_indices(source.num_frames)[0].tolist()
plots.show(plots.plot_frames(frames, title=f"frames {indices}"), fmt="jpeg")

# %% [markdown]
# ## Top-k
#
# With `average_clips="prob"` the probabilities are the views' mean softmax; otherwise (raw scores of
# one view as in MMAction2 0.x, or the views' mean scores) the softmax of the scores.

# %%
result = predictor.predict(source)
top = result.top(topk, names)
display(pd.DataFrame(top).set_index("rank"))
plots.show(prediction.plot_topk(top, title=Path(source.path).name),
           path=Path(figures_dir) / "predict_topk" if figures_dir else None)

# %% [markdown]
# ## Timeline
#
# The video as a stream: windows of `window` frames every `stride` frames, each sampled as one clip
# of the config's segments. The lines are the probabilities of the classes that lead some window;
# shaded spans are the classes of the generated video. Below: milliseconds per window for the model
# (synchronized on a GPU) and for decoding and transforms.

# %%
if window:
    timeline = predictor.windows(source, window, stride)
    plots.show(prediction.plot_timeline(timeline, names, segments=spans, title=Path(source.path).name))
    display(pd.DataFrame(timeline.rows(min(topk, 3), names)).set_index("window"))
else:
    display(Markdown("No `window` given: whole-video prediction only."))

# %% [markdown]
# ## The interlace offsets TIN used for this video
#
# For each residual block: the two offsets (in segments) by which the fold's channel quarters move
# (+o0, +o1, -o0, -o1) and the weights per segment, computed for the first view above.

# %%
if interlace.interlace_modules(predictor.model):
    h, w = clip.shape[-2:]
    views = clip.view(-1, pipe.num_segments, 3, h, w).to(predictor.device)
    trace = interlace.collect(predictor.model, views)
    best = class_name(int(trace.scores[0].argmax()), names)
    plots.show(plots.plot_video_interlace(trace, 0, frames, title=f"first view -> {best}"), fmt="jpeg")
    offsets = trace.to_frame().query("video == 0").pivot_table(index="layer", columns="group", values="offset",
                                                               sort=False)
    offsets.columns = [f"o{g}" for g in offsets.columns]
    display(offsets)
else:
    display(Markdown(f"`{cfg.model.arch}` has no interlace modules (TSM shifts by a fixed one segment; TSN "
                     "does not shift)."))
