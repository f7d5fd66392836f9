"""LR schedules (mmcv 0.x semantics, see tinlib.engine.schedule): values at key positions of the three zoo recipes."""
import math

import pytest
import torch

from tinlib.config import ScheduleConfig, load_config
from tinlib.engine.schedule import LrSchedule

IPE = 100  # iterations per epoch used below


def sthv1():
    return LrSchedule(load_config("tin_r50_1x1x8_40e_sthv1_rgb").schedule, 40, IPE)


def test_sthv1_cosine_by_epoch_ends_at_half_the_base():
    s = sthv1()
    assert s.lr(1.0, 39) == pytest.approx(0.5008, abs=5e-5)
    assert s.lr(1.0, 39) == pytest.approx(0.5 + 0.25 * (1 + math.cos(math.pi * 39 / 40)))
    assert s.lr(1.0, 19) == pytest.approx(0.7696, abs=5e-5)
    # constant within an epoch once the warmup is over
    assert s.lr(1.0, 10, 0) == s.lr(1.0, 10, 99)
    assert min(s.lr(1.0, e, i) for e in range(1, 40) for i in (0, 99)) > 0.5  # after the warmup


def test_sthv1_warmup_ramps_linearly_over_the_first_epoch():
    s = sthv1()
    assert s.lr(1.0, 0, 0) == pytest.approx(0.1)
    assert s.lr(1.0, 0, 50) == pytest.approx(0.1 + 0.9 * 0.5)
    assert s.lr(1.0, 0, 99) == pytest.approx(0.1 + 0.9 * 0.99)
    # warmup over: epoch 1 uses the cosine value of epoch 1
    assert s.lr(1.0, 1, 0) == pytest.approx(0.5 + 0.25 * (1 + math.cos(math.pi / 40)))
    assert s.warmup_iters == IPE


def test_sthv2_cosine_by_iteration_to_zero_with_warmup():
    s = LrSchedule(load_config("tin_r50_1x1x8_40e_sthv2_rgb").schedule, 40, IPE)
    total = 40 * IPE
    cos = lambda i: 0.5 * (1 + math.cos(math.pi * i / total))  # noqa: E731
    assert s.lr(1.0, 0, 0) == pytest.approx(0.1 * cos(0))
    assert s.lr(1.0, 0, 30) == pytest.approx((0.1 + 0.9 * 0.3) * cos(30))
    assert s.lr(1.0, 1, 0) == pytest.approx(cos(100))
    assert s.lr(1.0, 20, 0) == pytest.approx(0.5)
    assert s.lr(1.0, 39, 99) == pytest.approx(cos(total - 1))
    assert s.lr(1.0, 39, 99) < 1e-5
    assert s.lr(1.0, 10, 5) != s.lr(1.0, 10, 6)  # moves every iteration


def test_k400_step_at_20_and_40():
    s = LrSchedule(load_config("tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb").schedule, 50, IPE)
    assert [s.lr(0.01, e) for e in (0, 19, 20, 39, 40, 49)] == pytest.approx([0.01, 0.01, 0.001, 0.001, 1e-4, 1e-4])
    assert s.lr(0.01, 0, 0) == 0.01  # no warmup


def test_absolute_min_lr_and_other_warmups():
    cfg = ScheduleConfig(policy="cosine", by_epoch=True, min_lr_ratio=None, min_lr=0.001, warmup="constant",
                         warmup_epochs=0, warmup_iters=10, warmup_ratio=0.2)
    s = LrSchedule(cfg, 4, 10)
    assert s.lr(0.1, 0, 3) == pytest.approx(0.1 * 0.2)
    assert s.lr(0.1, 2) == pytest.approx(0.001 + 0.5 * 0.099 * (1 + math.cos(math.pi / 2)))
    exp = LrSchedule(ScheduleConfig(policy="fixed", warmup="exp", warmup_epochs=1, warmup_ratio=0.1), 2, 10)
    assert exp.lr(1.0, 0, 5) == pytest.approx(0.1 ** 0.5)
    assert exp.lr(1.0, 1, 0) == 1.0


def test_step_sets_every_group_from_its_own_base():
    p = torch.nn.Parameter(torch.zeros(1))
    q = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "lr": 0.02, "initial_lr": 0.02},
                           {"params": [q], "lr": 0.2, "initial_lr": 0.2}], lr=0.02)
    s = sthv1()
    first = s.step(opt, 39, 0)
    assert first == pytest.approx(0.02 * s.lr(1.0, 39))
    assert opt.param_groups[1]["lr"] == pytest.approx(0.2 * s.lr(1.0, 39))
