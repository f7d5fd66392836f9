"""The training loop in-process on small tensor datasets (fast): logging, checkpoints, resume,
NaN handling, work-dir checks. End-to-end runs on real files are in test_engine_e2e.py."""
import json
import math
import os

import pytest
import torch

from tinlib.checkpoint import read_checkpoint
from tinlib.config import config_from_dict
from tinlib.data import DataError
from tinlib.engine.errors import NonFiniteLossError, RunError
from tinlib.engine.recorder import stop_reason
from tinlib.engine.train import Trainer, train

LOG_FIELDS = {"mode", "epoch", "iter", "lr", "loss_cls", "top1_acc", "top5_acc", "time", "data_time", "memory"}


class Clips(torch.utils.data.Dataset):
    """n uint8 clips [T, 3, 32, 32] whose mean encodes the label; ``poison_after`` items served, the
    clips turn all black, which the ``blank_clips_are_nan`` fixture makes NaN; ``fail_after`` items
    served, loading raises (a crash: Ctrl-C); ``bad_after`` items served, loading raises a
    DataError (an unreadable video)."""

    def __init__(self, n, t=4, k=3, seed=0, poison_after=None, fail_after=None, bad_after=None):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % k
        signal = torch.randn(n, t, 3, 32, 32, generator=g) + 0.5 * self.y.view(-1, 1, 1, 1, 1).float()
        self.x = (128 + 48 * signal).round().clamp(1, 255).to(torch.uint8)  # never all black
        self.labels = self.y.tolist()
        self.served, self.poison_after, self.fail_after, self.bad_after = 0, poison_after, fail_after, bad_after

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        self.served += 1
        if self.fail_after is not None and self.served > self.fail_after:
            raise KeyboardInterrupt("simulated crash")
        if self.bad_after is not None and self.served > self.bad_after:
            raise DataError(f"sample {i} (list.txt:{i + 1} ('v{i}')): cannot decode image\n  frames/v{i}/00001.jpg")
        x = self.x[i]
        if self.poison_after is not None and self.served > self.poison_after:
            x = torch.zeros_like(x)
        return x, int(self.y[i])


@pytest.fixture
def blank_clips_are_nan(monkeypatch):
    """The training step's normalisation turns an all-black clip (a poisoned :class:`Clips` item)
    into NaN: uint8 frames cannot hold one, and this is where a float NaN would enter the model."""
    from tinlib.engine import train as train_module

    real = train_module.normalize

    def normalize(batch):
        out = real(batch)
        blank = (batch == 0).flatten(1).all(dim=1).view(-1, *[1] * (out.dim() - 1))
        return torch.where(blank, torch.full_like(out, float("nan")), out)

    monkeypatch.setattr(train_module, "normalize", normalize)


@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # train.json goes to ./results/<run>/


def tiny_cfg(arch="tin_r18", **sections):
    base = dict(model=dict(arch=arch, num_classes=3, num_segments=4, dropout=0.0, pretrained=None),
                data=dict(videos_per_gpu=4, val_videos_per_gpu=4, workers_per_gpu=0),
                optim=dict(lr=0.01, ref_gpus=1, ref_videos_per_gpu=4),
                schedule=dict(policy="cosine", by_epoch=False, min_lr_ratio=None, min_lr=0.0, warmup="linear",
                              warmup_epochs=1),
                train=dict(epochs=3, val_interval=1, log_interval=1, num_threads=1))
    for key, value in sections.items():
        base.setdefault(key, {}).update(value)
    return config_from_dict(base, name="tiny_tin")


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def final_weights(path):
    return read_checkpoint(path)["state_dict"]


def test_train_logs_checkpoints_and_learns(tmp_path, monkeypatch):
    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append(os.path.basename(dst))
        return real_replace(src, dst)

    monkeypatch.setattr("tinlib.io.os.replace", spy)
    cfg = tiny_cfg(train=dict(epochs=4))
    wd = tmp_path / "wd"
    summary = train(cfg, work_dir=wd, datasets={"train": Clips(16), "val": Clips(8, seed=1)}, seed=0,
                    progress=False, run="tiny")
    log = read_log(wd / "log.json")
    assert "env_info" in log[0] and log[0]["seed"] == 0
    train_lines = [e for e in log if e.get("mode") == "train"]
    assert len(train_lines) == 4 * 4 and all(LOG_FIELDS <= set(e) for e in train_lines)
    assert [(e["epoch"], e["iter"]) for e in train_lines[:5]] == [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1)]
    assert train_lines[0]["lr"] == pytest.approx(0.001)  # warmup starts at 0.1 x base
    val_lines = [e for e in log if e.get("mode") == "val"]
    assert [e["epoch"] for e in val_lines] == [1, 2, 3, 4]
    assert {"top1_acc", "top5_acc", "mean_class_accuracy"} <= set(val_lines[0])
    first = sum(e["loss_cls"] for e in train_lines[:4]) / 4
    last = sum(e["loss_cls"] for e in train_lines[-4:]) / 4
    assert last < first
    # checkpoints went through the atomic writer (temp file + rename), none left behind
    assert {"latest.pth", "best.pth", "run.json", "train.json"} <= set(replaced)
    assert not [p for p in wd.iterdir() if p.name.endswith(".tmp")]
    ckpt = read_checkpoint(wd / "latest.pth")
    assert {"state_dict", "optimizer", "scheduler", "scaler", "rng", "meta"} <= set(ckpt)
    assert ckpt["meta"]["epoch"] == 4 and ckpt["meta"]["config"]["model"]["arch"] == "tin_r18"
    assert ckpt["meta"]["lr"]["lr"] == 0.01 and ckpt["meta"]["seed"] == 0
    assert len(ckpt["optimizer"]["param_groups"]) == 7 and "torch" in ckpt["rng"][0]
    best = read_checkpoint(wd / "best.pth")["meta"]
    assert best["best"]["epoch"] == best["epoch"] and summary["best"]["value"] == max(
        e["top1_acc"] for e in val_lines)
    assert summary["world_size"] == 1 and summary["lr_scaling"]["applied"] is False
    on_disk = json.loads((tmp_path / "results" / "tiny" / "train.json").read_text())
    assert on_disk["best"] == summary["best"] and on_disk["config"]["name"] == "tiny_tin"


def test_interrupted_run_resumes_to_identical_weights(tmp_path):
    """In-process version of the SIGKILL test: a crash in the middle of epoch 2 (after a mid-epoch
    checkpoint) and --resume auto give the weights of an uninterrupted run, bit for bit."""
    cfg = tiny_cfg(arch="tin_r18", model=dict(dropout=0.5), train=dict(epochs=3, checkpoint_interval_iters=2))
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    kwargs = dict(seed=3, deterministic=True, progress=False)
    train(cfg, work_dir=ref_dir, datasets={"train": Clips(16), "val": Clips(8, seed=1)}, **kwargs)
    # 16 items per epoch: crash while loading the 3rd batch of epoch 2 (latest.pth = epoch 1 + 2 iterations)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, work_dir=run_dir, datasets={"train": Clips(16, fail_after=16 + 9), "val": Clips(8, seed=1)},
              **kwargs)
    meta = read_checkpoint(run_dir / "latest.pth")["meta"]
    assert (meta["epoch"], meta["inner_iter"]) == (1, 2)
    record = json.loads((run_dir / "run.json").read_text())
    assert (record["status"], record["epoch"], record["inner_iter"]) == ("interrupted", 1, 2)
    assert record["error"] == "interrupted (KeyboardInterrupt: simulated crash)"
    train(cfg, work_dir=run_dir, resume="auto", datasets={"train": Clips(16), "val": Clips(8, seed=1)}, **kwargs)
    record = json.loads((run_dir / "run.json").read_text())
    assert (record["status"], record["epoch"]) == ("finished", 3) and "error" not in record
    ref, got = final_weights(ref_dir / "latest.pth"), final_weights(run_dir / "latest.pth")
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    # the log reads like an uninterrupted run: every (epoch, iter) once
    positions = [(e["epoch"], e["iter"]) for e in read_log(run_dir / "log.json") if e.get("mode") == "train"]
    assert positions == [(e, i) for e in (1, 2, 3) for i in (1, 2, 3, 4)]


@pytest.mark.usefixtures("blank_clips_are_nan")
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = tiny_cfg(arch="tsn_r18", train=dict(epochs=3))
    wd = tmp_path / "wd"
    # epoch 1 is clean (16 items) and checkpointed; the first batch of epoch 2 is NaN
    with pytest.raises(NonFiniteLossError, match="loss is nan at epoch 2, iteration 1"):
        train(cfg, work_dir=wd, datasets={"train": Clips(16, poison_after=16), "val": Clips(8)}, seed=0,
              progress=False)
    ckpt = read_checkpoint(wd / "latest.pth")
    assert ckpt["meta"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    record = json.loads((wd / "run.json").read_text())
    assert record["status"] == "failed" and "nan" in record["error"]


def test_data_error_ends_the_run_record_as_failed_and_keeps_the_checkpoint(tmp_path):
    cfg = tiny_cfg(arch="tsn_r18", train=dict(epochs=3, val_interval=0))
    wd = tmp_path / "wd"
    # epoch 1 (16 items) is read and checkpointed; the 5th item of epoch 2 cannot be read
    with pytest.raises(DataError, match="cannot decode image"):
        train(cfg, work_dir=wd, datasets={"train": Clips(16, bad_after=16 + 4)}, seed=0, progress=False)
    record = json.loads((wd / "run.json").read_text())
    assert (record["status"], record["epoch"]) == ("failed", 1)
    assert record["error"].startswith("sample ") and "cannot decode image frames/v" in record["error"]
    assert "\n" not in record["error"]
    assert read_checkpoint(wd / "latest.pth")["meta"]["epoch"] == 1
    assert not (tmp_path / "results" / "tiny_tin" / "train.json").exists()
    # the record still reads as a RunState, and the folder takes --resume auto
    from tinlib.records import RunState
    assert RunState.read(wd / "run.json").status == "failed"
    summary = train(cfg, work_dir=wd, resume="auto", datasets={"train": Clips(16)}, seed=0, progress=False)
    assert summary["resumed_from_epoch"] == 1
    assert json.loads((wd / "run.json").read_text())["status"] == "finished"


def test_stop_reason_is_one_line():
    reason = stop_reason(RunError("cannot write\n  wd/latest.pth:   disk full"))
    assert reason == "cannot write wd/latest.pth: disk full"
    assert stop_reason(KeyboardInterrupt()) == "interrupted (KeyboardInterrupt)"
    assert stop_reason(ValueError("bad\nvalue")) == "ValueError: bad value"
    assert stop_reason(MemoryError()) == "MemoryError"
    assert len(stop_reason(RuntimeError("x" * 2000))) == 500


def test_nan_message_from_the_command_line(tmp_path, monkeypatch, capsys):
    from tinlib.commands.train import main
    from tinlib.engine import train as train_module

    def boom(cfg, **kwargs):
        raise NonFiniteLossError("loss is inf at epoch 3, iteration 7")

    monkeypatch.setattr(train_module, "train", boom)
    code = main(["demo_tin_r18_synthetic", "--work-dir", str(tmp_path)])
    assert code == 3  # its own exit status: scripts can tell a diverged run from a bad input (2)
    err = capsys.readouterr().err
    assert "loss is inf at epoch 3, iteration 7" in err and "last good checkpoint is kept" in err
    assert "Traceback" not in err


def test_work_dir_with_another_run_is_refused_before_training(tmp_path):
    cfg = tiny_cfg(arch="tsn_r18", train=dict(epochs=1, val_interval=0))
    wd = tmp_path / "wd"
    train(cfg, work_dir=wd, datasets={"train": Clips(8)}, seed=0, progress=False)
    with pytest.raises(RunError, match="--resume auto"):
        Trainer(cfg, work_dir=wd, datasets={"train": Clips(8)}, seed=0).setup()
    other = config_from_dict(cfg.to_dict(), name="another_config")
    with pytest.raises(RunError, match="holds a run of config 'tiny_tin'"):
        Trainer(other, work_dir=wd, datasets={"train": Clips(8)}, seed=0, resume="auto").setup()
    changed = config_from_dict({**cfg.to_dict(), "model": {**cfg.to_dict()["model"], "num_classes": 4}},
                               name="tiny_tin")
    with pytest.raises(RunError, match="model settings changed.*model.num_classes"):
        Trainer(changed, work_dir=wd, datasets={"train": Clips(8)}, seed=0, resume="auto").setup()
    # resuming a finished run is a no-op that reports it
    summary = train(cfg, work_dir=wd, datasets={"train": Clips(8)}, seed=0, resume="auto", progress=False)
    assert summary["resumed_from_epoch"] == 1


def test_missing_data_and_bad_inputs_fail_fast(tmp_path):
    cfg = tiny_cfg(data=dict(root=str(tmp_path / "nowhere")))
    with pytest.raises(RunError, match=r"data root .*nowhere does not exist; prepare .*--set data.root") as err:
        Trainer(cfg, work_dir=tmp_path / "wd").setup()
    assert "\n" not in str(err.value) and not (tmp_path / "wd").exists()
    with pytest.raises(RunError, match="labels up to 4 but model.num_classes=3"):
        Trainer(tiny_cfg(), work_dir=tmp_path / "wd2", datasets={"train": Clips(8, k=5)}, validate=False).setup()
    with pytest.raises(RunError, match="model.load_from: checkpoint not found: .*missing.pth"):
        Trainer(tiny_cfg(model=dict(load_from=str(tmp_path / "missing.pth"))), work_dir=tmp_path / "wd3",
                datasets={"train": Clips(8)}).setup()
    with pytest.raises(RunError, match="fp16 needs CUDA"):
        Trainer(tiny_cfg(), work_dir=tmp_path / "wd4", amp="fp16", device="cpu",
                datasets={"train": Clips(8)}).setup()


def test_lr_scaling_is_applied_and_logged(tmp_path):
    cfg = tiny_cfg(arch="tsn_r18", optim=dict(lr=0.08, ref_gpus=8, ref_videos_per_gpu=4),
                   schedule=dict(policy="fixed", warmup=None), train=dict(epochs=1, val_interval=0))
    summary = train(cfg, work_dir=tmp_path / "wd", datasets={"train": Clips(8)}, seed=0, progress=False)
    assert summary["lr_scaling"]["lr"] == pytest.approx(0.01) and summary["lr_scaling"]["applied"]
    log = read_log(tmp_path / "wd" / "log.json")
    assert log[0]["lr_scaling"]["lr"] == pytest.approx(0.01)
    assert all(math.isclose(e["lr"], 0.01) for e in log if e.get("mode") == "train")


class Indexed(torch.utils.data.Dataset):
    """Item i is (a 1-element clip holding i, label i)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.tensor([float(i)]), i


def test_training_order_is_one_permutation_per_epoch_sharded_over_processes():
    """What makes N processes x B videos see the batches of 1 process x N*B videos, and what a
    resumed epoch relies on (tinlib.data.loader, used by the training loop)."""
    from tinlib.data.loader import build_loader

    data = Indexed(10)
    one = build_loader(data, 4, num_workers=0, shuffle=True, seed=5, num_replicas=1, rank=0)
    two = [build_loader(data, 2, num_workers=0, shuffle=True, seed=5, num_replicas=2, rank=r) for r in (0, 1)]
    orders = []
    for epoch in (0, 1):
        one.set_epoch(epoch)
        order = [int(y) for _, labels in one for y in labels]
        assert sorted(order) == list(range(10))
        for rank, loader in enumerate(two):
            loader.set_epoch(epoch)
            assert [int(y) for _, labels in loader for y in labels] == order[rank::2]
        resumed = build_loader(data, 4, num_workers=0, shuffle=True, seed=5, num_replicas=1, rank=0, skip=3)
        resumed.set_epoch(epoch)
        assert [int(y) for _, labels in resumed for y in labels] == order[3:]
        orders.append(order)
    assert orders[0] != orders[1]  # reshuffled every epoch


# --------------------------------------------------------------------------------------------
# train.channels_last, train.compile
# --------------------------------------------------------------------------------------------
def losses_of(tmp_path, name, **train_section):
    cfg = tiny_cfg(train=dict(epochs=1, val_interval=0, log_interval=1, **train_section))
    summary = train(cfg, work_dir=tmp_path / name, datasets={"train": Clips(16)}, seed=0, deterministic=True,
                    progress=False, run=name)
    return [e["loss_cls"] for e in read_log(tmp_path / name / "log.json") if e.get("mode") == "train"], summary


def test_channels_last_layout():
    from tinlib.engine.train import clips_channels_last

    clips = torch.randn(2, 4, 3, 8, 10)
    laid_out = clips_channels_last(clips)
    assert torch.equal(laid_out, clips)
    # the model flattens [B, T] into its batch: that batch is channels-last
    assert laid_out.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    assert not clips.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    trainer = Trainer(tiny_cfg(train=dict(channels_last=True)), work_dir="wd", datasets={"train": Clips(8)},
                      validate=False)
    trainer.setup()
    assert trainer.model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_the_loaders_take_their_settings_from_the_data_config():
    from tinlib.engine.evaluate import loader_settings

    cfg = tiny_cfg(data=dict(workers_per_gpu=1, prefetch_factor=3))
    assert cfg.data.persistent_workers is True and cfg.data.pin_memory is None  # the defaults
    trainer = Trainer(cfg, work_dir="wd", datasets={"train": Clips(8)}, validate=False)
    trainer.setup()
    assert trainer.loader.persistent_workers and trainer.loader.prefetch_factor == 3
    assert trainer.loader.pin_memory is False  # None: pinned only for a CUDA device
    assert loader_settings(cfg, torch.device("cuda", 0))["pin_memory"] is True
    unpinned = tiny_cfg(data=dict(pin_memory=False, persistent_workers=False))
    assert loader_settings(unpinned, torch.device("cuda", 0)) == {"persistent_workers": False, "prefetch_factor": 2,
                                                                  "pin_memory": False}


def test_channels_last_trains_like_the_default_layout(tmp_path):
    eager, _ = losses_of(tmp_path, "eager")
    losses, summary = losses_of(tmp_path, "channels_last", channels_last=True)
    assert len(losses) == len(eager) == 4
    assert losses == pytest.approx(eager, rel=1e-4, abs=1e-5)
    assert summary["config"]["train"]["channels_last"] is True  # recorded in train.json


def test_compile_and_channels_last_are_checked_with_the_config(monkeypatch):
    from tinlib import config as config_module
    from tinlib.config import ConfigError

    with pytest.raises(ConfigError, match="train.compile: expected bool"):
        tiny_cfg(train=dict(compile="yes"))
    with pytest.raises(ConfigError, match="train.channels_last: expected bool"):
        tiny_cfg(train=dict(channels_last=1))
    monkeypatch.setattr(config_module, "_compile_unavailable", lambda: "no compiler here")
    with pytest.raises(ConfigError, match="train.compile=True: no compiler here; set train.compile=False"):
        tiny_cfg(train=dict(compile=True))
    assert tiny_cfg(train=dict(compile=False)).train.compile is False


@pytest.mark.slow
def test_compiled_model_trains_like_eager(tmp_path):
    """torch.compile (inductor, C++ on the CPU) of TIN-R18: about a minute of compiling on 2 cores."""
    eager, _ = losses_of(tmp_path, "eager", max_iters_per_epoch=3)
    losses, summary = losses_of(tmp_path, "compiled", compile=True, max_iters_per_epoch=3)
    assert len(losses) == len(eager) == 3
    assert losses == pytest.approx(eager, rel=1e-3, abs=1e-4)
    assert summary["config"]["train"]["compile"] is True
    # the checkpoint holds the plain module's names (no torch.compile prefix)
    assert not [k for k in final_weights(tmp_path / "compiled" / "latest.pth") if "_orig_mod" in k]


def test_a_published_load_from_is_resolved_through_the_hub_cache(tmp_path, monkeypatch):
    # the Kinetics-400 row fine-tunes from published:tsm_r50_1x1x8_50e_kinetics400_rgb: training
    # must accept that form (a file already in torch's hub cache is used without a download)
    from tinlib.engine.train import load_datasets
    from tinlib.hub import PUBLISHED, file_name_of

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = PUBLISHED["tsm_r50_1x1x8_50e_kinetics400_rgb"].checkpoint
    cached = tmp_path / "torch" / "hub" / "checkpoints" / file_name_of(url)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"placeholder: only its presence is checked here")
    given = {"train": Clips(6)}
    cfg = tiny_cfg(model=dict(load_from="published:tsm_r50_1x1x8_50e_kinetics400_rgb"))
    train_set, _ = load_datasets(cfg, given, validate=False)
    assert train_set is given["train"]
    missing = tiny_cfg(model=dict(load_from=str(tmp_path / "nothere.pth")))
    with pytest.raises(RunError, match="model.load_from: checkpoint not found"):
        load_datasets(missing, given, validate=False)
