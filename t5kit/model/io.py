"""Save and load a model directory: config.yaml plus model.safetensors, written atomically."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch
import yaml

from t5kit.config.core import build, to_dict
from t5kit.config.model import ModelConfig
from t5kit.errors import T5kitError
from t5kit.model.t5 import T5

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(T5kitError):
    """A model directory that is missing, incomplete or corrupt."""


def atomic_write(path: Path, write) -> None:
    """Call write(temporary_path), fsync the file, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def model_state_dict(model: T5) -> dict[str, torch.Tensor]:
    """Return the weights to save, leaving out the tied LM head that aliases the embedding."""
    state = model.state_dict()
    # The encoder and decoder embeddings alias `shared`; store the table once.
    for key in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
        state.pop(key, None)
    return {key: value.detach().contiguous() for key, value in state.items()}


def save_model(model: T5, directory: str | Path) -> Path:
    """Write config.yaml and model.safetensors into `directory`."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {key: value.cpu() for key, value in model_state_dict(model).items()}
    atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    text = yaml.safe_dump(to_dict(model.config), sort_keys=False)
    atomic_write(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return directory


def load_config(directory: str | Path) -> ModelConfig:
    """Read the ModelConfig of a model directory."""
    from t5kit.config.core import load_yaml

    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path} not found: a t5kit model directory contains {CONFIG_NAME} and {WEIGHTS_NAME}")
    return build(ModelConfig, load_yaml(path), prefix="model")


def load_model(directory: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> T5:
    """Build the model of a directory and load its weights, checking every tensor name and shape."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    config = load_config(directory)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{weights} not found; the directory has a config but no weights")
    try:
        state = load_file(weights, device=str(device))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{weights} is corrupt or truncated ({error}); re-save or re-convert it") from None

    with torch.device("meta"):
        model = T5(config)
    expected = model_state_dict(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{weights}: tensor {key} has shape {tuple(state[key].shape)}, the config expects {tuple(tensor.shape)}"
            )
    model.load_state_dict(state, strict=False, assign=True)
    if dtype is not None:
        model.to(dtype)
    return model


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
