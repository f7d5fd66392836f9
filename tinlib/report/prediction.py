"""Figures and files of a video prediction (``tinlib predict --out``, the predict notebook): the
top-k bars, the per-window timeline, and the JSON / CSV / PNG written for one video.
"""
from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tinlib.io import atomic_write_json, atomic_write_text
from tinlib.labels import class_name
from tinlib.prediction import VideoPrediction, WindowTimeline
from tinlib.report.plots import missing_glyphs_quiet


def write_outputs(prediction: VideoPrediction, out_dir: str | os.PathLike, stem: str, k: int,
                  names: Sequence[str] | None = None, extra: dict | None = None) -> list[Path]:
    """``<stem>.json`` (the prediction), and with windows ``<stem>_windows.csv`` and
    ``<stem>_windows.png`` (the timeline) in ``out_dir``. Returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [atomic_write_json(out / f"{stem}.json", {**(extra or {}), **prediction.to_dict(k, names)})]
    timeline = prediction.windows
    if timeline is not None:
        rows = timeline.rows(k, names)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        written.append(atomic_write_text(out / f"{stem}_windows.csv", buf.getvalue()))
        fig = plot_timeline(timeline, names, title=Path(prediction.video).name)
        png = out / f"{stem}_windows.png"
        with missing_glyphs_quiet():  # class names in any script
            fig.savefig(png, dpi=90, bbox_inches="tight")
        _pyplot().close(fig)
        written.append(png)
    return [Path(p) for p in written]


def _pyplot():
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # no display needed; notebooks import pyplot (inline backend) first
    import matplotlib.pyplot as plt

    return plt


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def plot_topk(top: Sequence[dict[str, Any]], title: str = ""):
    """Horizontal bars of a top-k list (most probable on top); returns the Figure."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(top) + 1.0))
    y = np.arange(len(top))
    ax.barh(y, [t["prob"] for t in top], color="#d62728")
    ax.set_yticks(y, [_short(t["name"]) for t in top], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    for yi, t in zip(y, top):
        ax.text(min(t["prob"] + 0.01, 0.9), yi, f"{t['prob']:.3f}", va="center", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_timeline(timeline: WindowTimeline, names: Sequence[str] | None = None, *, max_classes: int = 6,
                  segments: Sequence[tuple[int, int, str]] = (), title: str = ""):
    """Per-window probabilities of the classes that lead some window (up to ``max_classes``, most
    often leading first), over the window centres, and the milliseconds per window below.
    ``segments``: ``(start frame, end frame, name)`` spans to shade (e.g. the true classes)."""
    plt = _pyplot()
    fig, (ax, axt) = plt.subplots(2, 1, figsize=(10, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    unit = timeline.fps or 1.0
    x = timeline.centers / unit
    leaders, counts = np.unique(timeline.probs.argmax(axis=1), return_counts=True)
    shown = [int(c) for c in leaders[np.argsort(-counts, kind="stable")][:max_classes]]
    for i, (s, e, label) in enumerate(segments):
        ax.axvspan(s / unit, e / unit, color=f"C{i % 10}", alpha=0.08)
        ax.text((s + e) / 2 / unit, 0.98, _short(label, 22), ha="center", va="top", fontsize=7,
                transform=ax.get_xaxis_transform())
    for c in shown:
        ax.plot(x, timeline.probs[:, c], marker="o", ms=3, label=_short(class_name(c, names)))
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    axt.plot(x, timeline.model_ms, marker=".", label=f"model ({timeline.device})")
    axt.plot(x, timeline.decode_ms, marker=".", label="decode + transform")
    axt.set_ylabel("ms / window")
    axt.set_xlabel("window centre (s)" if timeline.fps else "window centre (frame)")
    axt.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    what = f"{len(timeline)} windows of {timeline.window} frames, stride {timeline.stride}"
    ax.set_title(f"{title}: {what}" if title else what, fontsize=10)
    return fig
