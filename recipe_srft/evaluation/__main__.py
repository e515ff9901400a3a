"""``python -m recipe_srft.evaluation [options]``: see :mod:`recipe_srft.evaluation.cli`."""

import sys

from .cli import main

sys.exit(main())
