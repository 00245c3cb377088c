"""Attach learned prompts to a frozen T5: virtual tokens go into the encoder input only.

Dimensions: B batch, L encoder length, S decoder length, D d_model, V vocab, P virtual tokens.

The data pipeline (`t5kit.data.squad_prompts`) leaves P placeholder positions in each encoder input
where the task template has `<prompt>`, and marks them in `virtual_mask`. This module embeds the
real tokens with the base model's embedding table and writes the task's prompt rows into the
placeholders, then runs the base encoder on those embeddings (`encode(inputs_embeds=...)`). The
decoder attends to the prompt only through cross-attention, as in NeMo's T5 prompt learning.

One PromptModel contains several tasks, each with its own prompt. A batch may mix tasks (`task_ids`),
and a task can be added or retrained later while the other prompts stay frozen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from t5kit.model import T5
from t5kit.peft.prompt_encoder import PromptEncoder
from t5kit.peft.prompt_table import PromptTable

PromptMethod = Literal["p-tuning", "prompt-tuning"]


@dataclass(frozen=True)
class PromptTask:
    """A task's prompt settings, saved with its prompt so that inference rebuilds the same inputs."""

    name: str
    """Task name, the key of its prompt."""
    method: PromptMethod
    """Training method of the prompt: p-tuning (prompt encoder) or prompt-tuning (table)."""
    num_virtual_tokens: int
    """Rows P of the prompt: virtual tokens placed at `<prompt>` in the template."""
    template: str
    """Encoder input template, for example `<prompt> question: {question} context: {context}`."""
    truncate_field: str = "context"
    """Template field cut from the end when the encoder input is too long."""
    target_prefix: str = ""
    """Text before every target answer, such as a sentinel; empty for none."""


class PromptModel(nn.Module):
    """A frozen base T5 plus one trainable prompt (table or encoder) per task."""

    def __init__(self, base: T5):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.base.eval()
        self.prompts = nn.ModuleDict()
        self.tasks: dict[str, PromptTask] = {}

    def train(self, mode: bool = True) -> "PromptModel":
        # The base stays in eval mode (no dropout) while prompts train: it is frozen, as in NeMo.
        super().train(mode)
        self.base.eval()
        return self

    def add_task(self, task: PromptTask, prompt: PromptTable | PromptEncoder) -> int:
        """Register a task's prompt and return its task id (its index in the order of addition)."""
        if task.name in self.prompts:
            raise ValueError(f"task {task.name!r} already has a prompt; remove it or pick another name")
        if prompt.num_virtual_tokens != task.num_virtual_tokens:
            raise ValueError(
                f"task {task.name!r} expects {task.num_virtual_tokens} virtual tokens, "
                f"the prompt has {prompt.num_virtual_tokens}"
            )
        self.prompts[task.name] = prompt.to(self.base.shared.weight.device)
        self.tasks[task.name] = task
        return self.task_id(task.name)

    def task_id(self, name: str) -> int:
        """Return the id of a task, as batches carry it in `task_ids`."""
        names = list(self.prompts)
        if name not in names:
            raise KeyError(f"no prompt for task {name!r}; tasks: {', '.join(names) or 'none'}")
        return names.index(name)

    def set_trainable(self, names: Iterable[str]) -> None:
        """Make the prompts of `names` trainable and freeze every other prompt."""
        names = set(names)
        unknown = names - set(self.prompts)
        if unknown:
            raise KeyError(f"no prompt for tasks {sorted(unknown)}; tasks: {', '.join(self.prompts)}")
        for name, prompt in self.prompts.items():
            prompt.requires_grad_(name in names)

    def reduce(self) -> None:
        """Replace every prompt encoder by the fixed table it produces (p-tuning after training)."""
        for name in list(self.prompts):
            prompt = self.prompts[name]
            if isinstance(prompt, PromptEncoder):
                self.prompts[name] = prompt.to_table()

    def embed(self, input_ids: torch.Tensor, virtual_mask: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """Embed [B, L] ids and write each row's task prompt into its virtual positions: [B, L, D]."""
        embeds = self.base.shared(input_ids)  # [B, L, D]
        names = list(self.prompts)
        counts = virtual_mask.sum(dim=1).tolist()
        tasks = task_ids.tolist()

        # Run each task's prompt (possibly an encoder network) once per batch, not once per row.
        outputs = {task: self.prompts[names[task]]() for task in set(tasks)}
        rows = []
        for row, (task, count) in enumerate(zip(tasks, counts)):
            prompt = outputs[task]
            if count != prompt.shape[0]:
                raise ValueError(
                    f"batch row {row} has {count} virtual positions, but task {names[task]!r} "
                    f"has {prompt.shape[0]} virtual tokens; build the inputs with the task's template"
                )
            rows.append(prompt)
        source = torch.cat(rows).to(embeds.dtype)  # [sum of P, D], row-major like the mask
        return embeds.masked_scatter(virtual_mask[..., None], source)

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        virtual_mask: torch.Tensor | None = None,
        task_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return the encoder output [B, L, D]; without a virtual mask, encode the ids with no prompt."""
        if virtual_mask is None or not bool(virtual_mask.any()):
            return self.base.encode(input_ids, attention_mask)
        if task_ids is None:
            raise ValueError("task_ids is required when the inputs have virtual positions")
        embeds = self.embed(input_ids, virtual_mask, task_ids)
        return self.base.encode(attention_mask=attention_mask, inputs_embeds=embeds)

    def forward(
        self,
        input_ids: torch.Tensor,
        decoder_input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        virtual_mask: torch.Tensor | None = None,
        task_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return logits [B, S, V]."""
        encoder_out = self.encode(input_ids, attention_mask, virtual_mask, task_ids)
        return self.base.decode(decoder_input_ids, encoder_out, attention_mask, decoder_attention_mask)
