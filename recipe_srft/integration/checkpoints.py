"""``trainer.max_actor_ckpt_to_keep`` enforced on the checkpoint folder, not only on one process's saves.

verl's checkpoint manager keeps the last ``max_ckpt_to_keep`` saves *of its own process*: it remembers them in
``previous_saved_paths``, a list that starts empty (``verl/utils/checkpoint/checkpoint_manager.py:59``) and is
never restored on resume, and it deletes only their ``actor/`` folders (``:156,166,181``). So:

* every restart (a preempted node, a resumed job) leaves the saves made before it on disk for good: up to
  ``max_actor_ckpt_to_keep`` more full checkpoints per restart (~91 GB each for the 7B actor);
* a save it does delete keeps its ``data.pt`` and ``transfer_queue/`` (the V1 trainer's ``_save_checkpoint``,
  ``verl/trainer/ppo/v1/trainer_base.py:948-1030``, writes them next to ``actor/``): 0.25 MB per save on the tiny
  model (bench/soak.py); on a real run a snapshot of the step's batch, which grows with the batch. Without
  ``actor/`` it cannot be resumed from.

After each save the SRFT trainer calls :func:`prune_saves`: of the ``global_step_N`` folders up to the step just
saved, the newest ``keep`` that hold a model stay, and so does the step ``latest_checkpointed_iteration.txt``
names; the older ones and the model-less leftovers go. Folders of later steps (another run's, or one resumed
from an earlier step on purpose) are never touched.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

STEP_FOLDER = re.compile(r"global_step_(\d+)$")
#: subfolders that make a save resumable (verl writes the actor's, and the critic's when there is one)
MODEL_FOLDERS = ("actor", "critic")


def tracked_step(root: Path) -> int | None:
    """The step in verl's ``latest_checkpointed_iteration.txt``, if readable."""
    try:
        return int((Path(root) / "latest_checkpointed_iteration.txt").read_text().strip())
    except (OSError, ValueError):
        return None


def saves_to_prune(root: Path, current_step: int, keep: int) -> list[Path]:
    """The ``global_step_N`` folders (N <= ``current_step``) beyond the newest ``keep`` that hold a model, and
    those without a model; never ``current_step``'s nor the tracked step's."""
    root = Path(root)
    if not root.is_dir() or keep < 1:
        return []
    protected = {current_step, tracked_step(root)}
    steps = {}
    for folder in root.iterdir():
        match = STEP_FOLDER.match(folder.name)
        if match and folder.is_dir() and int(match.group(1)) <= current_step:
            steps[int(match.group(1))] = folder
    with_model = sorted(s for s, f in steps.items() if any((f / name).is_dir() for name in MODEL_FOLDERS))
    kept = set(with_model[-keep:]) | protected
    return [steps[s] for s in sorted(steps) if s not in kept]


def prune_saves(root: Path, current_step: int, keep: int) -> list[Path]:
    """Removes :func:`saves_to_prune`; returns them."""
    removed = saves_to_prune(root, current_step, keep)
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed
