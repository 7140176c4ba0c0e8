"""Run Hearth from a source checkout: `python main.py` opens the window, subcommands are the CLI."""

import sys

from desktop.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
