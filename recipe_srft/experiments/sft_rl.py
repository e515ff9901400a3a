"""The SFT baseline and SFT->RL on the CPU runtime, the same two stages as ``PRESET=sft`` / ``PRESET=sft_rl``.

Stage 1 is verl's own SFT trainer (``torchrun -m verl.trainer.sft_trainer``, :mod:`recipe_srft.cpu.sft`) on the
training file's demonstrations, converted by ``python -m data_prep.sft``; its last checkpoint carries the Hugging
Face model (``checkpoint.save_contents`` with ``hf_model``). Stage 2 is a GRPO run (``srft.preset=grpo`` through
``recipe_srft.main_srft``) whose ``actor_rollout_ref.model.path`` is that model. As in the run scripts, a finished
stage 1 is found (:func:`recipe_srft.integration.sft_stage.final_model`) and not trained again, and each stage
resumes from its own checkpoints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..cpu.env import apply_cpu_env
from ..cpu.sft import cpu_sft_overrides, run_sft
from ..integration.sft_stage import StageNotFinished, final_model, resume_guard

REPO = Path(__file__).resolve().parents[2]


def sft_data(train: Path, out: Path, tokenizer: Path, *, shuffle_seed: int | None = None) -> Path:
    """``data_prep.sft`` of ``train`` into ``out`` (once). ``shuffle_seed`` shuffles the rows afterwards: verl 0.9.1's
    SFT trainer has no data seed (its ``DistributedSampler`` always uses seed 0), so a run's order is set here."""
    if not out.exists():
        cmd = [sys.executable, "-m", "data_prep.sft", "--input", str(train), "--output", str(out),
               "--tokenizer", str(tokenizer)]
        done = subprocess.run(cmd, cwd=REPO, env=apply_cpu_env(dict(os.environ)), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"data_prep.sft failed on {train}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        if shuffle_seed is not None:
            import pandas as pd

            pd.read_parquet(out).sample(frac=1.0, random_state=shuffle_seed).reset_index(drop=True).to_parquet(out)
    return out


def sft_overrides(model: Path, sft_train: Path, out_dir: Path, *, nproc: int, batch_size: int, steps: int, lr: float,
                  max_length: int) -> list[str]:
    """verl SFT trainer overrides of a CPU stage 1: ``steps`` optimizer steps of ``batch_size`` demonstrations, with
    the RL runs' optimizer (AdamW, constant lr, no weight decay), saving the HF model at the end."""
    return cpu_sft_overrides(nproc) + [
        f"model.path={model}", "model.enable_gradient_checkpointing=false",
        f"data.train_files={sft_train}", "data.val_files=null", "data.messages_key=messages",
        "data.enable_thinking_default=null",  # as data_prep.sft and the RL agent loop (run_scripts/_common.sh)
        f"data.train_batch_size={batch_size}", "data.use_dynamic_bsz=true",
        f"data.max_token_len_per_gpu={max(2048, max_length)}", f"data.max_length={max_length}",
        "data.truncation=right",
        f"optim.lr={lr}", "optim.lr_scheduler_type=constant", "optim.lr_warmup_steps_ratio=0.0",
        "optim.weight_decay=0.0",
        "trainer.total_epochs=1000", f"trainer.total_training_steps={steps}", "trainer.test_freq=-1",
        f"trainer.save_freq={steps}", "trainer.resume_mode=auto",
        "checkpoint.save_contents=[model,optimizer,extra,hf_model]", "checkpoint.load_contents=[model,optimizer,extra]",
        f"trainer.default_local_dir={out_dir}/ckpt", "trainer.project_name=srft_cpu", "trainer.experiment_name=sft",
    ]


def run_sft_stage(overrides: list[str], out_dir: Path, *, nproc: int, timeout: float = 3600) -> Path:
    """Stage 1: the HF model of the finished SFT run of ``overrides`` (trained now unless it finished earlier)."""
    try:
        return final_model(overrides)
    except StageNotFinished:
        pass
    resume_guard(overrides)  # verl #7401: only acts on an epoch-boundary checkpoint
    result = run_sft(overrides, out_dir, nproc=nproc, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"stage 1 (verl SFT trainer) failed with exit code {result.returncode}; log: "
                           f"{Path(out_dir) / 'sft.log'}")
    return final_model(overrides)  # StageNotFinished here: the trainer exited 0 without its last checkpoint
