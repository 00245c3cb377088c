"""Conversion between Hugging Face and t5kit directories, with transformers as the oracle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    MT5Config,
    MT5ForConditionalGeneration,
    T5Config,
    T5ForConditionalGeneration,
    UMT5Config,
    UMT5ForConditionalGeneration,
)

from t5kit.cli.main import main
from t5kit.config.model import load_model_config
from t5kit.convert import ConversionError, from_hf, load_any, to_hf
from t5kit.convert.hf import read_hf_weights
from t5kit.convert.hf_config import config_from_hf, config_to_hf, parse_feed_forward
from t5kit.model import T5, count_parameters, load_model, save_model

SHAPE = dict(
    vocab_size=160,
    d_model=32,
    d_kv=8,
    d_ff=48,
    num_layers=2,
    num_heads=4,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=16,
    dropout_rate=0.0,
    decoder_start_token_id=0,
)
# family: (config class, model class, config fields, untied head)
FAMILIES = {
    "t5": (T5Config, T5ForConditionalGeneration, dict(feed_forward_proj="relu"), False),
    "t5-v1.1": (T5Config, T5ForConditionalGeneration, dict(feed_forward_proj="gated-gelu"), True),
    "mt5": (MT5Config, MT5ForConditionalGeneration, dict(feed_forward_proj="gated-gelu"), True),
    # flan-t5 has the v1.1 layout; this one also has more decoder layers and heads * d_kv != d_model.
    "flan-t5": (
        T5Config,
        T5ForConditionalGeneration,
        dict(feed_forward_proj="gated-gelu", num_decoder_layers=3, num_heads=6),
        True,
    ),
    "umt5": (UMT5Config, UMT5ForConditionalGeneration, dict(feed_forward_proj="gated-gelu"), True),
}


@pytest.fixture(autouse=True)
def one_thread():
    """Run on one thread: the models are tiny, and a second thread only waits on a busy shared core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def hf_checkpoint(directory: Path, family: str, seed: int = 0, **save_options) -> Path:
    """Save a randomly initialised transformers model of a family, laid out as published checkpoints are.

    transformers 5 builds every T5 with the head tied to the embedding, so untied families get their own
    lm_head weights before saving. transformers reloads them untied because the values differ. Published v1.1 and
    mT5 configs say `tie_word_embeddings: false` and have no `scale_decoder_outputs`, so the saved
    config.json is rewritten that way.
    """
    config_class, model_class, fields, untied = FAMILIES[family]
    torch.manual_seed(seed)
    model = model_class(config_class(**{**SHAPE, **fields}))
    if untied:
        model.lm_head.weight = nn.Parameter(torch.randn_like(model.lm_head.weight) * 0.05)
    model.save_pretrained(directory, **save_options)
    if untied:
        path = directory / "config.json"
        data = json.loads(path.read_text())
        data["tie_word_embeddings"] = False
        data.pop("scale_decoder_outputs", None)
        path.write_text(json.dumps(data))
    return directory


def hf_model(directory: Path):
    model_type = json.loads((directory / "config.json").read_text())["model_type"]
    model_class = {"t5": T5ForConditionalGeneration, "mt5": MT5ForConditionalGeneration}.get(
        model_type, UMT5ForConditionalGeneration
    )
    return model_class.from_pretrained(directory).eval()


def inputs(vocab=160, seed=1):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(2, vocab, (2, 9), generator=generator)
    decoder_ids = torch.randint(2, vocab, (2, 6), generator=generator)
    decoder_ids[:, 0] = 0
    mask = torch.ones_like(input_ids)
    mask[1, 6:] = 0
    return input_ids, mask, decoder_ids


def max_logit_difference(ours: T5, theirs, vocab=160) -> float:
    input_ids, mask, decoder_ids = inputs(vocab)
    with torch.no_grad():
        expected = theirs(input_ids=input_ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
        actual = ours.eval()(input_ids, decoder_ids, attention_mask=mask)
    assert actual.shape == expected.shape
    return (actual - expected).abs().max().item()


def hf_tensors(directory: Path) -> dict[str, torch.Tensor]:
    return read_hf_weights(directory)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_from_hf_logits_match(tmp_path, family):
    directory = hf_checkpoint(tmp_path / "hf", family)
    model = from_hf(directory)
    untied = FAMILIES[family][3]
    assert model.config.tie_word_embeddings is not untied
    assert model.config.scale_decoder_output is (family == "t5")
    assert model.config.relative_bias_per_layer is (family == "umt5")
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert max_logit_difference(model, hf_model(directory)) < 1e-4


@pytest.mark.parametrize("family", list(FAMILIES))
def test_round_trip_identical(tmp_path, family):
    source = hf_checkpoint(tmp_path / "hf", family)
    to_hf(from_hf(source), tmp_path / "back")
    original, back = hf_tensors(source), hf_tensors(tmp_path / "back")
    assert sorted(back) == sorted(original)
    for name, tensor in original.items():
        assert torch.equal(back[name], tensor), name

    reloaded = hf_model(tmp_path / "back")
    assert reloaded.config.decoder_start_token_id == 0
    assert max_logit_difference(from_hf(source), reloaded) < 1e-4
    assert max_logit_difference(from_hf(tmp_path / "back"), hf_model(source)) < 1e-4


@pytest.mark.parametrize("family", ["t5", "t5-v1.1"])
def test_t5kit_dir_loads(tmp_path, family):
    source = hf_checkpoint(tmp_path / "hf", family)
    model = from_hf(source).eval()
    save_model(model, tmp_path / "ours")
    loaded = load_model(tmp_path / "ours").eval()
    assert loaded.config == model.config
    input_ids, mask, decoder_ids = inputs()
    with torch.no_grad():
        assert torch.equal(loaded(input_ids, decoder_ids, mask), model(input_ids, decoder_ids, mask))
    assert type(load_any(tmp_path / "ours")) is T5
    assert load_any(source).config == model.config


@pytest.mark.parametrize("preset", ["tiny-test", "tiny-test-t5"])
def test_to_hf_from_preset(tmp_path, preset):
    torch.manual_seed(0)
    model = T5(load_model_config(preset, {"dropout_rate": 0.0}))
    to_hf(model, tmp_path / "hf")
    theirs = hf_model(tmp_path / "hf")
    assert max_logit_difference(model, theirs, vocab=256) < 1e-4
    assert from_hf(tmp_path / "hf").config == model.config


def test_tied_head_without_rescale(tmp_path):
    torch.manual_seed(0)
    model = T5(load_model_config("tiny-test", {"dropout_rate": 0.0, "tie_word_embeddings": True}))
    assert not model.config.scale_decoder_output
    to_hf(model, tmp_path / "hf")
    assert "lm_head.weight" not in hf_tensors(tmp_path / "hf")
    assert max_logit_difference(model, hf_model(tmp_path / "hf"), vocab=256) < 1e-4
    assert from_hf(tmp_path / "hf").config == model.config


def test_transformers5_config_file(tmp_path):
    # Files saved by transformers 5 contain tie_word_embeddings: true and scale_decoder_outputs: false.
    config_class, model_class, fields, _ = FAMILIES["t5-v1.1"]
    torch.manual_seed(0)
    model = model_class(config_class(**{**SHAPE, **fields, "tie_word_embeddings": False}))
    model.lm_head.weight = nn.Parameter(torch.randn_like(model.lm_head.weight))
    model.save_pretrained(tmp_path / "hf")
    data = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert data["tie_word_embeddings"] is True
    assert data["scale_decoder_outputs"] is False
    ours = from_hf(tmp_path / "hf")
    assert not ours.config.scale_decoder_output
    assert not ours.config.tie_word_embeddings
    assert max_logit_difference(ours, hf_model(tmp_path / "hf")) < 1e-4


def test_sharded_safetensors(tmp_path):
    directory = hf_checkpoint(tmp_path / "hf", "t5-v1.1", max_shard_size="40KB")
    assert (directory / "model.safetensors.index.json").is_file()
    assert not (directory / "model.safetensors").exists()
    model = from_hf(directory)
    assert max_logit_difference(model, hf_model(directory)) < 1e-4

    files = to_hf(model, tmp_path / "out", max_shard_size=40_000)
    assert len([f for f in files if f.suffix == ".safetensors"]) > 1
    assert (tmp_path / "out" / "model.safetensors.index.json").is_file()
    assert max_logit_difference(from_hf(tmp_path / "out"), hf_model(tmp_path / "out")) < 1e-4
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(hf_tensors(directory))


def test_pytorch_bin_with_aliases(tmp_path):
    # Old .bin files store the embedding under every alias, lm_head included, plus an unused bias.
    source = hf_checkpoint(tmp_path / "hf", "t5")
    state = load_file(source / "model.safetensors")
    shared = state["shared.weight"]
    for alias in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"):
        state[alias] = shared
    state["decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"] = torch.zeros(8, 4)
    (source / "model.safetensors").unlink()
    torch.save(state, source / "pytorch_model.bin")
    model = from_hf(source)
    assert model.config.tie_word_embeddings
    assert max_logit_difference(model, hf_model(source)) < 1e-4


def test_sharded_bin_index(tmp_path):
    source = hf_checkpoint(tmp_path / "hf", "mt5")
    state = load_file(source / "model.safetensors")
    (source / "model.safetensors").unlink()
    names = sorted(state)
    halves = {"pytorch_model-00001-of-00002.bin": names[::2], "pytorch_model-00002-of-00002.bin": names[1::2]}
    weight_map = {}
    for file, part in halves.items():
        torch.save({name: state[name] for name in part}, source / file)
        weight_map.update({name: file for name in part})
    index = {"metadata": {"total_size": sum(t.numel() * 4 for t in state.values())}, "weight_map": weight_map}
    (source / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    assert max_logit_difference(from_hf(source), hf_model(source)) < 1e-4


def test_bin_rejects_pickled_objects(tmp_path):
    source = hf_checkpoint(tmp_path / "hf", "t5")
    (source / "model.safetensors").unlink()
    torch.save({"shared.weight": torch.zeros(2), "payload": ConversionError("not a tensor")}, source / "pytorch_model.bin")
    with pytest.raises(ConversionError, match="weights_only"):
        from_hf(source)


def edit_weights(directory: Path, edit) -> None:
    path = directory / "model.safetensors"
    state = load_file(path)
    edit(state)
    save_file(state, path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("decoder.block.1.layer.2.DenseReluDense.wo.weight"), "decoder.block.1.layer.2.DenseReluDense.wo.weight not found"),
        (lambda s: s.update({"encoder.block.9.layer.0.layer_norm.weight": torch.ones(32)}), "unexpected tensor encoder.block.9"),
        (lambda s: s.update({"encoder.final_layer_norm.weight": torch.ones(31)}), r"encoder.final_layer_norm.weight has shape \(31,\)"),
        (lambda s: s.update({"encoder.embed_tokens.weight": torch.zeros(160, 32)}), "encoder.embed_tokens.weight differs"),
        (lambda s: s.pop("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"), "relative_attention_bias.weight not found"),
    ],
)
def test_bad_tensor_named(tmp_path, edit, message):
    source = hf_checkpoint(tmp_path / "hf", "t5-v1.1")
    edit_weights(source, edit)
    with pytest.raises(ConversionError, match=message):
        from_hf(source)


def test_per_layer_bias_missing_named(tmp_path):
    source = hf_checkpoint(tmp_path / "hf", "umt5")
    edit_weights(source, lambda s: s.pop("encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"))
    with pytest.raises(ConversionError, match="encoder.block.1.layer.0.SelfAttention.relative_attention_bias"):
        from_hf(source)


def test_config_errors_named(tmp_path):
    source = hf_checkpoint(tmp_path / "hf", "t5")
    data = json.loads((source / "config.json").read_text())
    for key, value, message in [
        ("model_type", "bart", "model_type 'bart'"),
        ("feed_forward_proj", "gated-mish", "activation 'mish'"),
        ("feed_forward_proj", "double-gated-gelu", "invalid feed_forward_proj"),
    ]:
        with pytest.raises(ConversionError, match=message):
            config_from_hf({**data, key: value}, True, "config.json")
    with pytest.raises(ConversionError, match="'d_ff'"):
        config_from_hf({k: v for k, v in data.items() if k != "d_ff"}, True, "config.json")
    (source / "model.safetensors").unlink()
    with pytest.raises(ConversionError, match="no weights found"):
        from_hf(source)
    with pytest.raises(ConversionError, match="config.json not found"):
        from_hf(tmp_path)


def test_feed_forward_names():
    assert parse_feed_forward("relu", "x") == ("relu", False)
    assert parse_feed_forward("gated-gelu", "x") == ("gelu_tanh", True)
    assert parse_feed_forward("gelu", "x") == ("gelu", False)
    assert parse_feed_forward("gated-silu", "x") == ("silu", True)
    assert parse_feed_forward("gelu_new", "x") == ("gelu_tanh", False)


def test_to_hf_rejects_other_layouts(tmp_path):
    with torch.device("meta"):
        nemo = T5(load_model_config("tiny-test-nemo"))
    with pytest.raises(ConversionError, match="position_embedding=absolute"):
        to_hf(nemo, tmp_path / "nemo")
    exact_gated = load_model_config("tiny-test", {"activation": "gelu"})
    with pytest.raises(ConversionError, match="exact GELU"):
        config_to_hf(exact_gated, "float32")


@pytest.mark.parametrize(("preset", "published"), [("t5-v1_1-base", 247_577_856), ("mt5-small", 300_176_768)])
def test_parameter_count_through_config(preset, published):
    config = load_model_config(preset)
    data = config_to_hf(config, "float32")
    assert config_from_hf(data, config.tie_word_embeddings, "config.json") == config
    model_class = MT5ForConditionalGeneration if data["model_type"] == "mt5" else T5ForConditionalGeneration
    config_class = MT5Config if data["model_type"] == "mt5" else T5Config
    with torch.device("meta"):
        theirs = model_class(config_class(**data))
        ours = T5(config)
    # transformers builds the head tied from a config; the published untied checkpoints add it.
    head = config.vocab_size * config.d_model
    assert sum(p.numel() for p in theirs.parameters()) + head == published
    assert count_parameters(ours) == published


def test_cli_round_trip(tmp_path, shared_data):
    source = hf_checkpoint(tmp_path / "hf", "t5-v1.1")
    (source / "spiece.model").write_bytes((shared_data / "t5_tokenizer" / "spiece.model").read_bytes())
    assert main(["convert", "--from", "hf", str(source), "--to", str(tmp_path / "ours")]) == 0
    assert (tmp_path / "ours" / "config.yaml").is_file()
    assert (tmp_path / "ours" / "spiece.model").is_file()
    assert main(["convert", "--from", "t5kit", str(tmp_path / "ours"), "--to", "hf", str(tmp_path / "back")]) == 0
    original, back = hf_tensors(source), hf_tensors(tmp_path / "back")
    assert sorted(back) == sorted(original)
    assert all(torch.equal(back[name], original[name]) for name in original)
    assert (tmp_path / "back" / "spiece.model").is_file()

    # Writing into a non-empty directory needs --overwrite.
    assert main(["convert", "--from", "hf", str(source), "--to", str(tmp_path / "ours")]) == 2
    assert main(["convert", "--from", "hf", str(source), "--to", str(tmp_path / "ours"), "--overwrite"]) == 0
