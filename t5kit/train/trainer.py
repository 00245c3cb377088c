"""The pretraining loop: forward-backward, clip-and-step, metrics, validation and checkpoints.

One update draws grad_accum_steps micro-batches on every rank, counts their target tokens over all
ranks, and runs forward-backward on each with the summed loss scaled by world_size / total tokens.
DDP averages gradients over ranks, so the gradient is the mean over every target token of the
update, however the tokens are split between micro-batches and ranks. Then gradients are clipped,
the optimizer and schedule step, and metrics are recorded.

A run is resumable: checkpoints hold the weights, optimizer, schedule, each rank's data position
and RNG states, and the metrics interval, so a resumed run repeats the losses of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from t5kit.config.core import ConfigError, load_yaml, to_dict
from t5kit.errors import T5kitError
from t5kit.model import T5, save_model
from t5kit.parallel import ddp
from t5kit.train import checkpoint as ckpt
from t5kit.train.config import PretrainConfig
from t5kit.train.loss import LossSums, count_target_tokens, loss_sums
from t5kit.train.metrics import IntervalMeter, MetricsWriter, default_peak_flops, flops_per_sequence, memory_mib
from t5kit.train.optim import build_optimizer
from t5kit.train.schedule import build_scheduler
from t5kit.train.validation import evaluate, target_token_counts, unigram_entropy

logger = logging.getLogger(__name__)


class TrainingDivergedError(T5kitError):
    """A NaN or infinite loss or gradient norm that the nan_policy does not allow to continue."""


class RunDirectoryError(T5kitError):
    """An output directory that cannot be used for this run."""


@dataclass
class PretrainResult:
    """Summary of a finished run."""

    output_dir: Path
    """Run directory."""
    steps: int
    """Updates taken in total (including those before a resume)."""
    val_loss: float | None
    """Final validation loss in nats per target token; None without validation data."""
    unigram_entropy: float | None
    """Baseline: unigram entropy of the validation targets in nats; None without validation data."""
    checkpoint: Path | None
    """The last checkpoint written."""


@dataclass
class UpdateStats:
    """Numbers of one update, summed over micro-batches and ranks."""

    loss_sum: float
    z_loss_sum: float
    target_tokens: int
    encoder_tokens: int
    grad_norm: float
    lr: float
    flops: float

    @property
    def finite(self) -> bool:
        return math.isfinite(self.loss_sum) and math.isfinite(self.z_loss_sum) and math.isfinite(self.grad_norm)


def resolve_config(config: PretrainConfig | dict | str | Path) -> PretrainConfig:
    """Accept a PretrainConfig, a dict of sections, or a YAML file path."""
    if isinstance(config, PretrainConfig):
        return config
    if isinstance(config, (str, Path)):
        config = load_yaml(config)
    if isinstance(config, dict):
        return PretrainConfig.from_dict(config)
    raise TypeError(f"expected a PretrainConfig, a dict or a YAML path, got {type(config).__name__}")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """Turn train.device into a torch.device; auto picks this rank's GPU when CUDA is available."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name} requested but CUDA is not available; use train.device=cpu")
    return torch.device(name)


def autocast(device: torch.device, precision: str):
    """Return the autocast context for `precision` (bf16 autocast, or nothing for fp32)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def model_logits(model: nn.Module, batch) -> torch.Tensor:
    """Run the model on a batch's tensors and return logits [B, S, V]."""
    return model(
        batch.input_ids,
        batch.decoder_input_ids,
        attention_mask=batch.attention_mask,
        decoder_attention_mask=batch.decoder_attention_mask,
        encoder_segment_ids=batch.encoder_segment_ids,
        decoder_segment_ids=batch.decoder_segment_ids,
    )


def forward_backward(
    model: nn.Module, batch, loss_scale: float, z_loss: float, device: torch.device, precision: str
) -> LossSums:
    """Run one micro-batch forward and backward with the summed loss times `loss_scale`; return detached sums."""
    with autocast(device, precision):
        logits = model_logits(model, batch)
    sums = loss_sums(logits, batch.labels, z_loss)
    (sums.total * loss_scale).backward()
    return LossSums(sums.cross_entropy.detach(), sums.z_loss.detach(), sums.tokens)


def clip_gradients(parameters: list[torch.Tensor], max_norm: float | None) -> float:
    """Clip the global gradient L2 norm to `max_norm` (no clipping for None or 0); return the norm before clipping."""
    limit = max_norm if max_norm else math.inf
    return float(torch.nn.utils.clip_grad_norm_(parameters, limit).item())


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Pretrain a T5 as a PretrainConfig describes; `fit()` runs the loop.

    `model`, `train_batches` and `val_batches` replace what the config would build (for tests and
    custom pipelines). Batches need torch-convertible fields as `t5kit.data.loader.Batch` has, and
    `train_batches` needs `state_dict()` and `load_state_dict()` for resumption.
    """

    def __init__(self, config: PretrainConfig, model: T5 | None = None, train_batches=None, val_batches=None):
        self.config = config
        train = config.train
        self.context = ddp.init_distributed(config.parallel.backend, resolve_device(train.device).type,
                                            config.parallel.timeout_s)
        self.device = resolve_device(train.device, self.context.local_rank)
        if train.num_threads is not None:
            torch.set_num_threads(train.num_threads)
        self.output_dir = Path(train.output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoints"

        self.train_batches = train_batches if train_batches is not None else self._build_batches("train")
        if val_batches is None and config.data.validation_paths:
            val_batches = self._build_batches("validation")
        self.val_batches = None if val_batches is None else [b.to_torch(self.device) for b in
                                                             itertools.islice(val_batches, train.val_batches)]
        self.accum_steps = train.accumulation_steps(train.micro_batch_size, self.context.world_size)
        self._check_shapes()

        # Every rank initialises the same weights from train.seed (and DDP broadcasts rank 0's anyway),
        # then reseeds with seed + rank so that ranks draw different dropout masks.
        seed_everything(train.seed)
        self.model = model if model is not None else T5(config.model)
        self.model.to(self.device).train()
        seed_everything(train.seed + self.context.rank)
        self._wrap_model()
        self.optimizer = build_optimizer(self.model, train.optimizer)
        self.scheduler = build_scheduler(self.optimizer, train.schedule, train.max_steps)

        self.step = 0
        self.skipped_updates = 0
        self.consecutive_skips = 0
        self.last_checkpoint: Path | None = None
        self.meter = IntervalMeter()
        self.peak_flops = train.peak_flops or default_peak_flops(self.device, train.precision)
        self.writer: MetricsWriter | None = None

    def _build_batches(self, split: str):
        from t5kit.data.loader import build_pretraining_batches

        return build_pretraining_batches(
            self.config.data, self.config.train.micro_batch_size, self.context.rank, self.context.world_size, split
        )

    def _check_shapes(self) -> None:
        """Reject data the model cannot take: ids past its vocabulary, sequences past its positions."""
        from t5kit.data.indexed_dataset import IndexedDataset

        model, data = self.config.model, self.config.data
        for path in data.paths + data.validation_paths:
            model.check_tokenizer(IndexedDataset(path).vocab_size)
        targets = getattr(self.train_batches, "targets_length", data.targets_length) or 0
        if model.position_embedding == "absolute" and (
            data.inputs_length > model.max_encoder_length or targets > model.max_decoder_length
        ):
            raise ConfigError(
                f"data lengths {data.inputs_length} (inputs) and {targets} (targets) exceed the model's absolute "
                f"positions {model.max_encoder_length} and {model.max_decoder_length}; shorten data.inputs_length "
                "and data.targets_length, or raise model.max_encoder_length and model.max_decoder_length"
            )

    def _wrap_model(self) -> None:
        """Apply activation checkpointing, then DDP, in that order (DDP must see the final module tree)."""
        self.train_model: nn.Module = self.model
        if self.config.train.activation_checkpointing:
            from t5kit.parallel.checkpointing import apply_activation_checkpointing

            apply_activation_checkpointing(self.model)
        if self.context.enabled:
            self.train_model = ddp.apply_ddp(self.model, self.device)

    # ---- the loop -------------------------------------------------------------------------------

    def fit(self) -> PretrainResult:
        """Train until train.max_steps, then write the final checkpoint, model and plot."""
        self._prepare_output_dir()
        baseline = self._baseline()
        val_loss = None
        progress = self._progress_bar()
        self.meter.started = time.perf_counter()  # throughput excludes setup time
        try:
            with self._redirect_logging(progress):
                while self.step < self.config.train.max_steps:
                    val_loss = self._run_update(progress, val_loss)
            if val_loss is None and self.val_batches is not None:
                val_loss = self.validate(record=False)  # resumed a finished run: report, record nothing
        finally:
            progress.close()
            if self.writer is not None:
                self.writer.close()
        return self._finish(baseline, val_loss)

    def _run_update(self, progress, val_loss: float | None) -> float | None:
        """Take one update with its metrics, validation and checkpoint; return the latest validation loss."""
        train = self.config.train
        stats = self.train_step()
        if not stats.finite:
            self._handle_nonfinite(stats)
            return val_loss
        self.consecutive_skips = 0
        self.step += 1
        progress.update(1)
        self._record(stats, progress)

        at_end = self.step == train.max_steps
        if self.val_batches is not None and (at_end or (train.val_every and self.step % train.val_every == 0)):
            val_loss = self.validate()
        if at_end or self.step % train.save_every == 0:
            self.save()
        return val_loss

    def train_step(self) -> UpdateStats:
        """Run one update: forward-backward on each micro-batch, then clip and step (unless non-finite)."""
        train = self.config.train
        micro_batches = [next(self.train_batches).to_torch(self.device) for _ in range(self.accum_steps)]
        local_tokens = sum(count_target_tokens(batch.labels) for batch in micro_batches)
        total_tokens = int(ddp.all_reduce_sum(torch.tensor([local_tokens], device=self.device), self.context).item())
        loss_scale = self.context.world_size / max(total_tokens, 1)

        # Forward-backward; DDP synchronises gradients only on the last micro-batch.
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)
        flops = 0.0
        for index, batch in enumerate(micro_batches):
            last = index == len(micro_batches) - 1
            sync = contextlib.nullcontext() if last or not self.context.enabled else self.train_model.no_sync()
            with sync:
                out = forward_backward(self.train_model, batch, loss_scale, train.z_loss, self.device, train.precision)
            encoder_tokens = batch.attention_mask.sum() if batch.attention_mask is not None else batch.input_ids.numel()
            sums += torch.stack([out.cross_entropy, out.z_loss, torch.as_tensor(encoder_tokens)]).double()
            batch_size, length = batch.input_ids.shape
            flops += batch_size * flops_per_sequence(self.config.model, length, batch.labels.shape[1])
        ddp.all_reduce_sum(sums, self.context)

        lr = self.scheduler.get_last_lr()[0]
        grad_norm = self.clip_and_step(sums[:2].sum().item())
        return UpdateStats(sums[0].item(), sums[1].item(), total_tokens, int(sums[2].item()), grad_norm, lr,
                           flops * self.context.world_size)

    def clip_and_step(self, loss_sum: float) -> float:
        """Clip gradients and take the optimizer and schedule step when loss and norm are finite; return the norm."""
        grad_norm = clip_gradients([p for p in self.model.parameters() if p.grad is not None],
                                   self.config.train.clip_grad_norm)
        if math.isfinite(loss_sum) and math.isfinite(grad_norm):
            self.optimizer.step()
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _handle_nonfinite(self, stats: UpdateStats) -> None:
        """Stop with the last good checkpoint named, or skip the update, as train.nan_policy selects."""
        train = self.config.train
        values = f"loss {stats.loss_sum / max(stats.target_tokens, 1)}, gradient norm {stats.grad_norm}"
        where = f"update {self.step + 1}"
        good = "no checkpoint was written yet"
        if self.last_checkpoint is not None:
            good = f"the last good checkpoint is {self.last_checkpoint}"
        if train.nan_policy == "skip":
            self.skipped_updates += 1
            self.consecutive_skips += 1
            logger.warning("skipping %s: %s is not finite (%d in a row)", where, values, self.consecutive_skips)
            if self.consecutive_skips < train.max_skipped_steps:
                return
            raise TrainingDivergedError(
                f"{train.max_skipped_steps} consecutive updates had a non-finite loss or gradient norm, the last at "
                f"{where} ({values}); {good}. Lower train.optimizer.lr or check the data."
            )
        raise TrainingDivergedError(
            f"non-finite {values} at {where}; {good}. Resume from it with a lower train.optimizer.lr, or set "
            "train.nan_policy=skip to skip such updates."
        )

    # ---- metrics, validation, checkpoints ----------------------------------------------------------

    def _record(self, stats: UpdateStats, progress) -> None:
        """Add an update to the metrics interval; every log_every updates, write and log a record."""
        self.meter.add(stats.loss_sum, stats.z_loss_sum, stats.target_tokens, stats.encoder_tokens, stats.flops)
        if self.step % self.config.train.log_every:
            return
        record = {"kind": "train", "step": self.step, **self.meter.summary(self.peak_flops, self.context.world_size)}
        record.update(lr=stats.lr, grad_norm=stats.grad_norm, memory_mib=memory_mib(self.device),
                      skipped_updates=self.skipped_updates)
        self._write(record)
        progress.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{stats.lr:.2e}", refresh=False)
        mfu = f"{100 * record['mfu']:.1f}%" if record["mfu"] is not None else "n/a"
        logger.info(
            "step %d/%d | loss %.4f | lr %.3e | grad norm %.3f | %.0f enc tok/s | %.0f dec tok/s | MFU %s | %.0f MiB",
            self.step, self.config.train.max_steps, record["loss"], stats.lr, stats.grad_norm,
            record["encoder_tokens_per_s"], record["decoder_tokens_per_s"], mfu, record["memory_mib"],
        )

    def _write(self, record: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.write(record)

    def validate(self, record: bool = True) -> float:
        """Compute the validation loss over all ranks, record it unless `record` is False, and return it."""
        sums = evaluate(self.model, self.val_batches, self._eval_forward)
        totals = torch.tensor([sums.cross_entropy.item(), sums.tokens], dtype=torch.float64, device=self.device)
        ddp.all_reduce_sum(totals, self.context)
        val_loss = (totals[0] / totals[1].clamp(min=1)).item()
        if not record:
            return val_loss
        self._write({"kind": "val", "step": self.step, "val_loss": val_loss, "val_tokens": int(totals[1].item())})
        logger.info("step %d | validation loss %.4f over %d target tokens", self.step, val_loss, int(totals[1].item()))
        return val_loss

    def _eval_forward(self, model: nn.Module, batch) -> torch.Tensor:
        with autocast(self.device, self.config.train.precision):
            return model_logits(model, batch)

    def _baseline(self) -> float | None:
        """Compute, log and (on a fresh start) record the unigram entropy of the validation targets."""
        if self.val_batches is None:
            return None
        counts = target_token_counts(self.val_batches, self.config.model.vocab_size).to(self.device)
        ddp.all_reduce_sum(counts, self.context)
        entropy = unigram_entropy(counts.cpu())
        tokens = int(counts.sum().item())
        logger.info("baseline: unigram entropy of the validation targets = %.4f nats (%d target tokens)",
                    entropy, tokens)
        if self.step == 0:
            self._write({"kind": "baseline", "step": 0, "unigram_entropy": entropy, "val_target_tokens": tokens})
        return entropy

    def trainer_state(self) -> dict[str, Any]:
        """Collect what a resumed run needs besides the weights, gathering each rank's RNG and data state."""
        rank_state = {"rng": ckpt.rng_state(), "data": self.train_batches.state_dict()}
        return {
            "step": self.step,
            "world_size": self.context.world_size,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "meter": self.meter.state_dict(),
            "skipped_updates": self.skipped_updates,
            "ranks": ddp.gather_objects(rank_state, self.context),
        }

    def save(self) -> Path:
        """Write a checkpoint of the current step (rank 0) and keep the newest train.keep_last."""
        state = self.trainer_state()
        path = self.checkpoint_dir / ckpt.checkpoint_name(self.step)
        if self.context.is_main:
            path = ckpt.save_checkpoint(self.checkpoint_dir, self.step, self.model, state)
            ckpt.prune_checkpoints(self.checkpoint_dir, self.config.train.keep_last)
            logger.info("checkpoint written: %s", path)
        ddp.barrier(self.context)
        self.last_checkpoint = path
        return path

    def resume_from(self, path: Path) -> None:
        """Load a checkpoint's weights and trainer state into this trainer."""
        state = ckpt.load_checkpoint(path, self.model)
        if state["world_size"] != self.context.world_size:
            raise ckpt.CheckpointError(
                f"checkpoint {path} was written by {state['world_size']} ranks, this run has "
                f"{self.context.world_size}; resume with the same number of ranks"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.meter.load_state_dict(state["meter"])
        self.step = state["step"]
        self.skipped_updates = state["skipped_updates"]
        rank_state = state["ranks"][self.context.rank]
        self.train_batches.load_state_dict(rank_state["data"])
        ckpt.set_rng_state(rank_state["rng"])
        self.last_checkpoint = path
        logger.info("resumed from %s at step %d", path, self.step)

    # ---- run directory ------------------------------------------------------------------------------

    def _prepare_output_dir(self) -> None:
        """Create the run directory, resume from the checkpoint train.resume selects, and open the metrics."""
        train = self.config.train
        if self.context.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            ckpt.remove_temporary_dirs(self.checkpoint_dir)
        ddp.barrier(self.context)

        path = self._resume_path()
        if path is not None:
            self.resume_from(path)
        self.writer = MetricsWriter(self.output_dir, enabled=self.context.is_main, tensorboard=train.tensorboard,
                                    purge_step=self.step + 1 if path is not None else None)
        if self.context.is_main:
            self.writer.truncate_after(self.step if path is not None else -1)
            text = yaml.safe_dump(to_dict(self.config), sort_keys=False)
            (self.output_dir / "config.yaml").write_text(text, encoding="utf-8")
        logger.info(
            "training %d updates of %d sequences (%d micro-batches x %d x %d ranks) on %s in %s",
            train.max_steps, self.accum_steps * train.micro_batch_size * self.context.world_size, self.accum_steps,
            train.micro_batch_size, self.context.world_size, self.device, train.precision,
        )

    def _resume_path(self) -> Path | None:
        resume = self.config.train.resume
        if resume == "none":
            if ckpt.list_checkpoints(self.checkpoint_dir):
                raise RunDirectoryError(
                    f"{self.checkpoint_dir} already contains checkpoints; set train.resume=auto to continue that run, "
                    "or choose a new train.output_dir"
                )
            return None
        if resume == "auto":
            path = ckpt.find_latest_checkpoint(self.checkpoint_dir)
            if path is None and ckpt.list_checkpoints(self.checkpoint_dir):
                raise ckpt.CheckpointError(
                    f"no complete checkpoint in {self.checkpoint_dir}, but corrupt ones exist (see the warnings); "
                    "remove them to start afresh"
                )
            return path
        path = Path(resume)
        ckpt.verify_checkpoint(path)
        return path

    @staticmethod
    def _redirect_logging(progress):
        """Route console logging through tqdm while its bar is shown, so log lines do not break the bar."""
        if progress.disable:
            return contextlib.nullcontext()
        from tqdm.contrib.logging import logging_redirect_tqdm

        return logging_redirect_tqdm()

    def _progress_bar(self):
        from tqdm.auto import tqdm

        train = self.config.train
        return tqdm(total=train.max_steps, initial=self.step, unit="step", dynamic_ncols=True, mininterval=1.0,
                    disable=not (train.progress_bar and self.context.is_main))

    def _finish(self, baseline: float | None, val_loss: float | None) -> PretrainResult:
        """Export the final model, draw the loss plot and summarise the run."""
        if self.context.is_main:
            save_model(self.model, self.output_dir / "model")
            from t5kit.train.plot import plot_losses

            plot_losses(self.output_dir)
            if baseline is not None and val_loss is not None:
                logger.info("final validation loss %.4f nats vs unigram baseline %.4f nats (margin %.4f)",
                            val_loss, baseline, baseline - val_loss)
        ddp.barrier(self.context)
        return PretrainResult(self.output_dir, self.step, val_loss, baseline, self.last_checkpoint)


def pretrain(config: PretrainConfig | dict | str | Path, **overrides) -> PretrainResult:
    """Run pretraining from a config (object, dict or YAML path); keyword arguments go to Trainer."""
    config = resolve_config(config)
    trainer = Trainer(config, **overrides)
    try:
        return trainer.fit()
    finally:
        ddp.destroy(trainer.context)
