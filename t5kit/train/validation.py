"""Validation loss over a fixed set of batches, and the unigram-entropy baseline it is compared with.

The baseline is the entropy, in nats, of the unigram distribution of the validation target tokens
(labels other than -100, sentinels and EOS included), with probabilities estimated from their own
counts: H = -sum_v p_v ln p_v, p_v = count_v / N. It is the lowest cross entropy that any
predictor ignoring context can reach on those targets, so a validation loss below it measures
what the model learned from context.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from t5kit.train.loss import IGNORE_INDEX, LossSums, loss_sums


def target_token_counts(batches: Sequence, vocab_size: int) -> torch.Tensor:
    """Count each token id among the labels of `batches` (objects with a `labels` [B, S] tensor)."""
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    for batch in batches:
        labels = batch.labels[batch.labels != IGNORE_INDEX].cpu()
        counts += torch.bincount(labels, minlength=vocab_size)[:vocab_size].to(torch.float64)
    return counts


def unigram_entropy(counts: torch.Tensor) -> float:
    """Return the entropy in nats of the distribution that `counts` (one per token id) estimate."""
    total = counts.sum().item()
    if total <= 0:
        return math.nan
    probabilities = counts[counts > 0] / total
    return float(-(probabilities * probabilities.log()).sum().item())


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Sequence,
    forward: Callable[[nn.Module, object], torch.Tensor],
) -> LossSums:
    """Return the summed cross entropy of `model` over `batches`, in eval mode (no dropout)."""
    was_training = model.training
    model.eval()
    total = None
    try:
        for batch in batches:
            sums = loss_sums(forward(model, batch), batch.labels)
            if total is None:
                total = sums
            else:
                total = LossSums(total.cross_entropy + sums.cross_entropy, total.z_loss, total.tokens + sums.tokens)
    finally:
        model.train(was_training)
    if total is None:
        zero = torch.zeros(())
        return LossSums(zero, zero, 0)
    return total
