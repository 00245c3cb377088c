"""Span corruption, the T5 pretraining objective, written in numpy.

A raw window of tokens is split into alternating non-noise and noise spans, starting with non-noise
and ending with noise. The inputs keep the non-noise spans and replace each noise span by one
sentinel. The targets list each noise span after the sentinel that replaced it:

    raw      a b c d e f g h
    mask     0 0 1 1 0 0 0 1
    inputs   a b <extra_id_0> e f g <extra_id_1> EOS
    targets  <extra_id_0> c d <extra_id_1> h EOS

Sentinel i is `<extra_id_i>`, id `vocab_size - 1 - i` in the T5 vocabularies. The counts follow
`random_spans_noise_mask` in t5/data/preprocessors.py of google-research/text-to-text-transfer-transformer:

    num_noise_tokens = round(length * noise_density), clamped to [1, length - 1]
    num_noise_spans  = round(num_noise_tokens / mean_noise_span_length), at least 1

(t5kit also caps the span count at the non-noise token count, which only binds at densities above
0.5 with mean span lengths near 1, where t5 would build empty non-noise spans.)

so the input and target lengths depend only on the window length, never on the random draw.
`compute_input_and_target_lengths` inverts them: 568 raw tokens give 512 inputs and 114 targets at
density 0.15 and mean span length 3.

The products use float32 and round half to even, as `tf.round` does on float32 in t5, so the
counts match the TensorFlow reference near ties: 190 * 0.15 gives 29 noise tokens, not 28.

`geometric_noise_mask` is the NeMo/Megatron-LM variant: span lengths drawn from a geometric
distribution (p = 0.2) capped at 10 tokens. Its span count is random, so its inputs and targets
vary in length and are padded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from t5kit.errors import T5kitError

SentinelId = Callable[[int], int]


class SpanCorruptionError(T5kitError):
    """A window that cannot be corrupted: too short, or needing more sentinels than exist."""


def vocabulary_sentinels(vocab_size: int) -> SentinelId:
    """Return the T5 sentinel function: `<extra_id_i>` has id `vocab_size - 1 - i`."""
    return lambda index: vocab_size - 1 - index


def _check_density(noise_density: float, mean_noise_span_length: float) -> None:
    if not 0.0 < noise_density < 1.0:
        raise ValueError(f"noise_density must be in (0, 1), got {noise_density}")
    if mean_noise_span_length < 1.0:
        raise ValueError(f"mean_noise_span_length must be at least 1, got {mean_noise_span_length}")


def num_noise_tokens(length: int, noise_density: float) -> int:
    """Return round(length * density) in float32, clamped to [1, length - 1]."""
    product = np.float32(length) * np.float32(noise_density)
    return int(min(max(int(np.round(product)), 1), length - 1))


def noise_counts(length: int, noise_density: float, mean_noise_span_length: float) -> tuple[int, int]:
    """Return (noise tokens, noise spans) for a raw window of `length` tokens."""
    if length < 2:
        raise SpanCorruptionError(f"a window of {length} tokens is too short: span corruption needs at least 2")
    _check_density(noise_density, mean_noise_span_length)
    noise = num_noise_tokens(length, noise_density)
    spans = int(np.round(np.float32(noise) / np.float32(mean_noise_span_length)))
    # One non-noise span precedes each noise span, so there are at most `length - noise` of them.
    return noise, min(max(spans, 1), length - noise)


def corrupted_lengths(length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0) -> tuple[int, int]:
    """Return (inputs length, targets length), each with its EOS, for a raw window of `length`."""
    noise, spans = noise_counts(length, noise_density, mean_noise_span_length)
    return length - noise + spans + 1, noise + spans + 1


def compute_input_and_target_lengths(
    inputs_length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0
) -> tuple[int, int]:
    """Return (raw window length, targets length) for the largest window whose inputs fit.

    Like t5's `random_spans_helper`, at density 0.5 the window loses one token when that keeps
    the targets from being longer than the inputs. Inputs and targets include EOS.
    """
    _check_density(noise_density, mean_noise_span_length)
    if corrupted_lengths(2, noise_density, mean_noise_span_length)[0] > inputs_length:
        raise SpanCorruptionError(f"inputs_length {inputs_length} is too short for span corruption; use at least 3")
    # Inputs never exceed raw length + 1 and never shrink as the raw length grows, so the search
    # can start at inputs_length - 1 and stops within about inputs_length / (1 - density) steps.
    length = max(2, inputs_length - 1)
    while corrupted_lengths(length + 1, noise_density, mean_noise_span_length)[0] <= inputs_length:
        length += 1
    inputs, targets = corrupted_lengths(length, noise_density, mean_noise_span_length)
    if noise_density == 0.5 and targets > inputs and length > 2:
        length -= 1
        targets = corrupted_lengths(length, noise_density, mean_noise_span_length)[1]
    return length, targets


def _random_segmentation(num_items: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """Split `num_items` into `num_segments` positive lengths, every split equally likely."""
    # Choose num_segments - 1 of the num_items - 1 gaps between items as segment starts.
    is_start = np.zeros(num_items, dtype=np.int64)
    is_start[1 + rng.permutation(num_items - 1)[: num_segments - 1]] = 1
    return np.bincount(np.cumsum(is_start), minlength=num_segments)


def _interleave(nonnoise_lengths: np.ndarray, noise_lengths: np.ndarray) -> np.ndarray:
    """Return a bool mask of alternating non-noise and noise spans, starting with non-noise."""
    lengths = np.stack([nonnoise_lengths, noise_lengths], axis=1).reshape(-1)
    is_noise = np.tile([False, True], len(noise_lengths))
    return np.repeat(is_noise, lengths)


def random_spans_noise_mask(
    length: int, rng: np.random.Generator, noise_density: float = 0.15, mean_noise_span_length: float = 3.0
) -> np.ndarray:
    """Return a bool mask [length] of noise spans, with T5's fixed noise token and span counts."""
    noise, spans = noise_counts(length, noise_density, mean_noise_span_length)
    noise_lengths = _random_segmentation(noise, spans, rng)
    nonnoise_lengths = _random_segmentation(length - noise, spans, rng)
    return _interleave(nonnoise_lengths, noise_lengths)


def geometric_span_lengths(num_noise: int, rng: np.random.Generator, p: float = 0.2, max_span: int = 10) -> np.ndarray:
    """Draw span lengths from min(Geometric(p), max_span) until they add up to `num_noise`.

    The last span is cut so the total is exact.
    """
    lengths: list[int] = []
    total = 0
    while total < num_noise:
        span = min(int(rng.geometric(p)), max_span, num_noise - total)
        lengths.append(span)
        total += span
    return np.asarray(lengths, dtype=np.int64)


def geometric_noise_mask(
    length: int, rng: np.random.Generator, noise_density: float = 0.15, p: float = 0.2, max_span: int = 10
) -> np.ndarray:
    """Return a bool mask [length] whose noise spans have capped geometric lengths (NeMo style).

    The noise token count is T5's; the spans are placed between random non-noise spans.
    """
    noise = noise_counts(length, noise_density, 1.0)[0]
    noise_lengths = geometric_span_lengths(noise, rng, p, max_span)
    nonnoise = length - noise
    if len(noise_lengths) > nonnoise:
        # NOTE: only windows of a few tokens get here. Merging the surplus spans into the last one
        # keeps a non-noise span before every noise span, but that last span may exceed max_span.
        noise_lengths = np.append(noise_lengths[: nonnoise - 1], noise_lengths[nonnoise - 1 :].sum())
    nonnoise_lengths = _random_segmentation(nonnoise, len(noise_lengths), rng)
    return _interleave(nonnoise_lengths, noise_lengths)


def spans_to_sentinels(tokens: np.ndarray, mask: np.ndarray, sentinel_id: SentinelId) -> np.ndarray:
    """Replace each run of True in `mask` with the next sentinel and drop the rest of the run."""
    previous = np.concatenate([[False], mask[:-1]])
    first = mask & ~previous
    sentinels = np.asarray([sentinel_id(i) for i in range(int(first.sum()))], dtype=np.int64)
    output = tokens.astype(np.int64, copy=True)
    output[first] = sentinels
    return output[~(mask & previous)]


@dataclass(frozen=True)
class Example:
    """One encoder-decoder example: token ids of the inputs and targets, each ending in EOS."""

    inputs: np.ndarray
    targets: np.ndarray


def corrupt(
    tokens: np.ndarray, mask: np.ndarray, sentinel_id: SentinelId, eos_id: int, max_sentinels: int = 100
) -> Example:
    """Build inputs and targets from a raw window and its noise mask (noise spans -> sentinels)."""
    mask = np.asarray(mask, dtype=bool)
    num_spans = int(np.count_nonzero(mask & ~np.concatenate([[False], mask[:-1]])))
    if num_spans > max_sentinels:
        raise SpanCorruptionError(
            f"a window of {len(tokens)} tokens has {num_spans} noise spans, but the tokenizer has only "
            f"{max_sentinels} sentinels; use a shorter input length, a lower noise density or a "
            "longer mean noise span"
        )
    tokens = np.asarray(tokens, dtype=np.int64)
    eos = np.asarray([eos_id], dtype=np.int64)
    inputs = np.concatenate([spans_to_sentinels(tokens, mask, sentinel_id), eos])
    targets = np.concatenate([spans_to_sentinels(tokens, ~mask, sentinel_id), eos])
    return Example(inputs, targets)


class SpanCorruption:
    """The span-corruption objective for one input length: raw windows in, examples out.

    `noise_mask="random_spans"` is T5's (exact lengths); `"geometric"` is NeMo's, whose examples
    are at most `inputs_length` and `targets_length` long and get padded.
    """

    def __init__(
        self,
        inputs_length: int,
        sentinel_id: SentinelId,
        eos_id: int = 1,
        noise_density: float = 0.15,
        mean_noise_span_length: float = 3.0,
        noise_mask: str = "random_spans",
        geometric_p: float = 0.2,
        max_span_length: int = 10,
        max_sentinels: int = 100,
    ):
        if noise_mask not in ("random_spans", "geometric"):
            raise ValueError(f"noise_mask must be 'random_spans' or 'geometric', got {noise_mask!r}")
        _check_density(noise_density, mean_noise_span_length)
        self.sentinel_id = sentinel_id
        self.eos_id = eos_id
        self.noise_density = noise_density
        self.mean_noise_span_length = mean_noise_span_length
        self.noise_mask = noise_mask
        self.geometric_p = geometric_p
        self.max_span_length = max_span_length
        self.max_sentinels = max_sentinels
        self.inputs_length = inputs_length
        if noise_mask == "geometric":
            # Every span adds at most as many sentinels as it removes tokens, so inputs <= raw + 1.
            self.raw_length = inputs_length - 1
            noise = noise_counts(self.raw_length, noise_density, 1.0)[0]
            self.targets_length = noise + min(noise, self.raw_length - noise) + 1
            return

        self.raw_length, self.targets_length = compute_input_and_target_lengths(
            inputs_length, noise_density, mean_noise_span_length
        )
        num_spans = noise_counts(self.raw_length, noise_density, mean_noise_span_length)[1]
        if num_spans > max_sentinels:
            raise SpanCorruptionError(
                f"inputs_length {inputs_length} needs {num_spans} noise spans, but the tokenizer has only "
                f"{max_sentinels} sentinels; use a shorter input length or a longer mean noise span"
            )

    def mask(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """Draw a noise mask [length] for a window of `length` tokens."""
        if self.noise_mask == "geometric":
            return geometric_noise_mask(length, rng, self.noise_density, self.geometric_p, self.max_span_length)
        return random_spans_noise_mask(length, rng, self.noise_density, self.mean_noise_span_length)

    def __call__(self, window: np.ndarray, rng: np.random.Generator) -> Example:
        """Corrupt a raw window of at most `raw_length` tokens."""
        if len(window) > self.raw_length:
            raise ValueError(f"window of {len(window)} tokens is longer than raw_length {self.raw_length}")
        return corrupt(window, self.mask(len(window), rng), self.sentinel_id, self.eos_id, self.max_sentinels)
