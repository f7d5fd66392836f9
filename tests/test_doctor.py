"""tinlib doctor on the CPU: it passes here, --json lists every check, failures set the exit
status and say which check failed and why, GPU checks without a GPU say "no CUDA device".

No timings are asserted; the GPU branches (Triton, bandwidth with CUDA events) need a GPU.
"""
from __future__ import annotations

import collections
import json
import re

import numpy as np
import pytest
import torch

from tinlib import ops
from tinlib.commands import doctor as doctor_command
from tinlib.doctor import FAIL, PASS, RESULTS, SKIPPED, blockcheck, decoders, opcheck, train_step
from tinlib.doctor.bandwidth import peak_bandwidth

HAS_CUDA = torch.cuda.is_available()
DTYPES = ("float32", "float16", "bfloat16")
GIB = 1024 ** 3


def table_rows(text: str) -> dict[tuple[str, str, str], tuple[str, str]]:
    """{(check, device, dtype): (result, detail)} from the verdict table in ``text``; the column
    spans are read from the dashes under the header."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("check ") and "result" in line)
    dashes = lines[header + 1]
    spans, start = [], 0
    for part in dashes.split("  "):
        spans.append((start, start + len(part)))
        start += len(part) + 2
    rows = {}
    for line in lines[header + 2:]:
        if not line.strip():
            break
        cells = [line[a:b].strip() for a, b in spans[:-1]] + [line[spans[-1][0]:].strip()]
        check, device, dtype, result, detail = cells
        rows[(check, device, dtype)] = (result.lower(), detail)
    return rows


@pytest.mark.slow
def test_doctor_passes_on_this_machine(capsys):
    status = doctor_command.main([])
    out, err = capsys.readouterr()
    assert status == 0, out
    rows = table_rows(out)
    for dtype in DTYPES:
        for direction in ("forward", "backward"):
            result, detail = rows[(f"interlace {direction} [reference]", "cpu", dtype)]
            assert result == PASS, detail
            assert "<= tol" in detail
    for direction in ("forward", "backward"):
        result, detail = rows[(f"TIN module {direction} [fused]", "cpu", "float32")]
        assert result == PASS and "<= tol" in detail and "grad adjoint/mmcv" in detail
    assert rows[("train step [fp32]", "cpu", "float32")][0] == PASS
    amp_result, amp_detail = rows[("train step [amp]", "cpu", "bfloat16")]
    assert amp_result == PASS or (amp_result == SKIPPED and "bfloat16" in amp_detail)
    assert rows[("decode video [pyav]", "cpu", "-")][0] == PASS
    assert rows[("decode JPEG frames [opencv]", "cpu", "-")][0] == PASS
    decord_result, decord_detail = rows[("decode video [decord]", "cpu", "-")]
    assert decord_result == PASS or (decord_result == SKIPPED and "not installed" in decord_detail)
    torchcodec_result, torchcodec_detail = rows[("decode video [torchcodec]", "cpu", "-")]
    assert torchcodec_result == PASS or (torchcodec_result == SKIPPED and "torchcodec" in torchcodec_detail)
    if not HAS_CUDA:
        cuda_rows = {key: value for key, value in rows.items() if key[1] == "cuda"}
        assert cuda_rows, "the table should say that the GPU checks were skipped"
        assert all(result == SKIPPED and "no CUDA device" in detail for result, detail in cuda_rows.values())
    assert "summary: " in out and " 0 fail" in out
    # a progress line per group of checks, on stderr
    for group in ("versions and devices", "interlace op on cpu", "TIN module as one op on cpu",
                  "train step [fp32] on cpu", "train step [amp] on cpu", "data decoders"):
        assert group in err


def test_json_lists_every_check_with_a_result(capsys):
    status = doctor_command.main(["--quick", "--json"])
    out, _ = capsys.readouterr()
    report = json.loads(out)
    assert status == report["exit_status"] == 0
    checks = report["checks"]
    assert checks
    for check in checks:
        assert check["result"] in RESULTS
        assert {"group", "name", "device", "dtype", "detail"} <= set(check)
        assert check["detail"]
    cpu_ops = [c for c in checks if c["group"] == "op" and c["device"] == "cpu"]
    assert {(c["name"], c["dtype"]) for c in cpu_ops} == {
        (f"interlace {direction} [reference]", dtype) for direction in ("forward", "backward") for dtype in DTYPES} | {
        (f"TIN module {direction} [fused]", "float32") for direction in ("forward", "backward")}
    fused = {c["name"]: c for c in cpu_ops if "[fused]" in c["name"]}
    assert "grad adjoint," in fused["TIN module backward [fused]"]["detail"]  # --quick: the configs' mode only
    assert set(fused["TIN module backward [fused]"]["data"]["errors"]) == {
        f"{stage} [adjoint] {what}" for stage in ("stage1", "stage2", "stage3", "stage4")
        for what in ("grad_x", "grad offset_conv_weight", "grad offset_conv_bias", "grad fc1_weight", "grad fc1_bias",
                     "grad fc2_weight", "grad fc2_bias", "grad weight_conv_weight", "grad weight_conv_bias")}
    assert report["block_tolerances"] == {"float32": {"values": 3e-5, "params": 1e-4}}
    for check in cpu_ops:  # the numbers behind the verdict are there for scripts
        assert check["result"] == PASS
        assert 0 <= check["data"]["max_rel_error"] <= check["data"]["tolerance"]
    assert [c["name"] for c in checks if c["group"] == "train" and c["device"] == "cpu"] == ["train step [amp]"]
    assert not [c for c in checks if c["group"] == "decode"], "--quick leaves the decoders out"
    assert report["summary"][PASS] == sum(c["result"] == PASS for c in checks)
    assert report["versions"]["torch"] == torch.__version__
    if not HAS_CUDA:
        cuda = [c for c in checks if c["device"] == "cuda"]
        assert cuda and all(c["result"] == SKIPPED and "no CUDA device" in c["detail"] for c in cuda)


def test_a_wrong_kernel_fails_with_exit_status_1_and_says_where(capsys, monkeypatch):
    correct_forward = ops.eager.forward
    monkeypatch.setattr(ops.eager, "forward", lambda x, offset, weight: correct_forward(x, offset, weight) * 1.05)
    status = doctor_command.main(["--quick", "--device", "cpu"])
    out, _ = capsys.readouterr()
    assert status == 1
    rows = table_rows(out)
    for dtype in DTYPES:
        result, detail = rows[("interlace forward [reference]", "cpu", dtype)]
        assert result == FAIL
        assert "out" in detail and "> tol" in detail and "float64 composite" in detail
        # the backward kernel was left alone
        assert rows[("interlace backward [reference]", "cpu", dtype)][0] == PASS
    assert "FAILED: interlace forward [reference] on cpu float32:" in out


def test_a_tolerance_breach_names_the_tensor_and_the_tolerance(monkeypatch):
    monkeypatch.setitem(opcheck.TOLERANCE, torch.float16, (1e-9, 1e-9))
    forward, backward = opcheck.check_interlace(torch.device("cpu"), "reference", torch.float16, (1,))
    assert forward.result == backward.result == FAIL
    assert " out " in forward.detail and "> tol 1.0e-09" in forward.detail
    assert "grad_" in backward.detail and "> tol 1.0e-09" in backward.detail
    assert forward.data["max_rel_error"] > 1e-9


def test_asking_for_cuda_without_a_gpu_is_a_failure(capsys):
    if HAS_CUDA:
        pytest.skip("this machine has a CUDA device")
    status = doctor_command.main(["--device", "cuda"])
    out, _ = capsys.readouterr()
    assert status == 1
    result, detail = table_rows(out)[("CUDA device", "cuda", "-")]
    assert result == FAIL and "no CUDA device" in detail


def test_a_non_finite_loss_fails_the_train_step(monkeypatch):
    real_cross_entropy = torch.nn.functional.cross_entropy
    monkeypatch.setattr(torch.nn.functional, "cross_entropy",
                        lambda logits, labels: real_cross_entropy(logits, labels) * float("nan"))
    (check,) = train_step.check_train_step(torch.device("cpu"), amp=False, iterations=1)
    assert check.result == FAIL and "loss not finite" in check.detail


def test_decoders_catch_swapped_colour_channels(monkeypatch):
    from tinlib.data import decoding

    real_decode = decoding.decode_rawframes
    monkeypatch.setattr(decoding, "decode_rawframes", lambda *args, **kw: real_decode(*args, **kw)[..., ::-1])
    checks = {check.name: check for check in decoders.check_decoders()}
    jpeg = checks["decode JPEG frames [opencv]"]
    assert jpeg.result == FAIL and "mean |diff|" in jpeg.detail
    assert checks["decode video [pyav]"].result == PASS



def test_the_video_decoders_are_checked_at_the_sizes_the_kit_writes():
    """The synthetic presets' heights, the demo data's (prepared with --height 40) and the tests'
    32x48 clips; at each, every video row decodes every frame, decord falling back to PyAV where it
    fails, as the loader does. torchcodec's row names its version and FFmpeg's major."""
    from tinlib.data.decoding import have_decord, have_torchcodec
    from tinlib.data.synthetic import PRESETS

    heights = {height for height, _ in decoders.SIZES}
    assert {32, 40, PRESETS["tiny"]["height"]["sthv1"], PRESETS["demo"]["height"]["sthv1"],
            PRESETS["large"]["height"]["k400"]} <= heights
    checks = {check.name: check for check in decoders.check_decoders()}
    rows = (["decode video [pyav]"] + (["decode video [decord]"] if have_decord() else [])
            + (["decode video [torchcodec]"] if have_torchcodec() else []))
    for row in rows:
        assert checks[row].result == PASS, checks[row].detail
        assert all(f"{height}x{width}" in checks[row].detail for height, width in decoders.SIZES)
    if have_torchcodec():
        assert re.match(r"torchcodec \S+ with FFmpeg \d+: ", checks["decode video [torchcodec]"].detail)

def test_the_checked_shapes_are_those_tin_r50_gives_the_op(monkeypatch):
    """Run TIN-R50 at 224 px on the meta device and record what the op is called with."""
    from tinlib.models import build_recognizer

    calls: collections.Counter = collections.Counter()
    real_interlace = ops.interlace

    def recording_interlace(x, *args, **kwargs):
        calls[tuple(x.shape)] += 1
        return real_interlace(x, *args, **kwargs)

    monkeypatch.setattr(ops, "interlace", recording_interlace)
    with torch.device("meta"):
        model = build_recognizer("tin_r50", 174, num_segments=8)
        model(torch.empty(2, 8, 3, 224, 224))
    assert sum(calls.values()) == 3 + 4 + 6 + 3  # one call per Bottleneck block of ResNet-50
    checked = {shape for _, shape in opcheck.op_shapes((2,))}
    assert len(checked) == 4 and checked <= set(calls)
    # the one shape not checked is the first block's: 64 stem channels -> 16, at 56x56
    assert set(calls) - checked == {(2, 8, 16, 56 * 56)}
    # every stage's most frequent call is checked
    by_size = collections.defaultdict(list)
    for shape, count in calls.items():
        by_size[shape[3]].append((count, shape))
    assert {max(entries)[1] for entries in by_size.values()} == checked


# GPU peak DRAM bandwidth in GB/s from the vendors' datasheets (NVIDIA A100, H100, H200, V100,
# L4, A10 datasheets; GeForce RTX 4090 specifications), with the names torch reports.
@pytest.mark.parametrize("name, memory_gib, expected", [
    ("NVIDIA H200", 140, 4800),
    ("NVIDIA H200 NVL", 140, 4800),
    ("NVIDIA H100 80GB HBM3", 80, 3350),
    ("NVIDIA H100 PCIe", 80, 2000),
    ("NVIDIA H100 NVL", 94, 3900),
    ("NVIDIA A100-SXM4-80GB", 80, 2039),
    ("NVIDIA A100 80GB PCIe", 80, 1935),
    ("NVIDIA A100-SXM4-40GB", 40, 1555),
    ("NVIDIA A100-PCIE-40GB", 40, 1555),
    ("Tesla V100-SXM2-32GB", 32, 900),
    ("NVIDIA L4", 22, 300),
    ("NVIDIA A10", 22, 600),
    ("NVIDIA GeForce RTX 4090", 24, 1008),
    ("NVIDIA GH200 480GB", 96, None),  # not an H200
    ("NVIDIA A10G", 22, None),  # no vendor datasheet number
    ("NVIDIA A100-SXM4-40GB MIG 1g.5gb", 5, None),  # a slice has a share of the bandwidth
    ("Some Future GPU", 500, None),
])
def test_peak_bandwidth_of_known_gpus(name, memory_gib, expected):
    peak = peak_bandwidth(name, memory_gib * GIB)
    assert (peak.gb_per_s if peak else None) == expected


def test_the_doctor_video_frames_differ_from_frame_to_frame():
    frames = decoders.doctor_frames()
    assert frames.shape == (decoders.FRAMES, decoders.HEIGHT, decoders.WIDTH, 3) and frames.dtype == np.uint8
    assert all(np.abs(frames[t].astype(int) - frames[t + 1]).mean() > 1 for t in range(len(frames) - 1))


def test_nan_from_a_kernel_fails_and_the_json_stays_strict(monkeypatch):
    from tinlib.doctor.report import format_json
    from tinlib.doctor.runner import DoctorReport

    monkeypatch.setattr(ops.eager, "forward", lambda x, offset, weight: torch.full_like(x, float("nan")))
    forward, _ = opcheck.check_interlace(torch.device("cpu"), "reference", torch.float32, (1,))
    assert forward.result == FAIL and "rel. err inf" in forward.detail
    report = DoctorReport("cpu", True, {}, {}, [], [forward])
    parsed = json.loads(format_json(report))  # strict JSON: no bare Infinity/NaN
    assert parsed["exit_status"] == 1 and parsed["checks"][0]["data"]["max_rel_error"] == "inf"


def test_bandwidth_counts_the_bytes_the_op_must_move(monkeypatch):
    """The GB/s arithmetic and the % of peak, with the CUDA-event timer replaced by 1 ms per call
    (the timing itself needs a GPU)."""
    from tinlib.doctor import bandwidth

    calls = []

    def one_millisecond(run, device):
        calls.append(run())
        return 1e-3

    monkeypatch.setattr(bandwidth, "time_cuda", one_millisecond)
    peak = bandwidth.PeakBandwidth(r"x", "X", 1000.0, "a test")
    (check,) = bandwidth.check_bandwidth(torch.device("cpu"), "reference", torch.float16, peak=peak)
    assert check.result == PASS and len(calls) == 2
    n, t, c, hw = 6, 8, 64, 56 * 56  # stage 1 of TIN-R50 at 224 px, 6 videos
    tensor_bytes = n * t * c * hw * 2  # float16
    param_bytes = (n * 4 + n * t * 4) * 2  # offset [N, 4] and weight [N, T, 4]
    assert check.data["forward_gb_per_s"] == pytest.approx((2 * tensor_bytes + param_bytes) / 1e-3 / 1e9)
    assert check.data["backward_gb_per_s"] == pytest.approx((3 * tensor_bytes + 3 * param_bytes) / 1e-3 / 1e9)
    assert f"{check.data['forward_gb_per_s'] / 10:.0f}%" in check.detail  # % of the 1000 GB/s peak
    (unknown,) = bandwidth.check_bandwidth(torch.device("cpu"), "reference", torch.float16, gpu_name="GPU 9000")
    assert "%" not in unknown.detail and "not known" in unknown.detail


# --- TIN's temporal module as one fused op (tinlib.ops.tin_block), on the CPU -------------------
def test_a_wrong_fused_module_output_fails_its_row_and_the_exit_status(capsys, monkeypatch):
    from tinlib.ops import tin_block

    real_block = tin_block.temporal_interlace_block

    def off_by_a_thousandth(x, params, *args, **kwargs):  # wrong values, the gradients left alone
        y, offsets, weights = real_block(x, params, *args, **kwargs)
        return y + 1e-3 * y.detach(), offsets, weights

    monkeypatch.setattr(tin_block, "temporal_interlace_block", off_by_a_thousandth)
    status = doctor_command.main(["--quick", "--device", "cpu"])
    out, _ = capsys.readouterr()
    assert status == 1
    rows = table_rows(out)
    result, detail = rows[("TIN module forward [fused]", "cpu", "float32")]
    assert result == FAIL and "stage1 y: rel. err 1.0e-03 > tol 3.0e-05 vs the float64 composed steps" in detail
    assert rows[("TIN module backward [fused]", "cpu", "float32")][0] == PASS
    assert rows[("interlace forward [reference]", "cpu", "float32")][0] == PASS  # the interlace op is fine
    assert "FAILED: TIN module forward [fused] on cpu float32:" in out
    assert "fused TIN module tolerances" in out


class _GradTimes(torch.autograd.Function):
    """Identity whose backward multiplies the gradient by ``factor``."""

    @staticmethod
    def forward(ctx, tensor, factor):
        ctx.factor = factor
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.factor, None


@pytest.mark.parametrize("param, factor", [("weight_conv_bias", 1.01), ("fc1_weight", 0.999)])
def test_a_wrong_parameter_gradient_of_the_fused_module_fails_the_backward_row(monkeypatch, param, factor):
    from tinlib.ops import tin_block

    real_block = tin_block.temporal_interlace_block

    def wrong_gradient(x, params, *args, **kwargs):
        params = params._replace(**{param: _GradTimes.apply(getattr(params, param), factor)})
        return real_block(x, params, *args, **kwargs)

    monkeypatch.setattr(tin_block, "temporal_interlace_block", wrong_gradient)
    forward, backward = blockcheck.check_tin_block(("adjoint",))
    assert forward.result == PASS
    assert backward.result == FAIL and f"[adjoint] grad {param}: rel. err" in backward.detail
    assert backward.data["errors"][f"stage1 [adjoint] grad {param}"] == pytest.approx(abs(factor - 1), rel=1e-2)


def test_a_wrong_data_gradient_in_the_mmcv_mode_fails_the_full_check(monkeypatch):
    from tinlib.ops import tin_block

    real_block = tin_block.temporal_interlace_block

    def adjoint_for_mmcv(x, params, num_segments, shift_div, grad="adjoint"):
        return real_block(x, params, num_segments, shift_div, "adjoint")  # ignores the mode asked for

    monkeypatch.setattr(tin_block, "temporal_interlace_block", adjoint_for_mmcv)
    quick = blockcheck.check_tin_block(blockcheck.GRAD_MODES_QUICK)
    assert [c.result for c in quick] == [PASS, PASS]
    forward, backward = blockcheck.check_tin_block(blockcheck.GRAD_MODES_FULL)
    assert forward.result == PASS
    assert backward.result == FAIL and "[mmcv] grad_x" in backward.detail


def test_the_fused_check_sees_the_block_inputs_tin_r50_gives_the_module(monkeypatch):
    """TIN-R50 at 224 px on the meta device: the [N*T, C, H, W] its TemporalInterlace modules get."""
    from tinlib.models import TemporalInterlace, build_recognizer

    calls: collections.Counter = collections.Counter()
    real_forward = TemporalInterlace.forward

    def recording_forward(self, x):
        calls[tuple(x.shape)] += 1
        return real_forward(self, x)

    monkeypatch.setattr(TemporalInterlace, "forward", recording_forward)
    with torch.device("meta"):
        build_recognizer("tin_r50", 174, num_segments=8)(torch.empty(1, 8, 3, 224, 224))
    checked = set(blockcheck.BLOCK_SHAPES.values())
    assert len(checked) == 4 and checked <= set(calls)
    assert set(calls) - checked == {(8, 64, 56, 56)}  # the first block's 64 stem channels: stage 1 in small
    # the checked modules' offsets: both signs, more than one whole frame, mostly between whole frames
    offsets = torch.cat([blockcheck.fused_run(blockcheck.spread_module(shape[1]), *blockcheck.block_inputs(shape),
                                              "adjoint")[2].flatten() for shape in checked])
    fractions = offsets - offsets.floor()
    assert offsets.min() < -1 and offsets.max() > 1
    assert ((fractions > 0.1) & (fractions < 0.9)).sum() >= len(offsets) // 2
