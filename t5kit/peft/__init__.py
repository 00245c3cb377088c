"""Parameter-efficient tuning of a frozen T5: prompt tables, prompt encoders (p-tuning) and LoRA."""

from t5kit.peft.io import (
    BaseMismatchError,
    BaseReference,
    base_reference,
    load_lora,
    load_prompt_model,
    load_prompts,
    save_lora,
    save_prompts,
)
from t5kit.peft.lora import LoRAConfig, LoRALinear, apply_lora, merge_lora
from t5kit.peft.prompt_encoder import PromptEncoder
from t5kit.peft.prompt_model import PromptModel, PromptTask
from t5kit.peft.prompt_table import PromptTable

__all__ = [
    "BaseMismatchError",
    "BaseReference",
    "LoRAConfig",
    "LoRALinear",
    "PromptEncoder",
    "PromptModel",
    "PromptTable",
    "PromptTask",
    "apply_lora",
    "base_reference",
    "load_lora",
    "load_prompt_model",
    "load_prompts",
    "merge_lora",
    "save_lora",
    "save_prompts",
]
