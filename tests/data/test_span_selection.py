"""Span selection: answers are whole words found in the window, queries surround the answer."""

from __future__ import annotations

import numpy as np
import pytest

from t5kit.config.core import ConfigError, build
from t5kit.data.config import DataConfig, DenoiserConfig
from t5kit.data.indexed_dataset import IndexedDatasetWriter
from t5kit.data.loader import build_pretraining_batches
from t5kit.data.span_corruption import SpanCorruption, vocabulary_sentinels
from t5kit.data.span_selection import SpanSelection
from t5kit.data.ul2 import UL2Mixture

VOCAB = 1000
SENTINEL = vocabulary_sentinels(VOCAB)
# Ids below 500 start a word, ids from 500 continue one (like "▁the" and "s").
WORD_STARTS = np.arange(VOCAB) < 500


def words_window(rng: np.random.Generator, length: int) -> np.ndarray:
    """Return a window of random words: a word start, then 0 to 2 continuation pieces each."""
    tokens: list[int] = []
    while len(tokens) < length:
        tokens.append(int(rng.integers(3, 500)))
        tokens.extend(int(t) for t in rng.integers(500, 900, size=int(rng.integers(0, 3))))
    return np.asarray(tokens[:length], dtype=np.int64)


def split_inputs(example) -> tuple[list[int], list[int]]:
    inputs = example.inputs.tolist()
    separator = inputs.index(SENTINEL(1))
    assert inputs[-1] == 1
    return inputs[:separator], inputs[separator + 1 : -1]


def test_example_layout_exact():
    # No dropping and single-token words make the whole example predictable from the answer span.
    objective = SpanSelection(40, SENTINEL, query_length=6, max_answer_words=2, query_drop_rate=0.0)
    window = np.arange(10, 42, dtype=np.int64)
    rng = np.random.default_rng(3)
    example = objective(window, rng)
    query, context = split_inputs(example)
    assert context == window.tolist()
    answer = example.targets.tolist()
    assert answer[-1] == 1
    assert 1 <= len(answer) - 1 <= 2
    start = window.tolist().index(answer[0])
    end = start + len(answer) - 1
    assert window[start:end].tolist() == answer[:-1]
    expected_left = [t for t in query if t < start + 10]
    expected_right = [t for t in query if t >= end + 10 and t != SENTINEL(0)]
    assert len(expected_left) + len(expected_right) == 5
    assert query == expected_left + ([SENTINEL(0)] if SENTINEL(0) in query else []) + expected_right
    assert expected_left == list(range(start + 10 - len(expected_left), start + 10))
    assert expected_right == list(range(end + 10, end + 10 + len(expected_right)))


@pytest.mark.parametrize("seed", range(30))
def test_answers_whole_words_within_limits(seed):
    objective = SpanSelection(128, SENTINEL, word_starts=WORD_STARTS, max_answer_words=3, max_answer_tokens=6)
    rng = np.random.default_rng(seed)
    window = words_window(rng, objective.raw_length)
    example = objective(window, rng)
    answer = example.targets[:-1]
    assert 1 <= len(answer) <= 6
    assert len(example.inputs) <= objective.inputs_length
    assert len(example.targets) <= objective.targets_length
    # The answer starts a word, and the window token after it starts the next word (or ends the window).
    starts = [i for i in range(len(window) - len(answer) + 1) if window[i : i + len(answer)].tolist() == answer.tolist()]
    assert starts
    assert any(WORD_STARTS[window[i]] and (i + len(answer) == len(window) or WORD_STARTS[window[i + len(answer)]]) for i in starts)
    assert sum(WORD_STARTS[answer]) <= 3


def test_query_excludes_answer_tokens():
    # With unique tokens, the query's tokens come from around the answer, never from inside it.
    objective = SpanSelection(80, SENTINEL, query_length=10, max_answer_words=4, query_drop_rate=0.3)
    window = np.arange(100, 100 + objective.raw_length, dtype=np.int64)
    for seed in range(50):
        example = objective(window, np.random.default_rng(seed))
        query, _ = split_inputs(example)
        answer = set(example.targets[:-1].tolist())
        assert not answer & set(query)
        assert len(query) <= objective.query_length


def test_marker_on_half_of_queries():
    objective = SpanSelection(64, SENTINEL)
    window = np.arange(10, 10 + objective.raw_length, dtype=np.int64)
    marked = sum(SENTINEL(0) in objective(window, np.random.default_rng(seed)).inputs for seed in range(400))
    assert 160 < marked < 240


def test_answer_avoids_eos():
    objective = SpanSelection(48, SENTINEL, max_answer_words=1)
    window = np.ones(objective.raw_length, dtype=np.int64)
    window[7] = 42
    for seed in range(20):
        assert objective(window, np.random.default_rng(seed)).targets.tolist() == [42, 1]


def test_determinism_given_seed():
    objective = SpanSelection(64, SENTINEL, word_starts=WORD_STARTS)
    window = words_window(np.random.default_rng(0), objective.raw_length)
    first = objective(window, np.random.default_rng(9))
    second = objective(window, np.random.default_rng(9))
    assert np.array_equal(first.inputs, second.inputs)
    assert np.array_equal(first.targets, second.targets)


def test_bad_arguments_rejected():
    with pytest.raises(ValueError, match="inputs_length of at least"):
        SpanSelection(20, SENTINEL, query_length=16)
    with pytest.raises(ValueError, match="query_drop_rate"):
        SpanSelection(64, SENTINEL, query_drop_rate=1.0)
    with pytest.raises(ValueError, match="window of 1 to"):
        SpanSelection(64, SENTINEL)(np.arange(200), np.random.default_rng(0))
    with pytest.raises(ConfigError, match="query_length"):
        build(DenoiserConfig, {"kind": "select", "query_length": 1})


def test_mixture_with_span_corruption():
    denoisers = [DenoiserConfig(name="R", kind="span"), DenoiserConfig(name="Q", kind="select", rate=3.0)]
    mixture = UL2Mixture(96, SENTINEL, denoisers, word_starts=WORD_STARTS)
    span, select = mixture.objectives
    assert isinstance(span, SpanCorruption) and isinstance(select, SpanSelection)
    assert mixture.raw_length == span.raw_length
    assert mixture.targets_length == max(span.targets_length, select.targets_length)
    window = words_window(np.random.default_rng(1), mixture.raw_length)
    # Span corruption targets start with <extra_id_0>; span selection targets with a window token.
    selected = sum(mixture(window, np.random.default_rng(seed)).targets[0] != SENTINEL(0) for seed in range(200))
    assert 120 < selected < 180  # rates 1:3


def test_batches_with_tokenizer_word_starts(tmp_path, shared_data):
    from t5kit.tokenizer import T5Tokenizer

    tokenizer = T5Tokenizer(shared_data / "t5_tokenizer" / "spiece.model")
    prefix = tmp_path / "text"
    with IndexedDatasetWriter(prefix, tokenizer.vocab_size) as writer:
        writer.add_document(tokenizer.encode("The Eiffel Tower was built in 1889 by the company of Gustave Eiffel. " * 20))
    settings = {
        "paths": [str(prefix)],
        "inputs_length": 64,
        "objective": "ul2",
        "tokenizer": str(tokenizer.model_file),
        "ul2": {"denoisers": [{"name": "Q", "kind": "select"}]},
    }
    batch = next(build_pretraining_batches(build(DataConfig, settings, prefix="data"), batch_size=8))
    words = set("The Eiffel Tower was built in 1889 by the company of Gustave Eiffel.".split())
    for row in batch.labels:
        answer = tokenizer.decode([t for t in row.tolist() if t not in (-100, 1)])
        assert answer.split()
        assert set(answer.split()) <= words


def test_tokenizer_of_other_vocabulary_rejected(tmp_path, shared_data):
    prefix = tmp_path / "small"
    with IndexedDatasetWriter(prefix, 5000) as writer:
        writer.add_document(np.arange(3, 400))
    settings = {
        "paths": [str(prefix)],
        "inputs_length": 64,
        "objective": "ul2",
        "tokenizer": str(shared_data / "t5_tokenizer" / "spiece.model"),
    }
    with pytest.raises(ConfigError, match="data.tokenizer: .* has 32100 ids but the datasets were written with 5000"):
        build_pretraining_batches(build(DataConfig, settings, prefix="data"), batch_size=2)


def test_inputs_without_room_rejected():
    select = {"objective": "ul2", "ul2": {"denoisers": [{"name": "R"}, {"name": "Q", "kind": "select"}]}}
    with pytest.raises(ConfigError, match=r"inputs_length: 30 tokens leave 30 for denoiser 'Q' \(ul2.denoisers\[1\]\).*needs 36"):
        build(DataConfig, {**select, "inputs_length": 30}, prefix="data")
    build(DataConfig, {**select, "inputs_length": 36}, prefix="data")
    modes = {"objective": "ul2", "inputs_length": 64, "ul2": {"denoisers": [{"name": "S", "kind": "prefix", "mode_token_ids": list(range(3, 65))}]}}
    with pytest.raises(ConfigError, match="after its 62 mode tokens"):
        build(DataConfig, modes, prefix="data")


def test_mode_tokens_outside_vocabulary_rejected(tmp_path):
    prefix = tmp_path / "small"
    with IndexedDatasetWriter(prefix, 5000) as writer:
        writer.add_document(np.arange(3, 400))
    denoisers = [{"name": "R", "mode_token_ids": [99999]}]
    settings = {"paths": [str(prefix)], "inputs_length": 64, "objective": "ul2", "ul2": {"denoisers": denoisers}}
    with pytest.raises(ConfigError, match=r"mode_token_ids: \[99999\] are not ids .* use ids below 5000"):
        build_pretraining_batches(build(DataConfig, settings, prefix="data"), batch_size=2)
