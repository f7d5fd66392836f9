"""Process groups under torchrun or ``srun`` (one process per device; NCCL on CUDA, gloo on the CPU;
none for a single process) and the few collectives the engine needs. Only rank 0 writes files."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from tinlib.engine.errors import RunError
from tinlib.engine.slurm import launch_layout


@dataclass
class DistContext:
    """Where this process stands: its global ``rank`` of ``world_size``, its ``local_rank`` on the
    node, its ``device`` and the process-group ``backend`` (None for a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files."""
        return self.rank == 0


def resolve_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: this process's GPU when CUDA is available, else the CPU."""
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {preference!r}")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda requested but CUDA is not available on this machine")
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise RunError(f"LOCAL_RANK={local_rank} but only {count} GPU(s) are visible; start at most "
                       f"{count} processes per node (torchrun --nproc-per-node {count})")
    return torch.device("cuda", local_rank)


def init_distributed(device: str = "auto", timeout_min: float = 30.0) -> DistContext:
    """Create the process group when started by torchrun or by ``srun`` with more than one task
    (see :func:`tinlib.engine.slurm.launch_layout`); idempotent."""
    try:
        layout = launch_layout()
    except ValueError as err:
        raise RunError(str(err)) from None
    dev = resolve_device(device, layout.local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if layout.world_size <= 1:
        return DistContext(0, 1, 0, dev, None)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    # torchrun exports MASTER_ADDR/MASTER_PORT (env://); under srun the address comes from SLURM
    init = "env://" if layout.master_addr is None else f"tcp://{layout.master_addr}:{layout.master_port}"
    if not dist.is_initialized():
        init_process_group(backend, layout.rank, layout.world_size, timedelta(minutes=timeout_min), init_method=init)
    return DistContext(layout.rank, layout.world_size, layout.local_rank, dev, backend)


def init_process_group(backend: str, rank: int, world_size: int, timeout: timedelta,
                       init_method: str = "env://") -> None:
    """``torch.distributed.init_process_group`` with the group's keys in the store under this
    attempt of a torchrun job (``TORCHELASTIC_RESTART_COUNT``): torchrun's c10d rendezvous
    (``--standalone``, ``--rdzv-backend c10d``) keeps its store across restarts, where a restarted
    process would read the addresses of the killed ones and fail to connect to them."""
    store, rank, world_size = next(dist.rendezvous(init_method, rank, world_size, timeout=timeout))
    store.set_timeout(timeout)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group(backend=backend, store=dist.PrefixStore(f"default_pg/attempt_{attempt}", store),
                            rank=rank, world_size=world_size, timeout=timeout)


def cleanup() -> None:
    """Destroy the process group if there is one (at the end of a command, also after an error)."""
    global _cpu_group
    _cpu_group = None
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_initialized() -> bool:
    """Whether a process group exists (False for a single process)."""
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait for every process (a no-op in a single process)."""
    if is_initialized():
        dist.barrier()


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In-place all-reduce (sum, mean, max, min); a no-op in a single process."""
    if not is_initialized():
        return tensor
    ops = {"sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
    work = tensor
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
        work = tensor.to(torch.device("cuda", torch.cuda.current_device()))  # NCCL reduces CUDA tensors only
    dist.all_reduce(work, op=ops[op])
    if op == "mean":
        work /= dist.get_world_size()
    if work is not tensor:
        tensor.copy_(work)
    return tensor


# a gloo group beside an NCCL one, for the small host-side reductions of max_over_processes
_cpu_group: Any = None


def max_over_processes(value: int) -> int:
    """The largest ``value`` of all processes (``value`` itself in a single process). Reduced on the
    CPU over gloo (a gloo group beside NCCL), so it never waits for the device."""
    if not is_initialized():
        return value
    global _cpu_group
    if _cpu_group is None and dist.get_backend() != "gloo":
        _cpu_group = dist.new_group(backend="gloo")
    tensor = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=_cpu_group)
    return int(tensor.item())


def all_gather_object(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process (``[obj]`` in a single process)."""
    if not is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every process (``obj`` itself in a single process)."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def collective_check(fn: Callable[[], Any], error_type: type[Exception] = RuntimeError) -> Any:
    """Run ``fn`` on every process; if it raises on any of them, raise ``error_type`` on all of
    them with that message (instead of leaving the others blocked in the next collective).
    Expected errors (``error_type``, ``ValueError``, ``OSError``) carry their message over; others
    are re-raised on the failing process after the others have been told."""
    if not is_initialized():
        return fn()
    result, message, unexpected = None, None, None
    try:
        result = fn()
    except (error_type, ValueError, OSError) as err:
        message = str(err)
    except Exception as err:  # any other error: re-raised below once every process knows
        message, unexpected = f"{type(err).__name__}: {err}", err
    messages = all_gather_object(message)
    failed = [(rank, m) for rank, m in enumerate(messages) if m]
    if failed:
        if unexpected is not None:
            raise unexpected
        rank, text = failed[0]
        raise error_type(text if rank == dist.get_rank() or rank == 0 else f"(process {rank}) {text}")
    return result
