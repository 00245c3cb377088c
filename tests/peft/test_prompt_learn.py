"""`t5kit prompt-learn` end to end on real SQuAD slices, with a tiny random base and the T5 tokenizer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from t5kit.cli.main import main
from t5kit.model import save_model
from tests.peft.helpers import tiny_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, shared_data):
    directory = tmp_path_factory.mktemp("base")
    model = tiny_model("tiny", d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16)
    save_model(model, directory)
    shutil.copy(shared_data / "t5_tokenizer" / "spiece.model", directory / "spiece.model")
    return directory


def _args(base_dir, shared_data, output, method, *extra):
    squad = shared_data / "squad_v1.1"
    task = {"name": "squad", "num_virtual_tokens": 4, "train_file": str(squad / "train-v1.1.reconstructed.first20articles.json")}
    return [
        "prompt-learn", "squad-tiny", f"base={base_dir}", f"output_dir={output}", f"method={method}",
        f"data.squad_dir={squad}", f"tasks=[{json.dumps(task)}]", "data.train_examples=16", "data.dev_examples=6",
        "data.max_input_length=96", "optim.max_steps=3", "optim.batch_size=4", "optim.schedule.warmup_steps=1",
        "eval.max_new_tokens=5", "eval.batch_size=4", "progress_bar=false", *extra,
    ]


def _predictions(output: Path, name: str = "squad.json") -> dict:
    return json.loads((output / "predictions" / name).read_text())


def test_saved_prompt_reloads_in_new_process(base_dir, shared_data, tmp_path):
    assert main(_args(base_dir, shared_data, tmp_path / "train", "p-tuning", "prompt.encoder=lstm")) == 0
    trained = _predictions(tmp_path / "train")
    assert len(trained) == 6
    assert all(isinstance(answer, str) for answer in trained.values())

    command = [
        sys.executable, "-m", "t5kit.cli.main", "--log-level", "WARNING",
        *_args(base_dir, shared_data, tmp_path / "reload", "p-tuning", f"load_tuned={tmp_path / 'train' / 'prompts'}"),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    completed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert _predictions(tmp_path / "reload") == trained


def test_results_name_baseline_and_tuned(base_dir, shared_data, tmp_path):
    assert main(_args(base_dir, shared_data, tmp_path, "prompt-tuning", "prompt.init=text")) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["scores"]["squad"]) == {"baseline", "tuned"}
    assert results["trainable_parameters"] == 4 * 32
    assert results["steps"] == 3
    assert len(results["samples"]) == 5
    assert (tmp_path / "predictions" / "squad.baseline.json").is_file()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(record["kind"], record["step"]) for record in records] == [("train", 3)]
    assert (tmp_path / "loss.png").is_file()
    meta = yaml.safe_load((tmp_path / "prompts" / "prompts.yaml").read_text())
    assert meta["tasks"][0]["num_virtual_tokens"] == 4


@pytest.mark.parametrize(("method", "saved"), [("lora", "lora"), ("finetune", "model")])
def test_lora_and_finetune_reload(base_dir, shared_data, tmp_path, method, saved):
    assert main(_args(base_dir, shared_data, tmp_path / "train", method)) == 0
    reload = _args(base_dir, shared_data, tmp_path / "reload", method, f"load_tuned={tmp_path / 'train' / saved}", "eval.baseline=false")
    assert main(reload) == 0
    assert _predictions(tmp_path / "reload") == _predictions(tmp_path / "train")


def test_prompt_on_other_base_is_refused(base_dir, shared_data, tmp_path, capsys):
    assert main(_args(base_dir, shared_data, tmp_path / "train", "prompt-tuning")) == 0
    other = tmp_path / "other"
    save_model(tiny_model("tiny", seed=1, d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16), other)
    shutil.copy(base_dir / "spiece.model", other / "spiece.model")
    args = _args(other, shared_data, tmp_path / "reload", "prompt-tuning", f"load_tuned={tmp_path / 'train' / 'prompts'}")
    assert main(args) == 2
    assert "was trained on the base" in capsys.readouterr().err


def test_two_tasks_then_frozen_third(base_dir, shared_data, tmp_path):
    from safetensors.torch import load_file

    train_file = str(shared_data / "squad_v1.1" / "train-v1.1.reconstructed.first20articles.json")
    tasks = [
        {"name": "qa", "num_virtual_tokens": 4, "train_file": train_file},
        {"name": "qa-title", "num_virtual_tokens": 3, "train_file": train_file,
         "template": "title: {title} <prompt> question: {question} context: {context}"},
    ]
    first = _args(base_dir, shared_data, tmp_path / "first", "prompt-tuning", f"tasks={json.dumps(tasks)}")
    assert main(first) == 0
    results = json.loads((tmp_path / "first" / "results.json").read_text())
    assert set(results["scores"]) == {"qa", "qa-title"}
    first_tensors = load_file(tmp_path / "first" / "prompts" / "prompts.safetensors")
    assert {name: tuple(t.shape) for name, t in first_tensors.items()} == {"qa": (4, 32), "qa-title": (3, 32)}

    third = [{"name": "later", "num_virtual_tokens": 2, "train_file": train_file}]
    args = _args(base_dir, shared_data, tmp_path / "second", "p-tuning", f"tasks={json.dumps(third)}",
                 f"prompt.frozen_prompts={tmp_path / 'first' / 'prompts'}")
    assert main(args) == 0
    second_tensors = load_file(tmp_path / "second" / "prompts" / "prompts.safetensors")
    assert set(second_tensors) == {"qa", "qa-title", "later"}
    for name in ("qa", "qa-title"):
        assert second_tensors[name].equal(first_tensors[name]), name
