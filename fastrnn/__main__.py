"""``python -m fastrnn``: the command line (see :mod:`fastrnn.cli`)."""

import sys

from fastrnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
