"""What the doctor runs on: package versions, the CPU and memory, every visible GPU."""
from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
from typing import Any

import torch

GIB = 1024 ** 3


def _cudnn_version() -> str | None:
    """cuDNN's version as "9.1.0": torch reports 90100 for cuDNN 9 and 8906 for cuDNN 8."""
    if not torch.backends.cudnn.is_available():
        return None
    number = torch.backends.cudnn.version()
    if number is None:
        return None
    if number >= 10000:
        return f"{number // 10000}.{number % 10000 // 100}.{number % 100}"
    return f"{number // 1000}.{number % 1000 // 100}.{number % 100}"


def _nccl_version() -> str | None:
    try:
        if not (torch.distributed.is_available() and torch.distributed.is_nccl_available()):
            return None
        version = torch.cuda.nccl.version()
    except (AttributeError, RuntimeError):
        return None
    return ".".join(str(part) for part in version) if isinstance(version, tuple) else str(version)


def _triton_version() -> str | None:
    # from the package metadata: importing triton takes seconds
    for name in ("triton", "pytorch-triton"):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _module_version(module: str) -> str | None:
    try:
        return str(getattr(importlib.import_module(module), "__version__", "unknown"))
    except ImportError:
        return None


def versions() -> dict[str, str | None]:
    """Versions of Python and the packages a run depends on; None for what is not installed/built.
    CUDA and cuDNN are the versions torch was built with (None for a CPU-only build), NCCL the one
    torch ships."""
    # PyAV before decord: decord's bundled FFmpeg loaded first breaks PyAV's encoders
    video = {"PyAV": _module_version("av"), "decord": _module_version("decord"), "OpenCV": _module_version("cv2"),
             "torchcodec": _package_version("torchcodec")}  # from the metadata: older versions raise at import
    return {
        "Python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _module_version("torchvision"),
        "numpy": _module_version("numpy"),
        "CUDA": torch.version.cuda,
        "cuDNN": _cudnn_version(),
        "NCCL": _nccl_version(),
        "Triton": _triton_version(),
        **video,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> tuple[float | None, float | None]:
    """(total, available) RAM in GiB from /proc/meminfo, else total from sysconf, else None."""
    try:
        fields = {}
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                key, value = line.split(":", 1)
                fields[key] = int(value.split()[0]) * 1024
        return fields["MemTotal"] / GIB, fields.get("MemAvailable", 0) / GIB or None
    except (OSError, KeyError, ValueError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / GIB, None
    except (AttributeError, ValueError, OSError):
        return None, None


def cpu_bf16_native() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16/AMX); else it is emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_info() -> dict[str, Any]:
    """The CPU: model, logical cores (and those this process may use), torch's thread count,
    vector ISA torch dispatches to, native bfloat16, RAM total/available in GiB."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    total, available = _memory_gib()
    return {
        "model": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "isa": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": cpu_bf16_native(),
        "ram_gib": None if total is None else round(total, 1),
        "ram_available_gib": None if available is None else round(available, 1),
    }


def cuda_bf16_native(index: int) -> bool:
    """Whether GPU ``index`` has bfloat16 tensor cores (compute capability 8.0 or newer)."""
    return torch.cuda.get_device_capability(index) >= (8, 0)


def gpu_info() -> list[dict[str, Any]]:
    """Every visible GPU: index, device string, name, compute capability, SMs, memory in GiB."""
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        try:
            free, _ = torch.cuda.mem_get_info(index)
            free_gib: float | None = round(free / GIB, 1)
        except RuntimeError:
            free_gib = None
        gpus.append({
            "index": index,
            "device": f"cuda:{index}",
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count,
            "memory_gib": round(props.total_memory / GIB, 1),
            "memory_free_gib": free_gib,
            "memory_bytes": props.total_memory,
            "bf16_native": cuda_bf16_native(index),
        })
    return gpus


def no_cuda_reason() -> str:
    """Why no GPU is checked, starting with "no CUDA device"."""
    if torch.version.cuda is None:
        return f"no CUDA device (torch {torch.__version__} is a CPU-only build)"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return f"no CUDA device (CUDA_VISIBLE_DEVICES={visible!r} hides them)"
    return f"no CUDA device (torch built with CUDA {torch.version.cuda} finds none: no GPU or no driver)"
