"""Optimizers: one or two steps on a tiny problem against hand computations in float64."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from t5kit.train.config import OptimizerConfig
from t5kit.train.optim import AdamWScale, build_optimizer, parameter_groups


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([[0.5, -1.0, 2.0], [0.25, 0.0, -0.75]]))
        self.bias = nn.Parameter(torch.tensor([0.1, -0.2]))


WEIGHT_GRAD = np.array([[0.1, -0.2, 0.3], [-0.4, 0.5, 0.05]])
BIAS_GRAD = np.array([0.3, -0.01])


def step(optimizer: torch.optim.Optimizer, model: Tiny, scale: float = 1.0) -> None:
    model.weight.grad = torch.tensor(WEIGHT_GRAD * scale, dtype=torch.float32)
    model.bias.grad = torch.tensor(BIAS_GRAD * scale, dtype=torch.float32)
    optimizer.step()


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)))


def test_parameter_groups_skip_vectors():
    model = Tiny()
    decayed, undecayed = parameter_groups(model, 0.1)
    assert decayed["params"] == [model.weight]
    assert decayed["weight_decay"] == 0.1
    assert undecayed["params"] == [model.bias]
    assert undecayed["weight_decay"] == 0.0


def test_adamw_first_step():
    model = Tiny()
    weight, bias = model.weight.detach().double().numpy().copy(), model.bias.detach().double().numpy().copy()
    lr, decay, eps = 0.01, 0.1, 1e-8
    optimizer = build_optimizer(model, OptimizerConfig(name="adamw", lr=lr, weight_decay=decay, eps=eps))
    step(optimizer, model)
    # After bias correction the first step is g / (|g| + eps); decay shrinks only the matrix.
    expected_weight = weight * (1 - lr * decay) - lr * WEIGHT_GRAD / (np.abs(WEIGHT_GRAD) + eps)
    expected_bias = bias - lr * BIAS_GRAD / (np.abs(BIAS_GRAD) + eps)
    np.testing.assert_allclose(model.weight.detach().numpy(), expected_weight, atol=1e-7)
    np.testing.assert_allclose(model.bias.detach().numpy(), expected_bias, atol=1e-7)


def reference_adamw_scale(p, grads, lr, betas, eps, decay):
    """Two steps of AdamWScale as its docstring defines it, in float64."""
    beta1, beta2 = betas
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        size = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t) * max(1e-3, rms(p))
        p = p - size * m / (np.sqrt(v) + eps)
        p = p * (1 - lr * decay)
    return p


def test_adamw_scale_two_steps():
    model = Tiny()
    weight, bias = model.weight.detach().double().numpy().copy(), model.bias.detach().double().numpy().copy()
    config = OptimizerConfig(name="adamw_scale", lr=0.02, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.1)
    optimizer = build_optimizer(model, config)
    assert isinstance(optimizer, AdamWScale)
    step(optimizer, model)
    step(optimizer, model, scale=-0.5)
    grads_w, grads_b = [WEIGHT_GRAD, -0.5 * WEIGHT_GRAD], [BIAS_GRAD, -0.5 * BIAS_GRAD]
    expected_weight = reference_adamw_scale(weight, grads_w, 0.02, (0.9, 0.99), 1e-6, 0.1)
    expected_bias = reference_adamw_scale(bias, grads_b, 0.02, (0.9, 0.99), 1e-6, 0.0)
    np.testing.assert_allclose(model.weight.detach().numpy(), expected_weight, atol=1e-7)
    np.testing.assert_allclose(model.bias.detach().numpy(), expected_bias, atol=1e-7)


def test_adamw_scale_small_weights_use_floor():
    model = nn.Linear(4, 4, bias=False)
    nn.init.zeros_(model.weight)
    optimizer = AdamWScale(model.parameters(), lr=1.0, eps=0.0)
    model.weight.grad = torch.ones(4, 4)
    optimizer.step()
    # RMS(0) is below the floor, so the step is lr * 1e-3 * m_hat / sqrt(v_hat) = 1e-3.
    torch.testing.assert_close(model.weight.detach(), torch.full((4, 4), -1e-3))


def test_adafactor_first_step_like_t5():
    model = Tiny()
    weight, bias = model.weight.detach().double().numpy().copy(), model.bias.detach().double().numpy().copy()
    optimizer = build_optimizer(model, OptimizerConfig(name="adafactor", lr=0.01))
    step(optimizer, model)

    # Step 1: the decay 1 - 1**-0.8 = 0 keeps only this gradient; the second moment of the matrix
    # is factored into row and column means; the update is clipped to RMS 1 and scaled by
    # max(1e-3, RMS(parameter)) * min(lr, 1 / sqrt(step)).
    row = np.mean(WEIGHT_GRAD**2, axis=1, keepdims=True)
    col = np.mean(WEIGHT_GRAD**2, axis=0, keepdims=True)
    update = WEIGHT_GRAD / np.sqrt(row @ col / row.mean())
    update = update / max(1.0, rms(update))
    expected_weight = weight - max(1e-3, rms(weight)) * 0.01 * update
    expected_bias = bias - max(1e-3, rms(bias)) * 0.01 * np.sign(BIAS_GRAD)
    np.testing.assert_allclose(model.weight.detach().numpy(), expected_weight, atol=1e-7)
    np.testing.assert_allclose(model.bias.detach().numpy(), expected_bias, atol=1e-7)


def test_optimizer_state_round_trip():
    model = Tiny()
    optimizer = build_optimizer(model, OptimizerConfig(name="adamw_scale", lr=0.01))
    step(optimizer, model)
    clone = Tiny()
    clone.load_state_dict(model.state_dict())
    restored = build_optimizer(clone, OptimizerConfig(name="adamw_scale", lr=0.01))
    # A deep copy, as torch.save and torch.load make: load_state_dict may keep the same state tensors.
    restored.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    step(optimizer, model)
    step(restored, clone)
    assert torch.equal(model.weight, clone.weight)
    assert torch.equal(model.bias, clone.bias)


@pytest.mark.parametrize("name", ["adamw", "adamw_scale", "adafactor"])
def test_optimizers_reduce_quadratic(name):
    target = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    model = nn.Linear(2, 2, bias=False)
    nn.init.constant_(model.weight, 0.5)
    optimizer = build_optimizer(model, OptimizerConfig(name=name, lr=0.05))
    start = ((model.weight - target) ** 2).sum().item()
    for _ in range(50):
        optimizer.zero_grad()
        ((model.weight - target) ** 2).sum().backward()
        optimizer.step()
    assert ((model.weight - target) ** 2).sum().item() < 0.5 * start
