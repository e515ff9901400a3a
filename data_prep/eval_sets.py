"""Evaluation benchmarks -> verl parquet (no demonstrations).

``--format`` selects the input layout; the data_source names are the ones
LUFFY's evaluation files use:

==============  ================  ==========================================================
--format        data_source       input (JSON lines unless noted) and ground truth
==============  ================  ==========================================================
aime24          aime              {id, problem, solution, answer, url, question}; ``answer``
aime25          aime25            {problem or question, answer, ...} (math-ai/aime25,
                                  opencompass/AIME2025 layouts); ``answer``
amc23           amc               {id, problem, answer (float), url, question}; ``answer``,
                                  integral floats rendered as integers (27.0 -> "27")
math500         math              {problem, solution, answer, subject, level, unique_id};
                                  ``answer`` (else the last \\boxed{} of ``solution``)
minerva         minerva           {problem, solution, type, idx}; the last \\boxed{} of
                                  ``solution`` (or ``answer`` if present)
olympiadbench   olympiad_bench    {question, final_answer (list), is_multiple_answer, unit,
                                  answer_type, ...}; the answers joined with ", "
gsm8k           gsm8k             {question, answer}; the number after ``####``, commas removed
gpqa            gpqa              {Question, Correct Answer, Incorrect Answer 1..3, ...}; the
                                  letter of the correct answer after a seeded shuffle
arc_c           arc_c             multiple choice, see below; the answer letter
mmlu_pro        mmlu_pro          multiple choice, see below; the answer letter
luffy           (the file's)      LUFFY's valid*.parquet, validated and passed through
qa              --data-source     any {prompt, answer} layout: the question in ``--prompt-field``
                                  (default ``prompt``), the ground truth in ``--answer-field``
                                  (default ``answer``), verbatim (numbers rendered, 27.0 -> "27")
==============  ================  ==========================================================

Input files are JSON lines or a JSON array of objects (``data_prep.common.iter_rows``), or parquet.

``--format qa`` is the generic question/answer layout, e.g. HPT's evaluation files
(TsinghuaC3I/Unify-Post-Training ``data/*/test.json``: arrays of ``{prompt, answer}``, some with
``source``/``id``) and most people's own held-out sets.  ``--data-source`` (required) is the name the
reward grades by and the evaluation report shows (``aime24``, ``aime25``, ``amc23``, ``math500``,
``minerva``, ``olympiad_bench``, ``gpqa``, ... anything ``recipe_srft.reward.resolve_source`` knows).
When that name is graded as multiple choice (gpqa, arc_c, mmlu_pro) the answer must be an option
letter (``ability`` ``multiple_choice``) and the prompt, which must list the options itself, is kept
verbatim; otherwise ``ability`` is ``math``.

Multiple-choice fields (arc_c, mmlu_pro):

* question: ``question`` (a string), or ``question.stem`` (original ARC layout);
* options: ``choices`` as a list of strings, as ``{"text": [...], "label": [...]}``
  (Hugging Face ai2_arc) or as a list of ``{"text", "label"}`` (original ARC,
  also inside ``question.choices``); or ``options`` as a list of strings (MMLU-Pro);
* answer: ``answerKey`` or ``answer``, a letter or one of the option labels
  (ARC uses "1".."4" in some rows); or ``answer_index`` (0-based, MMLU-Pro).

Options are re-lettered A, B, C, ... in the prompt and the ground truth is the
letter.  GPQA's options are shuffled per row with
``random.Random(seed * 100003 + row_index)`` (``--seed``, default 0), so the
output is deterministic and the correct answer is not always A.

Usage::

    python -m data_prep.eval_sets --format math500 --input math500/test.jsonl --output math500.parquet
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from typing import Callable

from data_prep.common import Converter, DataPrepError, Record, Report
from data_prep.gsm8k import gsm8k_solution
from data_prep.luffy import LuffyState, luffy_example
from data_prep.math import solution_answer
from data_prep.schema import Example
from data_prep.templates import (AS_IS, LUFFY_THINK, OPTION_LETTERS, TEMPLATE_NAMES, option_letters, render,
                                 render_multiple_choice)

MATH = "math"
MULTIPLE_CHOICE = "multiple_choice"
GPQA_SEED_STRIDE = 100003


@dataclass(frozen=True)
class Format:
    """One ``--format``: its data_source and the row converter."""

    data_source: str | None
    build: Callable[["EvalSetsConverter", Record], Example]
    help: str


# --------------------------------------------------------------------------- open-answer sets


def _open_answer(conv: "EvalSetsConverter", problem: str, truth: str, meta: dict) -> Example:
    return Example(
        data_source=conv.data_source,
        prompt=render(conv.template, problem.strip()),
        ground_truth=truth,
        ability=MATH,
        meta=meta,
    )


def _aime_amc(conv: "EvalSetsConverter", record: Record) -> Example:
    _, problem = record.first_text("problem", "question")
    return _open_answer(conv, problem, record.answer("answer"), record.meta("id", "url"))


def _math500(conv: "EvalSetsConverter", record: Record) -> Example:
    return _open_answer(conv, record.text("problem"), solution_answer(record),
                        record.meta("unique_id", "subject", "level", "type"))


def _minerva(conv: "EvalSetsConverter", record: Record) -> Example:
    return _open_answer(conv, record.text("problem"), solution_answer(record), record.meta("idx", "type"))


def _olympiad(conv: "EvalSetsConverter", record: Record) -> Example:
    _, question = record.first_text("question", "problem")
    value = record.require("final_answer")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise record.error("final_answer", f"expected a non-empty list of strings, got {value!r}", "wrong type")
    if not all(isinstance(item, str) and item.strip() for item in items):
        raise record.error("final_answer", f"expected non-empty strings, got {items!r}", "wrong type")
    truth = ", ".join(item.strip() for item in items)
    meta = record.meta("id", "unit", "answer_type", "is_multiple_answer", "subfield", "subject", "error")
    return _open_answer(conv, question, truth, meta)


def _qa(conv: "EvalSetsConverter", record: Record) -> Example:
    """``--format qa``: question and ground truth from two named fields, data_source from ``--data-source``."""
    question = record.text(conv.prompt_field)
    truth = record.answer(conv.answer_field)
    meta = record.meta("id", "source", "idx", "unique_id")
    if conv.qa_multiple_choice:
        letter = truth.upper()
        if len(letter) != 1 or letter not in OPTION_LETTERS:
            raise record.error(conv.answer_field, f"expected an option letter (A-Z) for the multiple-choice source "
                                                  f"{conv.data_source!r}, got {truth!r}", "invalid value")
        return Example(data_source=conv.data_source, prompt=render(conv.template, question.strip()),
                       ground_truth=letter, ability=MULTIPLE_CHOICE, meta=meta)
    return Example(data_source=conv.data_source, prompt=render(conv.template, question.strip()),
                   ground_truth=truth, ability=MATH, meta=meta)


def _gsm8k(conv: "EvalSetsConverter", record: Record) -> Example:
    _, truth = gsm8k_solution(record)
    return _open_answer(conv, record.text("question"), truth, {})


# --------------------------------------------------------------------------- multiple choice


def _multiple_choice(conv: "EvalSetsConverter", question: str, options: list[str],
                     letter: str, meta: dict) -> Example:
    return Example(
        data_source=conv.data_source,
        prompt=render_multiple_choice(conv.template, question.strip(), options),
        ground_truth=letter,
        ability=MULTIPLE_CHOICE,
        meta=meta,
    )


def gpqa_order(seed: int, row: int) -> list[int]:
    """Permutation of the GPQA options [correct, incorrect 1..3] for one row (deterministic)."""
    order = [0, 1, 2, 3]
    random.Random(seed * GPQA_SEED_STRIDE + row).shuffle(order)
    return order


def _gpqa(conv: "EvalSetsConverter", record: Record) -> Example:
    question = record.text("Question")
    texts = [record.text(f) for f in ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                                      "Incorrect Answer 3")]
    order = gpqa_order(conv.options.seed, record.ctx.row)
    options = [texts[i].strip() for i in order]
    letter = option_letters(4)[order.index(0)]
    meta = {"options": options, "seed": conv.options.seed}
    meta.update(record.meta("Record ID", "id"))
    return _multiple_choice(conv, question, options, letter, meta)


def _options(record: Record) -> tuple[str, list[str], list[str] | None]:
    """``(field, option texts, labels or None)`` of an ARC / MMLU-Pro row."""
    question = record.get("question")
    if isinstance(question, dict) and question.get("choices") is not None:
        field, value = "question.choices", question["choices"]
    elif record.has("choices"):
        field, value = "choices", record.data["choices"]
    elif record.has("options"):
        field, value = "options", record.data["options"]
    else:
        raise record.error("choices", "missing field (expected 'choices' or 'options')", "missing field")
    labels = None
    if isinstance(value, dict):
        texts, labels = value.get("text"), value.get("label")
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        texts, labels = [v.get("text") for v in value], [v.get("label") for v in value]
    else:
        texts = value
    if not isinstance(texts, list) or not all(isinstance(t, str) and t.strip() for t in texts):
        raise record.error(field, "expected a list of non-empty option strings", "wrong type")
    if not 2 <= len(texts) <= 26:
        raise record.error(field, f"expected 2 to 26 options, got {len(texts)}", "invalid value")
    if labels is not None and (len(labels) != len(texts) or not all(isinstance(x, str) for x in labels)):
        raise record.error(field, "the option labels do not match the option texts", "invalid value")
    return field, [t.strip() for t in texts], labels


def _answer_letter(record: Record, n: int, labels: list[str] | None) -> str:
    letters = option_letters(n)
    if record.has("answer_index") and not (record.has("answerKey") or record.has("answer")):
        value = record.data["answer_index"]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < n:
            raise record.error("answer_index", f"expected an integer in 0..{n - 1}, got {value!r}", "invalid value")
        return letters[value]
    field = "answerKey" if record.has("answerKey") else "answer"
    value = record.require(field)
    key = value.strip() if isinstance(value, str) else value
    if labels is not None and key in labels:
        return letters[labels.index(key)]
    if isinstance(key, str) and len(key) == 1 and key.upper() in letters:
        return key.upper()
    raise record.error(field, f"answer {value!r} is not one of the options ({', '.join(labels or letters)})",
                       "invalid value")


def _arc_mmlu(conv: "EvalSetsConverter", record: Record) -> Example:
    question = record.get("question")
    if isinstance(question, dict):
        stem = question.get("stem")
        if not isinstance(stem, str) or not stem.strip():
            raise record.error("question.stem", "expected a non-empty string", "wrong type")
        question = stem
    else:
        question = record.text("question")
    _, options, labels = _options(record)
    letter = _answer_letter(record, len(options), labels)
    return _multiple_choice(conv, question, options, letter,
                            record.meta("id", "question_id", "category", "src"))


# --------------------------------------------------------------------------- LUFFY pass-through


def _luffy(conv: "EvalSetsConverter", record: Record) -> Example:
    example = luffy_example(record, conv.template, training=False)
    conv.luffy_state.observe(record, example)
    return example


FORMATS: dict[str, Format] = {
    "aime24": Format("aime", _aime_amc, "AIME 2024 (Qwen2.5-Math eval jsonl)"),
    "aime25": Format("aime25", _aime_amc, "AIME 2025 ({problem or question, answer})"),
    "amc23": Format("amc", _aime_amc, "AMC 2023 (Qwen2.5-Math eval jsonl)"),
    "math500": Format("math", _math500, "MATH-500 jsonl"),
    "minerva": Format("minerva", _minerva, "Minerva math jsonl"),
    "olympiadbench": Format("olympiad_bench", _olympiad, "OlympiadBench jsonl"),
    "gsm8k": Format("gsm8k", _gsm8k, "GSM8K test jsonl"),
    "gpqa": Format("gpqa", _gpqa, "GPQA-Diamond jsonl (options shuffled with --seed)"),
    "arc_c": Format("arc_c", _arc_mmlu, "ARC-Challenge jsonl"),
    "mmlu_pro": Format("mmlu_pro", _arc_mmlu, "MMLU-Pro jsonl"),
    "luffy": Format(None, _luffy, "LUFFY valid*.parquet pass-through"),
    "qa": Format(None, _qa, "any {prompt, answer} layout (--prompt-field, --answer-field, --data-source)"),
}


class EvalSetsConverter(Converter):
    """Evaluation-set converter (one CLI, many input formats)."""

    name = "eval_sets"
    description = "Convert an evaluation benchmark to a verl parquet without demonstrations."
    training = False
    template_choices = (AS_IS,) + TEMPLATE_NAMES
    default_template = LUFFY_THINK
    default_split = "test"
    epilog = "\n".join(
        ["Formats (--format -> data_source):"]
        + [f"  {name:14s} -> {fmt.data_source or ('--data-source' if name == 'qa' else '(kept)'):15s} {fmt.help}"
           for name, fmt in FORMATS.items()]
        + [
            "",
            "Default --template: luffy_think (the prompt LUFFY/SRFT evaluate with); as_is for --format",
            "luffy, which keeps LUFFY's prompts (as_is is only valid with --format luffy).",
            "Multiple-choice prompts list the options as 'A) ...' lines and ask for the letter in \\boxed{}.",
            "arc_c / mmlu_pro fields: question (or question.stem); choices (list of strings,",
            "{text: [...], label: [...]}, or [{text, label}]) or options (list of strings); answerKey or",
            "answer (a letter or an option label) or answer_index (0-based).",
            "qa: the question in --prompt-field (default prompt), the ground truth in --answer-field (default",
            "answer), data_source = --data-source (required; a name the reward grades, e.g. aime25, math500,",
            "gpqa); for a multiple-choice source (gpqa, arc_c, mmlu_pro) the answer must be an option letter and",
            "the prompt, listing the options, is kept verbatim. Example (HPT's files, JSON arrays):",
            "  python -m data_prep.eval_sets --format qa --data-source aime25 --input AIME25/test.json \\",
            "      --output aime25.parquet",
            "Input: JSON lines, a JSON array of objects, or parquet.",
        ]
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--format", required=True, choices=tuple(FORMATS), help="input layout (see below)")
        parser.add_argument("--seed", type=int, default=0,
                            help="GPQA option-shuffle seed; row i uses random.Random(seed*100003+i) (default: 0)")
        parser.add_argument("--prompt-field", default=None, metavar="NAME",
                            help="--format qa: the field holding the question (default: prompt)")
        parser.add_argument("--answer-field", default=None, metavar="NAME",
                            help="--format qa: the field holding the ground truth (default: answer)")
        parser.add_argument("--data-source", default=None, metavar="NAME",
                            help="--format qa (required): the data_source written to every row, the name the "
                                 "reward grades by and the evaluation report shows (e.g. aime25, math500, gpqa)")

    def prepare(self, options) -> None:
        self.format = FORMATS[options.format]
        self.data_source = self.format.data_source
        self.luffy_state = LuffyState(training=False)
        qa_options = {"--prompt-field": options.prompt_field, "--answer-field": options.answer_field,
                      "--data-source": options.data_source}
        if options.format == "qa":
            self._prepare_qa(options)
        elif any(v is not None for v in qa_options.values()):
            given = ", ".join(k for k, v in qa_options.items() if v is not None)
            raise DataPrepError(f"{given}: only valid with --format qa (got --format {options.format})")
        if options.format == "luffy":
            self.template = options.template or AS_IS
        elif self.template == AS_IS:
            raise DataPrepError(f"--template as_is is only valid with --format luffy (got --format {options.format})")

    def _prepare_qa(self, options) -> None:
        from recipe_srft.reward import SOURCE_FAMILY, resolve_source

        if not options.data_source or not options.data_source.strip():
            raise DataPrepError("--format qa needs --data-source NAME (the name the reward grades by, e.g. aime25, "
                                "math500, gpqa)")
        try:
            canonical = resolve_source(options.data_source)
        except ValueError as exc:
            raise DataPrepError(f"--data-source {options.data_source!r}: {exc}") from None
        self.data_source = options.data_source.strip()
        self.prompt_field = options.prompt_field or "prompt"
        self.answer_field = options.answer_field or "answer"
        self.qa_family = SOURCE_FAMILY[canonical]
        self.qa_multiple_choice = self.qa_family == MULTIPLE_CHOICE

    def convert(self, record: Record) -> Example:
        return self.format.build(self, record)

    def finish(self, report: Report) -> None:
        if self.options.format == "luffy":
            self.luffy_state.notes(report)
        if self.options.format == "gpqa":
            report.note(f"GPQA options shuffled with seed {self.options.seed}")
        if self.options.format == "qa":
            kind = "multiple choice: option letters" if self.qa_multiple_choice else self.qa_family
            report.note(f"qa: question from '{self.prompt_field}', ground truth from '{self.answer_field}' (verbatim), "
                        f"data_source {self.data_source!r} graded as {kind}")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    return EvalSetsConverter().main(argv)


if __name__ == "__main__":
    sys.exit(main())
