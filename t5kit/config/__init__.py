"""Typed configs: dataclasses, YAML presets and dotted command-line overrides."""

from t5kit.config.core import ConfigError, apply_overrides, build, load_yaml, merge, to_dict
from t5kit.config.model import ModelConfig, load_model_config, pad_vocab_size, preset_names

__all__ = [
    "ConfigError",
    "ModelConfig",
    "apply_overrides",
    "build",
    "load_model_config",
    "load_yaml",
    "merge",
    "pad_vocab_size",
    "preset_names",
    "to_dict",
]
