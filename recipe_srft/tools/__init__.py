"""Tools around a run: the dry run (``python -m recipe_srft.tools.dry_run``), the metric plot
(``python -m recipe_srft.tools.plot``), the console-metrics reader, and the quiet start-up filter."""
