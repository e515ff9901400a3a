"""Accuracy metrics of the evaluation: avg@n, unbiased pass@k, 95% confidence intervals, macro averages.

Definitions (all numbers are fractions in [0, 1]; the markdown report shows percentages):

* ``avg@n``: the mean accuracy over all ``P * n`` samples of a benchmark (``P`` prompts, ``n`` samples
  each). With equal ``n`` per prompt it equals the mean of the per-prompt accuracies ``c_i / n``, and it
  equals pass@1.
* ``pass@k`` (``k`` in 1, 2, 4, ... and ``n``): the unbiased estimator of Chen et al. (2021) per prompt,
  ``1 - C(n - c, k) / C(n, k)``, averaged over prompts. It is computed as the product
  ``1 - prod_{i = n - c + 1}^{n} (1 - k / i)`` (no large binomials, no overflow, no cancellation
  beyond one subtraction) and is exactly 1 when ``n - c < k``.
* 95% confidence interval of ``avg@n``, over prompts (the prompt is the unit of sampling):

  - ``n > 1`` (or unequal ``n``): normal approximation on the per-prompt accuracies,
    ``mean +- 1.96 * s / sqrt(P)`` with ``s`` the sample standard deviation (``ddof=1``), clipped
    to [0, 1]; undefined (``None``) for fewer than 2 prompts. It captures the prompt-sampling
    variance and the (smaller) within-prompt sampling variance together.
  - ``n == 1`` with 0/1 scores: the Wilson score interval of ``c`` successes out of ``P`` with
    ``z = 1.96`` (well behaved at 0% and 100%, where the normal interval collapses to a point).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

Z95 = 1.959963984540054

#: benchmark keys (``recipe_srft.evaluation.data.benchmark_key``) of the paper's macro groups; a suite
#: (``recipe_srft.evaluation.suites``) may average others
MATH_GROUP = ("aime", "amc", "math", "minerva", "olympiad_bench")
MATH_ALIASES = {"aime24": "aime", "amc23": "amc", "math500": "math"}
OOD_GROUP = ("gpqa", "arc_c", "mmlu_pro")
#: every benchmark that is a math / an OOD benchmark, in a suite's average or not
MATH_FAMILY = MATH_GROUP + ("aime25",)
OOD_FAMILY = OOD_GROUP


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one prompt with ``c`` correct out of ``n`` samples: ``1 - C(n-c, k) / C(n, k)``."""
    if not (isinstance(n, int) and isinstance(c, int) and isinstance(k, int)):
        raise TypeError("pass_at_k takes integers")
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"pass_at_k: need n >= 1 and 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def k_values(n: int) -> list[int]:
    """1, 2, 4, ... up to ``n``, plus ``n`` itself when it is not a power of two."""
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    if n >= 1 and ks[-1] != n:
        ks.append(n)
    return ks


def mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


def normal_ci(per_prompt: Sequence[float], z: float = Z95) -> dict:
    """``mean +- z * s / sqrt(P)`` over the per-prompt accuracies (``s``: sample std, ddof=1), clipped to [0, 1]."""
    p = len(per_prompt)
    if p == 0:
        raise ValueError("normal_ci of no prompts")
    m = mean(per_prompt)
    if p < 2:
        return {"method": "normal_over_prompts", "estimate": m, "low": None, "high": None, "std": None,
                "half_width": None}
    var = math.fsum((x - m) ** 2 for x in per_prompt) / (p - 1)
    std = math.sqrt(var)
    half = z * std / math.sqrt(p)
    return {"method": "normal_over_prompts", "estimate": m, "low": max(0.0, m - half), "high": min(1.0, m + half),
            "std": std, "half_width": half}


def wilson_ci(successes: float, total: int, z: float = Z95) -> dict:
    """Wilson score interval of a binomial proportion."""
    if total <= 0:
        raise ValueError("wilson_ci of no trials")
    p = successes / total
    z2 = z * z
    denom = 1.0 + z2 / total
    center = (p + z2 / (2 * total)) / denom
    half = z * math.sqrt(p * (1.0 - p) / total + z2 / (4 * total * total)) / denom
    return {"method": "wilson", "estimate": p, "low": max(0.0, center - half), "high": min(1.0, center + half),
            "std": None, "half_width": half}


def summarize(per_prompt_scores: Sequence[Sequence[float]], n: int) -> dict:
    """Metrics of one benchmark from the scores of its prompts (a list of per-sample 0/1 scores per prompt).

    ``n`` is the planned samples per prompt; prompts with fewer samples (an incomplete run) make the
    benchmark ``complete: false``, and pass@k is only reported for ``k`` at most every prompt's count.
    """
    scored = [list(s) for s in per_prompt_scores if len(s) > 0]
    counts = [len(s) for s in per_prompt_scores]
    out: dict = {
        "n": n,
        "num_prompts": len(per_prompt_scores),
        "num_prompts_scored": len(scored),
        "num_samples": sum(counts),
        "complete": bool(per_prompt_scores) and all(c == n for c in counts),
    }
    if not scored:
        out.update(avg=None, ci95=None, pass_at_k={}, num_correct=0)
        return out
    all_scores = [x for s in scored for x in s]
    out["avg"] = mean(all_scores)
    out["num_correct"] = sum(1 for x in all_scores if x >= 0.5)
    per_prompt = [mean(s) for s in scored]
    binary = all(x in (0.0, 1.0) for x in all_scores)
    if all(len(s) == 1 for s in scored) and binary:
        out["ci95"] = wilson_ci(sum(all_scores), len(all_scores))
    else:
        out["ci95"] = normal_ci(per_prompt)
    min_n = min(len(s) for s in scored)
    pk = {}
    for k in k_values(n):
        if k > min_n:
            continue
        pk[str(k)] = mean([pass_at_k(len(s), sum(1 for x in s if x >= 0.5), k) for s in scored])
    out["pass_at_k"] = pk
    return out


def macro_group(source_canonical: str) -> str | None:
    canon = MATH_ALIASES.get(source_canonical, source_canonical)
    if canon in MATH_FAMILY:
        return "math"
    if canon in OOD_FAMILY:
        return "ood"
    return None


def macro_averages(bench_avgs: Iterable[tuple[str, str, float | None]], math_group: Sequence[str] = MATH_GROUP,
                   ood_group: Sequence[str] = OOD_GROUP) -> dict:
    """Unweighted means of the per-benchmark avg@n of the math benchmarks and of the OOD benchmarks.

    ``bench_avgs``: ``(benchmark name, benchmark key, avg)``; ``math_group`` / ``ood_group``: the keys each
    average covers (default: the paper's; a suite passes its own). A group reports the benchmarks it averaged,
    the expected ones it misses (``partial`` when some are missing) and, as ``extra``, the benchmarks of its kind
    that the data holds but the suite does not average (e.g. AIME25 under the paper suite).
    """
    groups = {"math": {"expected": tuple(math_group), "members": [], "values": [], "extra": []},
              "ood": {"expected": tuple(ood_group), "members": [], "values": [], "extra": []}}
    seen: dict[str, set] = {"math": set(), "ood": set()}
    for name, canon, avg in bench_avgs:
        g = macro_group(canon)
        if g is None or avg is None:
            continue
        key = MATH_ALIASES.get(canon, canon)
        if key not in groups[g]["expected"]:
            groups[g]["extra"].append(name)
            continue
        groups[g]["members"].append(name)
        groups[g]["values"].append(avg)
        seen[g].add(key)
    out = {}
    for g, d in groups.items():
        missing = [s for s in d["expected"] if s not in seen[g]]
        out[f"{g}_avg"] = {
            "value": mean(d["values"]) if d["values"] else None,
            "members": d["members"],
            "expected": list(d["expected"]),
            "missing": missing,
            "partial": bool(missing),
            "extra": d["extra"],
        }
    return out
