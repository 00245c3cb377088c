"""`t5kit prompt-learn CONFIG [key=value ...]`: tune a base checkpoint on SQuAD and print EM/F1."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "prompt-learn",
        help="p-tuning, prompt tuning, LoRA or full fine-tuning of a base checkpoint on SQuAD",
        description="Train prompts (or LoRA, or all weights) on a SQuAD train slice on top of a base "
        "checkpoint, then score exact match and F1 on a dev slice with and without the tuning. "
        "CONFIG is a recipe YAML or the name of a bundled recipe (t5kit/configs/prompt/*.yaml); "
        "key=value arguments override its fields, for example method=lora optim.max_steps=200.",
    )
    parser.add_argument("config", metavar="CONFIG", help="recipe YAML file or bundled recipe name, e.g. squad-tiny")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides, e.g. base=runs/x/model")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    parser.set_defaults(run=run)


def format_scores(result) -> str:
    """Return the result's scores as a table: task, metric, then without and with tuning."""
    lines = [f"{'task':<12} {'metric':<12} {'no tuning':>10} {result.method:>14}"]
    for task, scores in result.scores.items():
        for key, label in (("exact_match", "exact match"), ("f1", "F1")):
            before = scores.get("baseline", {}).get(key)
            after = scores.get("tuned", {}).get(key)
            lines.append(
                f"{task:<12} {label:<12} {'-' if before is None else f'{before:.2f}':>10} "
                f"{'-' if after is None else f'{after:.2f}':>14}"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from t5kit.tune import load_tune_config, prompt_learn

    config = load_tune_config(args.config, args.overrides)
    if args.print_config:
        import yaml

        from t5kit.tune.config import to_yaml_dict

        print(yaml.safe_dump(to_yaml_dict(config), sort_keys=False, allow_unicode=True), end="")
        return 0
    result = prompt_learn(config)
    print(format_scores(result))
    if config.load_tuned:
        print(f"evaluated {result.saved}")
    else:
        print(f"trained {result.trainable_parameters:,} of {result.model_parameters:,} parameters in {result.train_seconds:.0f} s")
        print(f"saved   {result.saved}")
    print(f"results {result.output_dir}/results.json")
    return 0
