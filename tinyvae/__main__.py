"""``python -m tinyvae COMMAND ...``: the ``tinyvae`` command, for when the script is not on the PATH."""

import sys

from .run.cli import main

if __name__ == "__main__":
    sys.exit(main())
