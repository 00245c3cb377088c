"""`t5kit generate --checkpoint DIR "text" ...`: generate text from a t5kit or Hugging Face checkpoint."""

from __future__ import annotations

import argparse
import logging
import sys

from t5kit.cli.arguments import non_negative_int, positive_int

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate text with a checkpoint",
        description="Generate text for each input with a t5kit or Hugging Face model directory. A single "
        "input is streamed token by token; several inputs are batched and printed one line each, in order.",
    )
    parser.add_argument("--checkpoint", required=True, metavar="DIR", help="t5kit or Hugging Face model directory")
    parser.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="SentencePiece model file, or a directory with spiece.model (default: the checkpoint directory)",
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="input texts")
    parser.add_argument("--input-file", metavar="FILE", help="read inputs from FILE, one per line ('-' for stdin)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="inputs per batch (default: 8)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=64, help="maximum tokens per output (default: 64)")
    parser.add_argument("--min-new-tokens", type=non_negative_int, default=0, help="tokens generated before EOS is allowed")
    parser.add_argument("--num-beams", type=positive_int, default=1, help="beam search width; 1 means greedy (default)")
    parser.add_argument("--length-penalty", type=float, default=1.0, help="beam score = logprob / length**this")
    parser.add_argument("--early-stopping", action="store_true", help="stop beam search once num_beams beams finish")
    parser.add_argument("--do-sample", action="store_true", help="sample tokens instead of taking the most likely")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default: 1.0)")
    parser.add_argument("--top-k", type=non_negative_int, default=0, help="sample among the k most likely tokens; 0 is off")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass; 1.0 is off")
    parser.add_argument("--seed", type=int, help="seed for sampling")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="weight type to run in")
    parser.add_argument("--threads", type=positive_int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--no-stream", action="store_true", help="print a single input's output at the end")
    parser.set_defaults(run=run)


def read_inputs(args: argparse.Namespace) -> list[str]:
    """Return the texts from the command line and --input-file, in that order."""
    from pathlib import Path

    from t5kit.errors import T5kitError

    texts = list(args.texts)
    if args.input_file:
        if args.input_file == "-":
            lines = sys.stdin.read().splitlines()
        else:
            path = Path(args.input_file)
            if not path.is_file():
                raise T5kitError(f"input file {path} not found")
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError as error:
                raise T5kitError(
                    f"input file {path} is not valid UTF-8 (byte {error.start}); save it as UTF-8 text"
                ) from None
        # Empty lines stay, so output line i always belongs to input line i.
        texts += lines
    if not texts:
        raise T5kitError("no input: pass texts as arguments or --input-file FILE")
    return texts


def load_tokenizer(checkpoint: str, path: str | None):
    """Load the T5 tokenizer from --tokenizer, else from the checkpoint directory."""
    from pathlib import Path

    from t5kit.errors import T5kitError
    from t5kit.tokenizer import T5Tokenizer

    if path is None:
        if not (Path(checkpoint) / "spiece.model").is_file():
            raise T5kitError(f"no spiece.model in {checkpoint}; pass --tokenizer PATH to a SentencePiece model")
        path = checkpoint
    return T5Tokenizer(path)


def encode_batch(tokenizer, texts: list[str]):
    """Return right-padded input ids [B, L] (each input ends with EOS) and their attention mask."""
    import torch

    encoded = [tokenizer.encode(text, add_eos=True) for text in texts]
    length = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(texts), length), tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
    return input_ids, mask


def print_stream(model, tokenizer, input_ids, config) -> None:
    """Print one input's output as its tokens arrive."""
    from t5kit.generate import stream

    tokens: list[int] = []
    printed = ""
    for token in stream(model, input_ids, config=config):
        tokens.append(token)
        text = tokenizer.decode(tokens, skip_special_tokens=True)
        # Decoding the whole prefix gets word-boundary spaces right; print what it adds.
        if text.startswith(printed):
            sys.stdout.write(text[len(printed) :])
            sys.stdout.flush()
            printed = text
    print()


def run(args: argparse.Namespace) -> int:
    import torch

    from t5kit.convert import detect_format, load_any
    from t5kit.generate import GenerationConfig, generate

    from t5kit.errors import T5kitError

    if args.batch_size < 1:
        raise T5kitError(f"invalid --batch-size {args.batch_size}; expected 1 or more")
    if args.threads is not None:
        if args.threads < 1:
            raise T5kitError(f"invalid --threads {args.threads}; expected 1 or more")
        torch.set_num_threads(args.threads)
    texts = read_inputs(args)
    detect_format(args.checkpoint)  # a missing or unknown checkpoint directory fails before the tokenizer
    tokenizer = load_tokenizer(args.checkpoint, args.tokenizer)
    model = load_any(args.checkpoint, dtype=getattr(torch, args.dtype)).eval()
    model.config.check_tokenizer_matches(tokenizer.vocab_size)
    config = GenerationConfig(
        max_new_tokens=args.max_new_tokens,
        min_new_tokens=args.min_new_tokens,
        num_beams=args.num_beams,
        length_penalty=args.length_penalty,
        early_stopping=args.early_stopping,
        do_sample=args.do_sample,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )

    if not args.do_sample and (args.top_k or args.top_p < 1.0 or args.temperature != 1.0):
        logger.warning("--temperature, --top-k and --top-p apply only with --do-sample; they are ignored")

    if len(texts) == 1 and args.num_beams == 1 and not args.no_stream:
        input_ids, _ = encode_batch(tokenizer, texts)
        print_stream(model, tokenizer, input_ids, config)
        return 0
    for start in range(0, len(texts), args.batch_size):
        input_ids, mask = encode_batch(tokenizer, texts[start : start + args.batch_size])
        outputs = generate(model, input_ids, mask, config=config)
        for row in outputs:
            print(tokenizer.decode(row, skip_special_tokens=True), flush=True)
    return 0
