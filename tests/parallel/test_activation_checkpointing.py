"""Activation checkpointing: same parameter names, same loss and gradients (dropout on)."""

from __future__ import annotations

import pytest
import torch

from t5kit.config.model import load_model_config
from t5kit.model import T5, shift_right
from t5kit.model.io import model_state_dict
from t5kit.parallel.checkpointing import apply_activation_checkpointing


@pytest.fixture(autouse=True)
def _one_thread():
    # A tiny model gains nothing from more threads, and on a shared machine it loses a lot.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def loss_and_grads(model: T5, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(2, 200, (2, 10), generator=generator)
    labels = torch.randint(2, 200, (2, 6), generator=generator)
    torch.manual_seed(seed)
    logits = model(input_ids, shift_right(labels))
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


def test_same_keys_loss_and_grads():
    config = load_model_config("tiny-test", {"dropout_rate": 0.2})
    torch.manual_seed(0)
    plain = T5(config)
    wrapped = T5(config)
    wrapped.load_state_dict(plain.state_dict())
    apply_activation_checkpointing(wrapped)

    assert list(model_state_dict(wrapped)) == list(model_state_dict(plain))
    want_loss, want = loss_and_grads(plain, seed=5)
    got_loss, got = loss_and_grads(wrapped, seed=5)
    assert torch.equal(got_loss, want_loss)
    clean = {name.replace("._checkpoint_wrapped_module", ""): grad for name, grad in got.items()}
    assert clean.keys() == want.keys()
    for name, grad in want.items():
        torch.testing.assert_close(clean[name], grad, rtol=0, atol=0, msg=name)
