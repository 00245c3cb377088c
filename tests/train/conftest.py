"""Fixtures for trainer tests: tiny indexed datasets with a learnable pattern and a tiny run config."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

VOCAB_SIZE = 256


def write_dataset(prefix: Path, documents: int, seed: int) -> str:
    """Write arithmetic-progression documents (ids 2..151) so that the model has something to learn."""
    from t5kit.data.indexed_dataset import IndexedDatasetWriter

    rng = np.random.default_rng(seed)
    with IndexedDatasetWriter(prefix, VOCAB_SIZE) as writer:
        for _ in range(documents):
            start, stride, length = rng.integers(0, 150), rng.integers(1, 4), rng.integers(20, 60)
            writer.add_document((np.arange(length) * stride + start) % 150 + 2)
    return str(prefix)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, str]:
    """Return prefixes of a train (200 documents) and a validation (30 documents) dataset."""
    root = tmp_path_factory.mktemp("tiny_data")
    return {"train": write_dataset(root / "train", 200, 0), "val": write_dataset(root / "val", 30, 1)}


BASE_CONFIG = {
    "model": {"preset": "tiny-test"},
    "data": {"inputs_length": 32, "num_sentinels": 20, "seed": 7},
    "train": {
        "max_steps": 6,
        "micro_batch_size": 4,
        "log_every": 1,
        "val_every": 3,
        "val_batches": 2,
        "save_every": 3,
        "num_threads": 1,
        "progress_bar": False,
        "tensorboard": False,
        "optimizer": {"name": "adamw", "lr": 3e-3},
        "schedule": {"name": "cosine", "warmup_steps": 2},
    },
}


@pytest.fixture
def run_config(tiny_data, tmp_path):
    """Return a factory of config dicts for a tiny run in tmp_path, with nested overrides merged in."""
    from t5kit.config.core import merge

    def make(**sections) -> dict:
        config = copy.deepcopy(BASE_CONFIG)
        config["data"].update(paths=[tiny_data["train"]], validation_paths=[tiny_data["val"]])
        config["train"]["output_dir"] = str(tmp_path / "run")
        return merge(config, sections)

    return make


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models gain nothing from more threads, and on a shared machine they lose a lot.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
