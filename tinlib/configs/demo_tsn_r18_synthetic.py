"""CPU demo baseline: TSN ResNet-18 with exactly the recipe of demo_tin_r18_synthetic."""
from tinlib.config import merge
from tinlib.configs.demo_tin_r18_synthetic import CONFIG as _TIN

CONFIG = merge(_TIN, dict(
    description="Demo: TSN R18 1x1x8 on the synthetic temporal dataset, CPU-sized (baseline)",
    model=dict(arch="tsn_r18", shift_div=None),
))
