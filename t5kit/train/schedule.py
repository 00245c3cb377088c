"""Learning-rate schedules: one pure function of the update step, wrapped in torch's LambdaLR.

`step` counts optimizer updates already taken, so the first update uses learning_rate(0). With
P the peak (optimizer) learning rate, m the minimum, w the warmup steps and T the total steps:

- warmup (all but warmup_annealing): P * (s + 1) / w for s < w, so the peak is reached at s = w - 1.
- constant: P after warmup.
- linear: from P at s = w down to m at s = T.
- cosine: m + (P - m) * (1 + cos(pi * (s - w) / (T - w))) / 2, then m after T.
- inverse_sqrt: P * sqrt(w / (s + 1)) after warmup (w taken as 1 when 0), never below m.
- warmup_annealing: NeMo's WarmupAnnealing (nemo/core/optim/lr_scheduler.py): P * (s + 1) / (w + 1)
  for s <= w, then m + (P - m) * (1 - (s - w) / (T - w)), and m after T.
"""

from __future__ import annotations

import math

import torch

from t5kit.train.config import ScheduleConfig


def learning_rate(step: int, config: ScheduleConfig, peak_lr: float, max_steps: int) -> float:
    """Return the learning rate for update `step` (0-based)."""
    warmup = config.resolved_warmup_steps(max_steps)
    low = config.min_lr
    if config.name == "warmup_annealing":
        return _warmup_annealing(step, peak_lr, low, warmup, max_steps)

    if step < warmup:
        return peak_lr * (step + 1) / warmup
    if config.name == "constant":
        return peak_lr
    if config.name == "inverse_sqrt":
        return max(low, peak_lr * math.sqrt(max(warmup, 1) / (step + 1)))

    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    if config.name == "linear":
        return low + (peak_lr - low) * (1.0 - progress)
    if config.name == "cosine":
        return low + (peak_lr - low) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {config.name!r}")


def _warmup_annealing(step: int, peak_lr: float, low: float, warmup: int, max_steps: int) -> float:
    if warmup > 0 and step <= warmup:
        return peak_lr * (step + 1) / (warmup + 1)
    if step > max_steps:
        return low
    return low + (peak_lr - low) * (1.0 - (step - warmup) / (max_steps - warmup))


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: ScheduleConfig, max_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Wrap `optimizer` so each param group follows the schedule, scaled from its own initial lr."""
    peak = optimizer.defaults["lr"]

    def multiplier(step: int) -> float:
        return learning_rate(step, config, peak, max_steps) / peak if peak > 0 else 0.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
