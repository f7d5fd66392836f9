"""ONNX export of TIN, TSM and TSN recognizers (``tinlib export CONFIG CHECKPOINT OUT.onnx``). The
graph takes the uint8 frames the datasets yield and normalises them itself; the interlace goes
through its composite form, so the graph holds only standard operators."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from tinlib.data.normalization import normalize
from tinlib.errors import UserError

DEFAULT_OPSET = 18


class NormalizingRecognizer(nn.Module):
    """``recognizer`` behind :func:`~tinlib.data.normalization.normalize`: uint8 frames
    ``[B, V*T, 3, S, S]`` in, scores ``[B, K]`` out (what the exported graph computes)."""

    def __init__(self, recognizer: nn.Module):
        super().__init__()
        self.recognizer = recognizer

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.recognizer(normalize(frames))


def export_onnx(model: nn.Module, path: str | os.PathLike, *, input_size: int = 224, views: int = 1,
                opset: int = DEFAULT_OPSET, dynamic_batch: bool = True) -> Path:
    """Export ``model`` (a Recognizer) to ``path``; its input is uint8 RGB ``frames [B, views*T, 3, S, S]``
    (B dynamic when ``dynamic_batch``), normalised inside the graph, its output ``scores [B, K]``.
    Written atomically."""
    path = Path(path)
    segments = int(model.num_segments)  # type: ignore[arg-type]
    wrapped = NormalizingRecognizer(model).eval()
    example = torch.randint(0, 256, (2 if dynamic_batch else 1, views * segments, 3, input_size, input_size),
                            dtype=torch.uint8)
    dynamic = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None
    program = torch.onnx.export(wrapped, (example,), dynamo=True, opset_version=opset, dynamic_shapes=dynamic,
                                input_names=["frames"], output_names=["scores"], verbose=False)
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
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
    """Largest |PyTorch - onnxruntime| over the scores of uint8 ``frames [B, V*T, 3, S, S]``
    (PyTorch: ``model(normalize(frames))``; the graph normalises them itself)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("onnxruntime is not installed: pip install 'tinlib[onnx]', or pass --no-verify") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = NormalizingRecognizer(model).eval()(frames).numpy()
    got = session.run(None, {session.get_inputs()[0].name: frames.numpy()})[0]
    return float(abs(expected - got).max())
