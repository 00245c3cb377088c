"""The T5 encoder-decoder for every family: T5 v1.0, v1.1, mT5 and NeMo-style T5.

Dimensions: B batch, L encoder length, S decoder length, D d_model, H heads, K d_kv, F d_ff, V vocab.

Every block is pre-norm: x + dropout(sublayer(norm(x))). Masks and the position bias are combined
into one additive bias per stack, computed once and shared by all its layers (T5 computes the
relative bias in the first layer and reuses it). Model code contains no device moves or collectives:
parallelism, compilation and precision are applied from outside.
"""

from __future__ import annotations

import torch
from torch import nn

from t5kit.config.model import ModelConfig
from t5kit.errors import T5kitError
from t5kit.model.attention import Attention, KVCache
from t5kit.model.layers import FeedForward, RelativePositionBias, make_norm, segment_positions


class SequenceTooLongError(T5kitError, ValueError):
    """An input longer than the model's absolute position table."""


class EncoderBlock(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.self_attn_norm = make_norm(config)
        self.self_attn = Attention(config)
        self.ffn_norm = make_norm(config)
        self.ffn = FeedForward(config)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = x + self.dropout(self.self_attn(self.self_attn_norm(x), bias))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class DecoderBlock(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.self_attn_norm = make_norm(config)
        self.self_attn = Attention(config)
        self.cross_attn_norm = make_norm(config)
        self.cross_attn = Attention(config)
        self.ffn_norm = make_norm(config)
        self.ffn = FeedForward(config)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(
        self,
        x: torch.Tensor,
        self_bias: torch.Tensor | None,
        encoder_out: torch.Tensor | None,
        cross_bias: torch.Tensor | None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        # Self-attention; with a cache, this step's keys and values are appended to the earlier ones.
        h = self.self_attn_norm(x)
        keys = values = None
        if cache is not None:
            keys, values = cache.update_self(layer, *self.self_attn.project_kv(h))
        x = x + self.dropout(self.self_attn(h, self_bias, keys, values))

        # Cross-attention; its keys and values come from the encoder output, once per sequence.
        if cache is not None and cache.cross_keys[layer] is not None:
            keys, values = cache.cross_keys[layer], cache.cross_values[layer]
        else:
            keys, values = self.cross_attn.project_kv(encoder_out)
            if cache is not None:
                cache.cross_keys[layer], cache.cross_values[layer] = keys, values
        x = x + self.dropout(self.cross_attn(self.cross_attn_norm(x), cross_bias, keys, values))

        return x + self.dropout(self.ffn(self.ffn_norm(x)))


def padding_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Turn a [B, Tk] mask of 1 (keep) and 0 (pad) into an additive bias [B, 1, 1, Tk]."""
    if mask is None:
        return None
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def segment_bias(query_segments: torch.Tensor, key_segments: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Return a bias [B, 1, Tq, Tk] that blocks attention between different packed segments."""
    same = query_segments[:, :, None] == key_segments[:, None, :]
    return torch.where(same, 0.0, torch.finfo(dtype).min).to(dtype)[:, None]


def _add(*biases: torch.Tensor | None) -> torch.Tensor | None:
    present = [b for b in biases if b is not None]
    if not present:
        return None
    total = present[0]
    for bias in present[1:]:
        total = total + bias
    # Sums of several large negative masks can reach -inf; clamp so softmax stays finite.
    return total.clamp(min=torch.finfo(total.dtype).min)


class Encoder(nn.Module):
    def __init__(self, config: ModelConfig, embed_tokens: nn.Embedding):
        super().__init__()
        self.config = config
        self.embed_tokens = embed_tokens
        if config.position_embedding == "absolute":
            self.embed_positions = nn.Embedding(config.max_encoder_length, config.d_model)
        else:
            count = config.num_layers if config.relative_bias_per_layer else 1
            self.relative_bias = nn.ModuleList(RelativePositionBias(config, bidirectional=True) for _ in range(count))
        self.blocks = nn.ModuleList(EncoderBlock(config) for _ in range(config.num_layers))
        self.final_norm = make_norm(config)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encode [B, L] token ids (or [B, L, D] embeddings) into [B, L, D]."""
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        length = x.shape[1]
        positions = torch.arange(length, device=x.device)
        mask = padding_bias(attention_mask, torch.float32)
        if segment_ids is not None:
            mask = _add(mask, segment_bias(segment_ids, segment_ids, torch.float32))
        if self.config.position_embedding == "absolute":
            if length > self.config.max_encoder_length:
                raise SequenceTooLongError(
                    f"encoder input of {length} tokens exceeds max_encoder_length {self.config.max_encoder_length}; "
                    "truncate the input"
                )
            x = x + self.embed_positions(segment_positions(segment_ids) if segment_ids is not None else positions)
        x = self.dropout(x)

        biases = [mask]
        if self.config.position_embedding == "relative":
            biases = [_add(table(positions, positions), mask) for table in self.relative_bias]
        for i, block in enumerate(self.blocks):
            x = block(x, biases[i % len(biases)])
        return self.dropout(self.final_norm(x))


class Decoder(nn.Module):
    def __init__(self, config: ModelConfig, embed_tokens: nn.Embedding):
        super().__init__()
        self.config = config
        self.embed_tokens = embed_tokens
        if config.position_embedding == "absolute":
            self.embed_positions = nn.Embedding(config.max_decoder_length, config.d_model)
        else:
            count = config.num_decoder_layers if config.relative_bias_per_layer else 1
            self.relative_bias = nn.ModuleList(RelativePositionBias(config, bidirectional=False) for _ in range(count))
        self.blocks = nn.ModuleList(DecoderBlock(config) for _ in range(config.num_decoder_layers))
        self.final_norm = make_norm(config)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(
        self,
        input_ids: torch.Tensor,
        encoder_out: torch.Tensor,
        encoder_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        encoder_segment_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Decode [B, S] token ids against the encoder output [B, L, D] into hidden states [B, S, D].

        With a cache, input_ids are the new positions only and their keys and values are appended.
        `attention_mask` [B, past + S] marks real decoder tokens (1) and padding (0).
        """
        x = self.embed_tokens(input_ids)
        past = cache.length if cache is not None else 0
        length = x.shape[1]
        query_positions = torch.arange(past, past + length, device=x.device)
        key_positions = torch.arange(past + length, device=x.device)

        # Causal mask plus padding and segment masks, shared by all layers.
        causal = torch.where(
            key_positions[None, :] <= query_positions[:, None], 0.0, torch.finfo(torch.float32).min
        )[None, None]  # [1, 1, S, past + S]
        self_mask = _add(causal, padding_bias(attention_mask, torch.float32))
        cross_mask = padding_bias(encoder_mask, torch.float32)
        if segment_ids is not None:
            self_mask = _add(self_mask, segment_bias(segment_ids, segment_ids, torch.float32))
            if encoder_segment_ids is not None:
                cross_mask = _add(cross_mask, segment_bias(segment_ids, encoder_segment_ids, torch.float32))

        if self.config.position_embedding == "absolute":
            if past + length > self.config.max_decoder_length:
                raise SequenceTooLongError(
                    f"decoder length {past + length} exceeds max_decoder_length {self.config.max_decoder_length}; "
                    "generate fewer tokens"
                )
            positions = segment_positions(segment_ids) if segment_ids is not None else query_positions
            x = x + self.embed_positions(positions)
        x = self.dropout(x)

        self_biases = [self_mask]
        if self.config.position_embedding == "relative":
            self_biases = [_add(table(query_positions, key_positions), self_mask) for table in self.relative_bias]
        for i, block in enumerate(self.blocks):
            x = block(x, self_biases[i % len(self_biases)], encoder_out, cross_mask, cache, i)
        return self.dropout(self.final_norm(x))


class T5(nn.Module):
    """An encoder-decoder transformer of the T5 family, returning logits over the vocabulary."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = Encoder(config, self.shared)
        self.decoder = Decoder(config, self.shared)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head_bias = nn.Parameter(torch.zeros(config.vocab_size)) if config.lm_head_bias else None
        self.reset_parameters()

    def encode(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.encoder(input_ids, attention_mask, segment_ids, inputs_embeds)

    def decode(
        self,
        decoder_input_ids: torch.Tensor,
        encoder_out: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        decoder_segment_ids: torch.Tensor | None = None,
        encoder_segment_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return logits [B, S, V] for decoder inputs given the encoder output."""
        hidden = self.decoder(
            decoder_input_ids,
            encoder_out,
            attention_mask,
            decoder_attention_mask,
            decoder_segment_ids,
            encoder_segment_ids,
            cache,
        )
        return self.logits(hidden)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Project decoder hidden states [B, S, D] onto the vocabulary."""
        if self.config.scale_decoder_output:
            # T5 v1.0 rescales before the tied head so logits keep unit scale (Mesh TensorFlow).
            hidden = hidden * self.config.d_model**-0.5
        weight = self.shared.weight if self.config.tie_word_embeddings else self.lm_head.weight
        logits = nn.functional.linear(hidden, weight)
        if self.lm_head_bias is not None:
            logits = logits + self.lm_head_bias
        return logits

    def forward(
        self,
        input_ids: torch.Tensor | None,
        decoder_input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_segment_ids: torch.Tensor | None = None,
        decoder_segment_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return logits [B, S, V] for encoder inputs [B, L] and decoder inputs [B, S]."""
        encoder_out = self.encode(input_ids, attention_mask, encoder_segment_ids, inputs_embeds)
        return self.decode(
            decoder_input_ids,
            encoder_out,
            attention_mask,
            decoder_attention_mask,
            decoder_segment_ids=decoder_segment_ids,
            encoder_segment_ids=encoder_segment_ids,
        )

    def new_cache(self) -> KVCache:
        return KVCache.empty(self.config.num_decoder_layers)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise weights: Mesh TensorFlow T5 scales per layer, or one normal for the 'normal' init."""
        config = self.config
        for module in self.modules():
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, (nn.LayerNorm,)) or type(module).__name__ == "RMSNorm":
                nn.init.ones_(module.weight)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        if self.lm_head_bias is not None:
            nn.init.zeros_(self.lm_head_bias)
        if config.init == "normal":
            for module in self.modules():
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(module.weight, std=config.init_std)
            return

        nn.init.normal_(self.shared.weight, std=1.0)
        if not config.tie_word_embeddings:
            nn.init.normal_(self.lm_head.weight, std=1.0)
        for module in self.modules():
            if isinstance(module, Attention):
                nn.init.normal_(module.q.weight, std=(config.d_model * config.d_kv) ** -0.5)
                nn.init.normal_(module.k.weight, std=config.d_model**-0.5)
                nn.init.normal_(module.v.weight, std=config.d_model**-0.5)
                nn.init.normal_(module.o.weight, std=config.inner_dim**-0.5)
            elif isinstance(module, FeedForward):
                for name in ("wi", "wi_0", "wi_1"):
                    if hasattr(module, name):
                        nn.init.normal_(getattr(module, name).weight, std=config.d_model**-0.5)
                nn.init.normal_(module.wo.weight, std=config.d_ff**-0.5)
            elif isinstance(module, RelativePositionBias):
                nn.init.normal_(module.embedding.weight, std=config.d_model**-0.5)
            elif isinstance(module, nn.Embedding) and module is not self.shared:
                nn.init.normal_(module.weight, std=config.d_model**-0.5)


def shift_right(labels: torch.Tensor, start_id: int = 0, pad_id: int = 0) -> torch.Tensor:
    """Build decoder inputs from labels [B, S]: prepend the start token and replace -100 by padding."""
    shifted = labels.new_full(labels.shape, start_id)
    shifted[:, 1:] = labels[:, :-1]
    return shifted.masked_fill(shifted == -100, pad_id)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Count parameters, each shared tensor once."""
    seen: set[int] = set()
    total = 0
    for param in model.parameters():
        if id(param) in seen or (trainable_only and not param.requires_grad):
            continue
        seen.add(id(param))
        total += param.numel()
    return total
