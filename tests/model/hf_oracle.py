"""Build Hugging Face T5 models that match a t5kit ModelConfig, for use as a numerical oracle."""

from __future__ import annotations

from transformers import MT5Config, T5Config

from t5kit.config.model import ModelConfig


def hf_config(config: ModelConfig, dropout_rate: float | None = None):
    """Return the transformers T5Config (or MT5Config) with the same shapes as `config`."""
    cls = MT5Config if config.family == "mt5" else T5Config
    activation = {"relu": "relu", "gelu_tanh": "gelu_new", "gelu": "gelu", "silu": "silu"}[config.activation]
    return cls(
        vocab_size=config.vocab_size,
        d_model=config.d_model,
        d_kv=config.d_kv,
        d_ff=config.d_ff,
        num_layers=config.num_layers,
        num_decoder_layers=config.num_decoder_layers,
        num_heads=config.num_heads,
        relative_attention_num_buckets=config.relative_attention_num_buckets,
        relative_attention_max_distance=config.relative_attention_max_distance,
        dropout_rate=config.dropout_rate if dropout_rate is None else dropout_rate,
        layer_norm_epsilon=config.layer_norm_epsilon,
        feed_forward_proj=("gated-" if config.gated_ffn else "") + activation,
        tie_word_embeddings=config.tie_word_embeddings,
        decoder_start_token_id=config.decoder_start_token_id,
        pad_token_id=config.pad_token_id,
        eos_token_id=config.eos_token_id,
    )
