"""SGD with MMAction2's TSM parameter groups (its ``TSMOptimizerConstructor``) and L2 gradient clipping.

Modules are visited in ``model.modules()`` order (backbone before head):

- the first convolution met (the stem): weight lr x1 / decay x1, bias lr x2 / no decay;
- every other Conv1d/2d/3d and every Linear (TIN's Conv1d, fc1, fc2 included): same multipliers;
- BatchNorm/SyncBatchNorm/GroupNorm parameters that require grad: lr x1, no decay;
- the last Linear (the classifier ``cls_head.fc_cls``) with ``fc_lr5``: weight lr x5 / decay x1,
  bias lr x10 / no decay (without ``fc_lr5`` it stays with the normal weights and biases).

Seven groups in this order; empty groups are kept so that group indices are stable. A module of
another kind that owns parameters is an error (upstream refuses them too).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from tinlib.config import Config

# name, lr multiplier, weight-decay multiplier
GROUPS = (
    ("first_conv_weight", 1.0, 1.0),
    ("first_conv_bias", 2.0, 0.0),
    ("normal_weight", 1.0, 1.0),
    ("normal_bias", 2.0, 0.0),
    ("bn", 1.0, 0.0),
    ("lr5_weight", 5.0, 1.0),
    ("lr10_bias", 10.0, 0.0),
)


def split_parameters(model: nn.Module, fc_lr5: bool = True) -> dict[str, list[torch.Tensor]]:
    """Parameters of ``model`` by group name (the names of ``GROUPS``, see the module docstring);
    raises ``ValueError`` for a parameter no group can take or a trainable one left out."""
    groups: dict[str, list[torch.Tensor]] = {name: [] for name, _, _ in GROUPS}
    seen_conv = False
    last_linear: nn.Linear | None = None
    for qualname, module in model.named_modules():
        own = list(module.parameters(recurse=False))
        if isinstance(module, _ConvNd):
            prefix = "normal" if seen_conv else "first_conv"
            seen_conv = True
            groups[f"{prefix}_weight"].append(module.weight)
            if module.bias is not None:
                groups[f"{prefix}_bias"].append(module.bias)
        elif isinstance(module, nn.Linear):
            groups["normal_weight"].append(module.weight)
            if module.bias is not None:
                groups["normal_bias"].append(module.bias)
            last_linear = module
        elif isinstance(module, (_BatchNorm, nn.GroupNorm)):  # the CPU SyncBatchNorm is a BatchNorm2d too
            groups["bn"].extend(p for p in own if p.requires_grad)
        elif own:
            raise ValueError(f"parameter groups: module {qualname or '<root>'} ({type(module).__name__}) owns "
                             "parameters but is not a Conv, Linear or normalization layer; TSM-style groups "
                             "cannot place them")
    if fc_lr5:
        if last_linear is None:
            raise ValueError("parameter groups: fc_lr5 needs a Linear classifier, the model has none")
        for kind, new_group, param in (("weight", "lr5_weight", last_linear.weight),
                                       ("bias", "lr10_bias", last_linear.bias)):
            if param is not None:
                normal = groups[f"normal_{kind}"]
                del normal[next(i for i, p in enumerate(normal) if p is param)]
                groups[new_group].append(param)
    _check_complete(model, groups)
    return groups


def _check_complete(model: nn.Module, groups: dict[str, list[torch.Tensor]]) -> None:
    placed = {id(p) for ps in groups.values() for p in ps}
    if len(placed) != sum(len(ps) for ps in groups.values()):
        raise ValueError("parameter groups: a parameter was placed twice (shared module?)")
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in placed]
    if missing:
        raise ValueError(f"parameter groups: trainable parameters left out: {', '.join(missing[:5])}")


def build_param_groups(model: nn.Module, lr: float, weight_decay: float, fc_lr5: bool = True) -> list[dict]:
    """The seven optimizer groups with their lr and weight decay; each also records its name,
    multipliers and ``initial_lr`` (the base the schedule starts from)."""
    split = split_parameters(model, fc_lr5)
    out = []
    for name, lr_mult, decay_mult in GROUPS:
        out.append({"params": split[name], "lr": lr * lr_mult, "initial_lr": lr * lr_mult,
                    "weight_decay": weight_decay * decay_mult, "name": name, "lr_mult": lr_mult,
                    "decay_mult": decay_mult})
    return out


def build_optimizer(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4,
                    fc_lr5: bool = True, nesterov: bool = False, kind: str = "sgd") -> torch.optim.Optimizer:
    """SGD (or AdamW, ``kind="adamw"``: decoupled decay, no momentum term) over
    :func:`build_param_groups` (``lr`` is the already scaled base lr).

    AdamW runs as PyTorch's fused kernel (one pass over all parameters instead of a loop of small
    ops per tensor, 1.3x faster demo steps on a CPU) when every parameter is a float tensor on the
    CPU or a CUDA device, which is where that kernel exists."""
    groups = build_param_groups(model, lr, weight_decay, fc_lr5)
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=_fusable(model.parameters()))
    if kind != "sgd":
        raise ValueError(f"optimizer kind must be 'sgd' or 'adamw', got {kind!r}")
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


def _fusable(params: Iterable[torch.Tensor]) -> bool:
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def clip_gradients(params: Iterable[nn.Parameter], max_norm: float | None) -> torch.Tensor | None:
    """Clip the global L2 norm of the gradients to ``max_norm`` (no-op when None); returns the
    norm before clipping, as mmcv's optimizer hook logs it."""
    params = [p for p in params if p.requires_grad and p.grad is not None]
    if max_norm is None or not params:
        return None
    return torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=2.0)


@dataclass
class LrScaling:
    """The learning rate of a run after the linear scaling rule, and what it was computed from."""

    base_lr: float
    lr: float
    total_batch: int
    ref_batch: int
    world_size: int
    videos_per_gpu: int
    applied: bool

    def message(self) -> str:
        """One line for the log: the lr and why (scaled, equal to the reference, or unscaled)."""
        setting = f"total batch {self.total_batch} ({self.world_size} process(es) x {self.videos_per_gpu} videos)"
        ref = f"reference {self.ref_batch}"
        if self.total_batch == self.ref_batch:
            return f"lr {self.lr:g}: {setting} equals the {ref}, no scaling"
        if self.applied:
            return (f"linear scaling rule: {setting} vs {ref} -> lr {self.base_lr:g} x "
                    f"{self.total_batch}/{self.ref_batch} = {self.lr:g}")
        return f"lr {self.lr:g} unscaled (optim.scale_lr=False) although {setting} differs from the {ref}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def scaled_lr(cfg: Config, world_size: int) -> LrScaling:
    """The learning rate for ``world_size`` processes of ``data.videos_per_gpu`` videos each:
    ``lr x total / (ref_gpus x ref_videos_per_gpu)`` when ``optim.scale_lr`` (the default)."""
    total = world_size * cfg.data.videos_per_gpu
    ref = cfg.optim.ref_gpus * cfg.optim.ref_videos_per_gpu
    applied = cfg.optim.scale_lr and total != ref
    lr = cfg.optim.lr * total / ref if applied else cfg.optim.lr
    return LrScaling(cfg.optim.lr, lr, total, ref, world_size, cfg.data.videos_per_gpu, applied)
