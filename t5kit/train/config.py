"""Pretraining configs: optimizer, schedule, trainer and parallel sections, and the PretrainConfig that joins them.

A pretraining YAML has four sections. `model` names a preset and overrides some of its fields;
`data` is the data pipeline's DataConfig; `train` and `parallel` are defined here:

    model: {preset: tiny, dropout_rate: 0.0}
    data: {...}
    train: {max_steps: 2000, optimizer: {name: adamw, lr: 1.0e-3}, schedule: {name: cosine}}
    parallel: {backend: auto}
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from t5kit.config.core import ConfigError, build
from t5kit.config.model import ModelConfig, load_model_config
from t5kit.data.config import DataConfig


def _check_model_keys(section: dict[str, Any]) -> None:
    """Reject a key of the model section that is neither `preset` nor a ModelConfig field."""
    valid = ["preset"] + [f.name for f in dataclasses.fields(ModelConfig)]
    for key in section:
        if key not in valid:
            match = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f" Did you mean 'model.{match[0]}'?" if match else ""
            raise ConfigError(f"unknown config key 'model.{key}'.{hint} Valid keys: {', '.join(valid)}")


@dataclass
class OptimizerConfig:
    """The optimizer and its hyperparameters."""

    name: Literal["adamw", "adamw_scale", "adafactor"] = "adamw"
    """adamw (torch.optim.AdamW), adamw_scale (nanoT5's AdamW with steps scaled by the parameter RMS) or adafactor."""
    lr: float = 1e-3
    """Peak learning rate; the schedule multiplies it."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam's decay rates of the first and second moment estimates (AdamW variants only)."""
    eps: float = 1e-8
    """Adam's denominator epsilon (AdamW variants only)."""
    weight_decay: float = 0.0
    """Decoupled weight decay, applied to matrices and embeddings but not to biases and norm weights."""
    beta2_decay: float = -0.8
    """Adafactor: the second-moment decay is 1 - step**beta2_decay, as T5 used."""
    clip_threshold: float = 1.0
    """Adafactor: the RMS above which an update is scaled down (update clipping)."""

    def __post_init__(self) -> None:
        if not math.isfinite(self.lr) or self.lr < 0:
            raise ConfigError(f"lr: must be a finite number of 0 or more, got {self.lr}")
        if not all(0.0 <= beta < 1.0 for beta in self.betas):
            raise ConfigError(f"betas: each must be in [0, 1), got {list(self.betas)}")
        if self.eps <= 0:
            raise ConfigError(f"eps: must be positive, got {self.eps}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay: must not be negative, got {self.weight_decay}")
        if self.beta2_decay > 0:
            raise ConfigError(f"beta2_decay: must be zero or negative, got {self.beta2_decay}")
        if self.clip_threshold < 1.0:
            raise ConfigError(f"clip_threshold: must be at least 1, got {self.clip_threshold}")


@dataclass
class ScheduleConfig:
    """The learning-rate schedule over train.max_steps updates."""

    name: Literal["inverse_sqrt", "cosine", "linear", "constant", "warmup_annealing"] = "cosine"
    """Shape after warmup; warmup_annealing is NeMo's linear warmup-then-decay."""
    warmup_steps: int = 0
    """Updates of linear warmup from near zero to the peak learning rate."""
    warmup_ratio: float | None = None
    """Warmup as a fraction of train.max_steps (NeMo style); overrides warmup_steps when set."""
    min_lr: float = 0.0
    """Learning rate at the end of the decay (the floor of inverse_sqrt); constant ignores it."""

    def __post_init__(self) -> None:
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps: must not be negative, got {self.warmup_steps}")
        if self.warmup_ratio is not None and not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup_ratio: must be in [0, 1), got {self.warmup_ratio}")
        if self.min_lr < 0:
            raise ConfigError(f"min_lr: must not be negative, got {self.min_lr}")

    def resolved_warmup_steps(self, max_steps: int) -> int:
        """Return the warmup length in updates (NeMo rounds warmup_ratio * max_steps down)."""
        if self.warmup_ratio is not None:
            return int(self.warmup_ratio * max_steps)
        return self.warmup_steps


@dataclass
class TrainConfig:
    """The training loop: length, batch accumulation, precision, logging, validation and checkpoints."""

    output_dir: str = "runs/pretrain"
    """Run directory for checkpoints, metrics.jsonl, TensorBoard events, plots and the final model."""
    seed: int = 1234
    """Seed of the model init and of dropout (the data pipeline has its own seed)."""
    max_steps: int = 1000
    """Optimizer updates to train for."""
    micro_batch_size: int = 8
    """Sequences per forward-backward pass on each rank."""
    grad_accum_steps: int = 1
    """Micro-batches per update on each rank; ignored when global_batch_size is set."""
    global_batch_size: int | None = None
    """Sequences per update over all ranks; sets grad_accum_steps to global / (micro batch x world size)."""
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    """Optimizer name and hyperparameters."""
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    """Learning-rate schedule."""
    clip_grad_norm: float | None = 1.0
    """Maximum global L2 norm of the gradients; null or 0 disables clipping."""
    z_loss: float = 0.0
    """Weight of the z-loss, z_loss * logsumexp(logits)**2 per target token (PaLM uses 1e-4); 0 disables it."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """fp32, or bf16 autocast for the forward pass (weights, gradients and optimizer state stay fp32)."""
    device: str = "auto"
    """cpu, cuda, cuda:N, or auto (cuda when available, else cpu)."""
    num_threads: int | None = None
    """CPU threads for torch (torch.set_num_threads); null keeps torch's default."""
    activation_checkpointing: bool = False
    """Recompute each encoder and decoder block in the backward pass instead of storing its activations."""
    log_every: int = 10
    """Updates between metric records (metrics.jsonl, TensorBoard, console)."""
    val_every: int = 200
    """Updates between validation-loss evaluations; 0 evaluates only at the end."""
    val_batches: int = 20
    """Validation batches per evaluation (the same batches every time)."""
    save_every: int = 500
    """Updates between checkpoints; a checkpoint is also written at the end."""
    keep_last: int = 3
    """Checkpoints to keep; older ones are deleted after each save."""
    resume: str = "auto"
    """auto (newest complete checkpoint in output_dir, or a fresh start), none, or a checkpoint directory."""
    nan_policy: Literal["stop", "skip"] = "stop"
    """On a NaN or infinite loss or gradient norm: stop with an error, or skip that update."""
    max_skipped_steps: int = 10
    """With nan_policy=skip: consecutive skipped updates after which the run stops anyway."""
    peak_flops: float | None = None
    """Peak FLOP/s of one device for MFU; null uses a built-in estimate for the device and precision."""
    tensorboard: bool = True
    """Write TensorBoard events under output_dir/tensorboard."""
    progress_bar: bool = True
    """Show a tqdm progress bar with an ETA on rank 0."""

    def __post_init__(self) -> None:
        positive = (
            "max_steps", "micro_batch_size", "grad_accum_steps", "log_every", "val_batches", "save_every", "keep_last"
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive, got {getattr(self, name)}")
        if self.global_batch_size is not None and self.global_batch_size <= 0:
            raise ConfigError(f"global_batch_size: must be positive, got {self.global_batch_size}")
        if self.val_every < 0:
            raise ConfigError(f"val_every: must not be negative, got {self.val_every}")
        if self.clip_grad_norm is not None and self.clip_grad_norm < 0:
            raise ConfigError(f"clip_grad_norm: must not be negative, got {self.clip_grad_norm}")
        if self.z_loss < 0:
            raise ConfigError(f"z_loss: must not be negative, got {self.z_loss}")
        if self.num_threads is not None and self.num_threads <= 0:
            raise ConfigError(f"num_threads: must be positive, got {self.num_threads}")
        if self.max_skipped_steps <= 0:
            raise ConfigError(f"max_skipped_steps: must be positive, got {self.max_skipped_steps}")
        if self.peak_flops is not None and self.peak_flops <= 0:
            raise ConfigError(f"peak_flops: must be positive, got {self.peak_flops}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.schedule.min_lr > self.optimizer.lr and self.schedule.name != "constant":
            raise ConfigError(
                f"schedule.min_lr ({self.schedule.min_lr}) is above optimizer.lr ({self.optimizer.lr}); lower it"
            )

    def accumulation_steps(self, micro_batch_size: int, world_size: int) -> int:
        """Return micro-batches per update on each rank, checking global_batch_size divides evenly."""
        if self.global_batch_size is None:
            return self.grad_accum_steps
        per_pass = micro_batch_size * world_size
        if self.global_batch_size % per_pass:
            raise ConfigError(
                f"train.global_batch_size: {self.global_batch_size} is not a multiple of micro batch size "
                f"{micro_batch_size} x {world_size} ranks; choose a multiple of {per_pass}"
            )
        return self.global_batch_size // per_pass


@dataclass
class ParallelConfig:
    """Data parallelism over torchrun ranks; single-process runs ignore it."""

    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """Process-group backend; auto picks nccl on CUDA and gloo on CPU."""
    timeout_s: int = 600
    """Seconds a collective waits for the other ranks before the run fails."""

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ConfigError(f"timeout_s: must be positive, got {self.timeout_s}")


@dataclass
class PretrainConfig:
    """Everything a pretraining run needs: the model, the data, the trainer and data parallelism."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """Architecture; in YAML, `preset` names a bundled preset and the other keys override its fields."""
    data: DataConfig = field(default_factory=DataConfig)
    """Data pipeline: tokenizer, datasets, objective and batch shapes."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Training loop."""
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    """Data parallelism."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PretrainConfig:
        """Build from nested dicts (a loaded YAML), resolving the model preset and rejecting unknown keys."""
        data = dict(data or {})
        model_section = data.get("model") or {}
        if isinstance(model_section, ModelConfig):
            return build(cls, data)
        if not isinstance(model_section, dict):
            raise ConfigError(f"model: expected a mapping with a preset and field overrides, got {model_section!r}")
        model_section = dict(model_section)
        _check_model_keys(model_section)
        preset = model_section.pop("preset", None)
        data["model"] = load_model_config(preset, model_section)
        return build(cls, data)
