"""Learning-rate schedules: exact values at chosen steps (peak 1.0, warmup 4, 12 steps, floor 0.1)."""

from __future__ import annotations

import pytest
import torch

from t5kit.config.core import ConfigError
from t5kit.train.config import ScheduleConfig, TrainConfig
from t5kit.train.schedule import build_scheduler, learning_rate

MAX_STEPS = 12


def lr(name: str, step: int, **kwargs) -> float:
    config = ScheduleConfig(name=name, warmup_steps=kwargs.pop("warmup_steps", 4), min_lr=kwargs.pop("min_lr", 0.1), **kwargs)
    return learning_rate(step, config, peak_lr=1.0, max_steps=MAX_STEPS)


@pytest.mark.parametrize("name", ["constant", "linear", "cosine", "inverse_sqrt"])
def test_linear_warmup(name):
    assert lr(name, 0) == 0.25
    assert lr(name, 1) == 0.5
    assert lr(name, 3) == 1.0


def test_constant():
    assert lr("constant", 4) == 1.0
    assert lr("constant", 1000) == 1.0


def test_linear_decay():
    assert lr("linear", 4) == 1.0
    assert lr("linear", 8) == pytest.approx(0.55, abs=1e-15)
    assert lr("linear", 12) == pytest.approx(0.1, abs=1e-15)
    assert lr("linear", 20) == pytest.approx(0.1, abs=1e-15)


def test_cosine_decay():
    assert lr("cosine", 4) == 1.0
    assert lr("cosine", 6) == pytest.approx(0.1 + 0.45 * (1 + 0.5**0.5), abs=1e-15)
    assert lr("cosine", 8) == pytest.approx(0.55, abs=1e-15)
    assert lr("cosine", 12) == pytest.approx(0.1, abs=1e-15)
    assert lr("cosine", 50) == pytest.approx(0.1, abs=1e-15)


def test_inverse_sqrt():
    assert lr("inverse_sqrt", 4) == pytest.approx(0.8**0.5, abs=1e-15)
    assert lr("inverse_sqrt", 15) == 0.5
    assert lr("inverse_sqrt", 399) == pytest.approx(0.1, abs=1e-15)
    assert lr("inverse_sqrt", 1599) == 0.1  # 0.05 without the floor


def test_inverse_sqrt_without_warmup():
    assert lr("inverse_sqrt", 0, warmup_steps=0, min_lr=0.0) == 1.0
    assert lr("inverse_sqrt", 3, warmup_steps=0, min_lr=0.0) == 0.5


def test_warmup_annealing_matches_nemo():
    # NeMo WarmupAnnealing: (s + 1) / (w + 1) through s = w, then linear to min_lr at max_steps.
    assert lr("warmup_annealing", 0) == 0.2
    assert lr("warmup_annealing", 4) == 1.0
    assert lr("warmup_annealing", 5) == pytest.approx(0.8875, abs=1e-15)
    assert lr("warmup_annealing", 12) == pytest.approx(0.1, abs=1e-15)
    assert lr("warmup_annealing", 13) == 0.1


def test_warmup_ratio_rounds_down():
    config = ScheduleConfig(name="constant", warmup_ratio=0.3)
    assert config.resolved_warmup_steps(MAX_STEPS) == 3
    assert learning_rate(0, config, 1.0, MAX_STEPS) == pytest.approx(1 / 3, abs=1e-15)


def test_scheduler_sets_optimizer_lr():
    config = ScheduleConfig(name="cosine", warmup_steps=4, min_lr=0.01)
    parameter = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([parameter], lr=0.5)
    scheduler = build_scheduler(optimizer, config, MAX_STEPS)
    for step in range(MAX_STEPS + 2):
        expected = learning_rate(step, config, 0.5, MAX_STEPS)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12)
        optimizer.step()
        scheduler.step()


def test_scheduler_state_round_trip():
    config = ScheduleConfig(name="linear", warmup_steps=2)
    parameter = torch.nn.Parameter(torch.zeros(2))
    first = torch.optim.SGD([parameter], lr=1.0)
    scheduler = build_scheduler(first, config, MAX_STEPS)
    for _ in range(5):
        first.step()
        scheduler.step()
    second = torch.optim.SGD([parameter], lr=1.0)
    restored = build_scheduler(second, config, MAX_STEPS)
    restored.load_state_dict(scheduler.state_dict())
    second.load_state_dict(first.state_dict())
    assert second.param_groups[0]["lr"] == first.param_groups[0]["lr"]
    second.step()
    restored.step()
    assert second.param_groups[0]["lr"] == pytest.approx(learning_rate(6, config, 1.0, MAX_STEPS), rel=1e-12)


def test_min_lr_above_peak_rejected():
    with pytest.raises(ConfigError, match="min_lr"):
        TrainConfig(schedule=ScheduleConfig(min_lr=1.0))
