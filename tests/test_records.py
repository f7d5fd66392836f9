"""tinlib.records: every run record reads back what it wrote, reads the files written before records
carried a schema version (the layout of the committed results/), keeps keys it does not know, and
refuses damaged or wrong files with an error that names the file."""
import json
from pathlib import Path

import pytest

from tinlib import records
from tinlib.errors import UserError
from tinlib.records import (
    RECORD_TYPES,
    LatencyRecord,
    LogEntry,
    LogHeader,
    LogWriter,
    MetricsRecord,
    RecordError,
    ReversalRecord,
    TrainRecord,
)

ENV = {"git": {"commit": "0" * 40, "dirty": False}, "versions": {"python": "3.11.7", "torch": "2.14.1"},
       "device": {"platform": "Linux", "cpu": "x86_64", "cpu_count": 2, "torch_threads": 1, "hostname": "vm",
                  "device": "cpu"}}
CONFIG = {"name": "demo_tin_r18_synthetic", "model": {"arch": "tin_r18", "num_segments": 8},
          "data": {"input_size": 32, "dataset": "synthetic-sthv1"}}
LR = {"base_lr": 0.002, "lr": 0.002, "total_batch": 8, "ref_batch": 8, "world_size": 1, "videos_per_gpu": 8,
      "applied": False}
LISTS = {"rawframes": {"train": "/d/sthv1_train_list_rawframes.txt", "val": "/d/sthv1_val_list_rawframes.txt",
                       "data_prefix": "/d/20bn-something-something-v1",
                       "val_data_prefix": "/d/20bn-something-something-v1", "filename_tmpl": "{:05}.jpg",
                       "start_index": 1}}

# One file of each record in the layout the project wrote before records carried "schema" (the
# shape of results/demo_tin_r18_synthetic/*.json, results/ablation_interlace_grad/summary.json, the
# prepare and synthetic-data summaries and the work dir's run.json); the values are made up.
V1_FILES = {
    TrainRecord: {
        "run": "demo_tin_r18_synthetic", "config_name": "demo_tin_r18_synthetic", "work_dir": "work_dirs/demo/x",
        "epochs": 12, "iters_per_epoch": 83, "world_size": 1, "videos_per_gpu": 8, "lr_scaling": LR, "seed": 0,
        "deterministic": False, "amp": "none", "sync_bn": False,
        "last_val": {"top1_acc": 0.94, "top5_acc": 0.99, "mean_class_accuracy": 0.94},
        "best": {"metric": "top1_acc", "value": 0.95, "epoch": 10}, "resumed_from_epoch": None,
        "checkpoints": {"latest": "work_dirs/demo/x/latest.pth", "best": "work_dirs/demo/x/best.pth"},
        "elapsed_s_this_session": 485.66, **ENV, "time": "2026-11-24T05:00:15+00:00", "config": CONFIG},
    records.RunState: {
        "config_name": "demo_tin_r18_synthetic", "status": "failed", "epoch": 1, "epochs": 3, "seed": 0,
        "world_size": 1, "lr": LR, "best": None, "time": "2026-11-24T05:00:15+00:00", "error": "loss is nan",
        "config": CONFIG},
    MetricsRecord: {
        "run": "demo_tin_r18_synthetic", "config_name": "demo_tin_r18_synthetic", "split": "test",
        "num_samples": 4, "num_classes": 2, "metrics": {"top1_acc": 0.75, "top5_acc": 1, "mean_class_accuracy": 0.75},
        "metrics_percent": {"top1_acc": 75.0, "top5_acc": 100.0, "mean_class_accuracy": 75.0},
        "per_class_accuracy": [1.0, 0.5], "class_counts": [2, 2], "confusion_matrix": [[2, 0], [1, 1]],
        "test_setting": {"num_segments": 8, "num_clips": 1, "crop": "center", "twice_sample": False,
                         "average_clips": "prob", "input_size": 32, "scale_size": 40},
        "checkpoint": {"path": "work_dirs/demo/x/latest.pth", "sha256": "91f5", "layout": "tinlib",
                       "train_meta": {"epoch": 12, "iter": 996, "seed": 0, "world_size": 1, "lr": LR,
                                      "config_name": "demo_tin_r18_synthetic", "time": "2026-11-24T05:00:14"}},
        "seed": 0, "eval_seed": 0, "skipped_samples": [], **ENV, "world_size": 1,
        "time": "2026-11-24T05:00:24+00:00", "elapsed_s": 3.988, "scores_file": "scores.npz", "config": CONFIG},
    ReversalRecord: {
        "chance": 50.0, "n": 160, "direction_acc": 100.0, "pair_id_acc": 99.38, "top1_reversal": 99.38,
        "top1_other": 80.0, "n_other": 60,
        "per_pair": [{"classes": [0, 1], "names": ["left to right", "right to left"], "n": 40, "direction_acc": 100.0,
                      "pair_id_acc": 100.0, "top1": 100.0}]},
    LatencyRecord: {
        "setting": {"config": "demo_tin_r18_synthetic", "num_classes": 11, "num_segments": 8, "views": 1,
                    "input_shape": [1, 8, 3, 32, 32], "flops_input_shape": [1, 8, 3, 32, 32],
                    "average_clips": "prob", "batch_size": 1, "warmup": 5, "method": "MMAction2 benchmark"},
        "models": {"tin_r18": {
            "arch": "tin_r18", "params": 11186211, "flops_torch": 592327680, "macs_torch": 296163840,
            "flops_mmcv": 297487104,
            "latency": {"cpu": {"mean_ms": 17.68, "median_ms": 17.9, "std_ms": 1.3, "min_ms": 15.8, "fps": 56.5,
                                "fps_mmaction2": 54.1, "warmup": 5, "iters": 20, "device": "cpu",
                                "device_name": None, "threads": 2}},
            "zoo": {"flops": None, "params": None}}},
        "devices": ["cpu"], "device_info": ENV["device"], "versions": ENV["versions"], "git": ENV["git"],
        "time": "2026-11-24T05:00:36+00:00"},
    records.LaunchRecord: {
        "config": "demo_tin_r18_synthetic", "nodes": 1, "gpus_per_node": 1, "world_size": 1, "device": "cpu",
        "torchrun": False, "work_dir": "work_dirs/demo/x", "wall_s": 491.0},
    records.PrepareRecord: {
        "dataset": "sthv1", "class_names": ["a", "b"], "counts": {"train": 22, "val": 11}, "left_out": [],
        "lists": LISTS, "data_root": "/d", "num_classes": 2, "prepared_s": 1.63},
    records.SyntheticMeta: {
        "layout": "sthv1", "root": "/d", "params": {"layout": "sthv1", "size": "tiny", "seed": 0, "version": 1},
        "seed": 0, "num_train": 22, "num_val": 11, "flip_ok": False, "kind": "rawframes",
        "train_list": LISTS["rawframes"]["train"], "val_list": LISTS["rawframes"]["val"],
        "data_prefix": "/d/20bn-something-something-v1", "filename_tmpl": "{:05}.jpg", "start_index": 1,
        "lists": LISTS, "class_names": ["a", "b"], "num_classes": 2, "reversal_pairs": [[0, 1]],
        "reversal_classes": [0, 1], "seconds": 1.5},
    records.ExtractionMarker: {
        "frames": 4, "settings": {"short_side": 256, "height": None, "filename_tmpl": "img_{:05}.jpg",
                                  "source_bytes": 1234}},
    records.AblationSummary: {
        "config": "demo_tin_r18_synthetic", "overrides": {"train.num_threads": 1}, "grads": ["adjoint", "mmcv"],
        "seeds": [0], "runs": [{"grad": "adjoint", "seed": 0, "top1_acc": 96.0}, {"grad": "mmcv", "seed": 0,
                                                                                   "top1_acc": 90.0}],
        "per_grad": {"adjoint": {"top1_acc": {"mean": 96.0, "sd": None, "n": 1}}},
        "comparisons": {}},
}
LOG_V1 = [
    {"env_info": {"versions": ENV["versions"], "device": ENV["device"]}, "seed": 0,
     "config_name": "demo_tin_r18_synthetic", "work_dir": "work_dirs/demo/x", "world_size": 1, "lr_scaling": LR,
     "iters_per_epoch": 4, "resumed_from_epoch": 0, "deterministic": False, "amp": "none", "sync_bn": False,
     "git": ENV["git"], "time": "2026-11-24T04:52:09+00:00"},
    {"mode": "train", "epoch": 1, "iter": 2, "lr": 0.0002, "loss_cls": 2.4, "top1_acc": 0.125, "top5_acc": 0.5,
     "grad_norm": 13.9, "time": 0.54, "data_time": 0.013, "loss": 2.4, "memory": 0},
    {"mode": "train", "epoch": 1, "iter": 4, "lr": 0.0003, "loss_cls": 2.2, "top1_acc": 0.25, "top5_acc": 0.625,
     "time": 0.55, "data_time": 0.012, "loss": 2.2, "memory": 512},
    {"mode": "val", "epoch": 1, "iter": 20, "lr": 0.0003, "top1_acc": 0.25, "top5_acc": 0.65,
     "mean_class_accuracy": 0.25},
]


def test_every_record_type_has_a_version_1_sample():
    assert set(V1_FILES) == set(RECORD_TYPES)


@pytest.mark.parametrize("cls", RECORD_TYPES, ids=lambda c: c.__name__)
def test_version_1_file_reads_and_writes_back_unchanged(tmp_path, cls):
    path = tmp_path / (cls.FILENAME or "record.json")
    path.write_text(json.dumps(V1_FILES[cls], indent=2))
    record = cls.read(path)
    assert record.schema_version == 1 and record.extra == {}
    out = record.write(tmp_path / "again" / path.name)
    on_disk = json.loads(out.read_text())
    assert on_disk.pop("schema") == 1
    assert on_disk == V1_FILES[cls] and list(on_disk) == list(V1_FILES[cls])  # same keys, same order
    # same text: an int where a float is expected (metrics' "top5_acc": 1) stays an int
    assert out.read_text() == json.dumps({"schema": 1, **V1_FILES[cls]}, indent=2) + "\n"
    again = cls.read(out)
    assert again == record


def test_typed_values_of_a_version_1_file(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps(V1_FILES[TrainRecord]))
    train = TrainRecord.read(path)
    assert train.best is not None and (train.best.metric, train.best.epoch) == ("top1_acc", 10)
    assert train.checkpoints.best == "work_dirs/demo/x/best.pth" and train.device_name == "cpu"
    (tmp_path / "metrics.json").write_text(json.dumps(V1_FILES[MetricsRecord]))
    metrics = MetricsRecord.read(tmp_path / "metrics.json")
    assert metrics.percent("top1_acc") == 75.0 and metrics.percent("nothing") is None
    assert metrics.checkpoint.train_meta["epoch"] == 12
    (tmp_path / "latency.json").write_text(json.dumps(V1_FILES[LatencyRecord]))
    latency = LatencyRecord.read(tmp_path / "latency.json")
    tin = latency.models["tin_r18"]
    assert tin.mean_ms("cpu") == 17.68 and tin.mean_ms("cuda") is None and latency.setting.views == 1
    (tmp_path / "reversal.json").write_text(json.dumps(V1_FILES[ReversalRecord]))
    reversal = ReversalRecord.read(tmp_path / "reversal.json")
    assert reversal.per_pair[0].names == ["left to right", "right to left"]


def test_new_record_round_trip_and_schema_first(tmp_path):
    record = ReversalRecord(chance=50.0, n=2, direction_acc=None,
                            per_pair=[records.PairResult(classes=[0, 1], n=2, direction_acc=None)])
    path = record.write(tmp_path / "reversal.json")
    text = json.loads(path.read_text())
    assert next(iter(text)) == "schema" and text["schema"] == 1  # no record's layout has changed yet
    assert text["per_pair"] == [{"classes": [0, 1], "names": None, "n": 2, "direction_acc": None,
                                 "pair_id_acc": None, "top1": None}]
    assert ReversalRecord.read(path) == record


def test_run_state_of_a_stopped_run_keeps_its_status_and_reason(tmp_path):
    # an interrupted run (Ctrl-C) records why; the schema is still version 1: no field was added
    data = dict(V1_FILES[records.RunState], status="interrupted", error="interrupted (KeyboardInterrupt)",
                inner_iter=2)
    path = records.RunState.from_dict(data).write(tmp_path / "run.json")
    state = records.RunState.read(path)
    assert (state.status, state.error, state.inner_iter, state.schema_version) == (
        "interrupted", "interrupted (KeyboardInterrupt)", 2, 1)
    assert {"running", "finished", "failed", "interrupted", "preempted"} == set(records.RunState.STATUSES)
    # a preempted run records where and why it stopped, and who held the work dir
    preempted = dict(V1_FILES[records.RunState], status="preempted", inner_iter=3, iteration=7, signal="SIGTERM",
                     pid=4321, host="node01", heartbeat="2026-01-01T00:00:00+00:00")
    state = records.RunState.read(records.RunState.from_dict(preempted).write(tmp_path / "preempted.json"))
    assert (state.status, state.inner_iter, state.iteration, state.signal, state.pid, state.host) == (
        "preempted", 3, 7, "SIGTERM", 4321, "node01")
    assert state.extra == {} and state.heartbeat == "2026-01-01T00:00:00+00:00"
    # a running record leaves out the fields it does not have
    running = {k: v for k, v in V1_FILES[records.RunState].items() if k != "error"} | {"status": "running"}
    assert "error" not in records.RunState.from_dict(running).to_dict()


def test_a_newer_file_loads_and_keeps_what_it_does_not_know(tmp_path):
    newer = dict(V1_FILES[records.LaunchRecord], schema=7, scheduler="slurm")
    newer["nodes"] = 2
    path = tmp_path / "launch.json"
    path.write_text(json.dumps(newer))
    launch = records.LaunchRecord.read(path)
    assert (launch.schema_version, launch.nodes, launch.extra) == (7, 2, {"scheduler": "slurm"})
    launch.write(path)
    assert json.loads(path.read_text()) == newer
    # unknown keys inside nested records are kept too
    data = json.loads(json.dumps(V1_FILES[MetricsRecord]))
    data["checkpoint"]["signed_by"] = "x"
    assert MetricsRecord.from_dict(data).to_dict()["checkpoint"]["signed_by"] == "x"


def test_truncated_file_names_the_path_and_the_fix(tmp_path):
    path = tmp_path / "run" / "metrics.json"
    path.parent.mkdir()
    path.write_text(json.dumps(V1_FILES[MetricsRecord])[:100])
    with pytest.raises(RecordError) as err:
        MetricsRecord.read(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "not valid JSON" in message and "tinlib test" in message
    assert isinstance(err.value, UserError) and "\n" not in message


def test_garbage_missing_and_wrong_files_name_the_path(tmp_path):
    garbage = tmp_path / "train.json"
    garbage.write_bytes(b"\x00\xff\xfe garbage")
    with pytest.raises(RecordError, match=f"^{garbage}: "):
        TrainRecord.read(garbage)
    with pytest.raises(RecordError, match="no such file"):
        TrainRecord.read(tmp_path / "missing.json")
    assert TrainRecord.read_optional(tmp_path / "missing.json") is None
    not_an_object = tmp_path / "list.json"
    not_an_object.write_text("[1, 2]")
    with pytest.raises(RecordError, match="expected an object"):
        LatencyRecord.read(not_an_object)
    # a train.json read as metrics: the keys a metrics record needs are missing
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(V1_FILES[TrainRecord]))
    with pytest.raises(RecordError, match=f"^{wrong}: .*missing 'metrics', 'metrics_percent'"):
        MetricsRecord.read(wrong)


def test_wrong_types_are_named_by_their_key_path(tmp_path):
    data = json.loads(json.dumps(V1_FILES[LatencyRecord]))
    data["models"]["tin_r18"]["latency"]["cpu"]["mean_ms"] = "fast"
    path = tmp_path / "latency.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match=r"models\.tin_r18\.latency\.cpu\.mean_ms: expected a number, found a string"):
        LatencyRecord.read(path)
    data = dict(V1_FILES[records.LaunchRecord], world_size=True)
    with pytest.raises(RecordError, match="world_size: expected an integer, found a boolean"):
        records.LaunchRecord.from_dict(data)


def test_log_reader_reads_a_version_1_log(tmp_path):
    path = tmp_path / "log.json"
    path.write_text("".join(json.dumps(line) + "\n" for line in LOG_V1))
    log = records.read_log(path)
    assert [type(x) for x in log.lines] == [LogHeader, LogEntry, LogEntry, LogEntry]
    assert log.headers[0].schema_version == 1 and log.iters_per_epoch == 4 and log.skipped == 0
    assert [(e.epoch, e.iter) for e in log.mode("train")] == [(1, 2), (1, 4)]
    assert log.mode("val")[0].mean_class_accuracy == 0.25
    assert log.peak_memory() == max(line.get("memory", 0) for line in LOG_V1[1:])
    # each line writes back as it was (the header gains its schema)
    assert [x.to_dict() for x in log.lines[1:]] == LOG_V1[1:]
    assert log.lines[0].to_dict() == {"schema": 1, **LOG_V1[0]}


def test_log_writer_round_trip_and_a_cut_last_line(tmp_path):
    path = tmp_path / "log.json"
    writer = LogWriter(path)
    writer.write(LogHeader(seed=3, iters_per_epoch=2))
    writer.write(LogEntry(mode="train", epoch=1, iter=2, lr=0.1, loss_cls=1.5, memory=100))
    writer.write({"mode": "val", "epoch": 1, "iter": 8, "top1_acc": 0.5, "custom": 1})  # a dict is checked first
    writer.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[1] == {"mode": "train", "epoch": 1, "iter": 2, "lr": 0.1, "loss_cls": 1.5, "memory": 100}
    assert lines[2] == {"mode": "val", "epoch": 1, "iter": 8, "top1_acc": 0.5, "custom": 1}
    with open(path, "a") as handle:
        handle.write('{"mode": "train", "epo')  # the process was killed mid-write
    log = records.read_log(path)
    assert log.skipped == 1 and len(log.entries) == 2 and log.headers[0].seed == 3
    assert log.entries[1].extra == {"custom": 1}
    with pytest.raises(RecordError, match="missing 'epoch'"):
        LogWriter(None).write({"mode": "train", "iter": 1})


def test_log_reader_names_the_bad_line(tmp_path):
    path = tmp_path / "log.json"
    path.write_text(json.dumps(LOG_V1[1]) + "\n" + json.dumps({"mode": "train", "epoch": "one", "iter": 1}) + "\n")
    with pytest.raises(RecordError, match=f"^{path}:2: .*epoch: expected an integer"):
        records.read_log(path)
    path.write_text("[1]\n" + json.dumps(LOG_V1[1]) + "\n")
    with pytest.raises(RecordError, match=f"^{path}:1: "):
        records.read_log(path)
    with pytest.raises(RecordError, match="no such file"):
        records.read_log(tmp_path / "nothing.json")


# --------------------------------------------------------------------------------------------
# The committed results/ load unchanged
# --------------------------------------------------------------------------------------------
RESULTS = Path(__file__).resolve().parents[1] / "results"


def _committed(name: str) -> list[Path]:
    """The files called ``name`` under results/, as the model-zoo table finds them (not the
    executed notebooks under results/runs)."""
    return sorted(p for p in RESULTS.rglob(name) if p.relative_to(RESULTS).parts[0] != "runs")


COMMITTED = [(cls, path) for cls in RECORD_TYPES for path in _committed(cls.FILENAME)]


def test_the_committed_results_are_found():
    assert {path.name for _, path in COMMITTED} >= {"train.json", "metrics.json", "reversal.json", "launch.json",
                                                    "latency.json", "summary.json"}
    assert _committed("log.json")


@pytest.mark.parametrize("cls, path", COMMITTED, ids=[str(p.relative_to(RESULTS)) for _, p in COMMITTED])
def test_committed_record_loads_and_writes_back_byte_for_byte(tmp_path, cls, path):
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    record = cls.read(path)
    assert record.schema_version == data.get("schema", 1)
    known = {info.alias or name for name, info in type(record).model_fields.items()}
    assert record.extra == {k: v for k, v in data.items() if k not in known}
    for key in ("config_name", "config", "nodes", "chance", "grads", "devices"):
        if key in data:
            assert getattr(record, key) == data[key]
    if "metrics_percent" in data:
        assert record.percent("top1_acc") == data["metrics_percent"]["top1_acc"]
    if "models" in data:
        for arch, entry in data["models"].items():
            assert record.models[arch].mean_ms("cpu") == entry["latency"]["cpu"]["mean_ms"]
    if "per_pair" in data:
        assert [p.classes for p in record.per_pair] == [p["classes"] for p in data["per_pair"]]
    # written back, the file is the same text: no key lost, added or moved, no int turned into a float
    assert record.write(tmp_path / path.name).read_text(encoding="utf-8") == text


@pytest.mark.parametrize("path", _committed("log.json"), ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_training_log_loads_line_for_line(path):
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    log = records.read_log(path)
    assert log.skipped == 0 and len(log.lines) == len(lines)
    assert [type(x) for x in log.lines] == [LogEntry if "mode" in line else LogHeader for line in lines]
    assert [x.to_dict() for x in log.lines] == lines
    train = [line for line in lines if line.get("mode") == "train"]
    assert [(e.epoch, e.iter) for e in log.mode("train")] == [(line["epoch"], line["iter"]) for line in train]
