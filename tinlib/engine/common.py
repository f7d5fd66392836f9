"""Pieces shared by training, evaluation and latency: seeding, environment record, building the
model and datasets from a config, loaders, and the checks that run before any heavy work."""
from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinlib.engine.config import Config


class RunError(RuntimeError):
    """A problem with the inputs of a run, found before the heavy work; the message says what to do."""


# --------------------------------------------------------------------------------------------
# Seeds and determinism
# --------------------------------------------------------------------------------------------
def derive_seed(*keys: int) -> int:
    """A 31-bit seed from integers (seed, epoch, rank, ...), stable across runs and platforms."""
    return int(np.random.SeedSequence([int(k) % (2 ** 63) for k in keys]).generate_state(1)[0] & 0x7FFFFFFF)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)  # also seeds every CUDA device


def set_deterministic(deterministic: bool, cudnn_benchmark: bool = False) -> None:
    """Deterministic kernels where PyTorch has them (warns about the others), cuDNN without autotuning."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = cudnn_benchmark


def global_torch_settings() -> dict:
    """Process-wide torch settings a run may change (threads, determinism, cuDNN flags)."""
    return {"threads": torch.get_num_threads(), "deterministic": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic, "cudnn_benchmark": torch.backends.cudnn.benchmark}


def restore_torch_settings(saved: dict) -> None:
    torch.set_num_threads(saved["threads"])
    torch.use_deterministic_algorithms(saved["deterministic"], warn_only=saved["warn_only"])
    torch.backends.cudnn.deterministic = saved["cudnn_deterministic"]
    torch.backends.cudnn.benchmark = saved["cudnn_benchmark"]


def random_seed() -> int:
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF


def rng_state() -> dict:
    """The global RNG states (python, numpy, torch, CUDA) as tensors and plain containers."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


# --------------------------------------------------------------------------------------------
# Environment record
# --------------------------------------------------------------------------------------------
def git_info() -> dict:
    """The commit of the tin-kit checkout this package runs from (None outside a git checkout).
    ``dirty`` says whether tracked files differ from it, leaving out ``results/``: what runs
    write there does not change the code that produced a run."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = None
        if commit:
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                     ":(exclude)results"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout
            dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"commit": commit, "dirty": dirty}


def package_versions() -> dict:
    import torchvision

    import tinlib

    versions = {"python": platform.python_version(), "tinlib": tinlib.__version__, "torch": torch.__version__,
                "torchvision": torchvision.__version__, "numpy": np.__version__}
    try:
        import triton  # noqa: F401

        versions["triton"] = triton.__version__
    except ImportError:
        pass
    versions["cuda"] = torch.version.cuda
    versions["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return versions


def device_info(device: torch.device | str | None = None) -> dict:
    info: dict[str, Any] = {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
                            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                            "hostname": platform.node()}
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if device is not None:
        info["device"] = str(device)
    return info


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------
def build_model(cfg: Config, *, pretrained: bool = True, load_from: bool = True, verbose: bool = True):
    """The recognizer of ``cfg.model`` with its ImageNet init and ``load_from`` checkpoint."""
    from tinlib.models import build_recognizer

    m = cfg.model
    model = build_recognizer(m.arch, m.num_classes, m.num_segments, dropout=m.dropout, shift_div=m.shift_div,
                             interlace_grad=m.interlace_grad, interlace_backend=m.interlace_backend,
                             pretrained=m.pretrained if pretrained else None, init_std=m.init_std)
    if load_from and m.load_from:
        from tinlib.checkpoint import CheckpointError, load_checkpoint

        try:
            load_checkpoint(model, m.load_from, strict=m.load_strict, tsm_conv1=m.tsm_conv1, verbose=verbose)
        except CheckpointError as err:
            raise RunError(f"model.load_from: {err}") from None
    if m.partial_bn:
        for bn in _norm_layers(model)[1:]:
            for p in bn.parameters(recurse=False):
                p.requires_grad_(False)
    return model


def _norm_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    from torch.nn.modules.batchnorm import _BatchNorm

    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


def set_train_mode(model: torch.nn.Module, cfg: Config) -> None:
    """``model.train()``, then BN layers back to eval mode for ``norm_eval`` (all) or
    ``partial_bn`` (all but the first), as MMAction2/TSM do at every ``train()``."""
    model.train()
    layers = _norm_layers(model)
    if cfg.model.norm_eval:
        for bn in layers:
            bn.eval()
    elif cfg.model.partial_bn:
        for bn in layers[1:]:
            bn.eval()


def check_checkpoint_fits(model, path: str | Path, cfg: Config, *, trusted: bool = False) -> Any:
    """Load ``path`` strictly into ``model``; a checkpoint that does not fit raises :class:`RunError`
    naming the likely cause (class count, segment count, architecture)."""
    from tinlib.checkpoint import CheckpointError, extract_state_dict, load_checkpoint, read_checkpoint

    path = Path(path)
    if not path.is_file():
        raise RunError(f"checkpoint not found: {path}")
    try:
        checkpoint = read_checkpoint(path, trusted=trusted)
        state = extract_state_dict(checkpoint, path)
    except CheckpointError as err:
        raise RunError(str(err)) from None
    hints = []
    for key in ("cls_head.fc_cls.weight", "cls_head.fc_cls.bias"):
        if key in state and state[key].shape[0] != cfg.model.num_classes:
            hints.append(f"the checkpoint has {state[key].shape[0]} classes ({key} {list(state[key].shape)}) but "
                         f"config {cfg.name} says model.num_classes={cfg.model.num_classes}")
            break
    meta = checkpoint.get("meta", {}) if isinstance(checkpoint, dict) else {}
    if isinstance(meta, dict) and meta.get("arch") and meta.get("arch") != cfg.model.arch:
        hints.append(f"the checkpoint was saved from {meta['arch']} but the config builds {cfg.model.arch}")
    try:
        report = load_checkpoint(model, path, strict=True, tsm_conv1=cfg.model.tsm_conv1, trusted=trusted,
                                 verbose=False)
    except CheckpointError as err:
        hint = ("\n" + "\n".join(hints)) if hints else ""
        raise RunError(f"checkpoint {path} does not fit config {cfg.name} ({cfg.model.arch}, "
                       f"{cfg.model.num_classes} classes, {cfg.model.num_segments} segments):{hint}\n{err}") from None
    return checkpoint, report


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
SPLITS = ("train", "val", "test")


def split_paths(cfg: Config, split: str) -> tuple[Path, Path]:
    """(annotation file, data prefix) of a split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    d = cfg.data
    ann, prefix = {"train": (d.train_ann, d.train_prefix), "val": (d.val_ann, d.val_prefix),
                   "test": (d.test_ann, d.test_prefix)}[split]
    return cfg.data_path(ann), cfg.data_path(prefix)


def check_data_paths(cfg: Config, splits: tuple[str, ...]) -> None:
    """The data root, the annotation lists and the frame/video folders must exist."""
    root = Path(cfg.data.root)
    problems = []
    if not root.is_dir():
        problems.append(f"data root {root} does not exist")
    for split in splits:
        ann, prefix = split_paths(cfg, split)
        if not ann.is_file():
            problems.append(f"{split} annotation list {ann} not found")
        if not prefix.is_dir():
            problems.append(f"{split} data folder {prefix} not found")
    if problems:
        raise RunError(f"config {cfg.name}: data for {cfg.data.dataset} is missing:\n  " + "\n  ".join(problems) +
                       "\nPrepare it with `tinlib prepare`, or point the config at it with --set data.root=DIR "
                       "(annotation lists and folders are relative to data.root).")


def build_split_dataset(cfg: Config, split: str):
    """The dataset of a split: training sampling/augmentation for ``train``; single-view test
    sampling for ``val`` (as MMAction2's validation); the config's test views for ``test``."""
    from tinlib.data import DataError, build_dataset

    ann, prefix = split_paths(cfg, split)
    d, t = cfg.data, cfg.test
    kwargs: dict[str, Any] = dict(kind=d.kind, num_segments=cfg.model.num_segments, filename_tmpl=d.filename_tmpl,
                                  start_index=d.start_index, scale_size=d.scale_size, input_size=d.input_size,
                                  num_classes=cfg.model.num_classes, skip_bad_samples=d.skip_bad_samples,
                                  video_backend=d.video_backend)
    if split == "train":
        kwargs.update(test_mode=False, flip=d.flip, multi_scale_crop=d.multi_scale_crop)
    elif split == "val":
        kwargs.update(test_mode=True, num_clips=1, test_crop="center", twice_sample=False)
    else:
        kwargs.update(test_mode=True, num_clips=t.num_clips, test_crop=t.crop, twice_sample=t.twice_sample)
    try:
        dataset = build_dataset(str(ann), str(prefix), **kwargs)
    except (DataError, FileNotFoundError, ValueError) as err:
        raise RunError(f"config {cfg.name}, {split} split: {err}") from None
    check_class_count(cfg, dataset, split)
    return dataset


def check_class_count(cfg: Config, dataset, split: str) -> None:
    labels = getattr(dataset, "labels", None)
    if labels is None or len(labels) == 0:
        if labels is not None:
            raise RunError(f"config {cfg.name}: the {split} split has no samples")
        return
    top = int(np.max(np.asarray(labels)))
    if top >= cfg.model.num_classes or int(np.min(np.asarray(labels))) < 0:
        raise RunError(f"config {cfg.name}: the {split} split has labels up to {top} but model.num_classes="
                       f"{cfg.model.num_classes}; fix the annotation list or set --set model.num_classes={top + 1}")
    declared = getattr(dataset, "num_classes", None)
    if isinstance(declared, int) and declared != cfg.model.num_classes:
        raise RunError(f"config {cfg.name}: the {split} dataset declares {declared} classes but model.num_classes="
                       f"{cfg.model.num_classes}")


def _worker_init(worker_id: int) -> None:
    # torch seeds each worker with base_seed + worker_id; derive numpy's and random's from it so
    # workers differ from each other and every epoch is reproducible.
    seed = torch.initial_seed()
    np.random.seed(seed % (2 ** 32))
    random.seed(seed)


def make_loader(dataset, batch_size: int, *, sampler, num_workers: int, generator: torch.Generator | None,
                pin_memory: bool = False, drop_last: bool = False):
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                                       pin_memory=pin_memory, drop_last=drop_last, generator=generator,
                                       worker_init_fn=_worker_init if num_workers > 0 else None,
                                       persistent_workers=False)


class ShardSampler(torch.utils.data.Sampler):
    """Evaluation sharding without padding: rank r takes indices r, r + W, r + 2W, ..."""

    def __init__(self, length: int, num_replicas: int = 1, rank: int = 0):
        self.length, self.num_replicas, self.rank = length, num_replicas, rank

    def __iter__(self):
        return iter(range(self.rank, self.length, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.num_replicas))


def print_main(ctx, *args: Any, **kwargs: Any) -> None:
    if ctx is None or ctx.is_main:
        print(*args, **kwargs, flush=True)


def eprint(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)
