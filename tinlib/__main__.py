import sys

from tinlib.cli import main

sys.exit(main())
