"""The work dir of a training run: which checkpoint to resume from, refusing a folder that holds
another run, and the JSON-lines training log (``log.json``), cut back to the resume point."""
from __future__ import annotations

import json
from pathlib import Path

from tinlib.config import Config, diff_configs
from tinlib.engine.errors import RunError
from tinlib.io import atomic_write_text


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when the file is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def resolve_resume(work_dir: Path, resume: str | None) -> Path | None:
    """The checkpoint to resume from: ``"auto"`` -> ``work_dir/latest.pth`` if present (else None);
    a path -> that file (:class:`RunError` if missing); None -> no resume."""
    if resume is None:
        return None
    if resume == "auto":
        latest = work_dir / "latest.pth"
        return latest if latest.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise RunError(f"--resume {resume}: no such checkpoint")
    return path


def check_work_dir(work_dir: Path, cfg: Config, resume_from: Path | None) -> list[str]:
    """Refuse a work dir that holds another run (another config, or a checkpoint without
    ``--resume``, or changed model settings on resume) with :class:`RunError`; returns warnings
    about other settings that changed since the checkpoint (``run.json`` holds the old config)."""
    record = read_json(work_dir / "run.json")
    has_ckpt = (work_dir / "latest.pth").is_file()
    if record is None and not has_ckpt:
        return []
    old_name = (record or {}).get("config_name")
    if old_name is not None and old_name != cfg.name:
        raise RunError(f"work dir {work_dir} holds a run of config {old_name!r}, not {cfg.name!r}; "
                       "choose another --work-dir")
    if resume_from is None and has_ckpt:
        epoch = (record or {}).get("epoch", "?")
        raise RunError(f"work dir {work_dir} already holds a run of {cfg.name} (checkpoint after epoch {epoch}); "
                       "continue it with --resume auto, or choose another --work-dir")
    warnings = []
    if record and record.get("config"):
        changed = diff_configs(record["config"], cfg.to_dict())
        fatal = [k for k in changed if k.startswith("model.") and k not in ("model.pretrained", "model.load_from")]
        if fatal and resume_from is not None:
            raise RunError(f"work dir {work_dir}: cannot resume, the model settings changed ({', '.join(fatal)}); "
                           "choose another --work-dir")
        if changed and resume_from is not None:
            warnings.append(f"resuming with changed settings: {', '.join(changed)}")
    return warnings


def truncate_log(log_path: Path, epoch_done: int, inner_done: int = 0) -> None:
    """Drop the lines of ``log_path`` written after the position a run resumes from (``epoch_done``
    whole epochs plus ``inner_done`` iterations of the next one): those iterations are redone.
    Lines cut by a kill are dropped as well; header lines stay."""
    if not log_path.is_file():
        return
    kept = []
    for line in log_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill
        if "epoch" in entry and "mode" in entry:
            after = entry["epoch"] > epoch_done + 1 or (entry["epoch"] == epoch_done + 1 and (
                entry["mode"] != "train" or entry.get("iter", 0) > inner_done))
            if after:
                continue
        kept.append(line)
    atomic_write_text(log_path, "".join(k + "\n" for k in kept))


__all__ = ["check_work_dir", "read_json", "resolve_resume", "truncate_log"]
