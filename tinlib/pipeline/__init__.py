"""What the make targets run (``python -m tinlib.pipeline``): notebook steps kept fresh like make
rules, and what the notebooks launch. Submodules load on use."""
