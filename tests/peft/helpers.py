"""Tiny models and a character tokenizer shared by the peft tests."""

from __future__ import annotations

import torch

from t5kit.config.model import load_model_config
from t5kit.model import T5


class CharTokenizer:
    """One token per character (ids 3..252), enough to test templates and batching exactly."""

    pad_id = 0
    eos_id = 1
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return [3 + ord(char) % 250 for char in text.strip()]

    def is_special(self, token_id: int) -> bool:
        return token_id < 3

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return "".join(chr(i - 3) if i >= 3 else "" for i in ids)


def tiny_model(preset: str = "tiny-test", seed: int = 0, **overrides) -> T5:
    """Return a small randomly initialised T5 in eval mode with dropout 0.1 (so train mode differs)."""
    torch.manual_seed(seed)
    config = load_model_config(preset, {"dropout_rate": 0.1, **overrides})
    return T5(config).eval()


def prompt_inputs(prompt_length: int, batch: int = 2, length: int = 12, start: int = 2, seed: int = 0):
    """Return input ids [B, L], a virtual mask with `prompt_length` positions from `start`, and a full attention mask."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, 200, (batch, length), generator=generator)
    virtual_mask = torch.zeros(batch, length, dtype=torch.bool)
    virtual_mask[:, start : start + prompt_length] = True
    input_ids[virtual_mask] = 0
    return input_ids, virtual_mask, torch.ones(batch, length, dtype=torch.long)
