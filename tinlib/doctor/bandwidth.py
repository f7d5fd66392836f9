"""Effective memory bandwidth of the interlace op on a GPU (the bytes it must move at least, divided
by its time: 2 x the tensor forward, 3 x backward), beside the GPU's datasheet peak."""
from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tinlib.doctor.checks import PASS, SKIPPED, Check
from tinlib.doctor.opcheck import SEGMENTS, STAGE_SHAPES, dtype_name, make_inputs
from tinlib.ops import interlace

WARMUP_ITERATIONS = 5
TIMED_ITERATIONS = 20
# Zeroed before every timed call, so the op's input is not still in L2 (50 MB on an H100,
# 126 MB on a B200) from the previous call: the time is that of reading it from DRAM.
L2_FLUSH_BYTES = 512 * 1024 ** 2
# The largest call in TIN-R50 at 224 px: stage 1 (64 fold channels at 56x56) for 6 videos.
BANDWIDTH_SHAPE = (6, SEGMENTS, *STAGE_SHAPES["stage1"])


@dataclass(frozen=True)
class PeakBandwidth:
    """Peak DRAM bandwidth of a GPU model in GB/s (10^9 bytes/s) and where the number is from."""

    pattern: str  # regular expression matched (case-insensitive) against torch's device name
    label: str
    gb_per_s: float
    source: str
    min_memory_gib: float = 0.0  # the variant with more memory has more bandwidth (A100 80GB)


# Vendor datasheet numbers; the first entry that matches wins, so variants come before the base
# model. torch names them e.g. "NVIDIA H100 80GB HBM3" (SXM), "NVIDIA H100 PCIe",
# "NVIDIA A100-SXM4-80GB", "Tesla V100-SXM2-32GB", "NVIDIA GeForce RTX 4090".
PEAK_BANDWIDTH: tuple[PeakBandwidth, ...] = (
    PeakBandwidth(r"\bb200\b", "B200", 8000, "NVIDIA HGX B200 datasheet (8 TB/s per GPU)"),
    PeakBandwidth(r"\bh200\b", "H200", 4800, "NVIDIA H200 Tensor Core GPU datasheet (SXM and NVL: 4.8 TB/s)"),
    PeakBandwidth(r"\bh100\b.*\bnvl\b", "H100 NVL", 3900, "NVIDIA H100 Tensor Core GPU datasheet (NVL: 3.9 TB/s)"),
    PeakBandwidth(r"\bh100\b.*\bpcie\b", "H100 PCIe", 2000, "NVIDIA H100 Tensor Core GPU datasheet (PCIe: 2 TB/s)"),
    PeakBandwidth(r"\bh100\b", "H100 SXM", 3350, "NVIDIA H100 Tensor Core GPU datasheet (SXM: 3.35 TB/s)"),
    PeakBandwidth(r"\ba100\b.*\bpcie\b", "A100 80GB PCIe", 1935,
                  "NVIDIA A100 Tensor Core GPU datasheet (80GB PCIe: 1,935 GB/s)", min_memory_gib=60),
    PeakBandwidth(r"\ba100\b", "A100 80GB SXM", 2039, "NVIDIA A100 Tensor Core GPU datasheet (80GB SXM: 2,039 GB/s)",
                  min_memory_gib=60),
    PeakBandwidth(r"\ba100\b", "A100 40GB", 1555,
                  "NVIDIA A100 Tensor Core GPU datasheet (40GB PCIe and SXM: 1,555 GB/s)"),
    PeakBandwidth(r"\bv100s\b", "V100S PCIe", 1134, "NVIDIA V100 Tensor Core GPU datasheet (V100S PCIe: 1,134 GB/s)"),
    PeakBandwidth(r"\bv100\b", "V100", 900, "NVIDIA V100 Tensor Core GPU datasheet (SXM2 and PCIe: 900 GB/s)"),
    PeakBandwidth(r"\bl40s?\b", "L40/L40S", 864, "NVIDIA L40 and L40S datasheets (864 GB/s)"),
    PeakBandwidth(r"\bl4\b", "L4", 300, "NVIDIA L4 Tensor Core GPU datasheet (300 GB/s)"),
    PeakBandwidth(r"\ba10\b", "A10", 600, "NVIDIA A10 Tensor Core GPU datasheet (600 GB/s)"),
    PeakBandwidth(r"\bt4\b", "T4", 320, "NVIDIA T4 Tensor Core GPU datasheet (320 GB/s)"),
    PeakBandwidth(r"\brtx 4090\b", "RTX 4090", 1008, "NVIDIA GeForce RTX 4090 specifications (1,008 GB/s)"),
    PeakBandwidth(r"\brtx 3090\b(?! ti)", "RTX 3090", 936, "NVIDIA GeForce RTX 3090 specifications (936 GB/s)"),
)


def peak_bandwidth(name: str, memory_bytes: int | None = None) -> PeakBandwidth | None:
    """The datasheet peak of the GPU torch calls ``name`` (with ``memory_bytes`` of memory), or
    None for a GPU not in the table and for a MIG slice (which has a share of the bandwidth)."""
    lowered = name.lower()
    if re.search(r"\bmig\b", lowered):
        return None
    if memory_bytes:
        memory_gib = memory_bytes / 1024 ** 3
    else:  # without the size, trust the name ("NVIDIA A100-SXM4-80GB")
        memory_gib = 80.0 if re.search(r"80\s?gb", lowered) else 0.0
    for entry in PEAK_BANDWIDTH:
        if re.search(entry.pattern, lowered) and memory_gib >= entry.min_memory_gib:
            return entry
    return None


def time_cuda(run: Callable[[], object], device: torch.device) -> float:
    """Median seconds of ``run()`` on ``device``, timed with CUDA events after a warm-up, with
    L2 flushed before each timed call. Call it inside ``torch.cuda.device(device)``."""
    flush = torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device)
    for _ in range(WARMUP_ITERATIONS):  # compile/autotune, allocator caches, clocks up
        run()
    torch.cuda.synchronize(device)
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(TIMED_ITERATIONS)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(TIMED_ITERATIONS)]
    stream = torch.cuda.current_stream(device)  # where torch (and Triton, in this device context) launch
    for start, end in zip(starts, ends):
        flush.zero_()
        start.record(stream)
        run()
        end.record(stream)
    torch.cuda.synchronize(device)
    del flush
    return statistics.median(start.elapsed_time(end) for start, end in zip(starts, ends)) / 1000.0


def _rate(nbytes: int, seconds: float, peak: PeakBandwidth | None) -> tuple[float, str]:
    """(GB/s, "1234 GB/s (56%)") for ``nbytes`` moved in ``seconds``; the % only with a known peak."""
    gb_per_s = nbytes / seconds / 1e9
    share = f" ({100 * gb_per_s / peak.gb_per_s:.0f}%)" if peak else ""
    return gb_per_s, f"{gb_per_s:.0f} GB/s{share}"


def _time_op(device: torch.device, backend: str, dtype: torch.dtype) -> tuple[tuple[float, float], int, int]:
    """((forward s, backward s), bytes of x, bytes of offset + weight) at BANDWIDTH_SHAPE."""
    x, offset, weight, grad_out = make_inputs(BANDWIDTH_SHAPE, dtype, device)
    inputs = [t.clone().requires_grad_() for t in (x, offset, weight)]
    out = interlace(inputs[0], inputs[1], inputs[2], backend=backend)

    def forward() -> object:
        with torch.no_grad():
            return interlace(x, offset, weight, backend=backend)

    def backward() -> object:
        return torch.autograd.grad(out, inputs, grad_out, retain_graph=True)

    times = (time_cuda(forward, device), time_cuda(backward, device))
    return times, x.numel() * x.element_size(), (offset.numel() + weight.numel()) * offset.element_size()


def check_bandwidth(device: torch.device, backend: str, dtype: torch.dtype, skip_reason: str | None = None,
                    peak: PeakBandwidth | None = None, gpu_name: str = "this GPU") -> list[Check]:
    """"interlace bandwidth [backend]" on the CUDA ``device``: forward and backward (all three
    gradients) at the stage-1, 6-video shape; GB/s and % of ``peak`` when the GPU is known."""
    name, dev, dt = f"interlace bandwidth [{backend}]", str(device), dtype_name(dtype)
    if skip_reason:
        return [Check("bandwidth", name, dev, dt, SKIPPED, skip_reason)]
    (forward_s, backward_s), tensor_bytes, param_bytes = _time_op(device, backend, dtype)
    torch.cuda.empty_cache()
    forward_rate, forward_text = _rate(2 * tensor_bytes + param_bytes, forward_s, peak)
    backward_rate, backward_text = _rate(3 * tensor_bytes + 3 * param_bytes, backward_s, peak)
    if peak:
        peak_text = f"of the {peak.gb_per_s:g} GB/s peak ({peak.label}, {peak.source})"
    else:
        peak_text = f"(peak of {gpu_name!r} not known: no share of peak)"
    detail = (f"forward {forward_text}, backward {backward_text} {peak_text}; {list(BANDWIDTH_SHAPE)}, "
              f"median of {TIMED_ITERATIONS} calls")
    data = {"shape": list(BANDWIDTH_SHAPE), "forward_gb_per_s": forward_rate, "backward_gb_per_s": backward_rate,
            "forward_ms": forward_s * 1e3, "backward_ms": backward_s * 1e3,
            "peak_gb_per_s": peak.gb_per_s if peak else None, "peak_source": peak.source if peak else None}
    return [Check("bandwidth", name, dev, dt, PASS, detail, data)]
