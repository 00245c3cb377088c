"""Turn SQuAD questions into encoder inputs through a task template, and batch them with padding.

A template such as `<prompt> question: {question} context: {context}` has text, fields ({question},
{context}, {title}) and at most one `<prompt>` marker. The marker becomes P placeholder positions
(`virtual_mask` true) that a prompt model fills with learned embeddings; with P = 0 it is dropped,
which gives the same input without a prompt (for LoRA, fine-tuning or a no-prompt baseline). Each
part is tokenized on its own, and the input ends with EOS. When the input is longer than
`max_input_length`, tokens are cut from the end of one field (the context by default), never from
the question. The target is the first gold answer followed by EOS, after an optional target
prefix such as the sentinel `<extra_id_0>`, which makes targets look like span-corruption targets.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from t5kit.data.squad import SquadExample
from t5kit.errors import T5kitError

logger = logging.getLogger(__name__)

PROMPT_MARKER = "<prompt>"
DEFAULT_TEMPLATE = "<prompt> question: {question} context: {context}"
TEMPLATE_FIELDS = ("question", "context", "title")
_PART = re.compile(r"(<prompt>|\{[^{}]*\})")


class TemplateError(T5kitError):
    """A task template with an unknown field, several prompt markers or no field to truncate."""


class Tokenizer(Protocol):
    eos_id: int
    pad_id: int

    def encode(self, text: str) -> list[int]: ...


@dataclass(frozen=True)
class TemplatePart:
    """One piece of a parsed template."""

    kind: Literal["prompt", "text", "field"]
    """A prompt marker, literal text, or a field of the example."""
    value: str = ""
    """The literal text, or the field name."""


def parse_template(template: str, truncate_field: str = "context") -> list[TemplatePart]:
    """Split a template into prompt, text and field parts, checking its fields and markers."""
    parts = []
    for piece in _PART.split(template):
        if piece == PROMPT_MARKER:
            parts.append(TemplatePart("prompt"))
        elif piece.startswith("{") and piece.endswith("}"):
            name = piece[1:-1]
            if name not in TEMPLATE_FIELDS:
                raise TemplateError(
                    f"template {template!r}: unknown field {piece}; valid fields are "
                    + ", ".join("{" + field + "}" for field in TEMPLATE_FIELDS)
                )
            parts.append(TemplatePart("field", name))
        elif piece.strip():
            parts.append(TemplatePart("text", piece.strip()))

    if sum(part.kind == "prompt" for part in parts) > 1:
        raise TemplateError(f"template {template!r}: use {PROMPT_MARKER} at most once")
    if TemplatePart("field", truncate_field) not in parts:
        raise TemplateError(
            f"template {template!r} has no {{{truncate_field}}} field, which is the field to truncate; "
            "add it or change truncate_field"
        )
    return parts


@dataclass
class PromptFeatures:
    """The token ids of one question, ready for batching."""

    id: str
    """Question id, the key of its prediction."""
    input_ids: list[int]
    """Encoder input, EOS last; virtual positions hold the pad id."""
    virtual_mask: list[bool]
    """True at the virtual-token positions."""
    labels: list[int]
    """First gold answer plus EOS."""
    task_id: int = 0
    """Index of the task whose prompt fills the virtual positions."""
    truncated: int = 0
    """Tokens cut from the truncated field."""


class PromptInputBuilder:
    """Build PromptFeatures for one task's template, tokenizer and length limits."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        template: str = DEFAULT_TEMPLATE,
        num_virtual_tokens: int = 100,
        max_input_length: int = 512,
        max_target_length: int = 32,
        truncate_field: str = "context",
        task_id: int = 0,
        target_prefix: str = "",
    ):
        if num_virtual_tokens < 0:
            raise TemplateError(f"num_virtual_tokens must be 0 or more, got {num_virtual_tokens}")
        if max_target_length < 2:
            raise TemplateError(f"max_target_length must be at least 2 (one token and EOS), got {max_target_length}")
        self.tokenizer = tokenizer
        self.parts = parse_template(template, truncate_field)
        self.num_virtual_tokens = num_virtual_tokens
        if num_virtual_tokens and not any(part.kind == "prompt" for part in self.parts):
            raise TemplateError(f"template {template!r} has no {PROMPT_MARKER} marker for the {num_virtual_tokens} virtual tokens")
        self.max_input_length = max_input_length
        self.max_target_length = max_target_length
        self.truncate_field = truncate_field
        self.task_id = task_id
        self.target_prefix_ids = tokenizer.encode(target_prefix) if target_prefix else []
        if len(self.target_prefix_ids) + 2 > max_target_length:
            raise TemplateError(
                f"target prefix {target_prefix!r} leaves no room for an answer token and EOS in "
                f"max_target_length {max_target_length}; raise max_target_length or shorten the prefix"
            )
        self._text_ids: dict[str, list[int]] = {}

    def _encode(self, text: str) -> list[int]:
        # Many questions share a paragraph, so contexts repeat; tokenize each distinct text once.
        ids = self._text_ids.get(text)
        if ids is None:
            ids = self.tokenizer.encode(text)
            if len(self._text_ids) < 100_000:
                self._text_ids[text] = ids
        return ids

    def __call__(self, example: SquadExample) -> PromptFeatures:
        pieces = []  # (kind, ids), with the prompt as None
        for part in self.parts:
            if part.kind == "prompt":
                pieces.append(("prompt", None))
            elif part.kind == "text":
                pieces.append(("text", self._encode(part.value)))
            else:
                pieces.append((part.value, self._encode(getattr(example, part.value))))

        # Cut the overflow from the end of the truncated field; the EOS takes one position.
        length = 1 + sum(self.num_virtual_tokens if ids is None else len(ids) for _, ids in pieces)
        overflow = max(0, length - self.max_input_length)
        field_index = next(i for i, (kind, _) in enumerate(pieces) if kind == self.truncate_field)
        field_ids = pieces[field_index][1]
        if overflow > len(field_ids):
            raise TemplateError(
                f"question {example.id!r}: the input needs {length - len(field_ids)} tokens without its "
                f"{self.truncate_field}, more than max_input_length {self.max_input_length}; raise max_input_length"
            )
        if overflow:
            pieces[field_index] = (self.truncate_field, field_ids[: len(field_ids) - overflow])

        input_ids: list[int] = []
        virtual_mask: list[bool] = []
        for _, ids in pieces:
            if ids is None:
                input_ids += [self.tokenizer.pad_id] * self.num_virtual_tokens
                virtual_mask += [True] * self.num_virtual_tokens
            else:
                input_ids += ids
                virtual_mask += [False] * len(ids)
        input_ids.append(self.tokenizer.eos_id)
        virtual_mask.append(False)

        answer = example.answers[0] if example.answers else ""
        room = self.max_target_length - 1 - len(self.target_prefix_ids)
        labels = self.target_prefix_ids + self._encode(answer)[:room] + [self.tokenizer.eos_id]
        return PromptFeatures(example.id, input_ids, virtual_mask, labels, self.task_id, overflow)

    def build(self, examples: Iterable[SquadExample]) -> list[PromptFeatures]:
        """Build features for many examples, logging how many inputs were truncated."""
        features = [self(example) for example in examples]
        truncated = sum(feature.truncated > 0 for feature in features)
        if truncated:
            logger.info(
                "%d of %d inputs were longer than %d tokens; their %s was truncated",
                truncated, len(features), self.max_input_length, self.truncate_field,
            )
        return features


@dataclass
class PromptBatch:
    """Padded tensors of a batch of PromptFeatures."""

    ids: list[str]
    """Question ids, in row order."""
    input_ids: torch.Tensor
    """[B, L] encoder ids, padded with the pad id."""
    attention_mask: torch.Tensor
    """[B, L] 1 for real and virtual tokens, 0 for padding."""
    virtual_mask: torch.Tensor
    """[B, L] true at virtual-token positions."""
    task_ids: torch.Tensor
    """[B] task of each row."""
    labels: torch.Tensor
    """[B, S] target ids, -100 at padding."""

    def to(self, device: torch.device | str) -> "PromptBatch":
        tensors = {
            name: getattr(self, name).to(device)
            for name in ("input_ids", "attention_mask", "virtual_mask", "task_ids", "labels")
        }
        return PromptBatch(self.ids, **tensors)


def collate(features: Sequence[PromptFeatures], pad_id: int = 0) -> PromptBatch:
    """Pad features on the right into a PromptBatch."""
    if not features:
        raise ValueError("cannot collate an empty batch")
    batch, length = len(features), max(len(f.input_ids) for f in features)
    target_length = max(len(f.labels) for f in features)
    input_ids = torch.full((batch, length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((batch, length), dtype=torch.long)
    virtual_mask = torch.zeros((batch, length), dtype=torch.bool)
    labels = torch.full((batch, target_length), -100, dtype=torch.long)
    for row, feature in enumerate(features):
        n = len(feature.input_ids)
        input_ids[row, :n] = torch.tensor(feature.input_ids)
        attention_mask[row, :n] = 1
        virtual_mask[row, :n] = torch.tensor(feature.virtual_mask)
        labels[row, : len(feature.labels)] = torch.tensor(feature.labels)
    task_ids = torch.tensor([f.task_id for f in features], dtype=torch.long)
    return PromptBatch([f.id for f in features], input_ids, attention_mask, virtual_mask, task_ids, labels)


def batches(
    features: Sequence[PromptFeatures],
    batch_size: int,
    pad_id: int = 0,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    sort_by_length: bool = False,
) -> Iterable[PromptBatch]:
    """Yield PromptBatches; `sort_by_length` groups similar lengths to cut padding in evaluation."""
    order = list(range(len(features)))
    if shuffle:
        order = torch.randperm(len(features), generator=generator).tolist()
    elif sort_by_length:
        order.sort(key=lambda i: len(features[i].input_ids))
    for start in range(0, len(order), batch_size):
        yield collate([features[i] for i in order[start : start + batch_size]], pad_id)
