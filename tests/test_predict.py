"""tinlib predict: the same scores as tinlib test, top-k output, windows, frame folders, errors, notebook."""
import csv
import itertools
import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tinlib.checkpoint import save_checkpoint
from tinlib.commands import predict as predict_cmd
from tinlib.commands import test as test_cmd
from tinlib.config import load_config
from tinlib.data.encoding import video_codec, write_video
from tinlib.data.sources import find_frame_template
from tinlib.data.synthetic_render import CLASSES, render_video
from tinlib.engine.predict import window_starts
from tinlib.labels import class_names_for, load_labels
from tinlib.models import build_recognizer
from tinlib.records import SyntheticMeta

T, K = 4, 5
NAMES = ["alpha", "beta", "gamma", "delta", "epsilon"]


def render(n, seed=0, motion="vertical"):
    """n frames [n, 40, 56, 3] of a synthetic video: every frame differs."""
    frames, _ = render_video(motion, np.random.default_rng(seed), 40, n, width=56)
    return frames


def write_frames(folder, frames, tmpl="img_{:05}.jpg", start=1):
    folder.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(frames, start=start):
        cv2.imwrite(str(folder / tmpl.format(k)), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def tiny_config(tmp_path, kind="videos", name="tiny", **test):
    """A JSON config: TIN R18, T=4, K=5, 40-pixel frames, 32-pixel crops; data under tmp_path/data."""
    values = {
        "model": {"arch": "tin_r18", "num_classes": K, "num_segments": T, "pretrained": None},
        "data": {"dataset": "tiny", "kind": kind, "root": str(tmp_path / "data"), "test_ann": "list.txt",
                 "test_prefix": "videos", "filename_tmpl": "img_{:05}.jpg", "test_videos_per_gpu": 1,
                 "workers_per_gpu": 0, "scale_size": 40, "input_size": 32},
        "train": {"num_threads": 1},
        "test": {"num_clips": 1, "crop": "center", "average_clips": None, **test},
        "results_dir": str(tmp_path / "results")}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(values))
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A TIN R18 checkpoint (T=4, K=5) whose classes get clearly different scores."""
    torch.manual_seed(0)
    model = build_recognizer("tin_r18", K, T)
    torch.nn.init.normal_(model.cls_head.fc_cls.weight, std=0.5)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny tin.pth", model)


@pytest.fixture(autouse=True)
def fresh_log_handler():
    """Drop tinlib's log handler around each test: the command sets up a new one on the stderr that
    this test captures (an old one would write to a closed capture stream)."""
    def drop():
        logger = logging.getLogger("tinlib")
        for handler in [h for h in logger.handlers if h.get_name() == "tinlib"]:
            logger.removeHandler(handler)

    drop()
    yield
    drop()


def run_predict(capsys, *args):
    capsys.readouterr()  # drop what earlier steps printed
    code = predict_cmd.main([str(a) for a in args] + ["--device", "cpu"])
    out = capsys.readouterr()
    return code, out.out, out.err


def predict_json(capsys, *args):
    code, out, err = run_predict(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def softmax(x):
    return torch.softmax(torch.tensor(x, dtype=torch.float64), dim=-1).numpy()


# ------------------------------------------------------------------------------- same as tinlib test
@pytest.mark.parametrize("kind,test,views", [
    ("videos", {"num_clips": 2, "average_clips": "prob"}, 2),       # two clips, probabilities averaged (1.x)
    ("rawframes", {"crop": "three", "average_clips": "score"}, 3),  # three crops, scores averaged
    ("rawframes", {}, 1),                                           # one view, raw scores (0.x)
], ids=["video-2clips-prob", "frames-3crops-score", "frames-1view-raw"])
def test_scores_equal_tinlib_test_on_a_one_line_list(tmp_path, capsys, checkpoint, kind, test, views):
    config = tiny_config(tmp_path, kind, **test)
    frames = render(29, seed=3)
    data = tmp_path / "data" / "videos"
    data.mkdir(parents=True)
    if kind == "videos":
        write_video(data / "clip.mp4", frames, video_codec("mp4"))
        (tmp_path / "data" / "list.txt").write_text("clip.mp4 2\n")
        # predict reads a copy under a path with spaces
        spaced = tmp_path / "my videos" / "my clip.mp4"
        spaced.parent.mkdir()
        shutil.copy(data / "clip.mp4", spaced)
    else:
        write_frames(data / "clip", frames)
        (tmp_path / "data" / "list.txt").write_text(f"clip {len(frames)} 2\n")
        spaced = tmp_path / "my frames" / "clip one"
        shutil.copytree(data / "clip", spaced)
    assert test_cmd.main([str(config), str(checkpoint), "--device", "cpu", "--no-progress"]) == 0
    expected = np.load(tmp_path / "results" / "tiny" / "scores.npz")["scores"][0]

    doc = predict_json(capsys, config, checkpoint, spaced)
    video = doc["videos"][0]
    assert video["video"] == str(spaced) and video["num_frames"] == 29
    assert video["views"] == views
    np.testing.assert_allclose(video["scores"], expected, rtol=1e-5, atol=1e-6)
    # predict writes nothing without --out: no results folder of its own, no metrics
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["tiny"]


# ------------------------------------------------------------------------------- output
def test_json_topk_in_order_with_names_and_softmax(tmp_path, capsys, checkpoint):
    config = tiny_config(tmp_path)
    video = tmp_path / "a video.mp4"
    write_video(video, render(20, seed=1), video_codec("mp4"))
    labels = tmp_path / "names.txt"
    labels.write_text("\n".join(NAMES) + "\n")
    doc = predict_json(capsys, config, checkpoint, video, "--labels", labels, "--topk", "3")
    assert doc["class_names"] == str(labels) and doc["config"] == "tiny"
    result = doc["videos"][0]
    probs = softmax(result["scores"])  # average_clips=None: probabilities are the softmax of the raw scores
    order = np.argsort(-probs)[:3]
    top = result["topk"]
    assert [t["rank"] for t in top] == [1, 2, 3]
    assert [t["index"] for t in top] == order.tolist()
    assert [t["name"] for t in top] == [NAMES[i] for i in order]
    assert [t["prob"] for t in top] == pytest.approx(probs[order].tolist(), rel=1e-6)
    assert all(a["prob"] >= b["prob"] for a, b in itertools.pairwise(top))
    assert sum(t["prob"] for t in top) <= 1.0


def test_text_output_and_prob_averaging(tmp_path, capsys, checkpoint):
    config = tiny_config(tmp_path, num_clips=2, average_clips="prob")
    video = tmp_path / "v.mp4"
    write_video(video, render(24, seed=2), video_codec("mp4"))
    doc = predict_json(capsys, config, checkpoint, video, "--topk", "10")
    result = doc["videos"][0]
    # with average_clips=prob the scores are already the views' mean softmax: reported as they are
    assert sum(result["scores"]) == pytest.approx(1.0, abs=1e-5)
    assert len(result["topk"]) == K  # --topk larger than the class count shows every class once
    assert [t["prob"] for t in result["topk"]] == pytest.approx(sorted(result["scores"], reverse=True))
    code, out, err = run_predict(capsys, config, checkpoint, video, "--topk", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"{video}: 24 frames, 2 views of 4 segments")
    best = result["topk"][0]
    assert lines[1].split() == ["1.", f"{best['prob']:.4f}", "class", str(best["index"])]
    assert len(lines) == 3
    assert "class names unknown" in err and "--labels" in err


def test_class_names_by_dataset_and_synthetic_meta(tmp_path):
    for config, labels in (("tin_r50_1x1x8_40e_sthv1_rgb", "sthv1"), ("tin_r50_1x1x8_40e_sthv2_rgb", "sthv2"),
                           ("tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb", "k400")):
        names, _ = class_names_for(load_config(config))
        assert names == load_labels(labels)
    demo = load_config("demo_tin_r18_synthetic", {"data.root": str(tmp_path)})
    assert class_names_for(demo) == (None, "none")
    synthetic = [c.name for c in CLASSES]  # the demo's 11 classes, as its data writes them
    SyntheticMeta(layout="sthv1", root=str(tmp_path), params={}, kind="rawframes", train_list="train.txt",
                  val_list="val.txt", class_names=synthetic).write(tmp_path / SyntheticMeta.FILENAME)
    names, source = class_names_for(demo)
    assert names == synthetic and source.endswith("synthetic_meta.json")
    with pytest.raises(Exception, match="3 class names but config demo_tin_r18_synthetic has model.num_classes=11"):
        (tmp_path / "three.txt").write_text("a\nb\nc\n")
        class_names_for(demo, tmp_path / "three.txt")


# ------------------------------------------------------------------------------- windows
def expected_windows(n, window, stride):
    """Window starts counted directly: every stride-th frame from which a full window fits."""
    if n <= window:
        return [0]
    return [s for s in range(n) if s % stride == 0 and s + window <= n]


def test_window_starts():
    for n, window, stride in ((40, 16, 8), (41, 16, 8), (47, 16, 8), (16, 16, 4), (10, 16, 4), (100, 7, 3)):
        assert window_starts(n, window, stride) == expected_windows(n, window, stride)


def test_windows_count_files_and_scores(tmp_path, capsys, checkpoint):
    n, window, stride = 43, 12, 5
    config = tiny_config(tmp_path, "rawframes")
    frames = render(n, seed=4, motion="horizontal")
    folder = write_frames(tmp_path / "long video", frames)
    out = tmp_path / "out"
    doc = predict_json(capsys, config, checkpoint, folder, "--window", window, "--stride", stride, "--out", out,
                       "--topk", "2")
    timeline = doc["videos"][0]["windows"]
    starts = expected_windows(n, window, stride)
    assert len(starts) == 7 and timeline["count"] == len(starts)
    assert [w["start"] for w in timeline["items"]] == starts
    assert [w["end"] for w in timeline["items"]] == [s + window for s in starts]
    for w in timeline["items"]:
        assert len(w["frame_indices"]) == T and all(w["start"] <= i < w["end"] for i in w["frame_indices"])
        assert w["model_ms"] > 0
    rows = list(csv.DictReader((out / "long video_windows.csv").open()))
    assert len(rows) == len(starts)
    assert [int(r["start"]) for r in rows] == starts
    assert {"top1_name", "top1_prob", "top2_name", "top2_prob", "model_ms"} <= set(rows[0])
    assert (out / "long video_windows.png").stat().st_size > 0
    on_disk = json.loads((out / "long video.json").read_text())
    assert on_disk["windows"]["count"] == len(starts) and on_disk["config"] == "tiny"

    # window 3 is exactly a video made of its frames
    w = timeline["items"][3]
    part = write_frames(tmp_path / "part", frames[w["start"]:w["end"]])
    alone = predict_json(capsys, config, checkpoint, part)["videos"][0]
    assert [t["index"] for t in w["topk"]] == [t["index"] for t in alone["topk"][:2]]
    assert [t["score"] for t in w["topk"]] == pytest.approx([t["score"] for t in alone["topk"][:2]], rel=1e-5)


def test_short_video_gives_one_window(tmp_path, capsys, checkpoint):
    config = tiny_config(tmp_path)
    video = tmp_path / "short.mp4"
    write_video(video, render(9, seed=5), video_codec("mp4"))
    doc = predict_json(capsys, config, checkpoint, video, "--window", "16")
    timeline = doc["videos"][0]["windows"]
    assert timeline["count"] == 1 and timeline["items"][0]["start"] == 0 and timeline["items"][0]["end"] == 9
    assert timeline["stride"] == 16
    assert timeline["window"] == 9  # the window holds the whole 9-frame video, not the 16 asked for


# ------------------------------------------------------------------------------- errors
def one_error_line(err, *needles):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("tinlib predict: error:")
    for needle in needles:
        assert str(needle) in lines[0]


def test_missing_video(tmp_path, capsys, checkpoint):
    missing = tmp_path / "no such video.mp4"
    code, out, err = run_predict(capsys, tiny_config(tmp_path), checkpoint, missing)
    assert code != 0 and out == ""
    one_error_line(err, missing, "video not found")


def test_undecodable_video_and_empty_frame_folder(tmp_path, capsys, checkpoint):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    code, _, err = run_predict(capsys, tiny_config(tmp_path), checkpoint, bad)
    assert code != 0
    one_error_line(err, bad, "cannot decode")
    empty = tmp_path / "frames"
    empty.mkdir()
    code, _, err = run_predict(capsys, tiny_config(tmp_path), checkpoint, empty)
    assert code != 0
    one_error_line(err, empty, "no frames")


def test_frame_folder_numbering(tmp_path, capsys, checkpoint):
    frames = render(12, seed=6)
    zero_based = write_frames(tmp_path / "from zero", frames, tmpl="{:05}.jpg", start=0)
    assert find_frame_template(zero_based, "img_{:05}.jpg", 1) == ("{:05}.jpg", 0, 12)
    gap = write_frames(tmp_path / "gap", frames)
    (gap / "img_00005.jpg").unlink()
    code, _, err = run_predict(capsys, tiny_config(tmp_path), checkpoint, gap)
    assert code != 0
    one_error_line(err, gap, "img_00005.jpg is missing")


def test_missing_label_file_fails_before_the_checkpoint_is_read(tmp_path, capsys):
    video = tmp_path / "v.mp4"
    write_video(video, render(10), video_codec("mp4"))
    missing = tmp_path / "labels.txt"
    # the checkpoint does not exist either: the label file must be the error reported
    code, out, err = run_predict(capsys, tiny_config(tmp_path), tmp_path / "none.pth", video, "--labels", missing)
    assert code != 0 and out == ""
    one_error_line(err, missing)


def test_stride_needs_a_window(tmp_path, capsys, checkpoint):
    video = tmp_path / "v.mp4"
    write_video(video, render(10), video_codec("mp4"))
    code, out, err = run_predict(capsys, tiny_config(tmp_path), checkpoint, video, "--stride", "4")
    assert code != 0 and out == ""
    one_error_line(err, "--stride needs --window")


def test_bad_checkpoints(tmp_path, capsys, checkpoint):
    video = tmp_path / "v.mp4"
    write_video(video, render(10), video_codec("mp4"))
    config = tiny_config(tmp_path)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00\x01 not a checkpoint" * 50)
    for ckpt, needle in ((garbage, "garbage.pth"), (tmp_path / "none.pth", "checkpoint not found")):
        code, out, err = run_predict(capsys, config, ckpt, video)
        assert code != 0 and out == ""
        one_error_line(err, needle)
    other = tiny_config(tmp_path, name="seven")
    values = json.loads(other.read_text())
    values["model"]["num_classes"] = 7
    other.write_text(json.dumps(values))
    code, _, err = run_predict(capsys, other, checkpoint, video)
    assert code != 0
    one_error_line(err, checkpoint.name, "the checkpoint has 5 classes")


# ------------------------------------------------------------------------------- notebook
@pytest.mark.slow
def test_notebook_runs_under_papermill(tmp_path, checkpoint):
    import nbformat
    import papermill as pm

    root = Path(__file__).resolve().parents[1]
    config = tiny_config(tmp_path)
    out = tmp_path / "07_predict.ipynb"
    pm.execute_notebook(str(root / "notebooks" / "07_predict.ipynb"), str(out), kernel_name="tin-kit",
                        cwd=str(root), progress_bar=False,
                        parameters={"config": str(config), "checkpoint": str(checkpoint), "video": None, "topk": 3,
                                    "window": 16, "stride": 8, "device": "cpu", "video_dir": str(tmp_path / "videos")})
    nb = nbformat.read(str(out), as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors == []
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {}) or "image/jpeg" in o.get("data", {})]
    assert len(images) >= 4  # frames, top-k bars, timeline, interlace offsets
    assert not (root / "results" / "tiny").exists()
