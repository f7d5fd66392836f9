"""Reports and the notebook workflow: model-zoo tables (``zoo``), analyses of evaluation results
(``analysis``), what TIN's interlace learned (``interlace``), figures (``plots``), HTML reports
(``html``), the functions the notebooks call (``workflow``) and the make pipeline (``pipeline``).

Submodules are imported on use: ``tinlib zoo`` and the make targets' data checks stay fast.
"""
