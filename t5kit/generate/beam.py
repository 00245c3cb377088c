"""Beam search, scored and stopped by the rules of transformers' beam search (5.x), so outputs match.

Dimensions: B batch, W beams, K candidates kept per step (2W, or more with several stop ids),
T max_new_tokens, V vocab.

Each step extends every running beam by every token and keeps the K best continuations by summed
log-probability. A continuation that ends in a stop id (or reaches T) and ranks among the first W
becomes a finished hypothesis, scored by logprob / length**length_penalty. The best W others keep
running. `early_stopping` decides when the finished set can no longer improve.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from t5kit.generate.config import GenerationConfig, SpecialIds
from t5kit.generate.decoders import IncrementalDecoder
from t5kit.generate.sampling import block_stop_tokens

# Score that takes a beam out of the race, as transformers uses (finite, so sums stay ordered).
EXCLUDED = -1.0e9


@dataclass
class BeamState:
    """Running and finished beams of every batch item."""

    running_tokens: torch.Tensor  # [B, W, T]
    running_scores: torch.Tensor  # [B, W] summed log-probabilities
    finished_tokens: torch.Tensor  # [B, W, T]
    finished_scores: torch.Tensor  # [B, W] length-penalised scores
    finished_lengths: torch.Tensor  # [B, W]
    is_finished: torch.Tensor  # [B, W] slot contains a finished hypothesis
    improvable: torch.Tensor  # [B, 1] running beams may still beat the finished ones

    @classmethod
    def start(cls, batch: int, beams: int, length: int, pad: int, device: torch.device) -> BeamState:
        tokens = torch.full((batch, beams, length), pad, dtype=torch.long, device=device)
        running_scores = torch.zeros((batch, beams), device=device)
        # Only the first beam is live at the start, so the W beams do not all pick the same tokens.
        running_scores[:, 1:] = EXCLUDED
        return cls(
            running_tokens=tokens,
            running_scores=running_scores,
            finished_tokens=tokens.clone(),
            finished_scores=torch.full((batch, beams), EXCLUDED, device=device),
            finished_lengths=torch.zeros((batch, beams), dtype=torch.long, device=device),
            is_finished=torch.zeros((batch, beams), dtype=torch.bool, device=device),
            improvable=torch.ones((batch, 1), dtype=torch.bool, device=device),
        )


def _take(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Gather along the beam axis: tensor [B, X, ...], index [B, Y] -> [B, Y, ...]."""
    while index.dim() < tensor.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(tensor, index, dim=1)


def _advance_running(
    state: BeamState, scores: torch.Tensor, source: torch.Tensor, sequences: torch.Tensor, stops: torch.Tensor
) -> torch.Tensor:
    """Keep the W best candidates that did not stop as running beams; return their source beams [B, W]."""
    beams = state.running_scores.shape[1]
    running_scores = scores + stops.to(torch.float32) * EXCLUDED
    keep = torch.topk(running_scores, k=beams).indices  # [B, W]
    state.running_tokens = _take(sequences, keep)
    state.running_scores = _take(running_scores, keep)
    return _take(source, keep)


def _update_finished(
    state: BeamState, scores: torch.Tensor, sequences: torch.Tensor, stops: torch.Tensor, length: int, config: GenerationConfig
) -> None:
    """Merge candidates that stopped among the first W into the W best finished hypotheses."""
    beams = state.running_scores.shape[1]
    in_top = torch.arange(scores.shape[1], device=scores.device) < beams
    just_finished = stops & in_top[None, :]

    scores = scores / (length**config.length_penalty)
    full = torch.all(state.is_finished, dim=-1, keepdim=True) & (config.early_stopping is True)
    scores += full.to(torch.float32) * EXCLUDED
    scores += (~state.improvable).to(torch.float32) * EXCLUDED
    scores += (~just_finished) * EXCLUDED

    merged_scores = torch.cat([state.finished_scores, scores], dim=1)
    best = torch.topk(merged_scores, k=beams).indices
    lengths = torch.full_like(scores, length, dtype=torch.long)
    state.finished_tokens = _take(torch.cat([state.finished_tokens, sequences], dim=1), best)
    state.finished_scores = _take(merged_scores, best)
    state.finished_lengths = _take(torch.cat([state.finished_lengths, lengths], dim=1), best)
    state.is_finished = _take(torch.cat([state.is_finished, just_finished], dim=1), best)


def _update_improvable(state: BeamState, length: int, config: GenerationConfig) -> None:
    """Clear `improvable` for items whose best running beam can no longer beat their worst finished one."""
    if config.early_stopping == "never" and config.length_penalty > 0.0:
        best_length = config.max_new_tokens
    else:
        best_length = length
    best_running = state.running_scores[:, :1] / (best_length**config.length_penalty)
    worst_finished = torch.where(
        state.is_finished, torch.min(state.finished_scores, dim=1, keepdim=True).values, EXCLUDED
    )
    state.improvable &= torch.any(best_running > worst_finished, dim=-1, keepdim=True)


def beam_search(decoder: IncrementalDecoder, batch: int, config: GenerationConfig, ids: SpecialIds) -> torch.Tensor:
    """Return the best finished beam of each batch item [B, T'], T' the longest of them.

    The decoder has B * W rows, beam-major within each item (rows b*W .. b*W + W-1).
    """
    beams, max_length = config.num_beams, config.max_new_tokens
    device = ids.stop.device
    candidates = max(2, 1 + ids.stop.numel()) * beams
    offsets = torch.arange(batch, device=device)[:, None] * beams  # [B, 1]
    state = BeamState.start(batch, beams, max_length, ids.pad, device)
    tokens = torch.full((batch * beams,), ids.start, dtype=torch.long, device=device)

    for step in range(max_length):
        log_probs = torch.log_softmax(decoder.step(tokens), dim=-1)  # [B*W, V]
        block_stop_tokens(log_probs, ids.stop, step, config.min_new_tokens)
        vocab = log_probs.shape[-1]
        totals = log_probs.view(batch, beams, vocab) + state.running_scores[:, :, None]

        # The K best continuations over all beams of an item, and the sequences they make.
        scores, index = torch.topk(totals.view(batch, -1), k=candidates)  # [B, K]
        source, new_tokens = index // vocab, index % vocab
        sequences = _take(state.running_tokens, source)  # [B, K, T]
        sequences[:, :, step] = new_tokens
        stops = torch.isin(new_tokens, ids.stop) | (step + 1 >= max_length)

        source_beams = _advance_running(state, scores, source, sequences, stops)
        _update_finished(state, scores, sequences, stops, step + 1, config)
        decoder.reorder((source_beams + offsets).flatten())
        tokens = state.running_tokens[:, :, step].flatten()

        _update_improvable(state, step + 1, config)
        all_full = bool(state.is_finished.all()) and config.early_stopping is True
        if not bool(state.improvable.any()) or all_full or bool(stops.all()):
            break

    length = int(state.finished_lengths[:, 0].max())
    return state.finished_tokens[:, 0, :length]
