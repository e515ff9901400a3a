"""Which grader a ``data_source`` gets: canonical source names and the dispatch rule.

Dispatch (``data_source``, case-insensitive; exact name first, then the last path component, then
substring rules; ``-`` and spaces count as ``_``); the rules of each grader are in :mod:`.graders`:

========================  =========================================  ======
grader                    names (substring rules in this order)      think
========================  =========================================  ======
gsm8k (numeric)           gsm8k, demo_gsm8k ("openai/gsm8k")          off
multiple choice letter    gpqa, mmlu_pro, arc_c / arc_challenge /     off
                          ai2_arc
math (math-verify)        aime, aime24, amc, amc23, minerva,          off
                          olympiad_bench (olympiad), openr1
                          (open_r1), numina, math500 (math_500),
                          math ("lighteval/MATH",
                          "HuggingFaceH4/MATH-500")
========================  =========================================  ======

"think" is ``THINK_FORMAT_DEFAULT``, the last step of the think-format decision (:mod:`.score`).
Standard library only.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["GSM8K", "KNOWN_SOURCES", "MATH", "MULTIPLE_CHOICE", "SOURCE_FAMILY", "THINK_FORMAT_DEFAULT",
           "resolve_source"]

MATH, MULTIPLE_CHOICE, GSM8K = "math", "multiple_choice", "gsm8k"

#: canonical source name -> grader family
SOURCE_FAMILY: dict[str, str] = {
    "aime": MATH,
    "aime24": MATH,
    "amc": MATH,
    "amc23": MATH,
    "math": MATH,
    "math500": MATH,
    "minerva": MATH,
    "olympiad_bench": MATH,
    "openr1": MATH,
    "numina": MATH,
    "gsm8k": GSM8K,
    "demo_gsm8k": GSM8K,
    "gpqa": MULTIPLE_CHOICE,
    "arc_c": MULTIPLE_CHOICE,
    "mmlu_pro": MULTIPLE_CHOICE,
}
KNOWN_SOURCES: tuple[str, ...] = tuple(SOURCE_FAMILY)

#: Whether the LUFFY think-format rule applies when neither kwargs nor extra_info decide.
THINK_FORMAT_DEFAULT: dict[str, bool] = {name: False for name in SOURCE_FAMILY}

# (substring, canonical) tried in order on the normalised name when no exact match.
_SUBSTRING_RULES: tuple[tuple[str, str], ...] = (
    ("demo_gsm8k", "demo_gsm8k"),
    ("gsm8k", "gsm8k"),
    ("gpqa", "gpqa"),
    ("mmlu_pro", "mmlu_pro"),
    ("mmlupro", "mmlu_pro"),
    ("arc_c", "arc_c"),
    ("arc_challenge", "arc_c"),
    ("ai2_arc", "arc_c"),
    ("aime24", "aime24"),
    ("aime", "aime"),
    ("amc23", "amc23"),
    ("amc", "amc"),
    ("minerva", "minerva"),
    ("olympiad", "olympiad_bench"),
    ("openr1", "openr1"),
    ("open_r1", "openr1"),
    ("numina", "numina"),
    ("math500", "math500"),
    ("math_500", "math500"),
    ("math", "math"),
)

_resolve_cache: dict[str, str] = {}


def _norm_name(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def resolve_source(data_source: Any) -> str:
    """Canonical source name for ``data_source``; ``ValueError`` when unknown."""
    key = data_source if isinstance(data_source, str) else str(data_source)
    hit = _resolve_cache.get(key)
    if hit is not None:
        return hit
    full = _norm_name(key)
    base = full.rsplit("/", 1)[-1]
    found = None
    for cand in (full, base):
        if cand in SOURCE_FAMILY:
            found = cand
            break
    if found is None:
        for sub, canonical in _SUBSTRING_RULES:
            if sub in full:
                found = canonical
                break
    if found is None:
        raise ValueError(
            f"recipe_srft.reward: unknown data_source {data_source!r}; known sources: "
            f"{', '.join(KNOWN_SOURCES)} (matched case-insensitively, also as a substring, "
            "e.g. 'openai/gsm8k' -> gsm8k, 'HuggingFaceH4/MATH-500' -> math500)"
        )
    if len(_resolve_cache) < 4096:
        _resolve_cache[key] = found
    return found
