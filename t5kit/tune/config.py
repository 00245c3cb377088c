"""Configs of a tuning run on SQuAD: prompt learning (p-tuning, prompt tuning), LoRA or full fine-tuning.

A recipe YAML (`t5kit/configs/prompt/*.yaml`) fills TuneConfig. Setting `method=...` on the command
line switches between the four methods on the same data, so that their scores can be compared.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from t5kit.config.core import ConfigError, apply_overrides, build, load_yaml
from t5kit.data.squad_prompts import DEFAULT_TEMPLATE, parse_template
from t5kit.peft.lora import LoRAConfig
from t5kit.train.config import ScheduleConfig

Method = Literal["p-tuning", "prompt-tuning", "lora", "finetune"]
PROMPT_METHODS = ("p-tuning", "prompt-tuning")
RECIPE_DIR = Path(__file__).resolve().parent.parent / "configs" / "prompt"

# Peak learning rates used when optim.lr is null. Prompt tables need a high rate: Lester et al.
# (2021) tuned them at 0.3, and on a small T5 a table barely moves at 0.03. Networks and full
# weights need far smaller rates.
DEFAULT_LR = {"prompt-tuning": 0.3, "p-tuning": 1e-3, "lora": 1e-3, "finetune": 3e-4}


@dataclass
class TaskConfig:
    """One task: its template, its prompt size and its SQuAD-format data."""

    name: str = "squad"
    """Task name; each task has its own prompt."""
    template: str = DEFAULT_TEMPLATE
    """Encoder input template with {question}, {context}, {title} and one <prompt> marker."""
    num_virtual_tokens: int = 100
    """Virtual tokens P at <prompt> (prompt methods; LoRA and fine-tuning drop the marker)."""
    truncate_field: str = "context"
    """Field cut from the end when the encoder input exceeds data.max_input_length."""
    target_prefix: str = ""
    """Text put before every target answer and removed from predictions. "<extra_id_0>" makes targets
    look like span-corruption targets, which helps a span-corruption base that was never adapted."""
    train_file: str | None = None
    """SQuAD-format training file; null finds the SQuAD v1.1 train set (data.squad_dir, $T5KIT_SQUAD_DIR, cache)."""
    dev_file: str | None = None
    """SQuAD-format evaluation file; null finds the SQuAD v1.1 dev set the same way."""

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ConfigError(f"tasks.name: must be a non-empty name without '/', got {self.name!r}")
        if self.num_virtual_tokens <= 0:
            raise ConfigError(f"tasks.num_virtual_tokens: must be positive, got {self.num_virtual_tokens}")
        parse_template(self.template, self.truncate_field)


@dataclass
class PromptConfig:
    """Prompt initialisation and, for p-tuning, the prompt encoder."""

    init: Literal["random", "text"] = "random"
    """Initial prompt rows: noise at the scale of the base embeddings, or the embeddings of init_text."""
    init_text: str = "Answer the question with a short span copied from the context."
    """Text whose token embeddings, repeated to P rows, initialise the prompt when init is text."""
    encoder: Literal["mlp", "lstm"] = "mlp"
    """P-tuning encoder: a 2-layer MLP with GELU, or a bidirectional LSTM with an MLP head."""
    encoder_hidden_size: int | None = None
    """Hidden width of the prompt encoder; null means d_model."""
    lstm_layers: int = 2
    """Layers of the LSTM encoder."""
    encoder_dropout: float = 0.0
    """Dropout inside the prompt encoder during training."""
    frozen_prompts: str | None = None
    """Directory of earlier prompts for the same base: loaded frozen and saved again with the new tasks."""

    def __post_init__(self) -> None:
        if self.encoder_hidden_size is not None and self.encoder_hidden_size <= 0:
            raise ConfigError(f"prompt.encoder_hidden_size: must be positive, got {self.encoder_hidden_size}")
        if self.lstm_layers <= 0:
            raise ConfigError(f"prompt.lstm_layers: must be positive, got {self.lstm_layers}")
        if not 0.0 <= self.encoder_dropout < 1.0:
            raise ConfigError(f"prompt.encoder_dropout: must be in [0, 1), got {self.encoder_dropout}")


@dataclass
class SquadDataConfig:
    """The SQuAD question slices and the maximum token lengths."""

    squad_dir: str | None = None
    """Folder with train-v1.1.json(.gz) and dev-v1.1.json; null uses $T5KIT_SQUAD_DIR, then the cache."""
    train_examples: int = 2000
    """Training questions, sampled at random (with data.seed) from the train file; 0 takes all."""
    dev_examples: int = 200
    """Evaluation questions, spread evenly over the dev file so every article is represented; 0 takes all."""
    max_input_length: int = 384
    """Encoder tokens per input, virtual tokens and EOS included; longer contexts are truncated."""
    max_target_length: int = 32
    """Target tokens per answer, EOS included."""
    seed: int = 0
    """Seed of the training-question sample."""

    def __post_init__(self) -> None:
        for name in ("train_examples", "dev_examples"):
            if getattr(self, name) < 0:
                raise ConfigError(f"data.{name}: must be 0 (all) or positive, got {getattr(self, name)}")
        if self.max_input_length <= 8:
            raise ConfigError(f"data.max_input_length: must be above 8, got {self.max_input_length}")
        if self.max_target_length < 2:
            raise ConfigError(f"data.max_target_length: must be at least 2, got {self.max_target_length}")


@dataclass
class OptimConfig:
    """AdamW, the learning-rate schedule and the length of training."""

    max_steps: int = 300
    """Optimizer updates."""
    batch_size: int = 16
    """Questions per update."""
    lr: float | None = None
    """Peak learning rate; null picks the method's default (prompt-tuning 0.3, p-tuning 1e-3, lora 1e-3, finetune 3e-4)."""
    weight_decay: float = 0.0
    """Decoupled weight decay."""
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(name="linear", warmup_steps=30))
    """Learning-rate schedule (the pretraining schedules: linear, cosine, constant, ...)."""
    clip_grad_norm: float | None = 1.0
    """Maximum global L2 norm of the gradients; null disables clipping."""

    def __post_init__(self) -> None:
        if self.max_steps < 0:
            raise ConfigError(f"optim.max_steps: must not be negative, got {self.max_steps}")
        if self.batch_size <= 0:
            raise ConfigError(f"optim.batch_size: must be positive, got {self.batch_size}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"optim.lr: must be a positive finite number, got {self.lr}")
        if self.clip_grad_norm is not None and self.clip_grad_norm < 0:
            raise ConfigError(f"optim.clip_grad_norm: must not be negative, got {self.clip_grad_norm}")


@dataclass
class EvalConfig:
    """Evaluation on the dev slice by greedy decoding."""

    batch_size: int = 32
    """Questions decoded together."""
    max_new_tokens: int = 32
    """Longest generated answer in tokens."""
    every: int = 0
    """Updates between dev evaluations during training; 0 evaluates only before and after."""
    baseline: bool = True
    """Also score the base model without a learned prompt, LoRA or fine-tuning (the 'no prompt' row)."""
    samples: int = 5
    """Questions shown with their predicted and gold answers in the results."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_new_tokens"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"eval.{name}: must be positive, got {getattr(self, name)}")
        if self.every < 0 or self.samples < 0:
            raise ConfigError("eval.every and eval.samples must not be negative")


@dataclass
class TuneConfig:
    """A tuning run: the frozen base, the method, the tasks and data, the optimizer and evaluation."""

    base: str = ""
    """Base model directory (config.yaml + model.safetensors), for example a pretraining run's final model."""
    method: Method = "p-tuning"
    """p-tuning, prompt-tuning, lora or finetune."""
    tokenizer: str | None = None
    """SentencePiece model file or tokenizer directory; null looks for spiece.model in the base directory."""
    output_dir: str = "runs/prompt"
    """Run directory: prompts or adapter, predictions, metrics.jsonl, results.json, loss plot."""
    seed: int = 1234
    """Seed of prompt init, LoRA init, dropout and batch order."""
    device: str = "auto"
    """cpu, cuda, cuda:N, or auto (cuda when available)."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """fp32, or bf16 autocast on CUDA (parameters and optimizer state stay fp32)."""
    num_threads: int | None = None
    """CPU threads for torch; null keeps torch's default."""
    log_every: int = 10
    """Updates between loss records."""
    progress_bar: bool = True
    """Show a tqdm progress bar."""
    load_tuned: str | None = None
    """Directory of saved prompts, LoRA tensors or a fine-tuned model: evaluate it instead of training."""
    tasks: list[TaskConfig] = field(default_factory=lambda: [TaskConfig()])
    """Tasks trained together; each gets its own prompt."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """Prompt init and encoder (p-tuning, prompt-tuning)."""
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    """LoRA rank, alpha, dropout and targets (lora)."""
    data: SquadDataConfig = field(default_factory=SquadDataConfig)
    """Question slices and sequence lengths."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer, schedule and training length."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Dev-slice evaluation."""

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ConfigError("tasks: give at least one task")
        names = [task.name for task in self.tasks]
        if len(set(names)) != len(names):
            raise ConfigError(f"tasks: names must be unique, got {names}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.log_every <= 0:
            raise ConfigError(f"log_every: must be positive, got {self.log_every}")

    @property
    def learning_rate(self) -> float:
        """Return optim.lr, or the method's default when it is null."""
        return self.optim.lr if self.optim.lr is not None else DEFAULT_LR[self.method]


def load_tune_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TuneConfig:
    """Build a TuneConfig from a recipe (a YAML path or a bundled recipe name) and dotted overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file() and (RECIPE_DIR / f"{path}.yaml").is_file():
            path = RECIPE_DIR / f"{path}.yaml"
        data = load_yaml(path)
    config = build(TuneConfig, apply_overrides(data, overrides or []))
    if not config.base:
        raise ConfigError("base: name the base model directory, for example base=runs/quickstart/pretrain/model")
    return config


def to_yaml_dict(config: TuneConfig) -> dict[str, Any]:
    """Return the config as plain data, for the run directory's config.yaml."""
    return dataclasses.asdict(config)
