"""``tinlib test CONFIG CHECKPOINT``: top-1/top-5/mean class accuracy with multi-view testing.

Writes ``<results_dir>/<run>/metrics.json`` (metrics, per-class accuracy, confusion matrix, the
config, git commit, package versions, seed, the checkpoint's sha256) and ``scores.npz`` beside it
(the raw ``[M, K]`` scores, labels and sample indices, for later analysis). Under torchrun every
process scores a shard of the videos; rank 0 gathers them in dataset order and writes.
"""
from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinlib.engine import dist
from tinlib.engine.common import (RunError, ShardSampler, global_torch_settings, restore_torch_settings, build_model, build_split_dataset, check_checkpoint_fits,
                                  check_data_paths, device_info, git_info, make_loader, now_iso, package_versions,
                                  print_main)
from tinlib.engine.config import Config, ConfigError, available_configs, load_config
from tinlib.engine.metrics import confusion_matrix, evaluate_scores, per_class_accuracy, predictions
from tinlib.io import atomic_write
from tinlib.records import CheckpointInfo, MetricsRecord, RecordError


def autocast_context(device: torch.device, amp: str):
    if amp == "none":
        return nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def run_inference(model: torch.nn.Module, dataset, *, batch_size: int, num_workers: int, device: torch.device,
                  average_clips: str | None, amp: str = "none", ctx: dist.DistContext | None = None,
                  progress: bool = False, desc: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Scores ``[M, K]`` (float32) and labels ``[M]`` for every sample of ``dataset`` in order.

    Each process takes every W-th sample; the shards are gathered on all processes. ``model`` is
    the plain recognizer (not the DDP wrapper); it is put in eval mode.
    """
    from tqdm import tqdm

    ctx = ctx or dist.DistContext(device=device)
    model.eval()
    sampler = ShardSampler(len(dataset), ctx.world_size, ctx.rank)
    loader = make_loader(dataset, batch_size, sampler=sampler, num_workers=num_workers, generator=None,
                         pin_memory=device.type == "cuda")
    scores, labels = [], []
    bar = tqdm(loader, desc=desc, disable=not (progress and ctx.is_main), leave=False, dynamic_ncols=True)
    for clips, target in bar:
        clips = clips.to(device, non_blocking=True)
        with autocast_context(device, amp):
            out = model.predict(clips, average_clips=average_clips)
        scores.append(out.float().cpu().numpy())
        labels.append(np.asarray(target).reshape(-1))
    bar.close()
    k = getattr(model, "num_classes", None) or (scores[0].shape[1] if scores else 0)
    local_scores = np.concatenate(scores) if scores else np.zeros((0, k), np.float32)
    local_labels = np.concatenate(labels).astype(np.int64) if labels else np.zeros((0,), np.int64)
    if ctx.world_size == 1:
        return local_scores, local_labels
    shards = dist.all_gather_object((local_scores, local_labels))
    total = len(dataset)
    all_scores = np.zeros((total, local_scores.shape[1]), np.float32)
    all_labels = np.zeros((total,), np.int64)
    for rank, (s, lab) in enumerate(shards):
        all_scores[rank::ctx.world_size] = s
        all_labels[rank::ctx.world_size] = lab
    return all_scores, all_labels


def metrics_report(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    metrics = evaluate_scores(scores, labels)
    matrix = confusion_matrix(predictions(scores), labels, num_classes)
    per_class = per_class_accuracy(scores, labels, num_classes)
    return {
        "metrics": metrics,
        "metrics_percent": {k: round(100 * v, 2) for k, v in metrics.items()},
        "per_class_accuracy": [None if np.isnan(v) else float(v) for v in per_class],
        "class_counts": matrix.sum(axis=1).tolist(),
        "confusion_matrix": matrix.tolist(),
    }


def check_results_dir(out_dir: Path, cfg: Config, checkpoint_sha: str | None, overwrite: bool) -> None:
    """Refuse to mix runs: an existing metrics.json of another config or checkpoint needs --overwrite."""
    existing = out_dir / "metrics.json"
    if overwrite or not existing.is_file():
        return
    try:
        old = MetricsRecord.read(existing)
    except RecordError:
        raise RunError(f"{existing} exists and cannot be read; remove it or pass --overwrite") from None
    old_name = old.config_name
    old_sha = old.checkpoint.sha256
    if old_name != cfg.name or (checkpoint_sha and old_sha and old_sha != checkpoint_sha):
        raise RunError(f"{out_dir} already holds the results of another run (config {old_name}, checkpoint "
                       f"{(old_sha or '?')[:8]}); choose another --run name or pass --overwrite")


def evaluate(cfg: Config, checkpoint: str | Path | None, *, split: str = "test", run: str | None = None,
             results_dir: str | Path | None = None, device: str = "auto", dataset=None, model=None,
             batch_size: int | None = None, num_workers: int | None = None, amp: str | None = None,
             overwrite: bool = False, trusted: bool = False, progress: bool = True, write: bool = True,
             seed: int = 0) -> dict:
    """Evaluate ``checkpoint`` (or an already loaded ``model``) on ``split``; returns the report
    dict written to metrics.json. ``dataset`` replaces the config's data (tests, notebooks);
    ``train.num_threads`` sets the CPU threads for the call."""
    saved = global_torch_settings()
    try:
        return _evaluate(cfg, checkpoint, split=split, run=run, results_dir=results_dir, device=device,
                         dataset=dataset, model=model, batch_size=batch_size, num_workers=num_workers, amp=amp,
                         overwrite=overwrite, trusted=trusted, progress=progress, write=write, seed=seed)
    finally:
        restore_torch_settings(saved)


def _evaluate(cfg: Config, checkpoint, *, split, run, results_dir, device, dataset, model, batch_size, num_workers,
              amp, overwrite, trusted, progress, write, seed) -> dict:
    from tinlib.checkpoint import sha256_of

    ctx = dist.init_distributed(device)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    run = run or cfg.name
    out_dir = Path(results_dir or cfg.results_dir) / run
    t0 = time.time()
    if checkpoint is None and model is None:
        raise RunError("evaluate: give a checkpoint or a model")

    def check_outputs():
        sha = None
        if checkpoint is not None:
            if not Path(checkpoint).is_file():
                raise RunError(f"checkpoint not found: {checkpoint}")
            sha = sha256_of(checkpoint)
        if write:
            check_results_dir(out_dir, cfg, sha, overwrite)
        return sha

    # rank 0 decides about the output folder; every process checks its inputs; a failure on any
    # process stops all of them with the same message
    sha = dist.broadcast_object(dist.collective_check(check_outputs if ctx.is_main else (lambda: None), RunError))

    def load_inputs():
        data = dataset
        if data is None:
            check_data_paths(cfg, (split,))
            data = build_split_dataset(cfg, split)
        if model is not None:
            return data, model, None, {}
        net = build_model(cfg, pretrained=False, load_from=False)
        loaded, report = check_checkpoint_fits(net, checkpoint, cfg, trusted=trusted)
        meta = loaded.get("meta", {}) if isinstance(loaded, dict) else {}
        print_main(ctx, f"loaded {checkpoint} ({report.layout}, {len(report.loaded)} tensors)")
        return data, net, report.layout, meta

    dataset, model, layout, ckpt_meta = dist.collective_check(load_inputs, RunError)
    model.to(ctx.device)
    t = cfg.test
    average_clips = t.average_clips
    scores, labels = run_inference(
        model, dataset,
        batch_size=batch_size or cfg.data.test_videos_per_gpu,
        num_workers=cfg.data.workers_per_gpu if num_workers is None else num_workers,
        device=ctx.device, average_clips=average_clips, amp=amp or "none", ctx=ctx, progress=progress,
        desc=f"test {cfg.name}")
    result = metrics_report(scores, labels, cfg.model.num_classes)
    train_meta = {k: ckpt_meta.get(k) for k in ("epoch", "iter", "seed", "world_size", "lr", "config_name", "time")
                  if isinstance(ckpt_meta, dict) and k in ckpt_meta}
    record = MetricsRecord(
        run=run,
        config_name=cfg.name,
        split=split,
        num_samples=int(len(labels)),
        num_classes=cfg.model.num_classes,
        **result,
        test_setting={"num_segments": cfg.model.num_segments, "num_clips": t.num_clips, "crop": t.crop,
                      "twice_sample": t.twice_sample, "average_clips": average_clips,
                      "input_size": cfg.data.input_size, "scale_size": cfg.data.scale_size},
        checkpoint=CheckpointInfo(path=str(checkpoint) if checkpoint is not None else None, sha256=sha,
                                  layout=layout, train_meta=train_meta),
        seed=train_meta.get("seed"),
        eval_seed=seed,
        skipped_samples=list(getattr(dataset, "skipped", []) or []),
        git=git_info(),
        versions=package_versions(),
        device=device_info(ctx.device),
        world_size=ctx.world_size,
        time=now_iso(),
        elapsed_s=round(time.time() - t0, 3),
        scores_file="scores.npz",
        config=cfg.to_dict(),
    )
    report_dict: dict[str, Any] = record.to_dict()
    if write and ctx.is_main:
        def _save(handle):
            np.savez(handle, scores=scores.astype(np.float32), labels=labels,
                     index=np.arange(len(labels), dtype=np.int64))

        atomic_write(out_dir / "scores.npz", _save)
        record.write(out_dir / MetricsRecord.FILENAME)
        print_main(ctx, f"wrote {out_dir / 'metrics.json'}")
    m = report_dict["metrics_percent"]
    print_main(ctx, f"{cfg.name} [{split}, {len(labels)} videos]: top1 {m['top1_acc']:.2f}  top5 "
                    f"{m['top5_acc']:.2f}  mean class {m['mean_class_accuracy']:.2f}")
    dist.barrier()
    return report_dict


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinlib test", description="Evaluate a checkpoint: top-1, top-5 and mean "
                                "class accuracy (MMAction2 definitions); writes results/<run>/metrics.json.",
                                epilog="configs: " + ", ".join(available_configs()))
    p.add_argument("config", help="config name (see tinlib/configs) or path to a .py/.json config")
    p.add_argument("checkpoint", help="checkpoint file (tinlib, MMAction2 0.x/1.x or original TIN layout)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. --set test.num_clips=2 test.average_clips=prob")
    p.add_argument("--split", choices=("val", "test"), default="test")
    p.add_argument("--run", help="results sub-folder name (default: the config name)")
    p.add_argument("--results-dir", help="results root (default: the config's results_dir, 'results')")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--batch-size", type=int, help="videos per process (default data.test_videos_per_gpu)")
    p.add_argument("--workers", type=int, help="loader workers per process (default data.workers_per_gpu)")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), help="autocast dtype for inference")
    p.add_argument("--overwrite", action="store_true", help="replace results of another run in the output folder")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="fully unpickle a checkpoint that holds arbitrary Python objects (only files you trust)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        evaluate(cfg, args.checkpoint, split=args.split, run=args.run, results_dir=args.results_dir,
                 device=args.device, batch_size=args.batch_size, num_workers=args.workers, amp=args.amp,
                 overwrite=args.overwrite, trusted=args.trust_checkpoint, progress=not args.no_progress)
    except (ConfigError, RunError) as err:
        print(f"tinlib test: error: {err}", file=sys.stderr)
        return 2
    finally:
        dist.cleanup()
    return 0


__all__ = ["evaluate", "run_inference", "metrics_report", "main"]
