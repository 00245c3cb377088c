"""Saving and loading prompts and LoRA tensors, and refusing a base with other weights."""

from __future__ import annotations

import pytest
import torch
import yaml

from t5kit.model import load_model, save_model, shift_right
from t5kit.peft import (
    BaseMismatchError,
    LoRAConfig,
    PromptEncoder,
    PromptModel,
    PromptTask,
    apply_lora,
    base_reference,
    load_lora,
    load_prompt_model,
    load_prompts,
    merge_lora,
    save_lora,
    save_prompts,
)
from t5kit.peft.io import AdapterFileError
from tests.peft.helpers import prompt_inputs, tiny_model

TEMPLATE = "<prompt> question: {question} context: {context}"


@pytest.fixture
def base_dir(tmp_path):
    return save_model(tiny_model(seed=0), tmp_path / "base")


@pytest.fixture
def other_base_dir(tmp_path):
    return save_model(tiny_model(seed=1), tmp_path / "other")


def _prompt_model(base_dir) -> PromptModel:
    model = PromptModel(load_model(base_dir))
    for name, size in (("a", 3), ("b", 5)):
        encoder = PromptEncoder(size, model.base.config.d_model, kind="lstm")
        encoder.input.init_random(model.base.shared)
        model.add_task(PromptTask(name, "p-tuning", size, TEMPLATE), encoder)
    return model.eval()


def _encode(model: PromptModel, size: int, task: int) -> torch.Tensor:
    ids, mask, attention = prompt_inputs(size)
    with torch.no_grad():
        return model.encode(ids, attention, mask, torch.full((2,), task))


def test_prompts_round_trip(base_dir, tmp_path):
    model = _prompt_model(base_dir)
    expected = {"a": _encode(model, 3, 0), "b": _encode(model, 5, 1)}
    save_prompts(model, tmp_path / "prompts", base_reference(base_dir))

    loaded = load_prompt_model(tmp_path / "prompts")
    assert loaded.tasks == model.tasks
    assert torch.equal(_encode(loaded, 3, loaded.task_id("a")), expected["a"])
    assert torch.equal(_encode(loaded, 5, loaded.task_id("b")), expected["b"])
    assert not any(param.requires_grad for param in loaded.parameters())


def test_prompt_file_holds_only_prompts(base_dir, tmp_path):
    from safetensors.torch import load_file

    directory = save_prompts(_prompt_model(base_dir), tmp_path / "prompts", base_reference(base_dir))
    tensors = load_file(directory / "prompts.safetensors")
    assert {name: tuple(t.shape) for name, t in tensors.items()} == {"a": (3, 32), "b": (5, 32)}
    meta = yaml.safe_load((directory / "prompts.yaml").read_text())
    assert meta["base"] == {"path": str(base_dir.resolve()), "sha256": base_reference(base_dir).sha256}
    assert [task["name"] for task in meta["tasks"]] == ["a", "b"]


def test_prompts_on_other_base_raise(base_dir, other_base_dir, tmp_path):
    save_prompts(_prompt_model(base_dir), tmp_path / "prompts", base_reference(base_dir))
    with pytest.raises(BaseMismatchError, match="was trained on the base"):
        load_prompt_model(tmp_path / "prompts", base_dir=other_base_dir)


def test_load_selected_task_only(base_dir, tmp_path):
    save_prompts(_prompt_model(base_dir), tmp_path / "prompts", base_reference(base_dir))
    model = PromptModel(load_model(base_dir))
    assert load_prompts(tmp_path / "prompts", model, base_reference(base_dir), tasks=["b"]) == ["b"]
    assert list(model.prompts) == ["b"]
    with pytest.raises(AdapterFileError, match="no prompt for task 'c'"):
        load_prompts(tmp_path / "prompts", PromptModel(load_model(base_dir)), base_reference(base_dir), tasks=["c"])


def test_missing_prompt_dir_raises(base_dir, tmp_path):
    with pytest.raises(AdapterFileError, match="not a t5kit prompts directory"):
        load_prompts(tmp_path, PromptModel(load_model(base_dir)), base_reference(base_dir))


def _trained_lora(base_dir):
    model = load_model(base_dir)
    apply_lora(model, LoRAConfig(rank=2, dropout=0.0))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("lora_b"):
                param.normal_()
    return model.eval()


def test_lora_round_trip(base_dir, tmp_path):
    model = _trained_lora(base_dir)
    ids, labels = torch.randint(3, 200, (2, 7)), torch.randint(3, 200, (2, 3))
    with torch.no_grad():
        expected = model(ids, shift_right(labels))
    save_lora(model, LoRAConfig(rank=2, dropout=0.0), tmp_path / "lora", base_reference(base_dir))

    loaded = load_model(base_dir)
    load_lora(tmp_path / "lora", loaded, base_reference(base_dir))
    merge_lora(loaded)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(ids, shift_right(labels)), expected, rtol=1e-4, atol=1e-4)


def test_lora_on_other_base_raises(base_dir, other_base_dir, tmp_path):
    save_lora(_trained_lora(base_dir), LoRAConfig(rank=2), tmp_path / "lora", base_reference(base_dir))
    with pytest.raises(BaseMismatchError, match="tune a new one on this base"):
        load_lora(tmp_path / "lora", load_model(other_base_dir), base_reference(other_base_dir))


def test_prompt_dir_is_not_lora(base_dir, tmp_path):
    save_prompts(_prompt_model(base_dir), tmp_path / "adapter", base_reference(base_dir))
    (tmp_path / "adapter" / "lora.yaml").write_text("kind: prompts\nformat_version: 1\n")
    (tmp_path / "adapter" / "lora.safetensors").write_bytes(b"")
    with pytest.raises(AdapterFileError, match="expected kind 'lora'"):
        load_lora(tmp_path / "adapter", load_model(base_dir), base_reference(base_dir))
