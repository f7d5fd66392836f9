"""``tinlib predict CONFIG CHECKPOINT VIDEO...``: top-k classes of single videos (:mod:`tinlib.engine.predict`),
as text or ``--json``, optionally window by window; files only with ``--out DIR``, never in ``results/``."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tinlib.cli import command_main
from tinlib.commands import add_device_argument, add_override_arguments, overrides_of, positive_int

if TYPE_CHECKING:
    from tinlib.prediction import VideoPrediction


def build_parser() -> argparse.ArgumentParser:
    from tinlib.config import available_configs

    p = argparse.ArgumentParser(
        prog="tinlib predict",
        description="Classify videos with a checkpoint through the config's test pipeline and print the top-k "
                    "classes with their probabilities. Writes nothing unless --out is given.",
        epilog="configs: " + ", ".join(available_configs()))
    p.add_argument("config", help="config name (see tinlib/configs) or path to a .py/.json config")
    p.add_argument("checkpoint", help="checkpoint: a local file, an http(s) URL or published:<config>")
    p.add_argument("videos", nargs="+", metavar="VIDEO",
                   help="video file (mp4, webm, avi, ...) or folder of frames (img_00001.jpg, ...)")
    p.add_argument("--topk", type=positive_int, default=5, help="number of classes to show (default 5)")
    p.add_argument("--labels", help="class names: a file with one name per line (line i = class i), or sthv1, "
                                    "sthv2, k400 (default: from the config's dataset)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument("--window", type=positive_int, metavar="N", help="also score windows of N frames (a stream)")
    p.add_argument("--stride", type=positive_int, metavar="S", help="frames between window starts (default: N)")
    p.add_argument("--out", metavar="DIR", help="write <video>.json (and the window CSV and plot) into DIR")
    add_override_arguments(p, "test.num_clips=2 test.average_clips=prob", checkpoint=True)
    add_device_argument(p)
    return p


def _unique_stems(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    stems = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        stems.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return stems


def _fmt_frames(start: int, end: int, fps: float | None) -> str:
    text = f"{start}-{end - 1}"
    return f"{text} ({start / fps:.1f}-{end / fps:.1f} s)" if fps else text


def print_prediction(result: VideoPrediction, k: int, names: Sequence[str] | None, stream=None) -> None:
    """Print the top-``k`` classes of ``result`` (``names``: class names, None for indices) and its
    window table when ``result.windows`` is set, to ``stream`` (default: stdout)."""
    out = stream or sys.stdout
    views = f"{result.views} view{'s' if result.views > 1 else ''} of {result.frame_indices.shape[1]} segments"
    print(f"{result.video}: {result.num_frames} frames, {views}, {1000 * result.seconds:.0f} ms on {result.device}",
          file=out)
    for item in result.top(k, names):
        print(f"  {item['rank']:>2}. {item['prob']:.4f}  {item['name']}", file=out)
    timeline = result.windows
    if timeline is None:
        return
    print(f"  {len(timeline)} window{'s' if len(timeline) > 1 else ''} of {timeline.window} frames every "
          f"{timeline.stride}; model {timeline.model_ms.mean():.1f} ms/window (median "
          f"{float(np.median(timeline.model_ms)):.1f}) on {timeline.device}, decode + transform "
          f"{timeline.decode_ms.mean():.1f} ms/window", file=out)
    width = max(len(_fmt_frames(int(s), int(e), timeline.fps)) for s, e in zip(timeline.starts, timeline.ends))
    print(f"  {'window':>6}  {'frames':<{width}}  {'prob':>6}  {'model ms':>8}  top-1", file=out)
    for row in timeline.rows(1, names):
        frames = _fmt_frames(row["start"], row["end"], timeline.fps)
        print(f"  {row['window']:>6}  {frames:<{width}}  {row['top1_prob']:>6.3f}  {row['model_ms']:>8.1f}  "
              f"{row['top1_name']}", file=out)


def run(args: argparse.Namespace) -> int:
    """Classify each video of ``args`` and print (or with ``--out`` also write) its top-k classes."""
    import torch

    from tinlib.config import ConfigError, load_config
    from tinlib.data.sources import open_source
    from tinlib.engine.predict import Predictor
    from tinlib.errors import UserError
    from tinlib.io import check_output_dir
    from tinlib.labels import LABELS_HINT, class_names_for
    from tinlib.report.prediction import write_outputs

    if args.stride is not None and args.window is None:
        raise UserError("--stride needs --window N (the window length in frames)")
    if args.out:
        check_output_dir(args.out, "--out")
    try:
        cfg = load_config(args.config, overrides_of(args))
    except ConfigError as err:
        raise UserError(str(err)) from None
    # every video and the label file are opened before the model is loaded: a bad one fails fast
    sources = [open_source(video, cfg) for video in args.videos]
    if args.labels is not None:
        class_names_for(cfg, args.labels)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    predictor = Predictor.from_checkpoint(cfg, args.checkpoint, device=args.device, labels=args.labels,
                                          trusted=args.trust_checkpoint)
    names = predictor.class_names
    k = min(args.topk, cfg.model.num_classes)
    header: dict[str, Any] = {"config": cfg.name, "checkpoint": predictor.checkpoint, "device": str(predictor.device),
                              "class_names": predictor.class_names_source, "k": k}
    stems = _unique_stems([s.name for s in sources])
    documents = []
    for source, stem in zip(sources, stems):
        result = predictor.predict(source)
        if args.window is not None:
            result.windows = predictor.windows(source, args.window, args.stride)
        if args.out:
            for path in write_outputs(result, args.out, stem, k, names, extra=header):
                print(f"wrote {path}", file=sys.stderr)
        if args.json:
            documents.append(result.to_dict(k, names))
        else:
            print_prediction(result, k, names)
    if args.json:
        print(json.dumps({**header, "videos": documents}, indent=2))
    elif names is None:
        print(f"(class names unknown for config {cfg.name}: indices shown; {LABELS_HINT})", file=sys.stderr)
    return 0


main = command_main("tinlib predict", build_parser, run)
