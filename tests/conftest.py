"""Shared fixtures: the real data folder, and a fixed seed for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(os.environ.get("T5KIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Return the real-data folder; skip without it, except in CI where its absence is a failure."""
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    message = f"real data folder not found at {SHARED_DATA}; set T5KIT_SHARED_DATA to its path"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
