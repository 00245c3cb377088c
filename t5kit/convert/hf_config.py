"""Map Hugging Face T5 config.json fields to a ModelConfig and back (t5, mt5 and umt5 model types).

Facts about transformers that the mapping follows (checked against transformers 5.25):
- `feed_forward_proj` is "ACT" or "gated-ACT"; "gated-gelu" means the tanh approximation of GELU
  (`gelu_new`), while a plain "gelu" is the exact one.
- T5 and umT5 multiply the decoder output by d_model**-0.5 unless config.json sets
  `scale_decoder_outputs: false` (written by transformers 5) or, in older files,
  `tie_word_embeddings: false`; mT5 never does. Whether the head is tied follows the weights:
  transformers unties it when the file contains an `lm_head.weight` that differs from `shared.weight`.
- umT5 has one relative bias table per layer; T5 and mT5 have one per stack.
"""

from __future__ import annotations

from typing import Any

from t5kit.config.core import ConfigError, build
from t5kit.config.model import ModelConfig
from t5kit.convert.hf_keys import ConversionError, check_hf_layout

MODEL_TYPES = {
    "t5": "T5ForConditionalGeneration",
    "mt5": "MT5ForConditionalGeneration",
    "umt5": "UMT5ForConditionalGeneration",
}
# Fields every published config.json has; without them the tensor shapes are unknown.
REQUIRED = ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads")
# transformers' defaults for the optional fields, the same for all three model types.
DEFAULTS = {
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "dropout_rate": 0.1,
    "layer_norm_epsilon": 1e-6,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}
FEED_FORWARD_DEFAULT = {"t5": "relu", "mt5": "gated-gelu", "umt5": "gated-gelu"}
# transformers activation names (ACT2FN keys) and their t5kit equivalents.
_ACTIVATIONS_FROM_HF = {
    "relu": "relu",
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "silu": "silu",
    "swish": "silu",
}


def parse_feed_forward(value: str, source: str) -> tuple[str, bool]:
    """Return (t5kit activation, gated) for a `feed_forward_proj` value such as "gated-gelu"."""
    parts = value.split("-")
    gated = len(parts) == 2 and parts[0] == "gated"
    if len(parts) > 2 or (len(parts) == 2 and not gated):
        raise ConversionError(f"{source}: invalid feed_forward_proj {value!r}; expected 'ACT' or 'gated-ACT'")
    name = "gelu_new" if value == "gated-gelu" else parts[-1]
    if name not in _ACTIVATIONS_FROM_HF:
        raise ConversionError(
            f"{source}: feed_forward_proj {value!r} uses activation {name!r}, which t5kit does not have; "
            f"supported: {', '.join(sorted(_ACTIVATIONS_FROM_HF))}"
        )
    return _ACTIVATIONS_FROM_HF[name], gated


def feed_forward_name(config: ModelConfig) -> str:
    """Return the `feed_forward_proj` value that transformers reads as this config's FFN."""
    if config.gated_ffn:
        names = {"gelu_tanh": "gated-gelu", "relu": "gated-relu", "silu": "gated-silu"}
    else:
        names = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu", "silu": "silu"}
    if config.activation not in names:
        raise ConversionError(
            "transformers has no gated FFN with the exact GELU ('gated-gelu' means the tanh approximation); "
            "set model.activation=gelu_tanh or convert to t5kit only"
        )
    return names[config.activation]


def decoder_output_scaled(data: dict[str, Any], model_type: str) -> bool:
    """Return whether transformers multiplies this config's decoder output by d_model**-0.5."""
    if model_type == "mt5":
        return False
    # transformers 5 saves the flag itself and forces tie_word_embeddings to true; older files only
    # have tie_word_embeddings, where false means "no rescale".
    if "scale_decoder_outputs" in data:
        return bool(data["scale_decoder_outputs"])
    return data.get("tie_word_embeddings", True) is not False


def config_from_hf(data: dict[str, Any], tied: bool, source: str) -> ModelConfig:
    """Build the ModelConfig for a Hugging Face config.json and whether its weights tie the head."""
    model_type = data.get("model_type", "t5")
    if model_type not in MODEL_TYPES:
        raise ConversionError(
            f"{source}: model_type {model_type!r} is not a T5 layout; supported: {', '.join(MODEL_TYPES)}"
        )
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise ConversionError(f"{source}: config.json has no {missing[0]!r}; it is required to shape the weights")

    fields = {key: data[key] for key in REQUIRED}
    for key, default in DEFAULTS.items():
        value = data.get(key)
        fields[key] = default if value is None else value
    if isinstance(fields["eos_token_id"], list):
        # NOTE: configs may list several EOS ids; t5kit keeps the first (generation can add the rest as stop ids).
        fields["eos_token_id"] = fields["eos_token_id"][0]
    fields["num_decoder_layers"] = data.get("num_decoder_layers") or data["num_layers"]
    activation, gated = parse_feed_forward(data.get("feed_forward_proj", FEED_FORWARD_DEFAULT[model_type]), source)

    family = model_type
    if model_type == "t5":
        family = "t5-v1.1" if gated else "t5"
    fields.update(
        activation=activation,
        gated_ffn=gated,
        tie_word_embeddings=tied,
        scale_decoder_output=decoder_output_scaled(data, model_type),
        relative_bias_per_layer=model_type == "umt5",
        family=family,
    )
    try:
        return build(ModelConfig, fields, prefix="model")
    except ConfigError as error:
        raise ConversionError(f"{source}: config.json describes an invalid model: {error}") from None


def model_type_of(config: ModelConfig) -> str:
    """Return the Hugging Face model_type that can hold this config."""
    if config.relative_bias_per_layer:
        return "umt5"
    if config.family == "mt5":
        if config.scale_decoder_output:
            raise ConversionError(
                "mT5 in transformers never rescales the decoder output, but this mt5 config sets "
                "scale_decoder_output; set model.family=t5 to write it as a T5 model"
            )
        return "mt5"
    return "t5"


def config_to_hf(config: ModelConfig, dtype: str) -> dict[str, Any]:
    """Return the config.json contents for a ModelConfig; `dtype` names the stored weights' type."""
    check_hf_layout(config)
    model_type = model_type_of(config)
    scaled = {}
    if model_type == "mt5":
        # The flag is only informational for mT5: transformers ties by the weights and never rescales.
        tie = config.tie_word_embeddings
    else:
        # transformers 4 reads tie_word_embeddings as "rescale the decoder output"; 5 reads scale_decoder_outputs.
        tie = config.scale_decoder_output
        scaled = {"scale_decoder_outputs": config.scale_decoder_output}
    return {
        "architectures": [MODEL_TYPES[model_type]],
        "model_type": model_type,
        "vocab_size": config.vocab_size,
        "d_model": config.d_model,
        "d_kv": config.d_kv,
        "d_ff": config.d_ff,
        "num_layers": config.num_layers,
        "num_decoder_layers": config.num_decoder_layers,
        "num_heads": config.num_heads,
        "relative_attention_num_buckets": config.relative_attention_num_buckets,
        "relative_attention_max_distance": config.relative_attention_max_distance,
        "dropout_rate": config.dropout_rate,
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "initializer_factor": 1.0,
        "feed_forward_proj": feed_forward_name(config),
        "tie_word_embeddings": tie,
        **scaled,
        "is_encoder_decoder": True,
        "use_cache": True,
        "pad_token_id": config.pad_token_id,
        "eos_token_id": config.eos_token_id,
        "decoder_start_token_id": config.decoder_start_token_id,
        "dtype": dtype,
    }


def generation_config_to_hf(config: ModelConfig) -> dict[str, Any]:
    """Return generation_config.json contents: the start, end and padding ids that `generate` needs."""
    return {
        "decoder_start_token_id": config.decoder_start_token_id,
        "eos_token_id": config.eos_token_id,
        "pad_token_id": config.pad_token_id,
    }
