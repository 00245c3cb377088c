"""Read and write Hugging Face T5 checkpoint directories (config.json plus weights).

Reads model.safetensors, pytorch_model.bin (unpickled with weights_only=True) and checkpoints
sharded with model.safetensors.index.json or pytorch_model.bin.index.json. Writes config.json,
generation_config.json and safetensors weights, sharded with an index above `max_shard_size`.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from pathlib import Path

import torch

from t5kit.config.model import ModelConfig
from t5kit.convert.hf_config import config_from_hf, config_to_hf, generation_config_to_hf
from t5kit.convert.hf_keys import ConversionError, rename_from_hf, rename_to_hf, split_aliases
from t5kit.model import T5
from t5kit.model.io import atomic_write

logger = logging.getLogger(__name__)

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_BIN = "pytorch_model.bin"
PYTORCH_BIN_INDEX = "pytorch_model.bin.index.json"
# Files that carry the tokenizer; copied along so that a converted directory stays usable on its own.
TOKENIZER_FILES = ("spiece.model", "tokenizer.yaml")
_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def read_json(path: Path) -> dict:
    """Read a JSON object, raising ConversionError for a missing or malformed file."""
    if not path.is_file():
        raise ConversionError(f"{path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ConversionError(f"{path}: invalid JSON at line {error.lineno}: {error.msg}") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _load_file(path: Path) -> dict[str, torch.Tensor]:
    """Load one safetensors or PyTorch weights file onto the CPU."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError) as error:
            raise ConversionError(f"{path}: corrupt or truncated safetensors file ({error})") from None
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:
            # Files in the legacy (non-zip) serialization cannot be memory-mapped.
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ConversionError(
            f"{path} contains objects other than tensors, which torch.load(weights_only=True) rejects: {error}. "
            "Re-save the weights as safetensors with a trusted copy of transformers"
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise ConversionError(f"{path}: corrupt or truncated PyTorch file ({error})") from None
    if not isinstance(state, dict):
        raise ConversionError(f"{path}: expected a dict of tensors, got {type(state).__name__}")
    return state


def _load_sharded(index_path: Path) -> dict[str, torch.Tensor]:
    """Load every tensor that an index file's weight_map lists, one shard at a time."""
    weight_map = read_json(index_path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ConversionError(f"{index_path}: no 'weight_map' of tensor names to shard files")
    state = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise ConversionError(f"{index_path} lists shard {shard}, which is not in {index_path.parent}")
        tensors = _load_file(shard_path)
        for name, file in weight_map.items():
            if file != shard:
                continue
            if name not in tensors:
                raise ConversionError(f"{index_path} maps tensor {name} to {shard}, which does not contain it")
            state[name] = tensors[name]
    return state


def read_hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    """Load the weights of a Hugging Face model directory, preferring safetensors."""
    for name, loader in (
        (SAFETENSORS, _load_file),
        (SAFETENSORS_INDEX, _load_sharded),
        (PYTORCH_BIN, _load_file),
        (PYTORCH_BIN_INDEX, _load_sharded),
    ):
        path = directory / name
        if path.is_file():
            logger.info("reading %s", path)
            return loader(path)
    raise ConversionError(
        f"no weights found in {directory}: expected {SAFETENSORS}, {SAFETENSORS_INDEX}, {PYTORCH_BIN} "
        f"or {PYTORCH_BIN_INDEX} (convert TensorFlow or Flax checkpoints with transformers first)"
    )


def expected_shapes(config: ModelConfig) -> dict[str, torch.Size]:
    """Return the shape of every tensor of a t5kit model with this config, built on the meta device."""
    with torch.device("meta"):
        model = T5(config)
    return {name: tensor.shape for name, tensor in model.state_dict().items()}


def from_hf(directory: str | Path, dtype: torch.dtype | None = None) -> T5:
    """Build a t5kit model from a Hugging Face T5, mT5 or umT5 directory, checking every tensor.

    The model keeps the stored dtype of `shared.weight` unless `dtype` is given.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ConversionError(f"{directory} is not a directory")
    data = read_json(directory / "config.json")
    return from_hf_state(data, read_hf_weights(directory), dtype, source=str(directory))


def from_hf_state(
    config_data: dict,
    state: dict[str, torch.Tensor],
    dtype: torch.dtype | None = None,
    source: str = "Hugging Face state dict",
) -> T5:
    """Build a t5kit model from config.json contents and a Hugging Face state dict held in memory."""
    state, tied = split_aliases(state, source)
    config = config_from_hf(config_data, tied, f"{source} config")
    state = rename_from_hf(state, config, expected_shapes(config), source)

    dtype = dtype or state["shared.weight"].dtype
    with torch.device("meta"):
        model = T5(config)
    model.load_state_dict({name: tensor.to(dtype) for name, tensor in state.items()}, strict=False, assign=True)
    return model


def _shard(state: dict[str, torch.Tensor], max_shard_size: int | None) -> list[dict[str, torch.Tensor]]:
    """Split tensors in table order into shards of at most max_shard_size bytes (one tensor may exceed it)."""
    if max_shard_size is None:
        return [state]
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_size:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    return shards


def write_weights(state: dict[str, torch.Tensor], directory: Path, max_shard_size: int | None = None) -> list[Path]:
    """Write safetensors weights, as one file or as shards with model.safetensors.index.json."""
    from safetensors.torch import save_file

    shards = _shard(state, max_shard_size)
    metadata = {"format": "pt"}
    if len(shards) == 1:
        path = directory / SAFETENSORS
        atomic_write(path, lambda tmp: save_file(shards[0], tmp, metadata=metadata))
        return [path]

    paths, weight_map = [], {}
    for i, shard in enumerate(shards, start=1):
        path = directory / f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        atomic_write(path, lambda tmp, shard=shard: save_file(shard, tmp, metadata=metadata))
        weight_map.update({name: path.name for name in shard})
        paths.append(path)
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    index_path = directory / SAFETENSORS_INDEX
    write_json(index_path, index)
    return [*paths, index_path]


def write_json(path: Path, data: dict) -> None:
    """Write a JSON file atomically, indented as transformers writes its files."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def to_hf(
    model: T5,
    directory: str | Path,
    max_shard_size: int | None = None,
    tokenizer_dir: str | Path | None = None,
) -> list[Path]:
    """Write a t5kit model as a Hugging Face directory that T5ForConditionalGeneration can load.

    Return the files written. `tokenizer_dir`, when given, is searched for spiece.model to copy along.
    """
    directory = Path(directory)
    config = model.config
    dtype = model.shared.weight.dtype
    if dtype not in _DTYPE_NAMES:
        raise ConversionError(f"cannot write weights of dtype {dtype}; cast the model to float32 or bfloat16")
    # Check that transformers can hold this layout before anything is written.
    hf_config = config_to_hf(config, _DTYPE_NAMES[dtype])
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    hf_state = rename_to_hf(state, config)

    directory.mkdir(parents=True, exist_ok=True)
    written = write_weights(hf_state, directory, max_shard_size)
    write_json(directory / "config.json", hf_config)
    write_json(directory / "generation_config.json", generation_config_to_hf(config))
    written += [directory / "config.json", directory / "generation_config.json"]
    if tokenizer_dir is not None:
        written += copy_tokenizer(Path(tokenizer_dir), directory)
    return written


def copy_tokenizer(source: Path, target: Path) -> list[Path]:
    """Copy the tokenizer files found in `source` into `target`; return the copies."""
    copied = []
    for name in TOKENIZER_FILES:
        if (source / name).is_file() and source.resolve() != target.resolve():
            shutil.copyfile(source / name, target / name)
            copied.append(target / name)
    return copied
