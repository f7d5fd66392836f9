"""What the make targets run: notebook steps kept fresh like make rules (``steps``) in the lists of
``recipes``, what the notebooks launch (``launch``, ``runconfig``, ``published``, ``ablation``),
the data check (``checks``) and ``python -m tinlib.pipeline`` (``cli``). Submodules load on use.
"""
