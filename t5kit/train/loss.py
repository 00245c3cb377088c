"""The pretraining loss: token-level cross entropy in fp32, returned as a sum with its token count.

Returning sums lets gradient accumulation normalise by the target tokens of the whole update (all
micro-batches on all ranks) instead of averaging per-micro-batch means, which would weight a token
in a short micro-batch more than one in a long micro-batch.

Shapes: B batch, S decoder length, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

IGNORE_INDEX = -100
"""Label value of positions that carry no loss (padding)."""


@dataclass
class LossSums:
    """Summed losses of one or more batches and the number of target tokens they cover."""

    cross_entropy: torch.Tensor
    """Sum of per-token cross entropy in nats (a 0-dim fp32 tensor)."""
    z_loss: torch.Tensor
    """Sum of the weighted per-token z-loss (a 0-dim fp32 tensor; zero when disabled)."""
    tokens: int
    """Target tokens counted (labels other than -100)."""

    @property
    def total(self) -> torch.Tensor:
        """Return the summed objective that the backward pass differentiates."""
        return self.cross_entropy + self.z_loss


def count_target_tokens(labels: torch.Tensor) -> int:
    """Count the labels [B, S] that carry loss."""
    return int((labels != IGNORE_INDEX).sum().item())


def loss_sums(logits: torch.Tensor, labels: torch.Tensor, z_loss: float = 0.0) -> LossSums:
    """Return summed cross entropy (and z-loss) of logits [B, S, V] against labels [B, S] in fp32.

    The z-loss, z_loss * logsumexp(logits)**2 per target token, keeps the softmax normaliser near
    1 so that logits do not drift (PaLM, Chowdhery et al. 2022, section 5).
    """
    logits = logits.float().reshape(-1, logits.shape[-1])  # [B*S, V]
    labels = labels.reshape(-1)  # [B*S]
    cross_entropy = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
    tokens = count_target_tokens(labels)

    z_term = cross_entropy.new_zeros(())
    if z_loss > 0:
        keep = labels != IGNORE_INDEX
        log_z = torch.logsumexp(logits[keep], dim=-1)
        z_term = z_loss * log_z.square().sum()
    return LossSums(cross_entropy=cross_entropy, z_loss=z_term, tokens=tokens)
