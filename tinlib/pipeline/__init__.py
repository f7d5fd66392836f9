"""What the make targets run: notebook steps with freshness (``steps``), the step lists of the demo,
the ablation, the model-zoo rows and the latency run (``recipes``), the data check (``checks``),
the launches the notebooks call (``launch``: preparation, training under torchrun or in process,
evaluation, latency), the run settings and places (``runconfig``), the gradient ablation's runs
(``ablation``) and the command line ``python -m tinlib.pipeline`` (``cli``).

Submodules are imported on use; ``steps``, ``recipes``, ``checks`` and ``cli`` need only the
standard library (the data check runs before anything is installed).
"""
