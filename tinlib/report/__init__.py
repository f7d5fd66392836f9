"""Reports read run records; they never train or launch (that is :mod:`tinlib.pipeline`): the
model-zoo page (``zoo`` on ``results``), analyses (``analysis``, ``interlace``, ``ablation``),
the notebooks' tables and figures (``tables``, ``plots``, ``workflow``) and HTML reports (``html``).
Submodules load on use, so ``tinlib zoo`` stays fast.
"""
