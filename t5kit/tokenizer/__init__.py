"""Tokenizers: the T5 SentencePiece wrapper with sentinels, and SentencePiece training."""

from t5kit.tokenizer.sentencepiece_tokenizer import T5Tokenizer, TokenizerError, sentinel_token
from t5kit.tokenizer.training import TokenizerTrainConfig, iter_lines, train_tokenizer

__all__ = ["T5Tokenizer", "TokenizerError", "TokenizerTrainConfig", "iter_lines", "sentinel_token", "train_tokenizer"]
