"""Span corruption: exact lengths, reconstruction, sentinel order, errors, determinism, NeMo variant."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from t5kit.data.span_corruption import (
    SpanCorruption,
    SpanCorruptionError,
    compute_input_and_target_lengths,
    corrupt,
    corrupted_lengths,
    geometric_noise_mask,
    geometric_span_lengths,
    noise_counts,
    random_spans_noise_mask,
    vocabulary_sentinels,
)

VOCAB_SIZE = 32100
EOS = 1
SENTINEL = vocabulary_sentinels(VOCAB_SIZE)


def span_runs(mask: np.ndarray) -> list[tuple[bool, int]]:
    """Return (is_noise, length) for each run of equal values in `mask`."""
    runs = []
    for value in mask:
        if runs and runs[-1][0] == bool(value):
            runs[-1] = (bool(value), runs[-1][1] + 1)
        else:
            runs.append((bool(value), 1))
    return runs


def reconstruct(inputs: np.ndarray, targets: np.ndarray, first_sentinel: int = VOCAB_SIZE - 1) -> list[int]:
    """Rebuild the raw window by putting each target span back in place of its sentinel."""
    assert inputs[-1] == EOS
    assert targets[-1] == EOS
    spans: dict[int, list[int]] = {}
    current = None
    for token in targets[:-1]:
        if token > first_sentinel - 100:
            current = int(token)
            spans[current] = []
        else:
            spans[current].append(int(token))
    output = []
    for token in inputs[:-1]:
        output.extend(spans[int(token)] if token > first_sentinel - 100 else [int(token)])
    return output


def window_of(length: int, seed: int = 0) -> np.ndarray:
    # Ids 3..31999: ordinary pieces, never EOS or a sentinel.
    return np.random.default_rng(seed).integers(3, 32000, size=length)


def test_lengths_568_give_512_and_114():
    assert compute_input_and_target_lengths(512, 0.15, 3.0) == (568, 114)
    assert corrupted_lengths(568, 0.15, 3.0) == (512, 114)
    assert noise_counts(568, 0.15, 3.0) == (85, 28)


def test_objective_lengths_default():
    objective = SpanCorruption(512, SENTINEL)
    example = objective(window_of(568), np.random.default_rng(0))
    assert objective.raw_length == 568
    assert objective.targets_length == 114
    assert len(example.inputs) == 512
    assert len(example.targets) == 114


@pytest.mark.parametrize("inputs_length", [3, 8, 64, 100, 512, 626])
@pytest.mark.parametrize("density, mean", [(0.15, 3.0), (0.5, 3.0), (0.01, 1.0), (0.3, 8.0), (0.5, 32.0)])
def test_raw_length_largest_fitting(inputs_length, density, mean):
    raw, targets = compute_input_and_target_lengths(inputs_length, density, mean)
    assert corrupted_lengths(raw, density, mean)[0] <= inputs_length
    assert corrupted_lengths(raw, density, mean)[1] == targets
    if density != 0.5:
        assert corrupted_lengths(raw + 1, density, mean)[0] > inputs_length


def test_density_half_keeps_targets_within_inputs():
    raw, targets = compute_input_and_target_lengths(512, 0.5, 3.0)
    inputs, _ = corrupted_lengths(raw, 0.5, 3.0)
    assert targets <= inputs


def test_float32_rounding_tie():
    # 190 * 0.15 is 28.5 in float64 (rounds to 28) but 28.500002 in float32, which t5 rounds to 29.
    assert noise_counts(190, 0.15, 1.0)[0] == 29


def check_example(length: int, density: float, mean: float, seed: int) -> None:
    window = window_of(length, seed)
    mask = random_spans_noise_mask(length, np.random.default_rng(seed), density, mean)
    noise, spans = noise_counts(length, density, mean)
    runs = span_runs(mask)
    assert len(mask) == length
    assert int(mask.sum()) == noise
    assert runs[0][0] is False
    assert runs[-1][0] is True
    assert sum(1 for is_noise, _ in runs if is_noise) == spans
    assert 1 <= noise <= length - 1

    example = corrupt(window, mask, SENTINEL, EOS)
    assert (len(example.inputs), len(example.targets)) == corrupted_lengths(length, density, mean)
    assert reconstruct(example.inputs, example.targets) == window.tolist()
    sentinels_in = [int(t) for t in example.inputs if t >= VOCAB_SIZE - 100]
    sentinels_out = [int(t) for t in example.targets if t >= VOCAB_SIZE - 100]
    assert sentinels_in == [VOCAB_SIZE - 1 - i for i in range(spans)]
    assert sentinels_out == sentinels_in


@settings(max_examples=300, deadline=None)
@given(
    length=st.integers(2, 1500),
    density=st.floats(0.001, 0.5),
    mean=st.floats(1.0, 12.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_lengths_property_sweep(length, density, mean, seed):
    assume(noise_counts(length, density, mean)[1] <= 100)
    check_example(length, density, mean, seed)


@pytest.mark.parametrize("length", range(2, 11))
@pytest.mark.parametrize("density", [0.001, 0.15, 0.49, 0.5])
@pytest.mark.parametrize("mean", [1.0, 3.0])
def test_short_windows(length, density, mean):
    for seed in range(5):
        check_example(length, density, mean, seed)


def test_window_of_one_token_rejected():
    with pytest.raises(SpanCorruptionError, match="at least 2"):
        noise_counts(1, 0.15, 3.0)


def test_example_layout_exact():
    tokens = np.arange(10, 18)
    mask = np.array([0, 0, 1, 1, 0, 0, 0, 1], dtype=bool)
    example = corrupt(tokens, mask, SENTINEL, EOS)
    assert example.inputs.tolist() == [10, 11, 32099, 14, 15, 16, 32098, 1]
    assert example.targets.tolist() == [32099, 12, 13, 32098, 17, 1]


def test_custom_sentinel_function():
    tokens = np.arange(10, 18)
    mask = np.array([0, 1, 0, 1, 0, 1, 0, 1], dtype=bool)
    example = corrupt(tokens, mask, lambda i: 500 + i, EOS)
    assert example.inputs.tolist() == [10, 500, 12, 501, 14, 502, 16, 503, 1]


def test_too_many_sentinels_objective():
    with pytest.raises(SpanCorruptionError, match="sentinels"):
        SpanCorruption(2000, SENTINEL, mean_noise_span_length=3.0)


def test_too_many_sentinels_window():
    mask = np.tile([False, True], 101)
    with pytest.raises(SpanCorruptionError, match="101 noise spans"):
        corrupt(np.arange(202) + 3, mask, SENTINEL, EOS, max_sentinels=100)


def test_determinism_given_seed():
    objective = SpanCorruption(512, SENTINEL)
    window = window_of(568)
    first = objective(window, np.random.default_rng(7))
    second = objective(window, np.random.default_rng(7))
    other = objective(window, np.random.default_rng(8))
    assert np.array_equal(first.inputs, second.inputs)
    assert np.array_equal(first.targets, second.targets)
    assert not np.array_equal(first.inputs, other.inputs)


def test_masks_equally_likely():
    # Length 5, density 0.4, mean 1: 2 noise spans of 1, non-noise 3 split as (1, 2) or (2, 1).
    rng = np.random.default_rng(0)
    seen = {tuple(random_spans_noise_mask(5, rng, 0.4, 1.0).astype(int)) for _ in range(200)}
    assert seen == {(0, 1, 0, 0, 1), (0, 0, 1, 0, 1)}


def test_geometric_spans_capped_and_exact():
    rng = np.random.default_rng(0)
    lengths = np.concatenate([geometric_span_lengths(85, rng) for _ in range(500)])
    assert lengths.max() == 10
    assert lengths.min() >= 1
    for _ in range(50):
        assert geometric_span_lengths(85, rng).sum() == 85


def test_geometric_mean_span_length():
    # E[min(Geometric(0.2), 10)] = (1 - 0.8**10) / 0.2 = 4.463; the cut last span lowers it a little.
    rng = np.random.default_rng(0)
    lengths = geometric_span_lengths(200_000, rng)
    assert abs(lengths.mean() - (1 - 0.8**10) / 0.2) < 0.05


@pytest.mark.parametrize("length", [2, 3, 5, 10, 50, 511])
def test_geometric_mask_layout(length):
    rng = np.random.default_rng(length)
    for _ in range(20):
        mask = geometric_noise_mask(length, rng, 0.15)
        runs = span_runs(mask)
        assert int(mask.sum()) == noise_counts(length, 0.15, 1.0)[0]
        assert runs[0][0] is False
        assert runs[-1][0] is True
        if length >= 50:
            assert max(n for is_noise, n in runs if is_noise) <= 10


def test_geometric_objective_fits_lengths():
    objective = SpanCorruption(512, SENTINEL, noise_mask="geometric")
    rng = np.random.default_rng(0)
    for seed in range(20):
        window = window_of(objective.raw_length, seed)
        example = objective(window, rng)
        assert len(example.inputs) <= objective.inputs_length
        assert len(example.targets) <= objective.targets_length
        assert reconstruct(example.inputs, example.targets) == window.tolist()
