"""Incremental decoders: feed one token per row, get the next-token logits, reorder rows for beams.

Dimensions: N rows (batch, or batch times beams), L encoder length, D d_model, V vocab.

Three implementations share the interface, so that the search code does not know which cache runs:
- `StaticCacheDecoder` (static_cache.py): preallocated keys and values, precomputed biases; the fast path.
- `DynamicCacheDecoder`: the model's own KVCache through `T5.decode`.
- `UncachedDecoder`: reruns `T5.decode` over the whole prefix at each step; the reference for tests.
"""

from __future__ import annotations

from typing import Protocol

import torch

from t5kit.generate.config import GenerationConfig
from t5kit.model import T5


class IncrementalDecoder(Protocol):
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append tokens [N] at the next position and return float32 logits [N, V] for the one after."""
        ...

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows `index` [N] of the state, as beam search does after each step."""
        ...


class DynamicCacheDecoder:
    """Decode through `T5.decode` with the model's KVCache, which grows by one position per step."""

    def __init__(self, model: T5, encoder_out: torch.Tensor, encoder_mask: torch.Tensor | None):
        self.model = model
        self.encoder_out = encoder_out
        self.encoder_mask = encoder_mask
        self.cache = model.new_cache()

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        logits = self.model.decode(tokens[:, None], self.encoder_out, self.encoder_mask, cache=self.cache)
        return logits[:, -1].float()

    def reorder(self, index: torch.Tensor) -> None:
        self.cache.reorder(index)
        self.encoder_out = self.encoder_out.index_select(0, index)
        if self.encoder_mask is not None:
            self.encoder_mask = self.encoder_mask.index_select(0, index)


class UncachedDecoder:
    """Decode the whole prefix again at every step, with no cache; slow, and the reference for tests."""

    def __init__(self, model: T5, encoder_out: torch.Tensor, encoder_mask: torch.Tensor | None):
        self.model = model
        self.encoder_out = encoder_out
        self.encoder_mask = encoder_mask
        self.prefix = encoder_out.new_zeros((encoder_out.shape[0], 0), dtype=torch.long)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.prefix = torch.cat([self.prefix, tokens[:, None]], dim=1)  # [N, t]
        logits = self.model.decode(self.prefix, self.encoder_out, self.encoder_mask)
        return logits[:, -1].float()

    def reorder(self, index: torch.Tensor) -> None:
        self.prefix = self.prefix.index_select(0, index)
        self.encoder_out = self.encoder_out.index_select(0, index)
        if self.encoder_mask is not None:
            self.encoder_mask = self.encoder_mask.index_select(0, index)


def make_decoder(
    model: T5, encoder_out: torch.Tensor, encoder_mask: torch.Tensor | None, config: GenerationConfig
) -> IncrementalDecoder:
    """Build the incremental decoder that `config.cache` names, for up to max_new_tokens steps."""
    if config.cache == "static":
        from t5kit.generate.static_cache import StaticCacheDecoder

        return StaticCacheDecoder(
            model,
            encoder_out,
            encoder_mask,
            config.max_new_tokens,
            compile=config.compile,
            copy_weights=config.copy_weights,
        )
    if config.cache == "dynamic":
        return DynamicCacheDecoder(model, encoder_out, encoder_mask)
    return UncachedDecoder(model, encoder_out, encoder_mask)
