"""CPU demo: TIN ResNet-18 from scratch on the embedded synthetic dataset (sthv1 layout).

Write the data first (``make demo`` does; by hand ``tinlib prepare synthetic --out
data/synthetic/sthv1 --height 40``) and point ``data.root`` at it if it lives elsewhere.
Validation during training (and the best checkpoint) uses the val split; ``tinlib test``
evaluates on the held-out test split, videos that neither training nor checkpoint selection saw
(20 per class each with the ``demo`` size).

Sized for ``make demo`` on two CPU cores (the three demo models train side by side, one torch thread
each there; on more cores each takes its share, up to 4): a ResNet-18 at half width (stages of 32,
64, 128, 256 channels, 2.8M parameters instead of 11.2M), frames 40 pixels high resized to 30,
random 24x24 crops (no scale jitter), 8 segments, 16 videos per batch, 16 epochs, validation after
epochs 8 and 16. At this input the last stage runs 3x3 convolutions on 1x1 maps, whose backward pass
is slow on CPUs without AVX-512; halving the width makes a step about 5x cheaper there (3x with
AVX-512) and the synthetic classes need no more capacity: with 16 epochs TIN reaches 95-96 % top-1
on the test split (two seeds), more than the full-width net did with 12. Fewer stages do not work at
24 pixels (three stages: 41 % top-1). Without ImageNet weights SGD at this budget stays on the loss
plateau that training from scratch starts on; AdamW (same parameter groups, no fc lr x5) leaves it
after a few epochs. Warmup over 2 epochs from 0.04 x lr, then cosine by iteration to 0. The lr is
stated for that batch on one process (``ref_gpus=1``, ``ref_videos_per_gpu=16``): more processes
scale it by the linear rule.
"""

CONFIG = dict(
    description="Demo: TIN R18 1x1x8 on the synthetic temporal dataset, CPU-sized",
    model=dict(
        arch="tin_r18",
        num_classes=11,
        num_segments=8,
        dropout=0.2,
        shift_div=4,
        init_std=0.01,
        base_channels=32,
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
        test_ann="sthv1_test_list_rawframes.txt",
        test_prefix="20bn-something-something-v1",
        filename_tmpl="{:05}.jpg",
        videos_per_gpu=16,
        val_videos_per_gpu=16,
        test_videos_per_gpu=16,
        workers_per_gpu=0,
        scale_size=30,
        input_size=24,
        multi_scale_crop=False,
        flip=False,
    ),
    optim=dict(type="adamw", lr=0.003, momentum=0.9, weight_decay=1e-4, fc_lr5=False, grad_clip=20.0, ref_gpus=1,
               ref_videos_per_gpu=16, scale_lr=True),
    schedule=dict(policy="cosine", by_epoch=False, min_lr_ratio=None, min_lr=0.0, warmup="linear",
                  warmup_epochs=2, warmup_ratio=0.04),
    train=dict(epochs=16, val_interval=8, checkpoint_interval=1, log_interval=10, save_best="top1_acc", seed=0),
    test=dict(num_clips=1, crop="center", average_clips="prob"),
    zoo=dict(dataset="synthetic (sthv1 layout)", resolution="height 40, 24x24 crops", gpus="cpu",
             backbone="ResNet18 (half width)", pretrain="none"),
)
