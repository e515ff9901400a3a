"""srft.data.sources: weighted source mixing, no replacement inside a source, resumable loader state."""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd
import pytest
import torch

from recipe_srft.integration.mixed_data import (
    SOURCE_KEY,
    MixedSourceDataset,
    MixedSourceSampler,
    build_mixed_dataset,
    create_mixed_dataloader,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# name -> (rows, has a ``target`` column)
SOURCES = {"alpha": (17, False), "beta": (6, False), "gamma": (3, True)}
WEIGHTS = {"alpha": 1.0, "beta": 2.0, "gamma": 1.0}


def _write_source(path, name, rows, with_target):
    records = []
    for i in range(rows):
        rec = {
            "data_source": f"ds_{name}",
            "prompt": [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": f"{name} question {i}: what is {i} + {i}?"},
            ],
            "ability": "math",
            "reward_model": {"ground_truth": str(2 * i), "style": "rule"},
            "extra_info": {"index": i, "split": "train"},
        }
        if with_target:
            rec["target"] = [{"role": "assistant", "content": f"\\boxed{{{2 * i}}}"}]
        records.append(rec)
    pd.DataFrame.from_records(records).to_parquet(path)


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_tokenizer):
    """Parquet files for the three sources, verl's default data config and the tiny tokenizer."""
    import datasets
    from hydra import compose, initialize_config_module

    root = tmp_path_factory.mktemp("mixed_data")
    mp = pytest.MonkeyPatch()
    mp.setattr(datasets.config, "HF_DATASETS_CACHE", str(root / "hf_cache"))
    paths = {}
    for name, (rows, with_target) in SOURCES.items():
        paths[name] = str(root / f"{name}.parquet")
        _write_source(paths[name], name, rows, with_target)
    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        cfg = compose(config_name="ppo_trainer")
    sources = [{"path": paths[n], "weight": WEIGHTS[n], "name": n} for n in SOURCES]
    yield {"paths": paths, "data": cfg.data, "cfg": cfg, "tok": tiny_tokenizer, "sources": sources}
    mp.undo()


def _loader(env, seed=7, batch_size=4, num_workers=0, sources=None):
    return create_mixed_dataloader(
        sources if sources is not None else env["sources"], seed, env["tok"], None, env["data"],
        batch_size=batch_size, num_workers=num_workers,
    )


def _ids(batch) -> list[tuple[str, int]]:
    """Stable prompt ids of a collated batch: (source name, extra_info.index)."""
    return [(s, int(e["index"])) for s, e in zip(batch[SOURCE_KEY], batch["extra_info"])]


class _VerlLikeConsumer:
    """Pulls batches the way verl's ``_fetch_one_gen_batch`` does: one long-lived iterator, re-created on StopIteration.

    ``take`` records, per batch, how many epoch ends this consumer has crossed and the batch's prompt ids, so a
    resumed run must match both the prompt sequence and the epoch boundaries of the uninterrupted one.
    """

    def __init__(self, loader, epochs_done=0):
        self.loader, self.it, self.epochs_done = loader, None, epochs_done

    def next(self):
        try:
            if self.it is None:
                self.it = iter(self.loader)
            return next(self.it)
        except StopIteration:
            self.epochs_done += 1
            self.it = iter(self.loader)
            return next(self.it)

    def take(self, n):
        return [(self.epochs_done, _ids(self.next())) for _ in range(n)]


# ---------------------------------------------------------------------------- sampler


def _source_sequences(sampler, indices):
    per = [[] for _ in sampler.sizes]
    for i in indices:
        k = sampler.source_of(i)
        per[k].append(i - sampler.offsets[k])
    return per


def test_weights_give_expected_proportions():
    sizes, weights, n = [50, 7, 300], [1.0, 2.0, 5.0], 20000
    sampler = MixedSourceSampler(sizes, weights, seed=0, num_samples=n)
    counts = Counter(sampler.source_of(i) for i in sampler)
    assert sum(counts.values()) == n
    for k, w in enumerate(weights):
        p = w / sum(weights)
        tol = 4 * math.sqrt(n * p * (1 - p))  # 4 binomial std: deterministic with the fixed seed anyway
        assert abs(counts[k] - n * p) <= tol, (k, counts[k], n * p, tol)


def test_no_replacement_inside_a_source_until_exhausted_then_reshuffled():
    sizes = [7, 13, 40]
    sampler = MixedSourceSampler(sizes, [3.0, 2.0, 1.0], seed=3, num_samples=600)
    per = _source_sequences(sampler, list(sampler))
    for k, (n, seq) in enumerate(zip(sizes, per)):
        cycles = [seq[j:j + n] for j in range(0, len(seq), n)]
        for c in cycles:
            assert len(set(c)) == len(c), f"source {k} repeated an item inside one pass"
        full = [c for c in cycles if len(c) == n]
        assert all(sorted(c) == list(range(n)) for c in full)
        if len(full) >= 2:
            assert len({tuple(c) for c in full}) > 1, f"source {k} is not reshuffled between passes"
    assert len(per[0]) > 3 * sizes[0]  # the small heavy source did cycle
    assert sampler.source_draw_counts() == [len(s) for s in per]


def test_epochs_continue_one_stream():
    a = MixedSourceSampler([5, 9], [1.0, 1.0], seed=11, num_samples=10)
    b = MixedSourceSampler([5, 9], [1.0, 1.0], seed=11, num_samples=30)
    assert len(a) == 10
    assert list(a) + list(a) + list(a) == list(b)
    # iterators draw lazily: creating (and dropping) one does not move the stream
    iter(a), iter(a)
    assert a.draws == 30


def test_determinism_and_seed_sensitivity():
    def seq(seed):
        return list(MixedSourceSampler([20, 30, 5], [1.0, 1.0, 1.0], seed=seed, num_samples=200))

    assert seq(5) == seq(5)
    assert seq(5) != seq(6)


@pytest.mark.parametrize(
    "weights", [[1.0, 0.0], [1.0, -2.0], [float("nan"), 1.0], [float("inf"), 1.0], ["1", 1.0], [True, 1.0], [1.0]]
)
def test_invalid_weights_raise(weights):
    with pytest.raises(ValueError, match="weight"):
        MixedSourceSampler([4, 4], weights)


def test_invalid_sampler_arguments_raise():
    with pytest.raises(ValueError, match="at least one source"):
        MixedSourceSampler([], [])
    with pytest.raises(ValueError, match="size"):
        MixedSourceSampler([4, 0], [1.0, 1.0])
    with pytest.raises(ValueError, match="seed"):
        MixedSourceSampler([4], [1.0], seed=-1)
    with pytest.raises(ValueError, match="num_samples"):
        MixedSourceSampler([4], [1.0], num_samples=0)


def test_sampler_state_round_trip_and_mismatch():
    a = MixedSourceSampler([5, 9], [2.0, 1.0], seed=1, num_samples=1000)
    it = iter(a)
    head = [next(it) for _ in range(37)]
    state, it_state = a.state_dict(), it.state_dict()
    tail = [next(it) for _ in range(50)]
    b = MixedSourceSampler([5, 9], [2.0, 1.0], seed=999, num_samples=1000)  # the checkpoint's seed wins
    b.load_state_dict(state)
    it_b = iter(b)
    it_b.load_state_dict(it_state)
    assert len(head) == 37 and [next(it_b) for _ in range(50)] == tail
    with pytest.raises(ValueError, match="source sizes"):
        MixedSourceSampler([5, 10], [2.0, 1.0]).load_state_dict(state)


def test_sampler_resume_through_multiprocess_loader_with_prefetch():
    """num_workers > 0: prefetched (dispatched, unconsumed) batches are drawn again after a restore."""
    from torchdata.stateful_dataloader import StatefulDataLoader

    def loader():
        return StatefulDataLoader(list(range(40)), batch_size=3, num_workers=2, drop_last=True,
                                  sampler=MixedSourceSampler([10, 30], [1.0, 1.0], seed=2, num_samples=30))

    ref = loader()
    full = [b.tolist() for b in ref] + [b.tolist() for b in ref]
    first = loader()
    it = iter(first)
    head = [next(it).tolist() for _ in range(4)]
    state = first.state_dict()
    del it, first
    second = loader()
    second.load_state_dict(state)
    rest = [b.tolist() for b in second] + [b.tolist() for b in second]
    assert head + rest == full


# ---------------------------------------------------------------------------- verl datasets / loader


def test_build_mixed_dataset_items_and_collate(env):
    from verl.utils import tensordict_utils as tu
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    dataset, sizes = build_mixed_dataset(env["sources"], env["tok"], None, env["data"])
    assert sizes == [SOURCES[n][0] for n in SOURCES]
    assert isinstance(dataset, MixedSourceDataset) and len(dataset) == sum(sizes)
    assert all(isinstance(d, RLHFDataset) for d in dataset.datasets)

    reference = RLHFDataset(env["paths"]["beta"], env["tok"], env["data"])
    item = dataset[sizes[0] + 2]
    expected = reference[2]
    assert item[SOURCE_KEY] == "beta" and item["target"] is None  # column of another source filled with None
    assert {k for k in item if k not in (SOURCE_KEY, "target")} == set(expected)
    assert item["raw_prompt"] == expected["raw_prompt"] and item["extra_info"]["index"] == 2
    gamma = dataset[len(dataset) - 1]
    assert gamma[SOURCE_KEY] == "gamma" and gamma["target"][0]["role"] == "assistant"

    batch = collate_fn([dataset[i] for i in (0, sizes[0], len(dataset) - 1)])
    assert list(batch[SOURCE_KEY]) == ["alpha", "beta", "gamma"]
    assert batch["dummy_tensor"].shape == (3, 1)
    td = tu.get_tensordict(batch)  # what verl's _fetch_one_gen_batch does with a batch
    assert td.batch_size[0] == 3
    assert list(td[SOURCE_KEY]) == ["alpha", "beta", "gamma"]
    assert td["target"][0] is None and td["target"][2][0]["role"] == "assistant"


def test_build_mixed_dataset_config_errors(env):
    p = env["paths"]["alpha"]
    bad = [
        ([], "empty"),
        ([{"path": p, "weight": 0}], "weight"),
        ([{"path": p, "weight": 1, "wieght": 2}], "unknown key"),
        ([{"path": p, "name": "x"}, {"path": p, "name": "x"}], "duplicate"),
        ([{"weight": 1.0}], "path"),
    ]
    for sources, match in bad:
        with pytest.raises(ValueError, match=match):
            build_mixed_dataset(sources, env["tok"], None, env["data"])


def test_default_names_and_omegaconf_sources(env):
    from omegaconf import OmegaConf

    sources = OmegaConf.create([{"path": env["paths"]["alpha"]}, {"path": [env["paths"]["alpha"]], "weight": 2}])
    dataset, sizes = build_mixed_dataset(sources, env["tok"], None, env["data"])
    assert dataset.names == ("alpha", "alpha_1") and sizes == [17, 17]
    assert [s["weight"] for s in dataset.sources] == [1.0, 2.0]


def test_loader_proportions_and_batches(env):
    loader = _loader(env, seed=1, batch_size=5)
    assert len(loader) == sum(r for r, _ in SOURCES.values()) // 5
    consumer = _VerlLikeConsumer(loader)
    ids = [i for _, b in consumer.take(300) for i in b]
    n = len(ids)
    counts = Counter(s for s, _ in ids)
    total_w = sum(WEIGHTS.values())
    for name, w in WEIGHTS.items():
        p = w / total_w
        assert abs(counts[name] - n * p) <= 4 * math.sqrt(n * p * (1 - p)), (name, counts[name], n * p)
    # within a source, no repeat before every prompt of it has been seen
    for name, (rows, _) in SOURCES.items():
        seq = [i for s, i in ids if s == name]
        for j in range(0, len(seq) - rows + 1, rows):
            assert sorted(seq[j:j + rows]) == list(range(rows))


def test_loader_determinism(env):
    a = _VerlLikeConsumer(_loader(env, seed=4)).take(12)
    b = _VerlLikeConsumer(_loader(env, seed=4)).take(12)
    c = _VerlLikeConsumer(_loader(env, seed=5)).take(12)
    assert a == b and a != c


TOTAL_BATCHES = 20  # 26 prompts, batch 4 -> 6 batches per epoch: covers several epoch boundaries


@pytest.fixture(scope="module")
def uninterrupted(env):
    return _VerlLikeConsumer(_loader(env)).take(TOTAL_BATCHES)


@pytest.mark.parametrize("k", [0, 1, 3, 6, 7, 12, 13, 19])
def test_resume_after_k_batches(env, uninterrupted, k):
    consumer = _VerlLikeConsumer(_loader(env))
    head = consumer.take(k)
    state = consumer.loader.state_dict()  # what verl's _save_checkpoint writes to data.pt
    saved_epochs = consumer.epochs_done
    consumer.take(2)  # the old run goes on after the save: must not change the saved state

    fresh = _loader(env)
    fresh.load_state_dict(state)  # what verl's _load_checkpoint does
    tail = _VerlLikeConsumer(fresh, epochs_done=saved_epochs).take(TOTAL_BATCHES - k)
    assert head + tail == uninterrupted


@pytest.mark.parametrize("weights_only", [False, True])
def test_resume_through_torch_save(env, uninterrupted, tmp_path, weights_only):
    k = 8
    consumer = _VerlLikeConsumer(_loader(env))
    head = consumer.take(k)
    path = tmp_path / "data.pt"
    torch.save(consumer.loader.state_dict(), path)
    saved_epochs = consumer.epochs_done
    del consumer

    fresh = _loader(env)
    fresh.load_state_dict(torch.load(path, weights_only=weights_only))
    tail = _VerlLikeConsumer(fresh, epochs_done=saved_epochs).take(TOTAL_BATCHES - k)
    assert head + tail == uninterrupted


def test_resume_with_worker_processes(env, uninterrupted):
    consumer = _VerlLikeConsumer(_loader(env, num_workers=2))
    head = consumer.take(5)
    state, saved_epochs = consumer.loader.state_dict(), consumer.epochs_done
    del consumer
    fresh = _loader(env, num_workers=2)
    fresh.load_state_dict(state)
    assert head + _VerlLikeConsumer(fresh, epochs_done=saved_epochs).take(TOTAL_BATCHES - 5) == uninterrupted


def test_resume_with_changed_sources_fails_clearly(env):
    consumer = _VerlLikeConsumer(_loader(env))
    consumer.take(2)
    state = consumer.loader.state_dict()
    fewer = env["sources"][:2]
    other = _loader(env, sources=fewer)
    other.load_state_dict(state)
    with pytest.raises(ValueError, match="source sizes"):
        next(iter(other))


def test_foreign_dataloader_state_is_rejected(env):
    """A data.pt written with verl's own RandomSampler (no srft.data.sources) cannot silently restart the stream."""
    from torchdata.stateful_dataloader import StatefulDataLoader
    from verl.trainer.ppo.utils import create_rl_sampler
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    plain = RLHFDataset(env["paths"]["alpha"], env["tok"], env["data"])
    verl_loader = StatefulDataLoader(plain, batch_size=4, drop_last=True, collate_fn=collate_fn,
                                     sampler=create_rl_sampler(env["data"], plain))
    it = iter(verl_loader)
    next(it)
    mixed = _loader(env)
    mixed.load_state_dict(verl_loader.state_dict())
    with pytest.raises(ValueError, match="not written by MixedSourceSampler"):
        next(iter(mixed))


@pytest.mark.parametrize("gen_batch_size", [None, 1])
def test_init_mixed_train_dataloader_on_a_trainer(env, gen_batch_size):
    """What the SRFT trainer's _init_dataloader does after verl's: swap the loader, recompute the step counts."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf, open_dict
    from torchdata.stateful_dataloader import StatefulDataLoader

    from recipe_srft.integration.mixed_data import init_mixed_train_dataloader

    cfg = OmegaConf.create(OmegaConf.to_container(env["cfg"], resolve=False))
    with open_dict(cfg):
        cfg.data.train_batch_size = 4
        cfg.data.gen_batch_size = gen_batch_size
        cfg.data.dataloader_num_workers = 0
        cfg.trainer.total_epochs = 3
        cfg.trainer.total_training_steps = None
        cfg.srft = {"data": {"seed": 7, "sources": env["sources"]}}
    trainer = SimpleNamespace(config=cfg, tokenizer=env["tok"], processor=None, parameter_sync_step=2,
                              train_dataloader_it=object())
    init_mixed_train_dataloader(trainer)
    total = sum(r for r, _ in SOURCES.values())
    assert isinstance(trainer.train_dataloader, StatefulDataLoader) and trainer.train_dataloader_it is None
    assert trainer.train_dataset is trainer.train_dataloader.dataset and len(trainer.train_dataset) == total
    assert trainer.steps_per_epoch == total // 4 and trainer.total_training_steps == 3 * (total // 4)
    assert cfg.actor_rollout_ref.actor.optim.total_training_steps == 2 * 3 * (total // 4)
    bs = gen_batch_size or 4
    assert trainer.train_dataloader.batch_size == bs and len(trainer.train_dataloader) == total // bs
    if gen_batch_size is None:  # same loader as create_mixed_dataloader(seed=7): the uninterrupted stream
        assert _VerlLikeConsumer(trainer.train_dataloader).take(3) == _VerlLikeConsumer(_loader(env)).take(3)
