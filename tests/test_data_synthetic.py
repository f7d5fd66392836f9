"""The synthetic temporal dataset: layouts, determinism, time-reversal pairs, loading."""
import json
import os

import numpy as np
import pytest

from tinlib.data import build_dataset, decoding, open_video
from tinlib.data.synthetic import CLASSES, classes_for, render_video, write_synthetic


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
    assert meta["num_classes"] == 11 and meta["num_train"] == 22 and meta["num_val"] == 11
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


@pytest.mark.parametrize("layout, ext", [("sthv2", ".webm"), ("k400", ".mp4")])
def test_video_layouts_decode_with_decord(tmp_path, layout, ext):
    meta = write_synthetic(tmp_path / layout, layout, size="tiny", workers=2, num_train=6, num_val=3)
    assert meta["kind"] == "videos" and meta["start_index"] == 0
    path, label = open(meta["val_list"]).readline().split()
    assert path.endswith(ext)
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
    with pytest.raises(FileExistsError, match="not a synthetic dataset"):
        write_synthetic(tmp_path / "mine", "sthv1", size="tiny")
    with pytest.raises(ValueError, match="layout must be one of"):
        write_synthetic(tmp_path / "x", "ucf101")
