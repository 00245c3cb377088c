"""A whole tuning run: load the base, score it without tuning, train, save, and score the result."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from t5kit.config.core import ConfigError
from t5kit.model import count_parameters, load_model
from t5kit.model.io import atomic_write
from t5kit.peft import base_reference
from t5kit.peft.io import check_base, read_base_reference
from t5kit.train.metrics import METRICS_NAME, MetricsWriter
from t5kit.train.plot import plot_losses
from t5kit.tune import loop
from t5kit.tune.config import PROMPT_METHODS, TuneConfig, to_yaml_dict
from t5kit.tune.data import TaskData, load_task_data
from t5kit.tune.evaluate import EvalResult, predict, score, write_predictions
from t5kit.tune.methods import (
    build_tunable,
    load_tuned,
    prepare_for_inference,
    prompt_size,
    save_tuned,
    task_id,
    use_saved_templates,
)

logger = logging.getLogger(__name__)


@dataclass
class TuneResult:
    """Outputs of a tuning run: scores per task, sizes, timings and file locations."""

    method: str
    """The tuning method."""
    base: str
    """Base model directory."""
    output_dir: str
    """Run directory."""
    saved: str
    """Directory of the saved prompts, LoRA tensors or fine-tuned model."""
    model_parameters: int
    """Parameters of the base model."""
    trainable_parameters: int
    """Parameters that were trained."""
    steps: int
    """Optimizer updates."""
    train_seconds: float
    """Wall time of the training loop."""
    final_loss: float | None
    """Mean training loss over the last logging interval."""
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    """Task -> 'baseline' or 'tuned' -> {'exact_match', 'f1'} in percent."""
    samples: list[dict[str, str]] = field(default_factory=list)
    """A few dev questions with predicted and gold answers."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def resolve_device(name: str) -> torch.device:
    """Turn auto, cpu, cuda or cuda:N into a torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {name} was requested but CUDA is not available; use device=cpu")
    return torch.device(name)


def load_tokenizer(config: TuneConfig):
    """Load the tokenizer named by the config, or the spiece.model inside the base directory."""
    from t5kit.tokenizer import T5Tokenizer

    path = config.tokenizer or config.base
    if config.tokenizer is None and not (Path(config.base) / "spiece.model").is_file():
        raise ConfigError(
            f"tokenizer: {config.base} contains no spiece.model; set tokenizer= to the SentencePiece model "
            "the base was trained with"
        )
    return T5Tokenizer(path)


@dataclass
class _Session:
    """State shared by the stages of a run: the config, device, model, tokenizer and task data."""

    config: TuneConfig
    device: torch.device
    autocast: contextlib.AbstractContextManager
    output: Path
    tokenizer: object
    model: torch.nn.Module
    tasks: list[TaskData]

    def score(self) -> dict[str, EvalResult]:
        """Decode and score every task's dev questions; return task name -> scores and predictions."""
        config = self.config
        results = {}
        for data in self.tasks:
            features = data.dev
            prefix_ids = self.tokenizer.encode(data.task.target_prefix) if data.task.target_prefix else []
            predictions = predict(
                self.model, features, self.tokenizer, config.eval.batch_size, config.eval.max_new_tokens,
                self.device, self.autocast, prefix_ids,
            )
            results[data.task.name] = score(data.dev_examples, predictions)
        return results

    def record(self, result: TuneResult, label: str, scored: dict[str, EvalResult]) -> None:
        """Add scores to `result` under `label` ('baseline' or 'tuned') and write the predictions."""
        for data in self.tasks:
            name, task_result = data.task.name, scored[data.task.name]
            result.scores.setdefault(name, {})[label] = {"exact_match": task_result.exact_match, "f1": task_result.f1}
            suffix = ".baseline" if label == "baseline" else ""
            write_predictions(task_result.predictions, self.output / "predictions" / f"{name}{suffix}.json")
            logger.info("task %s, %s: EM %.2f  F1 %.2f", name, label, task_result.exact_match, task_result.f1)
            if label == "tuned":
                result.samples += _samples(data, task_result.predictions, self.config.eval.samples)

    def evaluate_during_training(self, step: int) -> dict:
        """Return the dev scores of every task, keyed as the `eval` records of metrics.jsonl name them."""
        scored = self.score()
        return {f"{name}/{key}": getattr(value, key) for name, value in scored.items() for key in ("exact_match", "f1")}

    def train(self, result: TuneResult, base_ref) -> None:
        """Train, plot the loss, save what was trained, and prepare the model for inference."""
        started = time.perf_counter()
        features = [feature for data in self.tasks for feature in data.train]
        metrics = MetricsWriter(self.output, tensorboard=False)
        records = loop.train(
            self.model, features, self.config, self.device, self.tokenizer.pad_id, metrics, self.autocast,
            self.evaluate_during_training,
        )
        metrics.close()
        if records:
            plot_losses(self.output)
        result.train_seconds = time.perf_counter() - started
        losses = [record["loss"] for record in records if "loss" in record]
        result.final_loss = losses[-1] if losses else None
        result.saved = str(save_tuned(self.model, self.config, self.output, base_ref))
        prepare_for_inference(self.model)


def _samples(data: TaskData, predictions: dict[str, str], count: int) -> list[dict[str, str]]:
    return [
        {
            "task": data.task.name,
            "id": example.id,
            "question": example.question,
            "prediction": predictions[example.id],
            "gold": example.answers[0],
        }
        for example in data.dev_examples[:count]
    ]


def _prepare_output(config: TuneConfig) -> Path:
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / METRICS_NAME).unlink(missing_ok=True)
    (output / "config.yaml").write_text(yaml.safe_dump(to_yaml_dict(config), sort_keys=False), encoding="utf-8")
    return output


def prompt_learn(config: TuneConfig) -> TuneResult:
    """Tune a base checkpoint on SQuAD with the configured method and return the scores.

    The base is scored first without tuning (the "no prompt" row), then trained, saved, and scored
    again as it will be used for inference: prompt encoders reduced to tables, LoRA merged.
    """
    torch.manual_seed(config.seed)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = resolve_device(config.device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if config.precision == "bf16" else contextlib.nullcontext()
    output = _prepare_output(config)

    # The base, its hash (saved with the prompts) and the model to train or evaluate.
    base = load_model(config.base, device=device)
    base_ref = base_reference(config.base)
    tokenizer = load_tokenizer(config)
    base.config.check_tokenizer_matches(tokenizer.vocab_size)
    result = TuneResult(config.method, str(config.base), str(output), config.load_tuned or "", count_parameters(base), 0, 0, 0.0, None)

    if config.load_tuned and config.method != "finetune":
        # Reject prompts or LoRA tensors of another base before any work is done.
        check_base(read_base_reference(config.load_tuned), base_ref, Path(config.load_tuned))
    if config.load_tuned and config.method in PROMPT_METHODS:
        use_saved_templates(config, config.load_tuned)

    # Score the untouched base first, on the template with the <prompt> marker dropped: the
    # "no prompt" row. Loading LoRA tensors changes the base in place, so this comes before.
    if config.eval.baseline:
        plain = [load_task_data(task, config.data, tokenizer, 0, with_train=False) for task in config.tasks]
        baseline = _Session(config, device, autocast, output, tokenizer, base, plain)
        baseline.record(result, "baseline", baseline.score())

    if config.load_tuned:
        model = load_tuned(config, base, base_ref, config.load_tuned)
    else:
        model = build_tunable(config, base, tokenizer, base_ref)
    tasks = [
        load_task_data(
            task, config.data, tokenizer, prompt_size(config, task), task_id(model, task.name),
            with_train=not config.load_tuned,
        )
        for task in config.tasks
    ]
    session = _Session(config, device, autocast, output, tokenizer, model, tasks)
    result.trainable_parameters = count_parameters(model, trainable_only=True)
    result.steps = 0 if config.load_tuned else config.optim.max_steps

    if not config.load_tuned:
        session.train(result, base_ref)
    session.record(result, "tuned", session.score())

    text = json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"
    atomic_write(output / "results.json", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return result
