"""One table between Hugging Face T5 weight names and t5kit's, for T5 v1.0, v1.1, mT5, umT5 and flan-t5.

Each row maps a Hugging Face name pattern to a t5kit name pattern with `{i}` for the block index.
T5 and mT5 checkpoints keep one relative bias table per stack, in block 0, shared by all layers. It
maps to `relative_bias.0` of each stack here. umT5 checkpoints have one table per layer, and block i
maps to `relative_bias.{i}`.

Hugging Face files may also contain aliases of the shared embedding: `encoder.embed_tokens.weight`,
`decoder.embed_tokens.weight`, and `lm_head.weight` when the head is tied. `split_aliases` checks
and removes them before the table is applied.
"""

from __future__ import annotations

import logging

import torch

from t5kit.config.model import ModelConfig
from t5kit.errors import T5kitError

logger = logging.getLogger(__name__)

_ENCODER_ROWS = [
    ("encoder.block.{i}.layer.0.SelfAttention.{p}.weight", "encoder.blocks.{i}.self_attn.{p}.weight"),
    ("encoder.block.{i}.layer.0.layer_norm.weight", "encoder.blocks.{i}.self_attn_norm.weight"),
    ("encoder.block.{i}.layer.1.DenseReluDense.{f}.weight", "encoder.blocks.{i}.ffn.{f}.weight"),
    ("encoder.block.{i}.layer.1.layer_norm.weight", "encoder.blocks.{i}.ffn_norm.weight"),
]
_DECODER_ROWS = [
    ("decoder.block.{i}.layer.0.SelfAttention.{p}.weight", "decoder.blocks.{i}.self_attn.{p}.weight"),
    ("decoder.block.{i}.layer.0.layer_norm.weight", "decoder.blocks.{i}.self_attn_norm.weight"),
    ("decoder.block.{i}.layer.1.EncDecAttention.{p}.weight", "decoder.blocks.{i}.cross_attn.{p}.weight"),
    ("decoder.block.{i}.layer.1.layer_norm.weight", "decoder.blocks.{i}.cross_attn_norm.weight"),
    ("decoder.block.{i}.layer.2.DenseReluDense.{f}.weight", "decoder.blocks.{i}.ffn.{f}.weight"),
    ("decoder.block.{i}.layer.2.layer_norm.weight", "decoder.blocks.{i}.ffn_norm.weight"),
]

SHARED = "shared.weight"
LM_HEAD = "lm_head.weight"
EMBEDDING_ALIASES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
# Old T5 v1.0 checkpoints carry a relative bias in the first cross-attention layer that no model reads.
# transformers ignores it on load, and so does the conversion.
UNUSED = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)


class ConversionError(T5kitError, ValueError):
    """A checkpoint or config that cannot be converted between formats."""


# Fields that every Hugging Face T5 layout fixes, with the value it needs.
HF_LAYOUT = {
    "position_embedding": "relative",
    "norm": "rmsnorm",
    "bias": False,
    "lm_head_bias": False,
    "attention_scale": False,
}


def check_hf_layout(config: ModelConfig) -> None:
    """Raise ConversionError naming each field that Hugging Face T5 layouts cannot express."""
    wrong = [f"{key}={getattr(config, key)}" for key, value in HF_LAYOUT.items() if getattr(config, key) != value]
    if wrong:
        needed = ", ".join(f"{key}={value}" for key, value in HF_LAYOUT.items())
        raise ConversionError(
            f"this config has {', '.join(wrong)}, which Hugging Face T5 layouts cannot hold; they need {needed}"
        )


def key_table(config: ModelConfig) -> dict[str, str]:
    """Return {Hugging Face name: t5kit name} for every tensor of a model with this config."""
    check_hf_layout(config)
    ffn = ["wi_0", "wi_1", "wo"] if config.gated_ffn else ["wi", "wo"]
    table = {SHARED: SHARED}
    for stack, rows, layers in (
        ("encoder", _ENCODER_ROWS, config.num_layers),
        ("decoder", _DECODER_ROWS, config.num_decoder_layers),
    ):
        for i in range(layers):
            for hf, ours in rows:
                names = ffn if "{f}" in hf else ["q", "k", "v", "o"] if "{p}" in hf else [None]
                for name in names:
                    table[hf.format(i=i, p=name, f=name)] = ours.format(i=i, p=name, f=name)
        for i in range(layers if config.relative_bias_per_layer else 1):
            hf = f"{stack}.block.{i}.layer.0.SelfAttention.relative_attention_bias.weight"
            table[hf] = f"{stack}.relative_bias.{i}.embedding.weight"
        table[f"{stack}.final_layer_norm.weight"] = f"{stack}.final_norm.weight"
    if not config.tie_word_embeddings:
        table[LM_HEAD] = LM_HEAD
    return table


def split_aliases(state: dict[str, torch.Tensor], source: str) -> tuple[dict[str, torch.Tensor], bool]:
    """Remove the aliases of the shared embedding from a Hugging Face state dict.

    Return the remaining tensors and whether the LM head is tied. The head counts as tied when
    `lm_head.weight` is absent or equal to `shared.weight`, as transformers decides when it loads a
    file. An embedding alias whose values differ from `shared.weight` raises, because t5kit has one
    input embedding for both stacks.
    """
    state = dict(state)
    if SHARED not in state:
        # transformers ties in either direction, so a file may store the table under an alias only.
        present = [name for name in EMBEDDING_ALIASES if name in state]
        if not present:
            raise ConversionError(f"{source}: tensor {SHARED} not found (nor {' or '.join(EMBEDDING_ALIASES)})")
        state[SHARED] = state[present[0]]
    shared = state[SHARED]

    for name in EMBEDDING_ALIASES:
        alias = state.pop(name, None)
        if alias is not None and not _same(alias, shared):
            raise ConversionError(
                f"{source}: tensor {name} differs from {SHARED}; t5kit shares one embedding between "
                "the encoder, the decoder and shared.weight, so this checkpoint cannot be converted"
            )
    for name in UNUSED:
        if state.pop(name, None) is not None:
            logger.info("%s: skipping %s, which no T5 layer reads", source, name)

    head = state.get(LM_HEAD)
    tied = head is None or _same(head, shared)
    if tied:
        state.pop(LM_HEAD, None)
    return state, tied


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)


def rename_from_hf(
    state: dict[str, torch.Tensor], config: ModelConfig, expected: dict[str, torch.Size], source: str
) -> dict[str, torch.Tensor]:
    """Return the t5kit state dict for Hugging Face tensors (aliases already removed).

    `expected` gives the shape of every t5kit tensor. A missing, unexpected or misshapen tensor
    raises ConversionError naming it.
    """
    table = key_table(config)
    missing = [name for name in table if name not in state]
    unexpected = sorted(name for name in state if name not in table)
    if missing:
        raise ConversionError(
            f"{source}: tensor {missing[0]} not found ({len(missing)} missing in all) for a "
            f"{config.num_layers}+{config.num_decoder_layers}-layer {config.family} config; "
            "check that config.json belongs to these weights"
        )
    if unexpected:
        raise ConversionError(
            f"{source}: unexpected tensor {unexpected[0]} ({len(unexpected)} in all: {unexpected[:4]}); "
            "the file holds weights that this config does not describe"
        )

    renamed = {}
    for hf_name, name in table.items():
        tensor = state[hf_name]
        if tuple(tensor.shape) != tuple(expected[name]):
            raise ConversionError(
                f"{source}: tensor {hf_name} has shape {tuple(tensor.shape)}, but config.json implies "
                f"{tuple(expected[name])}"
            )
        renamed[name] = tensor
    return renamed


def rename_to_hf(state: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """Return Hugging Face names for a t5kit state dict, storing the shared embedding once."""
    table = key_table(config)
    missing = [name for name in table.values() if name not in state]
    if missing:
        raise ConversionError(f"t5kit state dict has no tensor {missing[0]} ({len(missing)} missing in all)")
    return {hf_name: state[name] for hf_name, name in table.items()}
