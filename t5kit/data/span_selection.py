"""Span selection: a self-supervised extractive question-answering objective on raw text.

A short span of the window is the answer. The query is a stretch of text around the answer with
the answer taken out and some of its tokens dropped; the inputs are the query, a separator and the
whole window, and the target is the answer:

    window   The tower was built in 1889 by Eiffel 's company for the fair .
    answer   1889
    query    tower built in <extra_id_0> by Eiffel   (answer replaced by a sentinel, "was" dropped)
    inputs   tower built in <extra_id_0> by Eiffel <extra_id_1> The tower was built in 1889 by ... EOS
    targets  1889 EOS

To answer, the model has to find where the query matches the window and copy what the query lacks,
which is what extractive question answering asks of it. Span corruption does not ask for that:
its targets are text the inputs do not contain. The idea is close to recurring span selection
(Ram et al., 2021, "Few-Shot Question Answering by Pretraining Span Selection"), which pretrains
an encoder for extractive QA on raw text alone; there the model points at the span, here the
decoder writes it out.

With `word_starts` (`T5Tokenizer.word_starts()`), answers cover whole words, as SQuAD answers do.
Half of the queries mark the answer's place with the sentinel; the others just leave it out, as a
question does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from t5kit.data.span_corruption import Example, SentinelId


def min_inputs_length(query_length: int, max_answer_tokens: int) -> int:
    """Return the shortest inputs_length that fits the query, the separator, a window and EOS."""
    # The window contains the longest answer and two more tokens.
    return query_length + 1 + (max_answer_tokens + 2) + 1


class SpanSelection:
    """The span-selection objective for one input length: raw windows in, examples out.

    Inputs are at most `inputs_length` tokens (query, separator, window, EOS) and targets at most
    `max_answer_tokens + 1`; both vary in length and are padded.
    """

    def __init__(
        self,
        inputs_length: int,
        sentinel_id: SentinelId,
        eos_id: int = 1,
        query_length: int = 24,
        max_answer_words: int = 4,
        max_answer_tokens: int = 8,
        query_drop_rate: float = 0.1,
        word_starts: Sequence[bool] | np.ndarray | None = None,
    ):
        if query_length < 2:
            raise ValueError(f"query_length must be at least 2 (the sentinel and one token), got {query_length}")
        if max_answer_words < 1 or max_answer_tokens < 1:
            raise ValueError(
                f"max_answer_words and max_answer_tokens must be at least 1, got {max_answer_words} and {max_answer_tokens}"
            )
        if not 0.0 <= query_drop_rate < 1.0:
            raise ValueError(f"query_drop_rate must be in [0, 1), got {query_drop_rate}")
        self.inputs_length = inputs_length
        self.raw_length = inputs_length - query_length - 2  # the separator and EOS
        if inputs_length < min_inputs_length(query_length, max_answer_tokens):
            raise ValueError(
                f"inputs_length {inputs_length} leaves {self.raw_length} window tokens after a query of "
                f"{query_length}; use an inputs_length of at least {min_inputs_length(query_length, max_answer_tokens)}"
            )
        self.targets_length = max_answer_tokens + 1
        self.sentinel_id = sentinel_id
        self.eos_id = eos_id
        self.query_length = query_length
        self.max_answer_words = max_answer_words
        self.max_answer_tokens = max_answer_tokens
        self.query_drop_rate = query_drop_rate
        self.word_starts = None if word_starts is None else np.asarray(word_starts, dtype=bool)

    def _word_bounds(self, window: np.ndarray) -> np.ndarray:
        """Return the boundaries of the whole words of `window`: word i is [bounds[i], bounds[i + 1])."""
        if self.word_starts is not None:
            ids = np.minimum(window, len(self.word_starts) - 1)
            # A window may start or end inside a word, so only the stretches between two word
            # starts are known to be whole words.
            starts = np.flatnonzero(self.word_starts[ids])
            if len(starts) >= 2:
                return starts
        return np.arange(len(window) + 1)

    def answer_span(self, window: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
        """Draw the answer: [start, end) of 1 to `max_answer_words` whole words without EOS."""
        bounds = self._word_bounds(window)
        num_words = len(bounds) - 1
        for _ in range(8):
            words = int(rng.integers(1, self.max_answer_words + 1))
            first = int(rng.integers(0, max(1, num_words - words + 1)))
            last = min(first + words, num_words)
            start, end = int(bounds[first]), int(bounds[last])
            while end - start > self.max_answer_tokens and last > first + 1:
                last -= 1
                end = int(bounds[last])
            if end - start <= self.max_answer_tokens and not np.any(window[start:end] == self.eos_id):
                return start, end
        # The window has only long words or document ends, so fall back to one token that is not EOS.
        candidates = np.flatnonzero(window != self.eos_id)
        start = int(rng.choice(candidates)) if len(candidates) else 0
        return start, start + 1

    def __call__(self, window: np.ndarray, rng: np.random.Generator) -> Example:
        """Build one example from a raw window of at most `raw_length` tokens."""
        window = np.asarray(window, dtype=np.int64)
        if not 1 <= len(window) <= self.raw_length:
            raise ValueError(f"span selection needs a window of 1 to {self.raw_length} tokens, got {len(window)}")
        start, end = self.answer_span(window, rng)
        # The query is the text around the answer, with the budget split at random between the two sides.
        budget = self.query_length - 1
        left = min(int(rng.integers(0, budget + 1)), start)
        right = min(budget - left, len(window) - end)
        left = min(budget - right, start)
        before, after = window[start - left : start], window[end : end + right]
        keep_before = rng.random(len(before)) >= self.query_drop_rate
        keep_after = rng.random(len(after)) >= self.query_drop_rate
        marker = [self.sentinel_id(0)] if rng.random() < 0.5 else []
        query = np.concatenate([before[keep_before], np.asarray(marker, dtype=np.int64), after[keep_after]])
        inputs = np.concatenate([query, [self.sentinel_id(1)], window, [self.eos_id]])
        targets = np.concatenate([window[start:end], [self.eos_id]])
        return Example(inputs.astype(np.int64), targets.astype(np.int64))
