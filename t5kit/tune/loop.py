"""The training loop of a tuning run: shuffled epochs of SQuAD batches, AdamW and a schedule.

Only parameters with requires_grad train, so one loop serves the prompt methods (prompt rows or
encoder), LoRA (the low-rank factors) and full fine-tuning (every weight).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from t5kit.data.squad_prompts import PromptBatch, PromptFeatures, batches
from t5kit.errors import T5kitError
from t5kit.model import shift_right
from t5kit.train.config import OptimizerConfig
from t5kit.train.loss import loss_sums
from t5kit.train.metrics import MetricsWriter
from t5kit.train.optim import build_optimizer
from t5kit.train.schedule import build_scheduler
from t5kit.tune.config import TuneConfig
from t5kit.tune.methods import decoder_model, encode_batch

logger = logging.getLogger(__name__)


def endless_batches(
    features: Sequence[PromptFeatures], batch_size: int, pad_id: int, generator: torch.Generator
) -> Iterator[PromptBatch]:
    """Yield batches forever, reshuffling at each epoch."""
    if not features:
        raise T5kitError("no training questions: set data.train_examples above 0 or check the train file")
    while True:
        yield from batches(features, batch_size, pad_id, shuffle=True, generator=generator)


def forward_backward(model: nn.Module, batch: PromptBatch, autocast: contextlib.AbstractContextManager) -> float:
    """Compute the mean token cross entropy of a batch, backpropagate it, and return its value."""
    decoder = decoder_model(model)
    with autocast:
        encoder_out = encode_batch(model, batch)
        decoder_input_ids = shift_right(batch.labels, decoder.config.decoder_start_token_id, decoder.config.pad_token_id)
        logits = decoder.decode(decoder_input_ids, encoder_out, batch.attention_mask)  # [B, S, V]
    sums = loss_sums(logits, batch.labels)
    loss = sums.cross_entropy / max(sums.tokens, 1)
    loss.backward()
    return loss.item()


def train(
    model: nn.Module,
    features: Sequence[PromptFeatures],
    config: TuneConfig,
    device: torch.device,
    pad_id: int,
    metrics: MetricsWriter,
    autocast: contextlib.AbstractContextManager | None = None,
    evaluate: Callable[[int], dict] | None = None,
) -> list[dict]:
    """Train the parameters of `model` that require grad; return the logged records.

    Every `config.log_every` updates a `train` record (step, loss averaged over the interval, lr,
    grad norm, tokens/s) goes to `metrics`. `evaluate(step)` runs every `config.eval.every` updates
    and its dict is written as an `eval` record.
    """
    from tqdm.auto import tqdm

    optim = config.optim
    optimizer = build_optimizer(model, OptimizerConfig(name="adamw", lr=config.learning_rate, weight_decay=optim.weight_decay))
    scheduler = build_scheduler(optimizer, optim.schedule, max(optim.max_steps, 1))
    params = [param for param in model.parameters() if param.requires_grad]
    autocast = autocast or contextlib.nullcontext()
    stream = endless_batches(features, optim.batch_size, pad_id, torch.Generator().manual_seed(config.seed))
    logger.info("training %s parameters for %d steps at lr %g", f"{sum(p.numel() for p in params):,}", optim.max_steps, config.learning_rate)

    records: list[dict] = []
    interval = _Interval()
    model.train()
    progress = tqdm(total=optim.max_steps, desc=config.method, disable=not config.progress_bar, leave=False)
    for step in range(1, optim.max_steps + 1):
        batch = next(stream).to(device)
        loss = forward_backward(model, batch, autocast)
        if not math.isfinite(loss):
            raise T5kitError(f"the loss became {loss} at step {step}; lower optim.lr (now {config.learning_rate})")
        grad_norm, lr = clip_and_step(optimizer, scheduler, params, optim.clip_grad_norm)
        interval.add(loss, int(batch.attention_mask.sum()) + int((batch.labels != -100).sum()))
        progress.update(1)
        progress.set_postfix(loss=f"{loss:.3f}")

        if step % config.log_every == 0 or step == optim.max_steps:
            record = {"kind": "train", "step": step, **interval.summary(), "lr": lr, "grad_norm": grad_norm}
            metrics.write(record)
            records.append(record)
            logger.info("step %d  loss %.4f  lr %.3g  %.0f tokens/s", step, record["loss"], lr, record["tokens_per_s"])
            interval = _Interval()

        if evaluate is not None and config.eval.every and step % config.eval.every == 0:
            record = {"kind": "eval", "step": step, **evaluate(step)}
            metrics.write(record)
            records.append(record)
            model.train()
            interval = _Interval()
    progress.close()
    return records


class _Interval:
    """Losses and token counts since the last train record, for its mean loss and tokens/s."""

    def __init__(self):
        self.losses: list[float] = []
        self.tokens = 0
        self.started = time.perf_counter()

    def add(self, loss: float, tokens: int) -> None:
        self.losses.append(loss)
        self.tokens += tokens

    def summary(self) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        return {"loss": sum(self.losses) / len(self.losses), "tokens_per_s": self.tokens / elapsed}


def clip_and_step(optimizer, scheduler, params: list[torch.Tensor], max_norm: float | None) -> tuple[float, float]:
    """Clip the gradients, update, advance the schedule; return the gradient norm and the lr just used."""
    grad_norm = _clip(params, max_norm)
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, lr


def _clip(params: list[torch.Tensor], max_norm: float | None) -> float:
    if max_norm:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    grads = [p.grad.norm() for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(grads))) if grads else 0.0

