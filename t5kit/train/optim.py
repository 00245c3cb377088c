"""Optimizers for pretraining: AdamW, AdamW with RMS-scaled updates, and Adafactor.

- adamw: torch.optim.AdamW.
- adamw_scale: AdamW whose step is multiplied by max(1e-3, RMS(parameter)), Adafactor's relative
  step size, as in nanoT5's AdamWScale. Like nanoT5 (and the AdamW of older transformers releases)
  it folds Adam's bias corrections into the step size and adds eps to sqrt(v) before correction.
  It lets T5 train with AdamW at Adafactor-sized learning rates such as 2e-2.
- adafactor: torch.optim.Adafactor (torch 2.5 and later), which matches the way T5 used Adafactor:
  factored second moments, second-moment decay 1 - step**-0.8, no momentum, update clipping at
  RMS 1, and steps scaled by max(1e-3, RMS(parameter)).
  NOTE: torch's Adafactor uses min(lr, 1 / sqrt(step)) as its step size, so with a constant
  schedule at lr 1e-2 it reproduces T5's inverse-square-root schedule, and any schedule is capped
  by 1 / sqrt(step).

Weight decay applies to matrices and embeddings only; biases and norm weights (1-D) are not decayed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from t5kit.train.config import OptimizerConfig

RELATIVE_STEP_FLOOR = 1e-3
"""Lower bound of the parameter RMS that scales adamw_scale's and Adafactor's steps (Adafactor's eps2)."""


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split trainable parameters into a decayed group (2-D and up) and an undecayed group (1-D)."""
    params = [param for param in model.parameters() if param.requires_grad]
    decayed = [param for param in params if param.ndim >= 2]
    undecayed = [param for param in params if param.ndim < 2]
    return [
        {"params": decayed, "weight_decay": weight_decay},
        {"params": undecayed, "weight_decay": 0.0},
    ]


def _rms(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.norm(2) / math.sqrt(tensor.numel())


class AdamWScale(torch.optim.Optimizer):
    """AdamW with each step scaled by the RMS of the parameter it updates (floored at 1e-3).

    For a parameter p with gradient g at step t:
        m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g**2
        step = lr * sqrt(1 - beta2**t) / (1 - beta1**t) * max(1e-3, RMS(p))
        p = p - step * m / (sqrt(v) + eps);   then p = p * (1 - lr * weight_decay)
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                self._update(param, group, beta1, beta2)
        return loss

    def _update(self, param: torch.Tensor, group: dict, beta1: float, beta2: float) -> None:
        grad = param.grad
        if grad.is_sparse:
            raise RuntimeError("AdamWScale does not support sparse gradients")
        state = self.state[param]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["step"] += 1
        step = state["step"]
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]

        exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        denom = exp_avg_sq.sqrt().add_(group["eps"])

        # Adam's bias corrections, times Adafactor's relative scale taken before this update.
        step_size = group["lr"] * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)
        scale = max(RELATIVE_STEP_FLOOR, _rms(param).item())
        param.addcdiv_(exp_avg, denom, value=-step_size * scale)

        if group["weight_decay"] > 0:
            param.mul_(1.0 - group["lr"] * group["weight_decay"])


def build_optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.Optimizer:
    """Create the optimizer `config` names over `model`'s trainable parameters."""
    groups = parameter_groups(model, config.weight_decay)
    if config.name == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps)
    if config.name == "adamw_scale":
        return AdamWScale(groups, lr=config.lr, betas=config.betas, eps=config.eps)
    if config.name == "adafactor":
        return torch.optim.Adafactor(
            groups,
            lr=config.lr,
            beta2_decay=config.beta2_decay,
            eps=(None, RELATIVE_STEP_FLOOR),
            d=config.clip_threshold,
        )
    raise ValueError(f"unknown optimizer {config.name!r}")
