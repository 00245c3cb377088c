"""The trainer loop on a tiny model: metrics records, plots, NaN handling, config errors, run directory rules."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

import t5kit
from t5kit.cli.main import main
from t5kit.cli.pretrain import load_config
from t5kit.config.core import ConfigError
from t5kit.data.config import DataConfig
from t5kit.data.loader import build_pretraining_batches
from t5kit.model import T5
from t5kit.train.config import PretrainConfig
from t5kit.train.plot import PlotError, plot_losses
from t5kit.train.schedule import learning_rate
from t5kit.train.trainer import RunDirectoryError, Trainer, TrainingDivergedError
from t5kit.train.validation import target_token_counts, unigram_entropy


def read_records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_metrics_records(run_config, tiny_data, tmp_path):
    config = run_config()
    result = t5kit.pretrain(config)
    run_dir = tmp_path / "run"
    records = read_records(run_dir)

    baseline = records[0]
    assert baseline["kind"] == "baseline"
    assert baseline["step"] == 0
    val = [b.to_torch() for b in build_pretraining_batches(
        PretrainConfig.from_dict(config).data, 4, split="validation")][:2]
    assert baseline["unigram_entropy"] == pytest.approx(unigram_entropy(target_token_counts(val, 256)), rel=1e-12)
    assert baseline["val_target_tokens"] == sum(int((b.labels != -100).sum()) for b in val)

    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]
    keys = {"loss", "lr", "grad_norm", "encoder_tokens_per_s", "decoder_tokens_per_s", "mfu", "memory_mib",
            "skipped_updates"}
    assert keys <= set(train[0])
    schedule = PretrainConfig.from_dict(config).train.schedule
    for record in train:
        assert math.isfinite(record["loss"])
        assert record["loss"] > 0
        assert record["lr"] == pytest.approx(learning_rate(record["step"] - 1, schedule, 3e-3, 6), rel=1e-9)
        assert 0 < record["mfu"] < 1
        assert record["encoder_tokens_per_s"] > record["decoder_tokens_per_s"] > 0
        assert record["memory_mib"] > 0

    val_records = [r for r in records if r["kind"] == "val"]
    assert [r["step"] for r in val_records] == [3, 6]
    assert val_records[-1]["val_loss"] == pytest.approx(result.val_loss, rel=1e-12)
    assert result.unigram_entropy == baseline["unigram_entropy"]
    assert result.steps == 6
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000003", "step_00000006"]
    for name in ("config.yaml", "loss.png", "loss.svg", "model/model.safetensors"):
        assert (run_dir / name).is_file(), name


def test_plot_files(run_config, tmp_path):
    t5kit.pretrain(run_config(train={"max_steps": 3}))
    out = tmp_path / "plots"
    assert main(["plot", str(tmp_path / "run"), "--output-dir", str(out)]) == 0
    png, svg = out / "loss.png", out / "loss.svg"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in svg.read_text()
    assert "validation loss" in svg.read_text()


def test_plot_without_metrics(tmp_path):
    with pytest.raises(PlotError, match="metrics.jsonl not found"):
        plot_losses(tmp_path)


def nan_model(config: PretrainConfig, bad_calls) -> T5:
    """A model whose training forward pass returns NaN logits on the given call numbers (1-based)."""
    torch.manual_seed(config.train.seed)
    model = T5(config.model)
    calls = {"n": 0}

    def hook(module, args, output):
        if not module.training:
            return output
        calls["n"] += 1
        return output * float("nan") if bad_calls(calls["n"]) else output

    model.register_forward_hook(hook)
    return model


def test_nan_stops_run(run_config):
    config = PretrainConfig.from_dict(run_config())
    trainer = Trainer(config, model=nan_model(config, lambda n: n == 5))
    with pytest.raises(TrainingDivergedError) as error:
        trainer.fit()
    assert "update 5" in str(error.value)
    assert "step_00000003" in str(error.value)
    assert "nan_policy=skip" in str(error.value)


def test_nan_skipped(run_config, tmp_path, caplog):
    config = PretrainConfig.from_dict(run_config(train={"nan_policy": "skip"}))
    trainer = Trainer(config, model=nan_model(config, lambda n: n == 2))
    result = trainer.fit()
    assert result.steps == 6
    records = [r for r in read_records(tmp_path / "run") if r["kind"] == "train"]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert [r["skipped_updates"] for r in records] == [0, 1, 1, 1, 1, 1]
    assert all(math.isfinite(r["loss"]) for r in records)
    assert "skipping update 2" in caplog.text


def test_nan_skip_limit(run_config):
    config = PretrainConfig.from_dict(run_config(train={"nan_policy": "skip", "max_skipped_steps": 3}))
    trainer = Trainer(config, model=nan_model(config, lambda n: n >= 4))
    with pytest.raises(TrainingDivergedError, match="3 consecutive updates"):
        trainer.fit()
    assert trainer.step == 3


def write_yaml(path, data) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_unknown_key_in_yaml(run_config, tmp_path):
    config = run_config()
    config["train"]["max_step"] = 5
    with pytest.raises(ConfigError, match=r"unknown config key 'train.max_step'. Did you mean 'train.max_steps'\?"):
        load_config(write_yaml(tmp_path / "bad.yaml", config), [])


def test_unknown_key_in_override(run_config, tmp_path):
    path = write_yaml(tmp_path / "good.yaml", run_config())
    with pytest.raises(ConfigError, match=r"'train.optimizer.lrr'. Did you mean 'train.optimizer.lr'\?"):
        load_config(path, ["train.optimizer.lrr=0.1"])
    with pytest.raises(ConfigError, match=r"'model.d_modle'. Did you mean 'model.d_model'\?"):
        load_config(path, ["model.d_modle=64"])


def test_cli_rejects_key_before_work(run_config, tmp_path, capsys):
    path = write_yaml(tmp_path / "good.yaml", run_config())
    assert main(["pretrain", path, "train.schedul.name=linear"]) == 2
    assert "Did you mean 'train.schedule'?" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_resume_none_with_checkpoints(run_config):
    t5kit.pretrain(run_config(train={"max_steps": 3}))
    with pytest.raises(RunDirectoryError, match="train.resume=auto"):
        t5kit.pretrain(run_config(train={"max_steps": 6, "resume": "none"}))


def test_resume_auto_continues(run_config, tmp_path):
    t5kit.pretrain(run_config(train={"max_steps": 3}))
    result = t5kit.pretrain(run_config(train={"max_steps": 5}))
    assert result.steps == 5
    steps = [r["step"] for r in read_records(tmp_path / "run") if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 5]


def test_bf16_with_activation_checkpointing(run_config):
    config = run_config(train={"max_steps": 2, "precision": "bf16", "activation_checkpointing": True})
    result = t5kit.pretrain(config)
    assert math.isfinite(result.val_loss)


def test_data_config_is_the_data_pipelines():
    assert PretrainConfig.from_dict({}).data == DataConfig()
