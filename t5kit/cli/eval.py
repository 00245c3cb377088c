"""`t5kit eval squad`: score a prediction file with the SQuAD v1.1 exact match and F1."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="score predictions against a dataset")
    tasks = parser.add_subparsers(dest="eval_task", metavar="TASK", required=True)

    squad = tasks.add_parser(
        "squad",
        help="SQuAD v1.1 exact match and F1, as the official evaluate-v1.1.py computes them",
        description="Score a prediction file (a JSON object mapping question id to answer text) on a "
        "SQuAD-format dataset. Questions without a prediction score 0; unknown ids are ignored.",
    )
    source = squad.add_mutually_exclusive_group()
    source.add_argument(
        "--data",
        metavar="FILE",
        help="SQuAD-format dataset (.json or .json.gz), for example dev-v1.1.json or xquad.de.json "
        "(default: the official dev-v1.1.json found with --squad-dir, $T5KIT_SQUAD_DIR or the cache)",
    )
    source.add_argument(
        "--squad-dir",
        metavar="DIR",
        help="folder that contains dev-v1.1.json, searched before $T5KIT_SQUAD_DIR and the cache",
    )
    squad.add_argument("--predictions", required=True, metavar="FILE", help="prediction file (.json or .json.gz)")
    squad.add_argument("--json", metavar="FILE", help="also write the scores and counts to this JSON file")
    squad.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from t5kit.data.squad_download import find_squad
    from t5kit.errors import T5kitError
    from t5kit.eval.squad_metric import load_predictions, squad_scores

    data = Path(args.data) if args.data else find_squad("dev", args.squad_dir)
    predictions = load_predictions(args.predictions)
    result = squad_scores(data, predictions)

    print(f"data         {data}")
    print(f"predictions  {args.predictions}")
    print(f"exact match  {result.exact_match:.4f}")
    print(f"f1           {result.f1:.4f}")
    print(f"answered     {result.answered} of {result.total}")
    print(f"missing      {result.missing}")
    print(f"unknown ids  {result.unknown_ids}")

    if args.json:
        report = {"data": str(data), "predictions": str(args.predictions), **result.to_dict()}
        output = Path(args.json)
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            raise T5kitError(f"writing the scores to {output} failed: {error.strerror}") from error
    return 0
