"""Inference time per video, FLOPs, parameters and training GPU memory (``tinlib latency``).

Time: MMAction2 0.x ``tools/analysis/benchmark.py``'s method: random weights, eval mode, one video
``[1, V*T, 3, S, S]`` (random uint8 frames) of the config's test sampling, no data loading; each
iteration times copy in, normalisation on the device (as the engine does it), test forward under
``no_grad`` and copy out between CUDA syncs; the first ``--warmup`` (5) are
dropped, the mean of the next ``--iters`` kept. ``fps_mmaction2`` repeats MMAction2's formula, which
counts the last iteration twice.

FLOPs of ``model(x)`` for one video (the zoo's figures are mmcv 0.x ``get_model_complexity_info`` at
8 x 224 x 224): ``flops_torch`` from ``FlopCounterMode`` (2 per multiply-add, convs and matmuls only;
``macs_torch`` is half); ``flops_mmcv`` re-implements mmcv's rules with forward hooks (conv
multiply-adds + one per output for a bias, Linear input numel x outputs, BN 2 x input numel, ReLU and
pooling their numel; sigmoid, means, the interlace and element-wise arithmetic not counted).
``train_gpu_mem_mib`` (CUDA): peak ``max_memory_allocated`` over a few training steps at the
config's videos per GPU (the zoo's ``gpu_mem(M)``)."""
from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from tinlib.config import Config, apply_overrides, load_config
from tinlib.data.normalization import normalize
from tinlib.data.transforms import CROPS_PER_MODE
from tinlib.engine.build import build_model
from tinlib.engine.environment import device_info, git_info, now_iso, package_versions
from tinlib.engine.errors import RunError
from tinlib.engine.torch_settings import autocast
from tinlib.records import LatencyRecord
from tinlib.seeding import seed_everything

if TYPE_CHECKING:
    from tinlib.models import Recognizer

log = logging.getLogger(__name__)

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.PReLU, nn.ELU, nn.LeakyReLU)
POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
         nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.AdaptiveAvgPool1d,
         nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)


def count_parameters(model: nn.Module) -> int:
    """All parameters of ``model`` (trainable or not), as the model zoo's "params" column counts them."""
    return sum(p.numel() for p in model.parameters())


def _mmcv_rule(module: nn.Module, inputs: tuple, output: Any) -> int:
    x: torch.Tensor = inputs[0] if inputs else torch.empty(0)
    if isinstance(module, _ConvNd):
        per_output = module.in_channels // module.groups
        for k in module.kernel_size:
            per_output *= k
        macs = output.numel() * per_output
        return macs + (output.numel() if module.bias is not None else 0)
    if isinstance(module, nn.Linear):
        return x.numel() * module.out_features
    if isinstance(module, (_BatchNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
                           nn.LayerNorm)):
        affine = getattr(module, "affine", getattr(module, "elementwise_affine", False))
        return x.numel() * (2 if affine else 1)
    if isinstance(module, ACTIVATIONS):
        return output.numel()
    if isinstance(module, POOLS):
        return x.numel()
    return 0


@torch.no_grad()
def count_flops(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """``{"flops_torch", "macs_torch", "flops_mmcv"}`` of one forward ``model(x)`` in eval mode
    (x: ``[1, T, 3, S, S]`` for a recognizer), as the module docstring defines them."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    total = [0]

    def hook(module, inputs, output):
        total[0] += _mmcv_rule(module, inputs, output)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
    torch_flops = int(counter.get_total_flops())
    return {"flops_torch": torch_flops, "macs_torch": torch_flops // 2, "flops_mmcv": int(total[0])}


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has run the work queued on it (CUDA); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def measure_latency(model: Recognizer, clip: torch.Tensor, device: torch.device, *, warmup: int = 5,
                    iters: int = 200, average_clips: str | None = "prob") -> dict[str, Any]:
    """Time ``model.predict(normalize(clip))`` on ``device`` with MMAction2's benchmark method (the
    module docstring): ``clip [1, V*T, 3, S, S]`` uint8 stays on the CPU and each iteration copies it
    and normalises it on ``device`` (timed).

    Returns ``mean_ms``, ``median_ms``, ``std_ms``, ``min_ms`` per video, ``fps`` = 1000 / mean_ms,
    ``fps_mmaction2`` (``iters / (sum + last)``) and the setting (warmup, iters, device, threads).
    """
    if iters < 1:
        raise ValueError("iters must be >= 1")
    model.eval().to(device)
    times = []
    for _ in range(warmup + iters):
        synchronize(device)
        start = time.perf_counter()
        scores = model.predict(normalize(clip.to(device, non_blocking=True)), average_clips=average_clips).cpu()
        synchronize(device)
        times.append(time.perf_counter() - start)
    del scores
    timed = times[warmup:]
    mean = statistics.fmean(timed)
    return {"mean_ms": 1000 * mean, "median_ms": 1000 * statistics.median(timed),
            "std_ms": 1000 * (statistics.stdev(timed) if len(timed) > 1 else 0.0), "min_ms": 1000 * min(timed),
            "fps": 1.0 / mean, "fps_mmaction2": len(timed) / (sum(timed) + timed[-1]),
            "warmup": warmup, "iters": iters, "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "threads": torch.get_num_threads()}


def train_peak_memory(cfg: Config, device: torch.device, *, iters: int = 3, amp: str = "none") -> dict[str, Any]:
    """Peak CUDA memory (MiB) of ``iters`` SGD steps of ``cfg``'s model on random uint8 clips
    ``[data.videos_per_gpu, T, 3, S, S]`` normalised on the device; returns ``train_gpu_mem_mib``,
    ``videos_per_gpu``, ``amp`` and ``iters``."""
    from tinlib.engine.optim import build_optimizer

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    model = build_model(cfg, pretrained=False, load_from=False).to(device).train()
    optimizer = build_optimizer(model, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay, cfg.optim.fc_lr5)
    b, t, s = cfg.data.videos_per_gpu, cfg.model.num_segments, cfg.data.input_size
    for _ in range(iters):
        clips = normalize(torch.randint(0, 256, (b, t, 3, s, s), dtype=torch.uint8, device=device))
        labels = torch.randint(0, cfg.model.num_classes, (b,), device=device)
        with autocast(device, amp):
            scores = model(clips)
        loss = nn.functional.cross_entropy(scores.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20
    del model, optimizer
    torch.cuda.empty_cache()
    return {"train_gpu_mem_mib": int(peak), "videos_per_gpu": b, "amp": amp, "iters": iters}


def views_per_video(cfg: Config) -> int:
    """V of the test setting: ``test.num_clips`` x (2 with twice sampling) x crops (1, 3 or 10)."""
    return cfg.test.num_clips * (2 if cfg.test.twice_sample else 1) * CROPS_PER_MODE[cfg.test.crop]


def config_for_arch(cfg: Config, arch: str) -> Config:
    """``cfg`` with ``model.arch = arch`` (and the arch's default ``shift_div``); an arch name
    outside the pattern of :func:`tinlib.models.parse_arch` raises ``ConfigError``."""
    if arch == cfg.model.arch:
        return cfg
    return apply_overrides(cfg, {"model.arch": arch, "model.shift_div": None})


def check_archs(cfg: Config, archs: list[str] | tuple[str, ...]) -> None:
    """Validate every arch name before any work (``ConfigError`` naming the valid pattern)."""
    for arch in archs:
        config_for_arch(cfg, arch)


def parse_devices(text: str) -> tuple[str, ...]:
    """``"cpu,cuda"`` -> ``("cpu", "cuda")``; anything else than cpu and cuda is a :class:`RunError`."""
    devices = tuple(d.strip() for d in text.split(",") if d.strip())
    bad = [d for d in devices if d not in ("cpu", "cuda")]
    if bad:
        raise RunError(f"--devices: unknown {', '.join(bad)}; use cpu and/or cuda")
    return devices


def zoo_figures(cfg: Config, arch: str) -> dict[str, Any]:
    """Model-zoo FLOPs/params for ``arch`` in ``cfg``'s setting: the config's own row, or the
    baseline config of the same recipe (``tsm_r50_...`` beside ``tin_r50_...``) when it exists."""
    from tinlib.config import available_configs

    if arch == cfg.model.arch:
        zoo = cfg.zoo
    else:
        name = cfg.name.replace(cfg.model.arch, arch, 1) if cfg.name.startswith(cfg.model.arch) else ""
        if name not in available_configs():
            return {}
        zoo = load_config(name).zoo
    return {"flops": zoo.flops, "params": zoo.params}


def benchmark(cfg: Config, archs: tuple[str, ...] | list[str], *,
              devices: tuple[str, ...] | list[str] = ("cpu", "cuda"), warmup: int = 5, iters_cpu: int = 20,
              iters_cuda: int = 200, train_memory: bool = True, progress: bool = True) -> dict[str, Any]:
    """Latency, FLOPs and parameters (and CUDA training memory) of ``archs`` (each built from
    ``cfg`` with that arch) side by side, at ``cfg``'s test setting (V views x T segments at S x S);
    ``cuda`` in ``devices`` is skipped when absent. Returns the latency.json record: ``setting``,
    ``models`` (per arch: params, FLOPs, latency per device, zoo figures), ``devices``, and the
    environment.
    """
    devs = []
    for name in devices:
        if name == "cuda" and not torch.cuda.is_available():
            continue
        devs.append(torch.device("cuda", torch.cuda.current_device()) if name == "cuda" else torch.device("cpu"))
    views, t, s = views_per_video(cfg), cfg.model.num_segments, cfg.data.input_size
    average_clips = cfg.test.average_clips if views == 1 or cfg.test.average_clips else "prob"
    seed_everything(0)
    clip = torch.randint(0, 256, (1, views * t, 3, s, s), dtype=torch.uint8)
    models: dict[str, Any] = {}
    for arch in archs:
        acfg = config_for_arch(cfg, arch)
        model = build_model(acfg, pretrained=False, load_from=False)
        entry: dict[str, Any] = {"arch": arch, "params": count_parameters(model)}
        entry.update(count_flops(model, torch.randn(1, t, 3, s, s)))
        entry["latency"] = {}
        for dev in devs:
            n = iters_cuda if dev.type == "cuda" else iters_cpu
            if progress:
                log.info("%s: timing %d iterations on %s ...", arch, n, dev)
            entry["latency"][dev.type] = measure_latency(model, clip, dev, warmup=warmup, iters=n,
                                                         average_clips=average_clips)
            model.to("cpu")
        if train_memory and any(d.type == "cuda" for d in devs):
            entry.update(train_peak_memory(acfg, next(d for d in devs if d.type == "cuda")))
        entry["zoo"] = zoo_figures(cfg, arch)
        models[arch] = entry
        del model
    return {
        "setting": {"config": cfg.name, "num_classes": cfg.model.num_classes, "num_segments": t, "views": views,
                    "input_shape": [1, views * t, 3, s, s], "flops_input_shape": [1, t, 3, s, s],
                    "average_clips": average_clips, "batch_size": 1, "warmup": warmup,
                    "method": "MMAction2 benchmark: random weights, eval, batch 1, synchronize, mean after warm-up; "
                              "host-to-device copy of the uint8 clip, normalisation on the device and view "
                              "averaging included, data loading excluded"},
        "models": models,
        "devices": [str(d) for d in devs],
        "device_info": device_info(),
        "versions": package_versions(),
        "git": git_info(),
        "time": now_iso(),
    }


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of a :func:`benchmark` record: one row per arch (params, GFLOPs by torch
    and by mmcv's rules, mean ms per video on CPU and CUDA, training GPU memory)."""
    rows = [f"{'arch':<10} {'params':>12} {'torch GFLOPs':>13} {'mmcv GFLOPs':>12} "
            f"{'cpu ms':>9} {'cuda ms':>9} {'gpu_mem(M)':>10}"]
    for arch, e in result["models"].items():
        cpu = e["latency"].get("cpu", {}).get("mean_ms")
        cuda = e["latency"].get("cuda", {}).get("mean_ms")
        rows.append(f"{arch:<10} {e['params']:>12,} {e['flops_torch'] / 1e9:>13.3f} {e['flops_mmcv'] / 1e9:>12.3f} "
                    f"{cpu if cpu is None else round(cpu, 1)!s:>9} {cuda if cuda is None else round(cuda, 2)!s:>9} "
                    f"{e.get('train_gpu_mem_mib', '-')!s:>10}")
    return "\n".join(rows)


def write_latency(result: dict[str, Any], path: str | Path) -> Path:
    """Write the :func:`benchmark` record to ``path`` (latency.json) atomically; returns the path."""
    return LatencyRecord.from_dict(result).write(Path(path))
