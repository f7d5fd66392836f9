"""CPU demo: TIN ResNet-18 from scratch on the embedded synthetic dataset (sthv1 layout).

Write the data first (``tinlib prepare synthetic --out data/synthetic/sthv1`` or
``tinlib.data.synthetic.write_synthetic``) and point ``data.root`` at it if it lives elsewhere.
Small frames, 8 segments, 8 videos per batch; the lr is stated for that batch on one process
(``ref_gpus=1``), so more processes scale it by the linear rule. Cosine by iteration with a
one-epoch warmup, as the sthv2 row. No ImageNet weights (no downloads).
"""

CONFIG = dict(
    description="Demo: TIN R18 1x1x8 on the synthetic temporal dataset, CPU-sized",
    model=dict(
        arch="tin_r18",
        num_classes=11,
        num_segments=8,
        dropout=0.5,
        shift_div=4,
        init_std=0.01,
        pretrained=None,
    ),
    data=dict(
        dataset="synthetic-sthv1",
        kind="rawframes",
        root="data/synthetic/sthv1",
        train_ann="sthv1_train_list_rawframes.txt",
        train_prefix="20bn-something-something-v1",
        val_ann="sthv1_val_list_rawframes.txt",
        val_prefix="20bn-something-something-v1",
        test_ann="sthv1_val_list_rawframes.txt",
        test_prefix="20bn-something-something-v1",
        filename_tmpl="{:05}.jpg",
        videos_per_gpu=8,
        val_videos_per_gpu=8,
        test_videos_per_gpu=8,
        workers_per_gpu=2,
        scale_size=64,
        input_size=56,
        multi_scale_crop=True,
        flip=False,
    ),
    optim=dict(lr=0.02, momentum=0.9, weight_decay=5e-4, fc_lr5=True, grad_clip=20.0, ref_gpus=1,
               ref_videos_per_gpu=8, scale_lr=True),
    schedule=dict(policy="cosine", by_epoch=False, min_lr_ratio=None, min_lr=0.0, warmup="linear",
                  warmup_epochs=1, warmup_ratio=0.1),
    train=dict(epochs=6, val_interval=1, checkpoint_interval=1, log_interval=10, save_best="top1_acc"),
    test=dict(num_clips=1, crop="center", average_clips="prob"),
    zoo=dict(dataset="synthetic (sthv1 layout)", resolution="height 100", gpus="cpu", backbone="ResNet18",
             pretrain="none"),
)
