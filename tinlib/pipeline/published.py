"""A model-zoo row's published checkpoint evaluated here (``make evaluate-published-*``): downloaded
into torch's hub cache, tested with the config's own test setting, its records written to
``<results_dir>/<config>_published/``; and the published training log, for the curves.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from tinlib.errors import UserError
from tinlib.pipeline.runconfig import load_config, resolve, run_folder, run_overrides

log = logging.getLogger(__name__)


def published_checkpoint_url(cfg) -> str:
    """The URL of ``cfg``'s published checkpoint; :class:`UserError` naming the configs that have one
    when its ``published.checkpoint`` is empty."""
    url = cfg.published.checkpoint
    if not url:
        from tinlib.hub import EXTRA_PUBLISHED, PUBLISHED

        with_one = sorted(name for name in PUBLISHED if name not in EXTRA_PUBLISHED)
        raise UserError(f"{cfg.name} has no published checkpoint (its published.checkpoint is empty); configs with "
                        f"one: {', '.join(with_one)}")
    return url


def torchrun_test_command(config: str, checkpoint: str | os.PathLike, *, gpus: int, nodes: int = 1,
                          node_rank: int = 0, master_addr: str = "127.0.0.1", master_port: int = 29500,
                          run: str, overrides: dict | None = None, device: str = "auto") -> list[str]:
    """The ``torchrun`` command line of ``tinlib test config checkpoint`` (a local file; the layout as
    for :func:`tinlib.pipeline.launch.torchrun_prefix`) writing to the results folder ``run``."""
    from tinlib.pipeline.launch import set_arguments, torchrun_prefix

    cmd = torchrun_prefix(gpus=gpus, nodes=nodes, node_rank=node_rank, master_addr=master_addr,
                          master_port=master_port)
    cmd += ["-m", "tinlib", "test", str(config), str(checkpoint), "--run", run, "--overwrite", "--no-progress",
            "--device", device]
    if overrides:
        cmd += ["--set", *set_arguments(overrides)]
    return cmd


def evaluate_published(config: str, *, data_root: str | os.PathLike | None = None, overrides: dict | None = None,
                       results_dir: str | os.PathLike = "results", device: str = "auto", gpus: int = 1,
                       nodes: int = 1, node_rank: int = 0, master_addr: str = "127.0.0.1", master_port: int = 29500,
                       batch_size: int | None = None, num_workers: int | None = None, progress: bool = True,
                       fetch_log: bool = True) -> dict[str, Any]:
    """Download ``config``'s published checkpoint (``published.checkpoint``; override it to evaluate
    another published file the same way) and test it with the config's test setting.

    Writes ``metrics.json`` (the checkpoint's URL, local path and sha256 under ``checkpoint``) and
    ``scores.npz`` to ``<results_dir>/<config>_published/``; a second call reuses the cached file.
    More than one process in all (``gpus`` x ``nodes``) runs ``tinlib test`` under torchrun (each
    node downloads into its own cache); ``batch_size``, ``num_workers`` and ``progress`` apply to a
    single process. ``fetch_log`` also downloads the published ``log.json`` (a failure only warns).
    Returns the ``metrics.json`` record as a dict (empty on nodes other than rank 0).
    """
    from tinlib.hub import DownloadError, published_run, resolve_checkpoint
    from tinlib.pipeline.launch import run_torchrun

    cfg = resolve(config, data_root=data_root, overrides=overrides, results_dir=results_dir, quiet=True)
    url = published_checkpoint_url(cfg)
    checkpoint = resolve_checkpoint(url)
    run = published_run(cfg.name)
    if fetch_log and cfg.published.log_json:
        try:
            published_log_file(cfg, fetch=True)
        except DownloadError as err:
            log.warning("the published training log is not available (%s); the curves will lack it", err)
    world = int(gpus) * int(nodes)
    if world > 1:
        applied = run_overrides(load_config(config), data_root, overrides, results_dir)
        run_torchrun(torchrun_test_command(config, checkpoint, gpus=gpus, nodes=nodes, node_rank=node_rank,
                                           master_addr=master_addr, master_port=master_port, run=run,
                                           overrides=applied, device=device))
        if node_rank != 0:
            return {}
    else:
        from tinlib.engine.evaluate import evaluate

        evaluate(cfg, checkpoint, split="test", run=run, device=device, batch_size=batch_size,
                 num_workers=num_workers, overwrite=True, progress=progress)
    return stamp_url(run_folder(cfg, run) / "metrics.json", url)


def stamp_url(metrics_file: str | os.PathLike, url: str) -> dict[str, Any]:
    """Record where the evaluated checkpoint came from (``checkpoint.url``) in ``metrics_file``."""
    from tinlib.records import MetricsRecord

    record = MetricsRecord.read(metrics_file)
    record.checkpoint.url = url
    record.write(metrics_file)
    return record.to_dict()


def published_log_file(cfg, *, fetch: bool = False) -> Path | None:
    """The local copy of ``cfg``'s published ``log.json``: from the cache, or downloaded when
    ``fetch``; None when the config has none or (without ``fetch``) it is not cached yet."""
    from tinlib.hub import cached_published, download_url, published_file_name

    url = cfg.published.log_json
    if not url:
        return None
    if not fetch:
        return cached_published(cfg.name, "json", url=url)
    return download_url(url, file_name=published_file_name(cfg.name, "json", url))


def published_log(config: str, *, overrides: dict | None = None, fetch: bool = False):
    """The published training log of ``config`` in the kit's log record shape
    (:class:`tinlib.records.TrainingLog`), or None when there is none: the config has no published
    log, or it is not in the cache (``tinlib fetch CONFIG --what json`` and ``make
    evaluate-published-*`` put it there; ``fetch`` downloads it, a failed download only warns)."""
    from tinlib.hub import DownloadError
    from tinlib.report.analysis import read_published_log

    try:
        path = published_log_file(load_config(config, overrides), fetch=fetch)
    except DownloadError as err:
        log.warning("the published training log is not available: %s", err)
        return None
    return read_published_log(path) if path is not None else None
