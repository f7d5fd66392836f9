"""Run configurations: one module per MMAction2 model-zoo row (named exactly as in the zoo table),
TSM/TSN baselines trained with the same recipe on the same data, and small CPU demo configs.

Each module defines ``CONFIG``, a nested dict validated by :mod:`tinlib.config`; load one
with ``tinlib.config.load_config(name, overrides)`` or pass its name to ``tinlib train``.
"""
