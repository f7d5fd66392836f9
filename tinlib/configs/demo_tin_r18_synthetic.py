"""CPU demo: TIN ResNet-18 from scratch on the embedded synthetic dataset (sthv1 layout).

``make demo`` writes the data (by hand: ``tinlib prepare synthetic --out data/synthetic/sthv1
--height 40``). Validation and the best checkpoint use the val split; ``tinlib test`` the held-out
test split (20 videos per class each). Sized for two CPU cores, the three demo models side by side:
- half width (stages of 32..256 channels, 2.8M parameters): at 24x24 crops the last stage runs 3x3
  convs on 1x1 maps, whose backward is slow without AVX-512; a step is 3-5x cheaper and the
  synthetic classes need no more (TIN: 95-96 % top-1 after 16 epochs, two seeds);
- four stages (three reach 41 % at 24 pixels); frames 40 high, resized to 30, 24x24 crops;
- AdamW: SGD from scratch stays on the initial loss plateau at this budget; warmup over 2 epochs
  from 0.04 x lr, then cosine by iteration. The lr is for 16 videos on one process (``ref_gpus=1``):
  more processes scale it by the linear rule."""

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
