"""`t5kit plot`: draw the loss curves of a pretraining run."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="plot train and validation loss of a run",
        description="Draw train and validation loss from RUN_DIR/metrics.jsonl into loss.svg and loss.png.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the train.output_dir of a pretraining run")
    parser.add_argument("--output-dir", metavar="DIR", help="where to write the plots (default: RUN_DIR)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from t5kit.train.plot import plot_losses

    for path in plot_losses(args.run_dir, args.output_dir):
        print(path)
    return 0
