"""Loss: fp32 cross entropy sums with -100 ignored, token counts, and the z-loss."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from t5kit.train.loss import loss_sums


def make_logits_and_labels():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 5, 11, generator=generator) * 3
    labels = torch.tensor([[4, 7, -100, -100, -100], [1, 0, 10, 2, -100]])
    return logits, labels


def test_sum_and_count():
    logits, labels = make_logits_and_labels()
    sums = loss_sums(logits, labels)
    expected = F.cross_entropy(logits.reshape(-1, 11), labels.reshape(-1), ignore_index=-100, reduction="sum")
    assert sums.tokens == 6
    torch.testing.assert_close(sums.cross_entropy, expected)
    assert sums.z_loss.item() == 0.0


def test_bf16_logits_computed_in_fp32():
    logits, labels = make_logits_and_labels()
    low = logits.bfloat16()
    sums = loss_sums(low, labels)
    assert sums.cross_entropy.dtype == torch.float32
    assert torch.equal(sums.cross_entropy, loss_sums(low.float(), labels).cross_entropy)


def test_z_loss_term():
    logits, labels = make_logits_and_labels()
    sums = loss_sums(logits, labels, z_loss=1e-2)
    keep = labels.reshape(-1) != -100
    log_z = torch.logsumexp(logits.reshape(-1, 11)[keep], dim=-1)
    torch.testing.assert_close(sums.z_loss, 1e-2 * (log_z**2).sum())
    torch.testing.assert_close(sums.total, sums.cross_entropy + sums.z_loss)


def test_all_ignored():
    logits, _ = make_logits_and_labels()
    sums = loss_sums(logits, torch.full((2, 5), -100), z_loss=1e-4)
    assert sums.tokens == 0
    assert sums.cross_entropy.item() == 0.0
    assert sums.z_loss.item() == 0.0
