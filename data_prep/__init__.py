"""Data preparation for the SRFT recipe: converters to verl parquet and a validator.

Command-line tools (each documents its options with ``--help``):

* ``python -m data_prep.luffy``     LUFFY/OpenR1 training parquet (``target`` demos) -> normalised parquet
* ``python -m data_prep.gsm8k``     GSM8K jsonl -> training parquet (solutions as demonstrations)
* ``python -m data_prep.math``      MATH / MATH-500 jsonl -> training parquet
* ``python -m data_prep.chat``      generic chat jsonl -> training parquet
* ``python -m data_prep.eval_sets`` evaluation benchmarks -> parquet without demonstrations
* ``python -m data_prep.validate``  schema, token-length, ground-truth, reward (demonstration) and duplicate
  checks (+ fixes)

Library modules: :mod:`data_prep.common` (errors, reading, report, CLI skeleton),
:mod:`data_prep.schema` (the output row schema), :mod:`data_prep.templates`
(prompt templates), :mod:`data_prep.answers` (answer normalisation; ``\\boxed{}`` answers are read
by :mod:`recipe_srft.grading.extract`, the reward's own extraction layer).
"""

from data_prep.common import DataPrepError

__all__ = ["DataPrepError"]
