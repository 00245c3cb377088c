"""Load each task's SQuAD slices and turn them into PromptFeatures for training and evaluation."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

from t5kit.data.squad import SquadExample, read_squad
from t5kit.data.squad_download import find_squad
from t5kit.data.squad_prompts import PromptFeatures, PromptInputBuilder, Tokenizer
from t5kit.errors import T5kitError
from t5kit.tune.config import SquadDataConfig, TaskConfig

logger = logging.getLogger(__name__)


@dataclass
class TaskData:
    """A task's training features and its dev questions, with features built for a given prompt size."""

    task: TaskConfig
    """The task."""
    train: list[PromptFeatures]
    """Training features."""
    dev_examples: list[SquadExample]
    """Dev questions with all their gold answers, for scoring."""
    dev: list[PromptFeatures]
    """Dev features, in the order of dev_examples."""


def sample_train(examples: list[SquadExample], count: int, seed: int) -> list[SquadExample]:
    """Return `count` questions drawn at random without replacement (all of them when count is 0)."""
    if count == 0 or count >= len(examples):
        return list(examples)
    return random.Random(seed).sample(examples, count)


def spread_dev(examples: list[SquadExample], count: int) -> list[SquadExample]:
    """Return `count` questions evenly spaced over the file, so that every article is represented."""
    if count == 0 or count >= len(examples):
        return list(examples)
    return [examples[i * len(examples) // count] for i in range(count)]


def _read(path: str | Path, description: str) -> list[SquadExample]:
    examples = [example for example in read_squad(path) if example.answers]
    if not examples:
        raise T5kitError(f"{description} {path} has no answerable questions; pass a SQuAD-format file with answers")
    return examples


def input_builder(
    task: TaskConfig, data: SquadDataConfig, tokenizer: Tokenizer, num_virtual_tokens: int, task_id: int = 0
) -> PromptInputBuilder:
    """Return the builder of a task's encoder inputs for a prompt size (0 drops the <prompt> marker)."""
    return PromptInputBuilder(
        tokenizer,
        template=task.template,
        num_virtual_tokens=num_virtual_tokens,
        max_input_length=data.max_input_length,
        max_target_length=data.max_target_length,
        truncate_field=task.truncate_field,
        task_id=task_id,
        target_prefix=task.target_prefix,
    )


def load_task_data(
    task: TaskConfig,
    data: SquadDataConfig,
    tokenizer: Tokenizer,
    num_virtual_tokens: int,
    task_id: int = 0,
    with_train: bool = True,
) -> TaskData:
    """Read the task's train and dev files, take the configured slices and build their features."""
    builder = input_builder(task, data, tokenizer, num_virtual_tokens, task_id)
    train: list[PromptFeatures] = []
    if with_train:
        train_path = task.train_file or find_squad("train", data.squad_dir)
        train_examples = sample_train(_read(train_path, "training file"), data.train_examples, data.seed)
        train = builder.build(train_examples)
        logger.info("task %s: %d training questions from %s", task.name, len(train), train_path)

    dev_path = task.dev_file or find_squad("dev", data.squad_dir)
    dev_examples = spread_dev(_read(dev_path, "dev file"), data.dev_examples)
    logger.info("task %s: %d dev questions from %s", task.name, len(dev_examples), dev_path)
    return TaskData(task, train, dev_examples, builder.build(dev_examples))
