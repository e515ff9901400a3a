"""Entry point of the ``verl.plugins`` group: verl imports this in every process.

Registers the CPU runtime (platform ``cpu``, rollout ``hf``; inert unless selected)
and the SRFT trainer/agent loops when they are available.
"""

import importlib
import logging

logger = logging.getLogger(__name__)

for _module in ("recipe_srft.cpu", "recipe_srft.integration.trainer"):
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as exc:  # the trainer module may not exist in partial installs
        if exc.name != _module:
            raise
