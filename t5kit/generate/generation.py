"""`generate`: encode (or take a precomputed encoder output), then decode greedily, by sampling or by beams.

Dimensions: B batch, L encoder length, D d_model, T generated tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from t5kit.generate.beam import beam_search
from t5kit.generate.config import GenerationConfig, GenerationError, SpecialIds, resolve_ids
from t5kit.generate.decoders import IncrementalDecoder, make_decoder
from t5kit.generate.greedy import greedy_search
from t5kit.model import T5


@contextmanager
def eval_mode(model: T5) -> Iterator[None]:
    """Switch dropout off for the duration, then restore the model's training flag."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def check_inputs(
    input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, encoder_out: torch.Tensor | None
) -> None:
    """Raise GenerationError unless exactly one of input_ids [B, L] and encoder_out [B, L, D] is given,
    with a matching attention_mask [B, L] or none."""
    if (input_ids is None) == (encoder_out is None):
        raise GenerationError("pass exactly one of input_ids [B, L] and encoder_out [B, L, D]")
    if input_ids is not None and input_ids.dim() != 2:
        raise GenerationError(f"input_ids must be [batch, length], got shape {tuple(input_ids.shape)}")
    if encoder_out is not None and encoder_out.dim() != 3:
        raise GenerationError(f"encoder_out must be [batch, length, d_model], got shape {tuple(encoder_out.shape)}")
    source = input_ids if input_ids is not None else encoder_out
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(source.shape[:2]):
        raise GenerationError(
            f"attention_mask has shape {tuple(attention_mask.shape)}, expected {tuple(source.shape[:2])} "
            "(batch, encoder length)"
        )


def prepare(
    model: T5,
    input_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    encoder_out: torch.Tensor | None,
    config: GenerationConfig,
) -> tuple[IncrementalDecoder, int, SpecialIds]:
    """Encode if needed, repeat rows for beams, and build the incremental decoder; return it, B and the ids."""
    check_inputs(input_ids, attention_mask, encoder_out)
    if encoder_out is None:
        encoder_out = model.encode(input_ids, attention_mask)
    batch = encoder_out.shape[0]
    ids = resolve_ids(config, model.config, encoder_out.device)
    if config.num_beams > 1:
        encoder_out = encoder_out.repeat_interleave(config.num_beams, dim=0)
        if attention_mask is not None:
            attention_mask = attention_mask.repeat_interleave(config.num_beams, dim=0)
    return make_decoder(model, encoder_out, attention_mask, config), batch, ids


def generate(
    model: T5,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    encoder_out: torch.Tensor | None = None,
    config: GenerationConfig | None = None,
) -> torch.Tensor:
    """Generate token ids [B, T] for encoder inputs [B, L] or a precomputed encoder output [B, L, D].

    `attention_mask` [B, L] marks real encoder positions (1) and padding (0), for either input. The
    output contains the generated tokens only, without the start token. Each row ends at its first stop
    id, which is kept, and is padded with the padding id up to the longest row. Dropout is off during the call.
    """
    config = config or GenerationConfig()
    generator = None
    if config.do_sample and config.seed is not None:
        generator = torch.Generator(device=model.shared.weight.device).manual_seed(config.seed)
    with eval_mode(model), torch.inference_mode():
        decoder, batch, ids = prepare(model, input_ids, attention_mask, encoder_out, config)
        if config.num_beams > 1:
            return beam_search(decoder, batch, config, ids)
        return greedy_search(decoder, batch, config, ids, generator)
