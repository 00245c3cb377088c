"""UL2's mixture of denoisers (Tay et al., 2022, "UL2: Unifying Language Learning Paradigms").

Each example draws one denoiser with the mixture's rates:
- R (regular): T5 span corruption with short spans and low density, such as mean 3 and 0.15.
- X (extreme): long spans or high density, such as mean 32 or density 0.5.
- S (sequential): prefix LM; a window is split at a random point into an input prefix and the
  continuation as target.

t5kit adds a fourth kind, span selection (`kind: select`, t5kit/data/span_selection.py), which
is not in UL2: a self-supervised extractive QA task that a mixture can put beside span corruption.

A denoiser's mode tokens (UL2's `[NLU]`, `[NLG]`, `[S2S]`, given here as token ids) are put in front
of its inputs. All denoisers share one input length. Each span denoiser takes the longest raw
window whose inputs fit, as t5's `random_spans_helper` computes it. The targets are padded to the
longest target length in the mixture.
"""

from __future__ import annotations

from collections.abc import Sequence
import numpy as np

from t5kit.data.config import DenoiserConfig, UL2Config
from t5kit.data.span_corruption import Example, SentinelId, SpanCorruption
from t5kit.data.span_selection import SpanSelection


class PrefixLM:
    """The S-denoiser: a window becomes its prefix (inputs) and the continuation (targets).

    The split point is uniform over the points that keep both parts non-empty and within
    `inputs_length` and `targets_length`, EOS included.
    """

    def __init__(self, inputs_length: int, targets_length: int, eos_id: int = 1):
        if inputs_length < 2 or targets_length < 2:
            raise ValueError(
                f"prefix LM needs inputs and targets lengths of at least 2, got {inputs_length} and {targets_length}"
            )
        self.inputs_length = inputs_length
        self.targets_length = targets_length
        self.eos_id = eos_id
        self.raw_length = inputs_length - 1

    def __call__(self, window: np.ndarray, rng: np.random.Generator) -> Example:
        length = len(window)
        if not 2 <= length <= self.raw_length:
            raise ValueError(f"prefix LM needs a window of 2 to {self.raw_length} tokens, got {length}")
        low = max(1, length - (self.targets_length - 1))
        high = min(length - 1, self.inputs_length - 1)
        split = int(rng.integers(low, high + 1))
        window = np.asarray(window, dtype=np.int64)
        eos = np.asarray([self.eos_id], dtype=np.int64)
        return Example(np.concatenate([window[:split], eos]), np.concatenate([window[split:], eos]))


class UL2Mixture:
    """A mixture of span, prefix-LM and span-selection denoisers sharing one input length.

    The default denoisers are `UL2Config()`'s: R (3, 0.15), X (32, 0.15), X (32, 0.5) and S, at
    equal rates and without mode tokens.
    """

    def __init__(
        self,
        inputs_length: int,
        sentinel_id: SentinelId,
        denoisers: Sequence[DenoiserConfig] | None = None,
        eos_id: int = 1,
        max_sentinels: int = 100,
        word_starts: Sequence[bool] | None = None,
    ):
        denoisers = UL2Config().denoisers if denoisers is None else list(denoisers)
        if not denoisers:
            raise ValueError("a UL2 mixture needs at least one denoiser")
        rates = np.asarray([denoiser.rate for denoiser in denoisers], dtype=np.float64)
        if np.any(rates < 0) or rates.sum() <= 0:
            raise ValueError(f"denoiser rates must be non-negative with a positive sum, got {rates.tolist()}")
        self.denoisers = denoisers
        self.rates = rates / rates.sum()
        self.inputs_length = inputs_length
        self.eos_id = eos_id

        # Span denoisers first, because the prefix LM's target length is the longest of theirs.
        self.objectives: list[SpanCorruption | PrefixLM | SpanSelection | None] = [None] * len(denoisers)
        for index, denoiser in enumerate(self.denoisers):
            if denoiser.kind == "span":
                self.objectives[index] = SpanCorruption(
                    self._budget(denoiser),
                    sentinel_id,
                    eos_id,
                    denoiser.noise_density,
                    denoiser.mean_noise_span_length,
                    max_sentinels=max_sentinels,
                )
            elif denoiser.kind == "select":
                self.objectives[index] = SpanSelection(
                    self._budget(denoiser),
                    sentinel_id,
                    eos_id,
                    denoiser.query_length,
                    denoiser.max_answer_words,
                    denoiser.max_answer_tokens,
                    denoiser.query_drop_rate,
                    word_starts,
                )
            elif denoiser.kind != "prefix":
                raise ValueError(
                    f"denoiser {denoiser.name!r}: kind must be 'span', 'prefix' or 'select', got {denoiser.kind!r}"
                )
        span_targets = [objective.targets_length for objective in self.objectives if isinstance(objective, SpanCorruption)]
        prefix_targets = max(span_targets, default=inputs_length)
        for index, denoiser in enumerate(self.denoisers):
            if denoiser.kind == "prefix":
                self.objectives[index] = PrefixLM(self._budget(denoiser), prefix_targets, eos_id)

        self.targets_length = max(objective.targets_length for objective in self.objectives)
        self.raw_length = max(objective.raw_length for objective in self.objectives)

    def _budget(self, denoiser: DenoiserConfig) -> int:
        budget = self.inputs_length - len(denoiser.mode_token_ids)
        if budget < 3:
            count = len(denoiser.mode_token_ids)
            raise ValueError(f"denoiser {denoiser.name!r}: {count} mode tokens leave no room for inputs")
        return budget

    def __call__(self, window: np.ndarray, rng: np.random.Generator) -> Example:
        """Draw a denoiser and apply it to the first tokens of `window` that it uses."""
        # NOTE: windows are cut for the denoiser with the longest raw length, so a denoiser that
        # needs fewer raw tokens leaves the rest of its window unused.
        index = int(rng.choice(len(self.denoisers), p=self.rates))
        objective = self.objectives[index]
        example = objective(window[: objective.raw_length], rng)
        mode = self.denoisers[index].mode_token_ids
        if mode:
            example = Example(np.concatenate([np.asarray(mode, dtype=np.int64), example.inputs]), example.targets)
        return example
