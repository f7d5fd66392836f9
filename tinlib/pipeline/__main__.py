"""``python -m tinlib.pipeline ...`` (see :mod:`tinlib.pipeline.cli`)."""
import sys

from tinlib.pipeline.cli import main

sys.exit(main())
