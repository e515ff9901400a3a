"""The start-up checks through verl's real trainer on the CPU runtime (one launch, tiny model), launched as
``python -m verl.trainer.main_ppo --config-name srft_trainer`` (verl's own entry point selects the SRFT trainer from
the recipe's config; the data check then runs in the trainer, not in recipe_srft.main_srft's pre-flight).

The issue's broken training file (tests/test_data_check.py: rows without a ground truth, without a demonstration,
with a demonstration the reward rejects or one over the response length) with ``srft.data_check=skip``, in an edge
shape the batch check accepts (tests/test_verl_batch.py): 2 ranks, 2 optimizer mini-batches of 2 prompts x (2
rollouts + 1 demonstration), each rank's mini-batch of 3 trajectories in one micro-batch of 3, its log-prob share of
6 in one micro-batch of 6. One step runs; the dropped rows are logged and no prompt reached the batch without its
demonstration.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recipe_srft.cpu.env import CONFIG_DIR
from recipe_srft.cpu.smoke import run_trainer
from recipe_srft.experiments.smoke_data import make_rows, write_splits
from recipe_srft.integration.launch import batch_checks, srft_config_from
from recipe_srft.tools.console_metrics import read_console_metrics
from recipe_srft.tools.dry_run import compose_config
from test_data_check import RESPONSE_LEN, broken_rows

pytestmark = pytest.mark.ray

EDGE = [
    "trainer.n_gpus_per_node=2",
    "data.train_batch_size=4",
    "actor_rollout_ref.rollout.n=2",  # + 1 demonstration: groups of 3
    "actor_rollout_ref.actor.ppo_mini_batch_size=2",  # 2 optimizer mini-batches of 6 trajectories, 3 per rank
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=3",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=6",  # each rank's whole share of 12 / 2
]


def overrides(model, train, val, out):
    return [
        "+runtime=cpu",
        "actor_rollout_ref.rollout.name=hf",
        f"data.train_files={train}", f"data.val_files={val}",
        "data.max_prompt_length=64", f"data.max_response_length={RESPONSE_LEN}",
        f"actor_rollout_ref.model.path={model}", "actor_rollout_ref.actor.optim.lr=1e-3",
        "srft.data_check=skip",
        "trainer.total_training_steps=1", "trainer.save_freq=-1", "trainer.test_freq=-1",
        "trainer.val_before_train=false", f"trainer.default_local_dir={out}/ckpt",
        "trainer.project_name=srft_test", "trainer.experiment_name=startup_checks",
        *EDGE,
    ]


def test_skip_and_an_edge_shape_run_one_step(tiny_model_dir, tmp_path):
    train, val = write_splits(tmp_path / "data", broken_rows(), make_rows(4, "test", 1))
    out = tmp_path / "run"
    args = overrides(tiny_model_dir, train, val, out)
    config = compose_config(args)
    assert batch_checks(config, srft_config_from(config), use_ref=False)[0] == []  # accepted, at the edge
    result = run_trainer(args, out, entry="verl.trainer.main_ppo", config_dir=CONFIG_DIR, config_name="srft_trainer",
                         echo=False, timeout=600)
    log = (out / "train.log").read_text()
    assert result.returncode == 0, log[-6000:]
    assert f"SRFT data check (skip): dropped 5 of 20 rows of {train}" in log, log[-6000:]
    steps = {}
    for row in read_console_metrics(out / "train.log"):
        steps.setdefault(row["step"], {}).update(row)
    m = steps[1]
    assert m["srft/num_minibatches"] == 2
    assert m["srft/num_demos"] == 4  # every prompt of the step brought its demonstration
    assert m["srft/prompts_without_demo"] == 0 and m["srft/demos_scored_zero"] == 0
    assert m["srft/demo_solve_rate"] == 1.0  # the dropped row 2 (a wrong worked answer) never trained
    assert m["actor/srft/sft_loss"] > 0  # the SRFT loss ran under verl's entry point
