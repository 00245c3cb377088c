"""Checkpoints: round trip, atomic writes, keep-last-K, newest-complete selection, RNG states."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import torch

from t5kit.config.model import load_model_config
from t5kit.model import T5
from t5kit.model.io import WEIGHTS_NAME, CheckpointError
from t5kit.train import checkpoint as ckpt


@pytest.fixture
def model() -> T5:
    return T5(load_model_config("tiny-test"))


def state(step: int) -> dict:
    return {"step": step, "ranks": [{"data": {"position": 3 * step}}], "numbers": torch.arange(4)}


def test_round_trip(tmp_path, model):
    path = ckpt.save_checkpoint(tmp_path, 5, model, state(5))
    assert path == tmp_path / "step_00000005"
    assert sorted(p.name for p in path.iterdir()) == ["config.yaml", "manifest.json", "model.safetensors", "trainer_state.pt"]
    fresh = T5(load_model_config("tiny-test"))
    loaded = ckpt.load_checkpoint(path, fresh)
    assert loaded["step"] == 5
    assert loaded["ranks"] == [{"data": {"position": 15}}]
    assert torch.equal(loaded["numbers"], torch.arange(4))
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name


def test_failed_save_leaves_nothing(tmp_path, model, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", crash)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(tmp_path, 3, model, state(3))
    assert list(tmp_path.iterdir()) == []


def test_partial_temp_dir_ignored(tmp_path, model, caplog):
    ckpt.save_checkpoint(tmp_path, 2, model, state(2))
    # What a SIGKILL during a save leaves: a hidden temporary directory with some files.
    partial = tmp_path / ".tmp-step_00000004-x1y2"
    partial.mkdir()
    (partial / WEIGHTS_NAME).write_bytes(b"partial")
    assert [step for step, _ in ckpt.list_checkpoints(tmp_path)] == [2]
    assert ckpt.find_latest_checkpoint(tmp_path) == tmp_path / "step_00000002"
    with caplog.at_level(logging.WARNING):
        ckpt.remove_temporary_dirs(tmp_path)
    assert not partial.exists()
    assert "partial checkpoint" in caplog.text


def test_keep_last(tmp_path, model):
    for step in range(1, 6):
        ckpt.save_checkpoint(tmp_path, step, model, state(step))
        ckpt.prune_checkpoints(tmp_path, keep_last=2)
    assert [step for step, _ in ckpt.list_checkpoints(tmp_path)] == [4, 5]


def test_latest_skips_corrupt_and_incomplete(tmp_path, model, caplog):
    for step in (2, 4, 6, 8):
        ckpt.save_checkpoint(tmp_path, step, model, state(step))
    (tmp_path / "step_00000008" / "manifest.json").unlink()  # incomplete
    weights = tmp_path / "step_00000006" / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-10])  # truncated
    with caplog.at_level(logging.WARNING):
        assert ckpt.find_latest_checkpoint(tmp_path) == tmp_path / "step_00000004"
    assert "step 8" in caplog.text
    assert "manifest.json is missing" in caplog.text
    assert "step 6" in caplog.text
    assert "model.safetensors has" in caplog.text


def test_corrupt_checkpoint_error(tmp_path, model):
    path = ckpt.save_checkpoint(tmp_path, 1, model, state(1))
    weights = path / WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 of model.safetensors does not match"):
        ckpt.load_checkpoint(path, model)


def test_wrong_model_error(tmp_path, model):
    path = ckpt.save_checkpoint(tmp_path, 1, model, state(1))
    other = T5(load_model_config("tiny-test", {"d_ff": 48}))
    with pytest.raises(CheckpointError, match="has shape"):
        ckpt.load_checkpoint(path, other)


def test_rng_round_trip(tmp_path):
    saved = ckpt.rng_state()
    torch.save(saved, tmp_path / "rng.pt")
    first = (random.random(), np.random.rand(), torch.rand(3))
    ckpt.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == second[0]
    assert first[1] == second[1]
    assert torch.equal(first[2], second[2])
