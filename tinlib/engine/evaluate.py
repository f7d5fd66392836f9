"""``tinlib test CONFIG CHECKPOINT``: top-1/top-5/mean class accuracy with multi-view testing.

Writes ``<results_dir>/<run>/metrics.json`` (metrics, per-class accuracy, confusion matrix, the
config, git commit, package versions, seed, the checkpoint's sha256) and ``scores.npz`` beside it
(the raw ``[M, K]`` scores, labels and sample indices, for later analysis). Under torchrun every
process scores a shard of the videos; rank 0 gathers them in dataset order and writes.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tinlib.engine import dist
from tinlib.engine.build import build_model, check_checkpoint_fits
from tinlib.engine.config import Config
from tinlib.engine.environment import device_info, git_info, now_iso, package_versions
from tinlib.engine.errors import RunError
from tinlib.engine.metrics import confusion_matrix, evaluate_scores, per_class_accuracy, predictions
from tinlib.engine.splits import build_split_dataset, check_data_paths
from tinlib.engine.torch_settings import autocast, torch_settings
from tinlib.io import atomic_write
from tinlib.records import CheckpointInfo, MetricsRecord, RecordError

if TYPE_CHECKING:
    from tinlib.models import Recognizer

log = logging.getLogger(__name__)


@torch.no_grad()
def run_inference(model: Recognizer, dataset, *, batch_size: int, num_workers: int, device: torch.device,
                  average_clips: str | None, amp: str = "none", ctx: dist.DistContext | None = None,
                  progress: bool = False, desc: str = "test", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores of every sample of ``dataset``, in dataset order, gathered from all processes.

    Args:
        model: the plain recognizer (not the DDP wrapper); it is put in eval mode.
            ``model.predict(clips [B, V*T, 3, H, W], average_clips) -> [B, K]``.
        dataset: items ``(clip [V*T, 3, H, W], label)``.
        batch_size, num_workers: per process.
        device: where the model runs.
        average_clips: how the V views are combined (``"prob"``, ``"score"`` or None for one view).
        amp: ``"none"``, ``"bf16"`` or ``"fp16"`` autocast for the forward passes.
        ctx: the process group context (None: a single process on ``device``); process ``r`` of
            ``W`` scores samples ``r, r + W, ...``.
        progress, desc: a progress bar on rank 0 and its label.
        seed: seeds the loader (worker seeds; test-mode sampling draws nothing random).
    Returns:
        ``(scores [M, K] float32, labels [M] int64)`` on every process.
    """
    from tqdm import tqdm

    from tinlib.data.loader import build_loader

    ctx = ctx or dist.DistContext(device=device)
    model.eval()
    loader = build_loader(dataset, batch_size, num_workers=num_workers, shuffle=False, seed=seed,
                          num_replicas=ctx.world_size, rank=ctx.rank, pin_memory=device.type == "cuda")
    scores, labels = [], []
    bar = tqdm(loader, desc=desc, disable=not (progress and ctx.is_main), leave=False, dynamic_ncols=True)
    for clips, target in bar:
        clips = clips.to(device, non_blocking=True)
        with autocast(device, amp):
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
    """Metrics of ``scores [M, K]`` against ``labels [M]``: top-1/top-5/mean class accuracy (as
    fractions and rounded percentages), per-class accuracy (None for a class without samples),
    class counts and the ``[K, K]`` confusion matrix (rows: true class, columns: prediction)."""
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
    """Evaluate ``checkpoint`` (or an already loaded ``model``) on ``split`` of ``cfg``'s data.

    Args:
        cfg: the config (model, data, test views ``test.*``).
        checkpoint: a checkpoint file in any layout tinlib reads; None when ``model`` is given.
        split: ``"test"`` (the config's test views) or ``"val"`` (one centre view).
        run: results sub-folder (default: the config name) under ``results_dir`` (default
            ``cfg.results_dir``); ``metrics.json`` and ``scores.npz`` go there (rank 0, when ``write``).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        dataset: replaces the config's data (tests, notebooks); items ``(clip [V*T, 3, H, W], label)``.
        model: an already loaded recognizer instead of ``checkpoint``.
        batch_size, num_workers, amp: override ``data.test_videos_per_gpu``, ``data.workers_per_gpu``
            and ``"none"``.
        overwrite: replace the results of another run in the folder.
        trusted: unpickle the checkpoint fully (files the user made).
        progress: a progress bar.  write: write the files.  seed: the loader's seed.
    ``train.num_threads`` sets the CPU threads for the call (restored afterwards).
    Returns:
        the record written to metrics.json (a dict).
    """
    with torch_settings(threads=cfg.train.num_threads):
        return _evaluate(cfg, checkpoint, split=split, run=run, results_dir=results_dir, device=device,
                         dataset=dataset, model=model, batch_size=batch_size, num_workers=num_workers, amp=amp,
                         overwrite=overwrite, trusted=trusted, progress=progress, write=write, seed=seed)


def _evaluate(cfg: Config, checkpoint, *, split, run, results_dir, device, dataset, model, batch_size, num_workers,
              amp, overwrite, trusted, progress, write, seed) -> dict:
    from tinlib.checkpoint import sha256_of

    ctx = dist.init_distributed(device)
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
        log.info("loaded %s (%s, %d tensors)", checkpoint, report.layout, len(report.loaded))
        return data, net, report.layout, meta

    dataset, model, layout, ckpt_meta = dist.collective_check(load_inputs, RunError)
    model.to(ctx.device)
    scores, labels = run_inference(
        model, dataset,
        batch_size=batch_size or cfg.data.test_videos_per_gpu,
        num_workers=cfg.data.workers_per_gpu if num_workers is None else num_workers,
        device=ctx.device, average_clips=cfg.test.average_clips, amp=amp or "none", ctx=ctx, progress=progress,
        desc=f"test {cfg.name}", seed=seed)
    record = _metrics_record(cfg, scores, labels, split=split, run=run, checkpoint=checkpoint, sha=sha,
                             layout=layout, ckpt_meta=ckpt_meta, dataset=dataset, ctx=ctx, seed=seed,
                             elapsed=time.time() - t0)
    if write and ctx.is_main:
        write_metrics(out_dir, record, scores, labels)
    m = record["metrics_percent"]
    log.info("%s [%s, %d videos]: top1 %.2f  top5 %.2f  mean class %.2f", cfg.name, split, len(labels),
             m["top1_acc"], m["top5_acc"], m["mean_class_accuracy"])
    dist.barrier()
    return record


def _metrics_record(cfg: Config, scores: np.ndarray, labels: np.ndarray, *, split: str, run: str, checkpoint,
                    sha: str | None, layout: str | None, ckpt_meta: dict, dataset, ctx: dist.DistContext,
                    seed: int, elapsed: float) -> dict[str, Any]:
    """The metrics.json record: metrics of ``scores [M, K]`` / ``labels [M]``, the test setting,
    the checkpoint (path, sha256, layout, training meta), the environment and the config."""
    t = cfg.test
    train_meta = {k: ckpt_meta.get(k) for k in ("epoch", "iter", "seed", "world_size", "lr", "config_name", "time")
                  if isinstance(ckpt_meta, dict) and k in ckpt_meta}
    record = MetricsRecord(
        run=run,
        config_name=cfg.name,
        split=split,
        num_samples=int(len(labels)),
        num_classes=cfg.model.num_classes,
        **metrics_report(scores, labels, cfg.model.num_classes),
        test_setting={"num_segments": cfg.model.num_segments, "num_clips": t.num_clips, "crop": t.crop,
                      "twice_sample": t.twice_sample, "average_clips": t.average_clips,
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
        elapsed_s=round(elapsed, 3),
        scores_file="scores.npz",
        config=cfg.to_dict(),
    )
    return record.to_dict()


def write_metrics(out_dir: Path, record: dict, scores: np.ndarray, labels: np.ndarray) -> Path:
    """Write ``scores.npz`` (``scores [M, K]`` float32, ``labels [M]``, ``index [M]``) and then
    ``metrics.json`` (``record``) into ``out_dir``, each atomically; returns the metrics.json path."""
    def _save(handle):
        np.savez(handle, scores=scores.astype(np.float32), labels=labels,
                 index=np.arange(len(labels), dtype=np.int64))

    atomic_write(out_dir / "scores.npz", _save)
    path = MetricsRecord.from_dict(record).write(out_dir / MetricsRecord.FILENAME)
    log.info("wrote %s", out_dir / "metrics.json")
    return path


__all__ = ["check_results_dir", "evaluate", "metrics_report", "run_inference", "write_metrics"]
