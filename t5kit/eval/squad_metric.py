"""SQuAD exact match and F1, computed as the official SQuAD v1.1 evaluation script (evaluate-v1.1.py) does.

Both metrics compare normalised text: lower case, ASCII punctuation (`string.punctuation`) removed,
the whole words "a", "an" and "the" removed, and runs of whitespace collapsed to one space. A question
scores the maximum over its gold answers. The scores are averaged over every question in the dataset,
so a question without a prediction scores 0, and predictions for ids not in the dataset are ignored.

NOTE: the official script gives exact match 1 but F1 0 when the prediction and the gold answer both
normalise to the empty string (a gold answer "." in dev-v1.1.json does), and this module keeps that.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t5kit.data.squad import SquadExample, load_json, read_squad
from t5kit.errors import T5kitError

logger = logging.getLogger(__name__)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)


@dataclass(frozen=True)
class SquadResult:
    """SQuAD scores of one prediction set on one dataset."""

    exact_match: float
    """Exact match in percent, averaged over all `total` questions."""
    f1: float
    """Token F1 in percent, averaged over all `total` questions."""
    total: int
    """Number of questions in the dataset."""
    answered: int
    """Questions that have a prediction."""
    missing: int
    """Questions without a prediction, each scoring 0."""
    unknown_ids: int
    """Prediction ids that are not in the dataset, which are ignored."""

    def to_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


def normalize_answer(text: str) -> str:
    """Lower-case `text`, then drop punctuation, the articles a/an/the and extra whitespace, in that order."""
    text = text.lower().translate(_DELETE_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, gold: str) -> float:
    """Return 1.0 when the normalised texts are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Return the F1 of the normalised whitespace tokens, counting repeated tokens as often as both texts have them."""
    return _token_f1(normalize_answer(prediction).split(), normalize_answer(gold).split())


def _token_f1(prediction_tokens: list[str], gold_tokens: list[str]) -> float:
    common = Counter(prediction_tokens) & Counter(gold_tokens)
    num_same = sum(common.values())
    # With no common token the official script returns 0, even when both token lists are empty.
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(
    dataset_or_path: str | os.PathLike | Mapping[str, Any] | Iterable[SquadExample],
    predictions: Mapping[str, str],
) -> SquadResult:
    """Score `predictions` (question id -> answer text) on a SQuAD dataset.

    `dataset_or_path` is a SQuAD JSON file, its parsed JSON, or SquadExample objects. Every question
    needs at least one gold answer, so SQuAD v2.0 unanswerable questions raise T5kitError.
    """
    if isinstance(dataset_or_path, (str, os.PathLike, Mapping)):
        examples: Iterable[SquadExample] = read_squad(dataset_or_path)
    else:
        examples = dataset_or_path

    exact_match_sum = f1_sum = 0.0
    total = answered = 0
    missing_ids: list[str] = []
    dataset_ids: set[str] = set()
    for example in examples:
        total += 1
        dataset_ids.add(example.id)
        if example.id not in predictions:
            missing_ids.append(example.id)
            continue
        answered += 1
        exact_match, f1 = _best_scores(example, predictions[example.id])
        exact_match_sum += exact_match
        f1_sum += f1

    if total == 0:
        raise T5kitError("the SQuAD dataset has no questions, so it cannot be scored")
    unknown_ids = [question_id for question_id in predictions if question_id not in dataset_ids]
    _log_id_mismatches(missing_ids, unknown_ids)

    return SquadResult(
        exact_match=100.0 * exact_match_sum / total,
        f1=100.0 * f1_sum / total,
        total=total,
        answered=answered,
        missing=len(missing_ids),
        unknown_ids=len(unknown_ids),
    )


def _best_scores(example: SquadExample, prediction: str) -> tuple[float, float]:
    """Return the maximum exact match and the maximum F1 of `prediction` over the gold answers."""
    if not isinstance(prediction, str):
        raise T5kitError(
            f"prediction for question {example.id!r} must be a string, got {type(prediction).__name__}"
        )
    if not example.answers:
        raise T5kitError(
            f"question {example.id!r} has no gold answers, but the SQuAD v1.1 metric needs at least one per question. "
            "Remove SQuAD v2.0 unanswerable questions before scoring"
        )

    # Normalise the prediction once, where the official script repeats it for every gold answer.
    prediction_text = normalize_answer(prediction)
    prediction_tokens = prediction_text.split()
    exact_match = f1 = 0.0
    for gold in example.answers:
        gold_text = normalize_answer(gold)
        exact_match = max(exact_match, float(prediction_text == gold_text))
        f1 = max(f1, _token_f1(prediction_tokens, gold_text.split()))
    return exact_match, f1


def _log_id_mismatches(missing_ids: list[str], unknown_ids: list[str], limit: int = 5) -> None:
    if missing_ids:
        logger.warning(
            "%d questions have no prediction and score 0, for example %s", len(missing_ids), missing_ids[:limit]
        )
    if unknown_ids:
        logger.warning(
            "%d predictions have ids that are not in the dataset and are ignored, for example %s",
            len(unknown_ids),
            unknown_ids[:limit],
        )


def load_predictions(path: str | os.PathLike) -> dict[str, str]:
    """Read a prediction file: one JSON object mapping question id to answer text (`.json` or `.json.gz`)."""
    path = Path(path)
    predictions = load_json(path, description="prediction file")
    if not isinstance(predictions, dict):
        raise T5kitError(
            f"{path}: a prediction file must be a JSON object mapping question id to answer text, "
            f"got a JSON {type(predictions).__name__}"
        )
    for question_id, answer in predictions.items():
        if not isinstance(answer, str):
            raise T5kitError(
                f"{path}: the prediction for question {question_id!r} must be a string, "
                f"got {answer!r:.60}"
            )
    return predictions
