"""TIN ResNet-50, 8 segments, 40 epochs, Something-Something V2 (MMAction2 0.x zoo row).

As the sthv1 row except: frames 'img_{:05}.jpg'; cosine **by iteration** down to 0 (min_lr=0)
after the one-epoch linear warmup; validation every 2 epochs.
"""
from tinlib.config import merge
from tinlib.configs.tin_r50_1x1x8_40e_sthv1_rgb import CONFIG as _STHV1

_RELEASE = "https://download.openmmlab.com/mmaction/recognition/tin/tin_r50_1x1x8_40e_sthv2_rgb/"

CONFIG = merge(_STHV1, dict(
    description="TIN R50 1x1x8, 40 epochs, Something-Something V2, ImageNet init (MMAction2 0.x recipe)",
    data=dict(
        dataset="sthv2",
        root="data/sthv2",
        train_ann="sthv2_train_list_rawframes.txt",
        val_ann="sthv2_val_list_rawframes.txt",
        test_ann="sthv2_val_list_rawframes.txt",
        filename_tmpl="img_{:05}.jpg",
    ),
    schedule=dict(
        policy="cosine",
        by_epoch=False,
        min_lr_ratio=None,
        min_lr=0.0,
        warmup="linear",
        warmup_epochs=1,
        warmup_ratio=0.1,
    ),
    train=dict(val_interval=2),
    zoo=dict(
        dataset="Something-Something V2",
        resolution="height 240",
        top1=56.70,
        top5=83.62,
        ref_top1=56.48,
        ref_top5=83.45,
        gpu_mem=6185,
    ),
    published=dict(
        checkpoint=_RELEASE + "tin_r50_1x1x8_40e_sthv2_rgb_20200912-b27a7337.pth",
        log=_RELEASE + "20200912_225451.log",
        log_json=_RELEASE + "20200912_225451.log.json",
    ),
))
