"""Two Ray nodes on one machine: SRFT with trainer.nnodes=2, one FSDP rank per node.

The test starts a head node and a worker node with ``ray start`` (one logical GPU each, no dashboard),
launches ``python -m recipe_srft.main_srft`` against that cluster (``ray_kwargs.ray_init.address``), and
asserts from Ray's own actor table that verl's two FSDP workers ran on two different nodes.

Ray 2.60 resolves 127.0.0.1 to the machine's own interface address for every node, so the nodes talk over
that address (as any single-node Ray here does); nothing leaves the machine. ``RAY_AUTH_MODE=token``: without
it a separate ``ray start`` / driver process is refused with InvalidAuthToken on this Ray.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_srft.tools.console_metrics import read_console_metrics
from recipe_srft.cpu.smoke import run_trainer
from recipe_srft.experiments.smoke_data import write_smoke_data

pytestmark = pytest.mark.ray

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(args, env, what: str):
    try:
        proc = subprocess.run([RAY, *args], env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} did not finish within 120 s: ray {' '.join(args)}")
    assert proc.returncode == 0, f"{what} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"


@pytest.fixture
def two_node_cluster(cpu_env, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    env = dict(os.environ)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
    # Node resources are logical. The head holds the task runner, TransferQueue, reward and agent-loop
    # workers, one FSDP bundle (3 CPUs) and an HF rollout server; the worker node one bundle and a server.
    _ray(["start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=12", "--num-gpus=1",
          "--include-dashboard=false", "--disable-usage-stats"], env, "starting the Ray head node")
    try:
        _ray(["start", f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=6", "--num-gpus=1"], env,
             "starting the second Ray node")
        yield address
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


def _ray_state(address: str) -> tuple[list, set]:
    """FSDP worker actors (dead ones too) and alive node ids, from Ray's GCS tables."""
    import ray

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        from ray._private.state import state

        actors = list(state.actor_table(None).values())
        nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    finally:
        ray.shutdown()
    return [a for a in actors if "WorkerDict" in a.get("ActorClassName", "")], nodes


_STATE_SCRIPT = """
import json, sys
import ray
from ray._private.state import state
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
actors = [{"cls": a.get("ActorClassName", ""), "node": a["Address"]["NodeID"]} for a in state.actor_table(None).values()]
print(json.dumps({"actors": actors, "nodes": [n["NodeID"] for n in ray.nodes() if n["Alive"]]}))
"""


def _ray_state(address: str) -> tuple[list, set]:
    """FSDP worker actors (dead ones too) and alive node ids, from Ray's GCS tables (no dashboard needed). A
    fresh process: this one imported Ray before RAY_AUTH_MODE was set."""
    import json

    proc = subprocess.run([sys.executable, "-c", _STATE_SCRIPT, address], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads(proc.stdout.strip().splitlines()[-1])
    return [a for a in state["actors"] if "WorkerDict" in a["cls"]], set(state["nodes"])


def test_two_nodes_two_ranks(two_node_cluster, tiny_model_dir, tmp_path):
    train, val = write_smoke_data(tmp_path / "data", n_train=8, n_val=4)
    out = tmp_path / "run"
    overrides = [
        "+runtime=cpu",
        "actor_rollout_ref.rollout.name=hf",  # the HF fallback engine (vLLM across Ray nodes is not tested)
        f"+ray_kwargs.ray_init.address={two_node_cluster}",
        "ray_kwargs.ray_init.num_cpus=null", "ray_kwargs.ray_init.num_gpus=null",  # the cluster has its own
        "trainer.nnodes=2", "trainer.n_gpus_per_node=1",
        f"data.train_files={train}", f"data.val_files={val}",
        "data.train_batch_size=4", "data.max_prompt_length=64", "data.max_response_length=16",
        f"actor_rollout_ref.model.path={tiny_model_dir}",
        "actor_rollout_ref.actor.ppo_mini_batch_size=2",  # two optimizer mini-batches per step
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.rollout.n=3",
        "trainer.total_training_steps=2", "trainer.save_freq=-1", "trainer.test_freq=-1",
        "trainer.val_before_train=false", f"trainer.default_local_dir={out}/ckpt",
        "trainer.project_name=srft_test", "trainer.experiment_name=two_nodes",
    ]
    result = run_trainer(overrides, out, entry="recipe_srft.main_srft", config_name="srft_trainer", echo=False,
                         timeout=600)
    log = (out / "train.log").read_text()
    assert result.returncode == 0, log[-6000:]
    steps = {}
    for row in read_console_metrics(out / "train.log"):
        steps.setdefault(row["step"], {}).update(row)
    assert {1, 2} <= set(steps), sorted(steps)
    for step in (1, 2):
        assert steps[step]["srft/num_demos"] == 4
        assert steps[step]["srft/minibatch_demo_frac_min"] > 0
        assert steps[step]["actor/grad_norm"] > 0
        assert steps[step]["training/rollout_probs_diff_max"] < 1e-5

    # Ray's actor table (GCS, no dashboard needed): verl's FSDP workers ran on two different nodes
    workers, alive_nodes = _ray_state(two_node_cluster)
    nodes = {a["node"] for a in workers}
    assert len(alive_nodes) == 2, alive_nodes
    assert len(workers) == 2, workers
    assert nodes == alive_nodes, (nodes, alive_nodes)
