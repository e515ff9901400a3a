"""The CPU demo's task: one-step GSM8K-style word problems with worked demonstrations.

A 135M model on 2 CPU cores gets a few minutes of training, so the task is chosen so that
demonstrations can teach something measurable in that budget: short single-operation word
problems (addition, subtraction, multiplication of small numbers) whose demonstration shows the
computation and ends with GSM8K's ``#### <answer>`` line. Rows are verl parquet with a ``demo``
column, ``data_source = "gsm8k"`` (graded by ``recipe_srft.reward``'s GSM8K rule), generated from a
seed so train and held-out sets never share a problem.

    python -m recipe_srft.experiments.demo_task OUT_DIR [--train 256 --val 100 --seed 0]
"""

from __future__ import annotations

import random
from pathlib import Path

from .smoke_data import run_cli, write_splits

NAMES = ["Ava", "Ben", "Chloe", "Dan", "Ema", "Finn", "Gia", "Hugo", "Iris", "Jack", "Kira", "Leo", "Mia", "Noah"]
ITEMS = ["apples", "marbles", "books", "stickers", "pencils", "cookies", "shells", "coins", "cards", "stamps"]
INSTRUCTION = "Solve the problem. Show the calculation, then give the final answer on its own line as '#### <number>'."


def make_problem(rng: random.Random) -> tuple[str, str, int]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    kind = rng.choice(["add", "sub", "mul"])
    if kind == "add":
        a, b = rng.randint(10, 89), rng.randint(10, 89)
        q = f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?"
        ans = a + b
        demo = f"{name} has {a} + {b} = {ans} {item}.\n#### {ans}"
    elif kind == "sub":
        a = rng.randint(30, 99)
        b = rng.randint(5, a - 5)
        q = f"{name} has {a} {item} and gives away {b}. How many {item} are left?"
        ans = a - b
        demo = f"{name} has {a} - {b} = {ans} {item} left.\n#### {ans}"
    else:
        a, b = rng.randint(2, 9), rng.randint(3, 12)
        q = f"{name} buys {a} bags with {b} {item} in each bag. How many {item} does {name} buy?"
        ans = a * b
        demo = f"{name} buys {a} * {b} = {ans} {item}.\n#### {ans}"
    return q, demo, ans


def make_rows(n: int, seed: int, split: str, exclude: set | None = None) -> list[dict]:
    rng = random.Random(seed)
    rows, seen = [], set(exclude or ())
    while len(rows) < n:
        q, demo, ans = make_problem(rng)
        if q in seen:
            continue
        seen.add(q)
        rows.append({
            "data_source": "gsm8k",
            "prompt": [{"role": "user", "content": f"{q}\n{INSTRUCTION}"}],
            "ability": "math",
            "reward_model": {"ground_truth": str(ans), "style": "rule"},
            "extra_info": {"index": len(rows), "split": split, "template": "gsm8k_hash"},
            "demo": demo,
        })
    return rows


def write_demo_task(out_dir, n_train: int = 256, n_val: int = 100, seed: int = 0) -> tuple[Path, Path]:
    val_rows = make_rows(n_val, seed + 1000, "test")
    train_rows = make_rows(n_train, seed, "train", exclude={r["prompt"][0]["content"].split("\n")[0] for r in val_rows})
    # held-out rows carry no demonstration: validation never gets demos
    return write_splits(out_dir, train_rows, val_rows, val_drop=("demo",))


def main(argv=None):
    run_cli(write_demo_task, __doc__, n_train=256, n_val=100, argv=argv)


if __name__ == "__main__":
    main()
