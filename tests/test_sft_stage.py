"""The SFT stage's resume pitfall (verl #7401 / #7974) with verl 0.9.1's own CheckpointHandler and data loader.

No training and no GPU: the loop below is ``SFTTrainer.fit``'s epoch/step bookkeeping (``start_epoch = global_step //
steps_per_epoch``, ``train_sampler.set_epoch(epoch)``, one ``global_step`` per batch, a checkpoint every
``save_freq`` steps) around the loader ``SFTTrainer._build_dataloader`` builds (``DistributedSampler(shuffle=True,
drop_last=True)`` + ``StatefulDataLoader(drop_last=True)``), with verl's ``CheckpointHandler`` saving and
restoring the loader state; only the model engine is a stub. The batches record which rows each step trains on.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROWS, BATCH, EPOCHS = 20, 4, 3  # 5 steps per epoch, 15 steps in all


class _StubEngine:
    """What CheckpointHandler calls on the engine (model/optimizer state are not the point here)."""

    def save_checkpoint(self, local_path, global_step, max_ckpt_to_keep=None):
        os.makedirs(local_path, exist_ok=True)

    def load_checkpoint(self, path):
        pass


def _loader():
    from torch.utils.data import DistributedSampler
    from torchdata.stateful_dataloader import StatefulDataLoader

    dataset = list(range(ROWS))
    sampler = DistributedSampler(dataset, shuffle=True, num_replicas=1, rank=0, drop_last=True)
    return sampler, StatefulDataLoader(dataset, batch_size=BATCH, sampler=sampler, drop_last=True, num_workers=0)


def _handler(loader, ckpt: Path):
    from verl.utils.checkpoint.checkpoint_handler import CheckpointHandler, OrchestrationMode

    # RAY mode: rank 0, no torch.distributed process group needed; same save/load code as SPMD
    return CheckpointHandler(engine=_StubEngine(), train_dataloader=loader, default_local_dir=str(ckpt),
                             resume_mode="auto", mode=OrchestrationMode.RAY)


def _fit(ckpt: Path, *, save_freq: int, stop_after: int | None = None) -> list[tuple[int, list[int]]]:
    """(global_step, rows) per step, as SFTTrainer.fit iterates; stops (a crash) after step ``stop_after``."""
    sampler, loader = _loader()
    handler = _handler(loader, ckpt)
    global_step = handler.load_checkpoint()
    steps_per_epoch = len(loader)
    total = steps_per_epoch * EPOCHS
    out = []
    for epoch in range(global_step // steps_per_epoch, EPOCHS):
        sampler.set_epoch(epoch=epoch)
        for batch in loader:
            global_step += 1
            out.append((global_step, batch.tolist()))
            if global_step >= total or global_step % save_freq == 0:
                handler.save_checkpoint(step=global_step)
            if global_step >= total or global_step == stop_after:
                return out
    return out


def _overrides(ckpt: Path, train: Path) -> list[str]:
    return [f"trainer.default_local_dir={ckpt}", f"data.train_files={train}", f"data.train_batch_size={BATCH}",
            "trainer.nnodes=1", "trainer.n_gpus_per_node=1", f"trainer.total_epochs={EPOCHS}"]


@pytest.fixture()
def train_file(tmp_path):
    path = tmp_path / "train.sft.parquet"
    pq.write_table(pa.table({"messages": [[{"content": f"q{i}", "role": "user"}] for i in range(ROWS)]}), path)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run (no checkpoint saved on the way)."""
    run = _fit(tmp_path_factory.mktemp("reference"), save_freq=10 ** 6)
    assert [step for step, _ in run] == list(range(1, ROWS // BATCH * EPOCHS + 1))
    return run


def test_verl_091_skips_an_epoch_when_resuming_from_an_epoch_boundary(tmp_path, reference):
    """The bug is present in verl 0.9.1: the exhausted loader state of step 5 (end of epoch 1) makes the resumed
    epoch 2 yield no batch, and the run ends after 10 of its 15 steps. (If a verl upgrade fixes it, this test fails:
    then drop recipe_srft.integration.sft_stage.resume_guard.)"""
    first = _fit(tmp_path, save_freq=5, stop_after=5)
    assert (tmp_path / "global_step_5" / "data_0.pt").is_file()
    resumed = _fit(tmp_path, save_freq=5)
    assert [step for step, _ in first + resumed] == list(range(1, 11))  # steps 11-15 never happen
    assert resumed == [(step - 5, rows) for step, rows in reference[10:]]  # epoch 3's batches, numbered 6-10


def test_resume_guard_gives_the_uninterrupted_run(tmp_path, train_file, reference, capsys):
    from recipe_srft.integration.sft_stage import main, resume_guard

    ckpt = tmp_path / "ckpt"
    first = _fit(ckpt, save_freq=5, stop_after=5)
    message = resume_guard(_overrides(ckpt, train_file))
    assert "end of epoch 1 (5 steps per epoch)" in message and "data_0.pt" in message
    assert (ckpt / "global_step_5" / "data_0.pt.epoch_boundary").is_file()
    assert not (ckpt / "global_step_5" / "data_0.pt").exists()
    resumed = _fit(ckpt, save_freq=5)
    assert first + resumed == reference
    # idempotent, and the CLI form the run script calls
    assert main(["resume-guard", *_overrides(ckpt, train_file)]) == 0


def test_resume_guard_leaves_mid_epoch_and_final_checkpoints(tmp_path, train_file, reference):
    from recipe_srft.integration.sft_stage import resume_guard

    ckpt = tmp_path / "mid"
    first = _fit(ckpt, save_freq=7, stop_after=7)
    assert resume_guard(_overrides(ckpt, train_file)) is None
    assert (ckpt / "global_step_7" / "data_0.pt").is_file()
    assert first + _fit(ckpt, save_freq=7) == reference  # a mid-epoch resume is exact in verl 0.9.1
    # the final checkpoint (step 15): nothing left to train, nothing to do
    assert resume_guard(_overrides(ckpt, train_file)) is None
    assert resume_guard(_overrides(tmp_path / "empty", train_file)) is None  # no checkpoint yet
    assert resume_guard(_overrides(ckpt, train_file) + ["trainer.resume_mode=disable"]) is None


def test_steps_per_epoch_matches_verls_loader():
    from torch.utils.data import DistributedSampler
    from torchdata.stateful_dataloader import StatefulDataLoader

    from recipe_srft.integration.sft_stage import steps_per_epoch

    for rows, tbs, dp in [(20, 4, 1), (21, 4, 2), (1003, 64, 8), (640, 64, 4), (65, 64, 8)]:
        lengths = set()
        for rank in range(dp):
            sampler = DistributedSampler(list(range(rows)), num_replicas=dp, rank=rank, shuffle=True, drop_last=True)
            lengths.add(len(StatefulDataLoader(list(range(rows)), batch_size=tbs // dp, sampler=sampler,
                                               drop_last=True)))
        assert lengths == {steps_per_epoch(rows, tbs, dp)}, (rows, tbs, dp)
