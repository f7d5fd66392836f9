"""Figures for the notebooks and reports (matplotlib; every function returns the Figure)."""
from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tinlib.records import LatencyRecord

KIND_COLORS = {"tin": "#d62728", "tsm": "#1f77b4", "tsn": "#7f7f7f"}
GROUP_COLORS = ("#9467bd", "#ff7f0e")
GRAD_COLORS = {"adjoint": "#d62728", "mmcv": "#1f77b4"}
PUBLISHED_COLOR = "#7f7f7f"


def _plt():
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def missing_glyphs_quiet() -> Iterator[None]:
    """Draw text whose characters the font lacks (CJK or emoji in class and file names; DejaVu Sans
    covers Latin, Greek and Cyrillic) as boxes without matplotlib's warning per glyph, which names
    tinlib's source lines; other warnings pass. Wrap where a figure is drawn (``savefig``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from", category=UserWarning)
        yield


def color_for(name: str) -> str:
    """The colour of a model in every figure, by the arch family in its name (TIN red, TSM blue, TSN grey)."""
    for kind, color in KIND_COLORS.items():
        if kind in name.lower():
            return color
    return "#2ca02c"


def show(fig, path: str | os.PathLike | None = None, fmt: str = "png", dpi: int = 80, quality: int = 80):
    """Display ``fig`` in the notebook (and save it to ``path``) as PNG, or as JPEG for figures
    full of video frames, which compress badly as PNG; closes the figure."""
    import io

    from IPython.display import Image, display

    buf = io.BytesIO()
    kwargs = {"pil_kwargs": {"quality": quality}} if fmt == "jpeg" else {}
    with missing_glyphs_quiet():
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", **kwargs)
    _plt().close(fig)
    data = buf.getvalue()
    if path is not None:
        path = Path(path).with_suffix("." + ("jpg" if fmt == "jpeg" else fmt))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    display(Image(data=data, format=fmt))
    return path


# Training
def plot_training(train, val, title: str = ""):
    """Loss and learning rate (left), training-batch and validation top-1 (right), per epoch, from the
    frames of :func:`tinlib.report.analysis.read_log` (``train`` with ``epoch_f``, ``loss_cls``,
    ``lr``, ``top1_acc``; ``val`` with ``epoch``, ``top1_acc``)."""
    plt = _plt()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.4))
    if not train.empty:
        ax_loss.plot(train["epoch_f"], train["loss_cls"], color="#444", lw=1.2, label="training loss")
        ax_loss.set(xlabel="epoch", ylabel="cross-entropy")
        ax_lr = ax_loss.twinx()
        ax_lr.plot(train["epoch_f"], train["lr"], color="#2ca02c", lw=1, ls="--", label="lr")
        ax_lr.set_ylabel("learning rate", color="#2ca02c")
        ax_acc.plot(train["epoch_f"], 100 * train["top1_acc"], color="#aaa", lw=1, label="top-1 (training batches)")
    if not val.empty:
        ax_acc.plot(val["epoch"], 100 * val["top1_acc"], "o-", color="#d62728", label="top-1 (validation)")
        if "mean_class_accuracy" in val:
            ax_acc.plot(val["epoch"], 100 * val["mean_class_accuracy"], "s--", color="#1f77b4", ms=4,
                        label="mean class acc (validation)")
    ax_acc.set(xlabel="epoch", ylabel="%", ylim=(0, 102))
    ax_acc.legend(loc="lower right", fontsize=8)
    ax_loss.legend(loc="upper right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curves_vs_published(own, published, *, own_label: str = "this run",
                             published_label: str = "published (MMAction2)", title: str = ""):
    """Training loss (left) and validation top-1 (right) per epoch of a run (``own``) drawn over the
    curves of the published training log (``published``): each the per-epoch frame of
    :func:`tinlib.report.analysis.epoch_curves`, or None (no run yet, no published log)."""
    plt = _plt()
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.4))
    for curves, label, style in ((published, published_label, dict(color=PUBLISHED_COLOR, ls="--", ms=3)),
                                 (own, own_label, dict(color=KIND_COLORS["tin"], ls="-", ms=4))):
        if curves is None or curves.empty:
            continue
        loss = curves["loss"].dropna()
        if not loss.empty:
            ax_loss.plot(loss.index, loss.values, marker=".", label=label, **style)
        top1 = curves["val_top1"].dropna()
        if not top1.empty:
            ax_val.plot(top1.index, top1.values, marker="o", label=label, **style)
    from matplotlib.ticker import MaxNLocator

    ax_loss.set(xlabel="epoch", ylabel="training loss (epoch mean)")
    ax_val.set(xlabel="epoch", ylabel="validation top-1 (%)")
    for ax in (ax_loss, ax_val):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_ablation_curves(train, val):
    """Validation top-1 (left) and training loss per epoch (right) of the gradient ablation:
    ``train``/``val`` frames with ``grad`` and ``seed`` columns; one line per run."""
    plt = _plt()
    fig, (ax_val, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.4))
    def lines(ax, frame, column, scale, style):
        labelled = set()  # one legend entry per gradient, not per seed
        for (grad, _), run in (frame.groupby(["grad", "seed"]) if not frame.empty else []):
            ax.plot(run["epoch"], scale * run[column], style, ms=3, lw=1, color=GRAD_COLORS.get(grad),
                    label=None if grad in labelled else grad)
            labelled.add(grad)

    lines(ax_val, val, "top1_acc", 100, "o-")
    if not train.empty:
        lines(ax_loss, train.groupby(["grad", "seed", "epoch"], as_index=False)["loss_cls"].mean(), "loss_cls", 1, "-")
    ax_val.set(xlabel="epoch", ylabel="validation top-1 (%)", ylim=(0, 102))
    ax_loss.set(xlabel="epoch", ylabel="training loss (epoch mean)")
    for ax in (ax_val, ax_loss):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle("interlace gradient: adjoint (true) vs mmcv, one line per seed")
    fig.tight_layout()
    return fig


# Evaluation
def plot_model_comparison(summary, chance_top1: float | None = None, chance_pair: float = 50.0):
    """Grouped bars per model: top-1, top-1 on the reversal classes and direction accuracy on the
    reversal pairs (``summary``: frame with ``model`` and those columns, in %)."""
    plt = _plt()
    metrics = [c for c in ("top1", "top1_other", "direction_acc") if c in summary.columns]
    labels = {"top1": "top-1 (all classes)", "top1_other": "top-1 (non-reversal classes)",
              "direction_acc": "direction acc (reversal pairs)"}
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    width = 0.8 / max(len(metrics), 1)
    x = np.arange(len(summary))
    hatches = ("", "..", "//")
    for i, metric in enumerate(metrics):
        values = summary[metric].astype(float).fillna(0).to_numpy()
        bars = ax.bar(x + (i - (len(metrics) - 1) / 2) * width, values, width,
                      color=[color_for(m) for m in summary["model"]], alpha=1 - 0.25 * i, hatch=hatches[i % 3],
                      edgecolor="white", label=labels[metric])
        for bar, v in zip(bars, values):
            ax.text(bar.get_x() + bar.get_width() / 2, v + 1, f"{v:.0f}", ha="center", fontsize=7)
    ax.axhline(chance_pair, color="k", ls=":", lw=1)
    ax.text(len(summary) - 0.5, chance_pair + 1, f"chance within a pair ({chance_pair:.0f} %)", ha="right", fontsize=7)
    if chance_top1:
        ax.axhline(chance_top1, color="k", ls="--", lw=0.8)
        ax.text(len(summary) - 0.5, chance_top1 + 1, f"chance top-1 ({chance_top1:.0f} %)", ha="right", fontsize=7)
    ax.set_xticks(x, summary["model"], fontsize=8)
    ax.set(ylabel="%", ylim=(0, 110))
    ax.legend(fontsize=7, loc="upper center", ncol=len(metrics), bbox_to_anchor=(0.5, 1.15), frameon=False)
    fig.tight_layout()
    return fig


def plot_confusion(matrix, class_names: Sequence[str] | None = None, title: str = "", normalize: bool = True):
    """Confusion matrix ``matrix`` (``[K, K]`` counts, ``metrics.json``'s ``confusion_matrix``; rows:
    true class, columns: predicted), each row as % of its videos when ``normalize``, else the counts;
    the axes show ``class_names`` (default: the indices)."""
    plt = _plt()
    m = np.asarray(matrix, dtype=float)
    if normalize:
        m = 100 * m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    k = m.shape[0]
    size = min(0.45 * k + 2, 12)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=100 if normalize else None)
    if k <= 30:
        names = [_short(n) for n in (class_names or [str(i) for i in range(k)])]
        ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(k), names, fontsize=7)
        for i in range(k):
            for j in range(k):
                if m[i, j] >= 0.5:
                    ax.text(j, i, f"{m[i, j]:.0f}", ha="center", va="center", fontsize=6,
                            color="white" if m[i, j] > 60 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, fraction=0.04, label="% of the true class" if normalize else "videos")
    fig.tight_layout()
    return fig


def _short(name: str, width: int = 28) -> str:
    name = name.replace("something", "sth").replace("Something", "Sth")
    return name if len(name) <= width else name[:width - 1] + "…"


def plot_per_class(frames: Mapping[str, Any], title: str = "per-class accuracy"):
    """Horizontal grouped bars: accuracy per class for each model (``{model: per_class_frame}``)."""
    plt = _plt()
    names = list(frames)
    first = frames[names[0]]
    k = len(first)
    fig, ax = plt.subplots(figsize=(7, 0.32 * k * max(1, len(names) / 2) + 1.2))
    height = 0.8 / len(names)
    y = np.arange(k)
    for i, name in enumerate(names):
        acc = frames[name]["accuracy"].astype(float).fillna(0).to_numpy()
        ax.barh(y + (i - (len(names) - 1) / 2) * height, acc, height, color=color_for(name), label=name)
    ax.set_yticks(y, [_short(c, 40) for c in first["class"]], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="accuracy (%)", xlim=(0, 100), title=title)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def plot_latency(result: Mapping[str, Any] | LatencyRecord, device: str = "cpu"):
    """Mean inference time per video (± std, error bars) and parameters (bar labels) of each
    architecture of a ``tinlib latency`` result (its dict or the ``latency.json`` record) on
    ``device`` (``cpu`` or ``cuda``); architectures not timed there are left out."""
    record = result if isinstance(result, LatencyRecord) else LatencyRecord.from_dict(result)
    plt = _plt()
    timed = {arch: (m, m.latency[device]) for arch, m in record.models.items() if device in m.latency}
    names = list(timed)
    ms = [lat.mean_ms for _, lat in timed.values()]
    sd = [lat.std_ms or 0.0 for _, lat in timed.values()]
    fig, ax = plt.subplots(figsize=(5.5, 3))
    bars = ax.bar(names, ms, yerr=sd, color=[color_for(a) for a in names], capsize=3)
    for bar, v, (m, _) in zip(bars, ms, timed.values()):
        ax.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.1f} ms\n{m.params / 1e6:.1f} M params",
                ha="center", va="bottom", fontsize=7)
    shape = record.setting.input_shape
    ax.set(ylabel=f"ms per video ({device})", ylim=(0, max(ms + [1]) * 1.35))
    ax.set_title(f"inference latency, batch 1, input {shape}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_zoo_comparison(rows: Sequence[Mapping[str, Any]]):
    """Measured vs published top-1 of the model-zoo rows (``[{config, measured, published}]``)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.4))
    y = np.arange(len(rows))
    pub = [r["published"] or 0 for r in rows]
    meas = [r["measured"] if r["measured"] is not None else np.nan for r in rows]
    ax.barh(y - 0.2, pub, 0.4, color="#bbb", label="published")
    ax.barh(y + 0.2, np.nan_to_num(meas), 0.4, color="#d62728", label="measured here")
    for yi, m in zip(y, meas):
        ax.text(1, yi + 0.2, "not run" if np.isnan(m) else f"{m:.2f}", va="center", fontsize=7,
                color="k" if np.isnan(m) else "white")
    ax.set_yticks(y, [r["config"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("top-1 (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# Videos and the interlace
def plot_frames(frames: np.ndarray, title: str = "", ax_row=None):
    """The T frames ``[T, H, W, 3]`` uint8 side by side."""
    plt = _plt()
    t = len(frames)
    if ax_row is None:
        fig, ax_row = plt.subplots(1, t, figsize=(1.3 * t, 1.5))
    else:
        fig = ax_row[0].figure
    for i, ax in enumerate(np.atleast_1d(ax_row)):
        ax.imshow(frames[i])
        ax.set_axis_off()
        ax.set_title(f"t={i}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_class_examples(dataset, class_names: Sequence[str], per_class: int = 1, seed: int = 0):
    """One row of T frames per video, ``per_class`` videos of each class picked with ``seed`` from a
    single-view ``dataset`` (items ``(clip [T, 3, H, W] uint8, label)``)."""
    from tinlib.report.interlace import display_frames, pick_per_class

    plt = _plt()
    indices = pick_per_class(dataset.labels, per_class, seed)
    indices = sorted(indices, key=lambda i: (dataset.labels[i], i))
    if not indices:
        raise ValueError("the dataset has no videos to show")
    t = len(dataset[indices[0]][0])
    fig, axes = plt.subplots(len(indices), t, figsize=(1.1 * t + 2.2, 1.1 * len(indices)), squeeze=False)
    for row, i in enumerate(indices):
        clip, label = dataset[i]
        frames = display_frames(clip)
        for j in range(t):
            ax = axes[row, j]
            ax.imshow(frames[j])
            ax.set(xticks=[], yticks=[])
            if row == 0:
                ax.set_title(f"t={j}", fontsize=7)
        axes[row, 0].set_ylabel(_short(class_names[label], 30), rotation=0, ha="right", va="center", fontsize=7)
    fig.tight_layout(w_pad=0.1, h_pad=0.1)
    return fig


def plot_video_interlace(trace, v: int, frames: np.ndarray | None = None, title: str = ""):
    """Video ``v`` of the :class:`~tinlib.report.interlace.InterlaceTrace` ``trace``: its ``frames``
    (``[T, H, W, 3]`` uint8, see :func:`~tinlib.report.interlace.display_frames`; None: not shown), the
    offsets each interlace module chose (the fold's four quarters move by +o0, +o1, -o0, -o1
    segments) and the per-segment weights, layer by layer."""
    plt = _plt()
    layers, t = trace.layers, trace.num_segments
    fig = plt.figure(figsize=(11, 6.2 if frames is not None else 4.2))
    rows = 2 if frames is not None else 1
    grid = fig.add_gridspec(rows, 1, height_ratios=[1, 3][-rows:], hspace=0.35)
    if frames is not None:
        top = grid[0].subgridspec(1, len(frames), wspace=0.05)
        plot_frames(frames, ax_row=[fig.add_subplot(top[0, i]) for i in range(len(frames))])
    bottom = grid[-1].subgridspec(1, 3, wspace=0.45, width_ratios=[1.2, 1, 1])
    ax = fig.add_subplot(bottom[0, 0])
    y = np.arange(len(layers))
    off = trace.offsets[v]
    for g in range(off.shape[1]):
        ax.barh(y + (g - 0.5) * 0.38, off[:, g], 0.38, color=GROUP_COLORS[g], label=f"o{g} (quarter {g + 1}; -o{g}: "
                f"quarter {g + 3})")
    ax.axvline(0, color="k", lw=0.6)
    ax.set_yticks(y, layers, fontsize=7)
    ax.invert_yaxis()
    ax.set(xlim=(-2, 2), xlabel="offset (segments)")
    ax.set_title("learned offsets", fontsize=9)
    ax.legend(fontsize=6, loc="lower left", bbox_to_anchor=(0, -0.45))
    for g in range(trace.weights.shape[3]):
        axw = fig.add_subplot(bottom[0, 1 + g])
        im = axw.imshow(trace.weights[v, :, :, g], cmap="viridis", vmin=0, vmax=2, aspect="auto")
        axw.set_yticks(y, layers if g == 0 else [""] * len(layers), fontsize=7)
        axw.set_xticks(range(t), [str(i) for i in range(t)], fontsize=7)
        axw.set_xlabel("segment")
        axw.set_title(f"weights, group {g}", fontsize=9)
    fig.colorbar(im, ax=fig.axes[-1], fraction=0.05, label="weight (0-2)")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_offset_distribution(trace):
    """Histogram of the learned offsets over every recorded video, one panel per stage (the
    blocks of a stage pooled), one colour per offset group; the mean weight per segment below."""
    plt = _plt()
    stages = sorted(set(trace.stages))
    fig, axes = plt.subplots(2, len(stages), figsize=(2.6 * len(stages), 4.6), squeeze=False)
    bins = np.linspace(-2, 2, 41)
    for col, stage in enumerate(stages):
        layers = [i for i, s in enumerate(trace.stages) if s == stage]
        ax = axes[0, col]
        for g in range(trace.offsets.shape[2]):
            values = trace.offsets[:, layers, g].reshape(-1)
            ax.hist(values, bins=bins, color=GROUP_COLORS[g], alpha=0.6, label=f"o{g}")
        ax.axvline(0, color="k", lw=0.5)
        ax.set_title(f"layer{stage} ({len(layers)} blocks)", fontsize=9)
        ax.set_xlabel("offset (segments)", fontsize=8)
        axw = axes[1, col]
        t = trace.weights.shape[2]
        for g in range(trace.weights.shape[3]):
            w = trace.weights[:, layers, :, g].reshape(-1, t)
            axw.errorbar(np.arange(t) + (g - 0.5) * 0.15, w.mean(0), yerr=w.std(0), fmt="o-", ms=3, lw=1,
                         color=GROUP_COLORS[g], label=f"group {g}")
        axw.set_ylim(0, 2)
        axw.set_xlabel("segment", fontsize=8)
    axes[0, 0].set_ylabel("blocks x videos", fontsize=8)
    axes[1, 0].set_ylabel("weight (mean ± sd)", fontsize=8)
    axes[0, -1].legend(fontsize=7)
    axes[1, -1].legend(fontsize=7)
    fig.suptitle(f"learned offsets and segment weights over {trace.offsets.shape[0]} videos", fontsize=10)
    fig.tight_layout()
    return fig


def plot_offsets_by_class(trace, class_names: Sequence[str], pairs: Sequence[Sequence[int]] = ()):
    """Per stage: each video's offsets (dots) and the class mean (bar), class by class.
    Time-reversal pairs are shaded alike so mirrored behaviour is easy to spot."""
    plt = _plt()
    frame = trace.to_frame(class_names)
    stages = sorted(frame["stage"].unique())
    labels = sorted(frame["label"].unique())
    fig, axes = plt.subplots(len(stages), 1, figsize=(10, 1.9 * len(stages) + 1), sharex=True, squeeze=False)
    pair_of = {c: i for i, p in enumerate(pairs) for c in p}
    x = np.arange(len(labels))
    for ax, stage in zip(axes[:, 0], stages):
        sub = frame[frame["stage"] == stage]
        for c in labels:
            if c in pair_of:
                ax.axvspan(labels.index(c) - 0.5, labels.index(c) + 0.5, color=f"C{pair_of[c]}", alpha=0.07, lw=0)
        for g in sorted(sub["group"].unique()):
            part = sub[sub["group"] == g]
            means = part.groupby("label")["offset"].mean().reindex(labels).to_numpy()
            ax.bar(x + (g - 0.5) * 0.38, means, 0.38, color=GROUP_COLORS[g], alpha=0.55, label=f"o{g} mean")
            jitter = (part["video"].to_numpy() % 7 - 3) * 0.03
            ax.scatter(np.array([labels.index(c) for c in part["label"]]) + (g - 0.5) * 0.38 + jitter, part["offset"],
                       s=5, color=GROUP_COLORS[g], alpha=0.8)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylabel(f"layer{stage}\noffset", fontsize=8)
        ax.set_ylim(-2, 2)
    axes[0, 0].legend(fontsize=7, ncol=2, loc="upper right")
    axes[-1, 0].set_xticks(x, [_short(class_names[c], 24) for c in labels], rotation=35, ha="right", fontsize=7)
    fig.suptitle("offsets per class and stage (all blocks of a stage pooled; shaded: time-reversal pairs)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_weights_by_class(trace, class_names: Sequence[str], group: int = 0):
    """Per stage: the mean weight over segments of each class (one line per class)."""
    plt = _plt()
    stages = sorted(set(trace.stages))
    labels = np.unique(trace.labels)
    fig, axes = plt.subplots(1, len(stages), figsize=(3.2 * len(stages), 3.2), sharey=True, squeeze=False)
    for ax, stage in zip(axes[0], stages):
        layer_idx = [i for i, s in enumerate(trace.stages) if s == stage]
        for j, c in enumerate(labels):
            w = trace.weights[trace.labels == c][:, layer_idx, :, group].mean(axis=(0, 1))
            ax.plot(range(trace.num_segments), w, "-o", ms=3, color=f"C{j % 10}", label=_short(class_names[c], 24))
        ax.set_title(f"layer{stage}", fontsize=9)
        ax.set(xlabel="segment", ylim=(0, 2))
    axes[0, 0].set_ylabel(f"mean weight, group {group}")
    axes[0, -1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return fig
