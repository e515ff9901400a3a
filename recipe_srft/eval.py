"""Alias kept for scripts: ``python -m recipe_srft.eval`` = ``python -m recipe_srft.evaluation``
(:mod:`recipe_srft.evaluation.cli`)."""

import sys

from recipe_srft.evaluation.cli import build_parser, config_from_args, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
