"""Reports: model-zoo tables (``zoo``), analyses of evaluation results (``analysis``), what TIN's
interlace learned (``interlace``), figures (``plots``), HTML reports (``html``), the gradient
ablation's statistics (``ablation``) and the notebooks' read-only table helpers (``workflow``).
Reports read run records; they never train or launch (that is :mod:`tinlib.pipeline`).

Submodules are imported on use: ``tinlib zoo`` stays fast.
"""
