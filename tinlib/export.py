"""ONNX export of TIN, TSM and TSN recognizers (``tinlib export CONFIG CHECKPOINT OUT.onnx``).

The interlace is exported through its composite form (floor, gather, where, mul, add), so the
ONNX graph holds only standard operators and computes the offsets from its input at run time.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch import nn

DEFAULT_OPSET = 18


def export_onnx(model: nn.Module, path: str | os.PathLike, *, input_size: int = 224, views: int = 1,
                opset: int = DEFAULT_OPSET, dynamic_batch: bool = True) -> Path:
    """Export ``model`` (a Recognizer) to ``path``; its input is ``frames [B, views*T, 3, S, S]``
    (B dynamic when ``dynamic_batch``), its output ``scores [B, K]``. Written atomically."""
    path = Path(path)
    model = model.eval()
    example = torch.randn(2 if dynamic_batch else 1, views * model.num_segments, 3, input_size, input_size)
    dynamic = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None
    program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, dynamic_shapes=dynamic,
                                input_names=["frames"], output_names=["scores"], verbose=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        program.save(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def onnx_max_abs_diff(model: nn.Module, path: str | os.PathLike, frames: torch.Tensor) -> float:
    """Largest |PyTorch - onnxruntime| over the scores of ``frames [B, V*T, 3, S, S]``."""
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise RuntimeError("onnxruntime is not installed: pip install 'tinlib[onnx]'") from err
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model.eval()(frames).numpy()
    got = session.run(None, {session.get_inputs()[0].name: frames.numpy()})[0]
    return float(abs(expected - got).max())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinlib export", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="config name (tinlib/configs) or path")
    parser.add_argument("checkpoint", help="trained checkpoint (any layout tinlib.checkpoint reads)")
    parser.add_argument("out", help="output .onnx file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. model.num_classes=10 (repeatable)")
    parser.add_argument("--input-size", type=int, default=None, help="frame side (default: the config's)")
    parser.add_argument("--views", type=int, default=1, help="views (clips x crops) per sample")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--static-batch", action="store_true", help="fix the batch size to 1")
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime comparison")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="unpickle the checkpoint fully (only for files you trust)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from tinlib.engine.common import RunError, build_model, check_checkpoint_fits
    from tinlib.engine.config import ConfigError, load_config

    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        model = build_model(cfg, pretrained=False, load_from=False, verbose=False)
        check_checkpoint_fits(model, args.checkpoint, cfg, trusted=args.trust_checkpoint)
    except (ConfigError, RunError) as err:
        print(f"tinlib export: {err}")
        return 2
    size = args.input_size or cfg.data.input_size
    out = export_onnx(model, args.out, input_size=size, views=args.views, opset=args.opset,
                      dynamic_batch=not args.static_batch)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): frames [B, {args.views * cfg.model.num_segments}, 3, "
          f"{size}, {size}] -> scores [B, {cfg.model.num_classes}]")
    if not args.no_verify:
        frames = torch.randn(2, args.views * cfg.model.num_segments, 3, size, size)
        print(f"onnxruntime vs PyTorch, max |difference| of the scores: {onnx_max_abs_diff(model, out, frames):.2e}")
    return 0
