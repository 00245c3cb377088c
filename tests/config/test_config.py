"""Config building: unknown keys, wrong types, impossible values, YAML errors and overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from t5kit.config import ConfigError, ModelConfig, apply_overrides, build, load_model_config, load_yaml


@dataclass
class Inner:
    size: int = 1
    rate: float = 0.5


@dataclass
class Outer:
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    inner: Inner = field(default_factory=Inner)
    tags: list[str] = field(default_factory=list)
    limit: int | None = None


def test_build_nested_and_defaults():
    config = build(Outer, {"inner": {"size": 3}, "tags": ["p"], "limit": 4})
    assert config.inner.size == 3
    assert config.inner.rate == 0.5
    assert config.tags == ["p"]
    assert config.limit == 4


def test_int_promoted_to_float():
    assert build(Inner, {"rate": 1}).rate == 1.0


def test_unknown_key_names_closest():
    with pytest.raises(ConfigError, match=r"unknown config key 'inner.szie'\. Did you mean 'inner.size'"):
        build(Outer, {"inner": {"szie": 3}})


def test_unknown_key_without_close_match():
    with pytest.raises(ConfigError, match="unknown config key 'zzz'") as info:
        build(Outer, {"zzz": 1})
    assert "Did you mean" not in str(info.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"inner": {"size": "three"}}, "inner.size: expected an integer, got 'three'"),
        ({"inner": {"size": True}}, "inner.size: expected an integer"),
        ({"mode": "c"}, "mode: invalid value 'c'; expected one of 'a', 'b'"),
        ({"tags": "p"}, "tags: expected a list"),
        ({"inner": 3}, "inner: expected a mapping"),
        ({"name": 5}, "name: expected a string"),
    ],
)
def test_wrong_types_rejected(data, message):
    with pytest.raises(ConfigError) as info:
        build(Outer, data)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_heads": 5, "d_kv": None}, "model.num_heads: 5 heads do not divide d_model 32"),
        ({"dropout_rate": 1.5}, "model.dropout_rate: must be in [0, 1)"),
        ({"d_model": 0}, "model.d_model: must be positive"),
        ({"pad_token_id": 300}, "model.pad_token_id: 300 is outside the vocabulary"),
        ({"activation": "tanh"}, "model.activation: invalid value 'tanh'"),
    ],
)
def test_impossible_model_values_rejected(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_model_config("tiny-test", overrides)
    assert message in str(info.value)


def test_head_size_derived_when_unset():
    config = load_model_config("tiny-test", {"d_kv": None, "num_heads": 2})
    assert config.d_kv == 16


def test_vocab_smaller_than_tokenizer_rejected():
    config = ModelConfig(vocab_size=32000)
    with pytest.raises(ConfigError, match=r"model.vocab_size: 32000 is smaller than the tokenizer's 32100 ids; set model.vocab_size=32128"):
        config.check_tokenizer(32100)
    ModelConfig(vocab_size=32128).check_tokenizer(32100)


def test_tokenizer_of_another_model_rejected():
    ModelConfig(vocab_size=32128).check_tokenizer_matches(32100)
    ModelConfig(vocab_size=32100).check_tokenizer_matches(32100)
    with pytest.raises(ConfigError, match="the tokenizer has 600 ids but the model's embedding has 32128 rows"):
        ModelConfig(vocab_size=32128).check_tokenizer_matches(600)


def test_unknown_preset_suggests_name():
    with pytest.raises(ConfigError, match="Did you mean 't5-small'"):
        load_model_config("t5-smal")


def test_overrides_set_nested_values():
    data = apply_overrides({"model": {"d_model": 8}}, ["model.num_layers=4", "train.lr=1e-3", "name=run"])
    assert data == {"model": {"d_model": 8, "num_layers": 4}, "train": {"lr": 1e-3}, "name": "run"}


@pytest.mark.parametrize("text", ["model.num_layers", "=3", "model..x=1"])
def test_malformed_override_rejected(text):
    with pytest.raises(ConfigError, match="invalid override"):
        apply_overrides({}, [text])


def test_override_into_scalar_rejected():
    with pytest.raises(ConfigError, match="'model' is not a section"):
        apply_overrides({"model": "t5-small"}, ["model.d_model=3"])


def test_malformed_yaml_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  d_model: 3\n bad: [\n")
    with pytest.raises(ConfigError, match=r"malformed YAML in .*bad.yaml at line \d+"):
        load_yaml(path)


def test_repeated_yaml_key_rejected(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("train:\n  max_steps: 10\n  lr: 1.0\n  max_steps: 20\n")
    with pytest.raises(ConfigError, match=r"twice.yaml at line 4.*'max_steps' appears twice .*first at line 2"):
        load_yaml(path)
    # The same key in two different mappings is fine, and so is a list of mappings.
    path.write_text("a:\n  x: 1\nb:\n  x: 2\nc:\n  - {x: 1}\n  - {x: 2}\n")
    assert load_yaml(path) == {"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 1}, {"x": 2}]}


def test_yaml_merge_keys_still_work(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("base: &base {max_steps: 7, lr: 1.0}\ntrain:\n  <<: *base\n  lr: 2.0\n")
    assert load_yaml(path)["train"] == {"max_steps": 7, "lr": 2.0}


def test_config_not_utf8_rejected(tmp_path):
    path = tmp_path / "utf16.yaml"
    path.write_bytes("train: {}\n".encode("utf-16"))
    with pytest.raises(ConfigError, match=r"utf16.yaml is not UTF-8 text \(byte 0\)"):
        load_yaml(path)


def test_yaml_must_be_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_yaml(path)


def test_missing_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(tmp_path / "none.yaml")
