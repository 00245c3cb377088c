"""Parameter counts of every preset, against transformers and against published sizes."""

from __future__ import annotations

import pytest
import torch
from transformers import MT5ForConditionalGeneration, T5ForConditionalGeneration

from t5kit.config.model import load_model_config, preset_names
from t5kit.model import T5, count_parameters
from tests.model.hf_oracle import hf_config

HF_PRESETS = [name for name in preset_names() if name.startswith(("t5-", "mt5-"))]
NEMO_SIZES = {"nemo-220m": 0.22e9, "nemo-3b": 2.8e9, "nemo-11b": 11.0e9, "nemo-23b": 23.5e9, "nemo-41b": 41.2e9}


def meta_count(preset: str) -> int:
    with torch.device("meta"):
        return count_parameters(T5(load_model_config(preset)))


def test_every_family_has_presets():
    names = preset_names()
    for prefix in ("t5-", "t5-v1_1-", "mt5-", "nemo-", "tiny"):
        assert any(name.startswith(prefix) for name in names), prefix
    assert len(HF_PRESETS) == 15


@pytest.mark.parametrize("preset", HF_PRESETS)
def test_count_matches_transformers(preset):
    config = load_model_config(preset)
    model_class = MT5ForConditionalGeneration if config.family == "mt5" else T5ForConditionalGeneration
    with torch.device("meta"):
        oracle = model_class(hf_config(config))
    expected = sum(p.numel() for p in oracle.parameters())
    # transformers 5.x ties lm_head to the embedding when built from a config, even for untied
    # families, so its count lacks the separate head that real v1.1 and mT5 checkpoints carry.
    if not config.tie_word_embeddings:
        expected += config.vocab_size * config.d_model
    assert meta_count(preset) == expected


@pytest.mark.parametrize(
    ("preset", "published"),
    [
        ("t5-small", 60_506_624),
        ("t5-base", 222_903_552),
        ("t5-v1_1-base", 247_577_856),
        ("mt5-small", 300_176_768),
    ],
)
def test_count_matches_real_checkpoints(preset, published):
    assert meta_count(preset) == published


@pytest.mark.parametrize(("preset", "size"), NEMO_SIZES.items())
def test_nemo_count_within_one_percent(preset, size):
    count = meta_count(preset)
    assert abs(count - size) / size < 0.01, f"{preset}: {count:,} vs {size:,.0f}"


@pytest.mark.parametrize("preset", [p for p in preset_names() if p.startswith("nemo-")])
def test_nemo_vocabulary_padded(preset):
    config = load_model_config(preset)
    assert config.vocab_size == 29_184
    assert config.vocab_size % 128 == 0
