"""TSN ResNet-50 baseline on TIN's sthv2 recipe: tin_r50_1x1x8_40e_sthv2_rgb with only the temporal
module changed (a baseline of this kit, not an MMAction2 zoo row)."""
from tinlib.config import merge
from tinlib.configs.tin_r50_1x1x8_40e_sthv2_rgb import CONFIG as _TIN

CONFIG = merge(_TIN, dict(
    description="TSN R50 1x1x8, 40 epochs, Something-Something V2, ImageNet init, TIN's recipe (baseline)",
    model=dict(arch="tsn_r50", shift_div=None),
    zoo=dict(top1=None, top5=None, ref_top1=None, ref_top5=None, gpu_mem=None, flops=32959365120, params=23864558),
    published=dict(checkpoint="", log="", log_json=""),  # nothing published for this baseline
))
