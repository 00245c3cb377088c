"""Save and load only the tuned parameters (prompts or LoRA tensors), tied to their base checkpoint.

A prompt directory contains `prompts.safetensors` (one [P, D] table per task) and `prompts.yaml` (the
tasks' templates and sizes, plus the path and sha256 of the base model.safetensors). A LoRA
directory contains `lora.safetensors` and `lora.yaml` in the same way. Loading onto a base whose
weights file has another sha256 raises BaseMismatchError: a prompt is only meaningful for the exact
weights it was trained against.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from t5kit.config.core import build
from t5kit.errors import T5kitError
from t5kit.model import T5, load_model
from t5kit.model.io import WEIGHTS_NAME, atomic_write, file_sha256
from t5kit.peft.lora import LoRAConfig, apply_lora, load_lora_state_dict, lora_state_dict
from t5kit.peft.prompt_encoder import PromptEncoder
from t5kit.peft.prompt_model import PromptModel, PromptTask
from t5kit.peft.prompt_table import PromptTable

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
PROMPTS_WEIGHTS, PROMPTS_META = "prompts.safetensors", "prompts.yaml"
LORA_WEIGHTS, LORA_META = "lora.safetensors", "lora.yaml"


class AdapterFileError(T5kitError):
    """A prompt or LoRA directory that is missing, incomplete or of another kind."""


class BaseMismatchError(T5kitError):
    """A prompt or LoRA file loaded onto a base checkpoint other than the one it was trained on."""


@dataclass(frozen=True)
class BaseReference:
    """The base checkpoint that tuned parameters belong to."""

    path: str
    """Model directory of the base, as it was when the file was saved."""
    sha256: str
    """Hex sha256 of the base's model.safetensors."""


def base_reference(base_dir: str | Path) -> BaseReference:
    """Hash the weights file of a model directory."""
    weights = Path(base_dir) / WEIGHTS_NAME
    if not weights.is_file():
        raise AdapterFileError(f"{weights} not found; the base must be a t5kit model directory (t5kit.model.save_model)")
    return BaseReference(str(Path(base_dir).resolve()), file_sha256(weights))


def check_base(saved: BaseReference, actual: BaseReference, source: Path) -> None:
    """Raise BaseMismatchError unless `actual` has the weights that `saved` names."""
    if saved.sha256 != actual.sha256:
        raise BaseMismatchError(
            f"{source} was trained on the base {saved.path} (model.safetensors sha256 {saved.sha256[:16]}…), "
            f"but the base given is {actual.path} (sha256 {actual.sha256[:16]}…). Load it onto the base it "
            "was trained on, or tune a new one on this base."
        )


def _write(directory: Path, weights_name: str, meta_name: str, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().float().cpu().contiguous() for key, value in tensors.items()}
    atomic_write(directory / weights_name, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    text = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    atomic_write(directory / meta_name, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return directory


def _read(directory: Path, weights_name: str, meta_name: str, kind: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta_path, weights = directory / meta_name, directory / weights_name
    if not meta_path.is_file() or not weights.is_file():
        raise AdapterFileError(f"{directory} is not a t5kit {kind} directory: it needs {meta_name} and {weights_name}")
    meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
    if meta.get("kind") != kind or meta.get("format_version") != FORMAT_VERSION:
        raise AdapterFileError(
            f"{meta_path}: expected kind {kind!r} format_version {FORMAT_VERSION}, "
            f"got kind {meta.get('kind')!r} format_version {meta.get('format_version')!r}"
        )
    try:
        tensors = load_file(weights)
    except (SafetensorError, OSError, ValueError) as error:
        raise AdapterFileError(f"{weights} is corrupt or truncated ({error}); save it again") from None
    return meta, tensors


def save_prompts(model: PromptModel, directory: str | Path, base: BaseReference) -> Path:
    """Write every task's prompt as a fixed table (encoders are reduced) plus the task metadata."""
    tensors = {}
    for name, prompt in model.prompts.items():
        table = prompt.to_table() if isinstance(prompt, PromptEncoder) else prompt
        tensors[name] = table.weight
    meta = {
        "kind": "prompts",
        "format_version": FORMAT_VERSION,
        "base": dataclasses.asdict(base),
        "d_model": model.base.config.d_model,
        "tasks": [dataclasses.asdict(task) for task in model.tasks.values()],
    }
    return _write(Path(directory), PROMPTS_WEIGHTS, PROMPTS_META, tensors, meta)


def read_base_reference(directory: str | Path) -> BaseReference:
    """Return the base that a prompt or LoRA directory was saved against."""
    directory = Path(directory)
    for meta_name in (PROMPTS_META, LORA_META):
        if (directory / meta_name).is_file():
            meta = yaml.safe_load((directory / meta_name).read_text(encoding="utf-8")) or {}
            return BaseReference(**meta["base"])
    raise AdapterFileError(f"{directory} contains neither {PROMPTS_META} nor {LORA_META}; pass a saved prompts/ or lora/ directory")


def read_prompt_tasks(directory: str | Path) -> dict[str, PromptTask]:
    """Return the saved task settings (template, prompt size, ...) of a prompt directory by task name."""
    meta_path = Path(directory) / PROMPTS_META
    if not meta_path.is_file():
        raise AdapterFileError(f"{directory} is not a t5kit prompts directory: it needs {PROMPTS_META} and {PROMPTS_WEIGHTS}")
    meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
    return {entry["name"]: build(PromptTask, entry, prefix=f"{PROMPTS_META} tasks") for entry in meta.get("tasks", [])}


def load_prompts(directory: str | Path, model: PromptModel, base: BaseReference, tasks: list[str] | None = None) -> list[str]:
    """Add the saved prompts (all, or the named `tasks`) to `model` as frozen tables; return their names.

    `base` describes the weights inside `model` (see `base_reference`); a different sha256 raises.
    """
    directory = Path(directory)
    meta, tensors = _read(directory, PROMPTS_WEIGHTS, PROMPTS_META, "prompts")
    check_base(BaseReference(**meta["base"]), base, directory)
    if meta["d_model"] != model.base.config.d_model:
        raise BaseMismatchError(f"{directory} has prompts of width {meta['d_model']}, the base has d_model {model.base.config.d_model}")

    saved = {entry["name"]: build(PromptTask, entry, prefix=f"{PROMPTS_META} tasks") for entry in meta["tasks"]}
    selected = list(saved) if tasks is None else tasks
    for name in selected:
        if name not in saved:
            raise AdapterFileError(f"{directory} has no prompt for task {name!r}; it has {', '.join(saved)}")
        task = saved[name]
        table = PromptTable(task.num_virtual_tokens, meta["d_model"])
        with torch.no_grad():
            table.weight.copy_(tensors[name])
        table.requires_grad_(False)
        model.add_task(task, table.to(model.base.shared.weight.dtype))
    return selected


def load_prompt_model(directory: str | Path, base_dir: str | Path | None = None, device: str = "cpu") -> PromptModel:
    """Load the base checkpoint (by default the one the prompt file names) with every saved prompt."""
    directory = Path(directory)
    base_dir = Path(base_dir) if base_dir is not None else Path(read_base_reference(directory).path)
    base = base_reference(base_dir)
    model = PromptModel(load_model(base_dir, device=device))
    load_prompts(directory, model, base)
    return model


def save_lora(model: T5, config: LoRAConfig, directory: str | Path, base: BaseReference) -> Path:
    """Write only the LoRA tensors of `model`, with the LoRA config and the base reference."""
    meta = {
        "kind": "lora",
        "format_version": FORMAT_VERSION,
        "base": dataclasses.asdict(base),
        "lora": dataclasses.asdict(config),
    }
    return _write(Path(directory), LORA_WEIGHTS, LORA_META, lora_state_dict(model), meta)


def load_lora(directory: str | Path, model: T5, base: BaseReference) -> LoRAConfig:
    """Wrap `model` in the saved LoRA layers and load their tensors; the base must match by sha256."""
    directory = Path(directory)
    meta, tensors = _read(directory, LORA_WEIGHTS, LORA_META, "lora")
    check_base(BaseReference(**meta["base"]), base, directory)
    config = build(LoRAConfig, meta["lora"], prefix=f"{LORA_META} lora")
    apply_lora(model, config)
    try:
        load_lora_state_dict(model, {key: value.to(model.shared.weight.dtype) for key, value in tensors.items()})
    except ValueError as error:
        raise AdapterFileError(f"{directory}: {error}") from None
    return config
