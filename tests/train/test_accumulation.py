"""Gradient accumulation: micro-batches with different target-token counts give the big batch's gradient."""

from __future__ import annotations

import torch

from t5kit.config.model import load_model_config
from t5kit.data.loader import Batch
from t5kit.model import T5, shift_right
from t5kit.train.config import PretrainConfig
from t5kit.train.trainer import Trainer, forward_backward


def make_batch(labels: torch.Tensor, seed: int) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(2, 200, (labels.shape[0], 12), generator=generator)
    return Batch(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        decoder_input_ids=shift_right(labels),
        decoder_attention_mask=(labels != -100).long(),
        labels=labels,
    )


def concat(*batches: Batch) -> Batch:
    names = ["input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask", "labels"]
    return Batch(**{name: torch.cat([getattr(b, name) for b in batches]) for name in names})


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    grads = {name: param.grad.clone() for name, param in model.named_parameters() if param.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def test_uneven_micro_batches_match_big_batch():
    model = T5(load_model_config("tiny-test", {"dropout_rate": 0.0}))
    # 3 target tokens in the first micro-batch, 14 in the second.
    short = make_batch(torch.tensor([[5, 6, -100, -100, -100, -100, -100, -100], [9, -100, -100, -100, -100, -100, -100, -100]]), 0)
    long = make_batch(torch.tensor([[7, 8, 9, 10, 11, 12, 13, 1], [20, 21, 22, 23, 24, 25, -100, -100]]), 1)
    total = 3 + 14

    big = forward_backward(model, concat(short, long), 1 / total, 0.0, torch.device("cpu"), "fp32")
    reference = gradients(model)
    first = forward_backward(model, short, 1 / total, 0.0, torch.device("cpu"), "fp32")
    second = forward_backward(model, long, 1 / total, 0.0, torch.device("cpu"), "fp32")
    accumulated = gradients(model)

    assert first.tokens + second.tokens == big.tokens == total
    torch.testing.assert_close(first.cross_entropy + second.cross_entropy, big.cross_entropy)
    for name, grad in reference.items():
        torch.testing.assert_close(accumulated[name], grad, atol=1e-6, rtol=1e-5, msg=name)

    # Averaging per-micro-batch means instead would weight the short batch's tokens 14/3 times more.
    forward_backward(model, short, 1 / (2 * 3), 0.0, torch.device("cpu"), "fp32")
    forward_backward(model, long, 1 / (2 * 14), 0.0, torch.device("cpu"), "fp32")
    naive = gradients(model)
    assert max((naive[n] - g).abs().max().item() for n, g in reference.items()) > 1e-3


def test_trainer_accumulation_matches_big_batch(run_config):
    # Geometric noise spans give every example its own number of target tokens.
    data = {"span_corruption": {"noise_mask": "geometric"}}
    results = []
    for micro, accum in ((4, 1), (2, 2), (1, 4)):
        config = PretrainConfig.from_dict(run_config(
            model={"dropout_rate": 0.0}, data=data, train={"micro_batch_size": micro, "grad_accum_steps": accum},
        ))
        trainer = Trainer(config)
        results.append([trainer.train_step() for _ in range(2)])

    reference = results[0]
    assert len({stats.target_tokens for stats in reference}) == 2  # the two updates differ in tokens
    for other in results[1:]:
        for got, want in zip(other, reference):
            assert got.target_tokens == want.target_tokens
            assert abs(got.loss_sum - want.loss_sum) < 1e-4
            assert abs(got.grad_norm - want.grad_norm) < 1e-5 * want.grad_norm
