"""P-tuning: virtual-token embeddings produced by a small network, reduced to a table after training.

Dimensions: P virtual tokens, D d_model, H encoder hidden size.

The encoder reparameterises the prompt (Liu et al., 2021, "GPT Understands, Too"): a learned input
table [P, D] goes through a 2-layer MLP, or a bidirectional LSTM followed by an MLP head, and the
output rows are the virtual tokens. The network only helps optimisation, so once training ends its
output is computed once and stored as a fixed PromptTable, and inference never runs the encoder.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from t5kit.peft.prompt_table import PromptTable

EncoderKind = Literal["mlp", "lstm"]


class PromptEncoder(nn.Module):
    """Map a learned [P, D] input table through an MLP or a BiLSTM+MLP to the prompt [P, D]."""

    def __init__(
        self,
        num_virtual_tokens: int,
        d_model: int,
        kind: EncoderKind = "mlp",
        hidden_size: int | None = None,
        lstm_layers: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        if num_virtual_tokens <= 0:
            raise ValueError(f"num_virtual_tokens must be positive, got {num_virtual_tokens}")
        if kind not in ("mlp", "lstm"):
            raise ValueError(f"unknown prompt encoder {kind!r}; expected 'mlp' or 'lstm'")
        hidden = hidden_size or d_model
        self.kind = kind
        self.input = PromptTable(num_virtual_tokens, d_model)
        self.lstm = None
        head_input = d_model
        if kind == "lstm":
            # Each direction gets hidden // 2 units so the concatenated output has `hidden` features.
            self.lstm = nn.LSTM(
                d_model,
                max(hidden // 2, 1),
                num_layers=lstm_layers,
                dropout=dropout if lstm_layers > 1 else 0.0,
                bidirectional=True,
                batch_first=True,
            )
            head_input = 2 * max(hidden // 2, 1)
        self.mlp = nn.Sequential(
            nn.Linear(head_input, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, d_model),
        )

    @property
    def num_virtual_tokens(self) -> int:
        return self.input.num_virtual_tokens

    def forward(self) -> torch.Tensor:
        """Return the virtual-token embeddings [P, D]."""
        x = self.input()  # [P, D]
        if self.lstm is not None:
            x, _ = self.lstm(x[None])  # [1, P, H]
            x = x[0]
        return self.mlp(x)

    @torch.no_grad()
    def to_table(self) -> PromptTable:
        """Run the encoder once in eval mode and return its output as a fixed PromptTable."""
        was_training = self.training
        self.eval()
        weight = self.forward().detach().clone()
        self.train(was_training)
        table = PromptTable(self.num_virtual_tokens, weight.shape[1]).to(device=weight.device, dtype=weight.dtype)
        table.weight.copy_(weight)
        return table
