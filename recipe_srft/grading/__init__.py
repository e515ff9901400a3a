"""Answer grading shared by the reward, the data preparation and the evaluation.

:mod:`recipe_srft.grading.extract` is the one answer-extraction layer (last non-empty ``\\boxed{}``,
LUFFY's ``</think>`` region, the ``luffy``/``boxed`` answer-extraction modes); the grading itself
(math-verify comparison under a time bound) is ``recipe_srft/reward.py``.
"""

from recipe_srft.grading.extract import (
    ANSWER_EXTRACTIONS,
    DEFAULT_ANSWER_EXTRACTION,
    answer_region,
    last_boxed,
    math_verify_extract,
)

__all__ = ["ANSWER_EXTRACTIONS", "DEFAULT_ANSWER_EXTRACTION", "answer_region", "last_boxed", "math_verify_extract"]
