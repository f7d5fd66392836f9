"""``tinlib prepare sthv1|sthv2|k400|extract|synthetic ...``: annotation lists and frames from the
official releases (:mod:`tinlib.data.prepare`, :mod:`tinlib.data.extract`), or the embedded
synthetic dataset (:mod:`tinlib.data.synthetic`)."""
from __future__ import annotations

import argparse
from typing import Any

from tinlib.cli import command_main
from tinlib.commands import positive_even_int, positive_int
from tinlib.data.releases import K400, RAWFRAME_TEMPLATE, SPLITS, STHV1, STHV2, SYNTHETIC, choose_splits
from tinlib.errors import UserError

PROG = "tinlib prepare"


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", required=True, help="folder holding the official release files")
    p.add_argument("--out", help="where lists (and frames) go (default: --root)")
    p.add_argument("--splits", default=",".join(SPLITS),
                   help="the splits to prepare, comma-separated (default: all); --splits val writes only the val "
                        "lists and frames, what testing reads; a later run with all splits adds the train split "
                        "and keeps the val frames extracted")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def _add_frame_size(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--short-side", type=positive_int, help="resize frames to this short side (default: native size)")
    g.add_argument("--height", type=positive_int, help="resize frames to this height")


def _add_workers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=positive_int, help="frame-extraction processes (default: CPU cores, at most 8)")


def _add_debug(p: argparse.ArgumentParser) -> None:
    # also accepted after the sub-command's options (``tinlib prepare sthv1 --root R --debug``);
    # SUPPRESS keeps the top-level value when the flag is given before the sub-command
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback of an error (or set TINLIB_DEBUG=1)")


def _sthv1_parser(sub: Any) -> None:
    p = sub.add_parser("sthv1", help="Something-Something V1 frame folders + CSVs -> rawframe lists",
                       description="Something-Something V1: check the frame folders and write MMAction2 rawframe "
                                   "lists (sthv1_<split>_list_rawframes.txt) from the release's CSVs.")
    _add_common(p)
    p.add_argument("--frames-dir", help=f"folder of <id>/00001.jpg folders (default: ROOT/{STHV1.media_dirs[0][0]})")


def _sthv2_parser(sub: Any) -> None:
    p = sub.add_parser("sthv2", help="Something-Something V2 webm + JSON -> lists; extracts frames by default",
                       description="Something-Something V2: extract JPEG frames from the webm videos (resumable) "
                                   "and write MMAction2 lists from the release's JSON files.")
    _add_common(p)
    p.add_argument("--videos-dir", help=f"folder of <id>.webm (default: ROOT/{STHV2.media_dirs[0][0]})")
    p.add_argument("--no-extract", action="store_true",
                   help="write video lists only; not recommended: seeking in SthV2's webm (VP8/VP9) files is "
                        "unreliable, so training from extracted frames (the default) is the supported path")
    _add_frame_size(p)
    _add_workers(p)


def _k400_parser(sub: Any) -> None:
    p = sub.add_parser("k400", help=f"Kinetics-400 CSVs + clips -> lists; extracts frames (short side "
                                    f"{K400.extract_short_side})",
                       description="Kinetics-400: extract JPEG frames from the clips (resumable) and write "
                                   "MMAction2 lists from the annotation CSVs.")
    _add_common(p)
    p.add_argument("--no-extract", action="store_true", help="write video lists only, extract no frames")
    p.add_argument("--short-side", type=positive_int, default=K400.extract_short_side,
                   help=f"resize frames to this short side (default {K400.extract_short_side})")
    _add_workers(p)
    p.add_argument("--label-map", help="class names one per line, in index order (default: sorted train classes)")
    p.add_argument("--rename-class-folders", action="store_true",
                   help="rename class folders with spaces to use '_' (MMAction2's rename_classnames.sh)")


def _extract_parser(sub: Any) -> None:
    p = sub.add_parser("extract", help="extract JPEG frames from every video below a folder (resumable)",
                       description="Extract JPEG frames from every video below a folder, one folder of frames "
                                   "per video (same relative path, without the extension); resumable.")
    p.add_argument("--videos", required=True, help="folder of videos (searched recursively)")
    p.add_argument("--out", required=True, help="where the frame folders go")
    _add_frame_size(p)
    _add_workers(p)
    p.add_argument("--filename-tmpl", default=RAWFRAME_TEMPLATE,
                   help=f"frame file names, a str.format template of the 1-based index (default {RAWFRAME_TEMPLATE})")


def _synthetic_parser(sub: Any) -> None:
    from tinlib.data.synthetic import PRESETS

    p = sub.add_parser("synthetic", help="write the embedded synthetic temporal dataset in an official layout",
                       description="Write the embedded synthetic temporal dataset in an official layout.")
    p.add_argument("--layout", choices=SYNTHETIC.layouts, default="sthv1",
                   help="which release's layout to imitate: sthv1 frame folders (default, what the demo "
                        "reads), sthv2 webm videos, k400 mp4 clips")
    p.add_argument("--out", required=True, help="output folder (created; reused if written with the same options)")
    p.add_argument("--size", choices=sorted(PRESETS), default="demo",
                   help="videos per class and split, frames per video and frame height (default demo: "
                        + ", ".join(f"{PRESETS['demo'][f'per_class_{s}']} {s}" for s in SYNTHETIC.splits)
                        + " videos per class)")
    p.add_argument("--num-train", type=int, help="training videos in all (default: from --size)")
    p.add_argument("--num-val", type=int, help="validation videos, checked during training (default: from --size)")
    p.add_argument("--num-test", type=int, help="held-out test videos, what the demo evaluates on "
                                                "(default: from --size)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the videos (default 0)")
    p.add_argument("--height", type=positive_even_int, help="frame height in pixels, even (default: from --size)")
    p.add_argument("--workers", type=positive_int, help="writer processes (default: CPU cores, at most 4)")
    p.add_argument("--extract-frames", action="store_true", help="video layouts: also extract JPEG frames")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a folder that holds other files (deleting them) or rewrite the dataset")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``tinlib prepare`` with one sub-command per dataset, ``extract`` and ``synthetic``."""
    ap = argparse.ArgumentParser(prog=PROG, description="Dataset preparation from the official release files: "
                                                        "MMAction2 lists and frame extraction.")
    sub = ap.add_subparsers(dest="dataset", required=True, metavar="{sthv1,sthv2,k400,extract,synthetic}")
    for add_parser in (_sthv1_parser, _sthv2_parser, _k400_parser, _extract_parser, _synthetic_parser):
        add_parser(sub)
    for sub_parser in sub.choices.values():
        _add_debug(sub_parser)
    return ap


def _synthetic(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tinlib.data.synthetic import write_synthetic

    meta_path = Path(args.out) / SYNTHETIC.meta_file
    written_before = meta_path.stat().st_mtime_ns if meta_path.is_file() else None
    meta = write_synthetic(args.out, args.layout, num_train=args.num_train, num_val=args.num_val,
                           num_test=args.num_test, seed=args.seed, size=args.size, height=args.height,
                           workers=args.workers, extract_frames=args.extract_frames, overwrite=args.overwrite,
                           progress=not args.quiet)
    reused = written_before is not None and meta_path.stat().st_mtime_ns == written_before
    timing = "already there with these options: reused" if reused else f"written in {meta['seconds']} s"
    print(f"synthetic {meta['layout']} dataset in {meta['root']}: {meta['num_train']} train / {meta['num_val']} val "
          f"/ {meta['num_test']} test videos, {meta['num_classes']} classes ({len(meta['reversal_pairs'])} "
          f"time-reversal pairs), {timing}")
    print(f"  kind={meta['kind']} train_list={meta['train_list']} val_list={meta['val_list']} "
          f"test_list={meta['test_list']}")
    print(f"  data_prefix={meta['data_prefix']} filename_tmpl={meta['filename_tmpl']} "
          f"start_index={meta['start_index']}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the ``tinlib prepare`` sub-command parsed into ``args``; returns the exit status (1 when frames failed)."""
    from tinlib.io import check_output_dir

    # before any work; without --out a release's lists (and frames) go into --root
    check_output_dir(args.out or args.root, "--out" if args.out else "--root (where the output goes without --out)")
    if args.dataset == "synthetic":
        return _synthetic(args)
    if args.dataset == "extract":
        from tinlib.data.extract import extract_frames

        report = extract_frames(args.videos, args.out, short_side=args.short_side, height=args.height,
                                workers=args.workers, filename_tmpl=args.filename_tmpl)
        return 1 if report.failed else 0
    from tinlib.data import prepare

    try:
        splits = choose_splits(args.splits)
    except ValueError as err:
        raise UserError(f"--splits: {err}") from None
    if args.dataset == "sthv1":
        prepare.prepare_sthv1(args.root, args.out, frames_dir=args.frames_dir, splits=splits, quiet=args.quiet)
    elif args.dataset == "sthv2":
        prepare.prepare_sthv2(args.root, args.out, videos_dir=args.videos_dir, extract=not args.no_extract,
                              short_side=args.short_side, height=args.height, workers=args.workers, splits=splits,
                              quiet=args.quiet)
    else:
        prepare.prepare_kinetics400(args.root, args.out, extract=not args.no_extract, short_side=args.short_side,
                                    workers=args.workers, label_map=args.label_map,
                                    rename_class_folders=args.rename_class_folders, splits=splits, quiet=args.quiet)
    return 0


main = command_main(PROG, build_parser, run)
