"""Training, evaluation and latency: turn a config into a checkpoint, metrics and timings.

Modules (one concern each; importing this package imports none of them):

- ``config``: the config schema, ``load_config(name_or_path, overrides)``, ``--set`` overrides,
  the linear scaling rule (``scaled_lr``).
- ``optim``: MMAction2's TSM parameter groups (fc_lr5), SGD, gradient clipping.
- ``schedule``: mmcv 0.x LR policies (cosine by epoch/iteration, step) with warmup.
- ``metrics``: ``top_k_accuracy``, ``mean_class_accuracy`` (MMAction2 definitions), confusion matrix.
- ``dist``: torchrun process groups (NCCL/gloo) and the collectives used; ``syncbn``: SyncBN on CPU.
- ``train``: ``train(cfg, ...)`` and ``tinlib train``; ``evaluate``: ``evaluate(cfg, checkpoint, ...)``
  and ``tinlib test``; ``latency``: ``benchmark(cfg, archs)`` and ``tinlib latency``.
"""
