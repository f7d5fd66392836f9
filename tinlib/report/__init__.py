"""Reports read run records and never train or launch (that is :mod:`tinlib.pipeline`): the model-zoo
page, analyses, the notebooks' tables and figures, HTML reports. Submodules load on use."""
