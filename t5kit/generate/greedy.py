"""Token-by-token decoding: greedy (the most likely token) or sampling, one new token per row per step.

Dimensions: N rows, T generated tokens.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from t5kit.generate.config import GenerationConfig, SpecialIds
from t5kit.generate.decoders import IncrementalDecoder
from t5kit.generate.sampling import block_stop_tokens, choose


def iterate_tokens(
    decoder: IncrementalDecoder,
    rows: int,
    config: GenerationConfig,
    ids: SpecialIds,
    generator: torch.Generator | None = None,
) -> Iterator[torch.Tensor]:
    """Yield each step's tokens [N] until every row has produced a stop id or max_new_tokens is reached.

    Rows that have stopped get the padding id, as transformers writes them.
    """
    tokens = torch.full((rows,), ids.start, dtype=torch.long, device=ids.stop.device)
    stopped = torch.zeros(rows, dtype=torch.bool, device=ids.stop.device)
    for generated in range(config.max_new_tokens):
        logits = decoder.step(tokens)  # [N, V]
        block_stop_tokens(logits, ids.stop, generated, config.min_new_tokens)
        tokens = choose(logits, config, generator).masked_fill(stopped, ids.pad)
        yield tokens
        stopped |= torch.isin(tokens, ids.stop)
        if bool(stopped.all()):
            return


def greedy_search(
    decoder: IncrementalDecoder,
    rows: int,
    config: GenerationConfig,
    ids: SpecialIds,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return the generated tokens [N, T], T being the longest row's length."""
    return torch.stack(list(iterate_tokens(decoder, rows, config, ids, generator)), dim=1)
