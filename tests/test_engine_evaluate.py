"""tinlib test: multi-view scoring, metrics.json contents, refusal of mismatched inputs."""
import json

import numpy as np
import pytest
import torch

from tinlib.checkpoint import save_checkpoint, sha256_of
from tinlib.engine.config import config_from_dict
from tinlib.engine.errors import RunError
from tinlib.engine.evaluate import evaluate
from tinlib.engine.metrics import evaluate_scores
from tinlib.models import build_recognizer

T, K, VIEWS = 4, 5, 2


class Views(torch.utils.data.Dataset):
    """n samples of VIEWS views x T frames [V*T, 3, 32, 32]."""

    def __init__(self, n=7, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, VIEWS * T, 3, 32, 32, generator=g)
        self.labels = [i % K for i in range(n)]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.x[i], self.labels[i]


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
        per_view = model.view_scores(data.x)  # [7, VIEWS, K]
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
