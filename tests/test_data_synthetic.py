"""The synthetic temporal dataset: layouts, the held-out test split, determinism, time-reversal
pairs, loading, and its command line's errors."""
import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from tinlib import cli
from tinlib.data import build_dataset, decoding, load_annotations, open_video
from tinlib.data.releases import STHV1
from tinlib.data.synthetic import SyntheticError, write_synthetic
from tinlib.data.synthetic_render import CLASSES, classes_for, render_video
from tinlib.errors import UserError
from tinlib.records import SyntheticMeta


def test_class_table_has_reversal_pairs_and_other_classes():
    pairs = {}
    for c in CLASSES:
        pairs.setdefault(c.motion, []).append(c.reverse)
    reversal = {m for m, flags in pairs.items() if sorted(flags) == [False, True]}
    assert reversal == {"horizontal", "vertical", "scale", "light"}
    assert {"static", "shake", "several"} <= set(pairs) and len(CLASSES) <= 12
    assert not any(c.flip_sensitive for c in classes_for("k400"))


@pytest.mark.parametrize("motion", ["horizontal", "vertical", "scale", "light"])
def test_reversed_class_is_the_same_video_played_backwards(motion):
    fwd, desc = render_video(motion, np.random.default_rng(3), 40, 9)
    back, _ = render_video(motion, np.random.default_rng(3), 40, 9, reverse=True)
    assert fwd.shape == (9, 40, fwd.shape[2], 3) and fwd.dtype == np.uint8
    assert (back == fwd[::-1]).all()
    assert desc["shape"] and desc["color"]
    # and the motion is really there: first and last frame differ clearly
    assert np.abs(fwd[0].astype(int) - fwd[-1].astype(int)).mean() > 2


def test_direction_of_motion_matches_the_class_name():
    # the object of "left to right" ends further right: centre of mass of the strongest difference to frame median
    def object_x(frame, bg):
        diff = np.abs(frame.astype(int) - bg.astype(int)).sum(-1)
        ys, xs = np.nonzero(diff > diff.max() * 0.5)
        return xs.mean()

    for seed in range(3):
        v, _ = render_video("horizontal", np.random.default_rng(seed), 60, 12)
        bg = np.median(v, axis=0)
        assert object_x(v[-1], bg) > object_x(v[0], bg) + 10


def test_layout_sthv1(tmp_path):
    meta = write_synthetic(tmp_path / "s1", "sthv1", size="tiny", seed=1, workers=1)
    assert meta["kind"] == "rawframes" and meta["filename_tmpl"] == "{:05}.jpg" and meta["start_index"] == 1
    # the tiny size: 2 train, 1 val and 1 test video per class, 11 classes
    assert meta["num_classes"] == 11 and (meta["num_train"], meta["num_val"], meta["num_test"]) == (22, 11, 11)
    assert meta["counts"] == {"train": 22, "val": 11, "test": 11}
    assert meta["reversal_pairs"] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert meta["class_names"][0] == "Moving something from left to right" and meta["flip_ok"] is False
    first = open(meta["train_list"]).readline().split()
    folder = os.path.join(meta["data_prefix"], first[0])
    assert len(os.listdir(folder)) == int(first[1]) and os.path.exists(os.path.join(folder, "00001.jpg"))
    import cv2

    assert cv2.imread(os.path.join(folder, "00001.jpg")).shape[0] == 48
    ds = build_dataset(meta["train_list"], meta["data_prefix"], filename_tmpl=meta["filename_tmpl"], scale_size=40,
                       input_size=32, num_classes=meta["num_classes"])
    clip, label = ds[0]
    assert clip.shape == (8, 3, 32, 32) and label == int(first[2])
    assert sorted(set(ds.labels)) == list(range(11))  # balanced: two per class
    assert json.loads((tmp_path / "s1" / "synthetic_meta.json").read_text())["train_list"] == meta["train_list"]


def test_held_out_test_split_has_its_own_videos(tmp_path):
    meta = write_synthetic(tmp_path / "s1", "sthv1", size="tiny", seed=2, workers=1, num_train=11, num_val=11,
                           num_test=22)
    root = tmp_path / "s1"
    assert meta["test_list"] == str(root / "sthv1_test_list_rawframes.txt")
    assert meta["lists"]["rawframes"]["test"] == meta["test_list"]
    assert meta["lists"]["rawframes"]["test_data_prefix"] == meta["data_prefix"]
    splits = {s: load_annotations(meta[f"{s}_list"], "rawframes") for s in ("train", "val", "test")}
    ids = {s: {r.path for r in recs} for s, recs in splits.items()}
    assert len(ids["test"]) == 22 and not ids["test"] & (ids["train"] | ids["val"])  # no video shared
    assert Counter(r.label for r in splits["test"]) == {c: 2 for c in range(11)}  # balanced like the others
    assert Counter(r.label for r in splits["val"]) == {c: 1 for c in range(11)}
    # its annotations are written like the train/val CSVs (id;class name), under a file of its own
    rows = (root / "synthetic-test.csv").read_text().splitlines()
    assert len(rows) == 22 and all(r.split(";")[1] in meta["class_names"] for r in rows)
    # its frames differ from every val video's (not copies)
    first = lambda rec: (root / STHV1.media_dirs[0][0] / rec.path / "00001.jpg").read_bytes()  # noqa: E731
    val_frames = {first(r) for r in splits["val"]}
    assert not any(first(r) in val_frames for r in splits["test"])
    # the meta reads back as the record
    record = SyntheticMeta.read(root / "synthetic_meta.json")
    assert (record.test_list, record.num_test, record.counts) == (meta["test_list"], 22, meta["counts"])


@pytest.mark.parametrize("config", ["demo_tin_r18_synthetic", "demo_tsn_r18_synthetic"])
def test_demo_configs_validate_on_val_and_test_on_the_held_out_split(tmp_path, config):
    from tinlib.engine.splits import split_paths
    from tinlib.pipeline.launch import prepare_data
    from tinlib.pipeline.runconfig import resolve

    root = tmp_path / "data"
    prepare_data("synthetic", root, layout="sthv1", size="tiny", height=40, workers=1)
    cfg = resolve(config, data_root=root, quiet=True)
    assert (cfg.data.val_ann, cfg.data.test_ann) == ("sthv1_val_list_rawframes.txt", "sthv1_test_list_rawframes.txt")
    assert cfg.data.test_prefix == cfg.data.val_prefix == "20bn-something-something-v1"
    ann, prefix = split_paths(cfg, "test")
    assert ann.read_text() == (root / "sthv1_test_list_rawframes.txt").read_text() and prefix.is_dir()
    assert len(ann.read_text().splitlines()) == 11  # tiny: one test video per class


def test_a_dataset_without_the_test_split_is_rewritten(tmp_path):
    meta = write_synthetic(tmp_path / "s", "sthv1", size="tiny", workers=1)
    old = SyntheticMeta.read(tmp_path / "s" / "synthetic_meta.json")
    # what the writer stored before the test split existed: version 1 parameters, no test list
    old.params = {k: v for k, v in old.params.items() if k != "num_test"} | {"version": 1}
    old.test_list = old.num_test = old.counts = None
    old.write(tmp_path / "s" / "synthetic_meta.json")
    (tmp_path / "s" / "sthv1_test_list_rawframes.txt").unlink()
    again = write_synthetic(tmp_path / "s", "sthv1", size="tiny", workers=1)
    assert again["params"]["version"] == meta["params"]["version"] and os.path.isfile(again["test_list"])


@pytest.mark.parametrize("layout, ext", [("sthv2", ".webm"), ("k400", ".mp4")])
def test_video_layouts_decode_with_decord(tmp_path, layout, ext):
    meta = write_synthetic(tmp_path / layout, layout, size="tiny", workers=2, num_train=6, num_val=3)
    assert meta["kind"] == "videos" and meta["start_index"] == 0
    path, label = open(meta["val_list"]).readline().split()
    assert path.endswith(ext)
    test_prefix = meta["lists"]["videos"]["test_data_prefix"]
    assert meta["num_test"] == len(open(meta["test_list"]).read().splitlines()) == len(classes_for(layout))
    assert os.path.isfile(os.path.join(test_prefix, open(meta["test_list"]).readline().split()[0]))
    if layout == "k400":
        assert os.path.basename(test_prefix) == "videos_test"
    clip = open_video(os.path.join(meta["lists"]["videos"]["val_data_prefix"], path), "decord")
    assert clip.backend == ("decord" if decoding.have_decord() else "pyav") and 8 <= len(clip) <= 14
    assert clip.get([0]).shape[1] == 48
    ds = build_dataset(meta["val_list"], meta["lists"]["videos"]["val_data_prefix"], kind="videos", test_mode=True,
                       scale_size=40, input_size=32, num_classes=meta["num_classes"])
    assert ds[0][0].shape == (8, 3, 32, 32) and ds[0][1] == int(label)
    if layout == "k400":
        assert meta["flip_ok"] is True and meta["num_classes"] == 9
        assert meta["class_names"] == sorted(meta["class_names"])
        names = meta["class_names"]
        for a, b in meta["reversal_pairs"]:
            assert names[a] != names[b]
        assert [names[a] for a, _ in meta["reversal_pairs"]] == ["moving_something_up",
                                                                  "moving_something_towards_the_camera",
                                                                  "turning_the_light_on"]


def test_sthv2_layout_with_extracted_frames(tmp_path):
    meta = write_synthetic(tmp_path / "s2", "sthv2", size="tiny", num_train=4, num_val=2, extract_frames=True,
                           workers=1)
    assert meta["kind"] == "rawframes" and set(meta["lists"]) == {"videos", "rawframes"}
    ann = json.loads((tmp_path / "s2" / "something-something-v2-train.json").read_text())
    assert {"id", "label", "template", "placeholders"} <= set(ann[0]) and "[" not in ann[0]["label"]
    ds = build_dataset(meta["train_list"], meta["data_prefix"], scale_size=40, input_size=32)
    assert ds[0][0].shape == (8, 3, 32, 32)


def test_deterministic_from_the_seed_and_reused(tmp_path):
    a = write_synthetic(tmp_path / "a", "sthv1", size="tiny", seed=5, workers=2, num_train=5, num_val=2)
    b = write_synthetic(tmp_path / "b", "sthv1", size="tiny", seed=5, workers=1, num_train=5, num_val=2)
    c = write_synthetic(tmp_path / "c", "sthv1", size="tiny", seed=6, workers=1, num_train=5, num_val=2)
    read = lambda m: open(m["train_list"]).read()  # noqa: E731
    assert read(a) == read(b) != read(c)
    vid = read(a).split()[0]
    fa = (tmp_path / "a" / "20bn-something-something-v1" / vid / "00002.jpg").read_bytes()
    assert fa == (tmp_path / "b" / "20bn-something-something-v1" / vid / "00002.jpg").read_bytes()
    stamp = os.stat(a["train_list"]).st_mtime_ns
    again = write_synthetic(tmp_path / "a", "sthv1", size="tiny", seed=5, num_train=5, num_val=2)
    assert again == a and os.stat(a["train_list"]).st_mtime_ns == stamp  # same parameters: reused


def test_refuses_to_overwrite_other_data(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("x")
    with pytest.raises(UserError, match="is not empty and holds no synthetic dataset .*--overwrite"):
        write_synthetic(tmp_path / "mine", "sthv1", size="tiny")
    assert (tmp_path / "mine" / "precious.txt").read_text() == "x"
    with pytest.raises(ValueError, match="layout must be one of"):
        write_synthetic(tmp_path / "x", "ucf101")


@pytest.mark.parametrize("option, value", [("num_train", 0), ("num_val", -1), ("num_test", 0)])
def test_split_sizes_must_be_positive(tmp_path, option, value):
    with pytest.raises(SyntheticError, match=f"--{option.replace('_', '-')} {value}: .*positive count"):
        write_synthetic(tmp_path / "s", "sthv1", size="tiny", **{option: value})
    assert not (tmp_path / "s").exists()  # refused before anything was written


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tinlib", "prepare", "synthetic", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_errors_are_one_line_with_what_to_do(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    proc = run_cli("--out", str(tmp_path / "mine"), "--size", "tiny")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "--overwrite" in proc.stderr, proc.stderr
    proc = run_cli("--out", str(tmp_path / "new"), "--size", "tiny", "--num-train", "0")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "--num-train 0" in proc.stderr and "positive count" in proc.stderr
    assert STHV1.url not in proc.stderr  # nothing about downloading the real dataset


def test_cli_overwrite_replaces_other_files(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    assert cli.main(["prepare", "synthetic", "--out", str(tmp_path / "mine"), "--size", "tiny", "--workers", "1",
                     "--overwrite", "--quiet"]) == 0
    assert not (tmp_path / "mine" / "notes.txt").exists()
    out = capsys.readouterr().out
    assert "22 train / 11 val / 11 test videos" in out and "sthv1_test_list_rawframes.txt" in out
