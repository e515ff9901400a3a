"""The SFT baseline (``PRESET=sft``): verl 0.9.1's own engine-based SFT trainer, composed and validated without a GPU.

    python -m recipe_srft.integration.sft_stage dry-run [hydra overrides ...]       # what DRY_RUN=1 PRESET=sft runs
    python -m recipe_srft.integration.sft_stage resume-guard [hydra overrides ...]  # run before every (re)start: the
                                                                                   # checks below (4.), then the guard
    python -m recipe_srft.integration.sft_stage final-model [hydra overrides ...]   # the finished run's HF model, else exit 3

``run_scripts/_common.sh`` builds the overrides (LUFFY's SFT settings, cited there) and, without ``DRY_RUN``, runs
``torchrun ... -m verl.trainer.sft_trainer <overrides>``: verl's trainer, its hydra config
(``verl/trainer/config/sft_trainer_engine.yaml``), its ``MultiTurnSFTDataset`` (a ``messages`` column, written by
``python -m data_prep.sft``), nothing of this recipe inside the training process.

The dry run checks, in order:

1. composition with hydra's compose API on verl's own ``sft_trainer_engine`` config: a key that config does not
   have fails (struct mode), naming the key;
2. ``OmegaConf.resolve`` and mandatory values (``???``);
3. the dataclasses ``SFTTrainer._build_config`` builds (``model`` -> ``HFModelConfig``, type-checked only: its
   ``__post_init__`` loads the tokenizer; ``engine`` -> ``FSDPEngineConfig``; ``optim`` -> ``FSDPOptimizerConfig``;
   ``checkpoint`` -> ``CheckpointConfig``; ``profiler`` -> ``ProfilerConfig``) with every scalar field's type, and
   the settings the trainer and ``MultiTurnSFTDataset`` assert at run time (pad mode, truncation, resume mode,
   profile interval, ...);
4. the batch arithmetic: GPUs divisible by the sequence-parallel size, the global batch (``data.train_batch_size``,
   sequences) divisible by the data-parallel ranks (verl would silently train on ``batch // dp`` per rank), the
   dynamic-batch budget holding one ``data.max_length`` sequence (verl asserts it in the first step), micro-batches
   dividing the per-rank batch without dynamic batching, ``data.max_length`` within the model's positions; when the
   training file exists here, its rows give the steps per epoch and the total.

The resume pitfall (verl #7401, #7974; present in 0.9.1): ``SFTTrainer.fit`` resumes at epoch
``global_step // steps_per_epoch`` and ``CheckpointHandler`` restores the ``StatefulDataLoader`` state saved with
the checkpoint. A checkpoint saved on the last step of an epoch holds an *exhausted* loader state; restored, it
makes the next epoch yield no batch at all, so a resumed run silently skips one epoch (and, at the last epoch,
ends "successfully" with updates missing). :func:`resume_guard` works around it without touching verl: before the
trainer starts it looks at the checkpoint verl will resume from and, when that checkpoint sits on an epoch boundary
(step % steps_per_epoch == 0, before the last step), moves its ``data_<rank>.pt`` aside. verl then logs that no
dataloader state was found, starts a fresh loader, and ``set_epoch(k)`` gives the next epoch exactly the order an
uninterrupted run would have used (``tests/test_sft_stage.py`` checks this with verl's own ``CheckpointHandler``).
Mid-epoch checkpoints are left alone: their state is what makes the resume exact.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

SFT_CONFIG_NAME = "sft_trainer_engine"
SFT_ENTRY = "verl.trainer.sft_trainer"

#: what the trainer and its dataset accept (asserted at run time in verl 0.9.1)
PAD_MODES = ("no_padding", "right")
TRUNCATIONS = ("error", "left", "right")
RESUME_MODES = ("auto", "disable", "resume_path")

#: free-form maps of the SFT config (entries may be added with ``+``); ``engine.mixed_precision`` is a field of verl's
#: ``FSDPEngineConfig`` that its yaml leaves out (the CPU runtime sets it: ``recipe_srft.cpu.sft``)
FREE_FORM_PREFIXES = ("data.apply_chat_template_kwargs", "model.override_config", "engine.mixed_precision")


def sft_config_dir() -> Path:
    """verl's own config folder (``sft_trainer_engine.yaml`` and its defaults)."""
    import verl.trainer

    return Path(verl.trainer.__file__).resolve().parent / "config"


# ---------------------------------------------------------------------------------------------- compose
def compose_sft_config(overrides: list[str]):
    """The config ``python -m verl.trainer.sft_trainer <overrides>`` would get (not resolved)."""
    from ..tools.dry_run import compose_config

    return compose_config(
        overrides, sft_config_dir(), SFT_CONFIG_NAME, what="SFT config",
        unknown_key_hint=("\nThis key does not exist in verl 0.9.1's SFT trainer config (the RL keys such as "
                          "actor_rollout_ref.* do not apply to PRESET=sft). Look up the name in "
                          "verl/trainer/config/sft_trainer_engine.yaml and its model/engine/optim/profiler defaults."))


# ---------------------------------------------------------------------------------------------- checks
def _positive_int(config, key: str, problems: list[str], *, minimum: int = 1) -> Optional[int]:
    from omegaconf import OmegaConf

    value = OmegaConf.select(config, key)
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"{key}={value!r}: expected an integer")
        return None
    if value < minimum:
        problems.append(f"{key}={value}: must be >= {minimum}")
        return None
    return value


def _freq(config, key: str, problems: list[str]):
    value = config.trainer.get(key.split(".")[-1])
    if value == "after_each_epoch" or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    problems.append(f"{key}={value!r}: expected an integer (-1 = never) or 'after_each_epoch'")
    return None


def count_rows(files) -> tuple[Optional[int], list[str]]:
    """Rows of the parquet files (from their metadata), or None when one is not here."""
    import pyarrow.parquet as pq

    files = [files] if isinstance(files, str) else list(files or [])
    total, missing = 0, []
    for f in files:
        path = Path(os.path.expanduser(str(f)))
        if not path.is_file():
            missing.append(str(f))
            continue
        total += pq.ParquetFile(path).metadata.num_rows
    return (None if missing or not files else total), missing


def dataset_rows(config) -> tuple[Optional[int], list[str]]:
    """Rows verl's ``MultiTurnSFTDataset`` will hold (all rows of ``data.train_files``, capped by
    ``data.train_max_samples``; it filters nothing), or None when a file is not here."""
    rows, missing = count_rows(config.data.train_files)
    cap = config.data.get("train_max_samples", -1)
    if rows is not None and isinstance(cap, int) and 0 < cap < rows:
        rows = cap
    return rows, missing


def steps_per_epoch(rows: int, train_batch_size: int, dp: int) -> int:
    """Optimizer steps of one epoch as verl's SFT trainer computes them (``len(train_dataloader)``).

    ``DistributedSampler(drop_last=True)`` gives each rank ``rows // dp`` samples, the loader batches them
    ``train_batch_size // dp`` at a time and drops the last partial batch."""
    per_rank = train_batch_size // dp
    return (rows // dp) // per_rank if per_rank else 0


def sft_batch_checks(config) -> tuple[list[str], list[str], dict[str, Any]]:
    """(problems, warnings, summary) of the SFT run's batch arithmetic and run-time assertions."""
    from omegaconf import OmegaConf

    from .launch import _model_position_limit

    problems: list[str] = []
    warnings: list[str] = []
    data, trainer = config.data, config.trainer

    nnodes = _positive_int(config, "trainer.nnodes", problems)
    per_node = _positive_int(config, "trainer.n_gpus_per_node", problems)
    tbs = _positive_int(config, "data.train_batch_size", problems)
    max_length = _positive_int(config, "data.max_length", problems)
    epochs = _positive_int(config, "trainer.total_epochs", problems)
    sp = _positive_int(config, "engine.ulysses_sequence_parallel_size", problems) or 1
    if data.get("pad_mode") not in PAD_MODES:
        problems.append(f"data.pad_mode={data.get('pad_mode')!r}: verl's MultiTurnSFTDataset accepts {list(PAD_MODES)}")
    if data.get("truncation") not in TRUNCATIONS:
        problems.append(f"data.truncation={data.get('truncation')!r}: expected one of {list(TRUNCATIONS)}")
    if trainer.get("resume_mode") not in RESUME_MODES:
        problems.append(f"trainer.resume_mode={trainer.get('resume_mode')!r}: expected one of {list(RESUME_MODES)}")
    elif trainer.resume_mode == "resume_path" and not trainer.get("resume_from_path"):
        problems.append("trainer.resume_mode=resume_path needs trainer.resume_from_path=<.../global_step_N>")
    interval = OmegaConf.to_container(trainer.profile_interval) if OmegaConf.is_list(trainer.get("profile_interval")) \
        else trainer.get("profile_interval")
    if not (isinstance(interval, list) and len(interval) == 2 and interval[1] >= interval[0]
            and (interval[0] >= 0 or interval[1] < 0)):
        problems.append(f"trainer.profile_interval={interval!r}: expected [start, end] with end >= start "
                        "([-1, -1] = off)")
    save_freq = _freq(config, "trainer.save_freq", problems)
    test_freq = _freq(config, "trainer.test_freq", problems)
    if data.get("custom_cls", {}).get("path"):
        warnings.append(f"data.custom_cls.path={data.custom_cls.path}: a custom dataset replaces verl's "
                        "MultiTurnSFTDataset; data_prep.sft's messages format and token check assume verl's")
    if test_freq not in (None, -1) and not data.get("val_files"):
        problems.append(f"trainer.test_freq={test_freq} without data.val_files: verl's SFT trainer would iterate a "
                        "missing validation loader; set data.val_files or trainer.test_freq=-1")
    if None in (nnodes, per_node, tbs, max_length):
        return problems, warnings, {}

    n_gpus = nnodes * per_node
    summary: dict[str, Any] = dict(nnodes=nnodes, gpus_per_node=per_node, total_gpus=n_gpus, sequence_parallel=sp,
                                   train_batch_size=tbs, max_length=max_length, total_epochs=epochs)
    if n_gpus % sp:
        problems.append(f"{n_gpus} GPUs are not divisible by engine.ulysses_sequence_parallel_size={sp}")
    dp = max(1, n_gpus // sp)
    summary["data_parallel"] = dp
    if tbs % dp:
        problems.append(f"data.train_batch_size={tbs} (global, sequences) is not divisible by the {dp} data-parallel "
                        f"ranks ({n_gpus} GPUs / sequence parallel {sp}): verl's SFT trainer would load "
                        f"{tbs // dp} per rank (verl/trainer/sft_trainer.py:241), i.e. {tbs // dp * dp} sequences per "
                        f"step, and still normalise as {tbs}. Fix: data.train_batch_size a multiple of {dp}")
    elif tbs < dp:
        problems.append(f"data.train_batch_size={tbs} < {dp} data-parallel ranks: a rank would get no sequence")
    per_rank = tbs // dp
    summary["sequences_per_rank"] = per_rank
    if data.get("use_dynamic_bsz"):
        budget = _positive_int(config, "data.max_token_len_per_gpu", problems)
        if budget is not None:
            summary["max_token_len_per_gpu"] = budget
            if budget * sp < max_length:
                problems.append(f"data.max_token_len_per_gpu={budget} (x sequence parallel {sp}) cannot hold one "
                                f"sequence of data.max_length={max_length} tokens: verl asserts max_token_len >= "
                                f"max_seq_len in the first step (verl/utils/seqlen_balancing.py:384). Fix: "
                                f"data.max_token_len_per_gpu={-(-max_length // sp)} or more")
    else:
        micro = _positive_int(config, "data.micro_batch_size_per_gpu", problems)
        if micro is not None and per_rank % micro:
            fix = max(d for d in range(1, micro + 1) if per_rank % d == 0)
            problems.append(f"data.micro_batch_size_per_gpu={micro} does not divide the {per_rank} sequences per rank "
                            f"(data.train_batch_size={tbs} / {dp}): verl asserts 'data size must be divisible by "
                            f"force_group_size * micro_batch_size_per_gpu' in the first step "
                            f"(verl/workers/engine/utils.py:125). Fix: data.micro_batch_size_per_gpu={fix}, or "
                            f"data.use_dynamic_bsz=true")
        summary["micro_batch_size_per_gpu"] = micro

    limit, source = _model_position_limit(str(config.model.path))
    summary["model_positions"] = f"{limit} ({source})" if limit is not None else source
    if limit is not None and max_length > limit:
        problems.append(f"data.max_length={max_length} exceeds the model's {limit} positions ({source})")

    rows, missing = dataset_rows(config)
    summary["train_rows"] = rows
    if rows is not None and epochs:
        spe = steps_per_epoch(rows, tbs, dp)
        total = trainer.get("total_training_steps") or spe * epochs
        summary.update(steps_per_epoch=spe, total_training_steps=total)
        if spe == 0:
            problems.append(f"data.train_files hold {rows} rows: fewer than one batch of {tbs} per epoch")
        elif isinstance(save_freq, int) and save_freq > 0 and any(
                step % spe == 0 for step in range(save_freq, total, save_freq)):
            warnings.append(f"trainer.save_freq={save_freq} saves on an epoch boundary ({spe} steps per epoch): "
                            "resuming from such a checkpoint skips an epoch in verl 0.9.1 (#7401); the run "
                            "script's resume guard (python -m recipe_srft.integration.sft_stage resume-guard) handles it")
    else:
        summary.update(steps_per_epoch=None, total_training_steps=trainer.get("total_training_steps"))
    summary["missing_files"] = missing
    return problems, warnings, summary


def _instantiate(config, problems: list[str]) -> list[str]:
    """Builds the dataclasses ``SFTTrainer._build_config`` builds; returns 'path -> Class' lines."""
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import HFModelConfig

    from ..tools.dry_run import DeviceRequired, _field_type_errors, _is_device_error, _short, _typecheck

    built = []
    try:
        _typecheck(config.model, HFModelConfig)
        built.append("model -> HFModelConfig fields type-checked (not built: its __post_init__ loads the tokenizer "
                     "and HF config from the model path)")
    except Exception as exc:  # noqa: BLE001 - reported with the path
        problems.append(f"model: field/type error against HFModelConfig: {_short(exc)}")
    for path in ("engine", "optim", "checkpoint", "profiler"):
        node = config.get(path)
        if node is None:
            problems.append(f"{path}: missing from the composed config")
            continue
        try:
            obj = omega_conf_to_dataclass(node)
        except Exception as exc:  # noqa: BLE001
            if _is_device_error(exc):
                raise DeviceRequired(f"{path}: {exc}") from exc
            problems.append(f"{path}: verl's {node.get('_target_')} rejects it: {_short(exc)}")
            continue
        errors = _field_type_errors(obj, path)
        if errors:
            problems.append(f"{path}: wrong value types for verl's {type(obj).__name__}: " + "; ".join(errors))
        else:
            built.append(f"{path} -> {type(obj).__name__} (fields and scalar types checked)")
    return built


def dry_run_sft(overrides: list[str]) -> dict:
    """Every check on the SFT config of ``overrides``; the summary, or :class:`~recipe_srft.tools.dry_run.DryRunError`."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from ..tools.dry_run import DeviceRequired, DryRunError

    overrides = list(overrides)
    config = compose_sft_config(overrides)
    try:
        OmegaConf.resolve(config)
    except OmegaConfBaseException as exc:
        raise DryRunError(f"SFT config does not resolve: {exc}") from exc
    missing = sorted(OmegaConf.missing_keys(config))
    if missing:
        raise DryRunError("mandatory values are not set (??? in verl's SFT config):\n  - "
                          + "\n  - ".join(f"{key}: set it, e.g. {key}=..." for key in missing))
    problems: list[str] = []
    warnings = [f"'{o}' adds a key verl's SFT config does not have: make sure something reads it"
                for o in overrides if o.startswith("+") and not o.startswith("++")
                and not o[1:].split("=", 1)[0].startswith(FREE_FORM_PREFIXES)]
    try:
        built = _instantiate(config, problems)
    except DeviceRequired as exc:
        warnings.append(f"a verl config dataclass needs an accelerator to be built: {exc}")
        built = [f"INCOMPLETE: {exc}"]
    batch_problems, batch_warnings, summary = sft_batch_checks(config)
    problems += batch_problems
    warnings += batch_warnings
    if problems:
        raise DryRunError("the SFT configuration would not run:\n  - " + "\n  - ".join(problems))
    optim = config.optim
    summary.update(
        overrides=overrides,
        entry=f"torchrun --nnodes={summary['nnodes']} --nproc_per_node={summary['gpus_per_node']} -m {SFT_ENTRY}",
        model=str(config.model.path),
        train_files=OmegaConf.to_container(config.data.train_files) if OmegaConf.is_list(config.data.train_files)
        else config.data.train_files,
        messages_key=config.data.messages_key,
        optimizer=(f"{optim.optimizer} lr {optim.lr}, betas {list(optim.betas)}, weight decay {optim.weight_decay}, "
                   f"clip {optim.clip_grad}; {optim.lr_scheduler_type} schedule, warmup ratio "
                   f"{optim.lr_warmup_steps_ratio}, min lr ratio {optim.min_lr_ratio}"),
        engine=f"{config.engine.strategy} ({config.engine.dtype})",
        save_freq=config.trainer.save_freq,
        test_freq=config.trainer.test_freq,
        checkpoint_dir=config.trainer.default_local_dir,
        checkpoint_contents=list(config.checkpoint.save_contents),
        resume_mode=config.trainer.resume_mode,
        logger=OmegaConf.to_container(config.trainer.logger) if OmegaConf.is_list(config.trainer.logger)
        else config.trainer.logger,
        experiment=f"{config.trainer.project_name}/{config.trainer.experiment_name}",
        dataclasses=built,
        warnings=warnings,
    )
    return summary


def format_sft_summary(s: dict) -> str:
    steps = (f"{s['steps_per_epoch']} steps per epoch x {s['total_epochs']} epochs = {s['total_training_steps']} "
             f"steps ({s['train_rows']} rows)" if s.get("steps_per_epoch") is not None else
             f"{s['total_epochs']} epochs (steps: unknown here, the training file is not on this machine)")
    budget = (f"dynamic batches, {s['max_token_len_per_gpu']} tokens per GPU" if "max_token_len_per_gpu" in s
              else f"micro-batch {s.get('micro_batch_size_per_gpu')} per GPU")
    lines = [
        "SRFT dry run (PRESET=sft): OK (verl's SFT trainer config composed, resolved and validated; nothing launched)",
        f"  entry             {s['entry']}",
        f"  model             {s['model']}  (positions: {s['model_positions']})",
        f"  data              {s['train_files']} (column '{s['messages_key']}'); sequences up to {s['max_length']} "
        "tokens",
        f"  batch             {s['train_batch_size']} sequences per step = {s['data_parallel']} data-parallel ranks x "
        f"{s['sequences_per_rank']}; {budget}",
        f"  GPUs              {s['nnodes']} node(s) x {s['gpus_per_node']} = {s['total_gpus']}; sequence parallel "
        f"{s['sequence_parallel']}; engine {s['engine']}",
        f"  schedule          {steps}",
        f"  optimizer         {s['optimizer']}",
        f"  checkpoints       every {s['save_freq']} steps -> {s['checkpoint_dir']} ({', '.join(s['checkpoint_contents'])}); "
        f"resume_mode={s['resume_mode']}; validation every {s['test_freq']}",
        f"  tracking          {s['experiment']} logger={s['logger']}",
        "  verl dataclasses:",
        *[f"    {line}" for line in s["dataclasses"]],
    ]
    notes = [f"{f} does not exist here (fine for a dry run; needed for the real run)" for f in s["missing_files"]]
    if notes:
        lines += ["  notes:", *[f"    - {n}" for n in notes]]
    if s["warnings"]:
        lines += ["  WARNINGS:", *[f"    - {w}" for w in s["warnings"]]]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- resume guard
def _resolved(overrides: list[str]):
    from omegaconf import OmegaConf

    config = compose_sft_config(overrides)
    OmegaConf.resolve(config)
    return config


def schedule(config) -> tuple[Optional[int], Optional[int], list[str]]:
    """(steps per epoch, total steps, missing files) of the run, as verl's SFT trainer counts them; the steps are
    None when a training file is not on this machine."""
    rows, missing = dataset_rows(config)
    if rows is None:
        return None, None, missing
    trainer = config.trainer
    dp = max(1, int(trainer.nnodes) * int(trainer.n_gpus_per_node) // int(config.engine.ulysses_sequence_parallel_size))
    spe = steps_per_epoch(rows, int(config.data.train_batch_size), dp)
    return spe, trainer.get("total_training_steps") or spe * int(trainer.total_epochs), missing


def _latest_checkpoint(config) -> Optional[str]:
    """The checkpoint verl's ``CheckpointHandler`` resumes from (``trainer.resume_from_path``, else the tracker file
    in ``trainer.default_local_dir``), or None."""
    path = config.trainer.get("resume_from_path")
    if not path:
        from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path

        path = find_latest_ckpt_path(str(config.trainer.default_local_dir))
    return path if path and Path(path).is_dir() else None


def resume_guard(overrides: list[str]) -> Optional[str]:
    """Works around verl #7401 for the run of ``overrides`` (see the module docstring); returns what it did.

    Looks up the checkpoint verl's ``CheckpointHandler`` will resume from; when its step is a multiple of the steps
    per epoch and before the last step, renames its ``data_<rank>.pt`` files to ``data_<rank>.pt.epoch_boundary``.
    Needs the training file here (it counts its rows).
    """
    config = _resolved(overrides)
    if config.trainer.resume_mode == "disable":
        return None
    path = _latest_checkpoint(config)
    if path is None:
        return None
    from verl.utils.checkpoint.checkpoint_handler import extract_step

    step = extract_step(str(path))
    spe, total, missing = schedule(config)
    if step is None or spe is None:
        return f"resume guard: cannot check {path} ({'no step in its name' if step is None else f'missing {missing}'})"
    if spe == 0 or step % spe or step >= total:
        return None
    moved = []
    for state in sorted(Path(path).glob("data_*.pt")):
        try:
            state.rename(state.with_name(state.name + ".epoch_boundary"))
            moved.append(state.name)
        except FileNotFoundError:  # another node's guard was first
            pass
    return (f"resume guard: {path} is the end of epoch {step // spe} ({spe} steps per epoch); its exhausted "
            f"dataloader state would make verl 0.9.1 skip epoch {step // spe + 1} (#7401): moved aside "
            f"{', '.join(moved) or 'nothing (already done)'}; verl starts the next epoch with a fresh loader")


#: the folder verl's checkpoint manager writes the Hugging Face model to (``checkpoint.save_contents`` with
#: ``hf_model``), inside ``global_step_N``
HF_SUBDIR = "huggingface"


class StageNotFinished(RuntimeError):
    """The SFT run of these overrides has not written its final checkpoint yet (the message says what is there)."""


def final_model(overrides: list[str]) -> Path:
    """The Hugging Face model of the *finished* SFT run of ``overrides``: ``<default_local_dir>/global_step_<total>/
    huggingface``, what stage 2 of ``PRESET=sft_rl`` starts from. Raises :class:`StageNotFinished` (with what is
    there) when the run has not reached its last step, and ``DryRunError`` when its config cannot say which step is
    the last (training file missing) or does not save ``hf_model``."""
    from ..tools.dry_run import DryRunError

    config = _resolved(overrides)
    if "hf_model" not in list(config.checkpoint.save_contents):
        raise DryRunError(f"checkpoint.save_contents={list(config.checkpoint.save_contents)} has no hf_model: the "
                          "SFT stage would not write the Hugging Face model stage 2 starts from")
    _, total, missing = schedule(config)
    if total is None:
        raise DryRunError(f"cannot tell the SFT stage's last step: {missing} not found")
    root = Path(str(config.trainer.default_local_dir))
    model = root / f"global_step_{total}" / HF_SUBDIR
    if not model.is_dir():
        latest = _latest_checkpoint(config) if root.is_dir() else None
        raise StageNotFinished(f"SFT stage not finished: {model} does not exist (last step {total}; latest "
                               f"checkpoint: {latest or 'none'})")
    if not (any(model.glob("*.safetensors")) or any(model.glob("pytorch_model*.bin"))) \
            or not (model / "config.json").is_file():
        raise StageNotFinished(f"{model} holds no complete Hugging Face model (config.json and weights): was the "
                               "save interrupted? Delete that global_step folder and run again to redo the last step")
    return model


# ---------------------------------------------------------------------------------------------- CLI
def main(argv: Optional[list[str]] = None) -> int:
    from ..tools.dry_run import DryRunError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in ("dry-run", "resume-guard", "final-model"):
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, overrides = argv[0], argv[1:]
    try:
        if command == "dry-run":
            print(format_sft_summary(dry_run_sft(overrides)), flush=True)
        elif command == "final-model":
            try:
                print(final_model(overrides), flush=True)
            except StageNotFinished as exc:
                print(exc, file=sys.stderr, flush=True)
                return 3
        else:
            # the start-up check of the SFT run: what verl's SFT trainer asserts in its first step, refused before
            # torchrun starts (the same checks as the dry run's batch arithmetic)
            problems = sft_batch_checks(_resolved(overrides))[0]
            if problems:
                raise DryRunError("the SFT configuration would not run:\n  - " + "\n  - ".join(problems))
            message = resume_guard(overrides)
            if message:
                print(message, flush=True)
    except DryRunError as exc:
        print(f"SRFT dry run (PRESET=sft): FAILED\n{exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # neither command needs (or may touch) a GPU
    sys.exit(main())
