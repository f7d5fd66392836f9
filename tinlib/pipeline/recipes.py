"""The step lists behind the make targets and the profiles applied on top of a config. Standard
library only; nothing assumes the current directory is a checkout.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from tinlib.data.releases import PREPARE_SUMMARY, SPLITS, STHV1, SYNTHETIC, release
from tinlib.pipeline.steps import Step

# smoke: the make/notebook tests on tiny synthetic data (seconds per step, numbers meaningless)
SMOKE_OVERRIDES = {"model.pretrained": None, "data.input_size": 32, "data.scale_size": 36,
                   "data.videos_per_gpu": 2, "data.val_videos_per_gpu": 4, "data.test_videos_per_gpu": 4,
                   "data.workers_per_gpu": 0, "train.epochs": 1, "train.max_iters_per_epoch": 2,
                   "train.val_interval": 0, "train.log_interval": 1, "schedule.warmup": None,
                   "train.num_threads": 2}
PROFILES: dict[str, dict[str, Any]] = {"full": {}, "smoke": SMOKE_OVERRIDES}
# timed latency iterations per profile (None: the recipe's own default)
LATENCY_ITERS: dict[str, int | None] = {"full": None, "smoke": 2}

# The demo: synthetic data written here, three models trained with one recipe.
DEMO_DATA_ROOT = "data/synthetic/sthv1"
DEMO_CONFIGS = ("demo_tin_r18_synthetic", "demo_tsm_r18_synthetic", "demo_tsn_r18_synthetic")
DEMO_DATA = {"layout": "sthv1", "size": "demo", "height": 40, "num_train": None, "num_val": None}
DEMO_SMOKE_DATA = {"layout": "sthv1", "size": "tiny", "height": 48, "num_train": None, "num_val": None}

# what testing a published checkpoint reads of a release (its test list is the val split)
EVAL_SPLITS = ("val",)

# the model-zoo row each `make reproduce-<dataset>` reproduces
ZOO_CONFIGS = {"sthv1": "tin_r50_1x1x8_40e_sthv1_rgb", "sthv2": "tin_r50_1x1x8_40e_sthv2_rgb",
               "k400": "tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb"}


def config_file(name: str) -> Path:
    """The file of config ``name`` in the ``tinlib.configs`` package, or ``name`` itself as a path."""
    resource = resources.files("tinlib.configs").joinpath(f"{name}.py")
    return Path(str(resource)) if resource.is_file() else Path(name)


def _notebook(notebooks_dir: Path, name: str) -> Path:
    return Path(notebooks_dir) / f"{name}.ipynb"


def zoo_step(notebooks_dir: Path, results: Path) -> Step:
    """Notebook 04: rewrite ``results/model_zoo.md`` (always: it is cheap and reads every run)."""
    return Step("04_model_zoo", _notebook(notebooks_dir, "04_model_zoo"), {"results_dir": str(results)}, always=True,
                outputs=[results / "model_zoo.md"], title="Model zoo")


def _common(config: str, data_root: str, results: Path | None, work_dir: Path, overrides: dict) -> dict[str, Any]:
    out = {"config": config, "data_root": str(data_root), "work_dir": str(work_dir), "overrides": dict(overrides)}
    if results is not None:
        out["results_dir"] = str(results)
    return out


def synthetic_overrides(profile: str) -> dict[str, Any]:
    """The profile's overrides for the demo configs (which never load pretrained weights)."""
    overrides = dict(PROFILES[profile])
    overrides.pop("model.pretrained", None)
    return overrides


def threads_per_run(runs: int, max_threads: int = 4) -> int:
    """Torch threads for each of ``runs`` trainings that share this machine's cores side by side:
    the cores this process may use, split evenly, at least 1 and at most ``max_threads`` (the demo's
    small convolutions gain little from more: 2 threads made a step 1.3x faster than 1 on a 2-core
    machine)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(max_threads, cores // max(1, runs)))


def synthetic_data_step(notebooks_dir: Path, data_root: str, profile: str) -> tuple[Step, list[Path]]:
    """The step that writes the demo's synthetic data (tiny in the smoke profile), and its lists."""
    root = Path(data_root)
    lists = [root / name for name in STHV1.list_names]
    data = DEMO_SMOKE_DATA if profile == "smoke" else DEMO_DATA
    step = Step("00_prepare_data", _notebook(notebooks_dir, "00_prepare_data"),
                {"dataset": "synthetic", "data_root": str(root), "synthetic": data},
                inputs=[], outputs=[root / SYNTHETIC.meta_file, *lists], title="Data: the synthetic dataset")
    return step, lists


def demo_steps(*, notebooks_dir: Path, results: Path, work_root: Path, data_root: str = DEMO_DATA_ROOT,
               profile: str = "full", configs: Sequence[str] = DEMO_CONFIGS) -> list[Step]:
    """synthetic data -> train TIN/TSM/TSN side by side -> evaluate -> latency -> interlace -> zoo.

    Run records, executed notebooks and reports go to ``results``, checkpoints to
    ``work_root/<config>``; ``profile``: ``full`` or ``smoke`` (see :data:`PROFILES`). The first of
    ``configs`` is the main one (latency, interlace).
    """
    smoke = profile == "smoke"
    overrides = synthetic_overrides(profile)
    prepare, lists = synthetic_data_step(notebooks_dir, data_root, profile)
    steps = [prepare]
    ckpts = {}
    # the models train side by side, the cores split between them (one thread each on a small CPU):
    # that beats training them one after the other with all threads (small convolutions scale poorly)
    train_overrides = dict(overrides, **{"train.num_threads": threads_per_run(len(configs))})
    for cfg in configs:
        wd = work_root / cfg
        ckpts[cfg] = wd / "latest.pth"
        steps.append(Step(f"01_train_{cfg}", _notebook(notebooks_dir, "01_train"),
                          dict(_common(cfg, data_root, results, wd, train_overrides), gpus=1, nodes=1, progress=False),
                          inputs=[config_file(cfg), *lists], outputs=[results / cfg / "train.json", ckpts[cfg]],
                          title=f"Training {cfg}", group="train"))
    main, others = configs[0], list(configs[1:])
    steps.append(Step("02_evaluate", _notebook(notebooks_dir, "02_evaluate"),
                      dict(_common(main, data_root, results, work_root / main, overrides), compare=others,
                           checkpoint="latest"),
                      inputs=list(ckpts.values()), outputs=[results / c / "metrics.json" for c in configs],
                      title="Evaluation on the test split"))
    steps.append(Step("03_latency", _notebook(notebooks_dir, "03_latency"),
                      {"config": main, "overrides": overrides, "results_dir": str(results), "archs": None,
                       "iters": LATENCY_ITERS[profile] or 20, "devices": ["cpu"]},
                      inputs=[config_file(main)], outputs=[results / main / "latency.json"],
                      title="Latency, FLOPs, parameters"))
    figures = results / "runs" / "demo" / "figures"
    steps.append(Step("05_explore_interlace", _notebook(notebooks_dir, "05_explore_interlace"),
                      dict(_common(main, data_root, None, work_root / main, overrides), per_class=2 if smoke else 8,
                           figures_dir=str(figures)),
                      inputs=[ckpts[main]], outputs=[figures / "interlace_by_class.png"],
                      title="What the interlace learned"))
    steps.append(predict_step(notebooks_dir, main, ckpts[main], data_root, overrides, figures))
    steps.append(zoo_step(notebooks_dir, results))
    return steps


def predict_step(notebooks_dir: Path, config: str, checkpoint: Path, data_root: str, overrides: dict[str, Any],
                 figures: Path, test_video: int = 0) -> Step:
    """Notebook 07 on one video of ``config``'s test list (number ``test_video``) with ``checkpoint``,
    as ``tinlib predict`` runs it; its top-k figure goes to ``figures`` (nothing to ``results/``)."""
    return Step("07_predict", _notebook(notebooks_dir, "07_predict"),
                {"config": config, "checkpoint": str(checkpoint), "data_root": str(data_root),
                 "test_video": test_video, "video": None, "overrides": dict(overrides), "device": "cpu",
                 "window": 8, "stride": 2, "figures_dir": str(figures)},  # a short test video: 8-frame windows
                inputs=[checkpoint], outputs=[figures / "predict_topk.png"], title="Prediction on one test video")


def ablation_steps(*, notebooks_dir: Path, results: Path, work_root: Path, data_root: str = DEMO_DATA_ROOT,
                   profile: str = "full", seeds: Sequence[int] = (0, 1, 2),
                   config: str = DEMO_CONFIGS[0], force: bool = False) -> list[Step]:
    """synthetic data (shared with the demo) -> the interlace-gradient ablation (notebook 06): the
    TIN ``config`` trained once per gradient and seed; ``force`` retrains the runs whose records
    are already in ``results`` (the committed ones too)."""
    prepare, lists = synthetic_data_step(notebooks_dir, data_root, profile)
    summary = results / "ablation_interlace_grad" / "summary.json"
    return [prepare,
            Step("06_gradient_ablation", _notebook(notebooks_dir, "06_gradient_ablation"),
                 {"config": config, "data_root": str(data_root), "seeds": list(seeds),
                  "overrides": synthetic_overrides(profile), "results_dir": str(results),
                  "work_root": str(work_root), "figures_dir": str(results / "runs" / "ablation" / "figures"),
                  "force": force},
                 # always: the notebook itself skips finished runs, and new seeds must not look up to date
                 inputs=[config_file(config), *lists], outputs=[summary], always=True,
                 title="Interlace gradient ablation")]


def prepare_step(dataset: str, data_root: str, *, notebooks_dir: Path, lists_dir: str | None = None,
                 splits: Sequence[str] = SPLITS) -> Step:
    """Notebook 00 on the release of ``dataset`` in ``data_root``: the lists (and frames) of
    ``splits`` and ``tinlib_prepare.json`` in ``lists_dir`` (default ``data_root``); up to date
    while they are newer than the release's annotation files those splits read, so a step with
    all splits after one with ``("val",)`` is stale until the train lists exist."""
    lists_root = Path(lists_dir or data_root)
    lists = [lists_root / n for n in release(dataset).lists_of(splits)]
    release_files = release(dataset).annotation_paths(data_root, splits)
    return Step("00_prepare_data", _notebook(notebooks_dir, "00_prepare_data"),
                {"dataset": dataset, "data_root": str(data_root), "lists_dir": str(lists_root),
                 "splits": list(splits)},
                inputs=[p for p in release_files if p.is_file()], outputs=[lists_root / PREPARE_SUMMARY, *lists],
                title=f"Data: {dataset}" + ("" if tuple(splits) == SPLITS else f" ({', '.join(splits)} split only)"))


def reproduce_steps(dataset: str, data_root: str, *, notebooks_dir: Path, results: Path, work_root: Path, gpus: int,
                    nodes: int = 1, node_rank: int = 0, master_addr: str = "127.0.0.1", master_port: int = 29500,
                    profile: str = "full", lists_dir: str | None = None) -> list[Step]:
    """prepare -> train -> evaluate -> latency -> zoo for the model-zoo row of ``dataset``
    (:data:`ZOO_CONFIGS` ``[dataset]``) on the release in ``data_root``, the lists in ``lists_dir``
    (default ``data_root``); ``gpus`` to ``master_port``: the torchrun layout of the training."""
    config = ZOO_CONFIGS[dataset]
    overrides = dict(PROFILES[profile])
    lists_root = Path(lists_dir or data_root)
    lists = [lists_root / n for n in release(dataset).list_names]
    wd = work_root / config
    ckpt = wd / "latest.pth"
    return [
        prepare_step(dataset, data_root, notebooks_dir=notebooks_dir, lists_dir=lists_dir),
        Step("01_train", _notebook(notebooks_dir, "01_train"),
             dict(_common(config, str(lists_root), results, wd, overrides), gpus=gpus, nodes=nodes,
                  node_rank=node_rank, master_addr=master_addr, master_port=master_port, progress=False),
             inputs=[config_file(config), *lists], outputs=[results / config / "train.json", ckpt],
             title=f"Training {config}"),
        Step("02_evaluate", _notebook(notebooks_dir, "02_evaluate"),
             dict(_common(config, str(lists_root), results, wd, overrides), compare=[], checkpoint="latest"),
             inputs=[ckpt], outputs=[results / config / "metrics.json"], title="Evaluation"),
        Step("03_latency", _notebook(notebooks_dir, "03_latency"),
             {"config": config, "overrides": overrides, "results_dir": str(results), "archs": None,
              "iters": LATENCY_ITERS[profile] or 200,
              "devices": ["cpu", "cuda"] if profile != "smoke" else ["cpu"]},
             inputs=[config_file(config)], outputs=[results / config / "latency.json"], title="Latency"),
        zoo_step(notebooks_dir, results),
    ]


def evaluate_published_steps(dataset: str, data_root: str, *, notebooks_dir: Path, results: Path, gpus: int,
                             nodes: int = 1, node_rank: int = 0, master_addr: str = "127.0.0.1",
                             master_port: int = 29500, profile: str = "full", lists_dir: str | None = None,
                             overrides: dict[str, Any] | None = None) -> list[Step]:
    """prepare the val split -> evaluate the published checkpoint (see
    :func:`tinlib.pipeline.published.evaluate_published`) -> zoo for the model-zoo row of ``dataset``.
    The train split is not read; :func:`reproduce_steps` adds it later. ``gpus`` to ``master_port``:
    the torchrun layout of the test; ``overrides`` go on top of the profile's."""
    from tinlib.hub import published_run

    config = ZOO_CONFIGS[dataset]
    settings = dict(PROFILES[profile], **(overrides or {}))
    prepare = prepare_step(dataset, data_root, notebooks_dir=notebooks_dir, lists_dir=lists_dir, splits=EVAL_SPLITS)
    return [
        prepare,
        Step("02_evaluate", _notebook(notebooks_dir, "02_evaluate"),
             {"config": config, "data_root": str(Path(lists_dir or data_root)), "overrides": settings,
              "results_dir": str(results), "compare": [], "checkpoint": "published", "gpus": gpus, "nodes": nodes,
              "node_rank": node_rank, "master_addr": master_addr, "master_port": master_port},
             inputs=[config_file(config), *prepare.outputs],
             outputs=[results / published_run(config) / "metrics.json"],
             title=f"The published checkpoint of {config}, evaluated here"),
        zoo_step(notebooks_dir, results),
    ]


def latency_steps(config: str, *, notebooks_dir: Path, results: Path, archs: Sequence[str] | None = None,
                  iters: int | None = None) -> list[Step]:
    """Notebook 03 for ``config`` on every device there is (``make latency``); always runs.
    ``archs`` default: the config's and its TSM/TSN twins; ``iters`` default: the notebook's."""
    return [Step(f"03_latency_{config}", _notebook(notebooks_dir, "03_latency"),
                 {"config": config, "results_dir": str(results), "archs": list(archs) if archs else None,
                  "iters": iters, "overrides": {}, "devices": ["cpu", "cuda"]}, always=True,
                 outputs=[results / config / "latency.json"], title=f"Latency: {config}")]
