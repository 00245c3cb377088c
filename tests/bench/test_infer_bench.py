"""The inference benchmark: CLI smoke run at a tiny preset, exact output length, table and JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from t5kit.bench.infer import InferenceBenchConfig, format_table, percentile, run_inference_bench
from t5kit.cli.main import main
from t5kit.config.core import ConfigError

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "infer_vs_transformers.py"


@pytest.fixture(autouse=True)
def one_thread():
    """Run on one thread: the models are tiny, and a second thread only waits on a busy shared core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_cli_smoke(tmp_path, capsys):
    path = tmp_path / "bench.json"
    arguments = ["bench", "infer", "--preset", "tiny-test,tiny-test-nemo", "--batch", "2", "--input-len", "8"]
    arguments += ["--output-len", "5", "--runs", "3", "--warmup", "1", "--threads", "1", "--json", str(path)]
    assert main(arguments) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model | parameters | dtype | compile | batch | input len | output len | TP | PP |")
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| tiny-test", "| tiny-test-nemo"]
    assert all(" | no | 2 | 8 | 5 | 1 | 1 | " in line for line in lines[2:])

    rows = json.loads(path.read_text())
    assert [row["preset"] for row in rows] == ["tiny-test", "tiny-test-nemo"]
    for row in rows:
        assert len(row["latencies_ms"]) == 3
        assert row["median_ms"] == sorted(row["latencies_ms"])[1]
        assert row["tokens_per_s"] == pytest.approx(2 * 5 / (row["median_ms"] / 1000))
        assert row["threads"] == 1
        assert row["peak_rss_mib"] > 0


@pytest.mark.parametrize(("cache", "beams"), [("static", 1), ("dynamic", 1), ("static", 2)])
def test_exact_output_length(cache, beams):
    config = InferenceBenchConfig(
        preset="tiny-test", batch=3, input_len=7, output_len=6, runs=1, warmup=0, cache=cache, num_beams=beams
    )
    result = run_inference_bench(config)
    assert result.output_tokens.shape == (3, 6)
    assert len(result.latencies_ms) == 1


def test_percentile_and_table():
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 90) == pytest.approx(9.1)
    assert percentile(values, 50) == pytest.approx(5.5)
    assert percentile([4.0], 90) == 4.0
    result = run_inference_bench(InferenceBenchConfig(preset="tiny-test", input_len=5, output_len=2, runs=2, warmup=0))
    table = format_table([result])
    assert table.count("\n") == 2
    assert "| tiny-test | 0.1M | float32 | no | 1 | 5 | 2 | 1 | 1 |" in table


def test_config_checks():
    with pytest.raises(ConfigError, match="output_len"):
        InferenceBenchConfig(output_len=0)
    with pytest.raises(ConfigError, match="warmup"):
        InferenceBenchConfig(warmup=-1)
    assert main(["bench", "infer", "--preset", "no-such-preset", "--runs", "1"]) == 2


def test_script_against_transformers(capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("infer_vs_transformers", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)
    spec.loader.exec_module(script)
    arguments = ["--preset", "tiny-test", "--input-len", "8", "--output-len", "4", "--runs", "2", "--warmup", "1"]
    assert script.main(arguments + ["--dtype", "float32", "--dtype", "bfloat16", "--threads", "1"]) == 0
    report = capsys.readouterr().out
    rows = [line for line in report.splitlines() if line.startswith("| t5kit") or line.startswith("| transformers")]
    assert len(rows) == 8
    assert all(line.endswith("| yes | yes |") for line in rows if "float32" in line)
    assert "versions: Python" in report
