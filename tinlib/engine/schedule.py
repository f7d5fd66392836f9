"""Learning-rate schedules with mmcv 0.x semantics (its ``LrUpdaterHook``s), as pure functions of the
position ``(epoch, inner_iter)`` (0-based; ``iters_per_epoch`` is the per-process loader length).
Each parameter group's base lr maps to:

- cosine: ``target + 0.5 (base - target)(1 + cos(pi p / P))``, ``target = base x min_lr_ratio`` (or
  ``min_lr``), ``p/P`` = epoch/epochs when ``by_epoch``, else global_iter/total_iters (warmup
  included), so sthv1's cosine by epoch to 0.5 x base is at 0.5008 x base in the last epoch;
- step: ``base x gamma^(milestones passed)``; fixed: ``base``;
- times the warmup while ``global_iter < W`` (``warmup_epochs x iters_per_epoch`` or
  ``warmup_iters``): linear ``ratio + (1 - ratio) i/W``, constant ``ratio``, exp ``ratio^(1 - i/W)``."""
from __future__ import annotations

import math

from tinlib.config import ScheduleConfig


class LrSchedule:
    """The learning rate as a function of the position ``(epoch, inner_iter)`` for a schedule
    config, ``epochs`` and ``iters_per_epoch`` (the per-process loader length)."""

    def __init__(self, cfg: ScheduleConfig, epochs: int, iters_per_epoch: int):
        if iters_per_epoch <= 0:
            raise ValueError(f"iters_per_epoch must be positive, got {iters_per_epoch}")
        self.cfg, self.epochs, self.iters_per_epoch = cfg, epochs, iters_per_epoch
        self.total_iters = epochs * iters_per_epoch
        if cfg.warmup is None:
            self.warmup_iters = 0
        elif cfg.warmup_epochs > 0:
            self.warmup_iters = int(round(cfg.warmup_epochs * iters_per_epoch))
        else:
            self.warmup_iters = int(cfg.warmup_iters)
        self.last_position = (0, 0)

    # ---- formulas -----------------------------------------------------------------------
    def regular(self, base: float, epoch: int, inner_iter: int = 0) -> float:
        """The policy's lr (cosine, step or fixed) for base lr ``base`` at ``(epoch, inner_iter)``,
        without the warmup."""
        cfg = self.cfg
        if cfg.by_epoch:
            progress, total = epoch, self.epochs
        else:
            progress, total = epoch * self.iters_per_epoch + inner_iter, self.total_iters
        if cfg.policy == "fixed":
            return base
        if cfg.policy == "step":
            exponent = sum(1 for milestone in cfg.steps if progress >= milestone)
            lr = base * cfg.gamma ** exponent
            return max(lr, cfg.min_lr) if cfg.min_lr is not None else lr
        if cfg.policy == "cosine":
            target = base * cfg.min_lr_ratio if cfg.min_lr_ratio is not None else float(cfg.min_lr or 0.0)
            return target + 0.5 * (base - target) * (1 + math.cos(math.pi * progress / total))
        raise ValueError(f"unknown lr policy {cfg.policy!r}")

    def warmup_factor(self, global_iter: int) -> float:
        """The warmup multiplier at 0-based iteration ``global_iter`` (1.0 after the warmup)."""
        if self.cfg.warmup is None or global_iter >= self.warmup_iters:
            return 1.0
        ratio, frac = self.cfg.warmup_ratio, global_iter / self.warmup_iters
        if self.cfg.warmup == "linear":
            return ratio + (1 - ratio) * frac
        if self.cfg.warmup == "constant":
            return ratio
        if self.cfg.warmup == "exp":
            return ratio ** (1 - frac)
        raise ValueError(f"unknown warmup {self.cfg.warmup!r}")

    def lr(self, base: float, epoch: int, inner_iter: int = 0) -> float:
        """The lr of a group with base lr ``base`` at (epoch, inner_iter), both 0-based."""
        global_iter = epoch * self.iters_per_epoch + inner_iter
        return self.regular(base, epoch, inner_iter) * self.warmup_factor(global_iter)

    # ---- optimizer ----------------------------------------------------------------------
    def step(self, optimizer, epoch: int, inner_iter: int) -> float:
        """Set every group's lr for this position (before the iteration); returns the first group's."""
        for group in optimizer.param_groups:
            group["lr"] = self.lr(group["initial_lr"], epoch, inner_iter)
        self.last_position = (epoch, inner_iter)
        return optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        """The bookkeeping stored in checkpoints: epochs, iterations per epoch, warmup length, last position."""
        return {"epochs": self.epochs, "iters_per_epoch": self.iters_per_epoch, "warmup_iters": self.warmup_iters,
                "last_position": list(self.last_position)}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s last position."""
        # The lr is a function of the position, so nothing but the bookkeeping is restored; a
        # changed loader length is reported by the caller.
        self.last_position = tuple(state.get("last_position", (0, 0)))
