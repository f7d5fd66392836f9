"""TIN ResNet-50 fine-tuned from TSM-K400, 8 segments, 50 epochs, Kinetics-400 (MMAction2 0.x zoo row).

Recipe (MMAction2 0.x config of this name): ImageNet init, then the TSM-K400 checkpoint
(``model.load_from``, fetched into torch's hub cache; offline, ``tinlib fetch
tsm_r50_1x1x8_50e_kinetics400_rgb`` says where it goes) loaded non-strictly: TSM's block conv1
weights are skipped as MMAction2 does (``tsm_conv1="skip"``; ``transfer`` moves them); SGD lr 0.01
for 8 GPUs x 6 videos, wd 1e-4, fc_lr5, clip 20; step decay x0.1 at epochs 20 and 40, no warmup;
flip 0.5; dropout 0.5; validation every 5 epochs."""
from tinlib.config import merge
from tinlib.configs.tin_r50_1x1x8_40e_sthv1_rgb import CONFIG as _STHV1

_RELEASE = "https://download.openmmlab.com/mmaction/recognition/tin/tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb/"

CONFIG = merge(_STHV1, dict(
    description="TIN R50 1x1x8, 50 epochs, Kinetics-400, fine-tuned from TSM-K400 (MMAction2 0.x recipe)",
    model=dict(
        num_classes=400,
        dropout=0.5,
        load_from="published:tsm_r50_1x1x8_50e_kinetics400_rgb",
        allow_arch_mismatch=True,  # TSM weights into TIN, by design of this row
        load_strict=False,
        tsm_conv1="skip",
    ),
    data=dict(
        dataset="kinetics400",
        root="data/kinetics400",
        train_ann="kinetics400_train_list_rawframes.txt",
        train_prefix="rawframes_train",
        val_ann="kinetics400_val_list_rawframes.txt",
        val_prefix="rawframes_val",
        test_ann="kinetics400_val_list_rawframes.txt",
        test_prefix="rawframes_val",
        filename_tmpl="img_{:05}.jpg",
        flip=True,
    ),
    optim=dict(lr=0.01, weight_decay=1e-4, grad_clip=20.0),
    schedule=dict(
        policy="step",
        by_epoch=True,
        steps=[20, 40],
        gamma=0.1,
        min_lr_ratio=None,
        min_lr=None,
        warmup=None,
    ),
    train=dict(epochs=50, val_interval=5),
    zoo=dict(
        dataset="Kinetics-400",
        resolution="short-side 256",
        pretrain="TSM-Kinetics400",
        top1=70.89,
        top5=89.89,
        ref_top1=None,
        ref_top5=None,
        gpu_mem=6187,
        flops=32965800320,
        params=24358640,
    ),
    published=dict(
        checkpoint=_RELEASE + "tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb_20200810-4a146a70.pth",
        log=_RELEASE + "20200809_142447.log",
        log_json=_RELEASE + "20200809_142447.log.json",
    ),
))
