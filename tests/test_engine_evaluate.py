"""tinlib test: multi-view scoring, metrics.json contents, refusal of mismatched inputs, unreadable videos."""
import json

import numpy as np
import pytest
import torch

from tinlib.checkpoint import save_checkpoint
from tinlib.commands.test import main as tinlib_test_main
from tinlib.config import config_from_dict, load_config
from tinlib.data import DataError, write_rawframe_list
from tinlib.data.datasets import SkippedSample
from tinlib.engine.build import build_model
from tinlib.engine.errors import RunError
from tinlib.engine.evaluate import evaluate
from tinlib.engine.metrics import evaluate_scores
from tinlib.io import sha256_of
from tinlib.models import build_recognizer

T, K, VIEWS = 4, 5, 2


class Views(torch.utils.data.Dataset):
    """n samples of VIEWS views x T uint8 frames [V*T, 3, 32, 32]."""

    def __init__(self, n=7, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(0, 256, (n, VIEWS * T, 3, 32, 32), generator=g, dtype=torch.uint8)
        self.labels = [i % K for i in range(n)]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.x[i], self.labels[i]


def normalized(x):
    """uint8 frames [..., 3, H, W] as the model sees them: (x - mean) / std per RGB channel with
    MMAction2's ImageNet statistics."""
    mean = torch.tensor([123.675, 116.28, 103.53], dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375], dtype=torch.float64).view(3, 1, 1)
    return ((x.double() - mean) / std).float()


def cfg_for(tmp_path, average="prob", k=K, name="eval_tiny"):
    return config_from_dict(dict(
        model=dict(arch="tsm_r18", num_classes=k, num_segments=T, pretrained=None),
        data=dict(test_videos_per_gpu=3, workers_per_gpu=0), train=dict(num_threads=1),
        test=dict(num_clips=VIEWS, crop="center", average_clips=average),
        results_dir=str(tmp_path / "results")), name=name)


@pytest.fixture()
def checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_recognizer("tsm_r18", K, T)
    path = save_checkpoint(tmp_path / "model.pth", model, meta={"epoch": 3, "seed": 11})
    return path, model.eval()


@pytest.mark.parametrize("average", ["prob", "score"])
def test_metrics_json_and_raw_scores(tmp_path, checkpoint, average):
    path, model = checkpoint
    cfg = cfg_for(tmp_path, average)
    data = Views()
    report = evaluate(cfg, path, dataset=data, device="cpu", progress=False)
    out = tmp_path / "results" / "eval_tiny"
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["metrics"] == report["metrics"]
    for key in ("config", "git", "versions", "seed", "checkpoint", "metrics", "per_class_accuracy",
                "confusion_matrix", "test_setting", "scores_file"):
        assert key in on_disk
    assert on_disk["checkpoint"]["sha256"] == sha256_of(path)
    assert on_disk["seed"] == 11 and on_disk["checkpoint"]["train_meta"]["epoch"] == 3
    assert on_disk["versions"]["torch"] == torch.__version__ and "commit" in on_disk["git"]
    assert on_disk["config"]["test"]["average_clips"] == average
    assert on_disk["test_setting"]["num_clips"] == VIEWS
    raw = np.load(out / "scores.npz")
    assert raw["scores"].shape == (7, K) and raw["labels"].tolist() == data.labels
    # the raw scores are the views' softmax (prob) or logits (score) averaged, per sample
    with torch.no_grad():
        per_view = model.view_scores(normalized(data.x))  # [7, VIEWS, K]
    expected = (per_view.softmax(-1) if average == "prob" else per_view).mean(1).numpy()
    assert np.allclose(raw["scores"], expected, atol=1e-5)
    assert on_disk["metrics"] == pytest.approx(evaluate_scores(expected, data.labels))
    matrix = np.array(on_disk["confusion_matrix"])
    assert matrix.shape == (K, K) and matrix.sum() == 7
    assert np.trace(matrix) == round(on_disk["metrics"]["top1_acc"] * 7)  # no exact ties in float scores


def test_results_folder_of_another_run_is_refused(tmp_path, checkpoint):
    path, _ = checkpoint
    evaluate(cfg_for(tmp_path), path, dataset=Views(), device="cpu", progress=False)
    other = cfg_for(tmp_path, name="another")
    with pytest.raises(RunError, match="already holds the results of another run"):
        evaluate(other, path, dataset=Views(), device="cpu", progress=False, run="eval_tiny")
    evaluate(other, path, dataset=Views(), device="cpu", progress=False, run="eval_tiny", overwrite=True)


def test_checkpoint_that_does_not_fit(tmp_path, checkpoint):
    path, _ = checkpoint
    with pytest.raises(RunError, match="the checkpoint has 5 classes .* model.num_classes=7"):
        evaluate(cfg_for(tmp_path, k=7), path, dataset=Views(), device="cpu", progress=False)
    tin = config_from_dict({**cfg_for(tmp_path).to_dict(), "model": {**cfg_for(tmp_path).to_dict()["model"],
                                                                     "arch": "tin_r18"}}, name="tin")
    with pytest.raises(RunError, match="holds a tsm_r18 model .* is tin_r18.*--allow-arch-mismatch"):
        evaluate(tin, path, dataset=Views(), device="cpu", progress=False)
    with pytest.raises(RunError, match="checkpoint not found"):
        evaluate(cfg_for(tmp_path), tmp_path / "nope.pth", dataset=Views(), device="cpu", progress=False)
    assert not (tmp_path / "results" / "tin").exists()


class ViewsWithAnUnreadable(Views):
    """Views whose sample ``bad`` could not be read: a test-mode tinlib dataset with skip_bad_samples
    returns a SkippedSample for it."""

    def __init__(self, bad=3, **kw):
        super().__init__(**kw)
        self.bad = bad

    def __getitem__(self, i):
        if i == self.bad:
            return SkippedSample(index=i, line=i + 1, path=f"video_{i}", reason="cannot decode it")
        return super().__getitem__(i)


def test_an_unreadable_sample_is_left_out_counted_and_named(tmp_path, checkpoint, caplog):
    path, model = checkpoint
    data = ViewsWithAnUnreadable(bad=3)
    with caplog.at_level("INFO", logger="tinlib.engine.evaluate"):
        report = evaluate(cfg_for(tmp_path), path, dataset=data, device="cpu", progress=False)
    on_disk = json.loads((tmp_path / "results" / "eval_tiny" / "metrics.json").read_text())
    assert (on_disk["num_samples"], on_disk["num_listed"], on_disk["num_skipped"]) == (6, 7, 1)
    assert on_disk["skipped_samples"] == [{"index": 3, "line": 4, "path": "video_3", "reason": "cannot decode it"}]
    assert report["num_samples"] == 6 and sum(on_disk["class_counts"]) == 6
    kept = [0, 1, 2, 4, 5, 6]
    raw = np.load(tmp_path / "results" / "eval_tiny" / "scores.npz")
    assert raw["index"].tolist() == kept and raw["labels"].tolist() == [data.labels[i] for i in kept]
    with torch.no_grad():
        expected = model.view_scores(normalized(data.x[kept])).softmax(-1).mean(1).numpy()
    assert np.allclose(raw["scores"], expected, atol=1e-5)
    assert on_disk["metrics"] == pytest.approx(evaluate_scores(expected, [data.labels[i] for i in kept]))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("sample 3" in w and "video_3" in w and "cannot decode it" in w for w in warnings)
    assert any("left out 1 unreadable of 7 videos" in w for w in warnings)
    assert any("6 of 7 videos" in r.getMessage() for r in caplog.records if r.levelname == "INFO")


def test_nothing_readable_is_an_error_not_empty_metrics(tmp_path, checkpoint):
    path, _ = checkpoint

    class NoneReadable(Views):
        def __getitem__(self, i):
            return SkippedSample(index=i, line=i + 1, path=f"v{i}", reason="gone")

    with pytest.raises(DataError, match=r"none of the 7 videos could be read \(e\.g\. v0: gone\)"):
        evaluate(cfg_for(tmp_path), path, dataset=NoneReadable(), device="cpu", progress=False)
    assert not (tmp_path / "results" / "eval_tiny" / "metrics.json").exists()


# ---------------------------------------------------------------------------------------------
# `tinlib test` on a frame list with one unreadable video
# ---------------------------------------------------------------------------------------------
FRAMES = 8  # frames per folder = the demo config's num_segments: test sampling takes each once


@pytest.fixture()
def frame_lists(tmp_path):
    """A data root with 5 readable frame folders (distinct content), one folder of garbage bytes,
    ``all.txt`` listing all six (the broken one on line 3) and ``good.txt`` without it."""
    import cv2

    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    entries = []
    for v in range(5):
        folder = root / "frames" / f"v{v}"
        folder.mkdir(parents=True)
        for k in range(1, FRAMES + 1):
            cv2.imwrite(str(folder / f"{k:05}.jpg"), rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
        entries.append((f"v{v}", FRAMES, v))
    broken = root / "frames" / "broken"
    broken.mkdir()
    for k in range(1, FRAMES + 1):
        (broken / f"{k:05}.jpg").write_bytes(rng.integers(0, 255, 300, dtype=np.uint8).tobytes())
    write_rawframe_list(root / "all.txt", entries[:2] + [("broken", FRAMES, 7)] + entries[2:])
    write_rawframe_list(root / "good.txt", entries)
    torch.manual_seed(0)
    cfg = load_config("demo_tin_r18_synthetic")
    ckpt = save_checkpoint(tmp_path / "demo.pth", build_model(cfg, pretrained=False, load_from=False))
    return root, ckpt


def run_test_command(root, ckpt, results, ann, *extra):
    return tinlib_test_main(["demo_tin_r18_synthetic", str(ckpt), "--no-progress", "--device", "cpu", "--results-dir",
                      str(results), "--set", f"data.root={root}", f"data.test_ann={ann}", "data.test_prefix=frames",
                      "data.test_videos_per_gpu=2", "train.num_threads=1", *extra])


def test_tinlib_test_leaves_an_undecodable_video_out(frame_lists, tmp_path, capsys):
    root, ckpt = frame_lists
    assert run_test_command(root, ckpt, tmp_path / "ref", "good.txt") == 0
    assert run_test_command(root, ckpt, tmp_path / "skip", "all.txt", "data.skip_bad_samples=true") == 0
    err = capsys.readouterr().err
    metrics = json.loads((tmp_path / "skip" / "demo_tin_r18_synthetic" / "metrics.json").read_text())
    assert (metrics["num_samples"], metrics["num_listed"], metrics["num_skipped"]) == (5, 6, 1)
    (skipped,) = metrics["skipped_samples"]
    assert (skipped["index"], skipped["line"], skipped["path"]) == (2, 3, "broken")
    assert "cannot decode image" in skipped["reason"] and "broken/000" in skipped["reason"]
    # one warning naming the list line and the file, and the count; the result line says over how many
    assert sum("warning: left out sample 2 (" in line and "all.txt:3, broken" in line for line in err.splitlines()) == 1
    assert "left out 1 unreadable of 6 videos" in err and "[test, 5 of 6 videos]" in err
    ref = np.load(tmp_path / "ref" / "demo_tin_r18_synthetic" / "scores.npz")
    got = np.load(tmp_path / "skip" / "demo_tin_r18_synthetic" / "scores.npz")
    assert got["index"].tolist() == [0, 1, 3, 4, 5]  # positions in all.txt
    assert got["labels"].tolist() == ref["labels"].tolist() == [0, 1, 2, 3, 4]
    assert np.allclose(got["scores"], ref["scores"], atol=1e-6)


def test_tinlib_test_without_skip_stops_with_one_line(frame_lists, tmp_path, capsys):
    root, ckpt = frame_lists
    assert run_test_command(root, ckpt, tmp_path / "strict", "all.txt") == 1
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if "error" in x]
    assert line.startswith("tinlib test: error: sample 2 (") and "all.txt:3 ('broken')" in line
    assert "cannot decode image" in line and "/frames/broken/000" in line
    assert line.endswith("or skip such samples with --set data.skip_bad_samples=true")
    assert "Traceback" not in err
    assert not (tmp_path / "strict" / "demo_tin_r18_synthetic" / "metrics.json").exists()


@pytest.mark.slow
def test_under_torchrun_the_skips_of_every_process_are_gathered(frame_lists, tmp_path):
    """2 gloo processes: process r scores list positions r, r + 2, ...; the broken video (position 2)
    falls to process 0 and a missing folder (position 7) to process 1, and rank 0 records both."""
    import subprocess
    import sys

    root, ckpt = frame_lists
    (root / "all.txt").write_text((root / "all.txt").read_text() + "v0 8 0\ngone 8 4\n")
    common = ["demo_tin_r18_synthetic", str(ckpt), "--no-progress", "--device", "cpu", "--set", f"data.root={root}",
              "data.test_ann=all.txt", "data.test_prefix=frames", "data.test_videos_per_gpu=1",
              "data.skip_bad_samples=true", "train.num_threads=1"]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "tinlib", "test", *common, "--results-dir", str(tmp_path / "two")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tinlib_test_main([*common, "--results-dir", str(tmp_path / "one")]) == 0
    two = json.loads((tmp_path / "two" / "demo_tin_r18_synthetic" / "metrics.json").read_text())
    one = json.loads((tmp_path / "one" / "demo_tin_r18_synthetic" / "metrics.json").read_text())
    assert two["world_size"] == 2 and (two["num_samples"], two["num_listed"], two["num_skipped"]) == (6, 8, 2)
    assert [(s["index"], s["path"]) for s in two["skipped_samples"]] == [(2, "broken"), (7, "gone")]
    assert two["skipped_samples"] == one["skipped_samples"]
    a = np.load(tmp_path / "two" / "demo_tin_r18_synthetic" / "scores.npz")
    b = np.load(tmp_path / "one" / "demo_tin_r18_synthetic" / "scores.npz")
    assert a["index"].tolist() == b["index"].tolist() == [0, 1, 3, 4, 5, 6]
    assert np.allclose(a["scores"], b["scores"], atol=1e-6)
