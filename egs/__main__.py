"""``python -m egs``: the command line of :mod:`egs.cli.main`."""
import sys

from egs.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
