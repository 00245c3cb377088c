"""Pretraining config: bundled recipes, the model section, batch accumulation and value checks."""

from __future__ import annotations

import pytest

from t5kit.cli.main import main
from t5kit.config.core import ConfigError
from t5kit.train.config import OptimizerConfig, PretrainConfig, TrainConfig


@pytest.mark.parametrize("recipe", ["tiny-cpu", "nemo-220m"])
def test_recipes_build(recipe, capsys):
    assert main(["pretrain", recipe, "--print-config"]) == 0
    assert "max_steps" in capsys.readouterr().out


def test_overrides_after_flag_applied(capsys):
    assert main(["pretrain", "tiny-cpu", "--print-config", "train.max_steps=7", "data.seed=3"]) == 0
    printed = capsys.readouterr().out
    assert "max_steps: 7\n" in printed
    assert "seed: 3\n" in printed
    with pytest.raises(SystemExit):
        main(["pretrain", "tiny-cpu", "--print-config", "--no-such-flag"])
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


def test_prompt_learn_prints_its_config(capsys):
    assert main(["prompt-learn", "squad-tiny", "--print-config", "base=runs/x/model", "method=lora"]) == 0
    printed = capsys.readouterr().out
    assert "method: lora\n" in printed
    assert "base: runs/x/model\n" in printed


def test_nemo_recipe_values():
    from t5kit.cli.pretrain import load_config

    config = load_config("nemo-220m", [])
    train = config.train
    assert train.accumulation_steps(train.micro_batch_size, world_size=1) == 32
    assert train.accumulation_steps(train.micro_batch_size, world_size=8) == 4
    assert train.schedule.resolved_warmup_steps(train.max_steps) == 10000
    assert train.optimizer.lr == 1e-4
    assert config.model.num_layers == 12


def test_model_preset_with_overrides():
    config = PretrainConfig.from_dict({"model": {"preset": "tiny", "d_model": 128, "vocab_size": 8192}})
    assert config.model.d_model == 128
    assert config.model.vocab_size == 8192
    assert config.model.num_layers == 4  # from the preset


def test_unknown_preset_named():
    with pytest.raises(ConfigError, match="unknown model preset 'tinny'. Did you mean 'tiny'"):
        PretrainConfig.from_dict({"model": {"preset": "tinny"}})


def test_global_batch_must_divide():
    config = TrainConfig(global_batch_size=100)
    with pytest.raises(ConfigError, match="not a multiple of micro batch size 8 x 2 ranks"):
        config.accumulation_steps(8, world_size=2)


def test_invalid_values_rejected():
    with pytest.raises(ConfigError, match="max_steps: must be positive"):
        TrainConfig(max_steps=0)
    with pytest.raises(ConfigError, match="betas"):
        OptimizerConfig(betas=(0.9, 1.0))
    with pytest.raises(ConfigError, match="device"):
        TrainConfig(device="tpu")
    for lr in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ConfigError, match=f"lr: must be a finite number of 0 or more, got {lr}"):
            OptimizerConfig(lr=lr)


def test_tune_learning_rate_must_be_finite():
    from t5kit.tune.config import OptimConfig

    with pytest.raises(ConfigError, match="optim.lr: must be a positive finite number, got nan"):
        OptimConfig(lr=float("nan"))
    assert OptimConfig(lr=None).lr is None
