"""Every notebook runs headless under papermill with smoke parameters (tiny synthetic data, one
short epoch, 32-pixel frames), through the same pipeline ``make demo`` uses. The defaults of the
parameters cells (what a user gets in JupyterLab) are checked without running them."""
import ast
import json
from pathlib import Path

import nbformat
import pytest

from tinlib.pipeline import recipes
from tinlib.pipeline.steps import build_report, freshness, run_steps
from tinlib.report import zoo

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def parameters_of(path: Path) -> dict:
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values: dict = {}
    exec(compile(ast.parse(cell.source), str(path), "exec"), {}, values)
    return values


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameter_defaults_are_usable_by_hand(path):
    from tinlib.engine.config import load_config

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
    return dict(results=results, work=work, data=data, steps=steps, run_dir=run_dir, done=done, report=report)


@pytest.mark.slow
def test_every_notebook_runs_under_papermill(demo_run):
    executed = {p.stem for p in demo_run["run_dir"].glob("*.ipynb")}
    used = {s.notebook for s in demo_run["steps"]}
    assert used | {"06_gradient_ablation"} == {p.stem for p in NOTEBOOKS}  # 06: test_gradient_ablation_notebook
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
                                                   "interlace_weights_by_class.png", "interlace_distribution.png"}
    text = (results / "model_zoo.md").read_text()
    assert "## Synthetic demo" in text and "| demo_tin_r18_synthetic |" in text
    assert "tin_r50_1x1x8_40e_sthv1_rgb (not run)" in text
    html = demo_run["report"].read_text()
    assert "Results at a glance" in html and "What the interlace learned" in html
    assert "<img" in html or "image/png" in html


@pytest.mark.slow
def test_a_second_run_skips_what_is_up_to_date(demo_run):
    done = run_steps(demo_run["steps"], demo_run["run_dir"], cwd=ROOT)
    skipped = {d["step"] for d in done if d["skipped"]}
    assert skipped == {s.name for s in demo_run["steps"] if not s.always}
    # touching a config reruns its training (and nothing upstream of it)
    cfg = recipes.config_file("demo_tsn_r18_synthetic")
    step = next(s for s in demo_run["steps"] if s.name == "01_train_demo_tsn_r18_synthetic")
    assert cfg in step.inputs
    fresh, why = freshness(step)
    assert fresh, why


@pytest.mark.slow
def test_evaluation_numbers_are_consistent(demo_run):
    runs = zoo.collect_runs(demo_run["results"])
    tin = runs["demo_tin_r18_synthetic"]
    assert 0 <= tin.metric("top1_acc") <= 100 and tin.reversal["chance"] == 50.0
    assert tin.reversal["n"] == 8  # tiny preset: one val video per class, 4 pairs
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
    summary = json.loads((results / "ablation_interlace_grad" / "summary.json").read_text())
    assert [(r["grad"], r["seed"]) for r in summary["runs"]] == [("adjoint", 0), ("mmcv", 0), ("adjoint", 1), ("mmcv", 1)]
    for run in summary["runs"]:
        folder = results / "ablation_interlace_grad" / f"{run['grad']}_seed{run['seed']}"
        train = json.loads((folder / "train.json").read_text())
        assert train["config"]["model"]["interlace_grad"] == run["grad"] and train["seed"] == run["seed"]
        assert (folder / "reversal.json").is_file() and 0 <= run["top1_acc"] <= 100
    assert set(summary["comparisons"]) >= {"top1_acc", "direction_acc"}
    assert "What the data shows" in (results / "ablation_interlace_grad" / "summary.md").read_text()
    assert (run_dir / "figures" / "gradient_ablation_curves.png").is_file()
