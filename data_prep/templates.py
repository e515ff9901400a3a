"""Prompt templates shared by every converter.

Two templates build a prompt from a bare problem statement; a third name,
``as_is``, marks rows whose prompt was taken over unchanged from the input.
The name used is recorded in ``extra_info["template"]`` of every output row,
and the reward function keys on it:

``luffy_think``
    LUFFY's reasoning system prompt (the exact string of the system message in
    LUFFY's ``valid.parquet``) followed by the user problem, verbatim.  The
    generation prompt is expected to end with ``"<think>\\n"``: the chat
    template of LUFFY's ``Elliott/Qwen2.5-Math-7B-16k-think`` model appends it
    after the assistant header, so the model starts inside its thought.  The
    reward function therefore turns the LUFFY think-format rule on for these
    rows (prepend ``<think>\\n`` to the response, require ``</think>``, grade
    the text after it).  With a tokenizer whose chat template does not add
    ``<think>\\n`` every response fails that rule and scores 0;
    ``python -m data_prep.validate`` warns about it.

``boxed``
    A single user turn, ``"<problem>\\nPlease reason step by step, and put your
    final answer within \\\\boxed{}."``: no system prompt, no think format; the
    reward grades the last ``\\boxed{}`` of the response.  Plain worked
    solutions (GSM8K, MATH) used as demonstrations match this rule.

``as_is``
    The input's prompt was kept unchanged (LUFFY parquet files, chat data).
    The reward function does not turn the think-format rule on for it; pass
    ``--template luffy_think`` to a LUFFY file to record the think template
    (its prompts are already in that format and come out identical).

Multiple-choice sets (GPQA, ARC-C, MMLU-Pro) list the options as ``A) ...``
lines after the question and ask for the letter in ``\\boxed{}``.
"""

from __future__ import annotations

import string

from recipe_srft.grading.extract import THINK_PREFIX

LUFFY_THINK = "luffy_think"
BOXED = "boxed"
AS_IS = "as_is"

#: Templates that build a prompt from a problem statement.
TEMPLATE_NAMES: tuple[str, ...] = (LUFFY_THINK, BOXED)
#: Every value ``extra_info["template"]`` can take.
RECORDED_TEMPLATE_NAMES: tuple[str, ...] = (LUFFY_THINK, BOXED, AS_IS)

#: What the chat template must append to the generation prompt for ``luffy_think`` (one home: grading.extract).
THINK_GENERATION_SUFFIX = THINK_PREFIX

#: LUFFY's reasoning system prompt, verbatim (public, from LUFFY's valid.parquet).
LUFFY_SYSTEM_PROMPT = (
    "Your task is to follow a systematic, thorough reasoning process before providing "
    "the final solution. This involves analyzing, summarizing, exploring, reassessing, "
    "and refining your thought process through multiple iterations. Structure your "
    "response into two sections: Thought and Solution. In the Thought section, present "
    'your reasoning using the format: "<think>\n {thoughts} </think>\n". Each thought '
    "should include detailed analysis, brainstorming, verification, and refinement of "
    'ideas. After "</think>\n," in the Solution section, provide the final, logical, and '
    "accurate answer, clearly derived from the exploration in the Thought section. If "
    "applicable, include the answer in \\boxed{} for closed-form results like multiple "
    "choices or mathematical solutions."
)

#: Instruction appended to the problem by the ``boxed`` template.
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

#: Option letters for multiple-choice prompts (MMLU-Pro has up to 10 options).
OPTION_LETTERS = string.ascii_uppercase


def uses_think_format(template: str | None) -> bool:
    """True when rows recorded with ``template`` are graded with LUFFY's think-format rule."""
    return template == LUFFY_THINK


def check_template(template: str) -> str:
    """Return ``template`` if it builds prompts, else raise ``ValueError``."""
    if template not in TEMPLATE_NAMES:
        raise ValueError(f"unknown template {template!r}; expected one of {', '.join(TEMPLATE_NAMES)}")
    return template


def _messages(template: str, user_content: str) -> list[dict[str, str]]:
    check_template(template)
    if template == LUFFY_THINK:
        return [
            {"role": "system", "content": LUFFY_SYSTEM_PROMPT},
            {"role": "user", "content": user_content},
        ]
    return [{"role": "user", "content": user_content}]


def render(template: str, problem: str) -> list[dict[str, str]]:
    """Chat prompt for an open-answer problem.

    ``luffy_think``: system prompt + the problem verbatim (as in LUFFY's files);
    ``boxed``: one user turn, the problem followed by :data:`BOXED_INSTRUCTION`.
    """
    if template == BOXED:
        return _messages(template, f"{problem}\n{BOXED_INSTRUCTION}")
    return _messages(template, problem)


def option_letters(n: int) -> str:
    """The first ``n`` option letters (``n`` between 2 and 26)."""
    if not 2 <= n <= len(OPTION_LETTERS):
        raise ValueError(f"a multiple-choice question needs 2 to {len(OPTION_LETTERS)} options, got {n}")
    return OPTION_LETTERS[:n]


def format_options(options: list[str]) -> str:
    """``"A) first\\nB) second\\n..."``."""
    letters = option_letters(len(options))
    return "\n".join(f"{letter}) {text}" for letter, text in zip(letters, options))


def _letter_list(letters: str) -> str:
    return ", ".join(letters[:-1]) + " or " + letters[-1]


def render_multiple_choice(template: str, question: str, options: list[str]) -> list[dict[str, str]]:
    """Chat prompt for a multiple-choice question whose answer is a letter in ``\\boxed{}``."""
    letters = option_letters(len(options))
    body = f"{question}\n\n{format_options(options)}\n\n"
    if template == BOXED:
        instruction = (
            "Please reason step by step, and put the letter of the correct option "
            f"({_letter_list(letters)}) within \\boxed{{}}."
        )
    else:
        instruction = f"Answer with the letter of the correct option ({_letter_list(letters)}) within \\boxed{{}}."
    return _messages(template, body + instruction)
