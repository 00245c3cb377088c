"""`t5kit pretrain`: pretrain a T5 from a YAML recipe with dotted key=value overrides."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

RECIPE_DIR = Path(__file__).resolve().parent.parent / "configs" / "pretrain"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain a model with span corruption (resumable)",
        description=(
            "Pretrain a T5 model. CONFIG is a YAML file or the name of a bundled recipe "
            f"({', '.join(recipe_names()) or 'none'}). Overrides set dotted keys, for example "
            "train.max_steps=100 model.dropout_rate=0.0. A rerun with the same train.output_dir resumes "
            "from its newest complete checkpoint."
        ),
    )
    parser.add_argument("config", metavar="CONFIG", help="recipe YAML path or bundled recipe name")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    parser.set_defaults(run=run)


def recipe_names() -> list[str]:
    """Return the names of the bundled pretraining recipes."""
    return sorted(path.stem for path in RECIPE_DIR.glob("*.yaml"))


def resolve_recipe(name: str) -> Path:
    """Return a YAML path as given, or the bundled recipe of that name."""
    import difflib

    from t5kit.config.core import ConfigError

    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    bundled = RECIPE_DIR / f"{name}.yaml"
    if not bundled.is_file():
        names = recipe_names()
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown recipe '{name}'.{hint} Bundled recipes: {', '.join(names)}; or pass a YAML file")
    return bundled


def load_config(config: str, overrides: list[str]):
    """Read a recipe, apply overrides and build the PretrainConfig, rejecting unknown keys."""
    from t5kit.config.core import apply_overrides, load_yaml
    from t5kit.train.config import PretrainConfig

    data = apply_overrides(load_yaml(resolve_recipe(config)), overrides)
    return PretrainConfig.from_dict(data)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)
    if args.print_config:
        import yaml

        from t5kit.config.core import to_dict

        print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")
        return 0

    from t5kit.train.trainer import pretrain

    result = pretrain(config)
    if os.environ.get("RANK", "0") != "0":
        return 0
    print(f"steps: {result.steps}")
    if result.unigram_entropy is not None and result.val_loss is not None:
        print(f"baseline (unigram entropy of the validation targets): {result.unigram_entropy:.4f} nats")
        print(f"final validation loss: {result.val_loss:.4f} nats")
        print(f"margin below the baseline: {result.unigram_entropy - result.val_loss:.4f} nats")
    print(f"run directory: {result.output_dir}")
    print(f"last checkpoint: {result.checkpoint}")
    return 0
