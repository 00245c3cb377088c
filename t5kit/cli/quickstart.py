"""`t5kit quickstart`: tokenizer, pretraining, prompt learning on SQuAD and an EM/F1 table, in one command."""

from __future__ import annotations

import argparse

from t5kit.cli.arguments import fraction, non_negative_int, positive_int

METHODS = ("p-tuning", "prompt-tuning", "lora", "finetune")


def add_parser(subparsers) -> None:
    from t5kit.quickstart import SCALES

    parser = subparsers.add_parser(
        "quickstart",
        help="pretrain a small T5, prompt-learn SQuAD on it and print EM/F1",
        description="Run the whole pipeline into one run directory: the T5 tokenizer (or a trained one), "
        "span-corruption pretraining on the SQuAD train paragraphs, p-tuning on a SQuAD train slice, and "
        "exact match and F1 on a dev slice with and without the learned prompt. The default preset takes "
        "about 8 minutes on 2 idle CPU cores (about 20 on a loaded machine); --preset nemo-220m is the 220M "
        "recipe for one GPU.",
    )
    parser.add_argument("--preset", choices=sorted(SCALES), default="tiny", help="scale of every stage (default: tiny)")
    parser.add_argument("--smoke", action="store_true", help="a few steps of each stage on a tiny model (same as --preset smoke)")
    parser.add_argument("--output", default="runs/quickstart", help="run directory (default: runs/quickstart)")
    parser.add_argument("--steps", type=positive_int, help="pretraining updates (default: the preset's)")
    parser.add_argument("--prompt-steps", type=positive_int, help="prompt-learning updates per method (default: the preset's)")
    parser.add_argument("--train-examples", type=non_negative_int, help="SQuAD training questions, 0 for all (default: the preset's)")
    parser.add_argument("--dev-examples", type=non_negative_int, help="SQuAD dev questions scored, 0 for all (default: the preset's)")
    parser.add_argument(
        "--methods", default="p-tuning",
        help=f"comma-separated tuning methods to compare, from {', '.join(METHODS)} (default: p-tuning)",
    )
    parser.add_argument(
        "--squad-dir", metavar="DIR",
        help="folder with train-v1.1.json(.gz) and dev-v1.1.json; default: $T5KIT_SQUAD_DIR, then the cache "
        "(the official files are downloaded there on first use)",
    )
    parser.add_argument(
        "--tokenizer", metavar="SPIECE",
        help="the T5 spiece.model; default: $T5KIT_TOKENIZER, then the cache (downloaded there on first use)",
    )
    parser.add_argument(
        "--train-tokenizer", type=positive_int, metavar="VOCAB",
        help="train a SentencePiece vocabulary of VOCAB pieces on the pretraining text instead of using T5's",
    )
    parser.add_argument(
        "--span-selection", type=fraction, metavar="RATE",
        help="fraction of pretraining examples that are span selection (a self-supervised QA task) instead of "
        "span corruption (default: the preset's, 0)",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from t5kit.errors import T5kitError
    from t5kit.quickstart import QuickstartOptions, format_samples, format_table, run_quickstart

    methods = [method.strip() for method in args.methods.split(",") if method.strip()]
    unknown = [method for method in methods if method not in METHODS]
    if unknown or not methods:
        named = ", ".join(unknown) if unknown else repr(args.methods)
        raise T5kitError(f"--methods: unknown method {named}; choose from {', '.join(METHODS)}")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise T5kitError(f"--device {args.device}: CUDA is not available on this machine; use --device cpu or auto")
    options = QuickstartOptions(
        preset="smoke" if args.smoke else args.preset,
        output=args.output,
        steps=args.steps,
        prompt_steps=args.prompt_steps,
        train_examples=args.train_examples,
        dev_examples=args.dev_examples,
        methods=methods,
        squad_dir=args.squad_dir,
        tokenizer=args.tokenizer,
        train_tokenizer=args.train_tokenizer,
        span_selection_rate=args.span_selection,
        device=args.device,
        num_threads=args.threads,
        progress_bar=not args.no_progress,
    )
    result = run_quickstart(options)

    print(format_table(result))
    print()
    print(format_samples(result))
    print()
    print(f"run directory  {result.output} (results.md, pretrain/loss.png, prompt/<method>/loss.png)")
    print("wall time      " + ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in result.seconds.items()))
    return 0
