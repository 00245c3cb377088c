"""Tests for the SQuAD v1.1 exact match and F1, checked against a reference of the official script."""

from __future__ import annotations

import argparse
import json
import re
import string
from collections import Counter

import pytest

from t5kit.cli import eval as eval_cli
from t5kit.cli.main import SUBCOMMANDS
from t5kit.data.squad import SquadExample
from t5kit.errors import T5kitError
from t5kit.eval.squad_metric import (
    SquadResult,
    exact_match_score,
    f1_score,
    load_predictions,
    normalize_answer,
    squad_scores,
)

PREDICTION_FILES = ["bert_ensemble", "match_lstm_boundary_ensemble", "logistic_regression_baseline"]


def reference_scores(dataset: dict, predictions: dict) -> tuple[float, float]:
    """Score predictions the way evaluate-v1.1.py does, kept free of any t5kit code.

    The steps follow the official script. Normalisation lower-cases, deletes every character of
    string.punctuation, replaces the regex \\b(a|an|the)\\b by a space and joins the whitespace split.
    Exact match is equality of normalised strings. F1 counts common tokens with Counter intersection
    and is 0 when nothing is shared. Each question takes the max over its gold answers, and
    unanswered questions add nothing but still count in the denominator.
    """
    punctuation = set(string.punctuation)

    def normalise(text):
        text = "".join(character for character in text.lower() if character not in punctuation)
        return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())

    def token_f1(prediction, gold):
        predicted, expected = normalise(prediction).split(), normalise(gold).split()
        shared = sum((Counter(predicted) & Counter(expected)).values())
        if shared == 0:
            return 0
        precision, recall = 1.0 * shared / len(predicted), 1.0 * shared / len(expected)
        return (2 * precision * recall) / (precision + recall)

    exact_total, f1_total, questions = 0, 0, 0
    for article in dataset["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                questions += 1
                if qa["id"] not in predictions:
                    continue
                golds = [answer["text"] for answer in qa["answers"]]
                prediction = predictions[qa["id"]]
                exact_total += max([normalise(prediction) == normalise(gold) for gold in golds])
                f1_total += max([token_f1(prediction, gold) for gold in golds])
    return 100.0 * exact_total / questions, 100.0 * f1_total / questions


def _example(question_id: str, *answers: str) -> SquadExample:
    return SquadExample(question_id, "t", "context", "question?", answers, (0,) * len(answers))


# Normalisation.


def test_normalize_lower_case():
    assert normalize_answer("Denver BRONCOS") == "denver broncos"


def test_normalize_punctuation():
    assert normalize_answer("U.S.A.") == "usa"
    assert normalize_answer("rock'n'roll, (1955)!") == "rocknroll 1955"
    # Only ASCII punctuation (string.punctuation) is removed.
    assert normalize_answer("«Arab–Israeli»") == "«arab–israeli»"


def test_normalize_articles():
    assert normalize_answer("The cat and a dog ate an apple") == "cat and dog ate apple"
    # Whole words only: articles inside other words stay.
    assert normalize_answer("theory another anthem") == "theory another anthem"
    # Punctuation goes first, so "the-end" becomes one word "theend" and keeps its "the".
    assert normalize_answer("the-end") == "theend"
    assert normalize_answer("(the)") == ""


def test_normalize_whitespace():
    assert normalize_answer("  New\tYork \n City ") == "new york city"
    assert normalize_answer("a the an") == ""


# Exact match and F1 of one pair.


def test_exact_match_pair():
    assert exact_match_score("The Denver Broncos!", "denver broncos") == 1.0
    assert exact_match_score("Denver", "Denver Broncos") == 0.0


def test_f1_pair():
    assert f1_score("the cat sat", "cat sat on mat") == pytest.approx(2 / 3)
    # Repeated tokens count as often as both sides have them: 2 common of 2 and 3 tokens.
    assert f1_score("b b", "b b b") == pytest.approx(0.8)
    assert f1_score("x y", "z") == 0.0
    assert f1_score("Denver Broncos", "the denver broncos.") == 1.0


def test_empty_after_normalization():
    # The official script: exact match compares strings (equal), F1 finds no common token (0).
    assert exact_match_score("the", ".") == 1.0
    assert f1_score("the", ".") == 0.0
    assert exact_match_score("Denver", ".") == 0.0
    assert f1_score("Denver", ".") == 0.0
    assert f1_score("", "Denver") == 0.0


# Dataset scores.


def test_max_over_gold_answers():
    examples = [_example("q", "Denver Broncos", "the Broncos", "Broncos of Denver")]
    result = squad_scores(examples, {"q": "Broncos"})
    assert result.exact_match == 100.0
    assert result.f1 == 100.0

    # F1 and exact match take their maximum independently: best F1 is 2/3 against "Broncos of Denver".
    result = squad_scores([_example("q", "Denver", "Broncos of Denver")], {"q": "Denver Broncos fans"})
    assert result.exact_match == 0.0
    assert result.f1 == pytest.approx(100 * 2 / 3)


def test_missing_ids_score_zero():
    examples = [_example("a", "one"), _example("b", "two"), _example("c", "three"), _example("d", "four")]
    result = squad_scores(examples, {"a": "one", "b": "two two"})
    assert result == SquadResult(
        exact_match=25.0, f1=pytest.approx(100 * (1 + 2 / 3) / 4), total=4, answered=2, missing=2, unknown_ids=0
    )


def test_unknown_ids_ignored():
    result = squad_scores([_example("a", "one")], {"a": "one", "x": "two", "y": "three"})
    assert result == SquadResult(exact_match=100.0, f1=100.0, total=1, answered=1, missing=0, unknown_ids=2)


def test_gold_empty_after_normalization():
    result = squad_scores([_example("q", ".")], {"q": "An"})
    assert result.exact_match == 100.0
    assert result.f1 == 0.0


def test_real_gold_answer_dot(shared_data):
    # In dev-v1.1.json the gold answers of this question are "." once and "interventionism" four times.
    dev = shared_data / "squad_v1.1" / "dev-v1.1.json"
    dataset = json.loads(dev.read_text(encoding="utf-8"))
    dataset["data"] = [article for article in dataset["data"] if article["title"] == "Imperialism"]
    question_id = "5730b7ce069b5314008322c4"
    for predictions in ({question_id: ""}, {question_id: "the"}, {question_id: "interventionism"}):
        ours = squad_scores(dataset, predictions)
        assert (ours.exact_match, ours.f1) == reference_scores(dataset, predictions)
    ours = squad_scores(dataset, {question_id: ""})
    assert ours.exact_match * ours.total == pytest.approx(100.0)
    assert ours.f1 == 0.0


def test_dataset_inputs(tmp_path):
    question = {"id": "q", "question": "?", "answers": [{"text": "Paris", "answer_start": 0}]}
    document = {"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [question]}]}]}
    path = tmp_path / "small.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    expected = squad_scores([_example("q", "Paris")], {"q": "paris."})
    assert squad_scores(path, {"q": "paris."}) == expected
    assert squad_scores(str(path), {"q": "paris."}) == expected
    assert squad_scores(document, {"q": "paris."}) == expected


def test_rejects_bad_inputs():
    with pytest.raises(T5kitError, match=r"question 'q' has no gold answers"):
        squad_scores([_example("q")], {"q": "x"})
    with pytest.raises(T5kitError, match=r"prediction for question 'q' must be a string, got list"):
        squad_scores([_example("q", "x")], {"q": ["x"]})
    with pytest.raises(T5kitError, match=r"has no questions"):
        squad_scores([], {})


# Official numbers on real predictions.


@pytest.mark.parametrize("system", PREDICTION_FILES)
def test_matches_official_script(shared_data, system):
    dev = shared_data / "squad_v1.1" / "dev-v1.1.json"
    predictions = load_predictions(shared_data / "squad_v1.1" / "predictions" / f"dev-v1.1.pred.{system}.json")
    expected_exact_match, expected_f1 = reference_scores(json.loads(dev.read_text(encoding="utf-8")), predictions)

    result = squad_scores(dev, predictions)
    assert f"{result.exact_match:.4f}" == f"{expected_exact_match:.4f}"
    assert f"{result.f1:.4f}" == f"{expected_f1:.4f}"


@pytest.mark.parametrize(
    "system, exact_match, f1, answered, unknown_ids",
    [
        ("bert_ensemble", "86.2062", "92.1956", 10_570, 0),
        ("match_lstm_boundary_ensemble", "67.6348", "76.7556", 10_570, 0),
        ("logistic_regression_baseline", "40.1419", "50.9815", 10_557, 28),
    ],
)
def test_real_scores(shared_data, system, exact_match, f1, answered, unknown_ids):
    folder = shared_data / "squad_v1.1"
    predictions = load_predictions(folder / "predictions" / f"dev-v1.1.pred.{system}.json")
    result = squad_scores(folder / "dev-v1.1.json", predictions)
    assert f"{result.exact_match:.4f}" == exact_match
    assert f"{result.f1:.4f}" == f1
    assert result.total == 10_570
    assert result.answered == answered
    assert result.missing == 10_570 - answered
    assert result.unknown_ids == unknown_ids


def test_bert_published_score(shared_data):
    # Devlin et al. (2019), Table 2, publish dev EM 86.2 and F1 92.2 for the BERT-Large ensemble.
    # NOTE: these two figures are quoted, not re-read from the paper for this test.
    folder = shared_data / "squad_v1.1"
    predictions = load_predictions(folder / "predictions" / "dev-v1.1.pred.bert_ensemble.json")
    result = squad_scores(folder / "dev-v1.1.json", predictions)
    assert round(result.exact_match, 1) == 86.2
    assert round(result.f1, 1) == 92.2


# Prediction files and the command line.


def test_load_predictions_errors(tmp_path):
    not_json = tmp_path / "not_json.json"
    not_json.write_text('{"a": "x",\n "b": }', encoding="utf-8")
    with pytest.raises(T5kitError, match=r"not_json.json: invalid JSON at line 2, column 7"):
        load_predictions(not_json)

    a_list = tmp_path / "list.json"
    a_list.write_text('["x", "y"]', encoding="utf-8")
    with pytest.raises(T5kitError, match=r"must be a JSON object mapping question id to answer text, got a JSON list"):
        load_predictions(a_list)

    not_string = tmp_path / "not_string.json"
    not_string.write_text('{"a": "x", "b": ["y", "z"]}', encoding="utf-8")
    with pytest.raises(T5kitError, match=r"the prediction for question 'b' must be a string, got \['y', 'z'\]"):
        load_predictions(not_string)

    with pytest.raises(T5kitError, match=r"prediction file not found"):
        load_predictions(tmp_path / "absent.json")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="t5kit")
    eval_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_registered():
    assert "t5kit.cli.eval" in SUBCOMMANDS


def test_cli_eval_squad(shared_data, tmp_path, capsys):
    folder = shared_data / "squad_v1.1"
    output = tmp_path / "out" / "scores.json"
    predictions = folder / "predictions" / "dev-v1.1.pred.logistic_regression_baseline.json"
    argv = ["eval", "squad", "--data", str(folder / "dev-v1.1.json"), "--predictions", str(predictions)]
    args = _parse([*argv, "--json", str(output)])
    assert args.run(args) == 0

    printed = capsys.readouterr().out
    assert "exact match  40.1419" in printed
    assert "f1           50.9815" in printed
    assert "answered     10557 of 10570" in printed
    assert "missing      13" in printed
    assert "unknown ids  28" in printed

    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["total"] == 10_570
    assert report["missing"] == 13
    assert report["unknown_ids"] == 28
    assert f"{report['exact_match']:.4f}" == "40.1419"


def test_cli_squad_dir(shared_data, capsys):
    folder = shared_data / "squad_v1.1"
    predictions = folder / "predictions" / "dev-v1.1.pred.bert_ensemble.json"
    args = _parse(["eval", "squad", "--squad-dir", str(folder), "--predictions", str(predictions)])
    assert args.run(args) == 0
    assert "exact match  86.2062" in capsys.readouterr().out


def test_cli_bad_predictions(tmp_path):
    dataset = tmp_path / "data.json"
    dataset.write_text(json.dumps({"data": []}), encoding="utf-8")
    predictions = tmp_path / "predictions.json"
    predictions.write_text("id\tanswer\n", encoding="utf-8")
    args = _parse(["eval", "squad", "--data", str(dataset), "--predictions", str(predictions)])
    with pytest.raises(T5kitError, match=r"predictions.json: invalid JSON at line 1, column 1"):
        args.run(args)
