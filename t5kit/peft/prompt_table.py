"""Prompt tuning: a trainable table of virtual-token embeddings, one table per task.

Dimensions: P virtual tokens, D d_model, N text tokens.
"""

from __future__ import annotations

import torch
from torch import nn


class PromptTable(nn.Module):
    """A [P, D] table of virtual-token embeddings that is trained directly (Lester et al., 2021)."""

    def __init__(self, num_virtual_tokens: int, d_model: int):
        super().__init__()
        if num_virtual_tokens <= 0:
            raise ValueError(f"num_virtual_tokens must be positive, got {num_virtual_tokens}")
        self.weight = nn.Parameter(torch.zeros(num_virtual_tokens, d_model))

    @property
    def num_virtual_tokens(self) -> int:
        return self.weight.shape[0]

    @torch.no_grad()
    def init_random(self, embedding: nn.Embedding, generator: torch.Generator | None = None) -> None:
        """Fill the table with normal noise of the same standard deviation as the base embedding.

        Matching the scale matters: T5 embeddings are initialised with std 1.0 and NeMo-style ones
        with 0.02, and a prompt far off that scale dominates or vanishes in the first layer norm.
        """
        std = embedding.weight.float().std().item()
        noise = torch.randn(self.weight.shape, generator=generator, dtype=torch.float32)
        self.weight.copy_(noise * std)

    @torch.no_grad()
    def init_from_ids(self, embedding: nn.Embedding, token_ids: list[int]) -> None:
        """Copy the base embeddings of `token_ids` into the table, repeating them to fill all P rows.

        A text shorter than P tokens is repeated, and a longer one is cut, as NeMo's text init does.
        """
        if not token_ids:
            raise ValueError("the prompt init text encodes to no tokens; give a non-empty init_text")
        repeats = -(-self.num_virtual_tokens // len(token_ids))
        ids = torch.tensor((token_ids * repeats)[: self.num_virtual_tokens], device=embedding.weight.device)
        self.weight.copy_(embedding(ids).to(self.weight.dtype))  # [P, D]

    def forward(self) -> torch.Tensor:
        """Return the virtual-token embeddings [P, D]."""
        return self.weight
