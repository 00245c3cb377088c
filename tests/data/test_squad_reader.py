"""Tests for the SQuAD reader and for finding and downloading the official files (no network)."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from t5kit.data import squad_download
from t5kit.data.squad import SquadExample, SquadFormatError, read_squad
from t5kit.data.squad_download import SquadDownloadError, download_squad, find_squad
from t5kit.errors import T5kitError

XQUAD_LANGUAGES = ["en", "de", "es", "ru", "zh", "ar", "hi", "vi", "th"]


def _squad_json(**question_fields) -> dict:
    """Return a two-question SQuAD v1.1 document whose second question gets `question_fields`."""
    second = {"id": "q2", "question": "Who won?", "answers": [{"text": "Denver", "answer_start": 0}]}
    second.update(question_fields)
    return {
        "version": "1.1",
        "data": [
            {"title": "First", "paragraphs": [{"context": "A b c.", "qas": []}]},
            {
                "title": "Super_Bowl_50",
                "paragraphs": [
                    {
                        "context": "Denver won the game.",
                        "qas": [
                            {"id": "q1", "question": "What?", "answers": [{"text": "game", "answer_start": 15}]},
                            second,
                        ],
                    }
                ],
            },
        ],
    }


def _write(path: Path, document) -> Path:
    text = json.dumps(document)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as file:
            file.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Make every urlopen call fail, as on a machine without network access."""

    def fail(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", fail)


@pytest.fixture
def empty_locations(tmp_path, monkeypatch) -> Path:
    """Point the cache at an empty folder, clear T5KIT_SQUAD_DIR and return the cache root."""
    monkeypatch.delenv(squad_download.SQUAD_DIR_ENV, raising=False)
    monkeypatch.setenv(squad_download.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


# Reading real files.


def test_dev_counts(shared_data):
    examples = list(read_squad(shared_data / "squad_v1.1" / "dev-v1.1.json"))
    assert len(examples) == 10_570
    assert sum(len(example.answers) for example in examples) == 34_726
    assert len({example.title for example in examples}) == 48
    assert len({example.id for example in examples}) == 10_570
    assert not any(example.is_impossible for example in examples)


def test_dev_first_example(shared_data):
    first = next(read_squad(shared_data / "squad_v1.1" / "dev-v1.1.json"))
    assert first.id == "56be4db0acb8001400a502ec"
    assert first.title == "Super_Bowl_50"
    assert first.question == "Which NFL team represented the AFC at Super Bowl 50?"
    assert first.answers == ("Denver Broncos",) * 3
    assert first.answer_starts == (177,) * 3
    assert first.context.startswith("Super Bowl 50 was an American football game")


def test_dev_answer_starts(shared_data):
    for example in read_squad(shared_data / "squad_v1.1" / "dev-v1.1.json"):
        for text, start in zip(example.answers, example.answer_starts, strict=True):
            assert example.context[start : start + len(text)] == text, example.id


def test_train_reconstructed_gz(shared_data):
    examples = list(read_squad(shared_data / "squad_v1.1" / "train-v1.1.reconstructed.json.gz"))
    assert len(examples) == 87_599
    assert sum(len(example.answers) for example in examples) == 87_599
    first = examples[0]
    assert first.title == "University_of_Notre_Dame"
    assert first.question == "To whom did the Virgin Mary allegedly appear in 1858 in Lourdes France?"
    assert first.answers == ("Saint Bernadette Soubirous",)
    assert first.answer_starts == (515,)


@pytest.mark.parametrize("language", XQUAD_LANGUAGES)
def test_xquad_counts(shared_data, language):
    examples = list(read_squad(shared_data / "xquad" / f"xquad.{language}.json"))
    english = list(read_squad(shared_data / "xquad" / "xquad.en.json"))
    assert len(examples) == 1190
    assert len({example.context for example in examples}) == 240
    assert [example.id for example in examples] == [example.id for example in english]


# Reading small files.


def test_reader_fields(tmp_path):
    examples = list(read_squad(_write(tmp_path / "small.json", _squad_json())))
    assert examples == [
        SquadExample("q1", "Super_Bowl_50", "Denver won the game.", "What?", ("game",), (15,)),
        SquadExample("q2", "Super_Bowl_50", "Denver won the game.", "Who won?", ("Denver",), (0,)),
    ]


def test_reader_gzip_and_mapping(tmp_path):
    from_gzip = list(read_squad(_write(tmp_path / "small.json.gz", _squad_json())))
    from_mapping = list(read_squad(_squad_json()))
    assert [example.id for example in from_gzip] == ["q1", "q2"]
    assert from_gzip == from_mapping


def test_reader_v2_impossible():
    document = _squad_json(
        answers=[], is_impossible=True, plausible_answers=[{"text": "Denver", "answer_start": 0}]
    )
    first, second = read_squad(document)
    assert first.is_impossible is False
    assert second.is_impossible is True
    assert second.answers == ()
    assert second.answer_starts == ()


def test_reader_without_title():
    document = {"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "x", "question": "q", "answers": []}]}]}]}
    (example,) = read_squad(document)
    assert example.title == ""


# Malformed files.


def test_error_missing_question(tmp_path):
    document = _squad_json()
    del document["data"][1]["paragraphs"][0]["qas"][1]["question"]
    path = _write(tmp_path / "bad.json", document)
    with pytest.raises(SquadFormatError) as info:
        list(read_squad(path))
    assert str(info.value) == f"{path}: missing 'question' in data[1] ('Super_Bowl_50') paragraphs[0] qas[1]"


def test_error_wrong_types():
    message = r"'answer_start' in data\[1\] .* answers\[0\] must be an integer, got a string"
    with pytest.raises(SquadFormatError, match=message):
        list(read_squad(_squad_json(answers=[{"text": "Denver", "answer_start": "0"}])))
    with pytest.raises(SquadFormatError, match=r"'answer_start' .* must be an integer, got a boolean"):
        list(read_squad(_squad_json(answers=[{"text": "Denver", "answer_start": True}])))
    with pytest.raises(SquadFormatError, match=r"'id' in data\[1\] .* qas\[1\] must be a string, got a number"):
        list(read_squad(_squad_json(id=7)))
    message = r"data\[1\] .* qas\[1\] answers\[0\] must be a JSON object, got a string"
    with pytest.raises(SquadFormatError, match=message):
        list(read_squad(_squad_json(answers=["Denver"])))


def test_error_top_level(tmp_path):
    with pytest.raises(SquadFormatError, match=r"expected a JSON object with a 'data' list, got a list"):
        list(read_squad(_write(tmp_path / "list.json", [1, 2])))
    with pytest.raises(SquadFormatError, match=r"missing 'data' in the top-level object"):
        list(read_squad(_write(tmp_path / "no_data.json", {"version": "1.1"})))


def test_error_duplicate_id():
    with pytest.raises(SquadFormatError, match=r"duplicate question id 'q1' in .* qas\[1\], first used in .* qas\[0\]"):
        list(read_squad(_squad_json(id="q1")))


def test_error_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"data": [\n  {"title": "x",,}\n]}', encoding="utf-8")
    with pytest.raises(T5kitError, match=r"broken.json: invalid JSON at line 2, column 17"):
        list(read_squad(path))


def test_error_bad_files(tmp_path):
    with pytest.raises(T5kitError, match=r"SQuAD file not found: .*missing.json"):
        list(read_squad(tmp_path / "missing.json"))

    not_gzip = tmp_path / "plain.json.gz"
    not_gzip.write_text("{}", encoding="utf-8")
    with pytest.raises(T5kitError, match=r"plain.json.gz: invalid or truncated gzip file"):
        list(read_squad(not_gzip))

    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"data": ["caf\xe9"]}'.encode("latin-1"))
    with pytest.raises(T5kitError, match=r"latin1.json: not UTF-8 text"):
        list(read_squad(latin1))


# Finding and downloading the official files.


def test_find_explicit_dir(shared_data, empty_locations, no_network):
    folder = shared_data / "squad_v1.1"
    assert find_squad("dev", folder) == folder / "dev-v1.1.json"
    assert find_squad("train", folder) == folder / "train-v1.1.reconstructed.json.gz"


def test_find_prefers_official_train(tmp_path, empty_locations, no_network):
    for name in ("train-v1.1.reconstructed.json.gz", "train-v1.1.json.gz", "train-v1.1.json"):
        (tmp_path / name).write_text("{}")
        assert find_squad("train", tmp_path) == tmp_path / name


def test_find_order(tmp_path, empty_locations, no_network, monkeypatch):
    explicit, from_env, cache = tmp_path / "explicit", tmp_path / "env", empty_locations / "squad"
    for folder in (explicit, from_env, cache):
        folder.mkdir(parents=True)
        (folder / "dev-v1.1.json").write_text("{}")
    monkeypatch.setenv(squad_download.SQUAD_DIR_ENV, str(from_env))

    assert find_squad("dev", explicit) == explicit / "dev-v1.1.json"
    assert find_squad("dev") == from_env / "dev-v1.1.json"
    monkeypatch.delenv(squad_download.SQUAD_DIR_ENV)
    assert find_squad("dev", tmp_path) == cache / "dev-v1.1.json"


def test_find_offline_error(tmp_path, empty_locations, no_network):
    with pytest.raises(T5kitError) as info:
        find_squad("dev", tmp_path)
    message = str(info.value)
    assert "network is unreachable" in message
    assert "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v1.1.json" in message
    assert "T5KIT_SQUAD_DIR" in message
    assert "--squad-dir" in message
    assert str(tmp_path) in message
    assert not list((empty_locations / "squad").iterdir())


def test_find_bad_arguments(tmp_path, empty_locations, no_network):
    with pytest.raises(T5kitError, match=r"is not a directory"):
        find_squad("dev", tmp_path / "typo")
    with pytest.raises(T5kitError, match=r"unknown SQuAD split 'test', expected one of train, dev"):
        find_squad("test", tmp_path)


def test_download_checks_sha256(shared_data, tmp_path):
    # A file:// URL exercises the download path without the network.
    official = shared_data / "squad_v1.1" / "dev-v1.1.json"
    path = download_squad("dev", tmp_path / "cache", url=official.as_uri())
    assert path == tmp_path / "cache" / "dev-v1.1.json"
    assert path.read_bytes() == official.read_bytes()
    assert [item.name for item in path.parent.iterdir()] == ["dev-v1.1.json"]


def test_download_sha256_mismatch(tmp_path):
    impostor = _write(tmp_path / "impostor.json", _squad_json())
    with pytest.raises(SquadDownloadError, match=r"has sha256 [0-9a-f]{64}, expected 95aa6a52"):
        download_squad("dev", tmp_path / "cache", url=impostor.as_uri())
    assert not list((tmp_path / "cache").iterdir())


def test_download_offline(tmp_path, no_network):
    with pytest.raises(SquadDownloadError, match=r"download of https://\S+/train-v1.1.json failed"):
        download_squad("train", tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())
