"""Demonstrations of a training row: extraction and tokenisation (pure; no verl machinery).

A row carries its demonstration(s) either in LUFFY's ``target`` column (a list of
``{"role": "assistant", "content": ...}`` messages, one per demonstration) or in a plain
``demo`` column (a string, or a list of strings). A demonstration becomes response tokens
the way a rollout would be: the tokenizer's ids of the text plus EOS, with a leading
``<think>\\n`` dropped when the generation prompt already ends with it (Qwen2.5-Math-16k-think's
template, section 5 of the method doc), truncated to ``max_response_length``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .grading.extract import THINK_PREFIX  # noqa: F401  (re-exported: the agent loop and data_prep use it)


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (str, dict)):
        return [value]
    try:
        return list(value)
    except TypeError:
        return [value]


def extract_demos(row: dict, fields: Sequence[str] = ("target", "demo")) -> list[str]:
    """Demonstration texts of a row (first non-empty field of ``fields`` wins)."""
    for name in fields:
        if name not in row:
            continue
        demos = []
        for item in _as_list(row[name]):
            if isinstance(item, dict):
                if item.get("role", "assistant") != "assistant":
                    continue
                text = item.get("content")
            else:
                text = item
            if isinstance(text, str) and text.strip():
                demos.append(text)
        if demos:
            return demos
    return []


@dataclass
class DemoTokens:
    response_ids: list[int]
    truncated: bool
    stripped_think: bool


def strip_think_prefix(text: str, prompt_text: str | None) -> tuple[str, bool]:
    """The ``<think>`` rule: a demonstration's leading ``<think>\\n`` is dropped when the generation prompt (its
    text, e.g. the rendered chat template, or the decoded tail of the prompt ids) already ends with it, so the
    trained tokens never hold the tag twice. Returns ``(text, stripped)``."""
    if prompt_text is not None and prompt_text.endswith(THINK_PREFIX) and text.startswith(THINK_PREFIX):
        return text[len(THINK_PREFIX):], True
    return text, False


def eos_tokens(tokenizer) -> int:
    """Tokens appended after a demonstration's text: the EOS (1), or none for a tokenizer without one."""
    return 0 if tokenizer.eos_token_id is None else 1


def tokenize_demo(text: str, tokenizer, max_response_length: int, prompt_text: str | None = None) -> DemoTokens:
    """Response token ids of a demonstration (EOS appended, ``<think>\\n`` de-duplicated, truncated)."""
    text, stripped = strip_think_prefix(text, prompt_text)
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    if eos_tokens(tokenizer):
        ids.append(int(tokenizer.eos_token_id))
    truncated = len(ids) > max_response_length
    return DemoTokens(ids[:max_response_length], truncated, stripped)


def count_demos(row: dict, fields: Sequence[str], demos_per_prompt: int) -> int:
    """How many demonstrations of this row enter its group: min(m, available)."""
    return min(demos_per_prompt, len(extract_demos(row, fields))) if demos_per_prompt > 0 else 0

