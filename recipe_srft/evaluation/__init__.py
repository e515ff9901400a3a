"""Evaluation of SRFT models (paper section 6): sampling, grading with ``recipe_srft.reward``, avg@n,
pass@k and confidence intervals, resumable. Command line: ``python -m recipe_srft.evaluation --help`` (alias ``recipe_srft.eval``)."""

from .generators import Generator, HFGenerator, SamplingConfig, VLLMGenerator, make_generator, resolve_dtype
from .metrics import k_values, normal_ci, pass_at_k, summarize, wilson_ci
from .runner import EvalConfig, run_eval
from .suites import SUITES, Suite

__all__ = [
    "EvalConfig",
    "Generator",
    "HFGenerator",
    "SUITES",
    "SamplingConfig",
    "Suite",
    "VLLMGenerator",
    "k_values",
    "make_generator",
    "normal_ci",
    "pass_at_k",
    "resolve_dtype",
    "run_eval",
    "summarize",
    "wilson_ci",
]
