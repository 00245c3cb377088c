"""`t5kit quickstart --smoke`: every stage runs and leaves its files; missing data stops with a clear message."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request

import pytest
import yaml

from t5kit.cli.main import main
from t5kit.errors import T5kitError
from t5kit.quickstart import QuickstartOptions, _download, find_t5_tokenizer, run_quickstart


def test_smoke_runs_every_stage(shared_data, tmp_path, capsys):
    args = [
        "quickstart", "--smoke", "--output", str(tmp_path), "--no-progress",
        "--squad-dir", str(shared_data / "squad_v1.1"), "--tokenizer", str(shared_data / "t5_tokenizer" / "spiece.model"),
        "--span-selection", "0.5",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| Task | Metric | Model size | no prompt | p-tuning |" in printed
    assert "gold: " in printed

    pretrain_config = yaml.safe_load((tmp_path / "pretrain" / "config.yaml").read_text())
    assert pretrain_config["data"]["objective"] == "ul2"
    assert [d["kind"] for d in pretrain_config["data"]["ul2"]["denoisers"]] == ["span", "select"]
    assert pretrain_config["data"]["tokenizer"] == str(tmp_path / "tokenizer")

    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["scores"]) == {"no prompt", "p-tuning"}
    assert results["dev_questions"] == 8
    assert results["pretrain_steps"] == 4
    assert len(results["samples"]) == 5
    assert {"no prompt", "p-tuning", "gold", "question"} <= set(results["samples"][0])
    for path in ("results.md", "pretrain/loss.png", "pretrain/model/spiece.model", "prompt/p-tuning/loss.png",
                 "prompt/p-tuning/prompts/prompts.safetensors", "prompt/p-tuning/predictions/squad.json"):
        assert (tmp_path / path).is_file(), path


def _offline(*args, **kwargs):
    raise urllib.error.URLError("network is unreachable")


def test_offline_without_squad_explains(tmp_path, monkeypatch):
    monkeypatch.setenv("T5KIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("T5KIT_SQUAD_DIR", raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    with pytest.raises(T5kitError, match="--squad-dir"):
        run_quickstart(QuickstartOptions(preset="smoke", output=str(tmp_path / "run")))


def test_offline_without_tokenizer_explains(tmp_path, monkeypatch):
    monkeypatch.setenv("T5KIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("T5KIT_TOKENIZER", raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    with pytest.raises(T5kitError, match="--train-tokenizer"):
        find_t5_tokenizer()


def test_tokenizer_found_in_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("T5KIT_CACHE", str(tmp_path))
    monkeypatch.delenv("T5KIT_TOKENIZER", raising=False)
    cached = tmp_path / "t5_tokenizer" / "spiece.model"
    cached.parent.mkdir()
    cached.write_bytes(b"model")
    assert find_t5_tokenizer() == cached


def test_download_checks_sha256(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"spiece bytes")
    target = tmp_path / "cache" / "spiece.model"
    with pytest.raises(T5kitError, match="corrupted"):
        _download(source.as_uri(), "0" * 64, target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []

    assert _download(source.as_uri(), hashlib.sha256(b"spiece bytes").hexdigest(), target) == target
    assert target.read_bytes() == b"spiece bytes"


def test_unknown_method_is_rejected(capsys):
    assert main(["quickstart", "--smoke", "--methods", "adapters"]) == 2
    assert "unknown method" in capsys.readouterr().err


def test_output_file_rejected(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me\n")
    assert main(["quickstart", "--smoke", "--output", str(target), "--no-progress"]) == 2
    assert "the run directory" in capsys.readouterr().err
    assert target.read_text() == "keep me\n"


def test_missing_cuda_names_flag(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["quickstart", "--smoke", "--device", "cuda"]) == 2
    assert "--device cuda: CUDA is not available on this machine; use --device cpu or auto" in capsys.readouterr().err


def test_small_train_tokenizer_names_flag(shared_data, tmp_path):
    options = QuickstartOptions(
        preset="smoke", output=str(tmp_path), squad_dir=str(shared_data / "squad_v1.1"), train_tokenizer=5,
        progress_bar=False,
    )
    with pytest.raises(T5kitError, match=r"--train-tokenizer 5 is fewer pieces than the \d+ characters of the text"):
        run_quickstart(options)
