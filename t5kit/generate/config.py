"""Decoding settings: the search strategy, its limits and the decoder cache to use."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch

from t5kit.config.core import ConfigError
from t5kit.config.model import ModelConfig
from t5kit.errors import T5kitError


class GenerationError(T5kitError, ValueError):
    """Inputs that generation cannot run on: missing or mismatched tensors, lengths past a model limit."""


@dataclass
class GenerationConfig:
    """Settings of one `t5kit.generate.generate` call."""

    max_new_tokens: int = 20
    """Maximum tokens to generate per sequence, the EOS token included."""
    min_new_tokens: int = 0
    """EOS and stop ids are blocked until this many tokens have been generated (as transformers counts)."""
    num_beams: int = 1
    """Beams of beam search; 1 means greedy decoding or sampling."""
    length_penalty: float = 1.0
    """Beam search ranks finished beams by log-probability / length**length_penalty."""
    early_stopping: bool | Literal["never"] = False
    """Beam search stop rule, as in transformers. True stops once num_beams beams are finished. False
    stops when no running beam can beat the finished ones at the current length. "never" also
    considers max_new_tokens when length_penalty > 0."""
    do_sample: bool = False
    """Sample each token from the (warped) distribution instead of taking the most likely one."""
    temperature: float = 1.0
    """Divide logits by this before sampling."""
    top_k: int = 0
    """Sample only among the k most likely tokens; 0 turns the filter off."""
    top_p: float = 1.0
    """Sample only among the most likely tokens whose probabilities sum to top_p; 1.0 turns it off."""
    seed: int | None = None
    """Seed of a private random generator for sampling; None draws from torch's global generator."""
    eos_token_id: int | None = None
    """End-of-sequence id; None takes the model config's."""
    stop_token_ids: list[int] = field(default_factory=list)
    """More ids that end a sequence like EOS (kept in the output)."""
    pad_token_id: int | None = None
    """Id written after a sequence has ended; None takes the model config's."""
    decoder_start_token_id: int | None = None
    """First decoder input; None takes the model config's."""
    cache: Literal["static", "dynamic", "none"] = "static"
    """Decoder cache. "static" preallocates keys and values and precomputes the position bias (fastest).
    "dynamic" uses the model's own growing KVCache. "none" reruns the whole prefix at each step."""
    compile: bool = False
    """torch.compile the static-cache decode step, once per model, row count and max_new_tokens.
    NOTE: torch keeps 8 compiled variants of the step (torch._dynamo.config.recompile_limit in
    torch 2.13); calls with further shapes run the step uncompiled."""
    copy_weights: bool = True
    """Static cache only: decode with cached copies of the decoder projections and LM head in a layout
    for matrix-vector products (oneDNN-packed on CPU). They run faster at batch 1 but take as much
    memory again as those weights. False decodes with views of the model's weights."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens: must be at least 1, got {self.max_new_tokens}")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ConfigError(
                f"min_new_tokens: must be in [0, max_new_tokens={self.max_new_tokens}], got {self.min_new_tokens}"
            )
        if self.num_beams < 1:
            raise ConfigError(f"num_beams: must be at least 1, got {self.num_beams}")
        if self.num_beams > 1 and self.do_sample:
            raise ConfigError("do_sample: beam sampling is not supported; set num_beams=1 or do_sample=false")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ConfigError(f"temperature: must be a positive finite number, got {self.temperature}")
        if not math.isfinite(self.length_penalty):
            raise ConfigError(f"length_penalty: must be a finite number, got {self.length_penalty}")
        if self.top_k < 0:
            raise ConfigError(f"top_k: must be 0 (off) or positive, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p: must be in (0, 1], got {self.top_p}")
        if self.early_stopping not in (True, False, "never"):
            raise ConfigError(f"early_stopping: expected true, false or 'never', got {self.early_stopping!r}")
        if self.compile and self.cache != "static":
            raise ConfigError(f"compile: needs cache='static', got cache={self.cache!r}")
        for name in ("eos_token_id", "pad_token_id", "decoder_start_token_id"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name}: must be a token id >= 0, got {value}")
        if any(token < 0 for token in self.stop_token_ids):
            raise ConfigError(f"stop_token_ids: must be token ids >= 0, got {self.stop_token_ids}")


@dataclass
class SpecialIds:
    """Start, padding and stop ids of one generate call, resolved against the model config."""

    start: int
    """First decoder input."""
    pad: int
    """Id written after a sequence has stopped."""
    stop: torch.Tensor
    """Ids that end a sequence [S]: EOS plus the extra stop ids."""


def resolve_ids(config: GenerationConfig, model_config: ModelConfig, device: torch.device) -> SpecialIds:
    """Fill the ids that `config` leaves as None from the model config, and check them against the vocabulary."""

    def pick(value: int | None, default: int) -> int:
        return default if value is None else value

    eos = pick(config.eos_token_id, model_config.eos_token_id)
    ids = SpecialIds(
        start=pick(config.decoder_start_token_id, model_config.decoder_start_token_id),
        pad=pick(config.pad_token_id, model_config.pad_token_id),
        stop=torch.tensor(sorted({eos, *config.stop_token_ids}), dtype=torch.long, device=device),
    )
    largest = max(ids.start, ids.pad, int(ids.stop.max()))
    if largest >= model_config.vocab_size:
        raise GenerationError(
            f"token id {largest} in the generation config is outside the model's vocabulary of {model_config.vocab_size}"
        )
    return ids
