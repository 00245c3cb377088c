"""The pretraining data config: datasets, blend, objective, lengths, packing and seed.

Build it from a dict with `t5kit.config.core.build(DataConfig, data, prefix="data")`, which rejects
unknown keys and wrong types; `__post_init__` rejects impossible values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from t5kit.config.core import ConfigError
from t5kit.data.span_selection import min_inputs_length


@dataclass
class SpanCorruptionConfig:
    """T5 span corruption, or its NeMo variant with geometric span lengths."""

    noise_density: float = 0.15
    """Fraction of the raw window's tokens that become noise (targets)."""
    mean_noise_span_length: float = 3.0
    """Mean noise span length in tokens; fixes the span count of the random_spans mask."""
    noise_mask: Literal["random_spans", "geometric"] = "random_spans"
    """random_spans: T5's, with exact lengths. geometric: NeMo's capped geometric spans, padded."""
    geometric_p: float = 0.2
    """Success probability of the geometric span length distribution (geometric mask only)."""
    max_span_length: int = 10
    """Maximum noise span length of the geometric mask, in tokens."""

    def __post_init__(self) -> None:
        if not 0.0 < self.noise_density < 1.0:
            raise ConfigError(f"noise_density: must be in (0, 1), got {self.noise_density}")
        if self.mean_noise_span_length < 1.0:
            raise ConfigError(f"mean_noise_span_length: must be at least 1, got {self.mean_noise_span_length}")
        if not 0.0 < self.geometric_p <= 1.0:
            raise ConfigError(f"geometric_p: must be in (0, 1], got {self.geometric_p}")
        if self.max_span_length < 1:
            raise ConfigError(f"max_span_length: must be at least 1, got {self.max_span_length}")


@dataclass
class DenoiserConfig:
    """One denoiser of a mixture: span corruption, the prefix LM or span selection, with its mode tokens."""

    name: str = "R"
    """Label for logs, such as R, X or S."""
    kind: Literal["span", "prefix", "select"] = "span"
    """span: span corruption with the density and span length below. prefix: prefix LM.
    select: span selection (t5kit/data/span_selection.py), a self-supervised extractive QA task."""
    noise_density: float = 0.15
    """Fraction of tokens turned into noise (span kind only)."""
    mean_noise_span_length: float = 3.0
    """Mean noise span length in tokens (span kind only)."""
    query_length: int = 24
    """Maximum query length in tokens, its sentinel included (select kind only)."""
    max_answer_words: int = 4
    """Maximum answer length in words (select kind only), or in tokens when data.tokenizer is unset."""
    max_answer_tokens: int = 8
    """Maximum answer length in tokens (select kind only)."""
    query_drop_rate: float = 0.1
    """Fraction of the query's tokens dropped (select kind only)."""
    mode_token_ids: list[int] = field(default_factory=list)
    """Token ids put in front of the inputs, such as the ids of [NLU], [NLG] or [S2S]; empty for none."""
    rate: float = 1.0
    """Relative sampling rate of this denoiser in the mixture."""

    def __post_init__(self) -> None:
        if self.kind == "span" and not 0.0 < self.noise_density < 1.0:
            raise ConfigError(f"noise_density: must be in (0, 1), got {self.noise_density}")
        if self.kind == "span" and self.mean_noise_span_length < 1.0:
            raise ConfigError(f"mean_noise_span_length: must be at least 1, got {self.mean_noise_span_length}")
        if self.kind == "select" and self.query_length < 2:
            raise ConfigError(f"query_length: must be at least 2, got {self.query_length}")
        if self.kind == "select" and (self.max_answer_words < 1 or self.max_answer_tokens < 1):
            raise ConfigError(
                f"max_answer_words and max_answer_tokens: must be at least 1, got {self.max_answer_words} "
                f"and {self.max_answer_tokens}"
            )
        if self.kind == "select" and not 0.0 <= self.query_drop_rate < 1.0:
            raise ConfigError(f"query_drop_rate: must be in [0, 1), got {self.query_drop_rate}")
        if self.rate < 0:
            raise ConfigError(f"rate: must be non-negative, got {self.rate}")
        if any(token < 0 for token in self.mode_token_ids):
            raise ConfigError(f"mode_token_ids: token ids must be non-negative, got {self.mode_token_ids}")


def _default_denoisers() -> list[DenoiserConfig]:
    return [
        DenoiserConfig(name="R", kind="span", noise_density=0.15, mean_noise_span_length=3.0),
        DenoiserConfig(name="X", kind="span", noise_density=0.15, mean_noise_span_length=32.0),
        DenoiserConfig(name="X", kind="span", noise_density=0.5, mean_noise_span_length=32.0),
        DenoiserConfig(name="S", kind="prefix"),
    ]


@dataclass
class UL2Config:
    """UL2's mixture of denoisers."""

    denoisers: list[DenoiserConfig] = field(default_factory=_default_denoisers)
    """The denoisers and their rates; the default is R (3, 0.15), X (32, 0.15), X (32, 0.5) and S."""

    def __post_init__(self) -> None:
        if not self.denoisers:
            raise ConfigError("denoisers: give at least one denoiser")
        if sum(denoiser.rate for denoiser in self.denoisers) <= 0:
            raise ConfigError("denoisers: the rates must have a positive sum")


@dataclass
class DataConfig:
    """Pretraining data: the datasets, their blend, the objective, the lengths and packing."""

    paths: list[str] = field(default_factory=list)
    """Prefixes of the training indexed datasets (PREFIX.bin and PREFIX.idx), such as out/wiki_train."""
    validation_paths: list[str] = field(default_factory=list)
    """Prefixes of the validation indexed datasets; empty for no validation data."""
    weights: list[float] | None = None
    """Blend weight of each training dataset; None to weight by size ** alpha."""
    alpha: float | None = None
    """Exponent of the size-based blend (1.0 when neither weights nor alpha is set)."""
    objective: Literal["span_corruption", "ul2"] = "span_corruption"
    """Pretraining objective applied to each raw window."""
    span_corruption: SpanCorruptionConfig = field(default_factory=SpanCorruptionConfig)
    """Parameters of the span_corruption objective."""
    ul2: UL2Config = field(default_factory=UL2Config)
    """Parameters of the ul2 objective (a mixture of denoisers, span selection included)."""
    tokenizer: str | None = None
    """Path of the datasets' spiece.model (or its directory), which lets span selection draw whole-word answers."""
    inputs_length: int = 512
    """Encoder length in tokens; the raw window length follows from it and the objective."""
    targets_length: int | None = None
    """Decoder length in tokens; None uses the length the objective needs (114 for 512 at the defaults)."""
    windowing: Literal["concat", "document"] = "concat"
    """concat: join documents with EOS and cut the stream into windows. document: cut each document alone."""
    packing: bool = False
    """Pack several examples into one row with segment ids (useful with document windowing or UL2)."""
    seed: int = 1234
    """Seed of the shuffling, the blend and the noise masks."""
    num_sentinels: int = 100
    """Sentinel tokens the tokenizer has (<extra_id_0> is the id vocab_size - 1)."""
    eos_id: int = 1
    """End-of-sequence id, appended to inputs and targets and put between concatenated documents."""
    pad_id: int = 0
    """Padding id of the input and decoder input rows."""
    decoder_start_id: int = 0
    """First decoder input of every example."""

    def __post_init__(self) -> None:
        if self.weights is not None and self.alpha is not None:
            raise ConfigError("weights and alpha: set one of them, not both")
        if self.weights is not None and len(self.weights) != len(self.paths):
            raise ConfigError(
                f"weights: got {len(self.weights)} weights for {len(self.paths)} paths; give one per path"
            )
        if self.weights is not None and (any(w < 0 for w in self.weights) or sum(self.weights) <= 0):
            raise ConfigError(f"weights: must be non-negative with a positive sum, got {self.weights}")
        if self.alpha is not None and self.alpha < 0:
            raise ConfigError(f"alpha: must be non-negative, got {self.alpha}")
        if self.inputs_length < 4:
            raise ConfigError(f"inputs_length: must be at least 4, got {self.inputs_length}")
        if self.targets_length is not None and self.targets_length < 2:
            raise ConfigError(f"targets_length: must be at least 2, got {self.targets_length}")
        if self.num_sentinels < 1:
            raise ConfigError(f"num_sentinels: must be at least 1, got {self.num_sentinels}")
        if self.seed < 0:
            raise ConfigError(f"seed: must be 0 or more, got {self.seed}")
        if self.objective == "ul2":
            for index, denoiser in enumerate(self.ul2.denoisers):
                self._check_room(index, denoiser)

    def _check_room(self, index: int, denoiser: DenoiserConfig) -> None:
        """Reject an inputs_length that leaves a denoiser too few tokens after its mode tokens."""
        modes = len(denoiser.mode_token_ids)
        room = self.inputs_length - modes
        if denoiser.kind == "select":
            needed = min_inputs_length(denoiser.query_length, denoiser.max_answer_tokens)
            fix = f"raise inputs_length to {needed + modes} or lower ul2.denoisers[{index}].query_length"
        else:
            needed = 3
            fix = f"raise inputs_length to {needed + modes} or drop mode tokens"
        if room < needed:
            raise ConfigError(
                f"inputs_length: {self.inputs_length} tokens leave {room} for denoiser {denoiser.name!r} "
                f"(ul2.denoisers[{index}]) after its {modes} mode tokens, and it needs {needed}; {fix}"
            )
