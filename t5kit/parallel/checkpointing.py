"""Activation checkpointing: recompute each block in the backward pass instead of storing its activations."""

from __future__ import annotations

import logging

from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointImpl, checkpoint_wrapper

logger = logging.getLogger(__name__)


def apply_activation_checkpointing(model: nn.Module) -> nn.Module:
    """Wrap every encoder and decoder block of a T5 in place and return the model.

    The wrapper uses non-reentrant torch.utils.checkpoint, which restores the RNG state for the
    recomputation, so dropout masks and gradients equal those of the unwrapped model. Its
    state_dict hooks remove the wrapper's name from parameter keys, so checkpoints keep their keys.
    """
    count = 0
    for stack in (model.encoder, model.decoder):
        for index, block in enumerate(stack.blocks):
            stack.blocks[index] = checkpoint_wrapper(block, checkpoint_impl=CheckpointImpl.NO_REENTRANT)
            count += 1
    logger.info("activation checkpointing applied to %d blocks", count)
    return model
