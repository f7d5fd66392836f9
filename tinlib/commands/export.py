"""``tinlib export CONFIG CHECKPOINT OUT.onnx``: a trained recognizer as an ONNX graph of standard operators."""
from __future__ import annotations

import argparse
import logging

from tinlib.cli import command_main
from tinlib.commands import add_override_arguments, overrides_of, positive_int

PROG = "tinlib export"


def build_parser() -> argparse.ArgumentParser:
    from tinlib.export import DEFAULT_OPSET

    parser = argparse.ArgumentParser(prog=PROG, description="Export a trained recognizer to ONNX (input: uint8 "
                                     "frames, normalised in the graph).")
    parser.add_argument("config", help="config name (tinlib/configs) or path")
    parser.add_argument("checkpoint", help="trained checkpoint (any layout tinlib.checkpoint reads)")
    parser.add_argument("out", help="output .onnx file")
    add_override_arguments(parser, "model.num_segments=16", checkpoint=True)
    parser.add_argument("--input-size", type=positive_int, default=None, help="frame side (default: the config's)")
    parser.add_argument("--views", type=positive_int, default=1, help="views (clips x crops) per sample (default 1)")
    parser.add_argument("--opset", type=positive_int, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--static-batch", action="store_true", help="fix the batch size to 1")
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime comparison")
    return parser


def _run(args: argparse.Namespace) -> int:
    import torch

    from tinlib.config import load_config
    from tinlib.engine.build import build_model, check_checkpoint_fits
    from tinlib.export import export_onnx, onnx_max_abs_diff
    from tinlib.io import check_output_file

    log = logging.getLogger(__name__)
    check_output_file(args.out, "output file")
    cfg = load_config(args.config, overrides_of(args))
    model = build_model(cfg, pretrained=False, load_from=False, verbose=False)
    check_checkpoint_fits(model, args.checkpoint, cfg, trusted=args.trust_checkpoint)
    size = args.input_size or cfg.data.input_size
    opset = {"opset": args.opset} if args.opset else {}
    out = export_onnx(model, args.out, input_size=size, views=args.views, dynamic_batch=not args.static_batch,
                      **opset)
    log.info("wrote %s (%.1f MB): uint8 frames [B, %d, 3, %d, %d] -> scores [B, %d]", out, out.stat().st_size / 1e6,
             args.views * cfg.model.num_segments, size, size, cfg.model.num_classes)
    if not args.no_verify:
        frames = torch.randint(0, 256, (2, args.views * cfg.model.num_segments, 3, size, size), dtype=torch.uint8)
        log.info("onnxruntime vs PyTorch, max |difference| of the scores: %.2e", onnx_max_abs_diff(model, out, frames))
    return 0


main = command_main(PROG, build_parser, _run)
