"""`t5kit info [PRESET ...]`: print a preset's architecture and exact parameter count."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show a model preset's architecture and parameter count",
        description="Print the architecture and the exact parameter count of model presets "
        "(built on the meta device, so even 41B presets take no memory). Without a preset, list them.",
    )
    parser.add_argument("presets", nargs="*", help="preset names or model YAML files, for example t5-base")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def describe(preset: str, overrides: dict | None = None) -> str:
    """Return a text block with the architecture and parameter count of one preset."""
    import torch

    from t5kit.config.model import load_model_config
    from t5kit.model import T5, count_parameters

    config = load_model_config(preset, overrides)
    with torch.device("meta"):
        model = T5(config)
    total = count_parameters(model)
    ffn = f"{'gated ' if config.gated_ffn else ''}{config.activation}"
    positions = (
        f"relative bias ({config.relative_attention_num_buckets} buckets, max distance "
        f"{config.relative_attention_max_distance})"
        if config.position_embedding == "relative"
        else f"learned absolute (encoder {config.max_encoder_length}, decoder {config.max_decoder_length})"
    )
    head = "tied" + (" with d_model**-0.5 rescale" if config.scale_decoder_output else "")
    rows = [
        ("family", config.family),
        ("layers (encoder / decoder)", f"{config.num_layers} / {config.num_decoder_layers}"),
        ("d_model / d_ff / heads x d_kv", f"{config.d_model} / {config.d_ff} / {config.num_heads} x {config.d_kv}"),
        ("vocabulary", f"{config.vocab_size:,}"),
        ("feed-forward", ffn),
        ("norm", f"{config.norm} (eps {config.layer_norm_epsilon:g})"),
        ("positions", positions),
        ("attention scale", "1/sqrt(d_kv)" if config.attention_scale else "none (folded into init)"),
        ("biases", "yes" if config.bias else "no"),
        ("LM head", head if config.tie_word_embeddings else "untied"),
        ("parameters", f"{total:,} ({total / 1e9:.3f}B)"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join([preset] + [f"  {name:<{width}}  {value}" for name, value in rows])


def run(args: argparse.Namespace) -> int:
    from t5kit.config.core import apply_overrides
    from t5kit.config.model import preset_names

    from t5kit.config.core import ConfigError

    presets = [p for p in args.presets if "=" not in p]
    overrides = apply_overrides({}, [p for p in args.presets + args.overrides if "=" in p])
    unknown = sorted(set(overrides) - {"model"})
    if unknown:
        raise ConfigError(f"info takes only model.* overrides, got '{unknown[0]}'; for example model.num_layers=2")
    if not presets:
        print("Model presets (t5kit info NAME for details):")
        print("  " + "\n  ".join(preset_names()))
        return 0
    for preset in presets:
        print(describe(preset, overrides.get("model")))
    return 0
