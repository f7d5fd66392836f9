"""Training, evaluation and latency: turn a config into a checkpoint, metrics and timings.

One concern per module; importing the package imports none of them. Their command lines are in
``tinlib.commands``; the data loaders are ``tinlib.data.loader``, a run's seeds ``tinlib.seeding``."""
