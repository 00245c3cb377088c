"""Generation latency of t5kit against transformers on the same weights and inputs, in one process.

Builds a randomly initialised transformers T5 of a preset's shape, converts its state dict to t5kit
(sharing the tensors), and times greedy generation of exactly --output-len tokens for both, runs
interleaved so that load from other processes hits both alike. Checks that the output tokens are
identical and prints a Markdown report: machine, versions, command, load, medians and the ratio.

    python benchmarks/infer_vs_transformers.py --preset t5-base --batch 1 --input-len 60 --output-len 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from t5kit.bench.infer import percentile, random_inputs
from t5kit.config.model import load_model_config
from t5kit.convert.hf import from_hf_state
from t5kit.convert.hf_config import config_to_hf
from t5kit.generate import GenerationConfig, generate


@dataclass
class Engine:
    """One implementation under test and its measurements."""

    name: str
    dtype: str
    run: object
    latencies_ms: list[float] = field(default_factory=list)
    first_call_s: float = 0.0
    tokens: torch.Tensor | None = None


def build_models(preset: str, seed: int):
    """Return a random transformers model of the preset's shape and the t5kit model converted from it."""
    from transformers import MT5Config, MT5ForConditionalGeneration, T5Config, T5ForConditionalGeneration

    config = load_model_config(preset, {"dropout_rate": 0.0})
    data = config_to_hf(config, "float32")
    mt5 = data["model_type"] == "mt5"
    config_class = MT5Config if mt5 else T5Config
    model_class = MT5ForConditionalGeneration if mt5 else T5ForConditionalGeneration
    torch.manual_seed(seed)
    theirs = model_class(config_class(**data)).eval()
    if not config.tie_word_embeddings:
        # transformers 5 builds the head tied from a config; give untied presets their own head.
        theirs.lm_head.weight = nn.Parameter(torch.randn_like(theirs.lm_head.weight) * config.d_model**-0.5)
    ours = from_hf_state(data, theirs.state_dict(), source=f"random {preset}").eval()
    return theirs, ours


def make_engines(theirs, ours, input_ids, mask, args) -> list[Engine]:
    """Return the engines to time for one dtype: transformers, then each t5kit path."""
    length = args.output_len

    def hf_run():
        return theirs.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=length,
            min_new_tokens=length,
            do_sample=False,
            num_beams=1,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
        )[:, 1:]

    def ours_run(cache: str, **options):
        config = GenerationConfig(max_new_tokens=length, min_new_tokens=length, cache=cache, **options)
        return lambda: generate(ours, input_ids, mask, config=config)

    dtype = str(next(ours.parameters()).dtype).removeprefix("torch.")
    engines = [
        Engine("transformers", dtype, hf_run),
        Engine("t5kit static cache", dtype, ours_run("static")),
        Engine("t5kit static cache, weight views", dtype, ours_run("static", copy_weights=False)),
        Engine("t5kit dynamic cache", dtype, ours_run("dynamic")),
    ]
    if args.compile:
        engines.append(Engine("t5kit static cache + compile", dtype, ours_run("static", compile=True)))
    return engines


def measure(engines: list[Engine], runs: int, warmup: int) -> None:
    """Warm each engine up, then time them interleaved, alternating the order from run to run."""
    with torch.inference_mode():
        for engine in engines:
            start = time.perf_counter()
            engine.tokens = engine.run()
            engine.first_call_s = time.perf_counter() - start
            for _ in range(warmup - 1):
                engine.run()
        for i in range(runs):
            order = engines if i % 2 == 0 else engines[::-1]
            for engine in order:
                start = time.perf_counter()
                engine.run()
                engine.latencies_ms.append((time.perf_counter() - start) * 1000)


def machine() -> str:
    """Return the CPU model, core count and memory of this machine."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        with open("/proc/meminfo", encoding="utf-8") as handle:
            memory = int(handle.readline().split()[1]) / 2**20
    except OSError:
        memory = 0.0
    return f"{model}, {os.cpu_count()} cores, {memory:.0f} GiB RAM"


def report(results: list[Engine], args, load: tuple[list[float], list[float]]) -> str:
    """Return the Markdown report of one benchmark run."""
    import transformers

    lines = [
        f"command: `python {' '.join(sys.argv)}`",
        f"machine: {machine()}; torch threads: {torch.get_num_threads()}",
        f"versions: Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}",
        "load average (1, 5, 15 min) at start {:.2f} {:.2f} {:.2f}, at end {:.2f} {:.2f} {:.2f}".format(*load[0], *load[1]),
        "",
        f"{args.preset}, batch {args.batch}, {args.input_len} input tokens, exactly {args.output_len} new tokens, greedy; "
        f"{args.runs} interleaved runs per engine after {args.warmup} warm-up calls.",
        "",
        "| engine | dtype | median ms | p90 ms | tokens/s | first call s | speedup vs transformers, same dtype "
        "| speedup vs transformers fp32 | tokens = transformers, same dtype | tokens = transformers fp32 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    baselines = {e.dtype: e for e in results if e.name == "transformers"}
    reference = baselines.get("float32")
    for e in results:
        median = statistics.median(e.latencies_ms)
        cells = [
            e.name,
            e.dtype,
            f"{median:.1f}",
            f"{percentile(e.latencies_ms, 90):.1f}",
            f"{args.batch * args.output_len / (median / 1000):.1f}",
            f"{e.first_call_s:.1f}",
        ]
        for base in (baselines[e.dtype], reference):
            cells.append("-" if base is None else f"{statistics.median(base.latencies_ms) / median:.2f}x")
        for base in (baselines[e.dtype], reference):
            if base is None:
                cells.append("-")
            elif torch.equal(e.tokens, base.tokens):
                cells.append("yes")
            else:
                cells.append("no")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="t5-base", help="t5kit model preset (default: t5-base)")
    parser.add_argument("--batch", type=int, default=1, help="inputs per call (default: 1)")
    parser.add_argument("--input-len", type=int, default=60, help="encoder tokens per input (default: 60)")
    parser.add_argument("--output-len", type=int, default=20, help="new tokens per input (default: 20)")
    parser.add_argument("--runs", type=int, default=10, help="timed calls per engine (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per engine first (default: 2)")
    parser.add_argument(
        "--dtype", action="append", choices=["float32", "bfloat16"], help="repeat for several (default: float32)"
    )
    parser.add_argument("--compile", action="store_true", help="also time the compiled static-cache step")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs")
    parser.add_argument("--json", metavar="FILE", help="also write every latency as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = list(os.getloadavg())
    theirs, ours = build_models(args.preset, args.seed)
    input_ids, mask = random_inputs(args.batch, args.input_len, ours.config.vocab_size, args.seed)

    results = []
    for dtype in args.dtype or ["float32"]:
        theirs, ours = theirs.to(getattr(torch, dtype)), ours.to(getattr(torch, dtype))
        engines = make_engines(theirs, ours, input_ids, mask, args)
        measure(engines, args.runs, args.warmup)
        results += engines

    print(report(results, args, (load_start, list(os.getloadavg()))))
    if args.json:
        rows = [{"engine": e.name, "dtype": e.dtype, "latencies_ms": e.latencies_ms} for e in results]
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "results": rows}, handle, indent=2)
    mismatched = [e.name for e in results if e.dtype == "float32" and not torch.equal(e.tokens, results[0].tokens)]
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
