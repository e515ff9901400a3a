"""Quiet start-up: hide verl's optional-engine import warnings (``torchtitan/veomni/automodel/mindspeed/megatron
engine is not available``), which every Ray worker repeats and which say nothing about an FSDP run.

``SRFT_VERL_WARNINGS=1`` in the environment shows them again. The filter is also put into ``PYTHONWARNINGS``
so that the Ray workers of a cluster started from this process (they inherit its environment) apply it when they
import verl; on a cluster started with ``ray start``, export ``PYTHONWARNINGS`` before ``ray start``.
"""

from __future__ import annotations

import os
import warnings

#: Set to 1 to see verl's import warnings again.
SHOW_WARNINGS_ENV = "SRFT_VERL_WARNINGS"
#: ``PYTHONWARNINGS`` entry: UserWarnings raised at import by ``verl/workers/engine/__init__.py``.
ENGINE_WARNINGS_FILTER = "ignore::UserWarning:verl.workers.engine"


def quiet_verl_imports(environ: dict | None = None) -> bool:
    """Installs the filter in this process and in ``environ`` (default ``os.environ``); False if switched off."""
    environ = os.environ if environ is None else environ
    if environ.get(SHOW_WARNINGS_ENV, "0") not in ("", "0"):
        return False
    warnings.filterwarnings("ignore", category=UserWarning, module=r"verl\.workers\.engine")
    current = [f for f in environ.get("PYTHONWARNINGS", "").split(",") if f]
    if ENGINE_WARNINGS_FILTER not in current:
        environ["PYTHONWARNINGS"] = ",".join(current + [ENGINE_WARNINGS_FILTER])
    return True
