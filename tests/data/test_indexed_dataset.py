"""Indexed dataset: round trip, dtype choice, clear errors for damaged files, raw windows."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from t5kit.data.indexed_dataset import IndexedDataset, IndexedDatasetError, IndexedDatasetWriter, token_dtype
from t5kit.data.windows import TokenWindows

DOCUMENTS = [[5, 6, 7], [8], [9, 10, 11, 12, 13], [14, 15]]


def write(prefix, documents=DOCUMENTS, vocab_size=32100):
    with IndexedDatasetWriter(prefix, vocab_size) as writer:
        for document in documents:
            writer.add_document(document)
    return IndexedDataset(prefix)


def test_round_trip(tmp_path):
    dataset = write(tmp_path / "corpus")
    assert len(dataset) == 4
    assert dataset.num_tokens == 11
    assert [dataset[i].tolist() for i in range(4)] == DOCUMENTS
    assert dataset[-1].tolist() == [14, 15]
    assert dataset.document_lengths.tolist() == [3, 1, 5, 2]
    assert dataset.vocab_size == 32100


def test_dtype_uint16_and_int32(tmp_path):
    assert token_dtype(32100) == np.uint16
    assert token_dtype(65536) == np.uint16
    assert token_dtype(250112) == np.int32
    assert write(tmp_path / "small").tokens.dtype == np.uint16
    large = write(tmp_path / "large", [[70000, 3]], vocab_size=250112)
    assert large.tokens.dtype == np.int32
    assert large[0].tolist() == [70000, 3]
    assert (tmp_path / "small.bin").stat().st_size == 11 * 2


def test_out_of_range_id_rejected(tmp_path):
    with pytest.raises(ValueError, match="out of range"):
        write(tmp_path / "bad", [[1, 32100]])
    assert not (tmp_path / "bad.bin").exists()


def test_missing_files(tmp_path):
    with pytest.raises(IndexedDatasetError, match="index file not found: .*nothing.idx"):
        IndexedDataset(tmp_path / "nothing")
    write(tmp_path / "corpus")
    (tmp_path / "corpus.bin").unlink()
    with pytest.raises(IndexedDatasetError, match="corpus.bin"):
        IndexedDataset(tmp_path / "corpus")


def test_truncated_bin(tmp_path):
    write(tmp_path / "corpus")
    path = tmp_path / "corpus.bin"
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(IndexedDatasetError, match=r"truncated or corrupt token file .*corpus.bin"):
        IndexedDataset(tmp_path / "corpus")


def test_truncated_idx(tmp_path):
    write(tmp_path / "corpus")
    path = tmp_path / "corpus.idx"
    data = path.read_bytes()
    path.write_bytes(data[:-8])
    with pytest.raises(IndexedDatasetError, match=r"corrupt index file .*corpus.idx"):
        IndexedDataset(tmp_path / "corpus")
    path.write_bytes(data[:20])
    with pytest.raises(IndexedDatasetError, match=r"truncated index file .*corpus.idx"):
        IndexedDataset(tmp_path / "corpus")


def test_bad_magic_and_version(tmp_path):
    write(tmp_path / "corpus")
    path = tmp_path / "corpus.idx"
    data = path.read_bytes()
    path.write_bytes(b"NOTMAGIC" + data[8:])
    with pytest.raises(IndexedDatasetError, match="not a t5kit index file"):
        IndexedDataset(tmp_path / "corpus")
    path.write_bytes(data[:8] + struct.pack("<I", 99) + data[12:])
    with pytest.raises(IndexedDatasetError, match="format version 99"):
        IndexedDataset(tmp_path / "corpus")


def test_corrupt_offsets(tmp_path):
    write(tmp_path / "corpus")
    path = tmp_path / "corpus.idx"
    data = bytearray(path.read_bytes())
    # Second offset (end of document 0) set past the token count.
    data[48 + 8 : 48 + 16] = struct.pack("<q", 1000)
    path.write_bytes(bytes(data))
    with pytest.raises(IndexedDatasetError, match="document offsets"):
        IndexedDataset(tmp_path / "corpus")


def test_concat_windows_follow_stream(tmp_path):
    dataset = write(tmp_path / "corpus")
    windows = TokenWindows(dataset, window_length=4, layout="concat", eos_id=1)
    stream = [5, 6, 7, 1, 8, 1, 9, 10, 11, 12, 13, 1, 14, 15, 1]
    assert len(windows) == len(stream) // 4
    assert [windows[i].tolist() for i in range(len(windows))] == [stream[i : i + 4] for i in range(0, 12, 4)]


def test_document_windows_never_cross(tmp_path):
    dataset = write(tmp_path / "corpus")
    windows = TokenWindows(dataset, window_length=2, layout="document")
    # Document [8] is shorter than 2 tokens and [13] is the 1-token end of [9..13]: both dropped.
    assert [windows[i].tolist() for i in range(len(windows))] == [[5, 6], [9, 10], [11, 12], [14, 15]]


def test_window_index_out_of_range(tmp_path):
    windows = TokenWindows(write(tmp_path / "corpus"), window_length=4)
    with pytest.raises(IndexError):
        windows[len(windows)]
