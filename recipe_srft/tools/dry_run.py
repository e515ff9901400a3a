"""Dry run of an SRFT launch: compose, resolve and validate the full verl config, no GPU, no Ray, no files.

    python -m recipe_srft.tools.dry_run [--config-dir DIR] [--config-name NAME] [hydra overrides ...]

``run_scripts/*.sh`` call this with ``DRY_RUN=1`` and the overrides they would pass to
``python -m recipe_srft.main_srft``. Exit status 0 when every check passes (a summary is printed),
1 with the problems listed otherwise. What is checked, in order:

1. composition with hydra's compose API (``recipe_srft/config/srft_trainer.yaml`` on top of verl
   0.9.1's ``ppo_trainer``): a key that verl's config does not have fails (hydra's struct mode), a
   key added with ``+`` outside the known free-form maps is reported as a warning (verl would
   silently ignore a misspelt one);
2. ``OmegaConf.resolve`` and mandatory values (``???``) of the parts that are used;
3. the ``srft:`` section (``srft_config_from``: presets, conflicts) and ``check_verl_config``;
4. verl's own ``validate_config(config, use_reference_policy=..., use_critic=...)``, on the config
   as ``main_srft`` passes it;
5. verl's config dataclasses, built from the config as the SRFT trainer hands it to the workers
   (``rollout.n := n + demos_per_prompt``): every ``_target_`` subtree that verl instantiates at
   run time is instantiated so type and field errors surface; the exceptions are explained in the
   output (``_SPECIAL``): the model config (its ``__post_init__`` loads the tokenizer and the HF
   config from the model path, so its fields are type-checked without running it), the reward
   section (verl 0.9.1 reads it as a plain mapping; its parts are checked one by one and the custom
   reward function is loaded by path), and unused roles (reference policy, critic, profiler);
6. the batch arithmetic of the SRFT trainer: group = n + m, whole mini-batches of whole groups,
   mini-batches split evenly over the actor's data-parallel ranks, GPUs divisible by the rollout's
   model-parallel size, dynamic-batch token budgets that hold the longest trajectory, and the
   model's position limit (``config.json`` of a local model, else a small table of known models), and
   every mini-/micro-batch split verl asserts later (``recipe_srft/integration/verl_batch.py``);
7. the trainer's start-up data check (``srft.data_check``, ``recipe_srft/data_check.py``) when the
   training files are here: rows without a ground truth or a usable demonstration, demonstrations
   over the response length (with the tokenizer of a local model folder) or rejected by the reward.

It also prints the disk the actor checkpoints take (:func:`checkpoint_budget`: one checkpoint from the model's
parameter count, ``config.json`` of a local model, else a small table of known models; the total the run keeps).

CUDA is hidden (``CUDA_VISIBLE_DEVICES=""``) when run as a program. Nothing here needs the model or
the data files; missing files are listed as notes.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import inspect
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
CONFIG_NAME = "srft_trainer"

#: Keys under these prefixes are free-form maps: adding entries with ``+`` is expected.
FREE_FORM_PREFIXES = (
    "reward.custom_reward_function.reward_kwargs",
    "ray_kwargs.ray_init",
    "actor_rollout_ref.rollout.engine_kwargs",
    "actor_rollout_ref.model.override_config",
    "data.apply_chat_template_kwargs",
    "srft.",
    "runtime",
)

#: Substrings of errors raised when code needs an accelerator that is not there.
_DEVICE_ERROR_MARKERS = (
    "no cuda gpus are available",
    "found no nvidia driver",
    "torch not compiled with cuda enabled",
    "cuda driver initialization failed",
    "no accelerator",
    "cuda error",
    "nvml",
)


class DryRunError(Exception):
    """The configuration would not run; the message lists every problem found."""


class DeviceRequired(Exception):
    """A verl check needs an accelerator (raised only for errors recognised as such)."""


def _is_device_error(exc: BaseException) -> bool:
    if not isinstance(exc, (RuntimeError, AssertionError, OSError)):
        return False
    text = str(exc).lower()
    return any(marker in text for marker in _DEVICE_ERROR_MARKERS)


# ---------------------------------------------------------------------------------------------- compose
_UNKNOWN_KEY_HINT = ("\nThis key does not exist in verl 0.9.1's config (renamed, misspelt or from another "
                     "verl version). Do not add a '+' to force it: verl would ignore it silently. Look up the "
                     "current name in verl/trainer/config/_generated_ppo_trainer.yaml.")


def compose_config(overrides: list[str], config_dir: Path | str = CONFIG_DIR, config_name: str = CONFIG_NAME, *,
                   what: str = "config", unknown_key_hint: str = _UNKNOWN_KEY_HINT):
    """The full config ``python -m recipe_srft.main_srft <overrides>`` would get (not resolved); with another
    ``config_dir``/``config_name``, that app's config (``what`` and ``unknown_key_hint`` word its errors)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if GlobalHydra.instance().is_initialized():  # left over by an earlier hydra app in this process
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base=None):
            return compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        message = str(exc).strip()
        hint = ""
        if "not in struct" in message or "Could not override" in message or "Key '" in message:
            hint = unknown_key_hint
        raise DryRunError(f"{what} composition failed: {message}{hint}") from exc


def _added_key_warnings(overrides: list[str]) -> list[str]:
    out = []
    for item in overrides:
        if not item.startswith("+") or item.startswith("++"):
            continue
        key = item[1:].split("=", 1)[0]
        if not key.startswith(FREE_FORM_PREFIXES):
            out.append(f"'{item}' adds a key verl's schema does not have: make sure something reads '{key}'")
    return out


# ---------------------------------------------------------------------------------------------- helpers
def _target_subtrees(node, path: str = ""):
    """(path, node) of every subtree with a ``_target_`` that is not inside another one."""
    from omegaconf import DictConfig

    if not isinstance(node, DictConfig):
        return
    if "_target_" in node:
        yield path, node
        return
    for key in node.keys():
        yield from _target_subtrees(node[key], f"{path}.{key}" if path else str(key))


def _typecheck(node, cls) -> None:
    """Field names and types of ``node`` against dataclass ``cls``, without running ``__post_init__``."""
    from omegaconf import OmegaConf

    OmegaConf.merge(OmegaConf.structured(cls), node)


def _accepted_types(annotation) -> Optional[tuple]:
    """Python types a scalar field accepts, or None when the annotation is not a plain scalar one."""
    import types
    import typing

    if annotation is bool:
        return (bool,)
    if annotation is int:
        return (int,)
    if annotation is float:
        return (int, float)
    if annotation is str:
        return (str,)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        out: tuple = ()
        for arg in typing.get_args(annotation):
            if arg is type(None):
                out += (type(None),)
                continue
            sub = _accepted_types(arg)
            if sub is None:
                return None
            out += sub
        return out
    return None


def _field_type_errors(obj, path: str, seen: Optional[set] = None) -> list[str]:
    """Scalar fields of a built verl dataclass whose value does not have the annotated type.

    hydra's ``instantiate`` (what ``omega_conf_to_dataclass`` uses) passes values through unchecked, so
    ``ppo_epochs=two`` would otherwise only fail deep inside a worker.
    """
    import typing

    seen = set() if seen is None else seen
    if id(obj) in seen or not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return []
    seen.add(id(obj))
    try:
        hints = typing.get_type_hints(type(obj))
    except Exception:  # noqa: BLE001 - unresolvable forward references: use what is there
        hints = {}
    errors = []
    for f in dataclasses.fields(obj):
        if f.name.startswith("_"):
            continue
        value = getattr(obj, f.name, None)
        if dataclasses.is_dataclass(value):
            errors += _field_type_errors(value, f"{path}.{f.name}", seen)
            continue
        annotation = hints.get(f.name, f.type if isinstance(f.type, type) else None)
        accepted = _accepted_types(annotation) if annotation is not None else None
        if accepted is None or value is None:  # verl leaves many non-Optional fields None until run time
            continue
        ok = isinstance(value, accepted) and not (isinstance(value, bool) and bool not in accepted)
        if not ok:
            errors.append(f"{path}.{f.name}={value!r}: expected {getattr(annotation, '__name__', annotation)}")
    return errors


# ---------------------------------------------------------------------------------------------- checks
def _instantiate_dataclasses(view, *, use_ref: bool, use_critic: bool, problems: list, notes: list) -> list[str]:
    """Builds verl's config dataclasses from ``view``; returns 'path -> Class' lines."""
    from omegaconf import OmegaConf, open_dict
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import HFModelConfig
    from verl.workers.config.reward import RewardManagerConfig

    built: list[str] = []

    def build(path: str, node) -> None:
        try:
            obj = omega_conf_to_dataclass(node)
        except Exception as exc:  # noqa: BLE001 - reported with the path, never swallowed
            if _is_device_error(exc):
                raise DeviceRequired(f"{path}: {exc}") from exc
            problems.append(f"{path}: verl's {node.get('_target_')} rejects it: {_short(exc)}")
            return
        type_errors = _field_type_errors(obj, path)
        if type_errors:
            problems.append(f"{path}: wrong value types for verl's {type(obj).__name__}: " + "; ".join(type_errors))
            return
        built.append(f"{path} -> {type(obj).__name__} (fields and scalar types checked)")

    def model(path: str, node) -> None:
        try:
            _typecheck(node, HFModelConfig)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{path}: field/type error against HFModelConfig: {_short(exc)}")
            return
        built.append(f"{path} -> HFModelConfig fields type-checked (not built: its __post_init__ loads the "
                     "tokenizer and HF config from the model path)")

    def ref(path: str, node) -> None:
        if not use_ref:
            notes.append(f"{path}: not built (no reference policy: no KL loss, no KL in reward)")
            return
        # verl's engine worker renames the ref's log-prob keys to actor keys before building it
        node = copy.deepcopy(node)
        actor = view.actor_rollout_ref.actor
        with open_dict(node):
            node.ppo_mini_batch_size = actor.ppo_mini_batch_size
            node.ppo_micro_batch_size = node.pop("log_prob_micro_batch_size", None)
            node.ppo_micro_batch_size_per_gpu = node.pop("log_prob_micro_batch_size_per_gpu", None)
            node.use_dynamic_bsz = node.pop("log_prob_use_dynamic_bsz", False)
            node.ppo_max_token_len_per_gpu = node.pop("log_prob_max_token_len_per_gpu", None)
        build(path, node)

    def critic(path: str, node) -> None:
        if use_critic:
            problems.append("critic is enabled: SRFT uses group advantages (GRPO, Eq. 7) and no value model; "
                            "set critic.enable=false (or leave it null)")
        else:
            notes.append(f"{path}: not built (no critic)")

    def reward(path: str, node) -> None:
        # verl 0.9.1 reads `reward` as a mapping (never as RewardConfig: `custom_reward_function` is not
        # one of its fields and RewardManagerConfig.__post_init__ calls a BaseConfig.__post_init__ that
        # does not exist), so its parts are checked the way verl uses them.
        from verl.trainer.ppo.reward import get_custom_reward_fn, resolve_reward_manager_cls

        try:
            _typecheck(node.reward_manager, RewardManagerConfig)
            cls = resolve_reward_manager_cls(view)
            built.append(f"{path}.reward_manager -> {cls.__name__} (fields type-checked, class resolved)")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{path}.reward_manager: {_short(exc)}")
        if node.reward_model.get("enable", False):
            build(f"{path}.reward_model", node.reward_model)
        else:
            notes.append(f"{path}.reward_model: not built (disabled)")
        if "sandbox_fusion" in node:
            build(f"{path}.sandbox_fusion", node.sandbox_fusion)
        crf = node.get("custom_reward_function") or {}
        if crf.get("path"):
            try:
                fn = get_custom_reward_fn(view)
                raw = getattr(fn, "args", (None,))[0] or fn
                kwargs = dict(crf.get("reward_kwargs") or {})
                inspect.signature(raw).bind_partial(data_source="", solution_str="", ground_truth="",
                                                    extra_info={}, **kwargs)
                built.append(f"{path}.custom_reward_function -> {crf.get('path')}::{crf.get('name')} loaded"
                             + (f", reward_kwargs {kwargs} accepted" if kwargs else ""))
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{path}.custom_reward_function ({crf.get('path')}::{crf.get('name')}): "
                                f"{_short(exc)}")
        else:
            notes.append(f"{path}.custom_reward_function: none (verl's default_compute_score)")

    def profiler(path: str, node) -> None:
        tool = node.get("tool")
        if tool is None:
            notes.append(f"{path}: not built (profiling off; verl builds tool configs per role only when set)")
        else:
            notes.append(f"{path}: tool={tool} is not checked by the dry run")

    special: dict[str, Callable] = {
        "actor_rollout_ref.model": model,
        "actor_rollout_ref.ref": ref,
        "critic": critic,
        "reward": reward,
        "global_profiler": profiler,
    }
    for path, node in _target_subtrees(view):
        handler = special.get(path)
        if handler is not None:
            handler(path, node)
        elif path == "trainer.v1.separate_async.hybrid_rollout" and view.trainer.v1.trainer_mode != "separate_async":
            notes.append(f"{path}: not built (separate_async only)")
        else:
            build(path, node)
    for path in special:
        if OmegaConf.select(view, path) is None:
            problems.append(f"{path}: missing from the composed config")
    return built


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return f"{type(exc).__name__}: {text}"


# ---------------------------------------------------------------------------------------------- disk
#: Parameter counts of the models the run scripts name, for a model path that is not a local folder with a
#: ``config.json`` (as ``launch.KNOWN_POSITION_LIMITS`` for positions). Qwen2 arithmetic on their published
#: configs: 7B = vocab 152064 x hidden 3584 untied (embeddings + lm_head), 28 layers, intermediate 18944, 4 KV
#: heads; 1.5B = vocab 151936 x hidden 1536 tied, 28 layers, intermediate 8960, 2 KV heads (q/k/v biases,
#: RMSNorm weights included). tests/test_checkpoint_budget.py recomputes both.
KNOWN_PARAMETER_COUNTS = {
    "Qwen/Qwen2.5-Math-7B": 7_615_616_512,
    "Elliott/Qwen2.5-Math-7B-16k-think": 7_615_616_512,
    "Qwen/Qwen2.5-Math-1.5B": 1_543_714_304,
}
#: Optimizer states per parameter, each in the parameters' dtype (torch's Adam/AdamW: exp_avg and exp_avg_sq,
#: created with ``zeros_like(param)``); the ``step`` counters are negligible.
OPTIMIZER_STATES = {"adamw": 2, "adam": 2, "sgd": 1}


def model_parameter_count(model_path: str) -> tuple[Optional[int], str]:
    """(parameters, where the number comes from): a local folder's ``config.json`` (the model is built on the meta
    device, no weights read; tied weights counted once, as FSDP saves them), else :data:`KNOWN_PARAMETER_COUNTS`,
    else (None, why)."""
    path = Path(os.path.expanduser(str(model_path)))
    cfg_file = path / "config.json"
    why = f"{model_path} is not a local folder with config.json and not a known model"
    if cfg_file.is_file():
        try:
            import torch
            from transformers import AutoConfig, AutoModelForCausalLM
            from transformers.utils import logging as hf_logging

            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()
            try:
                hf_config = AutoConfig.from_pretrained(str(path))
                with torch.device("meta"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = AutoModelForCausalLM.from_config(hf_config)
            finally:
                hf_logging.set_verbosity(verbosity)
            return sum(p.numel() for p in model.parameters()), f"counted from {cfg_file}"
        except Exception as exc:  # noqa: BLE001 - an estimate must never stop the dry run
            why = f"{cfg_file} does not build a model ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    if str(model_path) in KNOWN_PARAMETER_COUNTS:
        return KNOWN_PARAMETER_COUNTS[str(model_path)], f"known count of {model_path}"
    return None, why


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.2f} MB"


def checkpoint_budget(config) -> dict[str, Any]:
    """Disk of the actor checkpoints a run writes (a resolved verl config) as verl 0.9.1 saves them.

    Per checkpoint, every rank writes its shard of ``actor.checkpoint.save_contents``
    (verl/utils/checkpoint/fsdp_checkpoint_manager.py:316-361): ``model`` = parameters x bytes of
    ``actor.fsdp_config.model_dtype`` (fp32 master weights); ``optimizer`` = :data:`OPTIMIZER_STATES` states of the
    same dtype per parameter; ``extra`` = scheduler + RNG (kB); ``hf_model`` adds a full copy of the weights
    (:422-462). Not counted: the config/tokenizer copy (``huggingface/``, :373-392), ``data.pt`` and the SRFT
    trainer's transfer-queue state (verl/trainer/ppo/v1/trainer_base.py:997-1007), kB to MB.

    Saves: every ``save_freq`` steps and at the last step (trainer_base.py:481-482). Kept:
    ``max_actor_ckpt_to_keep`` (null/0 = all); while a save is written verl holds k of them, or 2 for k = 1 (it
    deletes the old one only once the new one is complete: verl/utils/checkpoint/checkpoint_manager.py:166-194).
    verl counts the checkpoints its own process wrote: after a resume the older ones stay until deleted by hand.
    """
    from omegaconf import OmegaConf

    def get(key, default=None):
        value = OmegaConf.select(config, key, default=default)
        return default if value is None else value

    actor = "actor_rollout_ref.actor"
    params, source = model_parameter_count(str(get("actor_rollout_ref.model.path", "")))
    dtype_name = str(get(f"{actor}.fsdp_config.model_dtype", "fp32"))
    try:
        import torch
        from verl.utils.torch_dtypes import PrecisionType

        dtype_bytes = torch.empty((), dtype=PrecisionType.to_dtype(dtype_name)).element_size()
    except Exception:  # noqa: BLE001 - an unknown name: verl refuses it elsewhere; estimate as fp32
        dtype_bytes = 4
    optimizer = str(get(f"{actor}.optim.optimizer", "AdamW"))
    states = OPTIMIZER_STATES.get(optimizer.lower(), 2)
    contents = [str(c) for c in (get(f"{actor}.checkpoint.save_contents", ["model", "optimizer", "extra"]) or [])]
    parts = {}
    if params is not None:
        if "model" in contents:
            parts["model"] = params * dtype_bytes
        if "optimizer" in contents:
            parts["optimizer"] = params * dtype_bytes * states
        if "hf_model" in contents:
            parts["hf_model"] = params * dtype_bytes
    per_ckpt = sum(parts.values()) if params is not None else None

    steps, save_freq = get("trainer.total_training_steps"), int(get("trainer.save_freq", -1))
    keep = get("trainer.max_actor_ckpt_to_keep")
    if get("trainer.remove_previous_ckpt_in_save", False):
        keep = 1  # verl's deprecated switch (trainer_base.py:958-966)
    keep = int(keep) if keep else None  # null and 0: verl keeps all
    if save_freq <= 0:
        saves = 0
    elif steps is None:
        saves = None  # total_training_steps from the data: not known here
    else:
        saves = int(steps) // save_freq + (1 if int(steps) % save_freq else 0)
    kept = None if saves is None else (min(saves, keep) if keep else saves)
    peak = None if saves is None else (min(saves, keep + 1 if keep == 1 else keep) if keep else saves)
    return dict(parameters=params, parameters_source=source, model_dtype=dtype_name, dtype_bytes=dtype_bytes,
                optimizer=optimizer, optimizer_states=states, save_contents=contents, parts_bytes=parts,
                per_checkpoint_bytes=per_ckpt, saves=saves, max_kept=keep, kept=kept, peak=peak,
                kept_bytes=None if per_ckpt is None or kept is None else per_ckpt * kept,
                peak_bytes=None if per_ckpt is None or peak is None else per_ckpt * peak)


def format_checkpoint_budget(b: dict) -> list[str]:
    """The dry run's lines for :func:`checkpoint_budget`."""
    if b["saves"] == 0:
        return ["no checkpoints (trainer.save_freq <= 0)"]
    if b["per_checkpoint_bytes"] is None:
        one = f"size unknown: {b['parameters_source']}"
    else:
        what = {"model": f"model {b['model_dtype']}", "optimizer": f"{b['optimizer']} {b['optimizer_states']} "
                f"states {b['model_dtype']}", "hf_model": f"hf_model {b['model_dtype']}"}
        one = (f"~{_gb(b['per_checkpoint_bytes'])} each: {b['parameters']:,} parameters ({b['parameters_source']}) "
               f"x {b['per_checkpoint_bytes'] // b['parameters']} B = "
               + " + ".join(f"{what[k]} {_gb(v)}" for k, v in b["parts_bytes"].items()) + " (+ extra, kB)")
    if b["saves"] is None:
        return [one, "number of saves unknown (trainer.total_training_steps is null: set by the data's length)"]
    policy = f"the last {b['max_kept']} kept" if b["max_kept"] else "all kept (max_actor_ckpt_to_keep null/0)"
    total = (f"{b['saves']} saves, {policy} -> {b['kept']} on disk"
             + (f" = ~{_gb(b['kept_bytes'])}" if b["kept_bytes"] is not None else ""))
    if b["peak"] != b["kept"]:
        total += f", {b['peak']} while a save is written" + (
            f" = ~{_gb(b['peak_bytes'])}" if b["peak_bytes"] is not None else "")
    return [one, total]


# ---------------------------------------------------------------------------------------------- main API
def dry_run(overrides: list[str], config_dir: Path | str = CONFIG_DIR, config_name: str = CONFIG_NAME) -> dict:
    """Runs every check on the config of ``overrides``; returns the summary or raises :class:`DryRunError`."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    overrides = list(overrides)
    config = compose_config(overrides, config_dir, config_name)
    try:
        OmegaConf.resolve(config)
    except OmegaConfBaseException as exc:
        raise DryRunError(f"config does not resolve: {exc}") from exc

    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    from ..integration.launch import apply_srft_group, batch_checks, check_verl_config, srft_config_from
    from ..srft_config import describe

    problems: list[str] = []
    notes: list[str] = []
    warnings_out = _added_key_warnings(overrides)
    summary: dict[str, Any] = {"overrides": overrides}

    use_ref = bool(need_reference_policy(config))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        use_critic = bool(need_critic(config))

    # mandatory values (???) of the parts that are used
    unused = []
    if not config.reward.reward_model.get("enable", False):
        unused.append("reward.reward_model.")
    if not use_critic:
        unused.append("critic.")
    if not use_ref:
        unused.append("actor_rollout_ref.ref.")
    missing = sorted(k for k in OmegaConf.missing_keys(config) if not k.startswith(tuple(unused)))
    if missing:
        raise DryRunError("mandatory values are not set (??? in verl's config):\n  - "
                          + "\n  - ".join(f"{key}: set it, e.g. {key}=..." for key in missing))

    # SRFT section
    try:
        srft = srft_config_from(config)
        check_verl_config(config, srft)
    except ValueError as exc:
        raise DryRunError(str(exc)) from exc
    summary["srft"] = describe(srft)

    # verl's own validation, on the config as main_srft passes it
    validation = "passed"
    try:
        validate_config(config=copy.deepcopy(config), use_reference_policy=use_ref, use_critic=use_critic)
    except Exception as exc:  # noqa: BLE001 - classified below, never swallowed
        if _is_device_error(exc):
            validation = f"INCOMPLETE: needs an accelerator ({_short(exc)})"
            warnings_out.append(f"verl validate_config stopped on a device query, not on the config: {_short(exc)}")
        else:
            problems.append(f"verl validate_config: {_short(exc)}")
            validation = "failed"
    summary["verl_validate_config"] = validation

    # the config as the SRFT trainer hands it to verl's workers
    view = copy.deepcopy(config)
    apply_srft_group(view, srft)
    try:
        summary["dataclasses"] = _instantiate_dataclasses(view, use_ref=use_ref, use_critic=use_critic,
                                                          problems=problems, notes=notes)
    except DeviceRequired as exc:
        warnings_out.append(f"a verl config dataclass needs an accelerator to be built: {exc}")
        summary["dataclasses"] = [f"INCOMPLETE: {exc}"]

    summary.update(batch_checks(config, srft, use_ref)[1])  # its problems were reported by check_verl_config

    # run identity and files (the files need not exist for a dry run)
    trainer = config.trainer
    summary.update(
        preset=srft.preset,
        model=str(config.actor_rollout_ref.model.path),
        rollout=str(config.actor_rollout_ref.rollout.name),
        total_training_steps=trainer.get("total_training_steps"),
        test_freq=trainer.get("test_freq"),
        save_freq=trainer.get("save_freq"),
        checkpoints_kept=trainer.get("max_actor_ckpt_to_keep"),
        checkpoint_budget=checkpoint_budget(config),
        logger=OmegaConf.to_container(trainer.logger) if OmegaConf.is_list(trainer.logger) else trainer.logger,
        project_name=trainer.project_name,
        experiment_name=trainer.experiment_name,
        checkpoint_dir=trainer.default_local_dir,
        ray_init=OmegaConf.to_container(config.ray_kwargs.ray_init),
        rl_aggregation=_rl_aggregation(config.actor_rollout_ref.actor, srft),
        entropy_precision=("fp32 (actor.entropy_from_logits_with_chunking=true)"
                           if config.actor_rollout_ref.actor.get("entropy_from_logits_with_chunking") else
                           "the logits' dtype (bf16 under FSDP mixed precision; set "
                           "actor_rollout_ref.actor.entropy_from_logits_with_chunking=true for fp32)"),
    )
    for key in ("data.train_files", "data.val_files"):
        value = OmegaConf.select(config, key)
        files = OmegaConf.to_container(value) if OmegaConf.is_list(value) else [value]
        for f in files:
            if f and not Path(os.path.expanduser(str(f))).exists():
                notes.append(f"{key}: {f} does not exist here (fine for a dry run; needed for the real run)")
    # the trainer's start-up data check (srft.data_check), when the training files are here
    from ..data_check import dry_run_data_check

    data_problems, data_notes = dry_run_data_check(config, srft)
    problems += data_problems
    notes += data_notes
    model_path = Path(os.path.expanduser(str(config.actor_rollout_ref.model.path)))
    if not model_path.exists():
        notes.append(f"model {config.actor_rollout_ref.model.path} is not a local path (a hub id is downloaded at "
                     "start-up; no tokenizer is loaded by the dry run)")
    notes.append(f"trainer.device={trainer.device} kept as configured (main_srft's auto_set_device only changes it "
                 "on a non-CUDA accelerator; CUDA is hidden from the dry run)")
    summary["notes"] = notes
    summary["warnings"] = warnings_out
    if problems:
        raise DryRunError("the configuration would not run:\n  - " + "\n  - ".join(problems))
    return summary


def _rl_aggregation(actor, srft) -> str:
    """One line: how L_rl is normalised (docs/defaults.md, row loss_agg_mode) and over which rows."""
    mode = actor.get("loss_agg_mode")
    text = {
        "seq-mean-token-mean": "per sequence 1/|y|, then mean over the sequences (paper)",
        "token-mean": "sum over tokens / tokens of the mini-batch",
        "token-sum": "sum over tokens",
        "seq-mean-token-sum": "sum per sequence, mean over the sequences",
        "seq-mean-token-sum-norm": f"sum over tokens / (sequences x {actor.get('loss_scale_factor') or 'T'})",
    }.get(mode, "?")
    rows = {(True, True): "demos + rollouts", (False, True): "rollouts only (demos carry no RL term)",
            (True, False): "demos only", (False, False): "none (no RL term)"}[(srft.loss.demo_rl, srft.loss.rollout_rl)]
    return f"{mode}: {text}; over {rows}; entropy bonus token-mean over all response tokens"


def format_summary(summary: dict) -> str:
    s = summary
    lines = [
        "SRFT dry run: OK (config composed, resolved and validated; nothing launched)",
        f"  preset            {s['preset']}",
        f"  model             {s['model']}  (positions: {s['model_positions']})",
        f"  group             n={s['rollouts_per_prompt']} rollouts + m={s['demos_per_prompt']} demos = "
        f"{s['group_size']} trajectories per prompt",
        f"  rollout batch     {s['train_batch_size_prompts']} prompts -> {s['trajectories_per_step']} trajectories "
        f"per step ({s['generated_per_step']} generated)",
        f"  optimizer         ppo_mini_batch_size {s['ppo_mini_batch_size_prompts']} prompts = "
        f"{s['trajectories_per_mini_batch']} trajectories, {s['ppo_epochs']} epoch(s) -> "
        f"{s['optimizer_steps_per_rollout_batch']} optimizer steps per rollout batch",
        f"  GPUs              {s['nnodes']} node(s) x {s['gpus_per_node']} = {s['total_gpus']}; rollout "
        f"{s['rollout']} TP {s['rollout_tp']} -> {s['rollout_replicas']} replicas; actor {s['actor_strategy']} "
        f"DP {s['actor_dp']} ({s['trajectories_per_rank_per_mini_batch']} trajectories per rank and mini-batch)",
        f"  sequence          up to {s['max_sequence_length']} tokens; dynamic-batch budgets "
        f"{s['token_budgets'] or 'off'}",
        f"  schedule          {s['total_training_steps']} steps, validation every {s['test_freq']}, checkpoint every "
        f"{s['save_freq']} -> {s['checkpoint_dir']} (keeps "
        f"{'all' if not s['checkpoints_kept'] else 'the last ' + str(s['checkpoints_kept'])})",
        *[f"  {label:<17} {line}" for label, line in zip(("checkpoint size", "checkpoint disk"),
                                                          format_checkpoint_budget(s["checkpoint_budget"]))],
        f"  tracking          {s['project_name']}/{s['experiment_name']} logger={s['logger']}",
        f"  ray.init          {s['ray_init']}",
        f"  RL aggregation    {s['rl_aggregation']}",
        f"  entropy (weights) {s['entropy_precision']}",
        f"  verl validate_config: {s['verl_validate_config']}",
        "  verl dataclasses:",
        *[f"    {line}" for line in s["dataclasses"]],
        "  SRFT switches:",
        *[f"    {k} = {v}" for k, v in s["srft"].items()],
    ]
    if s["notes"]:
        lines += ["  notes:", *[f"    - {n}" for n in s["notes"]]]
    if s["warnings"]:
        lines += ["  WARNINGS:", *[f"    - {w}" for w in s["warnings"]]]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m recipe_srft.tools.dry_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-dir", default=str(CONFIG_DIR))
    parser.add_argument("--config-name", default=CONFIG_NAME)
    options, overrides = [], []
    it = iter(argv)
    for item in it:  # options first, then hydra overrides (which may look like anything but --x)
        if item in ("-h", "--help"):
            parser.print_help()
            return 0
        if item in ("--config-dir", "--config-name"):
            options += [item, next(it, "")]
        elif item.startswith(("--config-dir=", "--config-name=")):
            options.append(item)
        else:
            overrides.append(item)
    args = parser.parse_args(options)
    try:
        summary = dry_run(overrides, args.config_dir, args.config_name)
    except DryRunError as exc:
        print(f"SRFT dry run: FAILED\n{exc}", file=sys.stderr, flush=True)
        return 1
    print(format_summary(summary), flush=True)
    return 0


if __name__ == "__main__":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the dry run must never touch a GPU, even on a GPU node
    sys.exit(main())
