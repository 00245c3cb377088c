"""LoRA: zero init keeps the base function, merging keeps the trained function, only LoRA trains."""

from __future__ import annotations

import pytest
import torch

from t5kit.config.core import ConfigError
from t5kit.model import shift_right
from t5kit.peft import LoRAConfig, LoRALinear, apply_lora, merge_lora
from tests.peft.helpers import tiny_model


def _batch(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, 200, (2, 9), generator=generator)
    labels = torch.randint(3, 200, (2, 4), generator=generator)
    return input_ids, labels


def _logits(model, input_ids, labels):
    with torch.no_grad():
        return model(input_ids, shift_right(labels))


def test_zero_init_keeps_logits():
    model = tiny_model()
    input_ids, labels = _batch()
    before = _logits(model, input_ids, labels)
    apply_lora(model, LoRAConfig(rank=4))
    model.eval()
    assert torch.equal(_logits(model, input_ids, labels), before)


def test_targets_q_and_v_only():
    model = tiny_model()
    names = apply_lora(model, LoRAConfig(targets=["q", "v"]))
    # Two stacks: encoder self-attention, decoder self- and cross-attention, q and v each.
    layers = model.config.num_layers
    assert len(names) == 2 * layers + 4 * model.config.num_decoder_layers
    assert all(name.rsplit(".", 1)[-1] in ("q", "v") for name in names)
    assert all(isinstance(model.get_submodule(name), LoRALinear) for name in names)


def test_dotted_pattern_targets_encoder_only():
    model = tiny_model()
    names = apply_lora(model, LoRAConfig(targets=["encoder.*.q"]))
    assert names == [f"encoder.blocks.{i}.self_attn.q" for i in range(model.config.num_layers)]


def test_only_lora_requires_grad():
    model = tiny_model()
    apply_lora(model, LoRAConfig())
    trainable = [name for name, param in model.named_parameters() if param.requires_grad]
    assert trainable
    assert all(name.endswith((".lora_a", ".lora_b")) for name in trainable)


def test_merge_keeps_trained_logits():
    model = tiny_model()
    apply_lora(model, LoRAConfig(rank=4, alpha=8, dropout=0.1))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    input_ids, labels = _batch()
    model.train()
    for _ in range(3):
        logits = model(input_ids, shift_right(labels))
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten()).backward()
        optimizer.step()
        optimizer.zero_grad()

    model.eval()
    test_ids, test_labels = _batch(seed=1)
    unmerged = _logits(model, test_ids, test_labels)
    assert merge_lora(model) == 2 * model.config.num_layers + 4 * model.config.num_decoder_layers
    assert not any(isinstance(module, LoRALinear) for module in model.modules())
    torch.testing.assert_close(_logits(model, test_ids, test_labels), unmerged, rtol=1e-5, atol=1e-5)


def test_training_changes_logits():
    model = tiny_model()
    input_ids, labels = _batch()
    base_logits = _logits(model, input_ids, labels)
    apply_lora(model, LoRAConfig(rank=2, dropout=0.0))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    logits = model(input_ids, shift_right(labels))
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten()).backward()
    optimizer.step()
    assert not torch.allclose(_logits(model.eval(), input_ids, labels), base_logits)


def test_unmatched_targets_raise():
    with pytest.raises(ConfigError, match="match no linear layer"):
        apply_lora(tiny_model(), LoRAConfig(targets=["query"]))


def test_config_rejects_bad_rank():
    with pytest.raises(ConfigError, match="lora.rank"):
        LoRAConfig(rank=0)
