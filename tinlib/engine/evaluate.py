"""``tinlib test CONFIG CHECKPOINT``: top-1/top-5/mean class accuracy with multi-view testing,
written to ``<results_dir>/<run>/metrics.json`` and ``scores.npz`` (the raw ``[M, K]`` scores).

Under torchrun every process scores a shard of the videos; rank 0 gathers them in dataset order.
With ``data.skip_bad_samples`` an unreadable video is left out, never replaced by another (which
would count that one twice), and named in metrics.json (``skipped_samples``, ``num_samples`` of
``num_listed``); without it, the first one stops the evaluation with one line naming it.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tinlib.config import Config
from tinlib.data.annotations import DataError
from tinlib.data.datasets import SkippedSample
from tinlib.data.normalization import normalize
from tinlib.engine import dist
from tinlib.engine.build import build_model, check_checkpoint_fits
from tinlib.engine.environment import device_info, git_info, now_iso, package_versions
from tinlib.engine.errors import RunError
from tinlib.engine.metrics import confusion_matrix, evaluate_scores, per_class_accuracy, predictions
from tinlib.engine.runlock import FolderLock
from tinlib.engine.splits import build_split_dataset, check_data_paths
from tinlib.engine.torch_settings import autocast, torch_settings
from tinlib.io import atomic_write
from tinlib.records import CheckpointInfo, MetricsRecord, RecordError, SkippedSampleEntry

if TYPE_CHECKING:
    from tinlib.models import Recognizer

log = logging.getLogger(__name__)


@dataclass
class Scored:
    """What an inference pass over a dataset gives: ``scores [M, K]`` float32 and ``labels [M]``
    int64 of the ``M`` scored samples, ``indices [M]`` (their dataset indices, ascending),
    ``num_listed`` (the dataset's length) and ``skipped`` (the samples left out because they could
    not be read, ``{"index", "line", "path", "reason"}`` in dataset order); ``M + len(skipped) ==
    num_listed``."""

    scores: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    num_listed: int
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def num_samples(self) -> int:
        return int(len(self.labels))


class _Numbered(torch.utils.data.Dataset):
    """``dataset``'s items with their index: ``(index, clip, label)``, or the dataset's
    :class:`~tinlib.data.datasets.SkippedSample` for a sample it left out."""

    def __init__(self, dataset):
        self.dataset = dataset  # (build_loader finds the tinlib dataset below, for its seed and epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        item = self.dataset[index]
        if isinstance(item, SkippedSample):
            return item
        clip, label = item
        return index, clip, label


def _collate_numbered(items: list) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor, list]:
    """``(clips [B, V*T, 3, H, W], labels [B], indices [B], skipped)`` of a list of :class:`_Numbered`
    items: ``B`` readable ones (clips and labels None when there is none) and the skipped ones."""
    from torch.utils.data import default_collate

    skipped = [it for it in items if isinstance(it, SkippedSample)]
    good = [it for it in items if not isinstance(it, SkippedSample)]
    if not good:
        return None, None, torch.zeros(0, dtype=torch.int64), skipped
    indices, clips, labels = default_collate(good)
    return clips, labels, torch.as_tensor(indices, dtype=torch.int64), skipped


def loader_settings(cfg: Config, device: torch.device) -> dict[str, Any]:
    """The loader keywords of ``cfg.data`` for :func:`~tinlib.data.loader.build_loader`:
    ``persistent_workers``, ``prefetch_factor`` and ``pin_memory`` (None: pinned when ``device`` is CUDA)."""
    data = cfg.data
    pin = device.type == "cuda" if data.pin_memory is None else data.pin_memory
    return {"persistent_workers": data.persistent_workers, "prefetch_factor": data.prefetch_factor,
            "pin_memory": pin}


@torch.no_grad()
def score_dataset(model: Recognizer, dataset, *, batch_size: int, num_workers: int, device: torch.device,
                  average_clips: str | None, amp: str = "none", ctx: dist.DistContext | None = None,
                  progress: bool = False, desc: str = "test", seed: int = 0, persistent_workers: bool = False,
                  prefetch_factor: int = 2, pin_memory: bool | None = None) -> Scored:
    """Scores of the readable samples of ``dataset`` (items ``(clip [V*T, 3, H, W] uint8, label)``,
    normalised on ``device``), in dataset order, gathered from all processes: a :class:`Scored`,
    the same on every process.

    ``model`` is the plain recognizer (not the DDP wrapper), put in eval mode; ``average_clips``
    combines the V views in ``model.predict``. Under ``ctx`` process ``r`` of ``W`` scores samples
    ``r, r + W, ...``; ``batch_size`` and ``num_workers`` are per process. A sample the dataset
    leaves out (``data.skip_bad_samples``) is not scored; it is listed in ``Scored.skipped`` and
    logged as a warning on rank 0. The loader keywords are :func:`loader_settings`'s (``pin_memory``
    None: pinned when ``device`` is CUDA).
    """
    from tqdm import tqdm

    from tinlib.data.loader import build_loader

    ctx = ctx or dist.DistContext(device=device)
    model.eval()
    loader = build_loader(_Numbered(dataset), batch_size, num_workers=num_workers, shuffle=False, seed=seed,
                          num_replicas=ctx.world_size, rank=ctx.rank, collate_fn=_collate_numbered,
                          pin_memory=device.type == "cuda" if pin_memory is None else pin_memory,
                          persistent_workers=persistent_workers, prefetch_factor=prefetch_factor)
    scores, labels, indices, skipped = [], [], [], []
    bar = tqdm(loader, desc=desc, disable=not (progress and ctx.is_main), leave=False, dynamic_ncols=True)
    for clips, target, index, bad in bar:
        skipped += [b.to_dict() for b in bad]
        if clips is None:
            continue
        clips = normalize(clips.to(device, non_blocking=True))
        with autocast(device, amp):
            out = model.predict(clips, average_clips=average_clips)
        scores.append(out.float().cpu().numpy())
        labels.append(np.asarray(target).reshape(-1))
        indices.append(index.numpy())
    bar.close()
    k = getattr(model, "num_classes", None) or (scores[0].shape[1] if scores else 0)
    local = Scored(np.concatenate(scores) if scores else np.zeros((0, k), np.float32),
                   np.concatenate(labels).astype(np.int64) if labels else np.zeros((0,), np.int64),
                   np.concatenate(indices).astype(np.int64) if indices else np.zeros((0,), np.int64),
                   len(dataset), skipped)
    result = _gather_in_order(local, ctx)
    if result.skipped and ctx.is_main:
        for s in result.skipped:
            log.warning("left out sample %d (%s:%d, %s): %s", s["index"], getattr(dataset, "ann_file", "list"),
                        s["line"], s["path"], s["reason"])
        log.warning("%s: left out %d unreadable of %d videos (data.skip_bad_samples); scored %d", desc,
                    len(result.skipped), result.num_listed, result.num_samples)
    return result


def _gather_in_order(local: Scored, ctx: dist.DistContext) -> Scored:
    """The :class:`Scored` shards of every process (``local`` is this one's) as one, in dataset order."""
    shards = dist.all_gather_object(local) if ctx.world_size > 1 else [local]
    all_indices = np.concatenate([shard.indices for shard in shards])
    order = np.argsort(all_indices, kind="stable")
    return Scored(scores=np.concatenate([shard.scores for shard in shards])[order].astype(np.float32),
                  labels=np.concatenate([shard.labels for shard in shards])[order],
                  indices=all_indices[order], num_listed=local.num_listed,
                  skipped=sorted((s for shard in shards for s in shard.skipped), key=lambda s: s["index"]))


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
    """Evaluate ``checkpoint`` (any layout tinlib reads), or an already loaded ``model``, on ``split``
    (``"test"``: the config's test views; ``"val"``: one centre view) with ``train.num_threads`` CPU
    threads; returns the metrics.json record (a dict).

    Rank 0 writes ``metrics.json`` and ``scores.npz`` (when ``write``) to ``<results_dir>/<run>``
    (defaults: ``cfg.results_dir`` and the config name); ``overwrite`` replaces another run's results
    there. ``dataset`` replaces the config's data (items ``(clip [V*T, 3, H, W], label)``);
    ``batch_size``, ``num_workers`` and ``amp`` override ``data.test_videos_per_gpu``,
    ``data.workers_per_gpu`` and ``"none"``; ``trusted`` unpickles the checkpoint fully. Rank 0
    holds the results folder's lock (:mod:`tinlib.engine.runlock`) while it evaluates.
    """
    if checkpoint is None and model is None:
        raise RunError("evaluate: give a checkpoint or a model")
    with torch_settings(threads=cfg.train.num_threads), contextlib.ExitStack() as held:
        ctx = dist.init_distributed(device)
        run = run or cfg.name
        out_dir = Path(results_dir or cfg.results_dir) / run
        t0 = time.time()
        # rank 0 decides about the output folder; every process checks its inputs; a failure on any
        # process stops all of them with the same message
        sha = dist.broadcast_object(dist.collective_check(
            (lambda: _check_outputs(cfg, checkpoint, out_dir if write else None, overwrite, held)) if ctx.is_main
            else (lambda: None), RunError))
        dataset, model, layout, ckpt_meta = dist.collective_check(
            lambda: _load_inputs(cfg, split, dataset, model, checkpoint, trusted), RunError)
        model.to(ctx.device)
        scored = score_dataset(
            model, dataset, batch_size=batch_size or cfg.data.test_videos_per_gpu,
            num_workers=cfg.data.workers_per_gpu if num_workers is None else num_workers,
            device=ctx.device, average_clips=cfg.test.average_clips, amp=amp or "none", ctx=ctx, progress=progress,
            desc=f"test {cfg.name}", seed=seed, **loader_settings(cfg, ctx.device))
        if scored.num_samples == 0:
            raise DataError(f"config {cfg.name}, {split} split: none of the {scored.num_listed} videos could be "
                            f"read (e.g. {scored.skipped[0]['path']}: {scored.skipped[0]['reason']}); check "
                            "data.root and the list")
        record = _metrics_record(cfg, scored, split=split, run=run, checkpoint=checkpoint, sha=sha, layout=layout,
                                 ckpt_meta=ckpt_meta, ctx=ctx, seed=seed, elapsed=time.time() - t0)
        if write and ctx.is_main:
            write_metrics(out_dir, record, scored.scores, scored.labels, scored.indices)
        m = record["metrics_percent"]
        log.info("%s [%s, %d of %d videos]: top1 %.2f  top5 %.2f  mean class %.2f", cfg.name, split,
                 scored.num_samples, scored.num_listed, m["top1_acc"], m["top5_acc"], m["mean_class_accuracy"])
        dist.barrier()
        return record


def _check_outputs(cfg: Config, checkpoint, out_dir: Path | None, overwrite: bool,
                   held: contextlib.ExitStack) -> str | None:
    """The checkpoint's sha256 (None without one), after checking that it exists and that the
    results folder ``out_dir`` (None: nothing is written) may take its results; its lock is taken
    and given back when ``held`` closes."""
    from tinlib.io import sha256_of

    sha = None
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise RunError(f"checkpoint not found: {checkpoint}")
        sha = sha256_of(checkpoint)
    if out_dir is not None:
        held.enter_context(FolderLock(out_dir, "wait for that evaluation to end, or choose another --run name"))
        check_results_dir(out_dir, cfg, sha, overwrite)
    return sha


def _load_inputs(cfg: Config, split: str, dataset, model, checkpoint, trusted: bool):
    """``(dataset, model, checkpoint layout, checkpoint meta)``: those given, else the config's
    ``split`` and the recognizer with ``checkpoint`` loaded."""
    if dataset is None:
        check_data_paths(cfg, (split,))
        dataset = build_split_dataset(cfg, split)
    if model is not None:
        return dataset, model, None, {}
    net = build_model(cfg, pretrained=False, load_from=False)
    loaded, report = check_checkpoint_fits(net, checkpoint, cfg, trusted=trusted)
    meta = loaded.get("meta", {}) if isinstance(loaded, dict) else {}
    log.info("loaded %s (%s, %d tensors)", checkpoint, report.layout, len(report.loaded))
    return dataset, net, report.layout, meta


def _metrics_record(cfg: Config, scored: Scored, *, split: str, run: str, checkpoint, sha: str | None,
                    layout: str | None, ckpt_meta: dict, ctx: dist.DistContext, seed: int,
                    elapsed: float) -> dict[str, Any]:
    """The metrics.json record: metrics of the scored samples (``num_samples`` of the
    ``num_listed`` in the list; the ``num_skipped`` left out are named in ``skipped_samples``),
    the test setting, the checkpoint (path, sha256, layout, training meta), the environment and
    the config."""
    t = cfg.test
    train_meta = {k: ckpt_meta.get(k) for k in ("epoch", "iter", "seed", "world_size", "lr", "config_name", "time")
                  if isinstance(ckpt_meta, dict) and k in ckpt_meta}
    record = MetricsRecord(
        run=run, config_name=cfg.name, split=split, num_samples=scored.num_samples, num_listed=scored.num_listed,
        num_skipped=len(scored.skipped), num_classes=cfg.model.num_classes,
        **metrics_report(scored.scores, scored.labels, cfg.model.num_classes),
        test_setting={"num_segments": cfg.model.num_segments, "num_clips": t.num_clips, "crop": t.crop,
                      "twice_sample": t.twice_sample, "average_clips": t.average_clips,
                      "input_size": cfg.data.input_size, "scale_size": cfg.data.scale_size},
        checkpoint=CheckpointInfo(path=str(checkpoint) if checkpoint is not None else None, sha256=sha,
                                  layout=layout, train_meta=train_meta),
        seed=train_meta.get("seed"), eval_seed=seed,
        skipped_samples=[SkippedSampleEntry.from_dict(s) for s in scored.skipped],
        git=git_info(), versions=package_versions(), device=device_info(ctx.device), world_size=ctx.world_size,
        time=now_iso(), elapsed_s=round(elapsed, 3), scores_file="scores.npz", config=cfg.to_dict())
    return record.to_dict()


def write_metrics(out_dir: Path, record: dict, scores: np.ndarray, labels: np.ndarray,
                  indices: np.ndarray | None = None) -> Path:
    """Write ``scores.npz`` (``scores [M, K]`` float32, ``labels [M]``, ``index [M]``: the samples'
    dataset indices, default ``0..M-1``) and then ``metrics.json`` (``record``) into ``out_dir``,
    each atomically; returns the metrics.json path."""
    index = np.arange(len(labels), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
    atomic_write(out_dir / "scores.npz",
                 lambda handle: np.savez(handle, scores=scores.astype(np.float32), labels=labels, index=index))
    path = MetricsRecord.from_dict(record).write(out_dir / MetricsRecord.FILENAME)
    log.info("wrote %s", out_dir / "metrics.json")
    return path
