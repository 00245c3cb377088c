"""`t5kit bench infer --preset NAME ...`: measure generation latency of presets with random weights."""

from __future__ import annotations

import argparse

from t5kit.cli.arguments import non_negative_int, positive_int


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="run benchmarks")
    kinds = parser.add_subparsers(dest="bench_kind", metavar="KIND", required=True)

    infer = kinds.add_parser(
        "infer",
        help="generation latency, tokens/s and peak memory per preset",
        description="Time end-to-end generate calls (encoder plus exactly --output-len new tokens) on "
        "random weights and print a table with one row per preset: median and p90 latency, tokens/s, "
        "peak resident memory. TP and PP are 1 (one process).",
    )
    infer.add_argument(
        "--preset",
        action="append",
        required=True,
        metavar="NAME",
        help="model preset or YAML file; repeat or separate with commas for several rows",
    )
    infer.add_argument("--batch", type=positive_int, default=1, help="inputs per call (default: 1)")
    infer.add_argument("--input-len", type=positive_int, default=60, help="encoder tokens per input (default: 60)")
    infer.add_argument("--output-len", type=positive_int, default=20, help="tokens generated per input (default: 20)")
    infer.add_argument("--runs", type=positive_int, default=10, help="timed calls per preset (default: 10)")
    infer.add_argument("--warmup", type=non_negative_int, default=2, help="untimed calls before timing (default: 2)")
    infer.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="weight type")
    infer.add_argument(
        "--cache", choices=["static", "dynamic", "none"], default="static", help="decoder cache path (default: static)"
    )
    infer.add_argument("--compile", action="store_true", help="torch.compile the static-cache decode step")
    infer.add_argument("--num-beams", type=positive_int, default=1, help="beam search width (default: 1, greedy)")
    infer.add_argument("--threads", type=positive_int, help="torch intra-op threads (default: torch's choice)")
    infer.add_argument("--json", metavar="FILE", help="also write the results, every latency included, as JSON")
    infer.set_defaults(run=run_infer)


def run_infer(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from t5kit.bench.infer import InferenceBenchConfig, format_table, run_inference_bench
    from t5kit.errors import T5kitError

    if args.threads is not None:
        if args.threads < 1:
            raise T5kitError(f"invalid --threads {args.threads}; expected 1 or more")
        torch.set_num_threads(args.threads)
    presets = [name for value in args.preset for name in value.split(",") if name]
    results = []
    for preset in presets:
        config = InferenceBenchConfig(
            preset=preset,
            batch=args.batch,
            input_len=args.input_len,
            output_len=args.output_len,
            runs=args.runs,
            warmup=args.warmup,
            dtype=args.dtype,
            cache=args.cache,
            compile=args.compile,
            num_beams=args.num_beams,
        )
        results.append(run_inference_bench(config))

    print(format_table(results))
    if args.json:
        path = Path(args.json)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps([r.to_dict() for r in results], indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            raise T5kitError(f"cannot write {path}: {error.strerror}") from error
    return 0
