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


def write_splits(out_dir, train_rows: list[dict], val_rows: list[dict], *,
                 val_drop: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Write ``train.parquet`` and ``val.parquet`` into ``out_dir`` (created if missing); returns both paths.

    ``val_drop``: columns left out of the validation file. Shared with :mod:`.demo_task`, whose held-out
    rows drop ``demo``.
    """
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, val = out / "train.parquet", out / "val.parquet"
    pd.DataFrame(train_rows).to_parquet(train)
    pd.DataFrame(val_rows).drop(columns=list(val_drop)).to_parquet(val)
    return train, val


def write_smoke_data(out_dir, n_train: int = 16, n_val: int = 8, seed: int = 0) -> tuple[Path, Path]:
    return write_splits(out_dir, make_rows(n_train, "train", seed), make_rows(n_val, "test", seed + 1))


def run_cli(write, description: str, *, n_train: int, n_val: int, argv=None) -> None:
    """``OUT_DIR [--train N --val N --seed S]``: call ``write(out_dir, n_train, n_val, seed)``, print its paths."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--train", type=int, default=n_train)
    p.add_argument("--val", type=int, default=n_val)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    print(*write(a.out_dir, a.train, a.val, a.seed))


def main(argv=None):
    run_cli(write_smoke_data, __doc__, n_train=16, n_val=8, argv=argv)


if __name__ == "__main__":
    main()
