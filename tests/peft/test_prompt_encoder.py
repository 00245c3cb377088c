"""Prompt tables and prompt encoders: shapes, init, and the reduction of an encoder to a table."""

from __future__ import annotations

import pytest
import torch

from t5kit.peft import PromptEncoder, PromptModel, PromptTable, PromptTask
from tests.peft.helpers import prompt_inputs, tiny_model


@pytest.mark.parametrize("kind", ["mlp", "lstm"])
def test_encoder_output_shape(kind):
    encoder = PromptEncoder(7, 32, kind=kind, hidden_size=24)
    assert encoder().shape == (7, 32)
    assert encoder.num_virtual_tokens == 7


def test_lstm_is_bidirectional():
    encoder = PromptEncoder(5, 16, kind="lstm", hidden_size=12)
    assert encoder.lstm.bidirectional
    assert encoder.lstm.hidden_size == 6


def test_encoder_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown prompt encoder"):
        PromptEncoder(4, 16, kind="gru")


@pytest.mark.parametrize("kind", ["mlp", "lstm"])
def test_reduced_table_gives_same_encoder_output(kind):
    base = tiny_model()
    encoder = PromptEncoder(4, base.config.d_model, kind=kind, dropout=0.2)
    encoder.input.init_random(base.shared)
    task = PromptTask("qa", "p-tuning", 4, "<prompt> {context}")
    model = PromptModel(base)
    model.add_task(task, encoder)
    input_ids, virtual_mask, attention_mask = prompt_inputs(4)
    task_ids = torch.zeros(2, dtype=torch.long)

    model.eval()
    with torch.no_grad():
        before = model.encode(input_ids, attention_mask, virtual_mask, task_ids)
        model.reduce()
        after = model.encode(input_ids, attention_mask, virtual_mask, task_ids)

    assert isinstance(model.prompts["qa"], PromptTable)
    assert torch.equal(before, after)


def test_table_init_random_matches_embedding_scale():
    base = tiny_model()
    table = PromptTable(200, base.config.d_model)
    table.init_random(base.shared)
    expected = base.shared.weight.std().item()
    assert abs(table.weight.std().item() - expected) < 0.1 * expected


def test_table_init_from_ids_repeats_text():
    base = tiny_model()
    table = PromptTable(5, base.config.d_model)
    table.init_from_ids(base.shared, [7, 9])
    expected = base.shared.weight[[7, 9, 7, 9, 7]]
    assert torch.equal(table.weight, expected)


def test_table_init_from_empty_text_raises():
    table = PromptTable(3, 32)
    with pytest.raises(ValueError, match="no tokens"):
        table.init_from_ids(tiny_model().shared, [])
