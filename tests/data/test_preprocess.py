"""Preprocessing real text: round trip against direct tokenization, splits, empty documents, bad UTF-8."""

from __future__ import annotations

import gzip
import itertools
import json
import re

import numpy as np
import pytest

from t5kit.cli.main import main
from t5kit.data.indexed_dataset import IndexedDataset
from t5kit.data.preprocess import PreprocessError, preprocess, split_documents
from t5kit.data.text_files import InvalidUtf8Error, TextFileError, TextReadReport, read_documents
from t5kit.tokenizer import T5Tokenizer


@pytest.fixture(scope="module")
def spiece(shared_data):
    path = shared_data / "t5_tokenizer" / "spiece.model"
    return path, T5Tokenizer(path)


@pytest.fixture(scope="module")
def text_slice(shared_data, tmp_path_factory):
    """The first 3 WikiText-2 articles and the first 150 SQuAD paragraphs (gzip), copied to tmp."""
    directory = tmp_path_factory.mktemp("text")
    lines = (shared_data / "english_text" / "wikitext-2" / "wiki.valid.tokens").read_text(encoding="utf-8").splitlines()
    titles = [i for i, line in enumerate(lines) if line.startswith(" = ") and not line.startswith(" = = ")]
    wiki = directory / "wiki.tokens"
    wiki.write_text("\n".join(lines[: titles[3]]) + "\n", encoding="utf-8")
    with gzip.open(shared_data / "english_text" / "squad_train_contexts.txt.gz", "rt", encoding="utf-8") as source:
        paragraphs = list(itertools.islice(source, 150))
    squad = directory / "squad.txt.gz"
    with gzip.open(squad, "wt", encoding="utf-8") as target:
        target.writelines(paragraphs)
    return wiki, squad


@pytest.fixture(scope="module")
def processed(text_slice, spiece, tmp_path_factory):
    prefix = tmp_path_factory.mktemp("out") / "corpus"
    options = {"workers": 2, "val_fraction": 0.1, "seed": 7, "chunk_size": 16, "progress": False}
    summary = preprocess(list(text_slice), prefix, spiece[0], **options)
    return prefix, summary


def expected_documents(paths, tokenizer) -> list[list[int]]:
    report = TextReadReport()
    texts = [doc.text for path in paths for doc in read_documents(path, report)]
    return [tokenizer.encode(text) for text in texts]


def test_round_trip_matches_direct_tokenization(text_slice, spiece, processed):
    prefix, _ = processed
    expected = expected_documents(text_slice, spiece[1])
    val_mask = split_documents(len(expected), 0.1, seed=7)
    train, val = IndexedDataset(f"{prefix}_train"), IndexedDataset(f"{prefix}_val")
    assert len(train) + len(val) == len(expected)
    assert [train[i].tolist() for i in range(len(train))] == [d for d, v in zip(expected, val_mask) if not v]
    assert [val[i].tolist() for i in range(len(val))] == [d for d, v in zip(expected, val_mask) if v]


def test_document_boundaries(text_slice, processed):
    prefix, summary = processed
    # 3 WikiText articles (headings start documents) and 150 one-line SQuAD paragraphs.
    assert summary.documents_read == 3 + 150
    assert summary.splits["train"].documents + summary.splits["val"].documents == 153
    assert summary.splits["val"].documents == 15
    train = IndexedDataset(f"{prefix}_train")
    assert train.num_tokens == summary.splits["train"].tokens


def test_uint16_and_summary_file(processed):
    prefix, summary = processed
    assert IndexedDataset(f"{prefix}_train").dtype == np.uint16
    assert summary.dtype == "uint16"
    saved = json.loads(open(f"{prefix}_summary.json", encoding="utf-8").read())
    assert saved["splits"]["val"]["documents"] == 15
    assert saved["vocab_size"] == 32100


def test_wikitext_headings_start_documents(text_slice):
    documents = list(read_documents(text_slice[0], TextReadReport()))
    assert len(documents) == 3
    assert documents[0].text.startswith("= Homarus gammarus =")
    assert all(" = = " not in doc.text.splitlines()[0] for doc in documents)
    assert documents[1].line > documents[0].line


def test_empty_documents_counted(tmp_path, spiece):
    plain = tmp_path / "lines.txt"
    plain.write_text("first document\n\n   \nsecond document\n", encoding="utf-8")
    jsonl = tmp_path / "records.jsonl"
    jsonl.write_text('{"body": "third"}\n{"body": ""}\n{"body": "fourth"}\n', encoding="utf-8")
    options = {"jsonl_field": "body", "val_fraction": 0.0, "progress": False}
    summary = preprocess([plain, jsonl], tmp_path / "out", spiece[0], **options)
    assert summary.empty_documents == 3
    assert summary.splits["train"].documents == 4
    assert summary.splits["val"].documents == 0


def test_block_documents(tmp_path):
    plain = tmp_path / "blocks.txt"
    plain.write_text("a b\nc d\n\n\ne f\n", encoding="utf-8")
    documents = list(read_documents(plain, TextReadReport(), plain_documents="block"))
    assert [(doc.text, doc.line) for doc in documents] == [("a b\nc d", 1), ("e f", 5)]


def bad_file(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good line\nanother good line\nbroken \xff\xfe line\nlast line\n")
    return path


def test_invalid_utf8_reported_with_line(tmp_path, spiece):
    with pytest.raises(InvalidUtf8Error, match=r"bad.txt at line 3"):
        preprocess([bad_file(tmp_path)], tmp_path / "out", spiece[0], progress=False)
    assert not (tmp_path / "out_train.bin").exists()
    assert not (tmp_path / "out_all.tmp.bin").exists()


def test_invalid_utf8_skip_and_report(tmp_path, spiece):
    path = bad_file(tmp_path)
    summary = preprocess([path], tmp_path / "out", spiece[0], on_invalid_utf8="skip", val_fraction=0.0, progress=False)
    assert summary.invalid_utf8_lines == 1
    assert summary.invalid_utf8_positions == [(str(path), 3)]
    assert summary.splits["train"].documents == 3


def test_jsonl_missing_field(tmp_path, spiece):
    path = tmp_path / "records.jsonl"
    path.write_text('{"text": "ok"}\n{"body": "no text"}\n', encoding="utf-8")
    with pytest.raises(TextFileError, match=r"line 2: field 'text' not found"):
        preprocess([path], tmp_path / "out", spiece[0], progress=False)


def test_split_fixed_by_seed():
    first = split_documents(1000, 0.05, seed=1)
    assert first.sum() == 50
    assert np.array_equal(first, split_documents(1000, 0.05, seed=1))
    assert not np.array_equal(first, split_documents(1000, 0.05, seed=2))
    assert split_documents(3, 0.01, seed=1).sum() == 1


def test_cli_reports_error(tmp_path, spiece, capsys):
    arguments = ["--input", str(bad_file(tmp_path)), "--output", str(tmp_path / "out")]
    code = main(["preprocess", *arguments, "--tokenizer", str(spiece[0].parent), "--no-progress"])
    assert code == 2
    assert "line 3" in capsys.readouterr().err


def test_cli_writes_splits(tmp_path, spiece):
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"document number {i}\n" for i in range(20)), encoding="utf-8")
    arguments = ["--input", str(path), "--output", str(tmp_path / "out"), "--tokenizer", str(spiece[0])]
    code = main(["preprocess", *arguments, "--val-fraction", "0.1", "--no-progress"])
    assert code == 0
    assert len(IndexedDataset(tmp_path / "out_train")) == 18
    assert IndexedDataset(tmp_path / "out_val").num_sentinels == T5Tokenizer(spiece[0]).num_sentinels == 100
    assert len(IndexedDataset(tmp_path / "out_val")) == 2


def test_truncated_gzip_reported(tmp_path):
    path = tmp_path / "cut.txt.gz"
    path.write_bytes(gzip.compress(b"line one\nline two\n" * 200)[:-30])
    with pytest.raises(TextFileError, match=r"cannot read .*cut.txt.gz"):
        list(read_documents(path, TextReadReport()))


def test_missing_input_reported(tmp_path):
    with pytest.raises(TextFileError, match=r"input file not found: .*absent.txt"):
        list(read_documents(tmp_path / "absent.txt", TextReadReport()))


def test_empty_validation_split_opens(tmp_path, spiece):
    path = tmp_path / "lines.txt"
    path.write_text("one\ntwo\n", encoding="utf-8")
    preprocess([path], tmp_path / "out", spiece[0], val_fraction=0.0, progress=False)
    val = IndexedDataset(tmp_path / "out_val")
    assert len(val) == 0
    assert val.num_tokens == 0


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--workers", "0", "argument --workers: must be at least 1, got 0"),
        ("--chunk-size", "-3", "argument --chunk-size: must be at least 1, got -3"),
        ("--val-fraction", "1.5", r"argument --val-fraction: must be in \[0, 1\), got 1.5"),
        ("--val-fraction", "half", "argument --val-fraction: expected a number, got 'half'"),
    ],
)
def test_cli_names_flag_of_bad_number(tmp_path, flag, value, message, capsys):
    path = tmp_path / "lines.txt"
    path.write_text("one document\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["preprocess", "--input", str(path), "--output", str(tmp_path / "out"), "--tokenizer", "x", flag, value])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out_train.bin").exists()


def test_folder_output_prefix_rejected(tmp_path, spiece):
    path = tmp_path / "lines.txt"
    path.write_text("one document\n", encoding="utf-8")
    with pytest.raises(PreprocessError, match="is a folder; add a file name to it"):
        preprocess([path], f"{tmp_path}/", spiece[0])
    assert not list(tmp_path.glob("*.bin"))


def test_negative_split_seed_rejected(tmp_path, spiece):
    path = tmp_path / "lines.txt"
    path.write_text("one document\n", encoding="utf-8")
    with pytest.raises(PreprocessError, match="seed must be 0 or more, got -1"):
        preprocess([path], tmp_path / "out", spiece[0], seed=-1)
    assert not list(tmp_path.glob("*.bin"))
