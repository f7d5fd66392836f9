"""TIN ResNet-50, 8 segments, 40 epochs, Something-Something V1 (MMAction2 0.x zoo row).

Recipe (MMAction2 0.x config of this name): ImageNet init; SGD lr 0.02 for 8 GPUs x 6 videos, momentum 0.9, wd 5e-4,
fc_lr5 groups, clip 20; cosine by epoch down to 0.5 x base (min_lr_ratio) with a one-epoch linear
warmup from 0.1; validation every 5 epochs; frames '{:05}.jpg'; no flip; dropout 0.8.

``published``: the files MMAction2 0.x released for this row (checkpoint, training log, log.json).
"""

_RELEASE = "https://download.openmmlab.com/mmaction/recognition/tin/tin_r50_1x1x8_40e_sthv1_rgb/"

CONFIG = dict(
    description="TIN R50 1x1x8, 40 epochs, Something-Something V1, ImageNet init (MMAction2 0.x recipe)",
    model=dict(
        arch="tin_r50",
        num_classes=174,
        num_segments=8,
        dropout=0.8,
        shift_div=4,
        init_std=0.001,
        interlace_grad="adjoint",
        pretrained="torchvision://resnet50",
        load_from=None,
    ),
    data=dict(
        dataset="sthv1",
        kind="rawframes",
        root="data/sthv1",
        train_ann="sthv1_train_list_rawframes.txt",
        train_prefix="rawframes",
        val_ann="sthv1_val_list_rawframes.txt",
        val_prefix="rawframes",
        test_ann="sthv1_val_list_rawframes.txt",
        test_prefix="rawframes",
        filename_tmpl="{:05}.jpg",
        videos_per_gpu=6,
        val_videos_per_gpu=6,
        test_videos_per_gpu=1,
        workers_per_gpu=2,
        scale_size=256,
        input_size=224,
        multi_scale_crop=True,
        flip=False,
    ),
    optim=dict(
        lr=0.02,
        momentum=0.9,
        weight_decay=5e-4,
        fc_lr5=True,
        grad_clip=20.0,
        ref_gpus=8,
        ref_videos_per_gpu=6,
        scale_lr=True,
    ),
    schedule=dict(
        policy="cosine",
        by_epoch=True,
        min_lr_ratio=0.5,
        min_lr=None,
        warmup="linear",
        warmup_epochs=1,
        warmup_ratio=0.1,
    ),
    train=dict(
        epochs=40,
        val_interval=5,
        checkpoint_interval=1,
        log_interval=20,
        save_best="top1_acc",
    ),
    test=dict(num_clips=1, crop="center", average_clips=None),
    zoo=dict(
        dataset="Something-Something V1",
        resolution="height 100",
        gpus="8x4",
        backbone="ResNet50",
        pretrain="ImageNet",
        top1=44.25,
        top5=73.94,
        ref_top1=44.04,
        ref_top5=72.72,
        gpu_mem=6181,
        flops=32962097536,
        params=23895566,
    ),
    published=dict(
        checkpoint=_RELEASE + "tin_r50_1x1x8_40e_sthv1_rgb_20200729-4a33db86.pth",
        log=_RELEASE + "20200729_034132.log",
        log_json=_RELEASE + "20200729_034132.log.json",
    ),
)
