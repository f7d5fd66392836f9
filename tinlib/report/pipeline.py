"""The make targets' engine: notebook steps run with papermill, skipped when up to date.

A :class:`Step` is one papermill run of a notebook in ``notebooks/`` with parameters; it declares
the files it reads (``inputs``) and the files it writes (``outputs``). A step is skipped when all
its outputs exist and are newer than every input, like a make rule. The executed notebook goes
to ``<results>/runs/<run>/<step>.ipynb`` (with the traceback when it fails: papermill saves the
notebook as it goes), and the HTML report of a run to ``<results>/reports/<run>.html``.

``python -m tinlib.report.pipeline demo|reproduce|latency|report|check-data ...`` (see ``--help``);
the Makefile calls these.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
CONFIG_DIR = ROOT / "tinlib" / "configs"
KERNEL = "tin-kit"


class StepFailed(RuntimeError):
    pass


class DataMissing(RuntimeError):
    pass


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------
@dataclass
class Step:
    name: str                                  # executed notebook file stem
    notebook: str                              # notebooks/<notebook>.ipynb
    parameters: dict[str, Any]
    inputs: list[Path] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    always: bool = False                       # cheap summary steps: rerun every time
    title: str = ""
    group: str | None = None                   # consecutive steps of one group run side by side

    @property
    def source(self) -> Path:
        return NOTEBOOK_DIR / f"{self.notebook}.ipynb"


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def freshness(step: Step) -> tuple[bool, str]:
    """``(up_to_date, why)``: all outputs exist and none is older than any input."""
    if step.always:
        return False, "always runs"
    if not step.outputs:
        return False, "declares no outputs"
    missing = [p for p in step.outputs if _mtime(p) is None]
    if missing:
        return False, f"{_show(missing[0])} does not exist"
    oldest_out = min(_mtime(p) for p in step.outputs)
    inputs = [step.source] + list(step.inputs)
    newer = [p for p in inputs if (_mtime(p) or 0) > oldest_out]
    if newer:
        return False, f"{_show(newer[0])} is newer than its outputs"
    return True, "outputs are newer than the inputs"


def _show(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def kernel_name() -> str:
    """The project kernel when registered (``make setup``), else this interpreter's ``python3``."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        specs = KernelSpecManager().find_kernel_specs()
    except Exception:  # pragma: no cover - jupyter_client always comes with papermill
        specs = {}
    return KERNEL if KERNEL in specs else "python3"


def execute_notebook(source: Path, output: Path, parameters: dict[str, Any], *, cwd: Path | None = None,
                     log_output: bool = False) -> None:
    """papermill ``source`` -> ``output`` with ``parameters``; raises :class:`StepFailed` naming the
    executed notebook (which holds the traceback) when a cell fails."""
    import papermill as pm

    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(str(source), str(output), parameters=parameters, kernel_name=kernel_name(),
                            cwd=str(cwd or Path.cwd()), progress_bar=False, log_output=log_output,
                            request_save_on_cell_execute=True,
                            # keep the kernel's start-up warnings out of the make output
                            extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    except pm.PapermillExecutionError as err:
        raise StepFailed(f"{source.name} failed in cell {err.exec_count}: {err.ename}: {err.evalue}\n"
                         f"  the executed notebook with the traceback: {_show(output)}") from None


_PRINT_LOCK = threading.Lock()


def _say(line: str) -> None:
    """One whole line at a time (steps of a group report from several threads)."""
    with _PRINT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _run_one(step: Step, label: str, run_dir: Path, force: bool, log_output: bool, cwd: Path | None) -> dict:
    fresh, why = freshness(step)
    if fresh and not force:
        _say(f"{label}: up to date, skipped ({why})")
        return dict(step=step.name, skipped=True, seconds=0.0)
    _say(f"{label}: running notebooks/{step.notebook}.ipynb ({why})")
    t0 = time.time()
    execute_notebook(step.source, run_dir / f"{step.name}.ipynb", step.parameters, cwd=cwd, log_output=log_output)
    missing = [p for p in step.outputs if not p.exists()]
    if missing:
        raise StepFailed(f"{step.name}: the notebook ran but did not write {', '.join(map(_show, missing))}")
    seconds = time.time() - t0
    _say(f"{label}: done in {seconds:.0f} s -> {_show(run_dir / (step.name + '.ipynb'))}")
    return dict(step=step.name, skipped=False, seconds=round(seconds, 1))


def run_steps(steps: Sequence[Step], run_dir: Path, *, force: bool = False, log_output: bool = False,
              cwd: Path | None = None) -> list[dict[str, Any]]:
    """Run the steps in order (skipping fresh ones unless ``force``); consecutive steps of one
    ``group`` run side by side. Stops at the first failure (after the rest of its group)."""
    from concurrent.futures import ThreadPoolExecutor

    done: list[dict[str, Any]] = []
    i = 0
    while i < len(steps):
        batch = [steps[i]]
        while steps[i].group and i + len(batch) < len(steps) and steps[i + len(batch)].group == steps[i].group:
            batch.append(steps[i + len(batch)])
        labels = [f"[{i + k + 1}/{len(steps)}] {s.name}" for k, s in enumerate(batch)]
        if len(batch) == 1:
            done.append(_run_one(batch[0], labels[0], run_dir, force, log_output, cwd))
        else:
            with ThreadPoolExecutor(max_workers=len(batch)) as pool:
                futures = [pool.submit(_run_one, s, lab, run_dir, force, log_output, cwd) for s, lab in zip(batch, labels)]
            errors = []
            for future in futures:
                try:
                    done.append(future.result())
                except StepFailed as err:
                    errors.append(str(err))
            if errors:
                raise StepFailed("\n".join(errors))
        i += len(batch)
    return done


# --------------------------------------------------------------------------------------------
# Profiles: settings applied on top of a config for a whole pipeline
# --------------------------------------------------------------------------------------------
# smoke: the make/notebook tests on tiny synthetic data (seconds per step, numbers meaningless)
SMOKE_OVERRIDES = {"model.pretrained": None, "data.input_size": 32, "data.scale_size": 36,
                   "data.videos_per_gpu": 2, "data.val_videos_per_gpu": 4, "data.test_videos_per_gpu": 4,
                   "data.workers_per_gpu": 0, "train.epochs": 1, "train.max_iters_per_epoch": 2,
                   "train.val_interval": 0, "train.log_interval": 1, "schedule.warmup": None,
                   "train.num_threads": 2}
PROFILES: dict[str, dict[str, Any]] = {"full": {}, "smoke": SMOKE_OVERRIDES}
LATENCY_ITERS = {"full": None, "smoke": 2}

# The demo: synthetic data written here, three models trained with one recipe.
DEMO_DATA_ROOT = "data/synthetic/sthv1"
DEMO_CONFIGS = ("demo_tin_r18_synthetic", "demo_tsm_r18_synthetic", "demo_tsn_r18_synthetic")
DEMO_DATA = dict(layout="sthv1", size="demo", height=40, num_train=None, num_val=None)
DEMO_SMOKE_DATA = dict(layout="sthv1", size="tiny", height=48, num_train=None, num_val=None)

ZOO_CONFIGS = {"sthv1": "tin_r50_1x1x8_40e_sthv1_rgb", "sthv2": "tin_r50_1x1x8_40e_sthv2_rgb",
               "k400": "tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb"}
LIST_NAMES = {"sthv1": ("sthv1_train_list_rawframes.txt", "sthv1_val_list_rawframes.txt"),
              "sthv2": ("sthv2_train_list_rawframes.txt", "sthv2_val_list_rawframes.txt"),
              "k400": ("kinetics400_train_list_rawframes.txt", "kinetics400_val_list_rawframes.txt")}


def config_file(name: str) -> Path:
    path = CONFIG_DIR / f"{name}.py"
    return path if path.is_file() else Path(name)


def _common(config: str, data_root: str, results: Path | None, work_dir: Path, overrides: dict) -> dict[str, Any]:
    out = dict(config=config, data_root=str(data_root), work_dir=str(work_dir), overrides=dict(overrides))
    if results is not None:
        out["results_dir"] = str(results)
    return out


def _synthetic_overrides(profile: str) -> dict[str, Any]:
    """The profile's overrides for the demo configs (which never load pretrained weights)."""
    overrides = dict(PROFILES[profile])
    overrides.pop("model.pretrained", None)
    return overrides


def _synthetic_data_step(data_root: str, profile: str) -> tuple[Step, list[Path]]:
    """The step that writes the demo's synthetic data (tiny in the smoke profile), and its lists."""
    root = Path(data_root)
    lists = [root / "sthv1_train_list_rawframes.txt", root / "sthv1_val_list_rawframes.txt"]
    data = DEMO_SMOKE_DATA if profile == "smoke" else DEMO_DATA
    step = Step("00_prepare_data", "00_prepare_data", dict(dataset="synthetic", data_root=str(root), synthetic=data),
                inputs=[], outputs=[root / "synthetic_meta.json"] + lists, title="Data: the synthetic dataset")
    return step, lists


def demo_steps(*, results: Path, work_root: Path, data_root: str = DEMO_DATA_ROOT, profile: str = "full",
               configs: Sequence[str] = DEMO_CONFIGS) -> list[Step]:
    """synthetic data -> train TIN/TSM/TSN -> evaluate -> latency -> interlace -> zoo."""
    smoke = profile == "smoke"
    overrides = _synthetic_overrides(profile)
    prepare, lists = _synthetic_data_step(data_root, profile)
    steps = [prepare]
    ckpts = {}
    # the models train side by side, one thread each: on a small CPU that beats training them one
    # after the other with all threads (small convolutions scale poorly across threads)
    train_overrides = dict(overrides, **{"train.num_threads": 1})
    for cfg in configs:
        wd = work_root / cfg
        ckpts[cfg] = wd / "latest.pth"
        steps.append(Step(f"01_train_{cfg}", "01_train", dict(_common(cfg, data_root, results, wd, train_overrides),
                                                               gpus=1, nodes=1, progress=False),
                          inputs=[config_file(cfg)] + lists, outputs=[results / cfg / "train.json", ckpts[cfg]],
                          title=f"Training {cfg}", group="train"))
    main, others = configs[0], list(configs[1:])
    steps.append(Step("02_evaluate", "02_evaluate", dict(_common(main, data_root, results, work_root / main, overrides),
                                                         compare=others, checkpoint="latest"),
                      inputs=list(ckpts.values()), outputs=[results / c / "metrics.json" for c in configs],
                      title="Evaluation on the test split"))
    steps.append(Step("03_latency", "03_latency", dict(config=main, overrides=overrides, results_dir=str(results),
                                                       archs=None, iters=LATENCY_ITERS[profile] or 20,
                                                       devices=["cpu"]),
                      inputs=[config_file(main)], outputs=[results / main / "latency.json"],
                      title="Latency, FLOPs, parameters"))
    steps.append(Step("05_explore_interlace", "05_explore_interlace",
                      dict(_common(main, data_root, None, work_root / main, overrides), per_class=2 if smoke else 8,
                           figures_dir=str(results / "runs" / "demo" / "figures")),
                      inputs=[ckpts[main]], outputs=[results / "runs" / "demo" / "figures" / "interlace_by_class.png"],
                      title="What the interlace learned"))
    steps.append(Step("04_model_zoo", "04_model_zoo", dict(results_dir=str(results)), always=True,
                      outputs=[results / "model_zoo.md"], title="Model zoo"))
    return steps


def ablation_steps(*, results: Path, work_root: Path, data_root: str = DEMO_DATA_ROOT, profile: str = "full",
                   seeds: Sequence[int] = (0, 1, 2), config: str = DEMO_CONFIGS[0]) -> list[Step]:
    """synthetic data (shared with the demo) -> the interlace-gradient ablation (notebook 06)."""
    prepare, lists = _synthetic_data_step(data_root, profile)
    summary = results / "ablation_interlace_grad" / "summary.json"
    return [prepare,
            Step("06_gradient_ablation", "06_gradient_ablation",
                 dict(config=config, data_root=str(data_root), seeds=list(seeds), overrides=_synthetic_overrides(profile),
                      results_dir=str(results), work_root=str(work_root),
                      figures_dir=str(results / "runs" / "ablation" / "figures")),
                 # always: the notebook itself skips finished runs, and new seeds must not look up to date
                 inputs=[config_file(config)] + lists, outputs=[summary], always=True,
                 title="Interlace gradient ablation")]


def reproduce_steps(dataset: str, data_root: str, *, results: Path, work_root: Path, gpus: int, nodes: int = 1,
                    node_rank: int = 0, master_addr: str = "127.0.0.1", master_port: int = 29500,
                    profile: str = "full", lists_dir: str | None = None) -> list[Step]:
    """prepare -> train -> evaluate -> latency -> zoo for the model-zoo row of ``dataset``."""
    config = ZOO_CONFIGS[dataset]
    overrides = dict(PROFILES[profile])
    lists_root = Path(lists_dir or data_root)
    lists = [lists_root / n for n in LIST_NAMES[dataset]]
    summary = lists_root / "tinlib_prepare.json"
    wd = work_root / config
    ckpt = wd / "latest.pth"
    release = release_files(dataset, Path(data_root))
    steps = [
        Step("00_prepare_data", "00_prepare_data", dict(dataset=dataset, data_root=str(data_root),
                                                        lists_dir=str(lists_root)),
             inputs=[p for p in release if p.is_file()], outputs=[summary] + lists, title=f"Data: {dataset}"),
        Step("01_train", "01_train", dict(_common(config, str(lists_root), results, wd, overrides), gpus=gpus,
                                          nodes=nodes, node_rank=node_rank, master_addr=master_addr,
                                          master_port=master_port, progress=False),
             inputs=[config_file(config)] + lists, outputs=[results / config / "train.json", ckpt],
             title=f"Training {config}"),
        Step("02_evaluate", "02_evaluate", dict(_common(config, str(lists_root), results, wd, overrides), compare=[],
                                                checkpoint="latest"),
             inputs=[ckpt], outputs=[results / config / "metrics.json"], title="Evaluation"),
        Step("03_latency", "03_latency", dict(config=config, overrides=overrides, results_dir=str(results), archs=None,
                                              iters=LATENCY_ITERS[profile] or 200, devices=["cpu", "cuda"]
                                              if profile != "smoke" else ["cpu"]),
             inputs=[config_file(config)], outputs=[results / config / "latency.json"], title="Latency"),
        Step("04_model_zoo", "04_model_zoo", dict(results_dir=str(results)), always=True,
             outputs=[results / "model_zoo.md"], title="Model zoo"),
    ]
    return steps


# --------------------------------------------------------------------------------------------
# Data checks (fast, before anything heavy)
# --------------------------------------------------------------------------------------------
URLS = {"sthv1": "https://developer.qualcomm.com/software/ai-datasets/something-something",
        "sthv2": "https://developer.qualcomm.com/software/ai-datasets/something-something",
        "k400": "https://github.com/cvdfoundation/kinetics-dataset"}
HOW = {
    "sthv1": """Something-Something V1 ({url}):
  - the frame archives 20bn-something-something-v1-00 ... -22; unpack them in DATA_ROOT with
      cat 20bn-something-something-v1-?? | tar zx
    (gives DATA_ROOT/20bn-something-something-v1/<video id>/00001.jpg ...)
  - something-something-v1-labels.csv, -train.csv and -validation.csv, also in DATA_ROOT
  then: make reproduce-sthv1 DATA_ROOT=/path/to/sthv1""",
    "sthv2": """Something-Something V2 ({url}):
  - the video archives 20bn-something-something-v2-00 ... -19; unpack them in DATA_ROOT with
      cat 20bn-something-something-v2-?? | tar zx
    (gives DATA_ROOT/20bn-something-something-v2/<video id>.webm)
  - something-something-v2-labels.json, -train.json and -validation.json, also in DATA_ROOT
  frames are extracted at native size on the first run (about 1 TB free disk for the full set)
  then: make reproduce-sthv2 DATA_ROOT=/path/to/sthv2""",
    "k400": """Kinetics-400 ({url}):
  - the trimmed clips in DATA_ROOT/videos_train/<class>/<youtube_id>_<start>_<end>.mp4 and
    DATA_ROOT/videos_val/<class>/...
  - the annotation CSVs renamed kinetics_train.csv and kinetics_val.csv in DATA_ROOT
  - the TSM-K400 checkpoint the row fine-tunes from (see the config's model.load_from):
    tsm_r50_1x1x8_50e_kinetics400_rgb_20200607-af7fb746.pth, in the repository root
  frames are extracted with short side 256 on the first run
  then: make reproduce-k400 DATA_ROOT=/path/to/kinetics400""",
}


def release_files(dataset: str, root: Path) -> list[Path]:
    if dataset == "sthv1":
        return [root / f"something-something-v1-{n}.csv" for n in ("labels", "train", "validation")]
    if dataset == "sthv2":
        return [root / f"something-something-v2-{n}.json" for n in ("labels", "train", "validation")]
    return [root / "kinetics_train.csv", root / "kinetics_val.csv"]


def check_data(dataset: str, data_root: str | None, lists_dir: str | None = None) -> None:
    """Raise :class:`DataMissing` saying what to download and where, unless ``data_root`` holds the
    release files (or lists prepared earlier) of ``dataset``. Reads only directory entries."""
    how = HOW[dataset].format(url=URLS[dataset])
    if not data_root:
        raise DataMissing(f"DATA_ROOT is not set. Download {how}")
    root = Path(data_root)
    if not root.is_dir():
        raise DataMissing(f"DATA_ROOT={root} does not exist. Download {how}")
    lists_root = Path(lists_dir) if lists_dir else root
    if all((lists_root / n).is_file() for n in LIST_NAMES[dataset]) and (lists_root / "tinlib_prepare.json").is_file():
        return  # prepared before
    missing = [p for p in release_files(dataset, root) if not p.is_file()]
    folders = {"sthv1": [("20bn-something-something-v1", "rawframes")],
               "sthv2": [("20bn-something-something-v2", "videos")],
               "k400": [("videos_train",), ("videos_val",)]}[dataset]
    for alternatives in folders:
        if not any((root / name).is_dir() for name in alternatives):
            missing.append(root / alternatives[0])
    if missing:
        listing = "\n".join(f"  missing: {p}" for p in missing)
        raise DataMissing(f"DATA_ROOT={root} does not hold the {dataset} release:\n{listing}\nDownload {how}")


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------
def build_report(results: Path, run: str, steps: Sequence[Step] | None = None, title: str | None = None) -> Path | None:
    """HTML of the executed notebooks of ``run`` (in step order when ``steps`` are given)."""
    from tinlib.report.html import build_run_report

    run_dir = results / "runs" / run
    if not run_dir.is_dir():
        return None
    order = [s.name for s in steps] if steps else None
    titles = {s.name: s.title for s in steps} if steps else {}
    out = results / "reports" / f"{run}.html"
    return build_run_report(run_dir, out, title=title or f"tin-kit: {run}", order=order, titles=titles,
                            results_dir=results)


def detect_gpus() -> int:
    """Visible CUDA devices (at least 1); reads CUDA_VISIBLE_DEVICES / nvidia-smi, no torch import."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return max(1, len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"]))
    smi = shutil.which("nvidia-smi")
    if smi:
        import subprocess

        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
            return max(1, sum(1 for line in out.splitlines() if line.startswith("GPU ")))
        except (OSError, subprocess.SubprocessError):
            pass
    return 1


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tinlib.report.pipeline", description=__doc__.split("\n\n")[0])
    p.add_argument("--results-dir", default="results", help="run records, executed notebooks, reports (default results)")
    p.add_argument("--work-root", default="work_dirs", help="checkpoints go to WORK_ROOT/<config> (default work_dirs)")
    p.add_argument("--force", action="store_true", help="rerun steps even when their outputs are up to date")
    p.add_argument("--log-output", action="store_true", help="echo the notebooks' output while they run")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="the synthetic demo: data, TIN/TSM/TSN training, evaluation, latency, zoo, report")
    d.add_argument("--profile", choices=("full", "smoke"), default="full")
    d.add_argument("--data-root", default=DEMO_DATA_ROOT)
    r = sub.add_parser("reproduce", help="prepare -> train -> evaluate -> latency -> zoo for a model-zoo row")
    r.add_argument("dataset", choices=sorted(ZOO_CONFIGS))
    r.add_argument("--data-root", default=os.environ.get("DATA_ROOT"))
    r.add_argument("--lists-dir", help="where lists go (default DATA_ROOT; use it when DATA_ROOT is read-only)")
    r.add_argument("--gpus", type=int, help="processes (GPUs) per node (default: the visible GPUs)")
    r.add_argument("--nodes", type=int, default=1)
    r.add_argument("--node-rank", type=int, default=0)
    r.add_argument("--master-addr", default="127.0.0.1")
    r.add_argument("--master-port", type=int, default=29500)
    r.add_argument("--profile", choices=sorted(PROFILES), default="full")
    a = sub.add_parser("ablation", help="the interlace-gradient ablation on the synthetic data (notebook 06)")
    a.add_argument("--profile", choices=("full", "smoke"), default="full")
    a.add_argument("--data-root", default=DEMO_DATA_ROOT)
    a.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    c = sub.add_parser("check-data", help="only check that DATA_ROOT holds the dataset")
    c.add_argument("dataset", choices=sorted(ZOO_CONFIGS))
    c.add_argument("--data-root", default=os.environ.get("DATA_ROOT"))
    c.add_argument("--lists-dir")
    lat = sub.add_parser("latency", help="run notebooks/03_latency.ipynb for a config")
    lat.add_argument("--config", default=ZOO_CONFIGS["sthv1"])
    lat.add_argument("--archs", help="comma-separated (default: the config's arch and its TSM/TSN twins)")
    lat.add_argument("--iters", type=int)
    rep = sub.add_parser("report", help="re-render the HTML reports of every run under RESULTS/runs")
    rep.add_argument("--run", action="append", help="only this run (repeatable)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    results, work_root = Path(args.results_dir), Path(args.work_root)
    t0 = time.time()
    try:
        if args.command == "check-data":
            check_data(args.dataset, args.data_root, args.lists_dir)
            print(f"{args.dataset}: {args.data_root} looks complete")
            return 0
        if args.command == "demo":
            steps = demo_steps(results=results, work_root=work_root / "demo", data_root=args.data_root,
                               profile=args.profile)
            run = "demo"
        elif args.command == "ablation":
            seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
            steps = ablation_steps(results=results, work_root=work_root / "ablation", data_root=args.data_root,
                                   profile=args.profile, seeds=seeds)
            run = "ablation"
        elif args.command == "reproduce":
            check_data(args.dataset, args.data_root, args.lists_dir)
            gpus = args.gpus or detect_gpus()
            steps = reproduce_steps(args.dataset, args.data_root, results=results, work_root=work_root, gpus=gpus,
                                    nodes=args.nodes, node_rank=args.node_rank, master_addr=args.master_addr,
                                    master_port=args.master_port, profile=args.profile, lists_dir=args.lists_dir)
            run = args.dataset
        elif args.command == "latency":
            archs = [a.strip() for a in args.archs.split(",")] if args.archs else None
            steps = [Step(f"03_latency_{args.config}", "03_latency",
                          dict(config=args.config, results_dir=str(results), archs=archs, iters=args.iters,
                               overrides={}, devices=["cpu", "cuda"]), always=True,
                          outputs=[results / args.config / "latency.json"], title=f"Latency: {args.config}")]
            run = "latency"
        else:
            runs = args.run or sorted(p.name for p in (results / "runs").glob("*") if p.is_dir())
            for run in runs:
                out = build_report(results, run)
                print(f"{run}: {out if out else 'no executed notebooks'}")
            return 0
        run_dir = results / "runs" / run
        try:
            run_steps(steps, run_dir, force=args.force, log_output=args.log_output)
        finally:
            report = build_report(results, run, steps)
            if report:
                print(f"report: {_show(report)}")
        if args.command == "demo":
            from tinlib.report.zoo import checks_markdown, collect_runs, demo_checks, demo_runs

            print("demo targets:\n" + checks_markdown(demo_checks(demo_runs(collect_runs(results)))))
        print(f"{run}: finished in {time.time() - t0:.0f} s; tables: {_show(results / 'model_zoo.md')}")
        return 0
    except DataMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except StepFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
