"""Checkpoint conversion between t5kit and Hugging Face T5 layouts, and loading either format."""

from __future__ import annotations

from pathlib import Path

import torch

from t5kit.convert.hf import from_hf, to_hf
from t5kit.convert.hf_keys import ConversionError, key_table
from t5kit.model import T5

__all__ = ["ConversionError", "detect_format", "from_hf", "key_table", "load_any", "to_hf"]


def detect_format(directory: str | Path) -> str:
    """Return "t5kit" for a directory with config.yaml, "hf" for one with config.json."""
    directory = Path(directory)
    if (directory / "config.yaml").is_file():
        return "t5kit"
    if (directory / "config.json").is_file():
        return "hf"
    if not directory.is_dir():
        raise ConversionError(f"model directory {directory} not found")
    raise ConversionError(
        f"{directory} is neither a t5kit model directory (config.yaml) nor a Hugging Face one (config.json)"
    )


def load_any(directory: str | Path, dtype: torch.dtype | None = None) -> T5:
    """Load a t5kit or Hugging Face model directory, detecting which it is."""
    if detect_format(directory) == "t5kit":
        from t5kit.model import load_model

        return load_model(directory, dtype=dtype)
    return from_hf(directory, dtype=dtype)
