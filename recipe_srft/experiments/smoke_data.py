"""Tiny arithmetic prompt sets in verl parquet format, for CPU smoke runs and tests.

Rows follow verl's schema (``data_source, prompt, ability, reward_model, extra_info``)
plus a ``demo`` column holding a correct worked answer (a demonstration for SRFT).
``data_source`` is ``openai/gsm8k`` so verl's built-in GSM8K scorer (``#### <n>``) grades it.

    python -m recipe_srft.experiments.smoke_data OUT_DIR [--train 16 --val 8]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path


def make_rows(n: int, split: str, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        rows.append({
            "data_source": "openai/gsm8k",
            "prompt": [{"role": "user", "content": f"{a}+{b}=? End with '#### <answer>'."}],
            "ability": "math",
            "reward_model": {"ground_truth": str(a + b), "style": "rule"},
            "extra_info": {"index": i, "split": split},
            "demo": f"{a}+{b}={a + b}\n#### {a + b}",
        })
    return rows


def write_smoke_data(out_dir, n_train: int = 16, n_val: int = 8, seed: int = 0) -> tuple[Path, Path]:
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, val = out / "train.parquet", out / "val.parquet"
    pd.DataFrame(make_rows(n_train, "train", seed)).to_parquet(train)
    pd.DataFrame(make_rows(n_val, "test", seed + 1)).to_parquet(val)
    return train, val


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--train", type=int, default=16)
    p.add_argument("--val", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    print(*write_smoke_data(a.out_dir, a.train, a.val, a.seed))


if __name__ == "__main__":
    main()
