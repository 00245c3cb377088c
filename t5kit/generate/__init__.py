"""Generation over the model's decoder: greedy, sampling and beam search, with a static or dynamic KV cache."""

from t5kit.generate.config import GenerationConfig, GenerationError
from t5kit.generate.generation import generate
from t5kit.generate.streaming import stream

__all__ = ["GenerationConfig", "GenerationError", "generate", "stream"]
