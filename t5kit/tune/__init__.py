"""Tuning a base checkpoint on SQuAD: p-tuning, prompt tuning, LoRA and full fine-tuning."""

from t5kit.tune.config import TuneConfig, load_tune_config
from t5kit.tune.run import TuneResult, prompt_learn

__all__ = ["TuneConfig", "TuneResult", "load_tune_config", "prompt_learn"]
