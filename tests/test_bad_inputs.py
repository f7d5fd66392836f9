"""The cheap rows of docs/bad-inputs.md, run as a user runs them (``python -m tinlib ...`` in a
subprocess): each bad input gives one error line naming the file or sample and what to do, a
non-zero exit and no traceback; with ``data.skip_bad_samples`` an unreadable video is a counted,
recorded skip instead. The lines quoted in the table are the ones asserted here.

(The faults of that table, kill -9 mid-write and a full disk, are in test_faults.py.)"""
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import torch

from tinlib.checkpoint import save_checkpoint
from tinlib.config import load_config
from tinlib.data import write_rawframe_list, write_video_list
from tinlib.engine.build import build_model

CONFIG = "demo_tin_r18_synthetic"  # a TIN ResNet-18 over frame folders named {:05}.jpg
FRAMES = 8


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A data root with three readable frame folders, one of garbage bytes, a video of garbage
    bytes and lists with each kind of bad line; a TIN and a TSM checkpoint of the config's shapes
    and damaged copies of the TIN one. The commands run in this folder (relative paths)."""
    base = tmp_path_factory.mktemp("bad_inputs")
    data = base / "data"
    rng = np.random.default_rng(0)
    for name in ("v0", "v1", "v2"):
        folder = data / "frames" / name
        folder.mkdir(parents=True)
        for k in range(1, FRAMES + 1):
            cv2.imwrite(str(folder / f"{k:05}.jpg"), rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    broken = data / "frames" / "broken"
    broken.mkdir()
    for k in range(1, FRAMES + 1):
        (broken / f"{k:05}.jpg").write_bytes(rng.integers(0, 255, 300, dtype=np.uint8).tobytes())
    write_rawframe_list(data / "good.txt", [("v0", 8, 0), ("v1", 8, 1), ("v2", 8, 2)])
    write_rawframe_list(data / "corrupt.txt", [("v0", 8, 0), ("broken", 8, 1), ("v2", 8, 2)])
    write_rawframe_list(data / "missing_frames.txt", [("v0", 8, 0), ("v1", 12, 1)])
    write_rawframe_list(data / "missing_folder.txt", [("v0", 8, 0), ("gone", 8, 1)])
    (data / "bad_fields.txt").write_text("v0 8 0\nv1 8\n")
    (data / "bad_label.txt").write_text("v0 8 0\nv1 8 one\n")
    (base / "empty").mkdir()  # a data root without the config's lists and folders
    (data / "videos").mkdir()
    (data / "videos" / "garbage.mp4").write_bytes(rng.integers(0, 255, 5000, dtype=np.uint8).tobytes())
    write_video_list(data / "videos.txt", [("garbage.mp4", 0)])

    torch.manual_seed(0)
    save_checkpoint(base / "tin.pth", build_model(load_config(CONFIG), pretrained=False, load_from=False))
    save_checkpoint(base / "tsm.pth", build_model(load_config("demo_tsm_r18_synthetic"), pretrained=False,
                                                  load_from=False))
    whole = (base / "tin.pth").read_bytes()
    (base / "truncated.pth").write_bytes(whole[: len(whole) // 2])
    (base / "empty.pth").write_bytes(b"")
    (base / "random.pth").write_bytes(rng.integers(0, 255, 4096, dtype=np.uint8).tobytes())
    add_checkpoint_and_frame_inputs(base)
    return base


def tinlib(cwd, *args):
    return subprocess.run([sys.executable, "-m", "tinlib", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "TINLIB_DEBUG": ""}, timeout=300)


def eval_args(ann, *extra):
    """``tinlib test`` of the TIN checkpoint on list ``ann`` of the test data root."""
    return ["test", CONFIG, "tin.pth", "--no-progress", "--device", "cpu", "--results-dir", "results",
            "--set", "data.root=data", f"data.test_ann={ann}", "data.test_prefix=frames", *extra]


def ckpt_args(ckpt, *extra):
    """``tinlib test`` of checkpoint ``ckpt`` on the readable list."""
    return ["test", CONFIG, ckpt, "--no-progress", "--device", "cpu", "--results-dir", "results", *extra,
            "--set", "data.root=data", "data.test_ann=good.txt", "data.test_prefix=frames"]




def add_checkpoint_and_frame_inputs(base):
    """A folder holding a checkpoint (``ckdir/latest.pth``), the TIN checkpoint of 7 classes instead
    of the config's 11, training checkpoints (with optimizer state) of TSM, a frame folder whose
    first JPEG is cut to half its bytes, a demo video and class names in CJK with an emoji."""
    from tinlib.data.synthetic import write_demo_video

    (base / "ckdir").mkdir()
    (base / "ckdir" / "latest.pth").write_bytes((base / "tin.pth").read_bytes())
    save_checkpoint(base / "tin7.pth", build_model(load_config(CONFIG, ["model.num_classes=7"]), pretrained=False,
                                                   load_from=False))
    tsm = build_model(load_config("demo_tsm_r18_synthetic"), pretrained=False, load_from=False)
    save_checkpoint(base / "tsm_train.pth", tsm, meta={"epoch": 1}, optimizer=torch.optim.SGD(
        tsm.parameters(), lr=0.1).state_dict())
    cut = base / "data" / "frames" / "cut"
    cut.mkdir()
    for k in range(1, FRAMES + 1):
        (cut / f"{k:05}.jpg").write_bytes((base / "data" / "frames" / "v0" / f"{k:05}.jpg").read_bytes())
    whole = (cut / "00001.jpg").read_bytes()
    (cut / "00001.jpg").write_bytes(whole[: len(whole) // 2])
    write_rawframe_list(base / "data" / "cut.txt", [("v0", 8, 0), ("cut", 8, 1)])
    write_demo_video(base / "demo.mp4", [0, 1], frames_per_class=12)
    (base / "labels_cjk.txt").write_text("".join(f"类别 {k} 🎬\n" for k in range(11)), encoding="utf-8")


def train_args(work_dir, *extra):
    """``tinlib train`` of the config on the readable list, one short epoch."""
    return ["train", CONFIG, "--work-dir", work_dir, "--no-progress", "--device", "cpu", "--set", "data.root=data",
            "data.train_ann=good.txt", "data.train_prefix=frames", "data.val_ann=good.txt", "data.val_prefix=frames",
            "train.epochs=1", "data.workers_per_gpu=0", *extra]


@dataclass
class Case:
    args: list
    exit_code: int
    says: tuple  # the error line holds each of these, in this order


SKIP_HINT = "or skip such samples with --set data.skip_bad_samples=true"
CASES = {
    "undecodable frame": Case(eval_args("corrupt.txt"), 1, (
        "tinlib test: error: sample 1 (data/corrupt.txt:2 ('broken')): cannot decode image "
        "data/frames/broken/00001.jpg (300 bytes): not a valid JPEG/PNG; re-extract the frames of this video, "
        + SKIP_HINT,)),
    "undecodable frame, in a loader worker": Case(eval_args("corrupt.txt", "data.workers_per_gpu=1"), 1, (
        "tinlib test: error: sample 1 (data/corrupt.txt:2 ('broken')): cannot decode image", SKIP_HINT)),
    "missing frame": Case(eval_args("missing_frames.txt"), 1, (
        "tinlib test: error: sample 1 (data/missing_frames.txt:2 ('v1')): frame file not found: "
        "data/frames/v1/00009.jpg (the folder holds 8 entries); the list's frame count or the filename template "
        "'{:05}.jpg' / start_index 1 does not match the folder: rebuild the list with `tinlib prepare ...` or fix "
        "the config, " + SKIP_HINT,)),
    "missing frame folder": Case(eval_args("missing_folder.txt"), 1, (
        "tinlib test: error: sample 1 (data/missing_folder.txt:2 ('gone')): frame folder not found: "
        "data/frames/gone; extract the frames (`tinlib prepare ...`) or fix data_prefix / the list, " + SKIP_HINT,)),
    "undecodable video": Case(eval_args("videos.txt", "data.kind=videos", "data.test_prefix=videos"), 1, (
        "tinlib test: error: sample 0 (data/videos.txt:1 ('garbage.mp4')): cannot decode video "
        "data/videos/garbage.mp4 (", "the file is corrupt or truncated: re-download it or drop it from the list, "
        + SKIP_HINT)),
    "list line with a missing field": Case(eval_args("bad_fields.txt"), 2, (
        "tinlib test: error: config demo_tin_r18_synthetic, test split: data/bad_fields.txt:2: expected 3 fields "
        "(frame_dir total_frames label) for a rawframes list, got 2 in line 'v1 8' (is this a video list? use "
        "kind='videos')",)),
    "list line with a bad label": Case(eval_args("bad_label.txt"), 2, (
        "tinlib test: error: config demo_tin_r18_synthetic, test split: data/bad_label.txt:2: label must be an "
        "integer, got 'one' in line 'v1 8 one'",)),
    "missing data root": Case(["test", CONFIG, "tin.pth", "--set", "data.root=nowhere"], 2, (
        "tinlib test: error: config demo_tin_r18_synthetic: data root nowhere does not exist; prepare the "
        "synthetic-sthv1 data there with `tinlib prepare synthetic --out nowhere --height 40`, or point the config "
        "at it with --set data.root=DIR",)),
    "missing data root, in training": Case(["train", CONFIG, "--work-dir", "wd_nowhere", "--set", "data.root=nowhere"],
                                           2, ("tinlib train: error: config demo_tin_r18_synthetic: data root nowhere "
                                               "does not exist; prepare the synthetic-sthv1 data there with `tinlib "
                                               "prepare synthetic --out nowhere --height 40`, or point the config "
                                               "at it with --set data.root=DIR",)),
    "data root without the lists and folders": Case(["test", CONFIG, "tin.pth", "--set", "data.root=empty"], 2, (
        "tinlib test: error: config demo_tin_r18_synthetic: data for synthetic-sthv1 is missing: test annotation "
        "list empty/sthv1_test_list_rawframes.txt not found (and 1 other path); prepare it with `tinlib prepare "
        "synthetic --out empty --height 40`, or point the config at it with --set data.root=DIR",)),
    "truncated checkpoint": Case(ckpt_args("truncated.pth"), 2, (
        "tinlib test: error: truncated.pth: is truncated: a PyTorch (zip) checkpoint whose end is missing",
        "download or save it again")),
    "empty checkpoint": Case(ckpt_args("empty.pth"), 2, (
        "tinlib test: error: empty.pth: is empty (0 bytes): it was never written or downloaded completely; "
        "download or save it again",)),
    "random bytes as checkpoint": Case(ckpt_args("random.pth"), 2, (
        "tinlib test: error: random.pth: is not a PyTorch checkpoint (neither a zip archive nor a pickle;",
        "check the path (is it the file you meant?)")),
    "random bytes, --trust-checkpoint": Case(ckpt_args("random.pth", "--trust-checkpoint"), 2, (
        "tinlib test: error: random.pth: is not a PyTorch checkpoint",)),
    "checkpoint of another architecture": Case(ckpt_args("tsm.pth"), 2, (
        "tinlib test: error: tsm.pth: the checkpoint holds a tsm_r18 model (recorded in its meta 'arch') but the "
        "model to load it into is tin_r18;", "--allow-arch-mismatch")),
    "missing checkpoint": Case(ckpt_args("nothere.pth"), 2, ("tinlib test: error: checkpoint not found: "
                                                                  "nothere.pth",)),
    "checkpoint folder": Case(ckpt_args("ckdir"), 2, (
        "tinlib test: error: ckdir is a directory, not a checkpoint file; give the .pth inside it (e.g. "
        "ckdir/latest.pth)",)),
    "checkpoint folder, export": Case(["export", CONFIG, "ckdir", "out.onnx"], 2, (
        "tinlib export: error: ckdir is a directory, not a checkpoint file; give the .pth inside it (e.g. "
        "ckdir/latest.pth)",)),
    "checkpoint of another class count": Case(ckpt_args("tin7.pth"), 2, (
        "tinlib test: error: checkpoint tin7.pth does not fit config demo_tin_r18_synthetic: the checkpoint has 7 "
        "classes but config demo_tin_r18_synthetic has model.num_classes=11 (shape mismatch: cls_head.fc_cls.weight "
        "[7, 256] vs model cls_head.fc_cls.weight [11, 256]); --set model.num_classes=7 to match it",)),
    "model.load_from of another class count": Case(train_args("wd_load_from", "model.load_from=tin7.pth"), 2, (
        "tinlib train: error: model.load_from: tin7.pth: the checkpoint has 7 classes but the model has "
        "model.num_classes=11 (shape mismatch: ", "); --set model.num_classes=7 to match the checkpoint, or --set "
        "model.load_strict=false to load what fits")),
    "resume from another architecture": Case(train_args("wd_resume", "--resume", "tsm_train.pth"), 2, (
        "tinlib train: error: cannot resume from tsm_train.pth: the checkpoint holds a tsm_r18 model (recorded in "
        "its meta 'arch') but the model to load it into is tin_r18; resume with the config and --set values it was "
        "trained with, or start a new run in another --work-dir",)),
    "truncated frame": Case(eval_args("cut.txt"), 1, (
        "tinlib test: error: sample 1 (data/cut.txt:2 ('cut')): cannot decode image data/frames/cut/00001.jpg (",
        " bytes): the file is truncated (no JPEG end-of-image marker): re-extract the frames of this video, "
        + SKIP_HINT)),
    "override of an unknown key": Case(["test", CONFIG, "tin.pth", "--set", "optim.lrr=1"], 2, (
        "tinlib test: error: bad override: unknown key 'optim.lrr' (did you mean 'lr'?); valid keys of section "
        "'optim': ",)),
    "override with a bad value": Case(["test", CONFIG, "tin.pth", "--set", "train.epochs=abc"], 2, (
        "tinlib test: error: bad override: train.epochs: expected int, got 'abc'",)),
    "override without a value": Case(["test", CONFIG, "tin.pth", "--set", "train.epochs"], 2, (
        "tinlib test: error: override 'train.epochs': expected KEY=VALUE, e.g. optim.lr=0.01",)),
    "prepare with a missing data root": Case(["prepare", "sthv1", "--root", "nowhere"], 1, (
        "tinlib prepare: error: missing SthV1 class list: nowhere/something-something-v1-labels.csv (the folder "
        "nowhere does not exist); download the Something-Something V1 annotation CSVs from ",
        " and put them in nowhere")),
    "unknown config": Case(["test", "no_such_config", "tin.pth"], 2, (
        "tinlib test: error: unknown config 'no_such_config'. Available: demo_tin_r18_synthetic,",)),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_bad_input_gives_one_line_and_a_non_zero_exit(inputs, kind):
    case = CASES[kind]
    proc = tinlib(inputs, *case.args)
    assert proc.returncode == case.exit_code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    prefix = f"tinlib {case.args[0]}: error:"
    errors = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert errors[0] == len(lines) - 1, "the error line should be the last one: " + proc.stderr[-3000:]
    message = lines[errors[0]]
    position = 0
    for part in case.says:
        found = message.find(part, position)
        assert found >= 0, f"{part!r} not in {message!r}"
        position = found + len(part)
    assert not (inputs / "results" / CONFIG / "metrics.json").exists()


def test_test_takes_a_checkpoint_url_as_predict_and_fetch_do(inputs, tmp_path):
    """``tinlib test CONFIG https://...`` downloads (here from a file:// mirror) into torch's hub
    cache and evaluates; a file name's hash suffix must be the start of its sha256."""
    import hashlib

    from tinlib import hub

    body = (inputs / "tin.pth").read_bytes()
    name = f"tin-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    (tmp_path / "mirror" / "zoo").mkdir(parents=True)
    (tmp_path / "mirror" / "zoo" / name).write_bytes(body)
    env = {hub.MIRROR_ENV: (tmp_path / "mirror").as_uri(), "TORCH_HOME": str(tmp_path / "torch")}
    args = ckpt_args(f"{hub.OPENMMLAB_URL}/zoo/{name}")
    args[args.index("results")] = str(tmp_path / "results")
    proc = subprocess.run([sys.executable, "-m", "tinlib", *args], capture_output=True, text=True, cwd=inputs,
                          env={**os.environ, "TINLIB_DEBUG": "", **env}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "torch" / "hub" / "checkpoints" / name).read_bytes() == body
    assert json.loads((tmp_path / "results" / CONFIG / "metrics.json").read_text())["num_samples"] == 3


def test_class_names_in_any_script_give_no_font_warnings(inputs, tmp_path):
    """CJK characters and an emoji, which DejaVu Sans lacks, in the class names of the window plot:
    drawn as boxes, and matplotlib's per-glyph warnings (naming tinlib's source lines) are kept
    off stderr."""
    proc = tinlib(inputs, "predict", CONFIG, "tin.pth", "demo.mp4", "--labels", "labels_cjk.txt", "--window", "12",
                  "--out", str(tmp_path), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "类别" in proc.stdout and (tmp_path / "demo_windows.png").stat().st_size > 0
    assert "Warning" not in proc.stderr and "Glyph" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.splitlines() == [line for line in proc.stderr.splitlines()
                                        if line.startswith(("loaded ", "wrote "))]


def test_unreadable_video_skipped_in_evaluation_is_counted_and_recorded(inputs, tmp_path):
    proc = tinlib(inputs, *eval_args("corrupt.txt", "data.skip_bad_samples=true"), "--results-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert ("warning: left out sample 1 (data/corrupt.txt:2, broken): cannot decode image "
            "data/frames/broken/00001.jpg (300 bytes): not a valid JPEG/PNG; re-extract the frames of this video"
            in lines)
    assert ("warning: test demo_tin_r18_synthetic: left out 1 unreadable of 3 videos (data.skip_bad_samples); "
            "scored 2" in lines)
    assert any(line.startswith("demo_tin_r18_synthetic [test, 2 of 3 videos]: top1 ") for line in lines)
    metrics = json.loads((tmp_path / CONFIG / "metrics.json").read_text())
    assert (metrics["num_samples"], metrics["num_listed"], metrics["num_skipped"]) == (2, 3, 1)
    assert [(s["index"], s["line"], s["path"]) for s in metrics["skipped_samples"]] == [(1, 2, "broken")]


def test_unreadable_video_skipped_in_training_is_counted_and_recorded(inputs, tmp_path):
    """In training the bad sample is replaced by the next readable one (batches keep their size),
    and the run's train.json says which sample and how often."""
    proc = tinlib(inputs, "train", CONFIG, "--work-dir", str(tmp_path / "wd"), "--seed", "0", "--no-progress",
                  "--set", "data.root=data", "data.train_ann=corrupt.txt", "data.train_prefix=frames",
                  "data.val_ann=good.txt", "data.val_prefix=frames", "data.skip_bad_samples=true",
                  "data.videos_per_gpu=3", "data.workers_per_gpu=0", "model.num_segments=4", "train.epochs=2",
                  "train.val_interval=0", "train.num_threads=1", "optim.type=sgd", f"results_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    skips = [line for line in proc.stderr.splitlines() if line.startswith("warning: skipping bad sample 1 (")]
    assert len(skips) == 2 and "data/corrupt.txt:2 ('broken')" in skips[0]  # once per epoch
    assert ("warning: 1 unreadable training sample(s) were replaced by the next readable one 2 time(s) in all "
            "(data.skip_bad_samples); train.json lists them" in proc.stderr.splitlines())
    summary = json.loads((tmp_path / CONFIG / "train.json").read_text())
    assert summary["num_skipped"] == 2
    (skipped,) = summary["skipped_samples"]
    assert (skipped["index"], skipped["line"], skipped["path"], skipped["times"]) == (1, 2, "broken", 2)
    assert "cannot decode image" in skipped["reason"]


def test_unreadable_video_stops_training_with_one_line_and_a_failed_run_record(inputs, tmp_path):
    """Without data.skip_bad_samples an unreadable frame stops training: one error line, exit 1,
    and run.json says the run failed and why (not "running")."""
    wd = tmp_path / "wd"
    proc = tinlib(inputs, "train", CONFIG, "--work-dir", str(wd), "--seed", "0", "--no-progress",
                  "--set", "data.root=data", "data.train_ann=corrupt.txt", "data.train_prefix=frames",
                  "data.videos_per_gpu=3", "data.workers_per_gpu=0", "model.num_segments=4", "train.epochs=1",
                  "train.val_interval=0", "train.num_threads=1", "optim.type=sgd", f"results_dir={tmp_path}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    expected = ("tinlib train: error: sample 1 (data/corrupt.txt:2 ('broken')): cannot decode image "
                "data/frames/broken/0000")
    assert lines[-1].startswith(expected) and SKIP_HINT in lines[-1], proc.stderr[-3000:]
    assert [line for line in lines if "error:" in line] == [lines[-1]]
    record = json.loads((wd / "run.json").read_text())
    assert (record["status"], record["epoch"]) == ("failed", 0)
    assert record["error"] == lines[-1].removeprefix("tinlib train: error: ")
    assert not (tmp_path / CONFIG / "train.json").exists()


# --------------------------------------------------------------------------------------------
# Output places, values that make no sense, --resume auto with nothing to resume, exit codes
# --------------------------------------------------------------------------------------------
def one_error_line(proc, prog, exit_code):
    """The one error line of ``proc``: the last line of its stderr (after any usage or progress
    lines), no other error line, no traceback, exit status ``exit_code``."""
    assert proc.returncode == exit_code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert [line for line in lines if "error:" in line] == [lines[-1]], proc.stderr[-3000:]
    assert lines[-1].startswith(f"tinlib {prog}: error: "), proc.stderr[-3000:]
    return lines[-1]


def unwritable_folder():
    """A folder that exists and that this process really cannot write into: one without write
    permission for a user other than root; for root (who ignores the permission bits) a sysfs
    folder, which refuses new files. None when there is no such folder here."""
    import tempfile

    candidates = ["/sys/kernel", "/sys"]
    for folder in candidates:
        if os.path.isdir(folder):
            try:
                fd, probe = tempfile.mkstemp(dir=folder)
            except OSError:
                return folder
            os.close(fd)
            os.unlink(probe)
    return None


@pytest.fixture(scope="module")
def places(inputs):
    """In the inputs folder: ``afile`` (a regular file given where a folder is expected) and
    ``afolder`` (a folder given where a file is expected)."""
    (inputs / "afile").write_text("a file, not a folder\n")
    (inputs / "afolder").mkdir(exist_ok=True)
    return inputs


OUTPUT_PLACES = {
    "test --results-dir a file": (
        ckpt_args("tin.pth", "--results-dir", "afile"),
        "tinlib test: error: results folder afile/demo_tin_r18_synthetic cannot be created: afile is a file, not a "
        "folder; give another place"),
    "train --work-dir below a file": (
        ["train", CONFIG, "--work-dir", "afile/wd", "--set", "data.root=data"],
        "tinlib train: error: work dir afile/wd cannot be created: afile is a file, not a folder; give another place"),
    "train, results folder a file": (
        ["train", CONFIG, "--work-dir", "wd_results_file", "--set", "data.root=data", "results_dir=afile"],
        "tinlib train: error: results folder afile/demo_tin_r18_synthetic cannot be created: afile is a file, not a "
        "folder"),
    "predict --out a file": (
        ["predict", CONFIG, "tin.pth", "data/frames/v0", "--out", "afile"],
        "tinlib predict: error: --out afile is a file, not a folder; give a folder (it is created if missing)"),
    "export to a folder": (
        ["export", CONFIG, "tin.pth", "afolder"],
        "tinlib export: error: output file afolder is a folder, not a file; give the path of the file to write"),
    "zoo --results-dir a file": (
        ["zoo", "--results-dir", "afile"],
        "tinlib zoo: error: --results-dir afile is a file, not a folder; give the folder the runs wrote to"),
    "prepare extract --out a file": (
        ["prepare", "extract", "--videos", "data/videos", "--out", "afile"],
        "tinlib prepare: error: --out afile is a file, not a folder; give a folder (it is created if missing)"),
    "fetch --dir a file": (
        ["fetch", "tin_r50_1x1x8_40e_sthv1_rgb", "--dir", "afile"],
        "tinlib fetch: error: --dir afile is a file, not a folder; give a folder (it is created if missing)"),
    "latency --out a folder": (
        ["latency", CONFIG, "--out", "afolder"],
        "tinlib latency: error: --out afolder is a folder, not a file; give the path of the file to write"),
}


@pytest.mark.parametrize("kind", list(OUTPUT_PLACES))
def test_output_place_that_cannot_be_written_is_refused_before_any_work(places, kind):
    args, expected = OUTPUT_PLACES[kind]
    before = sorted(p.relative_to(places) for p in places.rglob("*"))
    proc = tinlib(places, *args)
    assert one_error_line(proc, args[0], 2).startswith(expected)
    assert sorted(p.relative_to(places) for p in places.rglob("*")) == before  # nothing written, nothing created


@pytest.mark.parametrize("command", ["test", "train"])
def test_read_only_output_place_is_refused_before_any_work(places, command):
    folder = unwritable_folder()
    if folder is None:
        pytest.skip("no folder here refuses this process's writes")
    target = f"{folder}/tinlib_out"
    args = {"test": ckpt_args("tin.pth", "--results-dir", target),
            "train": ["train", CONFIG, "--work-dir", target, "--set", "data.root=data"]}[command]
    line = one_error_line(tinlib(places, *args), command, 2)
    assert f"{target}" in line and f"{folder} is not writable (" in line and "give a place you can write to" in line


NONSENSE_VALUES = {
    "test --batch-size 0": (ckpt_args("tin.pth", "--batch-size", "0"),
                            "tinlib test: error: argument --batch-size: must be at least 1, got 0"),
    "latency --iters 0": (["latency", CONFIG, "--iters", "0"],
                          "tinlib latency: error: argument --iters: must be at least 1, got 0"),
    "prepare synthetic --height 33": (["prepare", "synthetic", "--out", "odd", "--height", "33"],
                                      "tinlib prepare synthetic: error: argument --height: must be even, got 33; "
                                      "e.g. 32 or 34"),
    "predict --topk 0": (["predict", CONFIG, "tin.pth", "data/frames/v0", "--topk", "0"],
                         "tinlib predict: error: argument --topk: must be at least 1, got 0"),
}


@pytest.mark.parametrize("kind", list(NONSENSE_VALUES))
def test_value_that_makes_no_sense_is_refused_not_replaced(places, kind):
    args, expected = NONSENSE_VALUES[kind]
    proc = tinlib(places, *args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert lines[-1] == expected and [line for line in lines if "error:" in line] == [expected]
    assert lines[0].startswith("usage: ")  # argparse's usage, then its one error line
    assert not (places / "odd").exists()


def short_training(work_dir, *extra):
    """One epoch of one iteration on the three readable videos (no validation)."""
    return ["train", CONFIG, "--work-dir", str(work_dir), "--seed", "0", "--no-progress",
            "--set", "data.root=data", "data.train_ann=good.txt", "data.train_prefix=frames",
            "data.videos_per_gpu=3", "data.workers_per_gpu=0", "model.num_segments=4", "train.epochs=1",
            "train.val_interval=0", "train.num_threads=1", "optim.type=sgd", f"results_dir={work_dir.parent}",
            *extra]


def test_resume_auto_with_nothing_to_resume_says_so_and_keeps_the_earlier_log(inputs, tmp_path):
    """A work dir whose earlier attempt wrote log.json but no checkpoint: --resume auto starts a new
    run, says so, and the earlier log is kept beside the new one."""
    wd = tmp_path / "wd"
    wd.mkdir()
    earlier = '{"mode": "train", "epoch": 1, "iter": 1, "loss": 2.5}\n'
    (wd / "log.json").write_text(earlier)
    proc = tinlib(inputs, *short_training(wd, "--resume", "auto"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"warning: nothing to resume in {wd}: starting a new run" in proc.stderr.splitlines()
    assert (wd / "log.1.json").read_text() == earlier
    new = [json.loads(line) for line in (wd / "log.json").read_text().splitlines()]
    assert new[0]["config_name"] == CONFIG and any(row.get("mode") == "train" for row in new)


def test_failed_download_exits_4_and_leaves_no_lock(inputs, tmp_path):
    """A download that cannot reach its server: exit status 4 (a non-finite loss has 3), one line
    naming the URL, and nothing in the hub cache: no partial file and no ``.lock``."""
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "TINLIB_DEBUG": "", "TORCH_HOME": str(tmp_path / "torch"),
           "TINLIB_DOWNLOAD_MIRROR": f"http://127.0.0.1:{port}"}
    proc = subprocess.run([sys.executable, "-m", "tinlib", "fetch", "tsm_r50_1x1x8_50e_kinetics400_rgb"],
                          capture_output=True, text=True, cwd=inputs, env=env, timeout=120)
    line = one_error_line(proc, "fetch", 4)
    assert line.startswith(f"tinlib fetch: error: could not reach http://127.0.0.1:{port}/")
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    assert list(cache.iterdir()) == []


def test_training_on_a_val_only_preparation_names_the_missing_train_list(inputs):
    """Data prepared with --splits val (lists and frames of val only): training names the missing
    train list and the command that prepares it, in one line, before any work."""
    proc = tinlib(inputs, "train", CONFIG, "--work-dir", "wd_val_only", "--set", "data.root=data",
                  "data.val_ann=good.txt", "data.val_prefix=frames", "data.test_ann=good.txt",
                  "data.test_prefix=frames")
    line = one_error_line(proc, "train", 2)
    assert line == ("tinlib train: error: config demo_tin_r18_synthetic: data for synthetic-sthv1 is missing: train "
                    "annotation list data/sthv1_train_list_rawframes.txt not found (and 1 other path); prepare it "
                    "with `tinlib prepare synthetic --out data --height 40`, or point the config at it with --set "
                    "data.root=DIR (annotation lists and folders are relative to data.root)")
    assert not (inputs / "wd_val_only").exists()
