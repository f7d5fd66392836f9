"""tinlib.pipeline: the steps' freshness rule, the data check, the step lists of the make targets,
config resolution against a prepared data root, the torchrun command line and output streaming.
Fast: no notebook is executed (test_notebooks.py and test_make.py run them)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinlib.config import load_config
from tinlib.data.releases import PREPARE_SUMMARY, SYNTHETIC
from tinlib.pipeline import launch, recipes, runconfig
from tinlib.pipeline.checks import DataMissing, check_data, detect_gpus
from tinlib.pipeline.steps import Step, StepFailed, freshness, mark_finished, run_side_by_side
from tinlib.records import LaunchRecord, PrepareRecord, RecordError, SyntheticMeta, TrainRecord

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
# the model-zoo rows as MMAction2 names them
ZOO_ROWS = ("tin_r50_1x1x8_40e_sthv1_rgb", "tin_r50_1x1x8_40e_sthv2_rgb",
            "tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb")


# --------------------------------------------------------------------------------------------
# steps, checks, recipes
# --------------------------------------------------------------------------------------------
def test_freshness_follows_modification_times(tmp_path):
    notebook, src, out = tmp_path / "01_train.ipynb", tmp_path / "in.txt", tmp_path / "out.txt"
    notebook.write_text("{}")
    src.write_text("a")
    step = Step("s", notebook, {}, inputs=[src], outputs=[out])
    assert step.notebook == "01_train"
    assert freshness(step) == (False, f"{out} does not exist")
    out.write_text("b")
    now = time.time()
    for path in (notebook, src):
        os.utime(path, (now - 100, now - 100))
    os.utime(out, (now + 100, now + 100))
    assert freshness(step) == (False, "its last run did not finish")  # outputs alone are not a finished step
    mark_finished(step)
    assert freshness(step)[0]
    os.utime(src, (now + 200, now + 200))
    fresh, why = freshness(step)
    assert not fresh and "in.txt is newer" in why
    os.utime(src, (now - 100, now - 100))
    os.utime(notebook, (now + 200, now + 200))  # an edited notebook reruns its step too
    fresh, why = freshness(step)
    assert not fresh and "01_train.ipynb is newer" in why
    assert freshness(Step("z", notebook, {}, always=True, outputs=[out])) == (False, "always runs")


def test_check_data_says_what_to_download(tmp_path):
    with pytest.raises(DataMissing, match="(?s)DATA_ROOT is not set.*20bn-something-something-v1"):
        check_data("sthv1", None)
    with pytest.raises(DataMissing, match="(?s)does not exist.*cat 20bn-something-something-v1-"):
        check_data("sthv1", str(tmp_path / "nope"))
    (tmp_path / "something-something-v1-labels.csv").write_text("a\n")
    with pytest.raises(DataMissing) as err:
        check_data("sthv1", str(tmp_path))
    assert "missing: " + str(tmp_path / "something-something-v1-train.csv") in str(err.value)
    assert "labels.csv" not in str(err.value).split("Download")[0]
    for n in ("train", "validation"):
        (tmp_path / f"something-something-v1-{n}.csv").write_text("")
    (tmp_path / "20bn-something-something-v1").mkdir()
    check_data("sthv1", str(tmp_path))
    with pytest.raises(DataMissing, match="videos_train"):
        check_data("k400", str(tmp_path))
    with pytest.raises(DataMissing, match="something-something-v2-labels.json"):
        check_data("sthv2", str(tmp_path))


def test_check_data_of_the_val_split_needs_no_training_clips(tmp_path):
    (tmp_path / "kinetics_val.csv").write_text("")
    (tmp_path / "videos_val").mkdir()
    with pytest.raises(DataMissing) as err:
        check_data("k400", str(tmp_path), splits=("val",))
    # the classes come from the train CSV, so it is needed all the same; the train clips are not
    listing = str(err.value).split("Download")[0]
    assert listing.count("missing: ") == 1 and f"missing: {tmp_path / 'kinetics_train.csv'}" in listing
    (tmp_path / "kinetics_train.csv").write_text("")
    check_data("k400", str(tmp_path), splits="val")
    with pytest.raises(DataMissing, match=f"missing: {tmp_path / 'videos_train'}"):
        check_data("k400", str(tmp_path))
    with pytest.raises(DataMissing, match="unknown split 'validation'; choose from train, val"):
        check_data("k400", str(tmp_path), splits="validation")
    # lists of the val split prepared before (release files gone) are enough for it, not for all splits
    (tmp_path / "kinetics_train.csv").unlink()
    (tmp_path / "kinetics400_val_list_rawframes.txt").write_text("")
    (tmp_path / PREPARE_SUMMARY).write_text("{}")
    check_data("k400", str(tmp_path), splits="val")
    with pytest.raises(DataMissing):
        check_data("k400", str(tmp_path))


def test_check_data_command_reports_a_complete_root_on_stdout(tmp_path):
    for name in ("labels", "train", "validation"):
        (tmp_path / f"something-something-v1-{name}.csv").write_text("")
    (tmp_path / "rawframes").mkdir()  # the alternative name of the frame folder
    proc = subprocess.run([sys.executable, "-m", "tinlib.pipeline", "check-data", "sthv1", "--data-root",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"sthv1: {tmp_path} looks complete"


def test_config_files_come_from_the_package_not_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = recipes.config_file("demo_tin_r18_synthetic")
    assert path.is_absolute() and path == ROOT / "tinlib" / "configs" / "demo_tin_r18_synthetic.py"
    assert recipes.config_file("my/own_config.py") == Path("my/own_config.py")


def test_reproduce_without_data_stops_at_once(tmp_path):
    env = dict(os.environ)
    env.pop("DATA_ROOT", None)
    # the data check runs before any step (none starts: no runs folder, nothing on stdout); it takes
    # seconds, and subprocess.run raises TimeoutExpired past the bound
    proc = subprocess.run([sys.executable, "-m", "tinlib.pipeline", "--results-dir", str(tmp_path),
                           "reproduce", "sthv2"], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2
    assert "DATA_ROOT is not set" in proc.stderr and "something-something-v2-labels.json" in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "runs").exists()


def test_demo_and_reproduce_steps_are_wired(tmp_path, monkeypatch):
    monkeypatch.setattr(recipes, "threads_per_run", lambda runs: 1)  # as on a 2-core machine
    steps = recipes.demo_steps(notebooks_dir=NOTEBOOK_DIR, results=tmp_path / "r", work_root=tmp_path / "w")
    assert [s.notebook for s in steps] == ["00_prepare_data", "01_train", "01_train", "01_train", "02_evaluate",
                                           "03_latency", "05_explore_interlace", "07_predict", "04_model_zoo"]
    assert all(s.source.is_file() for s in steps)
    train = steps[1]
    assert train.parameters["config"] == "demo_tin_r18_synthetic"
    assert train.parameters["overrides"] == {"train.num_threads": 1}
    assert [s.group for s in steps[1:4]] == ["train"] * 3
    assert tmp_path / "w" / "demo_tin_r18_synthetic" / "latest.pth" in train.outputs
    assert steps[4].parameters["compare"] == ["demo_tsm_r18_synthetic", "demo_tsn_r18_synthetic"]
    rep = recipes.reproduce_steps("sthv1", str(tmp_path / "d"), notebooks_dir=NOTEBOOK_DIR, results=tmp_path / "r",
                                  work_root=tmp_path / "w", gpus=8, nodes=2, profile="smoke")
    assert [s.notebook for s in rep] == ["00_prepare_data", "01_train", "02_evaluate", "03_latency", "04_model_zoo"]
    assert rep[1].parameters["gpus"] == 8 and rep[1].parameters["nodes"] == 2
    assert rep[1].parameters["config"] == ZOO_ROWS[0] and rep[1].parameters["overrides"]["train.epochs"] == 1
    # reproduce prepares both splits: stale until the train list exists (after evaluate-published's val only)
    assert rep[0].parameters["splits"] == ["train", "val"]
    assert {p.name for p in rep[0].outputs} == {PREPARE_SUMMARY, "sthv1_train_list_rawframes.txt",
                                                "sthv1_val_list_rawframes.txt"}
    # every parameter a step passes exists in its notebook's parameters cell
    import nbformat

    for step in steps + rep:
        nb = nbformat.read(str(step.source), as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        names = {line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line}
        assert set(step.parameters) <= names, (step.notebook, set(step.parameters) - names)


def test_side_by_side_work_all_runs_and_its_failures_are_raised_together():
    finished = []

    def work(name, fails=False):
        if fails:
            raise StepFailed(f"{name} failed")
        finished.append(name)
        return name

    seen = []
    calls = [lambda: work("a"), lambda: work("b", fails=True), lambda: work("c"), lambda: work("d", fails=True)]
    with pytest.raises(StepFailed) as err:
        run_side_by_side(calls, failure=StepFailed, workers=1, on_done=seen.append)
    assert sorted(finished) == ["a", "c"]  # a failure does not stop the others
    assert str(err.value) == "b failed\n\nd failed" and seen == ["a", None, "c", None]
    assert run_side_by_side([lambda: work("e"), lambda: work("f")], failure=StepFailed) == ["e", "f"]
    with pytest.raises(ZeroDivisionError):  # other errors are not collected
        run_side_by_side([lambda: 1 / 0], failure=StepFailed)


def test_detect_gpus_reads_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,3")
    assert detect_gpus() == 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert detect_gpus() == 1


# --------------------------------------------------------------------------------------------
# runs and launches
# --------------------------------------------------------------------------------------------
def test_data_overrides_from_a_prepare_summary(tmp_path):
    root = tmp_path / "sthv1"
    (root / "20bn-something-something-v1").mkdir(parents=True)
    summary = {"dataset": "sthv1",
               "lists": {"rawframes": {"train": str(root / "sthv1_train_list_rawframes.txt"),
                                       "val": str(root / "sthv1_val_list_rawframes.txt"),
                                       "data_prefix": str(root / "20bn-something-something-v1"),
                                       "filename_tmpl": "{:05}.jpg", "start_index": 1}},
               "num_classes": 174, "class_names": ["x"] * 174}
    assert launch.write_prepare_summary(root, summary) == root / PREPARE_SUMMARY
    cfg = load_config(ZOO_ROWS[0])
    ov = runconfig.data_overrides(cfg, root)
    assert ov == {"data.root": str(root), "data.train_prefix": "20bn-something-something-v1",
                  "data.val_prefix": "20bn-something-something-v1", "data.test_prefix": "20bn-something-something-v1"}
    summary["num_classes"] = 11
    launch.write_prepare_summary(root, summary)
    cfg2 = runconfig.resolve(ZOO_ROWS[0], data_root=root, overrides={"train.epochs": 2}, results_dir=tmp_path / "r",
                             quiet=True)
    assert (cfg2.model.num_classes, cfg2.train.epochs, cfg2.results_dir) == (11, 2, str(tmp_path / "r"))
    assert runconfig.data_overrides(cfg, None) == {}


def test_a_damaged_prepare_summary_is_named_not_ignored(tmp_path):
    """A truncated tinlib_prepare.json would otherwise leave the config on its own lists silently."""
    (tmp_path / PREPARE_SUMMARY).write_text('{"dataset": "sthv1", "lists": {"rawfr')
    with pytest.raises(RecordError, match=f"{tmp_path / PREPARE_SUMMARY}.*not valid JSON.*prepare step"):
        runconfig.data_overrides(load_config(ZOO_ROWS[0]), tmp_path)
    (tmp_path / PREPARE_SUMMARY).write_text(json.dumps({"dataset": "sthv1", "class_names": ["a"],
                                                        "lists": {"rawframes": {"train": "t.txt"}}}))
    with pytest.raises(RecordError, match="'rawframes' lists lack the train or val list"):
        runconfig.data_overrides(load_config(ZOO_ROWS[0]), tmp_path)
    with pytest.raises(RecordError, match="missing 'lists'"):
        launch.write_prepare_summary(tmp_path / "out", {"dataset": "sthv1", "class_names": ["a"]})
    assert not (tmp_path / "out" / PREPARE_SUMMARY).exists()


def test_record_file_names_agree_with_the_release_layouts():
    assert PREPARE_SUMMARY == PrepareRecord.FILENAME
    assert SYNTHETIC.meta_file == SyntheticMeta.FILENAME


def test_launch_record_is_read_back_as_written(tmp_path):
    path = launch.write_launch_record(tmp_path, config="demo_tin_r18_synthetic", nodes=2, gpus_per_node=4,
                                      device="cuda", work_dir=tmp_path / "w", wall_s=12.345)
    record = LaunchRecord.read(path)
    assert path == tmp_path / "launch.json"
    assert (record.world_size, record.torchrun, record.wall_s, record.work_dir) == (8, True, 12.3, str(tmp_path / "w"))
    single = LaunchRecord.read(launch.write_launch_record(tmp_path, config="c", nodes=1, gpus_per_node=1,
                                                          device="cpu", work_dir="w", wall_s=1.0))
    assert (single.world_size, single.torchrun) == (1, False)


def test_torchrun_command_round_trips_overrides():
    from tinlib.config import apply_overrides

    ov = {"data.root": "/data/sthv1", "model.pretrained": None, "optim.lr": 0.01, "train.epochs": 3,
          "data.filename_tmpl": "{:05}.jpg", "schedule.steps": [1, 2], "data.flip": True, "model.tsm_conv1": "skip"}
    cmd = launch.torchrun_command("tin_r50_1x1x8_40e_sthv1_rgb", gpus=4, nodes=2, node_rank=1,
                                  master_addr="10.0.0.1", work_dir="w", run="r", overrides=ov)
    assert cmd[1:3] == ["-m", "torch.distributed.run"]
    assert "--nproc-per-node=4" in cmd and "--nnodes=2" in cmd and "--node-rank=1" in cmd
    assert "--master-addr=10.0.0.1" in cmd and cmd[cmd.index("-m", 3) + 1:cmd.index("-m", 3) + 3] == ["tinlib", "train"]
    sets = cmd[cmd.index("--set") + 1:]
    cfg = apply_overrides(load_config(ZOO_ROWS[0]), sets)
    assert cfg.data.root == "/data/sthv1" and cfg.model.pretrained is None and cfg.optim.lr == 0.01
    assert cfg.data.filename_tmpl == "{:05}.jpg" and cfg.schedule.steps == [1, 2] and cfg.data.flip is True
    single = launch.torchrun_command("x", gpus=2, work_dir="w")
    assert "--standalone" in single and "--resume" in single


def test_stream_command_prints_lines_and_throttles_progress(capsys):
    code = launch.stream_command([sys.executable, "-c",
                                  "import sys\nprint('start')\nfor i in range(5): sys.stdout.write(f'\\r{i}/5')\n"
                                  "sys.stdout.write('\\n')\nprint('end')\nsys.exit(3)"], refresh_s=3600)
    out = capsys.readouterr().out.splitlines()
    assert code == 3
    assert out[0] == "start" and out[-1] == "end"
    assert "0/5" in out and "3/5" not in out  # the first progress line, then none for an hour


def test_find_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="train first"):
        runconfig.find_checkpoint(tmp_path)
    (tmp_path / "latest.pth").write_bytes(b"x")
    assert runconfig.find_checkpoint(tmp_path, "best").name == "latest.pth"
    (tmp_path / "best.pth").write_bytes(b"x")
    assert runconfig.find_checkpoint(tmp_path, "best").name == "best.pth"
    assert runconfig.find_checkpoint(tmp_path, str(tmp_path / "best.pth")).name == "best.pth"


def test_launch_training_returns_the_record_rank_0_wrote_and_records_the_launch(tmp_path, monkeypatch):
    """In process, the summary is the train.json the run wrote (not what the engine returned), and
    launch.json says where it ran; the engine is replaced by a stub that writes the run's records."""
    def stub_train(cfg, *, work_dir, run, **_):
        work_dir.mkdir(parents=True)
        (work_dir / "log.json").write_text('{"seed": 0}\n')
        TrainRecord(config_name=cfg.name, config={}, device={"device": "cuda:0"},
                    elapsed_s_this_session=3.5).write(Path(cfg.results_dir) / run / "train.json")
        return {"not": "the record"}

    monkeypatch.setattr("tinlib.engine.train.train", stub_train)
    summary = launch.launch_training("demo_tin_r18_synthetic", work_dir=tmp_path / "w", results_dir=tmp_path / "r",
                                     run="x", progress=False)
    assert summary["config_name"] == "demo_tin_r18_synthetic" and summary["elapsed_s_this_session"] == 3.5
    folder = tmp_path / "r" / "x"
    assert (folder / "log.json").read_text() == '{"seed": 0}\n'
    record = LaunchRecord.read(folder / "launch.json")
    assert (record.config, record.device, record.world_size, record.torchrun) == ("demo_tin_r18_synthetic", "cuda",
                                                                                   1, False)
    assert record.work_dir == str(tmp_path / "w")


def test_check_data_names_the_make_target_that_checked(tmp_path):
    # evaluate-published-* checks the val split only and should send the user back to itself
    with pytest.raises(DataMissing) as err:
        check_data("sthv1", str(tmp_path / "nope"), splits="val")
    assert "then: make evaluate-published-sthv1 DATA_ROOT=/path/to/sthv1" in str(err.value)
    assert "reproduce" not in str(err.value)
    with pytest.raises(DataMissing) as err:
        check_data("k400", None)
    assert "then: make reproduce-k400 DATA_ROOT=/path/to/kinetics400" in str(err.value)
    assert "in the repository root" not in str(err.value)  # the TSM-K400 checkpoint is downloaded on first use


@pytest.mark.parametrize("cores,expected", [(1, 1), (2, 1), (4, 1), (6, 2), (9, 3), (12, 4), (64, 4)])
def test_side_by_side_trainings_split_the_cores(monkeypatch, cores, expected):
    """Three demo trainings on a machine of ``cores``: each gets its share, at least 1 and at most 4."""
    monkeypatch.setattr(recipes.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert recipes.threads_per_run(3) == expected
