"""The output row schema (verl / LUFFY parquet) and its checks.

Every converter writes rows of this shape::

    data_source   str                       e.g. "math", "gsm8k", "aime"
    prompt        list[{content, role}]     chat messages, roles system/user/assistant
    ability       str                       "math" or "multiple_choice"
    reward_model  {ground_truth: str, style: "rule"}
    extra_info    {index: int, split: str, template: str, source_row: int, meta: str}
    target        list[{content, role}]     training files only: one assistant message,
                                            the demonstration (LUFFY's ``target`` column)

``extra_info`` has the same keys in every file so that verl can concatenate
several files (``datasets.concatenate_datasets`` needs identical features):
``index`` is the row's id (the input row index, or the index a LUFFY file
carries), ``split`` is "train"/"test" (or the value a LUFFY file carries),
``template`` is ``luffy_think``/``boxed``/``as_is`` (see
:mod:`data_prep.templates`), ``source_row`` is the 0-based row of the input
file, and ``meta`` is a JSON object (as a string) with dataset-specific fields
such as the MATH level or the OlympiadBench unit.

Struct fields are in LUFFY's order (``content`` before ``role``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from data_prep.templates import RECORDED_TEMPLATE_NAMES
from recipe_srft.data_check import ground_truth_problem
from recipe_srft.demos import extract_demos

REQUIRED_COLUMNS: tuple[str, ...] = ("data_source", "prompt", "ability", "reward_model", "extra_info")
TARGET_COLUMN = "target"
EXTRA_INFO_KEYS: tuple[str, ...] = ("index", "split", "template", "source_row", "meta")
ROLES: tuple[str, ...] = ("system", "user", "assistant")

_MESSAGE = pa.struct([("content", pa.string()), ("role", pa.string())])
_REWARD_MODEL = pa.struct([("ground_truth", pa.string()), ("style", pa.string())])
_EXTRA_INFO = pa.struct(
    [
        ("index", pa.int64()),
        ("split", pa.string()),
        ("template", pa.string()),
        ("source_row", pa.int64()),
        ("meta", pa.string()),
    ]
)


def arrow_schema(training: bool) -> pa.Schema:
    """The parquet schema of an output file (with ``target`` for training files)."""
    fields = [
        ("data_source", pa.string()),
        ("prompt", pa.list_(_MESSAGE)),
        ("ability", pa.string()),
        ("reward_model", _REWARD_MODEL),
        ("extra_info", _EXTRA_INFO),
    ]
    if training:
        fields.append((TARGET_COLUMN, pa.list_(_MESSAGE)))
    return pa.schema(fields)


@dataclass
class Example:
    """What a converter extracts from one input row; :func:`make_row` turns it into a row.

    ``index``, ``split`` and ``template`` are the row's own values when it carries
    them (a LUFFY file's ``extra_info``); otherwise the converter uses the input
    row index, its default split and the ``--template`` option.  An explicit
    ``--split`` wins over the row's own split.
    """

    data_source: str
    prompt: list[dict[str, str]]
    ground_truth: str
    ability: str = "math"
    demonstration: str | None = None
    index: int | None = None
    split: str | None = None
    template: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _message(role: str, content: str) -> dict[str, str]:
    return {"content": content, "role": role}


def make_row(example: Example, *, index: int, split: str, template: str, source_row: int) -> dict[str, Any]:
    """Assemble an output row (with ``target`` when the example has a demonstration).

    ``index``, ``split`` and ``template`` are the resolved values (the converter
    decides between the example's own values and the command-line options).
    """
    row: dict[str, Any] = {
        "data_source": example.data_source,
        "prompt": [_message(m["role"], m["content"]) for m in example.prompt],
        "ability": example.ability,
        "reward_model": {"ground_truth": example.ground_truth, "style": "rule"},
        "extra_info": {
            "index": index,
            "split": split,
            "template": template,
            "source_row": source_row,
            "meta": json.dumps(example.meta, ensure_ascii=False, sort_keys=True, default=str),
        },
    }
    if example.demonstration is not None:
        row[TARGET_COLUMN] = [_message("assistant", example.demonstration)]
    return row


@dataclass(frozen=True)
class Problem:
    """One schema violation of a row: the offending field and what is wrong."""

    field: str
    reason: str
    message: str

    def __str__(self) -> str:
        return f"field '{self.field}': {self.message}"


def _check_messages(value: Any, name: str, problems: list[Problem]) -> None:
    if not isinstance(value, list) or not value:
        problems.append(Problem(name, "wrong type", "expected a non-empty list of {role, content} messages"))
        return
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            problems.append(Problem(f"{name}[{i}]", "wrong type", "expected a {role, content} message"))
        elif message.get("role") not in ROLES:
            problems.append(Problem(f"{name}[{i}].role", "invalid value", f"unknown role {message.get('role')!r}"))
        elif not isinstance(message.get("content"), str):
            problems.append(Problem(f"{name}[{i}].content", "wrong type", "expected a string"))


def check_row(row: dict[str, Any], *, training: bool | None = None) -> list[Problem]:
    """Schema violations of one output row (empty list = valid).

    ``training=True`` requires a ``target`` demonstration; otherwise ``target``
    is checked only when the row has one.  A missing
    ``extra_info["template"]`` is not a violation (LUFFY's own files lack it).
    """
    problems: list[Problem] = []
    for column in REQUIRED_COLUMNS:
        if row.get(column) is None:
            problems.append(Problem(column, "missing field", "missing"))
    if isinstance(row.get("data_source"), str):
        if not row["data_source"].strip():
            problems.append(Problem("data_source", "empty value", "empty"))
    elif row.get("data_source") is not None:
        problems.append(Problem("data_source", "wrong type", "expected a string"))
    if row.get("ability") is not None and not isinstance(row["ability"], str):
        problems.append(Problem("ability", "wrong type", "expected a string"))
    if row.get("prompt") is not None:
        _check_messages(row["prompt"], "prompt", problems)
        if isinstance(row["prompt"], list) and not any(
            isinstance(m, dict) and m.get("role") == "user" for m in row["prompt"]
        ):
            problems.append(Problem("prompt", "invalid value", "no user message"))
    if row.get("reward_model") is not None:  # missing: reported with the required columns above
        truth_problem = ground_truth_problem(row)  # the rule the trainer's start-up check applies too
        if truth_problem is not None:
            problems.append(Problem(*truth_problem))
    extra_info = row.get("extra_info")
    if extra_info is not None:
        if not isinstance(extra_info, dict):
            problems.append(Problem("extra_info", "wrong type", "expected a dict"))
        else:
            template = extra_info.get("template")
            if template is not None and template not in RECORDED_TEMPLATE_NAMES:
                problems.append(Problem("extra_info.template", "invalid value", f"unknown template {template!r}"))
    target = row.get(TARGET_COLUMN)
    if training and target is None:
        problems.append(Problem(TARGET_COLUMN, "missing field", "missing demonstration"))
    if target is not None:
        text = demonstration_of(row)
        if not isinstance(target, list) or len(target) != 1:
            problems.append(Problem(TARGET_COLUMN, "wrong type", "expected a list with one assistant message"))
        elif not isinstance(target[0], dict) or target[0].get("role") != "assistant":
            problems.append(Problem(TARGET_COLUMN, "invalid value", "the demonstration must be an assistant message"))
        elif text is None:
            problems.append(Problem(f"{TARGET_COLUMN}[0].content", "wrong type", "expected a string"))
        elif not text.strip():
            problems.append(Problem(f"{TARGET_COLUMN}[0].content", "empty demonstration", "empty"))
    return problems


def demonstration_of(row: dict[str, Any]) -> str | None:
    """The demonstration text of a training row, or None: the text the trainer's agent loop reads
    (``recipe_srft.demos.extract_demos`` of the ``target`` column); for a malformed row whose single message has
    string content, that content (so ``check_row`` can say what is wrong with it)."""
    target = row.get(TARGET_COLUMN)
    if isinstance(target, list) and len(target) == 1 and isinstance(target[0], dict):
        demos = extract_demos({TARGET_COLUMN: target}, (TARGET_COLUMN,))
        if demos:
            return demos[0]
        content = target[0].get("content")
        return content if isinstance(content, str) else None
    return None


def prompt_key(prompt: list[dict[str, str]]) -> str:
    """A hashable identity of a prompt, for duplicate detection."""
    return json.dumps([[m.get("role"), m.get("content")] for m in prompt], ensure_ascii=False)
