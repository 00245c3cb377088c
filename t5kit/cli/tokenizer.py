"""`t5kit tokenizer train|encode`: train a T5 SentencePiece vocabulary, or show how text encodes."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("tokenizer", help="train a SentencePiece vocabulary or encode text with one")
    actions = parser.add_subparsers(dest="tokenizer_action", metavar="ACTION", required=True)

    train = actions.add_parser(
        "train",
        help="train a T5 vocabulary (pad 0, eos 1, unk 2, sentinels after the pieces)",
        description="Train a SentencePiece vocabulary on text files (plain, .gz, or .jsonl with one text field) "
        "and write spiece.model and tokenizer.yaml to the output directory.",
    )
    train.add_argument("--input", nargs="+", required=True, metavar="FILE", help="training text files")
    train.add_argument("--output", required=True, metavar="DIR", help="directory for spiece.model and tokenizer.yaml")
    train.add_argument(
        "--vocab-size", type=int, required=True, metavar="N", help="pieces to learn, sentinels not counted"
    )
    train.add_argument(
        "--model-type", choices=["unigram", "bpe"], default="unigram", help="SentencePiece algorithm (default: unigram)"
    )
    train.add_argument(
        "--jsonl-field", default="text", metavar="NAME", help="text field of .jsonl records (default: text)"
    )
    train.add_argument(
        "--character-coverage",
        type=float,
        default=1.0,
        metavar="X",
        help="fraction of characters that get a piece: 1.0 (default) for English, 0.9995 for CJK-rich text",
    )
    train.add_argument(
        "--input-sentence-size",
        type=int,
        default=10_000_000,
        metavar="N",
        help="lines sampled from the input for training; 0 uses every line (default: 10,000,000)",
    )
    train.add_argument("--num-sentinels", type=int, default=100, metavar="N", help="sentinel tokens (default: 100)")
    train.add_argument("--seed", type=int, default=0, help="seed of the line sampling (default: 0)")
    train.set_defaults(run=run)

    encode = actions.add_parser("encode", help="print the ids and pieces of a text")
    encode.add_argument("--tokenizer", required=True, metavar="PATH", help="spiece.model or a tokenizer directory")
    encode.add_argument("--eos", action="store_true", help="append the eos id")
    encode.add_argument("text", help="text to encode")
    encode.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.tokenizer_action == "train":
        return _train(args)
    return _encode(args)


def _train(args: argparse.Namespace) -> int:
    from t5kit.tokenizer import iter_lines, train_tokenizer

    tokenizer = train_tokenizer(
        args.input,
        args.output,
        vocab_size=args.vocab_size,
        model_type=args.model_type,
        jsonl_field=args.jsonl_field,
        character_coverage=args.character_coverage,
        input_sentence_size=args.input_sentence_size,
        num_sentinels=args.num_sentinels,
        seed=args.seed,
    )
    print(f"tokenizer          {args.output}")
    print(f"model type         {tokenizer.model_type}")
    print(f"pieces             {tokenizer.num_pieces}")
    print(f"sentinels          {tokenizer.num_sentinels} (<extra_id_0> = {tokenizer.vocab_size - 1})")
    print(f"vocab size         {tokenizer.vocab_size}")
    print(f"padded vocab size  {tokenizer.padded_vocab_size} (set model.vocab_size to this)")

    sample = next(iter_lines(args.input, args.jsonl_field), "")[:200]
    _print_encoding(tokenizer, sample)
    return 0


def _encode(args: argparse.Namespace) -> int:
    from t5kit.tokenizer import T5Tokenizer

    tokenizer = T5Tokenizer(args.tokenizer)
    _print_encoding(tokenizer, args.text, add_eos=args.eos)
    return 0


def _print_encoding(tokenizer, text: str, add_eos: bool = False) -> None:
    ids = tokenizer.encode(text, add_eos=add_eos)
    print(f"text               {text!r}")
    print(f"ids ({len(ids)})".ljust(19) + f"{ids}")
    print(f"pieces             {[tokenizer.id_to_piece(i) for i in ids]}")
    print(f"decoded            {tokenizer.decode(ids)!r}")
