"""Evaluate a tuned model on dev questions: greedy decoding in batches, then SQuAD EM and F1."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from t5kit.data.squad import SquadExample
from t5kit.data.squad_prompts import PromptFeatures, batches
from t5kit.eval.squad_metric import squad_scores
from t5kit.generate import GenerationConfig, generate
from t5kit.model.io import atomic_write
from t5kit.tune.methods import decoder_model, encode_batch


@dataclass
class EvalResult:
    """Scores and predictions of one model on one task's dev questions."""

    exact_match: float
    """Exact match in percent."""
    f1: float
    """Token F1 in percent."""
    predictions: dict[str, str]
    """Question id -> predicted answer text."""


def answer_ids(generated: torch.Tensor, tokenizer, prefix_ids: Sequence[int] = ()) -> list[list[int]]:
    """Return the answer tokens of each generated row [T]: after the target prefix, before EOS or any other special id."""
    answers = []
    for row in generated.tolist():
        if prefix_ids and row[: len(prefix_ids)] == list(prefix_ids):
            row = row[len(prefix_ids) :]
        end = next((i for i, token in enumerate(row) if tokenizer.is_special(token)), len(row))
        answers.append(row[:end])
    return answers


@torch.no_grad()
def predict(
    model: nn.Module,
    features: Sequence[PromptFeatures],
    tokenizer,
    batch_size: int,
    max_new_tokens: int,
    device: torch.device,
    autocast: contextlib.AbstractContextManager | None = None,
    prefix_ids: Sequence[int] = (),
) -> dict[str, str]:
    """Decode an answer greedily for every feature and return {question id: answer text}.

    Each answer is cut after `prefix_ids` (the task's target prefix) and before EOS or any other
    special token, such as the next sentinel after a span-corruption style answer.
    """
    was_training = model.training
    model.eval()
    decoder = decoder_model(model)
    generation = GenerationConfig(max_new_tokens=max_new_tokens, eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id)
    predictions = {}
    for batch in batches(features, batch_size, tokenizer.pad_id, sort_by_length=True):
        batch = batch.to(device)
        with autocast or contextlib.nullcontext():
            encoder_out = encode_batch(model, batch)
            generated = generate(decoder, encoder_out=encoder_out, attention_mask=batch.attention_mask, config=generation)
        for question_id, ids in zip(batch.ids, answer_ids(generated, tokenizer, prefix_ids)):
            predictions[question_id] = tokenizer.decode(ids).strip()
    model.train(was_training)
    return predictions


def score(examples: Sequence[SquadExample], predictions: dict[str, str]) -> EvalResult:
    """Score predictions against the gold answers of `examples`."""
    result = squad_scores(examples, predictions)
    return EvalResult(result.exact_match, result.f1, predictions)


def write_predictions(predictions: dict[str, str], path: Path) -> Path:
    """Write predictions in the official SQuAD format, a JSON object {question id: answer}."""
    text = json.dumps(predictions, indent=1, ensure_ascii=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path
