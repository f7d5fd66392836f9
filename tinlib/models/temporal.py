"""Temporal modules that TIN and TSM put in front of the first conv of every residual block, on frames
stacked on the batch axis, ``x: [N*T, C, H, W]`` (a video's T segments consecutive and in order)."""
from __future__ import annotations

import os

import torch
from torch import nn
from torch.nn.modules import module as module_hooks

from tinlib import ops
from tinlib.ops import tin_block

# fc2's bias starts at ln(5/3): sigmoid = 0.625, so offsets start near +0.5 (as in MMAction2's OffsetNet init).
OFFSET_BIAS_INIT = 0.5108
# TIN shares one offset and one weight between two of the four channel quarters.
DEFORM_GROUPS = 2
_BLOCK_DTYPES = (torch.float32, torch.float64)


class OffsetNet(nn.Module):
    """Predicts two temporal offsets per video in (-2, 2) from the pooled fold channels."""

    def __init__(self, in_channels: int, num_segments: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, 1, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(num_segments, num_segments)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(num_segments, DEFORM_GROUPS)
        nn.init.constant_(self.fc2.bias, OFFSET_BIAS_INIT)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled: [N, F, T] -> offsets [N, 2]."""
        z = self.conv(pooled).flatten(1)  # [N, T]
        z = self.fc2(self.relu(self.fc1(z)))
        return 4.0 * (torch.sigmoid(z) - 0.5)


class WeightNet(nn.Module):
    """Predicts a weight in (0, 2) per segment and per offset group from the pooled fold channels."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, DEFORM_GROUPS, kernel_size=3, padding=1, bias=True)
        assert self.conv.bias is not None
        nn.init.zeros_(self.conv.bias)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled: [N, F, T] -> weights [N, T, 2]."""
        return 2.0 * torch.sigmoid(self.conv(pooled)).transpose(1, 2)


# nn.Module has no public way to ask whether calling a module runs hooks. The one-op path (which
# does not call the nets) reads torch's registries where this torch keeps them: the global ones of
# torch.nn.modules.module and each module's own dicts. Elsewhere it cannot tell, and the steps are
# composed: they call the nets, so any hook runs.
_HOOK_KINDS = ("forward_hooks", "forward_pre_hooks", "backward_hooks", "backward_pre_hooks")
_GLOBAL_HOOKS = tuple(getattr(module_hooks, f"_global_{kind}", None) for kind in _HOOK_KINDS)
HOOKS_VISIBLE = (all(isinstance(hooks, dict) for hooks in _GLOBAL_HOOKS)
                 and all(isinstance(getattr(nn.Module(), f"_{kind}", None), dict) for kind in _HOOK_KINDS))


def _hooked(*modules: nn.Module) -> bool:
    """Whether calling these modules would (or, where torch's hook registries are not visible, might)
    run hooks, theirs or global module hooks."""
    if not HOOKS_VISIBLE:
        return True
    return any(_GLOBAL_HOOKS) or any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                                     or m._backward_pre_hooks for m in modules)


class TemporalInterlace(nn.Module):
    """TIN's interlace: the first C // shift_div channels are resampled in time at learned
    fractional offsets (+o0, +o1, -o0, -o1 for the four quarters of the fold) and reweighted
    per segment; the other channels pass through unchanged.

    ``grad`` picks the data gradient of the shift: "adjoint" (the true gradient) or "mmcv"
    (what MMAction2-trained checkpoints were trained with, see tinlib.ops).
    """

    def __init__(self, in_channels: int, num_segments: int = 8, shift_div: int = 4,
                 grad: str = "adjoint", backend: str = "auto"):
        super().__init__()
        fold = in_channels // shift_div
        if fold == 0 or fold % (2 * DEFORM_GROUPS):
            raise ValueError(f"TemporalInterlace: in_channels={in_channels} // shift_div={shift_div} = {fold} "
                             f"must be a positive multiple of {2 * DEFORM_GROUPS} (four channel quarters)")
        self.in_channels, self.num_segments, self.shift_div, self.fold = in_channels, num_segments, shift_div, fold
        self.grad, self.backend = grad, backend
        self.offset_net = OffsetNet(fold, num_segments)
        self.weight_net = WeightNet(fold)
        # the one-op path views each frame as rows of (fold // 4) channels: C must be a multiple
        self._rows_fit = in_channels % (fold // tin_block.GROUPS) == 0
        self.record = False  # when True, the last offsets/weights are kept for inspection
        self.last_offsets: torch.Tensor | None = None
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N*T, C, H, W] -> [N*T, C, H, W]."""
        nt, c, h, w = x.shape
        t = self.num_segments
        if nt % t or c != self.in_channels:
            raise ValueError(f"TemporalInterlace expects [N*{t}, {self.in_channels}, H, W], got {list(x.shape)}")
        params = self._block_params(x)
        if params is not None:
            y, offsets, weights = tin_block.temporal_interlace_block(x, params, t, self.shift_div, self.grad)
        else:
            y, offsets, weights = self._composed(x)
        if self.record:
            self.last_offsets, self.last_weights = offsets.detach(), weights.detach()
        return y

    def _block_params(self, x: torch.Tensor) -> tin_block.NetParams | None:
        """The nets' parameters when the whole module can run as one op (tinlib.ops.tin_block):
        the stock nets without hooks (the op does not call them), x float32/float64, contiguous,
        on the CPU like the nets' parameters, the eager backend, no autocast, no export (which
        wants standard operators); else None (compose the steps). GPUs keep the composed steps,
        whose op has the Triton kernels; the one op has been measured and tested on the CPU only."""
        offset_net, weight_net = self.offset_net, self.weight_net
        if type(offset_net) is not OffsetNet or type(weight_net) is not WeightNet or not self._rows_fit:
            return None
        conv, fc1, fc2, weight_conv = offset_net.conv, offset_net.fc1, offset_net.fc2, weight_net.conv
        if _hooked(offset_net, weight_net, conv, fc1, fc2, weight_conv) or conv.bias is None \
                or weight_conv.bias is None:
            return None
        first = conv.weight
        if (x.dtype is not first.dtype or x.dtype not in _BLOCK_DTYPES or not x.is_cpu or not first.is_cpu
                or not x.is_contiguous() or x.numel() == 0):
            return None
        if torch.is_autocast_enabled("cpu") or torch.compiler.is_exporting():
            return None
        # "auto" means the eager backend on the CPU unless the variable names another
        backend = self.backend
        if not (backend == "reference" or (backend == "auto" and not os.environ.get(ops.BACKEND_ENV))
                or ops.resolve_backend(backend, x) == "reference"):
            return None
        return tin_block.NetParams(first, conv.bias, fc1.weight, fc1.bias, fc2.weight, fc2.bias, weight_conv.weight,
                                   weight_conv.bias)

    def _composed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The module as separate autograd steps: x [N*T, C, H, W] -> (y, offsets [N, 2], weights [N, T, 2])."""
        nt, c, h, w = x.shape
        n, t, f = nt // self.num_segments, self.num_segments, self.fold
        fold = x[:, :f].reshape(n, t, f, h, w)
        pooled = fold.mean(dim=(3, 4)).transpose(1, 2)  # [N, F, T]: spatial mean, Conv1d layout
        offsets = self.offset_net(pooled)  # [N, 2]
        weights = self.weight_net(pooled)  # [N, T, 2]
        group_offsets = torch.cat([offsets, -offsets], dim=1)  # [N, 4]: +o0 +o1 -o0 -o1
        group_weights = torch.cat([weights, weights], dim=2)  # [N, T, 4]: w0 w1 w0 w1
        y = ops.interlace(fold.reshape(n, t, f, h * w), group_offsets.to(x.dtype), group_weights.to(x.dtype),
                          grad=self.grad, backend=self.backend)
        return torch.cat([y.reshape(nt, f, h, w), x[:, f:]], dim=1), offsets, weights

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, num_segments={self.num_segments}, fold={self.fold}, grad={self.grad!r}"


class TemporalShift(nn.Module):
    """TSM's shift: channels [0, C/d) take the next segment, [C/d, 2C/d) the previous one,
    the rest are unchanged; zeros enter at the ends."""

    def __init__(self, num_segments: int = 8, shift_div: int = 8):
        super().__init__()
        self.num_segments, self.shift_div = num_segments, shift_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N*T, C, H, W] -> [N*T, C, H, W]."""
        nt, c, h, w = x.shape
        t, f = self.num_segments, c // self.shift_div
        if nt % t:
            raise ValueError(f"TemporalShift expects a batch of N*{t} frames, got {nt}")
        v = x.reshape(nt // t, t, c, h * w)
        zero = v.new_zeros(v.shape[0], 1, f, h * w)
        from_next = torch.cat([v[:, 1:, :f], zero], dim=1)
        from_prev = torch.cat([zero, v[:, :-1, f:2 * f]], dim=1)
        return torch.cat([from_next, from_prev, v[:, :, 2 * f:]], dim=2).reshape(nt, c, h, w)

    def extra_repr(self) -> str:
        return f"num_segments={self.num_segments}, shift_div={self.shift_div}"


class TemporalConv(nn.Module):
    """A block's first conv with a temporal module in front: ``conv(temporal(x))``."""

    def __init__(self, temporal: nn.Module, conv: nn.Conv2d):
        super().__init__()
        self.temporal = temporal
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N*T, C, H, W] -> conv(temporal(x)), [N*T, C', H', W']."""
        return self.conv(self.temporal(x))
