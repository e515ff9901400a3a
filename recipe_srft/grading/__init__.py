"""Answer grading shared by the reward, the data preparation and the evaluation.

``recipe_srft/reward.py`` (verl's ``reward.custom_reward_function``) is a thin entry point; the
grading is this package, one module per role:

============  ==========================================================================================
module        role
============  ==========================================================================================
``extract``   the one answer-extraction layer (last non-empty ``\\boxed{}``, LUFFY's ``</think>`` region,
              the ``luffy``/``boxed`` answer-extraction modes), shared with ``data_prep``
``sources``   ``data_source`` -> canonical source -> grader family (``resolve_source``, ``KNOWN_SOURCES``)
``options``   the reward's options (``reward_kwargs``, ``SRFT_REWARD_*`` environment variables)
``graders``   the math, multiple-choice and GSM8K graders, their answer readers and guards
``verify``    the math-verify comparisons (run in a grading worker or inline)
``pool``      their time bound: the pool of grading worker subprocesses (``_serve``) and the memo
``score``     ``compute_score``: dispatch, think-format rule, the verl return contract
``loader``    loads this folder by path under a private name; the grading workers' entry file
============  ==========================================================================================

Standard library only at import time (math-verify is imported on first use), and the modules import
each other relatively only: verl loads ``reward.py`` by path inside its reward workers, where
``recipe_srft`` may not be importable, and ``reward.py`` then loads this folder through
:mod:`.loader` (see there) instead of ``recipe_srft.grading``.  Keep ``reward.py`` next to this folder.
"""

from .extract import (
    ANSWER_EXTRACTIONS,
    DEFAULT_ANSWER_EXTRACTION,
    answer_region,
    last_boxed,
    math_verify_extract,
)

__all__ = ["ANSWER_EXTRACTIONS", "DEFAULT_ANSWER_EXTRACTION", "answer_region", "last_boxed", "math_verify_extract"]
