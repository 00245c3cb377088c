"""`t5kit convert --from hf DIR --to OUT`: convert checkpoints between Hugging Face and t5kit layouts."""

from __future__ import annotations

import argparse
import re

FORMATS = ("hf", "t5kit")
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert a checkpoint between Hugging Face and t5kit layouts",
        description="Convert a T5, T5 v1.1, mT5, umT5 or flan-t5 checkpoint. A Hugging Face directory has "
        "config.json and model.safetensors, pytorch_model.bin or a sharded index; a t5kit directory has "
        "config.yaml and model.safetensors. Every tensor name and shape is checked. spiece.model is copied along.",
    )
    parser.add_argument(
        "--from",
        dest="source",
        nargs=2,
        required=True,
        metavar=("FORMAT", "DIR"),
        help="input format (hf or t5kit) and directory",
    )
    parser.add_argument(
        "--to",
        dest="target",
        nargs="+",
        required=True,
        metavar="DIR",
        help="output directory, optionally preceded by its format (the other one by default): --to hf OUT",
    )
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        help="cast the weights to this type (default: keep the stored type)",
    )
    parser.add_argument(
        "--max-shard-size",
        metavar="SIZE",
        help="for --to hf: split the weights into safetensors shards of at most SIZE (such as 5GB or 500MiB)",
    )
    parser.add_argument("--overwrite", action="store_true", help="write into an output directory that is not empty")
    parser.set_defaults(run=run)


def parse_size(text: str) -> int:
    """Return the bytes in a size such as 5GB, 500MiB or 1000000."""
    from t5kit.errors import T5kitError

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in _UNITS:
        raise T5kitError(f"invalid --max-shard-size {text!r}; expected a number with KB, MB, GB, KiB, MiB or GiB")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def parse_formats(args: argparse.Namespace) -> tuple[str, str, str, str]:
    """Return (source format, source dir, target format, target dir) from --from and --to."""
    from t5kit.errors import T5kitError

    source_format, source_dir = args.source
    if source_format not in FORMATS:
        raise T5kitError(f"invalid --from format {source_format!r}; expected hf or t5kit, as in --from hf DIR")
    other = FORMATS[1 - FORMATS.index(source_format)]
    if len(args.target) == 1:
        return source_format, source_dir, other, args.target[0]
    if len(args.target) != 2 or args.target[0] != other:
        raise T5kitError(
            f"invalid --to {' '.join(args.target)!r}; expected an output directory, or '{other} DIR' "
            f"when converting from {source_format}"
        )
    return source_format, source_dir, other, args.target[1]


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from t5kit.convert import detect_format, from_hf, to_hf
    from t5kit.convert.hf import copy_tokenizer
    from t5kit.errors import T5kitError
    from t5kit.model import count_parameters, load_model, save_model

    source_format, source_dir, target_format, target_dir = parse_formats(args)
    source, target = Path(source_dir), Path(target_dir)
    found = detect_format(source)
    if found != source_format:
        raise T5kitError(f"{source} is a {found} directory, not {source_format}; use --from {found} {source}")
    if target.exists() and any(target.iterdir()) and not args.overwrite:
        raise T5kitError(f"output directory {target} is not empty; choose another or pass --overwrite")
    dtype = getattr(torch, args.dtype) if args.dtype else None

    if source_format == "hf":
        model = from_hf(source, dtype=dtype)
        written = [save_model(model, target) / name for name in ("config.yaml", "model.safetensors")]
        written += copy_tokenizer(source, target)
    else:
        model = load_model(source, dtype=dtype)
        shard_size = parse_size(args.max_shard_size) if args.max_shard_size else None
        written = to_hf(model, target, max_shard_size=shard_size, tokenizer_dir=source)

    config = model.config
    head = "tied" if config.tie_word_embeddings else "untied"
    print(f"converted {source} ({source_format}) -> {target} ({target_format})")
    print(f"family       {config.family}, {config.num_layers}+{config.num_decoder_layers} layers, {head} head")
    print(f"parameters   {count_parameters(model):,}")
    print(f"dtype        {next(model.parameters()).dtype}")
    for path in written:
        print(f"wrote        {path}")
    return 0
