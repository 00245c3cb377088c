"""t5kit: a PyTorch-native framework for the T5 family of encoder-decoder models."""

__version__ = "0.1.0"
