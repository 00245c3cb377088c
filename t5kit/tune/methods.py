"""The four tuning methods on one interface: what is trained, how a batch is encoded, what is saved.

- p-tuning: a prompt encoder per task on a frozen base; saved as fixed tables after training.
- prompt-tuning: a prompt table per task on a frozen base.
- lora: low-rank updates on the base's q and v projections (configurable); saved as LoRA tensors.
- finetune: every base weight trains; saved as a full model directory.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from torch import nn

from t5kit.data.squad_prompts import PromptBatch
from t5kit.model import T5, load_model, save_model
from t5kit.peft import (
    BaseReference,
    load_lora,
    PromptEncoder,
    PromptModel,
    PromptTable,
    PromptTask,
    apply_lora,
    load_prompts,
    merge_lora,
    save_lora,
    save_prompts,
)
from t5kit.peft.io import AdapterFileError, read_prompt_tasks
from t5kit.tune.config import PROMPT_METHODS, PromptConfig, TaskConfig, TuneConfig

logger = logging.getLogger(__name__)


def make_prompt(
    method: str, task: TaskConfig, config: PromptConfig, base: T5, tokenizer
) -> PromptTable | PromptEncoder:
    """Create and initialise one task's prompt: a table (prompt-tuning) or an encoder (p-tuning)."""
    d_model = base.config.d_model
    if method == "prompt-tuning":
        prompt = PromptTable(task.num_virtual_tokens, d_model)
        table = prompt
    else:
        prompt = PromptEncoder(
            task.num_virtual_tokens,
            d_model,
            kind=config.encoder,
            hidden_size=config.encoder_hidden_size,
            lstm_layers=config.lstm_layers,
            dropout=config.encoder_dropout,
        )
        table = prompt.input
    prompt.to(base.shared.weight.device)
    if config.init == "text":
        table.init_from_ids(base.shared, tokenizer.encode(config.init_text))
    else:
        table.init_random(base.shared)
    return prompt


def build_tunable(config: TuneConfig, base: T5, tokenizer, base_ref: BaseReference) -> nn.Module:
    """Wrap or unfreeze `base` for the configured method and return the model to train."""
    if config.method in PROMPT_METHODS:
        model = PromptModel(base)
        if config.prompt.frozen_prompts:
            loaded = load_prompts(config.prompt.frozen_prompts, model, base_ref)
            logger.info("loaded frozen prompts for tasks %s from %s", loaded, config.prompt.frozen_prompts)
        for task in config.tasks:
            prompt = make_prompt(config.method, task, config.prompt, base, tokenizer)
            spec = PromptTask(
                task.name, config.method, task.num_virtual_tokens, task.template, task.truncate_field, task.target_prefix
            )
            model.add_task(spec, prompt)
        model.set_trainable(task.name for task in config.tasks)
        return model
    if config.method == "lora":
        names = apply_lora(base, config.lora)
        logger.info("LoRA rank %d on %d layers, e.g. %s", config.lora.rank, len(names), names[0])
        return base
    base.requires_grad_(True)
    return base


def use_saved_templates(config: TuneConfig, directory: str | Path) -> None:
    """Replace each task's template, prompt size and target prefix by those saved with its prompt.

    A prompt only works with the inputs it was trained on, so evaluation rebuilds exactly those.
    """
    saved = read_prompt_tasks(directory)
    for i, task in enumerate(config.tasks):
        if task.name not in saved:
            raise AdapterFileError(f"{directory} has no prompt for task {task.name!r}; it has {', '.join(saved)}")
        spec = saved[task.name]
        config.tasks[i] = dataclasses.replace(
            task,
            template=spec.template,
            num_virtual_tokens=spec.num_virtual_tokens,
            truncate_field=spec.truncate_field,
            target_prefix=spec.target_prefix,
        )


def load_tuned(config: TuneConfig, base: T5, base_ref: BaseReference, directory: str | Path) -> nn.Module:
    """Load saved prompts or LoRA tensors onto `base`, or a fine-tuned model directory, for evaluation."""
    if config.method in PROMPT_METHODS:
        model = PromptModel(base)
        load_prompts(directory, model, base_ref, tasks=[task.name for task in config.tasks])
        return model
    if config.method == "lora":
        load_lora(directory, base, base_ref)
        return base
    return load_model(directory, device=base.shared.weight.device)


def prompt_size(config: TuneConfig, task: TaskConfig) -> int:
    """Return the virtual tokens a task's inputs carry under the configured method (0 without prompts)."""
    return task.num_virtual_tokens if config.method in PROMPT_METHODS else 0


def task_id(model: nn.Module, name: str) -> int:
    """Return the id that batches of task `name` carry (0 for models without prompts)."""
    return model.task_id(name) if isinstance(model, PromptModel) else 0


def decoder_model(model: nn.Module) -> T5:
    """Return the T5 whose decoder produces the logits."""
    return model.base if isinstance(model, PromptModel) else model


def encode_batch(model: nn.Module, batch: PromptBatch) -> torch.Tensor:
    """Run the encoder on a batch, with each row's task prompt when the model has prompts: [B, L, D]."""
    if isinstance(model, PromptModel):
        return model.encode(batch.input_ids, batch.attention_mask, batch.virtual_mask, batch.task_ids)
    return model.encode(batch.input_ids, batch.attention_mask)


def save_tuned(model: nn.Module, config: TuneConfig, output_dir: Path, base_ref: BaseReference) -> Path:
    """Save what the method trained and return its directory: prompts/, lora/ or model/."""
    if isinstance(model, PromptModel):
        return save_prompts(model, output_dir / "prompts", base_ref)
    if config.method == "lora":
        return save_lora(model, config.lora, output_dir / "lora", base_ref)
    return save_model(model, output_dir / "model")


def prepare_for_inference(model: nn.Module) -> None:
    """Reduce prompt encoders to tables and merge LoRA layers, as a loaded file would be used."""
    if isinstance(model, PromptModel):
        model.reduce()
    else:
        merge_lora(model)
    model.eval()
