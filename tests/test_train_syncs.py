"""The training step does not wait on the host: loss, accuracy and the finite-loss check stay on
the device and are read back once per ``log_interval``; a non-finite loss still stops the run
within one interval, naming the iteration, and never reaches a checkpoint.

On the CPU there is no device to wait for, so the tests count the read-backs themselves: every
tensor-to-host conversion (``item``, ``tolist``, ``cpu``, ``numpy``, ``float()``, ``int()``,
``bool()``) made by tinlib's engine, model or op code while an epoch trains. On a GPU each of them
is a synchronisation. Before this change the loop made 8 per iteration (6 of them device
synchronisations on CUDA, counting its ``torch.cuda.synchronize``)."""
import collections
import os
import sys
from pathlib import Path

import pytest
import torch

import tinlib
from tinlib.checkpoint import read_checkpoint
from tinlib.engine import train as train_module
from tinlib.engine.errors import NonFiniteLossError
from tinlib.engine.metrics import top_k_accuracy, top_k_correct
from tinlib.engine.train import Trainer, train

sys.path.insert(0, str(Path(__file__).parent))
from test_engine_train import Clips, blank_clips_are_nan, tiny_cfg  # noqa: E402,F401  (a fixture)

PACKAGE = os.path.dirname(tinlib.__file__)
# the code that runs every training iteration (data loading and checkpoint writing excluded)
ITERATION_CODE = tuple(os.path.join(PACKAGE, d) + os.sep for d in ("engine", "models", "ops"))
READ_BACKS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def read_backs(monkeypatch):
    """Counts tensor read-backs called directly from tinlib's engine/models/ops code, by call site."""
    counts: collections.Counter = collections.Counter()

    def spy(name):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, **kwargs):
            caller = sys._getframe(1)
            if caller.f_code.co_filename.startswith(ITERATION_CODE):
                counts[(name, os.path.relpath(caller.f_code.co_filename, PACKAGE), caller.f_lineno)] += 1
            return original(self, *args, **kwargs)

        return counted

    for name in READ_BACKS:
        monkeypatch.setattr(torch.Tensor, name, spy(name))
    return counts


@pytest.fixture
def all_reduces(monkeypatch):
    """Counts the all-reduces the training loop asks for (no-ops in a single process)."""
    calls = []
    real = train_module.dist.all_reduce

    def counted(tensor, op="sum"):
        calls.append(op)
        return real(tensor, op)

    monkeypatch.setattr(train_module.dist, "all_reduce", counted)
    return calls


def trainer_for(tmp_path, **train_section):
    cfg = tiny_cfg(train=dict(epochs=2, val_interval=0, **train_section))
    trainer = Trainer(cfg, work_dir=tmp_path / "wd", datasets={"train": Clips(32)}, seed=0, progress=False)
    trainer.setup()
    return trainer


@pytest.mark.parametrize("log_interval, reads", [(4, 2), (8, 1), (3, 3)])
def test_one_read_back_per_log_interval(tmp_path, read_backs, all_reduces, log_interval, reads):
    trainer = trainer_for(tmp_path, log_interval=log_interval)
    assert trainer.iters_per_epoch == 8
    read_backs.clear()
    all_reduces.clear()
    trainer.train_epoch(0)
    # 8 iterations: one read-back per interval, the last interval ending with the epoch (3 + 3 + 2)
    assert sum(read_backs.values()) == reads, dict(read_backs)
    # the finite-loss check of every process travels in the same all-reduce as the statistics
    assert all_reduces == ["sum"] * reads


def test_a_mid_epoch_checkpoint_reads_back_first(tmp_path, read_backs):
    trainer = trainer_for(tmp_path, log_interval=8, checkpoint_interval_iters=3)
    read_backs.clear()
    trainer.train_epoch(0)
    # the interval read-back at iteration 8 and one before each checkpoint (after iterations 3 and 6)
    assert sum(v for (name, where, _), v in read_backs.items() if where.startswith("engine/")) == 3
    assert read_checkpoint(tmp_path / "wd" / "latest.pth")["meta"]["inner_iter"] == 6


@pytest.mark.usefixtures("blank_clips_are_nan")
def test_a_nan_stops_the_run_within_one_interval_and_no_checkpoint_holds_it(tmp_path):
    """Epoch 1 (4 iterations of 4 clips) is clean and checkpointed, also after its 3rd iteration;
    the 2nd batch of epoch 2 is NaN. The check before the mid-epoch checkpoint (after iteration 3)
    finds it: that checkpoint is not written."""
    cfg = tiny_cfg(arch="tsn_r18", train=dict(epochs=3, log_interval=4, checkpoint_interval_iters=3))
    wd = tmp_path / "wd"
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 2, iteration 2 \(checked after iterations "
                                                 r"1-3 of epoch 2\); no checkpoint was written after it"):
        train(cfg, work_dir=wd, datasets={"train": Clips(16, poison_after=16 + 4), "val": Clips(8)}, seed=0,
              progress=False)
    meta = read_checkpoint(wd / "latest.pth")["meta"]
    assert (meta["epoch"], meta["inner_iter"]) == (1, 0)
    weights = read_checkpoint(wd / "latest.pth")["state_dict"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


@pytest.mark.usefixtures("blank_clips_are_nan")
def test_a_nan_found_at_the_interval_end(tmp_path):
    cfg = tiny_cfg(arch="tsn_r18", train=dict(epochs=3, log_interval=4))
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 2, iteration 3 \(checked after iterations "
                                                 r"1-4 of epoch 2\)"):
        train(cfg, work_dir=tmp_path / "wd", datasets={"train": Clips(16, poison_after=16 + 8), "val": Clips(8)},
              seed=0, progress=False)
    assert read_checkpoint(tmp_path / "wd" / "latest.pth")["meta"]["epoch"] == 1


def test_top_k_on_the_device_counts_as_the_metrics_do():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (64, 7), generator=g).float()  # many ties
    labels = torch.randint(0, 7, (64,), generator=g)
    counts = top_k_correct(scores, labels, (1, 3, 5))
    expected = top_k_accuracy(scores.numpy(), labels.numpy(), (1, 3, 5))
    assert (counts / 64).tolist() == pytest.approx(expected)
    # a hand-made case: the label's score ties with a higher class, which ranks first
    tie = torch.tensor([[0.0, 2.0, 2.0, 1.0]])
    assert top_k_correct(tie, torch.tensor([1]), (1, 2)).tolist() == [0.0, 1.0]
    assert top_k_correct(tie, torch.tensor([2]), (1, 2)).tolist() == [1.0, 1.0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_only_synchronisations_are_the_read_backs(tmp_path):
    """CUDA's own sync detector: after a warm-up epoch (first-call kernel checks), an epoch of
    8 iterations with log_interval=4 synchronises exactly twice."""
    import warnings

    cfg = tiny_cfg(train=dict(epochs=2, val_interval=0, log_interval=4))
    trainer = Trainer(cfg, work_dir=tmp_path / "wd", datasets={"train": Clips(32)}, seed=0, progress=False,
                      device="cuda")
    trainer.setup()
    trainer.train_epoch(0)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            trainer.train_epoch(1)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) == 2, [f"{w.filename}:{w.lineno}" for w in syncs]
