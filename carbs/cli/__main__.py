"""``python -m carbs.cli``: the ``carbs`` command without the console script."""

import sys

from carbs.cli import main

# Guarded: worker processes started with "spawn" (the dashboard's analysis) import this module.
if __name__ == "__main__":
    sys.exit(main())
