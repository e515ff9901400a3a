"""Evaluation suites: which benchmarks a table holds, how they are sampled, and how they are averaged.

A suite fixes the protocol (samples per prompt), the sampling (temperature, top-p, new tokens), the grading
switch (LUFFY's think-format rule) and the two macro averages (math, out-of-distribution), so that a checkpoint's
table lines up row by row with a published one. ``python -m recipe_srft.evaluation --suite NAME`` applies it (an
explicit ``--protocol``/``--temperature``/``--top-p``/``--max-new-tokens``/``--think-format`` still wins) and
``results.json`` records it under ``suite``; ``bash run_scripts/eval.sh MODEL --suite NAME`` also picks its files.

``paper``: SRFT's Table 2 (section 6 of the method notes). AIME24 and AMC avg@32 (AIME25 too when given), avg@1
elsewhere; temperature 0.6, top-p 1.0, 8192 new tokens; math average over AIME24, AMC, MATH-500, Minerva,
OlympiadBench; OOD average over ARC-C, GPQA-Diamond, MMLU-Pro. Graded per row (``--think-format auto``).

``hpt``: the table of HPT ("Towards a Unified View of Large Language Model Post-Training", arXiv 2509.04419), which
re-ran SRFT (44.2) and LUFFY (49.8) on Qwen2.5-Math-7B: six math benchmarks (AIME24, AIME25, AMC23, MATH-500,
Minerva, OlympiadBench) and two out-of-distribution ones (ARC-C, GPQA-Diamond). Read from HPT's repository
TsinghuaC3I/Unify-Post-Training at commit ae332f5fa4dc8b4c3d3cd77ebc9cff3a3abab2d0 (the paper's text was not
consulted):

* the files: ``data/{AIME24,AIME25,AMC23,MATH-500,Minerva,Olympiad-Bench,GPQA}/test.json`` (``data/preprocess.py``
  turns each into a verl parquet with the question as one user turn); HPT publishes no ARC-C file, so the suite
  uses LUFFY's ``valid.arc_c.parquet``, the same one as the paper suite;
* the sampling: ``README.md`` ("Testing") evaluates with DeepMath's ``uni_eval.py`` (zwhe99/DeepMath at commit
  0d97187a17b0e1b54ecef109c43a904b50c99506, ``README.md`` "Evaluation": ``--temperature 0.6 --top_p 0.95 --n 16``),
  and HPT's own ``hpt/scripts/eval/eval_model.sh`` samples ``data.n_samples=16``, ``rollout.temperature=0.6``,
  ``rollout.top_p=0.95``, ``rollout.top_k=-1``: n = 16 samples per prompt on every benchmark, temperature 0.6,
  top-p 0.95, no top-k;
* the length: both scripts allow 32768 tokens, more than the 16384 positions of Qwen2.5-Math-7B-16k (LUFFY's
  setting, which HPT's ``exp_scripts/train.sh`` also uses, with ``data.max_response_length=8192`` and validation
  at ``val_temperature=0.6``, ``val_top_p=0.95``); the suite uses 8192 new tokens, as the paper suite and HPT's
  training-time validation (``--max-new-tokens`` raises it);
* the score: ``uni_eval.py`` marks each sample correct when the answer read from the whole response matches
  (no think-format rule) and reports pass@1 = the mean over the n samples per prompt, averaged over prompts:
  avg@16 here; the math and OOD averages are unweighted means over the benchmarks, as HPT's table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Suite:
    name: str
    protocol: str  # samples per prompt: recipe_srft.evaluation.data.choose_n
    temperature: float
    top_p: float
    max_new_tokens: int
    think_format: bool | None  # None: per row (extra_info.template); False: never
    math: tuple[str, ...]  # benchmark keys (recipe_srft.evaluation.data.benchmark_key) of the math average
    ood: tuple[str, ...]
    description: str
    references: tuple[str, ...]

    def to_dict(self) -> dict:
        return asdict(self)


SUITES: dict[str, Suite] = {
    "paper": Suite(
        name="paper", protocol="paper", temperature=0.6, top_p=1.0, max_new_tokens=8192, think_format=None,
        math=("aime", "amc", "math", "minerva", "olympiad_bench"), ood=("arc_c", "gpqa", "mmlu_pro"),
        description="SRFT Table 2: avg@32 on AIME24/AMC (and AIME25), avg@1 elsewhere; temperature 0.6, top-p 1.0, "
                    "8192 new tokens; math avg over AIME24, AMC, MATH-500, Minerva, OlympiadBench; OOD avg over "
                    "ARC-C, GPQA-Diamond, MMLU-Pro",
        references=("SRFT paper, section 6 (docs/method.md)",),
    ),
    "hpt": Suite(
        name="hpt", protocol="hpt", temperature=0.6, top_p=0.95, max_new_tokens=8192, think_format=False,
        math=("aime", "aime25", "amc", "math", "minerva", "olympiad_bench"), ood=("arc_c", "gpqa"),
        description="HPT's table: avg@16 on every benchmark; temperature 0.6, top-p 0.95, 8192 new tokens, answer "
                    "read from the whole response; math avg over AIME24, AIME25, AMC23, MATH-500, Minerva, "
                    "OlympiadBench; OOD avg over ARC-C, GPQA-Diamond",
        references=(
            "TsinghuaC3I/Unify-Post-Training@ae332f5fa4dc8b4c3d3cd77ebc9cff3a3abab2d0: README.md (Testing), "
            "hpt/scripts/eval/eval_model.sh (n_samples=16, temperature=0.6, top_p=0.95), exp_scripts/train.sh "
            "(max_response_length=8192, val_temperature=0.6, val_top_p=0.95), data/preprocess.py, data/*/test.json",
            "zwhe99/DeepMath@0d97187a17b0e1b54ecef109c43a904b50c99506: README.md (Evaluation: --temperature 0.6 "
            "--top_p 0.95 --n 16), uni_eval.py (pass@1 = mean over the n samples)",
        ),
    ),
}
SUITE_NAMES = tuple(SUITES)


def get_suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except KeyError:
        raise ValueError(f"unknown suite {name!r} ({', '.join(SUITE_NAMES)})") from None
