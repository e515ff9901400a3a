"""Weighted mixing of several training sources, resumable through verl's ``data.pt``.

This module implements the ``srft.data`` config section::

    srft:
      data:
        seed: 0                     # srft.data.seed: seeds the source draws and the per-source shuffles
        sources:                    # srft.data.sources: replaces data.train_files when set
          - {path: ~/data/openr1_demos.parquet, weight: 3.0, name: openr1}
          - {path: [~/data/a.parquet, ~/data/b.parquet], weight: 1.0}   # name defaults to the file stem

Semantics
---------
* Each source is read by verl's own training-dataset constructor
  (``verl.trainer.ppo.utils.create_rl_dataset(..., is_train=True)``, so ``data.custom_cls``,
  ``data.max_prompt_length``, ``data.filter_overlong_prompts`` ... apply to every source exactly
  as they apply to ``data.train_files``). A ``path`` list is concatenated into one source, as
  verl concatenates ``data.train_files``.
* Every drawn prompt comes from source ``k`` with probability ``w_k / sum(w)``, independently of
  the draws before it (a categorical draw per prompt, so a batch's composition is multinomial,
  not stratified).
* Inside a source prompts are drawn **without replacement**: the source is walked through a
  seeded random permutation; when the permutation is exhausted a fresh one is drawn, so a small
  source with a large weight cycles (each of its prompts is seen once per cycle) while a large
  source with a small weight is only partly visited per epoch.
* An "epoch" of the loader is ``num_samples`` draws (default: the sum of the source sizes,
  rounded down to whole batches when ``drop_last``), so ``len(dataset) // train_batch_size``,
  which verl uses for ``steps_per_epoch``, matches the number of batches per epoch. Epochs do not
  restart the stream: epoch 2 continues the per-source permutations where epoch 1 stopped.
* ``data.shuffle`` is not used for the training sources (mixing is random by construction);
  ``data.train_files`` is ignored while ``srft.data.sources`` is set.
* Each item keeps RLHFDataset's format and gains ``srft_source`` (the source name, a ``str``);
  verl's ``collate_fn`` turns it into an object array like ``data_source``. Columns that exist
  in only some sources are filled with ``None`` in the others so that ``collate_fn`` (which needs
  every item of a batch to have the same keys) keeps working.

Resumption
----------
The index stream is a pure function of ``(seed, weights, sizes)`` and a few counters: the source
of the ``t``-th draw comes from a seeded block of uniforms (block ``t // 4096``) and the ``c``-th
permutation of source ``k`` from a generator seeded with ``(seed, k, c)``. ``state_dict()`` holds
only plain ints/floats (no RNG objects, no permutations), so ``torch.load(weights_only=True)``
can read it too. torchdata's ``StatefulDataLoader`` wraps the sampler in its own
``BatchSampler`` whose iterator saves ``sampler.state_dict()`` (the stream position) and the
sampler iterator's ``state_dict()`` (how far into the current epoch), and restores both; with
``num_workers > 0`` it records that state when each batch's indices are dispatched, so prefetched
but unconsumed batches are drawn again after a restore. Restoring the loader's ``state_dict()``
after ``k`` batches therefore yields batch ``k + 1`` of the uninterrupted run.
"""

from __future__ import annotations

import bisect
import logging
import math
import numbers
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))

#: Key added to every item (and so to every batch) with the name of the item's source.
SOURCE_KEY = "srft_source"

_STATE_FORMAT = "srft.MixedSourceSampler/v1"
#: Draws whose source comes from one seeded block of uniforms.
_CHOICE_BLOCK = 4096
# Domain separators for the seed sequences, so block and permutation streams never collide.
_CHOICE_STREAM = 0
_PERM_STREAM = 1


def _check_weights(weights: Sequence[Any], names: Optional[Sequence[str]] = None) -> list[float]:
    out = []
    for k, w in enumerate(weights):
        label = f"source {k}" + (f" ({names[k]!r})" if names is not None and k < len(names) else "")
        if isinstance(w, bool) or not isinstance(w, numbers.Real):
            raise ValueError(f"srft.data.sources: weight of {label} must be a positive number, got {w!r}")
        w = float(w)
        if not math.isfinite(w) or w <= 0.0:
            raise ValueError(f"srft.data.sources: weight of {label} must be finite and > 0, got {w!r}")
        out.append(w)
    return out


class _MixedSourceIterator(Iterator[int]):
    """One epoch of a :class:`MixedSourceSampler`: ``num_samples`` draws from the sampler's stream.

    Draws are lazy (creating an iterator draws nothing), so torchdata's habit of calling
    ``iter(sampler)`` more than once per epoch does not move the stream. Its state is how many
    indices this epoch has yielded; the stream position itself lives in the sampler.
    """

    def __init__(self, sampler: "MixedSourceSampler"):
        self._sampler = sampler
        self.yielded = 0

    def __iter__(self):
        return self

    def __next__(self) -> int:
        if self.yielded >= self._sampler.num_samples:
            raise StopIteration
        index = self._sampler._draw()
        self.yielded += 1
        return index

    def state_dict(self) -> dict:
        return {"format": _STATE_FORMAT, "yielded": self.yielded}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        if state_dict.get("format") != _STATE_FORMAT:
            raise ValueError(
                "The dataloader state being restored was not written by MixedSourceSampler (was the checkpoint "
                "taken without srft.data.sources, or with another sampler?). Remove data.pt from the checkpoint "
                "folder to restart the data stream, or resume with the original data configuration."
            )
        yielded = int(state_dict["yielded"])
        if yielded < 0:
            raise ValueError(f"MixedSourceSampler iterator state has a negative 'yielded' ({yielded})")
        self.yielded = yielded


class MixedSourceSampler(Sampler[int]):
    """Indices into the concatenation of K sources, source ``k`` drawn with probability ``w_k / sum(w)``.

    Index ``i`` of the concatenation belongs to source ``k`` when
    ``offsets[k] <= i < offsets[k] + sizes[k]`` (``torch.utils.data.ConcatDataset`` order).
    Within a source, indices follow a seeded random permutation without replacement; an exhausted
    permutation is replaced by a new one (the source cycles). One ``iter()`` yields ``num_samples``
    indices (default ``sum(sizes)``); the next ``iter()`` continues the same stream.

    Resumable: :meth:`state_dict` / :meth:`load_state_dict` (stream position) together with the
    iterator's ``state_dict`` / ``load_state_dict`` (position within the epoch), both of which
    torchdata's ``StatefulDataLoader`` saves and restores. See the module docstring.

    Args:
        sizes: number of items of each source (each > 0).
        weights: relative weight of each source (each finite and > 0; normalised internally).
        seed: non-negative int; the whole stream is a function of it.
        num_samples: indices per epoch (``len(sampler)``); default ``sum(sizes)``.
        names: optional source names (for messages and :meth:`source_name`).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float],
        seed: int = 0,
        num_samples: Optional[int] = None,
        names: Optional[Sequence[str]] = None,
    ):
        super().__init__()
        sizes = list(sizes)
        weights = list(weights)
        if not sizes:
            raise ValueError("MixedSourceSampler needs at least one source")
        if len(weights) != len(sizes):
            raise ValueError(f"MixedSourceSampler: {len(sizes)} sources but {len(weights)} weights")
        if names is not None and len(names) != len(sizes):
            raise ValueError(f"MixedSourceSampler: {len(sizes)} sources but {len(names)} names")
        for k, n in enumerate(sizes):
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
                label = f"source {k}" + (f" ({names[k]!r})" if names is not None else "")
                raise ValueError(f"MixedSourceSampler: {label} must have a positive integer size, got {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"MixedSourceSampler: seed must be a non-negative int, got {seed!r}")
        if num_samples is None:
            num_samples = int(sum(sizes))
        if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral) or num_samples <= 0:
            raise ValueError(f"MixedSourceSampler: num_samples must be a positive int, got {num_samples!r}")

        self.sizes: tuple[int, ...] = tuple(int(n) for n in sizes)
        self.names: Optional[tuple[str, ...]] = tuple(names) if names is not None else None
        self.offsets: tuple[int, ...] = tuple(int(x) for x in np.concatenate([[0], np.cumsum(self.sizes)[:-1]]))
        self.seed = int(seed)
        self.num_samples = int(num_samples)
        self._set_weights(_check_weights(weights, self.names))

        # Stream position (the whole resumable state).
        self._draws = 0  # indices drawn since the start of the stream, across epochs
        self._cycles = [0] * len(self.sizes)  # completed passes over each source
        self._positions = [0] * len(self.sizes)  # next position in the current permutation of each source
        self._clear_caches()

    # ------------------------------------------------------------------ stream

    def _set_weights(self, weights: list[float]) -> None:
        self.weights: tuple[float, ...] = tuple(weights)
        total = float(sum(weights))
        self.probabilities: tuple[float, ...] = tuple(w / total for w in weights)
        cdf = np.cumsum(np.asarray(weights, dtype=np.float64)) / total
        cdf[-1] = 1.0  # u < 1 always lands in a source despite rounding
        self._cdf = cdf

    def _clear_caches(self) -> None:
        self._block_cache: tuple[int, np.ndarray] | None = None
        self._perm_cache: dict[int, tuple[int, np.ndarray]] = {}

    def _choice_block(self, block: int) -> np.ndarray:
        if self._block_cache is None or self._block_cache[0] != block:
            rng = np.random.default_rng([self.seed, _CHOICE_STREAM, block])
            uniforms = rng.random(_CHOICE_BLOCK)
            self._block_cache = (block, uniforms)
        return self._block_cache[1]

    def _permutation(self, source: int, cycle: int) -> np.ndarray:
        cached = self._perm_cache.get(source)
        if cached is None or cached[0] != cycle:
            rng = np.random.default_rng([self.seed, _PERM_STREAM, source, cycle])
            cached = (cycle, rng.permutation(self.sizes[source]))
            self._perm_cache[source] = cached
        return cached[1]

    def _draw(self) -> int:
        """Next index of the stream (advances the stream)."""
        block, offset = divmod(self._draws, _CHOICE_BLOCK)
        u = self._choice_block(block)[offset]
        source = int(np.searchsorted(self._cdf, u, side="right"))
        source = min(source, len(self.sizes) - 1)
        perm = self._permutation(source, self._cycles[source])
        index = self.offsets[source] + int(perm[self._positions[source]])
        self._positions[source] += 1
        if self._positions[source] == self.sizes[source]:
            self._positions[source] = 0
            self._cycles[source] += 1
        self._draws += 1
        return index

    # ------------------------------------------------------------------ Sampler API

    def __iter__(self) -> Iterator[int]:
        return _MixedSourceIterator(self)

    def __len__(self) -> int:
        return self.num_samples

    def source_of(self, index: int) -> int:
        """Source number of a concatenated index."""
        if not 0 <= index < sum(self.sizes):
            raise IndexError(f"index {index} out of range for {sum(self.sizes)} items")
        return bisect.bisect_right(self.offsets, index) - 1

    def source_name(self, index: int) -> str:
        k = self.source_of(index)
        return self.names[k] if self.names is not None else str(k)

    @property
    def draws(self) -> int:
        """Indices drawn so far over all epochs."""
        return self._draws

    def source_draw_counts(self) -> list[int]:
        """How many indices each source has given so far (``cycles * size + position``)."""
        return [c * n + p for c, n, p in zip(self._cycles, self.sizes, self._positions)]

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        """Stream position: plain ints/floats only, a fresh copy on every call (snapshot-safe)."""
        return {
            "format": _STATE_FORMAT,
            "seed": self.seed,
            "sizes": list(self.sizes),
            "weights": list(self.weights),
            "choice_block": _CHOICE_BLOCK,
            "draws": self._draws,
            "cycles": list(self._cycles),
            "positions": list(self._positions),
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restores the stream position saved by :meth:`state_dict`.

        Raises ``ValueError`` when the sources changed size or number (the saved positions would
        not mean the same prompts). The saved seed wins over the constructor's (with a warning).
        New weights are kept (with a warning): the draws after the restore follow them.
        """
        fmt = state_dict.get("format")
        if fmt != _STATE_FORMAT:
            raise ValueError(f"MixedSourceSampler: unknown state format {fmt!r} (expected {_STATE_FORMAT!r})")
        sizes = tuple(int(n) for n in state_dict["sizes"])
        if sizes != self.sizes:
            raise ValueError(
                f"MixedSourceSampler: the checkpoint was taken with source sizes {list(sizes)} but the sources "
                f"now have sizes {list(self.sizes)}; the saved positions do not apply. Restore the same "
                "srft.data.sources (same files, order, data.max_prompt_length/filtering and train_max_samples) "
                "or start the data stream from scratch."
            )
        if int(state_dict["choice_block"]) != _CHOICE_BLOCK:
            raise ValueError(
                f"MixedSourceSampler: state uses choice blocks of {state_dict['choice_block']}, "
                f"this code {_CHOICE_BLOCK}"
            )
        seed = int(state_dict["seed"])
        if seed != self.seed:
            logger.warning(f"MixedSourceSampler: resuming the checkpoint's seed {seed} instead of {self.seed}")
        saved_weights = [float(w) for w in state_dict["weights"]]
        if not np.allclose(np.asarray(saved_weights) / sum(saved_weights), self.probabilities, rtol=0, atol=1e-12):
            logger.warning(
                f"MixedSourceSampler: source weights changed since the checkpoint ({saved_weights} -> "
                f"{list(self.weights)}); draws after the restore follow the new weights"
            )
        cycles = [int(c) for c in state_dict["cycles"]]
        positions = [int(p) for p in state_dict["positions"]]
        draws = int(state_dict["draws"])
        if len(cycles) != len(sizes) or len(positions) != len(sizes):
            raise ValueError("MixedSourceSampler: malformed state (cycles/positions do not match the sources)")
        if draws < 0 or any(c < 0 for c in cycles) or any(not 0 <= p < n for p, n in zip(positions, sizes)):
            raise ValueError(f"MixedSourceSampler: malformed state (draws={draws}, positions={positions})")
        if sum(c * n + p for c, n, p in zip(cycles, sizes, positions)) != draws:
            raise ValueError("MixedSourceSampler: malformed state (per-source counts do not add up to draws)")
        self.seed = seed
        self._draws = draws
        self._cycles = cycles
        self._positions = positions
        self._clear_caches()

    def __repr__(self) -> str:
        names = self.names or tuple(str(k) for k in range(len(self.sizes)))
        parts = ", ".join(f"{n}: size={s}, p={p:.3f}" for n, s, p in zip(names, self.sizes, self.probabilities))
        return f"MixedSourceSampler({parts}; seed={self.seed}, num_samples={self.num_samples})"


class MixedSourceDataset(Dataset):
    """Concatenation of per-source datasets (``ConcatDataset`` index order) that tags each item.

    ``dataset[i]`` is the item of source ``k`` at local index ``i - offsets[k]`` with
    ``item["srft_source"] = names[k]`` and ``None`` for any key that another source's items have
    but this one's lack (so verl's ``collate_fn`` sees the same keys in every item). Tensor-valued
    keys must exist in every source (``None`` cannot be stacked).
    """

    def __init__(self, datasets: Sequence[Dataset], names: Sequence[str]):
        if len(datasets) != len(names):
            raise ValueError(f"{len(datasets)} datasets but {len(names)} names")
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {list(names)}")
        self.datasets = list(datasets)
        self.names = tuple(names)
        self.sizes = tuple(len(d) for d in self.datasets)
        for name, size in zip(self.names, self.sizes):
            if size == 0:
                raise ValueError(
                    f"srft.data.sources: source {name!r} is empty (after verl's prompt-length filtering?); "
                    "remove it or fix its files"
                )
        self.offsets = tuple(int(x) for x in np.concatenate([[0], np.cumsum(self.sizes)[:-1]]))
        self._fill_keys = self._common_keys()

    def _common_keys(self) -> list[tuple[str, ...]]:
        """Keys each source must add (as None) so every item has the union of all sources' keys."""
        key_sets, tensor_keys = [], []
        for dataset in self.datasets:
            item = dataset[0]
            if not isinstance(item, Mapping):
                return [() for _ in self.datasets]
            key_sets.append(set(item))
            tensor_keys.append({k for k, v in item.items() if isinstance(v, torch.Tensor)})
        union = set().union(*key_sets)
        fills = []
        for name, keys, tkeys in zip(self.names, key_sets, tensor_keys):
            missing = union - keys
            bad = {k for k in missing if any(k in t for t in tensor_keys)}
            if bad:
                raise ValueError(
                    f"srft.data.sources: source {name!r} lacks the tensor field(s) {sorted(bad)} that other sources "
                    "have; a batch cannot mix them"
                )
            if missing:
                logger.warning(
                    f"srft.data.sources: source {name!r} has no {sorted(missing)}; they are None in its items"
                )
            fills.append(tuple(sorted(missing)))
        return fills

    def __len__(self) -> int:
        return sum(self.sizes)

    def locate(self, index: int) -> tuple[int, int]:
        """``(source number, index inside that source)`` of a concatenated index."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        k = bisect.bisect_right(self.offsets, index) - 1
        return k, index - self.offsets[k]

    def __getitem__(self, index: int):
        k, local = self.locate(int(index))
        item = self.datasets[k][local]
        if isinstance(item, dict):
            for key in self._fill_keys[k]:
                item.setdefault(key, None)
            item[SOURCE_KEY] = self.names[k]
        return item


def _normalise_sources(sources: Any) -> list[dict]:
    """Plain-python copy of ``srft.data.sources`` with validated keys, weights and unique names."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(sources, (DictConfig, ListConfig)):
            sources = OmegaConf.to_container(sources, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf ships with verl
        pass
    if isinstance(sources, Mapping) or not isinstance(sources, Sequence) or isinstance(sources, str):
        raise ValueError(
            f"srft.data.sources must be a list of {{path, weight, name}} mappings, got {type(sources).__name__}"
        )
    if len(sources) == 0:
        raise ValueError("srft.data.sources is empty; give at least one {path, weight} entry or unset it")
    out = []
    for k, src in enumerate(sources):
        if not isinstance(src, Mapping):
            raise ValueError(f"srft.data.sources[{k}] must be a mapping with keys path, weight, name; got {src!r}")
        unknown = set(src) - {"path", "weight", "name"}
        if unknown:
            raise ValueError(
                f"srft.data.sources[{k}] has unknown key(s) {sorted(unknown)}; allowed: path, weight, name"
            )
        path = src.get("path")
        if isinstance(path, str):
            paths = [path]
        elif isinstance(path, Sequence) and path and all(isinstance(p, str) for p in path):
            paths = list(path)
        else:
            raise ValueError(
                f"srft.data.sources[{k}].path must be a file path or a non-empty list of them, got {path!r}"
            )
        name = src.get("name")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"srft.data.sources[{k}].name must be a non-empty string, got {name!r}")
        out.append({"path": paths, "weight": src.get("weight", 1.0), "name": name})
    explicit = [s["name"] for s in out if s["name"] is not None]
    dup = sorted({n for n in explicit if explicit.count(n) > 1})
    if dup:
        raise ValueError(f"srft.data.sources: duplicate source name(s) {dup}; names must be unique")
    taken = set(explicit)
    for k, src in enumerate(out):
        if src["name"] is None:
            stem = Path(src["path"][0]).name.split(".")[0] or f"source{k}"
            name = stem if stem not in taken else f"{stem}_{k}"
            src["name"] = name
            taken.add(name)
    weights = _check_weights([s["weight"] for s in out], [s["name"] for s in out])
    for src, w in zip(out, weights):
        src["weight"] = w
    return out


def build_mixed_dataset(sources, tokenizer, processor, data_config, max_samples: int = -1):
    """Builds one verl training dataset per entry of ``srft.data.sources`` and concatenates them.

    Each source goes through ``verl.trainer.ppo.utils.create_rl_dataset(paths, data_config,
    tokenizer, processor, is_train=True, max_samples=max_samples)``, i.e. exactly what verl does for
    ``data.train_files`` (``max_samples`` — verl's ``data.train_max_samples`` — applies per source).

    Args:
        sources: list of ``{path: str | list[str], weight: float, name: str (optional)}``
            (plain python or OmegaConf). ``weight`` defaults to 1.0, ``name`` to the stem of the
            first file (made unique with ``_<k>``).
        tokenizer, processor, data_config: as verl's trainer holds them (``self.tokenizer``,
            ``self.processor``, ``self.config.data``).

    Returns:
        ``(dataset, sizes)``: a :class:`MixedSourceDataset` (``ConcatDataset`` index order, items
        tagged with ``srft_source``) and the list of per-source sizes after verl's filtering.
        The normalised sources (weights, names) are on ``dataset.sources``.
    """
    from verl.trainer.ppo.utils import create_rl_dataset

    normalised = _normalise_sources(sources)
    datasets = []
    for src in normalised:
        ds = create_rl_dataset(src["path"], data_config, tokenizer, processor, is_train=True, max_samples=max_samples)
        logger.info(
            f"srft.data.sources: {src['name']!r} ({len(ds)} prompts, weight {src['weight']}) from {src['path']}"
        )
        datasets.append(ds)
    dataset = MixedSourceDataset(datasets, [s["name"] for s in normalised])
    dataset.sources = normalised
    return dataset, list(dataset.sizes)


def create_mixed_dataloader(
    sources,
    seed: Optional[int],
    tokenizer,
    processor,
    data_config,
    batch_size: int,
    num_workers: int = 0,
    drop_last: bool = True,
    *,
    max_samples: int = -1,
    num_samples: Optional[int] = None,
):
    """A ``StatefulDataLoader`` over the mixed sources, ready to be verl's ``self.train_dataloader``.

    Uses verl's ``collate_fn`` and a :class:`MixedSourceSampler` seeded with ``seed``
    (``srft.data.seed``; ``None`` means 0). ``num_samples`` (indices per epoch) defaults to the
    total size of the sources, rounded down to a multiple of ``batch_size`` when ``drop_last`` (at
    least one batch), so no drawn prompt is dropped at the end of an epoch. The loader's
    ``state_dict()`` / ``load_state_dict()`` (what verl writes to and reads from ``data.pt``)
    carry the sampler's position; see the module docstring.

    The dataset is ``loader.dataset`` and the sampler ``loader.sampler``.
    """
    from torchdata.stateful_dataloader import StatefulDataLoader
    from verl.utils.dataset.rl_dataset import collate_fn

    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    dataset, sizes = build_mixed_dataset(sources, tokenizer, processor, data_config, max_samples=max_samples)
    if num_samples is None:
        total = sum(sizes)
        num_samples = max(1, total // batch_size) * batch_size if drop_last else total
    sampler = MixedSourceSampler(
        sizes=sizes,
        weights=[s["weight"] for s in dataset.sources],
        seed=0 if seed is None else int(seed),
        num_samples=num_samples,
        names=dataset.names,
    )
    logger.info(f"srft mixed training data: {sampler!r}")
    return StatefulDataLoader(
        dataset=dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        collate_fn=collate_fn,
    )


def init_mixed_train_dataloader(trainer) -> None:
    """Swaps the training loader of a verl V1 trainer for the mixed one (``srft.data.sources`` set).

    Call it from the trainer's ``_init_dataloader`` **after** verl's own ``_init_dataloader`` has run
    (which builds the validation loader and settles ``data.gen_batch_size``: 1 in the async / DAPO
    refill modes). It replaces ``trainer.train_dataset`` / ``trainer.train_dataloader``, resets
    ``trainer.train_dataloader_it`` and recomputes what verl derived from the training set's size:
    ``steps_per_epoch``, ``total_training_steps`` (unless ``trainer.total_training_steps`` is set)
    and the optimisers' ``total_training_steps``. verl's ``_save_checkpoint`` / ``_load_checkpoint``
    then save and restore the mixed loader through ``data.pt`` unchanged.

    Sources and seed come from ``trainer.srft`` (``data_sources`` / ``data_seed``, the resolved
    :class:`recipe_srft.srft_config.SRFTConfig`) when present, else from ``config.srft.data``.
    """
    from omegaconf import OmegaConf, open_dict

    config = trainer.config
    srft = getattr(trainer, "srft", None)
    sources = getattr(srft, "data_sources", None)
    seed = getattr(srft, "data_seed", None)
    if not sources:
        sources = OmegaConf.select(config, "srft.data.sources", default=None)
        seed = OmegaConf.select(config, "srft.data.seed", default=None)
    if not sources:
        raise ValueError("init_mixed_train_dataloader: srft.data.sources is not set")
    data = config.data
    batch_size = data.get("gen_batch_size", None) or data.train_batch_size
    loader = create_mixed_dataloader(
        sources,
        seed,
        trainer.tokenizer,
        trainer.processor,
        data,
        batch_size=int(batch_size),
        num_workers=data["dataloader_num_workers"],
        drop_last=True,
        max_samples=data.get("train_max_samples", -1),
    )
    trainer.train_dataset = loader.dataset
    trainer.train_dataloader = loader
    trainer.train_dataloader_it = None

    trainer.steps_per_epoch = len(trainer.train_dataset) // data.train_batch_size
    total_training_steps = trainer.steps_per_epoch * config.trainer.total_epochs
    if config.trainer.total_training_steps is not None:
        total_training_steps = config.trainer.total_training_steps
    trainer.total_training_steps = total_training_steps
    optim_total = total_training_steps * getattr(trainer, "parameter_sync_step", 1)
    with open_dict(config):
        if OmegaConf.select(config, "actor_rollout_ref.actor.optim"):
            config.actor_rollout_ref.actor.optim.total_training_steps = optim_total
        if OmegaConf.select(config, "critic.optim"):
            config.critic.optim.total_training_steps = optim_total
    logger.info(
        f"srft mixed training data: {len(trainer.train_dataset)} prompts in {len(loader.dataset.sizes)} sources, "
        f"{trainer.steps_per_epoch} steps per epoch, {trainer.total_training_steps} training steps"
    )
