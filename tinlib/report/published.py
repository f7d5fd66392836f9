"""The model-zoo rows we regenerate: MMAction2's published TIN results (values as published)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ZooRow:
    dataset: str  # section title
    config: str
    resolution: str
    gpus: str
    backbone: str
    pretrain: str
    top1: float
    top5: float
    reference_top1: float | None  # original TIN repo, trained with the same settings
    reference_top5: float | None
    gpu_mem_mib: int
    flops: int  # mmcv multiply-accumulate count for one 8x224x224 video (metafile)
    params: int


ZOO = [
    ZooRow("Something-Something V1", "tin_r50_1x1x8_40e_sthv1_rgb", "height 100", "8x4", "ResNet50", "ImageNet",
           44.25, 73.94, 44.04, 72.72, 6181, 32_962_097_536, 23_895_566),
    ZooRow("Something-Something V2", "tin_r50_1x1x8_40e_sthv2_rgb", "height 240", "8x4", "ResNet50", "ImageNet",
           56.70, 83.62, 56.48, 83.45, 6185, 32_962_097_536, 23_895_566),
    ZooRow("Kinetics-400", "tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb", "short-side 256", "8x4", "ResNet50",
           "TSM-Kinetics400", 70.89, 89.89, None, None, 6187, 32_965_800_320, 24_358_640),
]
ZOO_BY_CONFIG = {row.config: row for row in ZOO}
