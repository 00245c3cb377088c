"""Streaming generation: yield the tokens of a single input as they are decoded."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from t5kit.generate.config import GenerationConfig, GenerationError
from t5kit.generate.generation import check_inputs, eval_mode, prepare
from t5kit.generate.greedy import iterate_tokens
from t5kit.model import T5


def stream(
    model: T5,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    encoder_out: torch.Tensor | None = None,
    config: GenerationConfig | None = None,
) -> Iterator[int]:
    """Yield the generated token ids of one input ([1, L] ids or [1, L, D] encoder output), stop id included.

    Greedy or sampling only: beam search cannot commit to a token before it ends. The tokens equal
    `generate`'s for the same settings. The model stays in eval mode until the iterator is exhausted or
    closed, and each step runs under torch.inference_mode without leaking it to the caller between steps.
    """
    config = config or GenerationConfig()
    if config.num_beams > 1:
        raise GenerationError("streaming supports greedy decoding and sampling only; set num_beams=1")
    check_inputs(input_ids, attention_mask, encoder_out)
    rows = (input_ids if input_ids is not None else encoder_out).shape[0]
    if rows != 1:
        raise GenerationError(f"streaming takes a single input (batch of 1), got a batch of {rows}")

    generator = None
    if config.do_sample and config.seed is not None:
        generator = torch.Generator(device=model.shared.weight.device).manual_seed(config.seed)
    with eval_mode(model):
        with torch.inference_mode():
            decoder, _, ids = prepare(model, input_ids, attention_mask, encoder_out, config)
            steps = iterate_tokens(decoder, 1, config, ids, generator)
        while True:
            with torch.inference_mode():
                tokens = next(steps, None)
            if tokens is None:
                return
            yield int(tokens[0])
