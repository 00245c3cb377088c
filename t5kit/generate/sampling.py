"""Choose the next token from logits: block stop ids, warp with temperature, top-k and top-p, then pick.

Dimensions: N rows (batch, or batch times beams), V vocab.
"""

from __future__ import annotations

import torch

from t5kit.generate.config import GenerationConfig


def block_stop_tokens(logits: torch.Tensor, stop_ids: torch.Tensor, generated: int, min_new_tokens: int) -> None:
    """Set the stop ids' logits [N, V] to -inf in place while fewer than min_new_tokens are generated."""
    if generated < min_new_tokens:
        logits[:, stop_ids] = float("-inf")


def warp(logits: torch.Tensor, config: GenerationConfig) -> torch.Tensor:
    """Apply temperature, then top-k, then top-p to logits [N, V], in the order transformers uses."""
    if config.temperature != 1.0:
        logits = logits / config.temperature
    if config.top_k > 0 and config.top_k < logits.shape[-1]:
        threshold = torch.topk(logits, config.top_k, dim=-1).values[:, -1:]  # [N, 1]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    if config.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already reach top_p; the first always stays.
        drop_sorted = probs.cumsum(dim=-1) - probs >= config.top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def choose(logits: torch.Tensor, config: GenerationConfig, generator: torch.Generator | None) -> torch.Tensor:
    """Return the next token per row [N]: the argmax, or a sample of the warped distribution."""
    if not config.do_sample:
        return logits.argmax(dim=-1)
    probs = warp(logits, config).softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)
