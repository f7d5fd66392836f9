"""A few training iterations of TIN-R50 on random uint8 frames: float32, and mixed precision (AMP).

This is what a long run does in every iteration (forward through all 16 interlace calls,
backward, SGD step); on a GPU at the configs' per-GPU batch and 224 px, so that running out of
memory, or inf/nan in the first iterations, shows up here in seconds instead of in the run.
"""
from __future__ import annotations

import importlib.util
import math
import time

import torch

from tinlib.doctor.checks import FAIL, PASS, SKIPPED, Check
from tinlib.doctor.environment import GIB, cpu_bf16_native, cuda_bf16_native
from tinlib.doctor.opcheck import SEGMENTS, dtype_name

ARCH = "tin_r50"
NUM_CLASSES = 174  # Something-Something V1/V2
ITERATIONS = 3
# (videos, pixels) per device type: on a GPU the per-GPU batch of the TIN-R50 Something-Something
# configs (videos_per_gpu=6) at their training crop; on a CPU one video at 64 px, where one at
# 224 px takes several seconds per iteration.
BATCH = {"cuda": 6, "cpu": 1}
RESOLUTION = {"cuda": 224, "cpu": 64}
LEARNING_RATE = 0.001  # small: random labels, and the check is about finite numbers, not learning
AMP_NAMES = {None: "none", torch.bfloat16: "bf16", torch.float16: "fp16"}  # autocast dtype -> train.amp


def amp_dtype(device: torch.device) -> tuple[torch.dtype | None, str]:
    """The autocast dtype for ``device`` and why: bfloat16 where the hardware has it, float16
    on older GPUs; ``(None, reason)`` where mixed precision is not checked."""
    if device.type == "cuda":
        if cuda_bf16_native(device.index or 0):
            return torch.bfloat16, "bfloat16 (compute capability >= 8.0)"
        return torch.float16, "float16 with loss scaling (no bfloat16 before compute capability 8.0)"
    if device.type == "cpu":
        if cpu_bf16_native():
            return torch.bfloat16, "bfloat16 (CPU has native bfloat16)"
        return None, "the CPU has no native bfloat16 (AVX512-BF16/AMX): autocast would only emulate it"
    return None, f"no mixed precision check for {device.type} devices"


def check_train_step(device: torch.device, amp: bool, iterations: int = ITERATIONS) -> list[Check]:
    """"train step [fp32]" or "train step [amp]": ``iterations`` steps of the training loop
    (:func:`tinlib.engine.train.train_step`, SGD: copy, normalisation on ``device``, forward, backward)
    of TIN-R50 (174 classes, 8 segments) on random uint8 frames and labels; passes when every loss
    and every parameter afterwards is finite."""
    name = f"train step [{'amp' if amp else 'fp32'}]"
    dev = str(device)
    cast, why = amp_dtype(device) if amp else (None, "float32")
    dt = dtype_name(cast) if cast is not None else ("bfloat16" if amp else "float32")
    if amp and cast is None:
        return [Check("train", name, dev, dt, SKIPPED, why)]
    from tinlib.engine.train import train_step
    from tinlib.models import build_recognizer
    from tinlib.ops import resolve_backend

    batch, pixels = BATCH.get(device.type, 1), RESOLUTION.get(device.type, 64)
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):  # a seeded model, without changing the caller's RNG
        torch.manual_seed(0)
        model = build_recognizer(ARCH, NUM_CLASSES, SEGMENTS)
    model = model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type) if cast == torch.float16 else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    losses: list[float] = []
    start = time.perf_counter()
    for _ in range(iterations):
        frames = torch.randint(0, 256, (batch, SEGMENTS, 3, pixels, pixels), generator=generator, dtype=torch.uint8)
        labels = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
        step = train_step(model, (frames, labels), optimizer, device=device, amp=AMP_NAMES[cast], scaler=scaler)
        losses.append(step.loss.item())  # .item() waits for the GPU
    seconds = time.perf_counter() - start
    bad_params = [pname for pname, p in model.named_parameters() if not torch.isfinite(p).all()]
    scope = f"{iterations} iteration(s), {batch} x {SEGMENTS} frames at {pixels} px"
    facts = [scope, why if amp else "", f"{seconds:.1f} s"]
    data: dict = {"iterations": iterations, "batch": batch, "pixels": pixels, "losses": losses, "seconds": seconds}
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        probe = torch.empty(0, device=device, dtype=cast or torch.float32)
        backend = resolve_backend("auto", probe)
        fell_back = backend == "reference" and importlib.util.find_spec("triton") is not None
        facts += [f"peak memory {peak / GIB:.1f} GiB", f"interlace backend {backend}"
                  + (" (the Triton kernels failed their check: see the warning above)" if fell_back else "")]
        data.update(peak_memory_bytes=peak, interlace_backend=backend)
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    loss_text = ", ".join(f"{value:.3g}" for value in losses)
    facts_text = "; ".join(fact for fact in facts if fact)
    if not all(math.isfinite(value) for value in losses):
        return [Check("train", name, dev, dt, FAIL, f"loss not finite: {loss_text}; {facts_text}", data)]
    if bad_params:
        return [Check("train", name, dev, dt, FAIL,
                      f"{len(bad_params)} parameter(s) inf/nan after the steps, first {bad_params[0]}; {facts_text}",
                      data)]
    return [Check("train", name, dev, dt, PASS, f"loss {loss_text} (finite); {facts_text}", data)]
