"""Which model directory to evaluate: an HF model, or a verl checkpoint converted to one.

Layouts recognised by :func:`detect_layout` (``--model PATH``):

==========================  ===================================================================
layout                      what is done
==========================  ===================================================================
``hf``                      ``PATH/config.json`` + weights (``*.safetensors`` / ``*.bin``, or
                            their index): evaluated as is
``hf_hub``                  ``PATH`` does not exist locally: passed to ``from_pretrained`` / vLLM
                            as a hub id
``verl_fsdp``               a verl FSDP actor directory (``fsdp_config.json`` and/or
                            ``model_world_size_W_rank_R.pt`` + ``huggingface/config.json``):
                            merged with ``python -m verl.model_merger merge --backend fsdp
                            --local_dir PATH --target_dir OUT/merged_model`` (bf16 weights), which
                            is evaluated; a merged model from an earlier run of the same
                            checkpoint is reused
``verl_hf``                 a verl actor directory whose ``huggingface/`` already holds full
                            weights (``checkpoint.save_contents`` with ``hf_model``): that
                            ``huggingface/`` directory is evaluated, no merge
``global_step_N/``          a verl step directory: its ``actor/`` (then as above)
checkpoint root             a directory with ``latest_checkpointed_iteration.txt`` (verl's
                            ``trainer.default_local_dir``): ``global_step_<latest>/actor``;
                            without that file, the highest ``global_step_N`` holding ``actor/``
==========================  ===================================================================

Megatron checkpoints are recognised and refused with the merger command to run by hand.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

_SHARD_RE = re.compile(r"^model_world_size_(\d+)_rank_(\d+)\.pt$")
MERGE_MARKER = "srft_merged_from.json"


class CheckpointError(RuntimeError):
    pass


def _has_hf_weights(d: Path) -> bool:
    if not (d / "config.json").is_file():
        return False
    for pat in ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json", "pytorch_model.bin.index.json"):
        if any(d.glob(pat)):
            return True
    return False


def _fsdp_shards(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if _SHARD_RE.match(p.name)) if d.is_dir() else []


def detect_layout(path: str | os.PathLike) -> dict:
    """Describe the model at ``path``: ``{"layout", "path", "eval_path" | "actor_dir", "note", ...}``."""
    p = Path(path).expanduser()
    notes: list[str] = []
    if not p.exists():
        return {"layout": "hf_hub", "path": str(path), "eval_path": str(path),
                "note": f"{path} is not a local path: loaded as a hub id"}
    p = p.resolve()
    if (p / "latest_checkpointed_iteration.txt").is_file() and not _has_hf_weights(p):
        step = (p / "latest_checkpointed_iteration.txt").read_text().strip()
        step_dir = p / f"global_step_{step}"
        if not step_dir.is_dir():
            raise CheckpointError(f"{p}: latest_checkpointed_iteration.txt says {step!r} but {step_dir} is missing")
        notes.append(f"verl checkpoint root: latest step {step}")
        p = step_dir
    elif not _has_hf_weights(p) and not (p / "actor").is_dir():
        steps = sorted((int(m.group(1)), d) for d in p.iterdir()
                       if d.is_dir() and (m := re.fullmatch(r"global_step_(\d+)", d.name)) and (d / "actor").is_dir())
        if steps:
            notes.append(f"verl checkpoint root without latest_checkpointed_iteration.txt: highest step {steps[-1][0]}")
            p = steps[-1][1]
    if re.fullmatch(r"global_step_\d+", p.name) and (p / "actor").is_dir() and not _has_hf_weights(p):
        notes.append(f"verl step directory {p.name}: using its actor/")
        p = p / "actor"
    if _has_hf_weights(p):
        info = {"layout": "hf", "path": str(p), "eval_path": str(p), "note": "HF model directory"}
    elif (p / "fsdp_config.json").is_file() or _fsdp_shards(p):
        hf = p / "huggingface"
        if _has_hf_weights(hf):
            info = {"layout": "verl_hf", "path": str(p), "eval_path": str(hf),
                    "note": "verl actor checkpoint with full HF weights in huggingface/: evaluated directly"}
        else:
            if not (hf / "config.json").is_file():
                raise CheckpointError(f"{p}: verl FSDP checkpoint without huggingface/config.json; cannot merge")
            shards = _fsdp_shards(p)
            if not shards:
                raise CheckpointError(f"{p}: fsdp_config.json but no model_world_size_*_rank_*.pt shards")
            world = {int(_SHARD_RE.match(s.name).group(1)) for s in shards}
            info = {"layout": "verl_fsdp", "path": str(p), "actor_dir": str(p), "eval_path": None,
                    "world_size": sorted(world), "num_shards": len(shards),
                    "note": f"verl FSDP actor checkpoint ({len(shards)} shard(s)): merged to HF with verl.model_merger"}
    elif (p / "dist_ckpt").is_dir() or (p / "model" / "dist_ckpt").is_dir() or (p / "huggingface").is_dir():
        raise CheckpointError(
            f"{p}: looks like a verl Megatron (or unknown) checkpoint; merge it by hand with "
            f"`python -m verl.model_merger merge --backend megatron --local_dir {p} --target_dir OUT` "
            "and pass OUT as --model")
    else:
        found = ", ".join(sorted(x.name for x in p.iterdir())[:20]) if p.is_dir() else "(a file)"
        raise CheckpointError(f"{p}: neither an HF model directory nor a verl checkpoint (found: {found})")
    if notes:
        info["note"] = "; ".join(notes + [info["note"]])
    return info


def _fingerprint(actor_dir: Path) -> dict:
    files = _fsdp_shards(actor_dir) + [actor_dir / "huggingface" / "config.json"]
    return {"actor_dir": str(actor_dir),
            "files": {f.name: [f.stat().st_size, int(f.stat().st_mtime)] for f in files}}


def merge_fsdp(actor_dir: str | os.PathLike, target_dir: str | os.PathLike, log=print) -> Path:
    """Merge a verl FSDP actor checkpoint into an HF directory (reused when already merged from the same files)."""
    actor = Path(actor_dir).resolve()
    target = Path(target_dir).resolve()
    fp = _fingerprint(actor)
    marker = target / MERGE_MARKER
    if marker.is_file() and _has_hf_weights(target):
        try:
            if json.loads(marker.read_text()) == fp:
                log(f"[eval] reusing merged model {target} (merged earlier from {actor})")
                return target
        except (OSError, ValueError):
            pass
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    cmd = [sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp",
           "--local_dir", str(actor), "--target_dir", str(tmp)]
    log(f"[eval] merging verl FSDP checkpoint: {' '.join(cmd)}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CheckpointError(f"verl.model_merger failed (exit {proc.returncode}):\n"
                              f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    if not _has_hf_weights(tmp):
        raise CheckpointError(f"verl.model_merger wrote no HF weights to {tmp}:\n{proc.stdout[-2000:]}")
    (tmp / MERGE_MARKER).write_text(json.dumps(fp))
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    log(f"[eval] merged model written to {target}")
    return target


def prepare_model(path: str, out_dir: str | os.PathLike, log=print, info: dict | None = None) -> dict:
    """Detect the layout of ``path`` (unless ``info`` is given), merge a verl FSDP checkpoint into
    ``out_dir/merged_model``; sets ``eval_path``."""
    info = dict(info) if info is not None else detect_layout(path)
    log(f"[eval] model {path}: {info['note']}")
    if info["layout"] == "verl_fsdp":
        info["eval_path"] = str(merge_fsdp(info["actor_dir"], Path(out_dir) / "merged_model", log=log))
    return info
