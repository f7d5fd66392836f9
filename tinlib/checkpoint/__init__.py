"""Checkpoints: read safely (:mod:`.read`), recognise the upstream layout and map its keys
(:mod:`.layouts`), check the architecture (:mod:`.arch`), load strictly (:mod:`.load`), save and
release (:mod:`.save`).
"""
from __future__ import annotations

from tinlib.checkpoint.arch import ArchInfo, ArchMismatchError, check_arch, checkpoint_arch, model_arch
from tinlib.checkpoint.layouts import BACKBONE_ONLY_LAYOUTS, LoadReport, detect_layout, map_state_dict
from tinlib.checkpoint.load import TORCHVISION_URL, load_checkpoint, load_pretrained_backbone
from tinlib.checkpoint.read import CheckpointError, extract_state_dict, read_checkpoint
from tinlib.checkpoint.save import publish_checkpoint, save_checkpoint, verify_published
from tinlib.io import sha256_of

__all__ = ["BACKBONE_ONLY_LAYOUTS", "TORCHVISION_URL", "ArchInfo", "ArchMismatchError", "CheckpointError",
           "LoadReport", "check_arch", "checkpoint_arch", "detect_layout", "extract_state_dict", "load_checkpoint",
           "load_pretrained_backbone", "map_state_dict", "model_arch", "publish_checkpoint", "read_checkpoint",
           "save_checkpoint", "sha256_of", "verify_published"]
