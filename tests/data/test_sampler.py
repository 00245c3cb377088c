"""Blended sampler and batches: determinism, resume, rank sharding, blend proportions, alpha."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from t5kit.config.core import ConfigError, build
from t5kit.data.config import DataConfig
from t5kit.data.indexed_dataset import IndexedDatasetWriter
from t5kit.data.loader import Batch, build_pretraining_batches
from t5kit.data.sampler import BlendedSampler, SamplerStateError, blend_weights, largest_remainder_counts
from t5kit.data.span_corruption import compute_input_and_target_lengths


def draws(sampler: BlendedSampler, count: int) -> list[tuple[int, int, int]]:
    return [(s.dataset, s.window, s.index) for s in (next(sampler) for _ in range(count))]


def test_determinism():
    first = draws(BlendedSampler([50, 30], alpha=0.5, seed=3), 200)
    second = draws(BlendedSampler([50, 30], alpha=0.5, seed=3), 200)
    other = draws(BlendedSampler([50, 30], alpha=0.5, seed=4), 200)
    assert first == second
    assert first != other


def test_resume_equivalence():
    uninterrupted = draws(BlendedSampler([40, 25], weights=[0.3, 0.7], seed=1, rank=1, world_size=2), 150)
    sampler = BlendedSampler([40, 25], weights=[0.3, 0.7], seed=1, rank=1, world_size=2)
    head = draws(sampler, 37)
    state = sampler.state_dict()
    resumed = BlendedSampler([40, 25], weights=[0.3, 0.7], seed=1, rank=1, world_size=2)
    resumed.load_state_dict(state)
    assert head + draws(resumed, 113) == uninterrupted


def test_state_mismatch_rejected():
    state = BlendedSampler([40, 25], seed=1).state_dict()
    with pytest.raises(SamplerStateError, match="seed"):
        BlendedSampler([40, 25], seed=2).load_state_dict(state)
    with pytest.raises(SamplerStateError, match="sizes"):
        BlendedSampler([40, 26], seed=1).load_state_dict(state)


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_ranks_cover_epoch_without_overlap(world_size):
    sizes = [17, 9, 4]
    samplers = [BlendedSampler(sizes, seed=5, rank=r, world_size=world_size) for r in range(world_size)]
    per_rank = samplers[0].local_epoch_size
    seen = [draws(sampler, per_rank) for sampler in samplers]
    indices = [index for rank in seen for _, _, index in rank]
    windows = [(dataset, window) for rank in seen for dataset, window, _ in rank]
    assert sorted(indices) == list(range(world_size * per_rank))
    # Weights follow the sizes, so one epoch shows each window at most once, all of them at world size 1.
    assert len(set(windows)) == len(windows)
    if world_size == 1:
        assert sorted(windows) == sorted((d, w) for d, n in enumerate(sizes) for w in range(n))


def test_blend_proportions_close_to_weights():
    weights = [0.6, 0.3, 0.1]
    sampler = BlendedSampler([100, 1000, 50], weights=weights, seed=0, epoch_size=2000)
    counts = Counter(sample.dataset for sample in (next(sampler) for _ in range(3000)))
    for dataset, weight in enumerate(weights):
        assert abs(counts[dataset] / 3000 - weight) < 0.02


def test_small_dataset_repeats_after_full_pass():
    sampler = BlendedSampler([5, 100], weights=[0.5, 0.5], seed=0)
    small = [s.window for s in (next(sampler) for _ in range(105)) if s.dataset == 0]
    for start in range(0, len(small) - 4, 5):
        assert sorted(small[start : start + 5]) == list(range(5))


def test_epochs_reshuffle():
    sampler = BlendedSampler([30], seed=0)
    first, second = draws(sampler, 30), draws(sampler, 30)
    assert sorted(w for _, w, _ in first) == sorted(w for _, w, _ in second) == list(range(30))
    assert [w for _, w, _ in first] != [w for _, w, _ in second]


def test_alpha_weighting_formula():
    sizes = [1000, 100, 10]
    for alpha in (0.3, 0.7, 1.0):
        expected = np.array([1000**alpha, 100**alpha, 10**alpha])
        np.testing.assert_allclose(blend_weights(sizes, alpha=alpha), expected / expected.sum())
    np.testing.assert_allclose(blend_weights(sizes, alpha=0.0), [1 / 3] * 3)
    np.testing.assert_allclose(blend_weights(sizes), [1000 / 1110, 100 / 1110, 10 / 1110])
    np.testing.assert_allclose(blend_weights(sizes, weights=[2, 1, 1]), [0.5, 0.25, 0.25])


def test_largest_remainder_counts():
    assert largest_remainder_counts(np.array([0.5, 0.3, 0.2]), 7).tolist() == [4, 2, 1]
    assert largest_remainder_counts(np.array([1 / 3] * 3), 10).sum() == 10


def write_corpus(directory, max_length: int) -> list[str]:
    rng = np.random.default_rng(0)
    prefixes = []
    for name, count in (("a", 40), ("b", 15)):
        prefix = directory / name
        with IndexedDatasetWriter(prefix, 32100) as writer:
            for _ in range(count):
                writer.add_document(rng.integers(3, 32000, size=int(rng.integers(5, max_length))))
        prefixes.append(str(prefix))
    return prefixes


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path, max_length=120)


@pytest.fixture
def short_corpus(tmp_path):
    return write_corpus(tmp_path, max_length=30)


def batches_equal(first: Batch, second: Batch) -> bool:
    names = ["input_ids", "attention_mask", "decoder_input_ids", "labels", "encoder_segment_ids", "decoder_segment_ids"]
    return all(np.array_equal(getattr(first, n), getattr(second, n)) for n in names if getattr(first, n) is not None)


@pytest.mark.parametrize(
    "overrides", [{}, {"windowing": "document", "packing": True}, {"objective": "ul2", "packing": True}]
)
def test_batches_resume_equivalence(short_corpus, overrides):
    config = build(DataConfig, {"paths": short_corpus, "inputs_length": 64, "alpha": 0.5, **overrides}, prefix="data")
    uninterrupted = build_pretraining_batches(config, batch_size=3)
    expected = [next(uninterrupted) for _ in range(8)]
    first = build_pretraining_batches(config, batch_size=3)
    for batch in expected[:5]:
        assert batches_equal(next(first), batch)
    resumed = build_pretraining_batches(config, batch_size=3)
    resumed.load_state_dict(first.state_dict())
    for batch in expected[5:]:
        assert batches_equal(next(resumed), batch)


def test_batch_fields_span_corruption(corpus):
    config = build(DataConfig, {"paths": corpus, "inputs_length": 64}, prefix="data")
    batch = next(build_pretraining_batches(config, batch_size=4))
    assert batch.input_ids.shape == (4, 64)
    assert batch.labels.shape == (4, compute_input_and_target_lengths(64)[1])
    assert batch.attention_mask.all()
    assert batch.encoder_segment_ids is None
    assert np.all(batch.input_ids[:, -1] == 1)
    assert np.array_equal(batch.decoder_input_ids[:, 1:], batch.labels[:, :-1])
    assert np.all(batch.decoder_input_ids[:, 0] == 0)
    tensors = batch.to_torch()
    assert tensors.input_ids.dtype.is_floating_point is False
    assert tuple(tensors.labels.shape) == batch.labels.shape


def test_packed_batch_has_segments(short_corpus):
    settings = {"paths": short_corpus, "inputs_length": 64, "windowing": "document", "packing": True}
    config = build(DataConfig, settings, prefix="data")
    batch = next(build_pretraining_batches(config, batch_size=2))
    assert batch.num_examples > 2
    assert batch.encoder_segment_ids.max() >= 2
    assert np.array_equal(batch.labels == -100, batch.decoder_segment_ids == 0)
    assert np.array_equal(batch.attention_mask, (batch.encoder_segment_ids > 0).astype(np.int64))


def test_validation_split_is_one_pass(corpus):
    config = build(DataConfig, {"paths": corpus, "validation_paths": corpus[1:], "inputs_length": 64}, prefix="data")
    batches = list(build_pretraining_batches(config, batch_size=4, split="validation"))
    windows = len(build_pretraining_batches(config, batch_size=4, split="validation").windows[0])
    assert sum(batch.num_examples for batch in batches) == windows


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="weights and alpha"):
        build(DataConfig, {"paths": ["x"], "weights": [1.0], "alpha": 0.3})
    with pytest.raises(ConfigError, match="one per path"):
        build(DataConfig, {"paths": ["x", "y"], "weights": [1.0]})
    with pytest.raises(ConfigError, match="noise_density"):
        build(DataConfig, {"span_corruption": {"noise_density": 0.0}})
    with pytest.raises(ConfigError, match="Did you mean 'packing'"):
        build(DataConfig, {"packin": True})


def test_negative_data_seed_rejected():
    with pytest.raises(ConfigError, match="seed: must be 0 or more, got -1"):
        build(DataConfig, {"seed": -1}, prefix="data")


@pytest.mark.parametrize(("sentinels", "fix"), [(0, "train the tokenizer with sentinels"), (10, "set data.num_sentinels=10")])
def test_fewer_sentinels_rejected(tmp_path, sentinels, fix):
    prefix = tmp_path / "few"
    with IndexedDatasetWriter(prefix, 5000, num_sentinels=sentinels) as writer:
        writer.add_document(np.arange(3, 400))
    settings = {"paths": [str(prefix)], "inputs_length": 64}
    message = f"tokenized with {sentinels} sentinel tokens, but data.num_sentinels is 100.*{fix}"
    with pytest.raises(ConfigError, match=message):
        build_pretraining_batches(build(DataConfig, settings, prefix="data"), batch_size=2)

    # With data.num_sentinels lowered to the tokenizer's count, the same datasets give batches.
    if sentinels:
        config = build(DataConfig, {**settings, "num_sentinels": sentinels}, prefix="data")
        assert next(build_pretraining_batches(config, batch_size=2)).num_examples == 2
