"""The T5 model in plain PyTorch: one implementation, configured for every family."""

from t5kit.config.model import ModelConfig
from t5kit.model.attention import KVCache
from t5kit.model.io import load_model, save_model
from t5kit.model.t5 import T5, count_parameters, shift_right

__all__ = ["T5", "KVCache", "ModelConfig", "count_parameters", "load_model", "save_model", "shift_right"]
