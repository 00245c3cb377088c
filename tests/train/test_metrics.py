"""Metrics: the MFU FLOP count, the interval meter, the JSONL writer, TensorBoard events, memory."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from t5kit.config.model import load_model_config
from t5kit.model import T5
from t5kit.train.metrics import IntervalMeter, MetricsWriter, flops_per_sequence, memory_mib, read_metrics, weight_counts


def linear_weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Linear))


@pytest.mark.parametrize("preset", ["tiny-test", "tiny-test-t5", "tiny-test-nemo"])
def test_weight_counts_match_model(preset):
    config = load_model_config(preset)
    model = T5(config)
    cross_kv = sum(block.cross_attn.k.weight.numel() + block.cross_attn.v.weight.numel() for block in model.decoder.blocks)
    head = config.vocab_size * config.d_model  # a tied head has no Linear of its own
    encoder, decoder = weight_counts(config)
    assert encoder == linear_weights(model.encoder.blocks) + cross_kv
    assert decoder == linear_weights(model.decoder.blocks) - cross_kv + head


def test_flops_by_hand():
    # tiny-test: d_model 32, d_ff 64 gated, inner 32, 2 + 2 layers, vocab 256.
    # Encoder side 2 x (4096 + 6144) + 2 x 2048 = 24576; decoder side 2 x (4096 + 2048 + 6144) + 8192 = 32768.
    config = load_model_config("tiny-test")
    matmuls = 6 * (24576 * 10 + 32768 * 4)
    attention = 12 * 32 * (2 * 10 * 10 + 2 * (4 * 4 + 4 * 10))
    assert flops_per_sequence(config, 10, 4) == matmuls + attention == 2380800


def test_interval_meter_summary():
    meter = IntervalMeter()
    meter.add(loss_sum=30.0, z_loss_sum=0.0, target_tokens=10, encoder_tokens=40, flops=1e9)
    meter.add(loss_sum=10.0, z_loss_sum=0.0, target_tokens=10, encoder_tokens=40, flops=1e9)
    meter.started -= 2.0  # pretend 2 seconds passed
    summary = meter.summary(peak_flops=1e10, world_size=1)
    assert summary["loss"] == 2.0  # token-weighted: 40 nats over 20 tokens
    assert summary["encoder_tokens_per_s"] == pytest.approx(40.0, rel=0.05)
    assert summary["decoder_tokens_per_s"] == pytest.approx(10.0, rel=0.05)
    assert summary["mfu"] == pytest.approx(0.1, rel=0.05)
    assert "z_loss" not in summary
    assert meter.updates == 0  # a new interval started
    assert meter.loss_sum == 0.0


def test_interval_meter_state_round_trip():
    meter = IntervalMeter()
    meter.add(1.5, 0.25, 3, 7, 2.0)
    restored = IntervalMeter()
    restored.load_state_dict(meter.state_dict())
    assert restored.state_dict() == meter.state_dict()


def test_writer_jsonl_and_truncate(tmp_path):
    writer = MetricsWriter(tmp_path, tensorboard=False)
    for step in range(1, 5):
        writer.write({"kind": "train", "step": step, "loss": 1.0 / 3 + step})
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"kind": "train", "st')  # a line cut by a kill
    writer.truncate_after(2)
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [1, 2]
    assert records[1]["loss"] == 1.0 / 3 + 2  # floats round-trip exactly


def test_writer_disabled_off_rank_zero(tmp_path):
    writer = MetricsWriter(tmp_path / "run", enabled=False)
    writer.write({"kind": "train", "step": 1, "loss": 1.0})
    assert not (tmp_path / "run").exists()


def test_tensorboard_events(tmp_path):
    writer = MetricsWriter(tmp_path, tensorboard=True)
    writer.write({"kind": "train", "step": 1, "loss": 2.5, "mfu": None})
    writer.close()
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    assert events[0].stat().st_size > 0
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["mfu"] is None


def test_memory_is_positive():
    assert memory_mib(torch.device("cpu")) > 10
