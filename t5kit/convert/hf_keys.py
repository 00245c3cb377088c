"""One table between Hugging Face T5 weight names and t5kit's, for T5 v1.0, v1.1, mT5 and flan-t5.

Each row maps a Hugging Face name pattern to a t5kit name pattern with `{i}` for the block index.
Relative bias tables live in block 0 of each stack in Hugging Face checkpoints (shared by all layers)
and in `relative_bias.0` of each stack here; checkpoints with one table per layer map block i to
`relative_bias.{i}`.
"""

from __future__ import annotations

from t5kit.config.model import ModelConfig

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


def key_table(config: ModelConfig) -> dict[str, str]:
    """Return {Hugging Face name: t5kit name} for every tensor of a model with this config."""
    if config.position_embedding != "relative" or config.norm != "rmsnorm" or config.bias or config.lm_head_bias:
        raise ValueError("Hugging Face T5 layouts have relative positions, RMSNorm and no biases")
    ffn = ["wi_0", "wi_1", "wo"] if config.gated_ffn else ["wi", "wo"]
    table = {"shared.weight": "shared.weight"}
    for stack, rows, layers in (
        ("encoder", _ENCODER_ROWS, config.num_layers),
        ("decoder", _DECODER_ROWS, config.num_decoder_layers),
    ):
        for i in range(layers):
            for hf, ours in rows:
                names = ffn if "{f}" in hf else ["q", "k", "v", "o"] if "{p}" in hf else [None]
                for name in names:
                    table[hf.format(i=i, p=name, f=name)] = ours.format(i=i, p=name, f=name)
        attention = "SelfAttention"
        for i in range(layers if config.relative_bias_per_layer else 1):
            hf = f"{stack}.block.{i}.layer.0.{attention}.relative_attention_bias.weight"
            table[hf] = f"{stack}.relative_bias.{i}.embedding.weight"
        table[f"{stack}.final_layer_norm.weight"] = f"{stack}.final_norm.weight"
    if not config.tie_word_embeddings:
        table["lm_head.weight"] = "lm_head.weight"
    return table
