"""Norms, feed-forward networks and position encodings of the T5 family.

Dimensions: B batch, L encoder length, S decoder length, D d_model, H heads, K d_kv, F d_ff.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from t5kit.config.model import ModelConfig


class RMSNorm(nn.Module):
    """Root-mean-square norm without mean subtraction or bias, as T5 uses.

    NOTE: the variance is taken in fp32 even under bf16 autocast, and the result is cast back to the
    weight's dtype, because half-precision sums of squares lose accuracy over d_model terms.
    """

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        x = x.float() * torch.rsqrt(variance + self.eps)
        return self.weight * x.to(self.weight.dtype)


def make_norm(config: ModelConfig) -> nn.Module:
    """Return the config's norm: RMSNorm, or LayerNorm with a bias."""
    if config.norm == "rmsnorm":
        return RMSNorm(config.d_model, config.layer_norm_epsilon)
    return nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)


_ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}


class FeedForward(nn.Module):
    """The position-wise MLP: wo(act(wi(x))), or wo(act(wi_0(x)) * wi_1(x)) when gated."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.gated = config.gated_ffn
        if self.gated:
            self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=config.bias)
            self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=config.bias)
        else:
            self.wi = nn.Linear(config.d_model, config.d_ff, bias=config.bias)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=config.bias)
        self.act = _ACTIVATIONS[config.activation]
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            hidden = self.act(self.wi_0(x)) * self.wi_1(x)  # [B, T, F]
        else:
            hidden = self.act(self.wi(x))
        return self.wo(self.dropout(hidden))


def relative_position_bucket(
    relative_position: torch.Tensor, bidirectional: bool, num_buckets: int, max_distance: int
) -> torch.Tensor:
    """Map key-minus-query distances to bucket ids as Mesh TensorFlow T5 does.

    Half the buckets (or all, when causal) cover the direction's distances: exact ids for distances
    below num_buckets/2 of that half, then logarithmically wider buckets up to max_distance, beyond which
    every distance shares the last bucket. A causal stack maps keys after the query to bucket 0.
    """
    bucket = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        bucket = bucket + (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = -torch.clamp(relative_position, max=0)

    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # Distances from max_exact to max_distance fill the remaining buckets on a log scale.
    log_ratio = torch.log(distance.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (num_buckets - max_exact)).long()
    large = torch.clamp(large, max=num_buckets - 1)
    return bucket + torch.where(is_small, distance, large)


class RelativePositionBias(nn.Module):
    """A learned scalar per head and distance bucket, added to attention scores."""

    def __init__(self, config: ModelConfig, bidirectional: bool):
        super().__init__()
        self.bidirectional = bidirectional
        self.num_buckets = config.relative_attention_num_buckets
        self.max_distance = config.relative_attention_max_distance
        self.embedding = nn.Embedding(self.num_buckets, config.num_heads)

    def forward(self, query_positions: torch.Tensor, key_positions: torch.Tensor) -> torch.Tensor:
        """Return the bias [1, H, Tq, Tk] for 1-D tensors of query and key positions."""
        relative = key_positions[None, :] - query_positions[:, None]  # [Tq, Tk]
        buckets = relative_position_bucket(relative, self.bidirectional, self.num_buckets, self.max_distance)
        bias = self.embedding(buckets)  # [Tq, Tk, H]
        return bias.permute(2, 0, 1).unsqueeze(0)


def segment_positions(segment_ids: torch.Tensor) -> torch.Tensor:
    """Return each token's position within its packed segment, for [B, T] segment ids."""
    length = segment_ids.shape[1]
    index = torch.arange(length, device=segment_ids.device).expand_as(segment_ids)
    starts = torch.ones_like(segment_ids, dtype=torch.bool)
    starts[:, 1:] = segment_ids[:, 1:] != segment_ids[:, :-1]
    start_index = torch.where(starts, index, torch.zeros_like(index))
    start_index = torch.cummax(start_index, dim=1).values
    return index - start_index
