"""Training metrics: loss, learning rate, gradient norm, throughput, MFU and memory, to JSONL and TensorBoard.

MFU (model FLOPs utilisation) is the model FLOPs of the tokens processed per second over the peak
FLOP/s of the devices. For one sequence with L encoder and S decoder positions:

    FLOPs = 6 x (N_enc x L + N_dec x S) + 12 x inner x (layers_enc x L^2 + layers_dec x (S^2 + S x L))

- 6 x weights x tokens: a multiply-add (2 FLOPs) per weight and token in the forward pass, twice
  that in the backward pass.
- N_enc, the encoder-side weights: encoder attention (q, k, v, o) and feed-forward matrices, plus
  the decoder's cross-attention k and v projections, which run over encoder tokens.
- N_dec, the decoder-side weights: decoder self-attention, cross-attention q and o, feed-forward
  matrices, and the LM head (d_model x vocab).
- The last term counts the attention matmuls (scores Q K^T and the weighted sum with V, 2 x Tq x Tk
  x inner FLOPs each in the forward pass, times 3 for forward and backward), with inner = heads x
  d_kv, over the full (not causally halved) decoder self-attention.

Embedding lookups, norms, biases, softmax and the recomputation of activation checkpointing are not
counted. Positions are those of the batch tensors, padding included, because the matmuls run over them.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from t5kit.config.model import ModelConfig
from t5kit.model.io import atomic_write

logger = logging.getLogger(__name__)

METRICS_NAME = "metrics.jsonl"

# Peak dense FLOP/s per device, by (device kind, precision). The CPU numbers are torch.mm peaks
# measured on a 2-core AMD EPYC (Zen 4, AVX512-BF16) with torch 2.13; any other CPU differs, so
# set train.peak_flops there. GPU numbers are NVIDIA's dense tensor-core (bf16) and non-tensor
# (fp32) specifications.
PEAK_FLOPS = {
    ("cpu", "fp32"): 192e9,
    ("cpu", "bf16"): 432e9,
    ("A100", "fp32"): 19.5e12,
    ("A100", "bf16"): 312e12,
    ("H100", "fp32"): 67e12,
    ("H100", "bf16"): 989e12,
    ("H200", "fp32"): 67e12,
    ("H200", "bf16"): 989e12,
}


def default_peak_flops(device: torch.device, precision: str) -> float | None:
    """Return a built-in peak FLOP/s estimate for one device, or None when the device is unknown."""
    if device.type == "cpu":
        return PEAK_FLOPS[("cpu", precision)]
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for kind in ("H200", "H100", "A100"):
            if kind in name:
                return PEAK_FLOPS[(kind, precision)]
    return None


def weight_counts(config: ModelConfig) -> tuple[int, int]:
    """Return the (encoder-side, decoder-side) matmul weight counts defined in the module docstring."""
    d_model, inner, d_ff = config.d_model, config.inner_dim, config.d_ff
    feed_forward = (2 if config.gated_ffn else 1) * d_model * d_ff + d_ff * d_model
    attention = 4 * d_model * inner
    decoder_layers = config.num_decoder_layers

    encoder = config.num_layers * (attention + feed_forward) + decoder_layers * 2 * d_model * inner
    decoder = decoder_layers * (attention + 2 * d_model * inner + feed_forward) + d_model * config.vocab_size
    return encoder, decoder


def flops_per_sequence(config: ModelConfig, encoder_length: int, decoder_length: int) -> float:
    """Return training FLOPs (forward and backward) of one sequence, as the module docstring defines."""
    encoder_weights, decoder_weights = weight_counts(config)
    length, target = encoder_length, decoder_length
    matmuls = 6.0 * (encoder_weights * length + decoder_weights * target)
    attention = 12.0 * config.inner_dim * (
        config.num_layers * length * length + config.num_decoder_layers * (target * target + target * length)
    )
    return matmuls + attention


def memory_mib(device: torch.device) -> float:
    """Return the peak CUDA memory allocated, or the process's resident set size on CPU, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            resident_pages = int(handle.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak, in KiB on Linux


@dataclass
class IntervalMeter:
    """Sums over the updates since the last metrics record; its state travels in checkpoints."""

    loss_sum: float = 0.0
    """Summed cross entropy in nats over all ranks."""
    z_loss_sum: float = 0.0
    """Summed weighted z-loss over all ranks."""
    target_tokens: int = 0
    """Target tokens over all ranks."""
    encoder_tokens: int = 0
    """Non-padding encoder tokens over all ranks."""
    flops: float = 0.0
    """Model FLOPs over all ranks."""
    updates: int = 0
    """Updates taken."""
    started: float = field(default_factory=time.perf_counter)
    """perf_counter() at the start of the interval (not saved)."""

    def add(self, loss_sum: float, z_loss_sum: float, target_tokens: int, encoder_tokens: int, flops: float) -> None:
        self.loss_sum += loss_sum
        self.z_loss_sum += z_loss_sum
        self.target_tokens += target_tokens
        self.encoder_tokens += encoder_tokens
        self.flops += flops
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "loss_sum": self.loss_sum,
            "z_loss_sum": self.z_loss_sum,
            "target_tokens": self.target_tokens,
            "encoder_tokens": self.encoder_tokens,
            "flops": self.flops,
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
        self.started = time.perf_counter()

    def summary(self, peak_flops: float | None, world_size: int) -> dict[str, Any]:
        """Return the interval's mean loss, throughputs and MFU, and start a new interval."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        tokens = max(self.target_tokens, 1)
        record = {
            "loss": self.loss_sum / tokens,
            "encoder_tokens_per_s": self.encoder_tokens / elapsed,
            "decoder_tokens_per_s": self.target_tokens / elapsed,
            "mfu": self.flops / elapsed / (peak_flops * world_size) if peak_flops else None,
        }
        if self.z_loss_sum:
            record["z_loss"] = self.z_loss_sum / tokens
        self.__init__()
        return record


class MetricsWriter:
    """Append records to output_dir/metrics.jsonl and mirror numbers to TensorBoard, from rank 0 only."""

    def __init__(
        self, output_dir: str | Path, enabled: bool = True, tensorboard: bool = True, purge_step: int | None = None
    ):
        self.path = Path(output_dir) / METRICS_NAME
        self.enabled = enabled
        self.tensorboard = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a resumed run is about to redo.
            self.tensorboard = SummaryWriter(str(Path(output_dir) / "tensorboard"), purge_step=purge_step)

    def truncate_after(self, step: int) -> None:
        """Drop records of steps after `step`, which a resumed run is about to redo."""
        if not self.enabled or not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("dropping a partial line of %s (the run was interrupted while writing it)", self.path)
                continue
            if record.get("step", 0) <= step:
                kept.append(line)
        text = "".join(line + "\n" for line in kept)
        atomic_write(self.path, lambda path: Path(path).write_text(text, encoding="utf-8"))

    def write(self, record: dict[str, Any]) -> None:
        """Append one record; `kind` and `step` name it and every other number is also sent to TensorBoard."""
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            for key, value in record.items():
                if key not in ("kind", "step") and isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(f"{record['kind']}/{key}", value, record["step"])
            self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Read every record of a metrics.jsonl file (or of the metrics.jsonl in a run directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_NAME
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
