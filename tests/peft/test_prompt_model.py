"""PromptModel: frozen base, prompts in the encoder input only, several tasks that do not interfere."""

from __future__ import annotations

import pytest
import torch

from t5kit.model import shift_right
from t5kit.peft import PromptEncoder, PromptModel, PromptTable, PromptTask
from tests.peft.helpers import prompt_inputs, tiny_model


def _task(name: str, size: int, method: str = "prompt-tuning") -> PromptTask:
    return PromptTask(name, method, size, "<prompt> question: {question} context: {context}")


def _table(model: PromptModel, size: int) -> PromptTable:
    table = PromptTable(size, model.base.config.d_model)
    table.init_random(model.base.shared)
    return table


def _train_steps(model: PromptModel, task_id: int, prompt_length: int, steps: int = 3) -> None:
    """Take a few AdamW steps on random targets for one task."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    input_ids, virtual_mask, attention_mask = prompt_inputs(prompt_length, seed=task_id)
    task_ids = torch.full((2,), task_id)
    labels = torch.randint(3, 200, (2, 5))
    model.train()
    for _ in range(steps):
        logits = model(input_ids, shift_right(labels), attention_mask, virtual_mask, task_ids)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def test_only_prompt_requires_grad():
    model = PromptModel(tiny_model())
    model.add_task(_task("qa", 4, "p-tuning"), PromptEncoder(4, model.base.config.d_model))
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert trainable
    assert all(name.startswith("prompts.qa.") for name in trainable)
    assert not any(param.requires_grad for param in model.base.parameters())


def test_training_leaves_base_unchanged():
    model = PromptModel(tiny_model())
    model.add_task(_task("qa", 4), _table(model, 4))
    base_before = {name: value.clone() for name, value in model.base.state_dict().items()}
    prompt_before = model.prompts["qa"].weight.detach().clone()

    _train_steps(model, 0, 4)

    for name, value in model.base.state_dict().items():
        assert torch.equal(value, base_before[name]), name
    assert not torch.equal(model.prompts["qa"].weight, prompt_before)


def test_train_mode_keeps_base_in_eval():
    model = PromptModel(tiny_model())
    model.train()
    assert model.training
    assert not model.base.training
    assert not any(module.training for module in model.base.modules())


def test_prompt_changes_encoder_output_only_through_virtual_positions():
    model = PromptModel(tiny_model())
    model.add_task(_task("qa", 3), _table(model, 3))
    input_ids, virtual_mask, _ = prompt_inputs(3, start=1)
    embeds = model.embed(input_ids, virtual_mask, torch.zeros(2, dtype=torch.long))
    assert torch.equal(embeds[virtual_mask], model.prompts["qa"].weight.repeat(2, 1))
    assert torch.equal(embeds[~virtual_mask], model.base.shared(input_ids)[~virtual_mask])


def test_tasks_trained_later_leave_earlier_unchanged():
    model = PromptModel(tiny_model())
    model.add_task(_task("first", 4), _table(model, 4))
    model.set_trainable(["first"])
    _train_steps(model, 0, 4)
    first = model.prompts["first"].weight.detach().clone()

    second_id = model.add_task(_task("second", 6), _table(model, 6))
    model.set_trainable(["second"])
    second_before = model.prompts["second"].weight.detach().clone()
    _train_steps(model, second_id, 6)

    assert torch.equal(model.prompts["first"].weight, first)
    assert not torch.equal(model.prompts["second"].weight, second_before)


def test_mixed_batch_matches_single_task_batches():
    model = PromptModel(tiny_model())
    model.add_task(_task("a", 3), _table(model, 3))
    model.add_task(_task("b", 5), _table(model, 5))
    ids_a, mask_a, attention_a = prompt_inputs(3, batch=1, length=10, seed=1)
    ids_b, mask_b, attention_b = prompt_inputs(5, batch=1, length=10, seed=2)

    with torch.no_grad():
        mixed = model.encode(
            torch.cat([ids_a, ids_b]),
            torch.cat([attention_a, attention_b]),
            torch.cat([mask_a, mask_b]),
            torch.tensor([0, 1]),
        )
        alone_a = model.encode(ids_a, attention_a, mask_a, torch.tensor([0]))
        alone_b = model.encode(ids_b, attention_b, mask_b, torch.tensor([1]))

    torch.testing.assert_close(mixed[0], alone_a[0])
    torch.testing.assert_close(mixed[1], alone_b[0])


def test_joint_training_updates_each_task_prompt():
    model = PromptModel(tiny_model())
    model.add_task(_task("a", 3), _table(model, 3))
    model.add_task(_task("b", 3), _table(model, 3))
    before = {name: prompt.weight.detach().clone() for name, prompt in model.prompts.items()}
    ids, mask, attention = prompt_inputs(3, batch=2)
    labels = torch.randint(3, 200, (2, 4))
    logits = model(ids, shift_right(labels), attention, mask, torch.tensor([0, 1]))
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten()).backward()

    grads = {name: prompt.weight.grad for name, prompt in model.prompts.items()}
    assert all(grad is not None and grad.abs().sum() > 0 for grad in grads.values())
    assert all(torch.equal(model.prompts[name].weight, before[name]) for name in before)


def test_virtual_count_mismatch_raises():
    model = PromptModel(tiny_model())
    model.add_task(_task("qa", 4), _table(model, 4))
    ids, mask, attention = prompt_inputs(3)
    with pytest.raises(ValueError, match="3 virtual positions"):
        model.encode(ids, attention, mask, torch.zeros(2, dtype=torch.long))


def test_duplicate_task_raises():
    model = PromptModel(tiny_model())
    model.add_task(_task("qa", 2), _table(model, 2))
    with pytest.raises(ValueError, match="already has a prompt"):
        model.add_task(_task("qa", 2), _table(model, 2))


def test_unknown_task_id_raises():
    model = PromptModel(tiny_model())
    with pytest.raises(KeyError, match="no prompt for task"):
        model.task_id("missing")
