"""Training checkpoints: written atomically, verified on load, pruned to the newest K.

A checkpoint is a directory `step_<N>` (N zero-padded to 8 digits) under the run's checkpoints folder:

    config.yaml, model.safetensors   the model directory (loadable with t5kit.model.load_model)
    trainer_state.pt                 optimizer, scheduler, step, per-rank data position and RNG states
    manifest.json                    step, and size and sha256 of every other file; written last

Everything is written into a hidden `.tmp-step_<N>-*` directory, each file is fsynced, and the
directory is then renamed to `step_<N>` and its parent fsynced. A crash therefore leaves either a
hidden temporary directory, which readers ignore and the next run deletes, or a complete checkpoint.
A `step_<N>` directory whose manifest is missing or whose files do not match it is reported as
corrupt: `find_latest_checkpoint` skips it with a warning, and `verify_checkpoint` raises.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from t5kit.model.io import CONFIG_NAME, WEIGHTS_NAME, CheckpointError, atomic_write, file_sha256, save_model

logger = logging.getLogger(__name__)

STATE_NAME = "trainer_state.pt"
MANIFEST_NAME = "manifest.json"
TEMP_PREFIX = ".tmp-"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def checkpoint_name(step: int) -> str:
    """Return the directory name of the checkpoint after `step` updates."""
    return f"step_{step:08d}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(directory: str | Path, step: int, model: nn.Module, trainer_state: dict[str, Any]) -> Path:
    """Write the checkpoint of `step` into `directory` atomically and return its path.

    `model` is the bare T5, not a DDP wrapper. `trainer_state` contains plain Python values and tensors.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / checkpoint_name(step)
    temporary = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{final.name}-", dir=directory))
    try:
        save_model(model, temporary)
        atomic_write(temporary / STATE_NAME, lambda path: torch.save(trainer_state, path))
        files = {name: {"bytes": (temporary / name).stat().st_size, "sha256": file_sha256(temporary / name)}
                 for name in (CONFIG_NAME, WEIGHTS_NAME, STATE_NAME)}
        manifest = json.dumps({"step": step, "files": files}, indent=2)
        atomic_write(temporary / MANIFEST_NAME, lambda path: Path(path).write_text(manifest, encoding="utf-8"))
        _fsync_dir(temporary)

        if final.exists():
            # Re-saving a step (a rerun after a crash between rename and prune): replace the old copy.
            shutil.rmtree(final)
        os.rename(temporary, final)
        _fsync_dir(directory)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    return final


def verify_checkpoint(path: str | Path) -> dict[str, Any]:
    """Check a checkpoint's manifest against its files and return the manifest; raise CheckpointError."""
    path = Path(path)
    manifest_path = path / MANIFEST_NAME
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} not found")
    if not manifest_path.is_file():
        raise CheckpointError(f"checkpoint {path} is incomplete: {MANIFEST_NAME} is missing")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
        int(manifest["step"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"checkpoint {path} has an unreadable {MANIFEST_NAME}: {error}") from None
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {name} is missing")
        if file.stat().st_size != expected["bytes"]:
            raise CheckpointError(
                f"checkpoint {path} is corrupt: {name} has {file.stat().st_size} bytes, "
                f"the manifest records {expected['bytes']}"
            )
        if file_sha256(file) != expected["sha256"]:
            raise CheckpointError(f"checkpoint {path} is corrupt: the sha256 of {name} does not match the manifest")
    return manifest


def list_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """Return (step, path) of every `step_<N>` directory, oldest first, complete or not."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for child in directory.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def find_latest_checkpoint(directory: str | Path) -> Path | None:
    """Return the newest complete checkpoint in `directory`, skipping corrupt ones with a warning."""
    for step, path in reversed(list_checkpoints(directory)):
        try:
            verify_checkpoint(path)
        except CheckpointError as error:
            logger.warning("skipping checkpoint of step %d: %s", step, error)
            continue
        return path
    return None


def prune_checkpoints(directory: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` checkpoints; return the deleted paths."""
    checkpoints = list_checkpoints(directory)
    deleted = []
    for _, path in checkpoints[: max(0, len(checkpoints) - keep_last)]:
        shutil.rmtree(path)
        deleted.append(path)
        logger.info("deleted old checkpoint %s (keep_last=%d)", path, keep_last)
    return deleted


def remove_temporary_dirs(directory: str | Path) -> None:
    """Delete temporary directories that an interrupted save left behind."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    for child in directory.iterdir():
        if child.name.startswith(TEMP_PREFIX) and child.is_dir():
            logger.warning("removing partial checkpoint %s left by an interrupted save", child)
            shutil.rmtree(child, ignore_errors=True)


def load_checkpoint(path: str | Path, model: nn.Module) -> dict[str, Any]:
    """Verify a checkpoint, load its weights into `model` in place and return its trainer state."""
    from safetensors.torch import load_file

    from t5kit.model.io import model_state_dict

    path = Path(path)
    verify_checkpoint(path)
    weights = load_file(path / WEIGHTS_NAME, device="cpu")
    expected = model_state_dict(model)
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}; "
            "check that model settings match the run that wrote it"
        )
    for key, tensor in expected.items():
        if tuple(weights[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"checkpoint {path}: tensor {key} has shape {tuple(weights[key].shape)}, "
                f"this model expects {tuple(tensor.shape)}"
            )
    model.load_state_dict(weights, strict=False)
    return torch.load(path / STATE_NAME, map_location="cpu", weights_only=True)


def rng_state() -> dict[str, Any]:
    """Capture the Python, NumPy and torch (CPU and CUDA) random generator states."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generator states captured by rng_state."""
    random.setstate(_as_tuple(state["python"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    """Turn lists back into the nested tuples that random.setstate requires."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(item) for item in value)
    return value
