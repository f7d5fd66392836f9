"""Preparation from tiny fake copies of the official release files; frame extraction; the CLI."""
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tinlib import cli
from tinlib.data import AnnotationError, load_annotations
from tinlib.data.encoding import video_codec, write_video
from tinlib.data.extract import extract_frames
from tinlib.data.prepare import PrepareError, prepare_kinetics400, prepare_sthv1, prepare_sthv2
from tinlib.data.releases import normalize_k400_label, sthv2_label_name


@pytest.fixture
def messages(caplog):
    """tinlib's log records (attached to its logger: it stops propagating once a command has set up logging)."""
    logger = logging.getLogger("tinlib")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="tinlib")
    yield caplog
    logger.removeHandler(caplog.handler)


def warnings_of(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def frames_folder(folder, n, tmpl="{:05}.jpg", size=(20, 30)):
    folder.mkdir(parents=True)
    for k in range(1, n + 1):
        cv2.imwrite(str(folder / tmpl.format(k)), np.full((*size, 3), 10 * k % 256, np.uint8))


def video(path, n, size=(24, 40)):
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix[1:]
    frames = np.stack([np.full((*size, 3), 9 * k % 256, np.uint8) for k in range(n)])
    write_video(path, frames, video_codec("webm" if ext == "webm" else "mp4"))
    return path


# --------------------------------------------------------------------------------------- sthv1
@pytest.fixture
def sthv1(tmp_path):
    root = tmp_path / "sthv1"
    root.mkdir()
    (root / "something-something-v1-labels.csv").write_text(
        "Holding something\nMoving something from left to right\nPushing something so that it falls off the table\n")
    (root / "something-something-v1-train.csv").write_text(
        "101;Moving something from left to right\n102;Holding something\n103;Holding something\n"
        "104;Pushing something so that it falls off the table\n")
    (root / "something-something-v1-validation.csv").write_text("201;Holding something\n")
    frames = root / "20bn-something-something-v1"
    for vid, n in (("101", 12), ("102", 5), ("104", 9), ("201", 7)):  # 103 is missing
        frames_folder(frames / vid, n)
    os.remove(frames / "104" / "00004.jpg")  # a gap: left out, reported
    return root


def test_sthv1_lists(sthv1, tmp_path, messages):
    out = tmp_path / "lists"
    rep = prepare_sthv1(sthv1, out)
    assert (out / "sthv1_train_list_rawframes.txt").read_text() == "101 12 1\n102 5 0\n"
    assert (out / "sthv1_val_list_rawframes.txt").read_text() == "201 7 0\n"
    assert rep["counts"] == {"train": 2, "val": 1} and rep["class_names"][2].startswith("Pushing")
    assert rep["lists"]["rawframes"]["filename_tmpl"] == "{:05}.jpg"
    err = warnings_of(messages)
    assert "2 SthV1 videos left out of the lists" in err and "103 (frame folder missing)" in err
    # the scan of the frame folders reports progress (no terminal here: log lines), 5 listed folders
    frames = sthv1 / "20bn-something-something-v1"
    assert f"checking the frame folders in {frames}: 5/5 folders in " in messages.text
    assert "104 (8 frame files but 00004.jpg is missing" in err
    assert f"sthv1: 2 train / 1 val videos, 3 classes -> {out}" in messages.text


def test_sthv1_annotations_of_a_further_split(sthv1, tmp_path):
    # what the synthetic data does for its held-out test split: a labelled CSV in the train format
    (sthv1 / "test.csv").write_text("102;Holding something\n101;Moving something from left to right\n")
    annotations = {"train": sthv1 / "something-something-v1-train.csv",
                   "val": sthv1 / "something-something-v1-validation.csv", "test": sthv1 / "test.csv"}
    out = tmp_path / "lists"
    rep = prepare_sthv1(sthv1, out, annotations=annotations, quiet=True)
    assert (out / "sthv1_test_list_rawframes.txt").read_text() == "102 5 0\n101 12 1\n"
    assert rep["counts"] == {"train": 2, "val": 1, "test": 2}
    lists = rep["lists"]["rawframes"]
    assert lists["test"] == str(out / "sthv1_test_list_rawframes.txt")
    assert lists["test_data_prefix"] == lists["val_data_prefix"] == str(sthv1 / "20bn-something-something-v1")
    with pytest.raises(PrepareError, match=r"missing SthV1 test split: .*nowhere\.csv"):
        prepare_sthv1(sthv1, out, annotations={**annotations, "test": sthv1 / "nowhere.csv"}, quiet=True)


def test_sthv1_missing_inputs_say_what_to_download(sthv1):
    (sthv1 / "something-something-v1-validation.csv").unlink()
    with pytest.raises(PrepareError, match=r"missing SthV1 validation split: .*something-something-v1-validation\.csv"
                                           r"; download the Something-Something V1 annotation CSVs"):
        prepare_sthv1(sthv1)
    (sthv1 / "something-something-v1-validation.csv").write_text("201;Holding something\n")
    (sthv1 / "20bn-something-something-v1").rename(sthv1 / "elsewhere")
    with pytest.raises(PrepareError, match=r"missing SthV1 frame folders: .*; download the "
                                           r"20bn-something-something-v1-\?\? archive parts"):
        prepare_sthv1(sthv1)
    rep = prepare_sthv1(sthv1, frames_dir=sthv1 / "elsewhere", quiet=True)
    assert rep["counts"]["val"] == 1


def test_sthv1_unknown_class_names_the_line(sthv1):
    (sthv1 / "something-something-v1-train.csv").write_text("101;Holding something\n102;Juggling something\n")
    with pytest.raises(AnnotationError, match=r"train\.csv:2: class 'Juggling something' is not in"):
        prepare_sthv1(sthv1, quiet=True)


# --------------------------------------------------------------------------------------- sthv2
def test_sthv2_label_names_drop_brackets():
    assert sthv2_label_name("Putting [something] on [something]") == "Putting something on something"


@pytest.fixture
def sthv2(tmp_path):
    root = tmp_path / "sthv2"
    root.mkdir()
    labels = {"Holding something": "0", "Putting something on something": "1"}
    (root / "something-something-v2-labels.json").write_text(json.dumps(labels))
    train = [{"id": "5", "label": "putting a cup on a box", "template": "Putting [something] on [something]",
              "placeholders": ["a cup", "a box"]},
             {"id": "6", "label": "holding a pen", "template": "Holding [something]", "placeholders": ["a pen"]},
             {"id": "7", "label": "holding a pen", "template": "Holding [something]", "placeholders": ["a pen"]}]
    val = [{"id": "9", "label": "holding a cup", "template": "Holding [something]", "placeholders": ["a cup"]}]
    (root / "something-something-v2-train.json").write_text(json.dumps(train))
    (root / "something-something-v2-validation.json").write_text(json.dumps(val))
    for vid, n in (("5", 10), ("6", 4), ("9", 6)):  # 7 is missing
        video(root / "20bn-something-something-v2" / f"{vid}.webm", n)
    return root


def test_sthv2_lists_and_default_frame_extraction(sthv2, tmp_path, messages):
    out = tmp_path / "out"
    rep = prepare_sthv2(sthv2, out, workers=2)
    assert (out / "sthv2_train_list_videos.txt").read_text() == "5.webm 1\n6.webm 0\n"
    assert (out / "sthv2_val_list_videos.txt").read_text() == "9.webm 0\n"
    assert (out / "sthv2_train_list_rawframes.txt").read_text() == "5 10 1\n6 4 0\n"
    assert (out / "sthv2_val_list_rawframes.txt").read_text() == "9 6 0\n"
    assert sorted(os.listdir(out / "rawframes" / "6")) == [".extracted.json"] + [f"img_{k:05}.jpg" for k in range(1, 5)]
    assert cv2.imread(str(out / "rawframes" / "5" / "img_00001.jpg")).shape == (24, 40, 3)  # native size
    assert rep["class_names"] == ["Holding something", "Putting something on something"]
    assert "1 SthV2 videos missing on disk (left out): 7.webm" in warnings_of(messages)


def test_sthv2_videos_only_and_bad_template(sthv2, tmp_path):
    rep = prepare_sthv2(sthv2, tmp_path / "o", extract=False, quiet=True)
    assert set(rep["lists"]) == {"videos"} and not (tmp_path / "o" / "rawframes").exists()
    items = json.loads((sthv2 / "something-something-v2-train.json").read_text())
    items[1]["template"] = "Holding [something] high"
    (sthv2 / "something-something-v2-train.json").write_text(json.dumps(items))
    with pytest.raises(AnnotationError,
                       match=r"train\.json: entry 1 \(id 6\) has template 'Holding \[something\] high'"):
        prepare_sthv2(sthv2, extract=False, quiet=True)
    (sthv2 / "something-something-v2-labels.json").unlink()
    with pytest.raises(PrepareError, match="missing SthV2 class map: .*something-something-v2-labels.json"):
        prepare_sthv2(sthv2)


# ------------------------------------------------------------------------------------ kinetics
@pytest.fixture
def k400(tmp_path):
    root = tmp_path / "k400"
    root.mkdir()
    header = "label,youtube_id,time_start,time_end,split,is_cc\n"
    (root / "kinetics_train.csv").write_text(
        header + "abseiling,aaaaaaaaaaa,14,24,train,0\n\"petting animal (not cat)\",bbbbbbbbbbb,0,10,train,0\n"
        "air drumming,ccccccccccc,30.0,40.0,train,0\nabseiling,ddddddddddd,1,11,train,0\n")
    (root / "kinetics_val.csv").write_text(header + "air drumming,eeeeeeeeeee,5,15,val,0\n")
    video(root / "videos_train" / "abseiling" / "aaaaaaaaaaa_000014_000024.mp4", 8)
    video(root / "videos_train" / "petting_animal_(not_cat)" / "bbbbbbbbbbb_000000_000010.mp4", 5)
    video(root / "videos_train" / "air_drumming" / "ccccccccccc_000030_000040.mp4", 6)  # ddd... missing
    video(root / "videos_val" / "eeeeeeeeeee_000005_000015.mp4", 7)  # flat layout works too
    return root


def test_k400_lists_class_index_and_short_side(k400, tmp_path):
    out = tmp_path / "out"
    rep = prepare_kinetics400(k400, out, short_side=16, workers=1, quiet=True)
    assert rep["class_names"] == ["abseiling", "air_drumming", "petting_animal_(not_cat)"]
    assert normalize_k400_label('"petting animal (not cat)"') == "petting_animal_(not_cat)"
    assert (out / "kinetics400_label_map.txt").read_text().splitlines() == rep["class_names"]
    assert (out / "kinetics400_train_list_videos.txt").read_text() == (
        "abseiling/aaaaaaaaaaa_000014_000024.mp4 0\npetting_animal_(not_cat)/bbbbbbbbbbb_000000_000010.mp4 2\n"
        "air_drumming/ccccccccccc_000030_000040.mp4 1\n")
    assert (out / "kinetics400_val_list_rawframes.txt").read_text() == "eeeeeeeeeee_000005_000015 7 1\n"
    recs = load_annotations(out / "kinetics400_train_list_rawframes.txt", "rawframes")
    second = recs[1]
    assert (second.path, second.total_frames, second.label) == ("petting_animal_(not_cat)/bbbbbbbbbbb_000000_000010",
                                                                5, 2)
    img = cv2.imread(str(out / "rawframes_train" / "abseiling" / "aaaaaaaaaaa_000014_000024" / "img_00001.jpg"))
    assert img.shape == (16, 27, 3)  # short side 16, 40 * 16 / 24 = 26.67 -> 27
    assert rep["left_out"] == ["train/ddddddddddd_000001_000011"]
    assert rep["lists"]["rawframes"]["val_data_prefix"] == str(out / "rawframes_val")


def test_k400_class_folders_with_spaces(k400):
    (k400 / "videos_train" / "air_drumming").rename(k400 / "videos_train" / "air drumming")
    with pytest.raises(PrepareError, match=r"class folders in .*videos_train contain spaces .*--rename-class-folders"):
        prepare_kinetics400(k400, extract=False, quiet=True)
    rep = prepare_kinetics400(k400, extract=False, rename_class_folders=True, quiet=True)
    assert (k400 / "videos_train" / "air_drumming").is_dir() and rep["counts"]["train"] == 3


def test_k400_missing_csv_and_bad_rows(k400):
    (k400 / "kinetics_val.csv").unlink()
    with pytest.raises(PrepareError, match=r"missing Kinetics-400 val CSV: none of .*kinetics_val\.csv.*; get the "
                                           "Kinetics-400 annotation CSVs"):
        prepare_kinetics400(k400, extract=False)
    (k400 / "kinetics_val.csv").write_text("label,youtube_id\nabseiling,xxxxxxxxxxx\n")
    with pytest.raises(AnnotationError, match=r"kinetics_val\.csv:1: header must contain"):
        prepare_kinetics400(k400, extract=False)
    (k400 / "kinetics_val.csv").write_text("label,youtube_id,time_start,time_end,split\nyodeling,x,1,2,val\n")
    with pytest.raises(AnnotationError, match=r"kinetics_val\.csv:2: class 'yodeling' is not among the 3 classes"):
        prepare_kinetics400(k400, extract=False, quiet=True)


# ---------------------------------------------------------------------------------- extraction
def test_extraction_resumes_and_reports_failures(tmp_path):
    src = tmp_path / "videos"
    for name, n in (("a.mp4", 5), ("b.webm", 4), ("sub/c.mp4", 3)):
        video(src / name, n)
    good = (src / "a.mp4").read_bytes()
    (src / "broken.mp4").write_bytes(good[: len(good) // 3])
    (src / "empty.mp4").write_bytes(b"")
    out = tmp_path / "frames"
    rep = extract_frames(src, out, height=12, workers=2, quiet=True)
    assert rep.done == {"a.mp4": 5, "b.webm": 4, "sub/c.mp4": 3} and rep.reused == 0
    assert set(rep.failed) == {"broken.mp4", "empty.mp4"} and "0 bytes" in rep.failed["empty.mp4"]
    report = (out / "extract_failures.txt").read_text()
    assert "broken.mp4\t" in report and "empty.mp4\tvideo file is empty" in report
    assert cv2.imread(str(out / "sub" / "c" / "img_00001.jpg")).shape == (12, 20, 3)
    assert not (out / "broken").exists()  # no half-written folder left behind
    # simulate an interrupted run: b lost its marker mid-way, a is finished
    stamp = os.stat(out / "a" / "img_00001.jpg").st_mtime_ns
    (out / "b" / ".extracted.json").unlink()
    (out / "b" / "img_00004.jpg").unlink()
    rep2 = extract_frames(src, out, height=12, workers=1, quiet=True)
    assert rep2.reused == 2 and rep2.done["b.webm"] == 4 and len(os.listdir(out / "b")) == 5
    assert os.stat(out / "a" / "img_00001.jpg").st_mtime_ns == stamp  # finished video not redone
    assert "2 extracted" not in rep2.summary() and "1 extracted, 2 already done" in rep2.summary()
    # other settings: everything redone
    rep3 = extract_frames(src, out, videos=["a.mp4"], short_side=8, workers=1, quiet=True)
    assert rep3.reused == 0 and cv2.imread(str(out / "a" / "img_00001.jpg")).shape == (8, 13, 3)
    # a damaged marker: the folder is redone, not trusted and not a crash
    (out / "sub" / "c" / ".extracted.json").write_text('{"frames": 3, "sett')
    rep4 = extract_frames(src, out, videos=["sub/c.mp4"], height=12, workers=1, quiet=True)
    assert rep4.reused == 0 and rep4.done == {"sub/c.mp4": 3}
    assert json.loads((out / "sub" / "c" / ".extracted.json").read_text())["frames"] == 3


# ----------------------------------------------------------------------------------------- CLI
def test_cli_prepare(sthv1, tmp_path, capsys):
    assert cli.main(["prepare", "sthv1", "--root", str(sthv1), "--out", str(tmp_path / "l"), "--quiet"]) == 0
    assert (tmp_path / "l" / "sthv1_train_list_rawframes.txt").exists()
    assert cli.main(["prepare", "k400", "--root", str(tmp_path / "nothing")]) == 1
    assert "tinlib prepare: error: missing Kinetics-400 train CSV" in capsys.readouterr().err
    assert cli.main(["prepare", "synthetic", "--layout", "sthv1", "--size", "tiny", "--out", str(tmp_path / "s"),
                     "--workers", "1"]) == 0
    assert "synthetic sthv1 dataset" in capsys.readouterr().out


def test_quiet_preparation_logs_nothing(sthv1, tmp_path, messages):
    prepare_sthv1(sthv1, tmp_path / "q", quiet=True)
    assert messages.records == []


def test_preparation_does_not_import_the_synthetic_writer():
    code = "import sys, tinlib.data.prepare; print('tinlib.data.synthetic' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


# ------------------------------------------------------------------------------ one split only
def mtimes(folder):
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sthv2_val_split_only_then_all_splits(sthv2, tmp_path):
    out = tmp_path / "out"
    rep = prepare_sthv2(sthv2, out, workers=1, splits=["val"], quiet=True)
    assert rep["splits"] == ["val"] and rep["counts"] == {"val": 1}
    assert sorted(p.name for p in out.iterdir()) == ["rawframes", "sthv2_val_list_rawframes.txt",
                                                     "sthv2_val_list_videos.txt"]
    assert sorted(os.listdir(out / "rawframes")) == ["9"]  # no training video decoded
    assert "train" not in rep["lists"]["rawframes"] and "data_prefix" not in rep["lists"]["rawframes"]
    assert rep["lists"]["rawframes"]["val_data_prefix"] == str(out / "rawframes")
    val_frames = mtimes(out / "rawframes" / "9")
    rep = prepare_sthv2(sthv2, out, workers=1, quiet=True)  # the full preparation afterwards
    assert rep["splits"] == ["train", "val"] and rep["counts"] == {"train": 2, "val": 1}
    assert (out / "sthv2_train_list_rawframes.txt").read_text() == "5 10 1\n6 4 0\n"
    assert (out / "sthv2_val_list_rawframes.txt").read_text() == "9 6 0\n"
    assert sorted(os.listdir(out / "rawframes")) == ["5", "6", "9"]
    assert mtimes(out / "rawframes" / "9") == val_frames  # the val video was not decoded again


def test_k400_val_split_needs_no_training_clips(k400, tmp_path):
    (k400 / "videos_train").rename(tmp_path / "elsewhere")  # not downloaded yet: only the train CSV is read
    out = tmp_path / "out"
    rep = prepare_kinetics400(k400, out, short_side=16, workers=1, splits="val", quiet=True)
    # classes from the train CSV all the same: abseiling, air_drumming, petting_animal_(not_cat)
    assert rep["class_names"] == ["abseiling", "air_drumming", "petting_animal_(not_cat)"]
    assert (out / "kinetics400_val_list_rawframes.txt").read_text() == "eeeeeeeeeee_000005_000015 7 1\n"
    assert not (out / "kinetics400_train_list_rawframes.txt").exists()
    assert not (out / "kinetics400_train_list_videos.txt").exists() and not (out / "rawframes_train").exists()
    val_frames = mtimes(out / "rawframes_val")
    (tmp_path / "elsewhere").rename(k400 / "videos_train")
    rep = prepare_kinetics400(k400, out, short_side=16, workers=1, quiet=True)
    assert rep["counts"] == {"train": 3, "val": 1} and (out / "rawframes_train" / "abseiling").is_dir()
    assert mtimes(out / "rawframes_val") == val_frames


def test_unknown_split_names_the_choices(sthv1, tmp_path, capsys):
    with pytest.raises(PrepareError, match=r"^unknown split 'tain'; choose from train, val"):
        prepare_sthv1(sthv1, tmp_path / "l", splits=["tain"], quiet=True)
    with pytest.raises(PrepareError, match="unknown split 'val '|no split given"):
        prepare_sthv1(sthv1, tmp_path / "l", splits=" , ", quiet=True)
    code = cli.main(["prepare", "sthv1", "--root", str(sthv1), "--splits", "val,tests", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("tinlib prepare: error: --splits: unknown split 'tests'; choose from")
    assert len(err.strip().splitlines()) == 1 and not (sthv1 / "sthv1_val_list_rawframes.txt").exists()
    assert cli.main(["prepare", "sthv1", "--root", str(sthv1), "--out", str(tmp_path / "l"), "--splits", "val",
                     "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "l").iterdir()) == ["sthv1_val_list_rawframes.txt"]


def test_prepare_record_names_its_splits_and_keeps_the_others(sthv1, tmp_path):
    from tinlib.errors import UserError
    from tinlib.pipeline import launch, runconfig
    from tinlib.records import PrepareRecord

    out = tmp_path / "lists"
    train_list, val_list = out / "sthv1_train_list_rawframes.txt", out / "sthv1_val_list_rawframes.txt"
    summary = launch.prepare_data("sthv1", sthv1, lists_dir=out, splits=["val"])
    assert summary["splits"] == ["val"] and summary["counts"] == {"val": 1} and not train_list.exists()
    record = PrepareRecord.read(out / PrepareRecord.FILENAME)
    assert record.lists["rawframes"].train is None and record.lists["rawframes"].val == str(val_list)
    # testing reads the val list; training stops with one line saying how to add the train split
    overrides = runconfig.data_overrides(runconfig.load_config("tin_r50_1x1x8_40e_sthv1_rgb"), out)
    frames = str((sthv1 / "20bn-something-something-v1").resolve())  # outside the lists folder: absolute
    assert overrides["data.test_prefix"] == overrides["data.val_prefix"] == frames
    assert "data.train_prefix" not in overrides and "data.train_ann" not in overrides
    cfg = runconfig.resolve("tin_r50_1x1x8_40e_sthv1_rgb", data_root=out, quiet=True)
    assert (Path(cfg.data.root) / cfg.data.test_ann) == val_list
    with pytest.raises(UserError, match=f"lists only the val split .*tinlib prepare sthv1 --root {sthv1} --out {out}"):
        runconfig.require_train_split(out)
    summary = launch.prepare_data("sthv1", sthv1, lists_dir=out)  # all splits: the train list is added
    assert summary["splits"] == ["train", "val"] and summary["counts"] == {"train": 2, "val": 1}
    assert train_list.read_text() == "101 12 1\n102 5 0\n"
    runconfig.require_train_split(out)
    # preparing the val split again keeps the train list of the full preparation in the record
    summary = launch.prepare_data("sthv1", sthv1, lists_dir=out, splits="val")
    assert summary["splits"] == ["train", "val"] and summary["counts"] == {"train": 2, "val": 1}
    assert PrepareRecord.read(out / PrepareRecord.FILENAME).lists["rawframes"].train == str(train_list)
    train_list.unlink()  # a list no longer on disk is not carried over
    summary = launch.prepare_data("sthv1", sthv1, lists_dir=out, splits="val")
    assert summary["splits"] == ["val"] and summary["lists"]["rawframes"]["train"] is None


def test_missing_release_file_is_one_line_naming_a_missing_root(tmp_path):
    root = tmp_path / "not_there"
    with pytest.raises(PrepareError) as err:
        prepare_sthv1(root)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"missing SthV1 class list: {root / 'something-something-v1-labels.csv'} "
                              f"(the folder {root} does not exist); download ")
    (tmp_path / "here").mkdir()
    with pytest.raises(PrepareError) as err:
        prepare_sthv1(tmp_path / "here")
    assert "does not exist" not in str(err.value) and "\n" not in str(err.value)
