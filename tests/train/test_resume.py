"""A run killed with SIGKILL and resumed repeats the losses of an uninterrupted run exactly (CPU, fixed seed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def launch(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    output, _ = process.communicate(timeout=120)
    return process.returncode, output


def records(run_dir: Path, kind: str) -> dict[int, dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    found = [json.loads(line) for line in lines]
    by_step = {r["step"]: r for r in found if r["kind"] == kind}
    assert len(by_step) == len([r for r in found if r["kind"] == kind]), f"duplicate {kind} steps"
    return by_step


def test_sigkill_then_resume_matches(run_config, tmp_path):
    # Dropout stays on, so the resumed run also depends on the restored RNG state.
    train = {"max_steps": 8, "save_every": 3, "val_every": 4, "keep_last": 2}
    configs = {}
    for name in ("straight", "killed"):
        config = run_config(model={"dropout_rate": 0.1}, train={**train, "output_dir": str(tmp_path / name)})
        configs[name] = tmp_path / f"{name}.yaml"
        configs[name].write_text(yaml.safe_dump(config))

    straight = launch(["-m", "t5kit.cli.main", "pretrain", str(configs["straight"])])
    killed = launch([str(HERE / "run_and_kill.py"), str(configs["killed"]), "5"])
    code, output = finish(killed)
    assert code == -signal.SIGKILL, output
    assert [p.name for p in sorted((tmp_path / "killed" / "checkpoints").iterdir())] == ["step_00000003"]
    assert max(records(tmp_path / "killed", "train")) == 5

    resumed = launch(["-m", "t5kit.cli.main", "pretrain", str(configs["killed"])])
    code, output = finish(resumed)
    assert code == 0, output
    assert "resumed from" in output
    assert "step_00000003" in output
    code, output = finish(straight)
    assert code == 0, output

    want, got = records(tmp_path / "straight", "train"), records(tmp_path / "killed", "train")
    assert sorted(got) == sorted(want) == list(range(1, 9))
    for step in want:
        for key in ("loss", "grad_norm", "lr"):
            assert got[step][key] == want[step][key], f"{key} differs at step {step}"
    assert records(tmp_path / "killed", "val") == records(tmp_path / "straight", "val")
    assert records(tmp_path / "killed", "baseline") == records(tmp_path / "straight", "baseline")
