"""SLURM: where a process started by ``srun`` stands (rank, world size, master address and port
from the ``SLURM_*`` variables) and the sbatch script of a training run. Standard library only."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tinlib.errors import UserError

# where the derived rendezvous ports start: above the well-known and registered ranges most
# services bind, below the ephemeral range Linux hands out (32768-60999)
PORT_BASE, PORT_SPAN = 20000, 10000
_BRACKETS = re.compile(r"\[([^\]]*)\]")


def expand_nodelist(nodelist: str) -> list[str]:
    """The host names of a SLURM node list: ``node[01-03,07],gpu-b3`` -> ``node01 node02 node03
    node07 gpu-b3``. A range keeps the zero padding of its start; several bracket groups in one
    name give every combination (``r[1-2]n[1-2]`` -> ``r1n1 r1n2 r2n1 r2n2``)."""
    hosts: list[str] = []
    for name in _split_top_level(nodelist.strip()):
        if name:
            hosts += _expand_name(name)
    return hosts


def _split_top_level(text: str) -> list[str]:
    """``text`` split at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _expand_name(name: str) -> list[str]:
    match = _BRACKETS.search(name)
    if match is None:
        return [name]
    head, tail = name[:match.start()], name[match.end():]
    return [head + item + rest for item in _expand_ranges(match.group(1), name) for rest in _expand_name(tail)]


def _expand_ranges(ranges: str, name: str) -> list[str]:
    """``01-03,07`` -> ``01 02 03 07`` (the width of a zero-padded start is kept)."""
    out = []
    for part in ranges.split(","):
        first, _, last = part.strip().partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(f"cannot read the SLURM node list {name!r}: {part!r} is not a number or range")
        width = len(first) if first.startswith("0") else 0
        out += [str(n).zfill(width) for n in range(int(first), int(last or first) + 1)]
    return out


def first_host(nodelist: str) -> str:
    """The first host of ``nodelist``: from ``scontrol show hostnames`` when that command is there
    (it knows every form SLURM writes), else from :func:`expand_nodelist`."""
    if shutil.which("scontrol"):
        try:
            out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                                 timeout=30, check=True).stdout.split()
            if out:
                return out[0]
        except (OSError, subprocess.SubprocessError):
            pass  # the Python expansion below reads the usual forms
    return expand_nodelist(nodelist)[0]


@dataclass(frozen=True)
class Layout:
    """A process's place in a group: global ``rank`` of ``world_size``, ``local_rank`` on its node,
    and the rendezvous ``master_addr``/``master_port`` (None: torchrun's ``MASTER_*`` variables)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None


def launch_layout(env: Mapping[str, str] | None = None) -> Layout:
    """This process's layout: torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` when set (they
    win); else, in a SLURM job step of more than one task (``srun``), ``SLURM_PROCID``,
    ``SLURM_NTASKS`` and ``SLURM_LOCALID``, with ``MASTER_ADDR`` (default: the first host of the
    step's node list, where task 0 runs) and ``MASTER_PORT`` (default: derived from the job id, so
    that jobs sharing a node do not collide); else a single process."""
    env = os.environ if env is None else env
    if "RANK" in env or "WORLD_SIZE" in env:
        return Layout(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))
    if not env.get("SLURM_JOB_ID") or int(env.get("SLURM_NTASKS", 1)) <= 1:
        return Layout()
    nodelist = next((env[k] for k in ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST") if env.get(k)),
                    None)
    addr = env.get("MASTER_ADDR") or (first_host(nodelist) if nodelist else None)
    if addr is None:
        raise ValueError("SLURM_NTASKS > 1 but neither MASTER_ADDR nor SLURM_JOB_NODELIST is set: start the "
                         "tasks with srun, or set MASTER_ADDR to the host of task 0")
    port = int(env.get("MASTER_PORT") or PORT_BASE + int(env["SLURM_JOB_ID"]) % PORT_SPAN)
    return Layout(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)), addr, port)


# ---- sbatch scripts --------------------------------------------------------------------------
@dataclass
class JobSpec:
    """What an sbatch script asks of SLURM: ``nodes`` x ``gpus_per_node`` (one task per GPU), CPUs
    per task, and the optional ``partition``, ``account``, ``time`` (``HH:MM:SS`` or SLURM's other
    forms) and ``job_name``; ``output`` is the log path (``%j``: the job id)."""

    nodes: int
    gpus_per_node: int
    cpus_per_task: int
    output: str
    job_name: str
    partition: str | None = None
    account: str | None = None
    time: str | None = None


def parse_gpus(text: str) -> tuple[int, int]:
    """A model-zoo row's ``gpus`` cell as ``(nodes, gpus_per_node)``: ``8x4`` is four nodes of
    eight GPUs (32 in all, MMAction2's notation), ``8`` one node of eight."""
    per_node, _, nodes = text.strip().lower().partition("x")
    if not per_node.isdigit() or (nodes and not nodes.isdigit()):
        raise ValueError(f"cannot read {text!r} as GPUS or GPUSxNODES (e.g. 8x4)")
    return int(nodes or 1), int(per_node)


def sbatch_script(job: JobSpec, commands: Sequence[Sequence[str]]) -> str:
    """The text of an sbatch script that runs each of ``commands`` (argument lists) with ``srun``,
    one task per GPU, stopping at the first failure. ``--requeue`` and ``--signal=USR1@120``: SLURM
    warns the tasks two minutes before the time limit or a preemption; a training stops at an
    iteration boundary with a checkpoint, and the requeued job resumes from it (``--resume auto``)."""
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job.job_name}", f"#SBATCH --nodes={job.nodes}",
             f"#SBATCH --ntasks-per-node={job.gpus_per_node}", f"#SBATCH --gpus-per-node={job.gpus_per_node}",
             f"#SBATCH --cpus-per-task={job.cpus_per_task}"]
    lines += [f"#SBATCH --{key}={value}" for key, value in
              (("partition", job.partition), ("account", job.account), ("time", job.time)) if value]
    lines += [f"#SBATCH --output={job.output}", "#SBATCH --requeue", "#SBATCH --signal=USR1@120", "",
              "# one task per GPU; tinlib reads its rank, the world size and the master address from SLURM_*",
              "set -euo pipefail"]
    lines += ["srun " + shlex.join(list(cmd)) for cmd in commands]
    return "\n".join(lines) + "\n"


def submit(script: str, path: Path) -> str:
    """Write ``script`` to ``path`` and submit it with ``sbatch``; the line to show: sbatch's answer
    (the job id), or where the script is when ``sbatch`` is not on this machine.

    Raises:
        UserError: sbatch refused the script (its message)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    if shutil.which("sbatch") is None:
        return f"sbatch is not on this machine: wrote {path}; submit it with `sbatch {path}` on the cluster"
    proc = subprocess.run(["sbatch", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"sbatch {path} failed: {' '.join(proc.stderr.split()) or proc.returncode}")
    return f"{proc.stdout.strip()} ({path})"
