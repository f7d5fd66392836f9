"""Every notebook runs headless under papermill with smoke parameters (tiny synthetic data, one
short epoch, 32-pixel frames), through the same pipeline ``make demo`` uses; the numbers the runs
record and the tables the executed notebooks show are checked against top-1 and direction accuracy
recomputed here from the stored scores. The defaults of the parameters cells (what a user gets in
JupyterLab) are checked without running them."""
import ast
import json
import os
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from bs4 import BeautifulSoup

from tinlib.pipeline import recipes
from tinlib.pipeline.steps import build_report, run_steps
from tinlib.report import zoo

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def parameters_of(path: Path) -> dict:
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values: dict = {}
    for node in ast.parse(cell.source).body:  # parameters are plain assignments of literals
        assert isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name), ast.unparse(node)
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameter_defaults_are_usable_by_hand(path):
    from tinlib.config import load_config

    values = parameters_of(path)
    if "config" in values:
        load_config(values["config"])  # names an existing, valid config
    for name in values.get("compare", []):
        load_config(name)
    if "overrides" in values:
        assert isinstance(values["overrides"], dict)
    if "data_root" in values and values.get("dataset", "synthetic") == "synthetic":
        assert values["data_root"] == recipes.DEMO_DATA_ROOT  # the demo writes its data there
    assert values.get("results_dir", "results") == "results"
    if "synthetic" in values:
        assert values["synthetic"] == recipes.DEMO_DATA  # by hand: the same data as make demo


def _errors(nb_path: Path) -> list[str]:
    nb = nbformat.read(str(nb_path), as_version=4)
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


def _cell_tables(nb_path: Path, marker: str) -> list[list[dict[str, str]]]:
    """The HTML tables (pandas frames) shown by the first code cell whose source contains
    ``marker``: one list of rows per table, each row ``{column: text}`` plus ``"index"``."""
    nb = nbformat.read(str(nb_path), as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and marker in c.source)
    shown = []
    for output in cell.get("outputs", []):
        html = output.get("data", {}).get("text/html")
        if not html:
            continue
        table = BeautifulSoup(html, "html.parser").find("table")
        columns = [th.get_text() for th in table.find("thead").find("tr").find_all("th")]
        rows = []
        for tr in table.find("tbody").find_all("tr"):
            values = [td.get_text() for td in tr.find_all("td")]
            row = dict(zip(columns[len(columns) - len(values):], values))
            row["index"] = " ".join(th.get_text() for th in tr.find_all("th"))
            rows.append(row)
        shown.append(rows)
    return shown


def _text_outputs(nb_path: Path) -> str:
    nb = nbformat.read(str(nb_path), as_version=4)
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts += [output.get("data", {}).get(kind, "") for kind in ("text/plain", "text/markdown", "text/html")]
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


def _scores(run_folder: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(run_folder / "scores.npz") as data:
        return data["scores"], data["labels"]


def _top_k_percent(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share (%) of videos whose label is among their k highest scores."""
    best = np.argsort(-scores, axis=1)[:, :k]
    return 100.0 * float(np.mean([label in row for label, row in zip(labels, best)]))


def _direction_percent(scores: np.ndarray, labels: np.ndarray, pairs: list[list[int]]) -> float:
    """Share (%) of the videos of a reversal pair whose own class outscores its reversed twin."""
    twin = {a: b for a, b in pairs} | {b: a for a, b in pairs}
    hits = [scores[i, label] > scores[i, twin[label]] for i, label in enumerate(labels) if label in twin]
    return 100.0 * float(np.mean(hits))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo pipeline in the smoke profile with TIN and TSN (TSM runs the same notebook)."""
    base = tmp_path_factory.mktemp("demo")
    results, work, data = base / "results", base / "work", base / "data" / "sthv1"
    steps = recipes.demo_steps(notebooks_dir=NOTEBOOK_DIR, results=results, work_root=work, data_root=str(data),
                               profile="smoke", configs=("demo_tin_r18_synthetic", "demo_tsn_r18_synthetic"))
    run_dir = results / "runs" / "demo"
    done = run_steps(steps, run_dir, cwd=ROOT)
    report = build_report(results, "demo", steps)
    return {"results": results, "work": work, "data": data, "steps": steps, "run_dir": run_dir, "done": done,
            "report": report}


@pytest.mark.slow
def test_every_notebook_runs_under_papermill(demo_run):
    executed = {p.stem for p in demo_run["run_dir"].glob("*.ipynb")}
    used = {s.notebook for s in demo_run["steps"]}
    # 06: test_gradient_ablation_notebook
    assert used | {"06_gradient_ablation"} == {p.stem for p in NOTEBOOKS}
    assert executed == {s.name for s in demo_run["steps"]}
    for name in executed:
        assert _errors(demo_run["run_dir"] / f"{name}.ipynb") == [], name
    assert not any(d["skipped"] for d in demo_run["done"])


@pytest.mark.slow
def test_demo_outputs(demo_run):
    results = demo_run["results"]
    for cfg in ("demo_tin_r18_synthetic", "demo_tsn_r18_synthetic"):
        for name in ("train.json", "log.json", "launch.json", "metrics.json", "scores.npz", "reversal.json"):
            assert (results / cfg / name).is_file(), (cfg, name)
        assert (demo_run["work"] / cfg / "latest.pth").is_file()
    latency = json.loads((results / "demo_tin_r18_synthetic" / "latency.json").read_text())
    assert set(latency["models"]) == {"tin_r18", "tsm_r18", "tsn_r18"}
    figures = results / "runs" / "demo" / "figures"
    assert {p.name for p in figures.iterdir()} >= {"interlace_by_class.png", "interlace_one_video.jpg",
                                                   "interlace_weights_by_class.png", "interlace_distribution.png",
                                                   "predict_topk.png"}
    text = (results / "model_zoo.md").read_text()
    assert "## Synthetic demo" in text and "| demo_tin_r18_synthetic |" in text
    demo_row = next(ln for ln in text.splitlines() if ln.startswith("| demo_tin_r18_synthetic |"))
    assert "| test | sthv1_test_list_rawframes.txt (11 videos) |" in demo_row  # the split the row reports
    assert "tin_r50_1x1x8_40e_sthv1_rgb (not run)" in text
    # the prediction on a test video never enters the table: the demo rows are the two trained models
    assert [ln.split(" | ")[0] for ln in text.splitlines() if ln.startswith("| demo_")] == [
        "| demo_tin_r18_synthetic", "| demo_tsn_r18_synthetic"]
    html = demo_run["report"].read_text()
    assert "Results at a glance" in html and "What the interlace learned" in html
    assert "Prediction on one test video" in html
    assert "<img" in html or "image/png" in html


@pytest.mark.slow
def test_executed_notebooks_show_the_results(demo_run):
    run_dir, results, data = demo_run["run_dir"], demo_run["results"], demo_run["data"]
    meta = json.loads((data / "synthetic_meta.json").read_text())
    names, pairs = meta["class_names"], meta["reversal_pairs"]

    # 00: videos per class add up to the lists that were written
    counts = _cell_tables(run_dir / "00_prepare_data.ipynb", "tables.class_counts")[0]
    for split in ("train", "val"):
        lines = (data / f"sthv1_{split}_list_rawframes.txt").read_text().splitlines()
        assert sum(int(row[split]) for row in counts) == len(lines) == meta[f"num_{split}"]
    assert len(counts) == len(names)  # the tiny preset: every class has videos, fewer than the 20 shown

    # 01: the training table shows the smoke profile's schedule: 1 epoch of 2 iterations
    for name in ("demo_tin_r18_synthetic", "demo_tsn_r18_synthetic"):
        shown = _cell_tables(run_dir / f"01_train_{name}.ipynb", "tables.train_summary")[0]
        rows = {row["index"]: row[name] for row in shown}
        seed = json.loads((results / name / "train.json").read_text())["seed"]
        assert (rows["epochs"], rows["iters_per_epoch"], rows["seed"]) == ("1", "2", str(seed))

    # 02: the tables show the numbers recomputed from the stored scores
    shown = _cell_tables(run_dir / "02_evaluate.ipynb", "tables.metrics_table")[0]
    assert [row["config"] for row in shown] == ["demo_tin_r18_synthetic", "demo_tsn_r18_synthetic"]
    comparison, per_pair = _cell_tables(run_dir / "02_evaluate.ipynb", "tables.reversal_table")
    for row, reversal in zip(shown, comparison):
        scores, labels = _scores(results / row["config"])
        assert int(row["videos"]) == len(labels)
        assert float(row["top1_acc"]) == pytest.approx(_top_k_percent(scores, labels, 1), abs=0.006)
        assert reversal["model"] == row["config"]
        assert float(reversal["direction_acc"]) == pytest.approx(_direction_percent(scores, labels, pairs), abs=0.006)
    assert len(per_pair) == len(pairs)

    # 05: mean offsets for every class, every stage of the ResNet-18 and both groups; one row per pair
    offsets, differences = _cell_tables(run_dir / "05_explore_interlace.ipynb", "tables.offsets_by_class")
    assert [row["index"] for row in offsets] == names
    assert [c for c in offsets[0] if c != "index"] == [f"layer{s} o{g}" for s in (1, 2, 3, 4) for g in (0, 1)]
    assert [row["index"] for row in differences] == [f"{names[a]} - reversed" for a, _ in pairs]

    # 03 and 04: the three architectures side by side; the zoo table as markdown
    latency = _text_outputs(run_dir / "03_latency.ipynb")
    assert all(arch in latency for arch in ("tin_r18", "tsm_r18", "tsn_r18"))
    assert "| demo_tin_r18_synthetic |" in _text_outputs(run_dir / "04_model_zoo.ipynb")

    # 07: the first video of the test list, its true class (from the list's first line) and the top-k
    folder, _, label = (data / "sthv1_test_list_rawframes.txt").read_text().splitlines()[0].split()
    shown = _text_outputs(run_dir / "07_predict.ipynb")
    assert f"/{folder}**" in shown and f"true class: **{names[int(label)]}**" in shown


def _ran(done: list[dict]) -> set[str]:
    return {d["step"] for d in done if not d["skipped"]}


def _newer_than_every_output(steps) -> float:
    return max(p.stat().st_mtime for s in steps for p in s.outputs if p.exists()) + 1


@pytest.mark.slow
def test_a_second_run_skips_what_is_up_to_date(demo_run):
    steps, run_dir = demo_run["steps"], demo_run["run_dir"]
    done = run_steps(steps, run_dir, cwd=ROOT)
    assert _ran(done) == {s.name for s in steps if s.always} == {"04_model_zoo"}

    # a touched config reruns its training (the zoo always runs) and nothing else: the rerun resumes
    # the finished run from its checkpoint, so the checkpoint the evaluation reads stays as it was
    config = recipes.config_file("demo_tsn_r18_synthetic")
    assert config.is_file()
    before = config.stat()
    try:
        stamp = _newer_than_every_output(steps)
        os.utime(config, (stamp, stamp))
        done = run_steps(steps, run_dir, cwd=ROOT)
    finally:
        os.utime(config, ns=(before.st_atime_ns, before.st_mtime_ns))  # a file of the repository
    assert _ran(done) == {"01_train_demo_tsn_r18_synthetic", "04_model_zoo"}

    # a newer TIN checkpoint reruns the steps that read it: evaluation, the interlace and the prediction
    checkpoint = demo_run["work"] / "demo_tin_r18_synthetic" / "latest.pth"
    stamp = _newer_than_every_output(steps)
    os.utime(checkpoint, (stamp, stamp))
    started = time.time()
    done = run_steps(steps, run_dir, cwd=ROOT)
    assert _ran(done) == {"02_evaluate", "05_explore_interlace", "07_predict", "04_model_zoo"}
    assert (demo_run["results"] / "demo_tin_r18_synthetic" / "metrics.json").stat().st_mtime >= started


@pytest.mark.slow
def test_evaluation_numbers_are_consistent(demo_run):
    results = demo_run["results"]
    meta = json.loads((demo_run["data"] / "synthetic_meta.json").read_text())
    runs = zoo.collect_runs(results)
    for name in ("demo_tin_r18_synthetic", "demo_tsn_r18_synthetic"):
        scores, labels = _scores(results / name)
        metrics = json.loads((results / name / "metrics.json").read_text())
        assert metrics["num_samples"] == len(labels) == meta["num_test"]  # the held-out test split
        shown = metrics["metrics_percent"]
        assert shown["top1_acc"] == pytest.approx(_top_k_percent(scores, labels, 1), abs=0.005)
        assert shown["top5_acc"] == pytest.approx(_top_k_percent(scores, labels, 5), abs=0.005)
        assert runs[name].metric("top1_acc") == shown["top1_acc"]  # the zoo reads the record as it is
        reversal = json.loads((results / name / "reversal.json").read_text())
        assert reversal["direction_acc"] == pytest.approx(
            _direction_percent(scores, labels, meta["reversal_pairs"]), abs=0.005)
        assert reversal["n"] == 8 and reversal["chance"] == 50.0  # tiny preset: one test video per class, 4 pairs
    checks = zoo.demo_checks(zoo.demo_runs(runs))
    assert [c["met"] is None for c in checks] == [False, False]


@pytest.mark.slow
def test_gradient_ablation_notebook(demo_run):
    """make ablation's pipeline in the smoke profile on the demo's data: both gradients, two seeds."""
    results, data = demo_run["results"], demo_run["data"]
    steps = recipes.ablation_steps(notebooks_dir=NOTEBOOK_DIR, results=results, data_root=str(data),
                                   work_root=demo_run["work"] / "ablation", profile="smoke", seeds=(0, 1))
    run_dir = results / "runs" / "ablation"
    done = run_steps(steps, run_dir, cwd=ROOT)
    assert [d["skipped"] for d in done] == [True, False]  # the demo already wrote the data; 06 always runs
    assert _errors(run_dir / "06_gradient_ablation.ipynb") == []
    assert len(_cell_tables(run_dir / "06_gradient_ablation.ipynb", "tables.ablation_runs")[0]) == 4
    summary = json.loads((results / "ablation_interlace_grad" / "summary.json").read_text())
    expected = [("adjoint", 0), ("mmcv", 0), ("adjoint", 1), ("mmcv", 1)]
    assert [(r["grad"], r["seed"]) for r in summary["runs"]] == expected
    for run in summary["runs"]:
        folder = results / "ablation_interlace_grad" / f"{run['grad']}_seed{run['seed']}"
        train = json.loads((folder / "train.json").read_text())
        assert train["config"]["model"]["interlace_grad"] == run["grad"] and train["seed"] == run["seed"]
        assert (folder / "reversal.json").is_file()
        scores, labels = _scores(folder)
        assert run["top1_acc"] == pytest.approx(_top_k_percent(scores, labels, 1), abs=0.005)
    for grad in ("adjoint", "mmcv"):
        folder = results / "ablation_interlace_grad"
        mine = [_top_k_percent(*_scores(folder / f"{grad}_seed{seed}"), 1) for seed in (0, 1)]
        assert summary["per_grad"][grad]["top1_acc"]["mean"] == pytest.approx(sum(mine) / 2, abs=0.005)
    assert set(summary["comparisons"]) >= {"top1_acc", "direction_acc"}
    assert "What the data shows" in (results / "ablation_interlace_grad" / "summary.md").read_text()
    assert (run_dir / "figures" / "gradient_ablation_curves.png").is_file()
