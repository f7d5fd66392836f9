"""Run configurations: one module per MMAction2 model-zoo row (named as in the zoo table), TSM/TSN
baselines on the same recipes, and small CPU demos. Each defines ``CONFIG``, a nested dict that
:func:`tinlib.config.load_config` validates (``tinlib train NAME`` takes the name)."""
