"""TensorBoard scalars of a training run (train.tensorboard), read back with tensorboard's own
reader: the interval and validation numbers at the global iteration, and no step twice after a
crash and --resume auto."""
import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_engine_train import Clips, tiny_cfg  # noqa: E402

from tinlib.engine.train import train


@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # train.json goes to ./results/<run>/


def scalars(work_dir):
    """{tag: [(step, value), ...]} of every scalar under work_dir/tensorboard."""
    acc = EventAccumulator(str(work_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_interval_and_validation_scalars_at_the_global_iteration(tmp_path):
    cfg = tiny_cfg(train=dict(epochs=2, val_interval=1, log_interval=2))
    wd = tmp_path / "wd"
    train(cfg, work_dir=wd, datasets={"train": Clips(16), "val": Clips(8, seed=1)}, seed=0, progress=False)
    got = scalars(wd)
    # 16 clips / 4 per batch = 4 iterations per epoch, a line every 2: global steps 2, 4, 6, 8
    for tag in ("loss_cls", "lr", "top1_acc", "top5_acc", "time", "data_time"):
        assert [step for step, _ in got[f"train/{tag}"]] == [2, 4, 6, 8], tag
    # validation after each epoch, at the iteration where the epoch ends
    for tag in ("top1_acc", "top5_acc", "mean_class_accuracy"):
        assert [step for step, _ in got[f"val/{tag}"]] == [4, 8], tag
    # the same numbers as log.json (float32 in the event file)
    lines = [json.loads(line) for line in (wd / "log.json").read_text().splitlines()]
    train_lines = [e for e in lines if e.get("mode") == "train"]
    assert [v for _, v in got["train/loss_cls"]] == pytest.approx([e["loss_cls"] for e in train_lines], rel=1e-6)
    assert [v for _, v in got["train/lr"]] == pytest.approx([e["lr"] for e in train_lines], rel=1e-6)
    val_lines = [e for e in lines if e.get("mode") == "val"]
    assert [v for _, v in got["val/top1_acc"]] == pytest.approx([e["top1_acc"] for e in val_lines], rel=1e-6)


def test_grad_norm_is_a_scalar_when_gradients_are_clipped(tmp_path):
    cfg = tiny_cfg(optim=dict(grad_clip=20.0), train=dict(epochs=1, val_interval=0))
    train(cfg, work_dir=tmp_path / "wd", datasets={"train": Clips(8)}, seed=0, progress=False)
    assert [step for step, _ in scalars(tmp_path / "wd")["train/grad_norm"]] == [1, 2]


def test_resumed_run_continues_its_curves_without_duplicate_steps(tmp_path):
    cfg = tiny_cfg(train=dict(epochs=3, val_interval=1, checkpoint_interval_iters=2))
    ref, wd = tmp_path / "ref", tmp_path / "run"
    kwargs = dict(seed=3, deterministic=True, progress=False)
    train(cfg, work_dir=ref, datasets={"train": Clips(16), "val": Clips(8, seed=1)}, **kwargs)
    # crash while loading the 4th batch of epoch 2: iterations 5-7 are logged, latest.pth holds 6
    with pytest.raises(KeyboardInterrupt):
        train(cfg, work_dir=wd, datasets={"train": Clips(16, fail_after=16 + 13), "val": Clips(8, seed=1)}, **kwargs)
    before = scalars(wd)
    assert [s for s, _ in before["train/loss_cls"]] == [1, 2, 3, 4, 5, 6, 7]  # step 7 is redone after the resume
    train(cfg, work_dir=wd, resume="auto", datasets={"train": Clips(16), "val": Clips(8, seed=1)}, **kwargs)
    got, expected = scalars(wd), scalars(ref)
    assert got.keys() == expected.keys()
    for tag, points in got.items():
        steps = [s for s, _ in points]
        assert len(steps) == len(set(steps)), f"{tag}: a step twice: {steps}"
        assert steps == [s for s, _ in expected[tag]], tag
    # the redone iterations give the uninterrupted run's numbers
    assert [v for _, v in got["train/loss_cls"]] == [v for _, v in expected["train/loss_cls"]]


def test_switched_off(tmp_path):
    cfg = tiny_cfg(train=dict(epochs=1, val_interval=0, tensorboard=False))
    train(cfg, work_dir=tmp_path / "wd", datasets={"train": Clips(8)}, seed=0, progress=False)
    assert (tmp_path / "wd" / "latest.pth").is_file() and not (tmp_path / "wd" / "tensorboard").exists()
