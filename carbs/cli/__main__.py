"""``python -m carbs.cli``: the ``carbs`` command without the console script."""

import sys

from carbs.cli import main

sys.exit(main())
