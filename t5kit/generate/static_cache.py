"""The fast decode path: a preallocated key/value cache and biases computed once per generate call.

Dimensions: N rows, H heads, K d_kv, D d_model, L encoder length, T max decoder length, V vocab.

`T5.decode` with the model's KVCache rebuilds the causal mask and the relative position bias at every
step and grows the cache with torch.cat. Here the self-attention bias for every (query, key) position
pair, with the causal mask folded in, is computed once, and each step takes the row of its position.
Keys and values go into [N, H, T, K] buffers at the step's position, and attention runs over all T
slots, the future ones masked. Shapes stay fixed from step to step, so the step can be compiled
with torch.compile once per (model, N, T).

The step runs the model's norms and activation, and its projections through `DecoderWeights`
(decode_weights.py), in the order of `DecoderBlock.forward`. Tests check its logits against
`T5.decode`.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from t5kit.generate.config import GenerationError
from t5kit.generate.decode_weights import DecoderWeights, choose_layout, decoder_weights
from t5kit.model import T5
from t5kit.model.t5 import padding_bias

_MIN = torch.finfo(torch.float32).min


def self_attention_biases(model: T5, length: int, dtype: torch.dtype) -> list[torch.Tensor]:
    """Return the decoder's self-attention biases [1, H, T, T]: relative bias plus causal mask, per table."""
    positions = torch.arange(length, device=model.shared.weight.device)
    causal = torch.where(positions[None, :] <= positions[:, None], 0.0, _MIN)[None, None]  # [1, 1, T, T]
    if model.config.position_embedding != "relative":
        return [causal.to(dtype)]
    # Same sum and clamp as Decoder.forward, so the masked scores match the uncached path.
    return [(table(positions, positions) + causal).clamp(min=_MIN).to(dtype) for table in model.decoder.relative_bias]


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """Split [N, T, I] (or [N, I] for one position) into heads [N, H, T, K]."""
    if x.dim() == 2:
        x = x[:, None]
    return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def project_cross_attention(
    weights: DecoderWeights, encoder_out: torch.Tensor, heads: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Return each decoder layer's cross-attention keys and values [N, H, L, K]."""
    rows, length, _ = encoder_out.shape
    flat = encoder_out.reshape(rows * length, -1)  # [N * L, D]
    return [
        (
            _heads(layer.cross_k(flat).view(rows, length, -1), heads),
            _heads(layer.cross_v(flat).view(rows, length, -1), heads),
        )
        for layer in weights.layers
    ]


def device_memory(device: torch.device) -> int | None:
    """Return the free memory of a CUDA device, or the physical memory of the machine, in bytes.

    Returns None where the operating system does not report it.
    """
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if not hasattr(os, "sysconf"):
        return None
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_memory(model: T5, rows: int, length: int, device: torch.device) -> None:
    """Raise before allocating self-attention biases and caches that cannot fit in the device's memory.

    Relative-position models accept any length, and the [H, T, T] bias grows with its square: at
    100,000 tokens it takes 40 GB per head in fp32.
    """
    config = model.config
    element = model.shared.weight.element_size()
    tables = len(model.decoder.relative_bias) if config.position_embedding == "relative" else 1
    heads = config.num_heads if config.position_embedding == "relative" else 1
    biases = tables * heads * length * length * element
    caches = 2 * config.num_decoder_layers * rows * config.num_heads * length * config.d_kv * element
    available = device_memory(device)
    if available is not None and biases + caches > available:
        raise GenerationError(
            f"max_new_tokens {length} needs {(biases + caches) / 2**30:.1f} GiB for the decoder's biases and caches "
            f"(batch {rows}), more than the {available / 2**30:.1f} GiB of {device.type} memory; lower max_new_tokens"
        )


class StaticCacheDecoder:
    """Decode one position per step against preallocated caches; see the module docstring."""

    def __init__(
        self,
        model: T5,
        encoder_out: torch.Tensor,
        encoder_mask: torch.Tensor | None,
        max_length: int,
        compile: bool = False,
        copy_weights: bool = True,
    ):
        config = model.config
        if config.position_embedding == "absolute" and max_length > config.max_decoder_length:
            raise GenerationError(
                f"max_new_tokens {max_length} exceeds the model's max_decoder_length {config.max_decoder_length}; "
                "lower max_new_tokens"
            )
        _check_memory(model, encoder_out.shape[0], max_length, encoder_out.device)
        self.model = model
        self.max_length = max_length
        self.heads = config.num_heads
        self.weights = decoder_weights(model, choose_layout(model, encoder_out.shape[0], copy_weights, compile))
        dtype = model.shared.weight.dtype
        rows = encoder_out.shape[0]
        shape = (rows, config.num_heads, max_length, config.d_kv)
        layers = config.num_decoder_layers
        self.keys = [encoder_out.new_zeros(shape, dtype=dtype) for _ in range(layers)]
        self.values = [encoder_out.new_zeros(shape, dtype=dtype) for _ in range(layers)]
        self.cross = project_cross_attention(self.weights, encoder_out.to(dtype), config.num_heads)
        mask = padding_bias(encoder_mask, torch.float32)
        self.cross_bias = None if mask is None else mask.to(dtype)  # [N, 1, 1, L]
        self.self_biases = self_attention_biases(model, max_length, dtype)
        self.position = 0
        self._forward = self._step
        if compile:
            self._forward = torch.compile(self._step, fullgraph=True, dynamic=False)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.position >= self.max_length:
            raise GenerationError(f"the static cache is full: all {self.max_length} positions are used")
        position = torch.tensor([self.position], device=tokens.device)
        logits = self._forward(tokens, position)
        self.position += 1
        return logits

    def _attend(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias, scale) -> torch.Tensor:
        """Attend from queries [N, I] to keys and values [N, H, Tk, K]; return [N, I]."""
        out = F.scaled_dot_product_attention(_heads(query, self.heads), keys, values, attn_mask=bias, scale=scale)
        return out.reshape(query.shape)  # [N, H, 1, K] -> [N, I]

    def _step(self, tokens: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """Run the decoder for tokens [N] at `position` [1]; return float32 logits [N, V]."""
        model, decoder = self.model, self.model.decoder
        x = decoder.embed_tokens(tokens)  # [N, D]
        if model.config.position_embedding == "absolute":
            x = x + decoder.embed_positions(position)
        biases = [bias.index_select(2, position) for bias in self.self_biases]  # [1, H, 1, T]

        for i, (block, layer) in enumerate(zip(decoder.blocks, self.weights.layers)):
            # Self-attention: write this position's keys and values, attend over all slots.
            h = block.self_attn_norm(x)
            # Under autocast the projections come out in bf16; the buffers keep the model's dtype.
            self.keys[i].index_copy_(2, position, _heads(layer.self_k(h), self.heads).to(self.keys[i].dtype))
            self.values[i].index_copy_(2, position, _heads(layer.self_v(h), self.heads).to(self.values[i].dtype))
            scale = block.self_attn.scale
            out = self._attend(layer.self_q(h), self.keys[i], self.values[i], biases[i % len(biases)], scale)
            x = x + layer.self_o(out)

            # Cross-attention over the encoder output, projected once in __init__.
            h = block.cross_attn_norm(x)
            cross_keys, cross_values = self.cross[i]
            out = self._attend(layer.cross_q(h), cross_keys, cross_values, self.cross_bias, block.cross_attn.scale)
            x = x + layer.cross_o(out)

            h = block.ffn_norm(x)
            hidden = block.ffn.act(layer.ffn_in[0](h))
            if len(layer.ffn_in) == 2:
                hidden = hidden * layer.ffn_in[1](h)
            x = x + layer.ffn_out(hidden)

        return self._logits(decoder.final_norm(x)).float()

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Project final hidden states [N, D] onto the vocabulary, as T5.logits does."""
        if self.model.config.scale_decoder_output:
            hidden = hidden * self.model.config.d_model**-0.5
        logits = self.weights.lm_head(hidden)
        if self.model.lm_head_bias is not None:
            logits = logits + self.model.lm_head_bias
        return logits

    def reorder(self, index: torch.Tensor) -> None:
        # In place, so that a compiled step keeps writing into the same buffers.
        for buffers in (self.keys, self.values):
            for buffer in buffers:
                buffer.copy_(buffer.index_select(0, index))
        self.cross = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.cross]
        if self.cross_bias is not None:
            self.cross_bias = self.cross_bias.index_select(0, index)
