"""`t5kit preprocess`: tokenize text files into train and validation indexed datasets."""

from __future__ import annotations

import argparse

from t5kit.cli.arguments import fraction, non_negative_int, positive_int


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "preprocess",
        help="tokenize text files into memory-mapped train/val datasets",
        description=(
            "Tokenize text files into PREFIX_train.bin/.idx and PREFIX_val.bin/.idx, split by document, "
            "and write a summary to PREFIX_summary.json."
        ),
    )

    # Inputs and outputs.
    parser.add_argument(
        "--input", nargs="+", required=True, metavar="FILE", help="text files; .gz files are decompressed"
    )
    parser.add_argument("--output", required=True, metavar="PREFIX", help="output prefix, such as data/wiki")
    parser.add_argument(
        "--tokenizer", required=True, metavar="SPIECE_OR_DIR", help="spiece.model or the folder that contains it"
    )

    # How files become documents.
    parser.add_argument(
        "--format",
        choices=["auto", "plain", "jsonl", "wikitext"],
        default="auto",
        help="input format; auto picks jsonl for .jsonl/.json, wikitext for .tokens, plain otherwise (default: auto)",
    )
    parser.add_argument("--jsonl-field", default="text", help="JSON field holding the document text (default: text)")
    parser.add_argument(
        "--plain-documents",
        choices=["line", "block"],
        default="line",
        help="plain text: one document per line, or per blank-line-separated block (default: line)",
    )
    parser.add_argument(
        "--on-invalid-utf8",
        choices=["error", "skip"],
        default="error",
        help="stop at the first invalid UTF-8 line, or skip such lines and list them in the summary (default: error)",
    )

    # Tokenization and the split.
    parser.add_argument("--workers", type=positive_int, default=1, help="tokenizer processes (default: 1)")
    parser.add_argument(
        "--chunk-size", type=positive_int, default=256, help="documents per task sent to a worker (default: 256)"
    )
    parser.add_argument(
        "--val-fraction", type=fraction, default=0.01, help="fraction of documents for validation (default: 0.01)"
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=1234, help="seed of the train/validation split (default: 1234)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from t5kit.data.preprocess import preprocess

    summary = preprocess(
        args.input,
        args.output,
        args.tokenizer,
        text_format=args.format,
        plain_documents=args.plain_documents,
        jsonl_field=args.jsonl_field,
        on_invalid_utf8=args.on_invalid_utf8,
        workers=args.workers,
        val_fraction=args.val_fraction,
        seed=args.seed,
        chunk_size=args.chunk_size,
        progress=not args.no_progress,
    )
    for name, split in summary.splits.items():
        print(f"{name}: {split.documents} documents, {split.tokens} tokens -> {split.prefix}.bin/.idx")
    print(f"empty documents skipped: {summary.empty_documents}")
    print(f"invalid UTF-8 lines skipped: {summary.invalid_utf8_lines}")
    return 0
