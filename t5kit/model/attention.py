"""Multi-head attention with an additive bias, and the decoder's key/value cache.

Dimensions: B batch, H heads, K d_kv, D d_model, Tq query length, Tk key length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from t5kit.config.model import ModelConfig


@dataclass
class KVCache:
    """Keys and values of every decoder layer, grown by one step per generated token.

    Self-attention entries are [B, H, T, K] and grow along T; cross-attention entries are computed once
    from the encoder output and reused at every step.
    """

    self_keys: list[torch.Tensor | None] = field(default_factory=list)
    self_values: list[torch.Tensor | None] = field(default_factory=list)
    cross_keys: list[torch.Tensor | None] = field(default_factory=list)
    cross_values: list[torch.Tensor | None] = field(default_factory=list)

    @classmethod
    def empty(cls, num_layers: int) -> "KVCache":
        return cls(*([None] * num_layers for _ in range(4)))

    @property
    def length(self) -> int:
        """Return the number of decoder positions already cached."""
        first = self.self_keys[0] if self.self_keys else None
        return 0 if first is None else first.shape[2]

    def update_self(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's keys and values and return all of them so far."""
        if self.self_keys[layer] is not None:
            keys = torch.cat([self.self_keys[layer], keys], dim=2)
            values = torch.cat([self.self_values[layer], values], dim=2)
        self.self_keys[layer], self.self_values[layer] = keys, values
        return keys, values

    def reorder(self, index: torch.Tensor) -> None:
        """Select batch rows in place, as beam search does after each step."""
        for entries in (self.self_keys, self.self_values, self.cross_keys, self.cross_values):
            for i, tensor in enumerate(entries):
                if tensor is not None:
                    entries[i] = tensor.index_select(0, index)


class Attention(nn.Module):
    """Self- or cross-attention through scaled_dot_product_attention with an additive bias."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.d_kv = config.d_kv
        inner = config.inner_dim
        self.q = nn.Linear(config.d_model, inner, bias=config.bias)
        self.k = nn.Linear(config.d_model, inner, bias=config.bias)
        self.v = nn.Linear(config.d_model, inner, bias=config.bias)
        self.o = nn.Linear(inner, config.d_model, bias=config.bias)
        # NOTE: T5 does not divide scores by sqrt(d_kv); its init folds that factor into the query weights.
        self.scale = None if config.attention_scale else 1.0
        self.dropout = config.dropout_rate

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, -1, self.d_kv).transpose(1, 2)  # [B, H, T, K]

    def project_kv(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return keys and values [B, H, Tk, K] for a source sequence [B, Tk, D]."""
        return self.split_heads(self.k(source)), self.split_heads(self.v(source))

    def forward(
        self,
        x: torch.Tensor,
        bias: torch.Tensor | None,
        keys: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend from x [B, Tq, D]; without keys and values given, attend to x itself.

        `bias` is added to the scores and broadcasts to [B, H, Tq, Tk]: the position bias plus the
        padding, causal and segment masks as large negative numbers.
        """
        query = self.split_heads(self.q(x))
        if keys is None:
            keys, values = self.project_kv(x)
        if bias is not None:
            bias = bias.to(query.dtype)
        out = F.scaled_dot_product_attention(
            query,
            keys,
            values,
            attn_mask=bias,
            dropout_p=self.dropout if self.training else 0.0,
            scale=self.scale,
        )  # [B, H, Tq, K]
        batch, _, length, _ = out.shape
        return self.o(out.transpose(1, 2).reshape(batch, length, -1))
