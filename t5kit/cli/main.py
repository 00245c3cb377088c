"""The `t5kit` command: parse the subcommand, set up logging, run it, turn known errors into messages."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Each module defines `add_parser(subparsers)` and `run(args) -> int | None`.
# Modules are imported when the CLI starts, so keep their top-level imports light.
SUBCOMMANDS = [
    "t5kit.cli.info",
    "t5kit.cli.eval",
    "t5kit.cli.preprocess",
    "t5kit.cli.prompt_learn",
    "t5kit.cli.pretrain",
    "t5kit.cli.plot",
    "t5kit.cli.convert",
    "t5kit.cli.tokenizer",
    "t5kit.cli.quickstart",
    "t5kit.cli.generate",
    "t5kit.cli.bench",
]


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr from rank 0 only; other ranks log warnings and errors."""
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO) if rank == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t5kit", description="Pretrain, tune, evaluate and serve T5 models.")
    parser.add_argument("--log-level", default="INFO", help="logging level: DEBUG, INFO, WARNING or ERROR")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from t5kit.errors import T5kitError

    parser = build_parser()
    # argparse ends a `nargs="*"` positional at the first flag, so `pretrain x.yaml --print-config
    # a.b=1` leaves a.b=1 over. Such KEY=VALUE leftovers join the command's overrides.
    args, extra = parser.parse_known_args(argv)
    overrides = getattr(args, "overrides", None)
    all_overrides = all("=" in item and not item.startswith("-") for item in extra)
    if extra and not (isinstance(overrides, list) and all_overrides):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        overrides.extend(extra)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    setup_logging(args.log_level)
    try:
        return int(args.run(args) or 0)
    except T5kitError as error:
        print(f"t5kit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of our output went away (as in `t5kit info | head`); exit quietly.
        sys.stderr.close()
        return 0
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as error:
        print(f"t5kit {args.command}: error: {error.strerror}: {error.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"t5kit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
