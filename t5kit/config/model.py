"""The model config: one dataclass whose fields cover T5 v1.0, v1.1, mT5 and NeMo-style T5."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from t5kit.config.core import ConfigError, build, load_yaml, merge

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs" / "model"


@dataclass
class ModelConfig:
    """Architecture of an encoder-decoder transformer in the T5 family."""

    vocab_size: int = 32128
    """Rows of the embedding table and the LM head (padded; may exceed the tokenizer's size)."""
    d_model: int = 512
    """Hidden size of the residual stream."""
    d_kv: int | None = 64
    """Size of each attention head (NeMo calls it kv_channels); None means d_model // num_heads."""
    d_ff: int = 2048
    """Inner size of the feed-forward network."""
    num_layers: int = 6
    """Blocks in the encoder."""
    num_decoder_layers: int | None = None
    """Blocks in the decoder; None means the same as num_layers."""
    num_heads: int = 8
    """Attention heads per layer."""
    activation: Literal["relu", "gelu", "gelu_tanh", "silu"] = "relu"
    """Feed-forward nonlinearity. gelu_tanh is the tanh approximation that T5 v1.1 and mT5 use."""
    gated_ffn: bool = False
    """Gated feed-forward (wi_0 through the activation times wi_1), as in GEGLU."""
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    """RMSNorm without bias (T5) or LayerNorm with bias (NeMo)."""
    layer_norm_epsilon: float = 1e-6
    """Epsilon added to the variance in every norm."""
    position_embedding: Literal["relative", "absolute"] = "relative"
    """Relative position bias added to attention scores (T5) or learned absolute embeddings (NeMo)."""
    relative_attention_num_buckets: int = 32
    """Buckets of the relative position bias."""
    relative_attention_max_distance: int = 128
    """Distance beyond which relative positions share the last bucket."""
    relative_bias_per_layer: bool = False
    """One relative bias table per layer instead of one per stack shared by all its layers."""
    max_encoder_length: int = 512
    """Rows of the encoder's absolute position table (absolute position embeddings only)."""
    max_decoder_length: int = 128
    """Rows of the decoder's absolute position table (absolute position embeddings only)."""
    attention_scale: bool = False
    """Scale attention scores by 1/sqrt(d_kv). T5 folds this scale into the query init instead."""
    bias: bool = False
    """Biases in the attention and feed-forward projections."""
    tie_word_embeddings: bool = True
    """Share the LM head weight with the input embedding."""
    scale_decoder_output: bool = True
    """Multiply the decoder output by d_model**-0.5 before the LM head (T5 v1.0 with a tied head)."""
    lm_head_bias: bool = False
    """A bias over the vocabulary in the LM head (NeMo)."""
    dropout_rate: float = 0.1
    """Dropout on embeddings, residual branches, attention probabilities and the FFN hidden layer."""
    init: Literal["t5", "normal"] = "t5"
    """Weight init: Mesh TensorFlow T5 scales per layer, or a normal with init_std everywhere."""
    init_std: float = 0.02
    """Standard deviation of the 'normal' init."""
    pad_token_id: int = 0
    """Padding token; also the decoder start token in T5."""
    eos_token_id: int = 1
    """End-of-sequence token."""
    decoder_start_token_id: int = 0
    """First decoder input token."""
    family: str = "custom"
    """Informational label such as t5, t5-v1.1, mt5 or nemo; no code reads it."""

    def __post_init__(self) -> None:
        if self.num_decoder_layers is None:
            self.num_decoder_layers = self.num_layers
        if self.num_heads > 0 and self.d_kv is None:
            if self.d_model % self.num_heads:
                raise ConfigError(
                    f"num_heads: {self.num_heads} heads do not divide d_model {self.d_model}; "
                    f"choose a divisor of {self.d_model} or set d_kv explicitly"
                )
            self.d_kv = self.d_model // self.num_heads
        for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive, got {getattr(self, name)}")
        if self.num_decoder_layers <= 0:
            raise ConfigError(f"num_decoder_layers: must be positive, got {self.num_decoder_layers}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ConfigError(f"dropout_rate: must be in [0, 1), got {self.dropout_rate}")
        if self.layer_norm_epsilon <= 0:
            raise ConfigError(f"layer_norm_epsilon: must be positive, got {self.layer_norm_epsilon}")
        if self.position_embedding == "relative" and self.relative_attention_num_buckets < 4:
            raise ConfigError(
                f"relative_attention_num_buckets: must be at least 4, got {self.relative_attention_num_buckets}"
            )
        if self.position_embedding == "absolute" and min(self.max_encoder_length, self.max_decoder_length) <= 0:
            raise ConfigError("max_encoder_length and max_decoder_length must be positive for absolute positions")
        for name in ("pad_token_id", "eos_token_id", "decoder_start_token_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise ConfigError(f"{name}: {getattr(self, name)} is outside the vocabulary of {self.vocab_size}")

    @property
    def inner_dim(self) -> int:
        """Width of the concatenated attention heads."""
        return self.num_heads * self.d_kv

    def check_tokenizer(self, tokenizer_vocab_size: int) -> None:
        """Raise if the embedding has fewer rows than the tokenizer has ids."""
        if self.vocab_size < tokenizer_vocab_size:
            raise ConfigError(
                f"model.vocab_size: {self.vocab_size} is smaller than the tokenizer's {tokenizer_vocab_size} ids; "
                f"set model.vocab_size={pad_vocab_size(tokenizer_vocab_size)} (padded to a multiple of 128)"
            )

    def check_tokenizer_matches(self, tokenizer_vocab_size: int) -> None:
        """Raise unless the embedding has the tokenizer's ids, padded up to a multiple of 128 at most.

        A model trained with a tokenizer has exactly that many rows or the padded count (T5 pads
        32,100 ids to 32,128). More rows mean another tokenizer, whose sentinels sit at other ids.
        """
        self.check_tokenizer(tokenizer_vocab_size)
        if self.vocab_size > pad_vocab_size(tokenizer_vocab_size):
            raise ConfigError(
                f"the tokenizer has {tokenizer_vocab_size} ids but the model's embedding has {self.vocab_size} rows, "
                f"so it was trained with another tokenizer; pass the tokenizer saved with the model"
            )


def pad_vocab_size(size: int, multiple: int = 128) -> int:
    """Round a vocabulary size up to a multiple, as T5 pads 32,100 ids to 32,128 rows."""
    return int(math.ceil(size / multiple) * multiple)


def preset_names() -> list[str]:
    """Return the names of the bundled model presets."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.yaml"))


def preset_dict(name: str) -> dict:
    """Return a bundled preset (or a YAML file path) as a dict of ModelConfig fields."""
    path = Path(name)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = PRESET_DIR / f"{name}.yaml"
        if not path.is_file():
            import difflib

            names = preset_names()
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown model preset '{name}'.{hint} Available: {', '.join(names)}")
    return load_yaml(path)


def load_model_config(preset: str | None = None, overrides: dict | None = None) -> ModelConfig:
    """Build a ModelConfig from a preset name or YAML path plus field overrides."""
    data = preset_dict(preset) if preset else {}
    return build(ModelConfig, merge(data, overrides or {}), prefix="model")
