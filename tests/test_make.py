"""The make targets end to end: ``make reproduce-sthv1`` on a small synthetic data root in the
Something-Something V1 release layout with the smoke profile, its zoo row in the regenerated
table; the fast refusals without data; a failing notebook failing make."""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
ROW = "tin_r50_1x1x8_40e_sthv1_rgb"
# a refusal without data runs only the data check (no install, no step): it ends well within this,
# even on a loaded machine; subprocess.run raises TimeoutExpired past it
QUICK_S = 60


def make(*args, timeout=900, env=None):
    full_env = dict(os.environ, **(env or {}))
    full_env.pop("MAKEFLAGS", None)
    full_env.pop("DATA_ROOT", None)
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def test_reproduce_without_data_root_stops_before_anything_starts():
    # the data check comes first: nothing is installed, no step runs (either would print to stdout)
    proc = make("reproduce-sthv1", timeout=QUICK_S)
    assert proc.returncode != 0
    assert "DATA_ROOT is not set" in proc.stderr and "cat 20bn-something-something-v1-??" in proc.stderr
    assert proc.stdout == ""


def test_reproduce_with_a_missing_data_root_says_where(tmp_path):
    proc = make("reproduce-k400", f"DATA_ROOT={tmp_path / 'k400'}", timeout=QUICK_S)
    assert proc.returncode != 0 and proc.stdout == ""
    assert f"DATA_ROOT={tmp_path / 'k400'} does not exist" in proc.stderr and "videos_train" in proc.stderr
    (tmp_path / "sthv2").mkdir()
    proc = make("reproduce-all", f"DATA_ROOT={tmp_path}", timeout=QUICK_S)
    assert proc.returncode != 0 and proc.stdout == "" and "does not hold the sthv2 release" not in proc.stderr
    assert "sthv1" in proc.stderr


def test_evaluate_published_checks_only_the_val_split(tmp_path):
    """Scoring a published checkpoint reads the val split only: an incomplete Kinetics-400 root is
    reported with its val files, never with the 240k training clips (videos_train)."""
    root = tmp_path / "k400"
    root.mkdir()
    proc = make("evaluate-published-k400", f"DATA_ROOT={root}")
    assert proc.returncode != 0
    assert f"missing: {root / 'videos_val'}" in proc.stderr
    assert f"missing: {root / 'videos_train'}" not in proc.stderr
    proc = make("reproduce-k400", f"DATA_ROOT={root}")
    assert proc.returncode != 0 and f"missing: {root / 'videos_train'}" in proc.stderr


def test_make_lab_runs_jupyterlab_of_the_chosen_interpreter():
    # with PY=... (an existing environment) there is no .venv/bin/jupyter to run
    proc = make("-n", "lab", f"PY={sys.executable}")
    assert proc.returncode == 0, proc.stderr
    assert f"{sys.executable} -m jupyterlab --ServerApp.root_dir={ROOT}" in proc.stdout
    assert ".venv/bin/jupyter" not in proc.stdout


def test_make_help_lists_the_targets():
    proc = make("help")
    assert proc.returncode == 0, proc.stderr
    for target in ("demo", "ablation", "reproduce-sthv1", "reproduce-all", "latency", "report", "zoo"):
        assert any(line.split()[:1] == [target] for line in proc.stdout.splitlines()), target


def test_data_check_needs_neither_torch_nor_numpy(tmp_path):
    """make runs the data check with the system Python before anything is installed."""
    code = ("import sys\n"
            "from tinlib.pipeline.cli import main\n"
            f"code = main(['check-data', 'sthv2', '--data-root', {str(tmp_path)!r}])\n"
            "heavy = sorted(m for m in ('numpy', 'torch', 'cv2', 'pandas', 'papermill') if m in sys.modules)\n"
            "print(code, heavy)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdout.strip() == "2 []", proc.stdout + proc.stderr
    assert f"DATA_ROOT={tmp_path} does not hold the sthv2 release" in proc.stderr
    assert f"missing: {tmp_path / 'something-something-v2-labels.json'}" in proc.stderr
    assert "cat 20bn-something-something-v2-?? | tar zx" in proc.stderr


def test_make_zoo_rewrites_the_table_from_results(tmp_path):
    proc = make("zoo", f"RESULTS={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert f"| {ROW} (not run) |" in (tmp_path / "model_zoo.md").read_text()


@pytest.mark.slow
def test_failing_notebook_fails_make_and_keeps_the_traceback(tmp_path):
    proc = make("latency", "CONFIG=no_such_config", f"RESULTS={tmp_path}", f"WORK={tmp_path / 'w'}")
    assert proc.returncode != 0
    executed = tmp_path / "runs" / "latency" / "03_latency_no_such_config.ipynb"
    assert executed.is_file()
    assert f"executed notebook with the traceback: {executed}" in proc.stderr.replace(str(ROOT) + "/", "")
    nb = nbformat.read(str(executed), as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors and errors[0].ename == "ConfigError" and "no_such_config" in errors[0].evalue
    assert (tmp_path / "reports" / "latency.html").is_file()


@pytest.fixture(scope="module")
def sthv1_root(tmp_path_factory):
    """A small synthetic dataset in the SthV1 release layout: CSVs + JPEG folders (no lists)."""
    from tinlib.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("sthv1")
    write_synthetic(root, "sthv1", size="tiny", height=40, workers=1)
    for name in ("sthv1_train_list_rawframes.txt", "sthv1_val_list_rawframes.txt", "synthetic_meta.json"):
        (root / name).unlink()  # leave only what the official release has
    return root


@pytest.mark.slow
def test_make_reproduce_sthv1_end_to_end(sthv1_root, tmp_path):
    results, work = tmp_path / "results", tmp_path / "work"
    args = ("reproduce-sthv1", f"DATA_ROOT={sthv1_root}", "PROFILE=smoke", "GPUS=1", f"RESULTS={results}",
            f"WORK={work}")
    proc = make(*args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for step in ("00_prepare_data", "01_train", "02_evaluate", "03_latency", "04_model_zoo"):
        assert (results / "runs" / "sthv1" / f"{step}.ipynb").is_file(), step
    assert (sthv1_root / "sthv1_train_list_rawframes.txt").is_file()
    assert (work / ROW / "latest.pth").is_file()
    metrics = json.loads((results / ROW / "metrics.json").read_text())
    assert metrics["config_name"] == ROW and metrics["num_classes"] == 11
    text = (results / "model_zoo.md").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {ROW}"))
    assert "(not run)" not in line and f"{metrics['metrics_percent']['top1_acc']:.2f} / 44.25" in line
    assert "[^1]" in line and "train.epochs=1" in text  # the smoke settings are footnoted
    assert "| tin_r50_1x1x8_40e_sthv2_rgb (not run) |" in text
    assert (results / "reports" / "sthv1.html").is_file()

    # again: every step but the zoo is up to date and skipped
    again = make(*args, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("up to date, skipped") == 4
