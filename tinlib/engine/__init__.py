"""Training, evaluation and latency: turn a config into a checkpoint, metrics and timings.

Modules (one concern each; importing this package imports none of them):

- ``errors``: ``RunError`` and ``NonFiniteLossError`` (``tinlib.errors.UserError`` subclasses).
- ``torch_settings``: ``torch_settings(threads=, deterministic=, cudnn_benchmark=)`` for the
  duration of a run, ``autocast(device, amp)``.
- ``environment``: git commit, package versions, device, time, as the run records store them.
- ``build``: the recognizer of a config, BN training modes, checkpoint-fits-config check.
- ``splits``: the train/val/test datasets of a config and the checks on their files and labels.
- ``optim``: MMAction2's TSM parameter groups (fc_lr5), SGD, gradient clipping, the linear scaling
  rule (``scaled_lr``).
- ``schedule``: mmcv 0.x LR policies (cosine by epoch/iteration, step) with warmup.
- ``metrics``: ``top_k_accuracy``, ``mean_class_accuracy`` (MMAction2 definitions), confusion matrix.
- ``dist``: torchrun process groups (NCCL/gloo) and the collectives used; ``syncbn``: SyncBN on CPU.
- ``workdir``: resume, refusing a work dir of another run, the JSON-lines training log.
- ``train``: ``train(cfg, ...)``, ``train_step``; ``evaluate``: ``evaluate(cfg, checkpoint, ...)``;
  ``latency``: ``benchmark(cfg, archs)``. Their command lines are in ``tinlib.commands``.

The data loaders (one stack for training, validation and testing) are ``tinlib.data.loader``; the
seeds of a run (``derive_seed``, ``seed_everything``, RNG state for checkpoints) are ``tinlib.seeding``,
which the loaders use too.
"""
