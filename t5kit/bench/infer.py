"""Inference benchmark: end-to-end generate latency of a preset with random weights.

Each run encodes `batch` random inputs of `input_len` tokens and generates exactly `output_len`
tokens (min_new_tokens = max_new_tokens, so EOS cannot end a run early). Latency covers the whole
`generate` call: encoder, cross-attention prefill and every decode step.
"""

from __future__ import annotations

import logging
import resource
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch

from t5kit.config.core import ConfigError
from t5kit.config.model import load_model_config
from t5kit.errors import T5kitError
from t5kit.generate import GenerationConfig, generate
from t5kit.generate.static_cache import device_memory
from t5kit.model import T5, count_parameters

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class InferenceBenchConfig:
    """One benchmark point: model, shape, precision and decode path."""

    preset: str = "t5-base"
    """Model preset name or YAML path; weights are random."""
    batch: int = 1
    """Inputs per generate call."""
    input_len: int = 60
    """Encoder tokens per input."""
    output_len: int = 20
    """Tokens generated per input, exactly."""
    runs: int = 10
    """Timed generate calls; the median and p90 are taken over them."""
    warmup: int = 2
    """Untimed calls before timing (the first also compiles when compile is set)."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Weight and activation type."""
    cache: Literal["static", "dynamic", "none"] = "static"
    """Decoder cache path of GenerationConfig."""
    compile: bool = False
    """torch.compile the static-cache decode step."""
    num_beams: int = 1
    """1 for greedy decoding, more for beam search."""
    seed: int = 0
    """Seed of the random weights and inputs."""

    def __post_init__(self) -> None:
        for name in ("batch", "input_len", "output_len", "runs", "num_beams"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ConfigError(f"warmup: must be 0 or more, got {self.warmup}")

    def generation_config(self) -> GenerationConfig:
        return GenerationConfig(
            max_new_tokens=self.output_len,
            min_new_tokens=self.output_len,
            num_beams=self.num_beams,
            cache=self.cache,
            compile=self.compile,
        )


@dataclass
class InferenceResult:
    """Measured latencies and memory of one benchmark point."""

    config: InferenceBenchConfig
    parameters: int
    threads: int
    latencies_ms: list[float] = field(default_factory=list)
    first_call_s: float = 0.0
    """Duration of the first (warm-up) call; with compile it includes compilation."""
    peak_rss_mib: float = 0.0
    """Peak resident memory of the process while this point ran."""
    output_tokens: torch.Tensor | None = None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p90_ms(self) -> float:
        return percentile(self.latencies_ms, 90)

    @property
    def tokens_per_s(self) -> float:
        return self.config.batch * self.config.output_len / (self.median_ms / 1000)

    def to_dict(self) -> dict:
        return {
            **asdict(self.config),
            "parameters": self.parameters,
            "threads": self.threads,
            "median_ms": self.median_ms,
            "p90_ms": self.p90_ms,
            "tokens_per_s": self.tokens_per_s,
            "first_call_s": self.first_call_s,
            "peak_rss_mib": self.peak_rss_mib,
            "latencies_ms": self.latencies_ms,
        }


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile with linear interpolation between sorted values."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS counter of this process (Linux); elsewhere keep the lifetime peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        logger.debug("cannot reset the peak RSS; reporting the process's lifetime peak")


def peak_rss_mib() -> float:
    """Return the peak resident memory in MiB, from /proc (after a reset) or getrusage."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_model(preset: str, dtype: str = "float32", seed: int = 0) -> T5:
    """Build a preset with random weights in eval mode."""
    torch.manual_seed(seed)
    model = T5(load_model_config(preset, {"dropout_rate": 0.0}))
    return model.to(DTYPES[dtype]).eval()


def random_inputs(batch: int, length: int, vocab_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return random token ids [batch, length] (no special ids) and an all-ones mask."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, min(vocab_size, 32000), (batch, length), generator=generator)
    return input_ids, torch.ones_like(input_ids)


def time_calls(run, calls: int) -> list[float]:
    """Call run() `calls` times and return each duration in milliseconds."""
    latencies = []
    for _ in range(calls):
        start = time.perf_counter()
        run()
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies


def run_inference_bench(config: InferenceBenchConfig, model: T5 | None = None) -> InferenceResult:
    """Measure `generate` for one benchmark point; build the preset with random weights unless given."""
    reset_peak_rss()
    model = model if model is not None else random_model(config.preset, config.dtype, config.seed)
    if model.config.position_embedding == "absolute" and config.input_len > model.config.max_encoder_length:
        raise T5kitError(
            f"--input-len {config.input_len} exceeds the preset's max_encoder_length "
            f"{model.config.max_encoder_length}; choose a shorter input"
        )
    if model.config.position_embedding == "absolute" and config.output_len > model.config.max_decoder_length:
        raise T5kitError(
            f"--output-len {config.output_len} exceeds the preset's max_decoder_length "
            f"{model.config.max_decoder_length}; choose a shorter output"
        )
    # The encoder's scores are [batch, heads, input_len, input_len] in fp32, plus a bias of one row's size.
    scores = (config.batch + 1) * model.config.num_heads * config.input_len**2 * 4
    memory = device_memory(model.shared.weight.device)
    if memory is not None and scores > memory:
        raise T5kitError(
            f"--input-len {config.input_len} needs {scores / 2**30:.1f} GiB for the encoder's attention scores, "
            f"more than the {memory / 2**30:.1f} GiB of memory; choose a shorter input"
        )
    input_ids, mask = random_inputs(config.batch, config.input_len, model.config.vocab_size, config.seed)
    generation = config.generation_config()
    result = InferenceResult(config, count_parameters(model), torch.get_num_threads())

    def run():
        result.output_tokens = generate(model, input_ids, mask, config=generation)

    for i in range(config.warmup):
        duration = time_calls(run, 1)[0]
        if i == 0:
            result.first_call_s = duration / 1000
    result.latencies_ms = time_calls(run, config.runs)
    result.peak_rss_mib = peak_rss_mib()
    logger.info(
        "%s batch %d: median %.1f ms, p90 %.1f ms", config.preset, config.batch, result.median_ms, result.p90_ms
    )
    return result


def format_table(results: list[InferenceResult]) -> str:
    """Return a Markdown table with one row per result, in the shape of NVIDIA's NeMo T5 tables."""
    header = (
        "| model | parameters | dtype | compile | batch | input len | output len | TP | PP | median ms | p90 ms "
        "| tokens/s | first call s | peak RSS MiB |"
    )
    lines = [header, "|" + "---|" * 14]
    for r in results:
        c = r.config
        lines.append(
            f"| {c.preset} | {r.parameters / 1e6:,.1f}M | {c.dtype} | {'yes' if c.compile else 'no'} | {c.batch} "
            f"| {c.input_len} | {c.output_len} "
            f"| 1 | 1 | {r.median_ms:.1f} | {r.p90_ms:.1f} | {r.tokens_per_s:.1f} | {r.first_call_s:.1f} "
            f"| {r.peak_rss_mib:,.0f} |"
        )
    return "\n".join(lines)
