"""DDP over 2 gloo ranks (torchrun) trains like one process on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

import t5kit
from t5kit.data.config import DataConfig
from t5kit.data.indexed_dataset import IndexedDatasetWriter
from t5kit.data.loader import build_objective


def write_even_dataset(prefix, config: DataConfig, documents: int) -> str:
    """Write documents of exactly one window each, so the window count (and so each rank's share) is even."""
    length = build_objective(config, 256).raw_length - 1  # plus the EOS between documents
    rng = np.random.default_rng(0)
    with IndexedDatasetWriter(prefix, 256) as writer:
        for _ in range(documents):
            start, stride = rng.integers(0, 150), rng.integers(1, 4)
            writer.add_document((np.arange(length) * stride + start) % 150 + 2)
    return str(prefix)


def records(run_dir, kind: str) -> dict[int, dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r for r in map(json.loads, lines) if r["kind"] == kind}


@pytest.mark.distributed
def test_two_ranks_match_single_process(run_config, tmp_path):
    data = DataConfig(inputs_length=32, num_sentinels=20)
    train_prefix = write_even_dataset(tmp_path / "train", data, 64)
    val_prefix = write_even_dataset(tmp_path / "val", data, 8)
    data_section = {"paths": [train_prefix], "validation_paths": [val_prefix]}
    train = {"max_steps": 3, "val_every": 3, "save_every": 3}

    # 2 ranks x 2 micro-batches of 1 sequence see the same 4 sequences per update as 1 process x 4,
    # and 2 ranks x 4 validation batches of 1 the same 8 as 1 process x 2 batches of 4.
    ddp_config = run_config(model={"dropout_rate": 0.0}, data=data_section, train={
        **train, "micro_batch_size": 1, "grad_accum_steps": 2, "val_batches": 4, "output_dir": str(tmp_path / "ddp")})
    single_config = run_config(model={"dropout_rate": 0.0}, data=data_section, train={
        **train, "micro_batch_size": 4, "grad_accum_steps": 1, "output_dir": str(tmp_path / "single"),
        "val_batches": 2})
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(ddp_config))

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "t5kit.cli.main", "pretrain", str(path)]
    process = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                             timeout=180)
    assert process.returncode == 0, process.stdout + process.stderr
    t5kit.pretrain(single_config)

    got, want = records(tmp_path / "ddp", "train"), records(tmp_path / "single", "train")
    assert sorted(got) == sorted(want) == [1, 2, 3]
    # Step 1 compares the loss and gradient norm of identical weights. Later steps follow AdamW
    # updates, which turn reduction-order noise of about 1e-8 into weight differences near 1e-4.
    assert got[1]["loss"] == pytest.approx(want[1]["loss"], rel=1e-6)
    assert got[1]["grad_norm"] == pytest.approx(want[1]["grad_norm"], rel=1e-5)
    for step in (2, 3):
        assert got[step]["loss"] == pytest.approx(want[step]["loss"], rel=1e-4)
    got_val, want_val = records(tmp_path / "ddp", "val")[3], records(tmp_path / "single", "val")[3]
    assert got_val["val_tokens"] == want_val["val_tokens"]
    assert got_val["val_loss"] == pytest.approx(want_val["val_loss"], rel=1e-4)
    assert (tmp_path / "ddp" / "checkpoints" / "step_00000003" / "manifest.json").is_file()
