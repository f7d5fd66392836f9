"""Checkpoints: read safely (:mod:`.read`), recognise the upstream layout and map its keys
(:mod:`.layouts`), check the architecture (:mod:`.arch`), load strictly (:mod:`.load`), save and
release (:mod:`.save`)."""
from __future__ import annotations

from tinlib.checkpoint.arch import ArchMismatchError
from tinlib.checkpoint.layouts import LoadReport, map_state_dict
from tinlib.checkpoint.load import MisfitError, describe_misfit, load_checkpoint, load_pretrained_backbone
from tinlib.checkpoint.read import CheckpointError, extract_state_dict, read_checkpoint
from tinlib.checkpoint.save import publish_checkpoint, save_checkpoint

__all__ = ["ArchMismatchError", "CheckpointError", "LoadReport", "MisfitError", "describe_misfit",
           "extract_state_dict", "load_checkpoint", "load_pretrained_backbone", "map_state_dict",
           "publish_checkpoint", "read_checkpoint", "save_checkpoint"]
