"""One module per ``tinlib`` command: its argument parser and a ``main(argv)`` that runs it under
:func:`tinlib.cli.run_command`. The work itself lives in the library modules they call."""
