"""A tokenized corpus on disk: token ids in `PREFIX.bin`, document offsets in `PREFIX.idx`.

`PREFIX.bin` is the flat array of token ids of every document, in order, with no separators.
`PREFIX.idx` is a 48-byte little-endian header followed by `num_documents + 1` int64 offsets:

    magic        8 bytes  b"T5KITIDX"
    version      uint32   1
    dtype code   uint32   1 = uint16, 2 = int32 (the dtype of the ids in .bin)
    vocab size   uint32   size of the tokenizer's vocabulary, sentinels included
    sentinels    uint32   the tokenizer's sentinel count plus one; 0 when not recorded
    documents    uint64   number of documents
    tokens       uint64   number of tokens in .bin
    (reserved    uint64   0)

Document `i` is `bin[offsets[i]:offsets[i + 1]]`. Both files are opened with `np.memmap`, so
reading a document touches only its own pages.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from t5kit.errors import T5kitError

MAGIC = b"T5KITIDX"
VERSION = 1
HEADER = struct.Struct("<8sIIIIQQQ")
DTYPE_CODES = {1: np.dtype(np.uint16), 2: np.dtype(np.int32)}
CODE_OF_DTYPE = {dtype: code for code, dtype in DTYPE_CODES.items()}


class IndexedDatasetError(T5kitError):
    """A missing, truncated or corrupt `.bin`/`.idx` pair."""


def token_dtype(vocab_size: int) -> np.dtype:
    """Return uint16 when every id of a `vocab_size` vocabulary fits in it, else int32."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.int32)


def dataset_paths(prefix: str | Path) -> tuple[Path, Path]:
    """Return the `.bin` and `.idx` paths of the dataset at `prefix`."""
    prefix = str(prefix)
    return Path(prefix + ".bin"), Path(prefix + ".idx")


class IndexedDatasetWriter:
    """Append documents to a new `.bin` file and write the `.idx` on `close`.

    Use as a context manager; on an exception the partial files are removed.
    """

    def __init__(
        self, prefix: str | Path, vocab_size: int, dtype: np.dtype | None = None, num_sentinels: int | None = None
    ):
        self.bin_path, self.idx_path = dataset_paths(prefix)
        self.vocab_size = vocab_size
        self.num_sentinels = num_sentinels
        self.dtype = np.dtype(dtype) if dtype is not None else token_dtype(vocab_size)
        if self.dtype not in CODE_OF_DTYPE:
            raise ValueError(f"unsupported token dtype {self.dtype}; use uint16 or int32")
        if self.dtype == np.uint16 and vocab_size > 2**16:
            raise ValueError(f"a vocabulary of {vocab_size} ids does not fit in uint16; use int32")
        self.bin_path.parent.mkdir(parents=True, exist_ok=True)
        self._bin = open(self.bin_path, "wb")
        self._offsets = [0]

    @property
    def num_documents(self) -> int:
        return len(self._offsets) - 1

    @property
    def num_tokens(self) -> int:
        return self._offsets[-1]

    def add_document(self, ids) -> None:
        """Append one document; ids must lie in [0, vocab_size)."""
        array = np.asarray(ids)
        if array.ndim != 1:
            raise ValueError(f"a document must be a 1-D sequence of ids, got shape {array.shape}")
        if array.size and (array.min() < 0 or array.max() >= self.vocab_size):
            raise ValueError(
                f"token id out of range [0, {self.vocab_size}) in document {self.num_documents}: "
                f"min {array.min()}, max {array.max()}"
            )
        self._bin.write(array.astype(self.dtype, copy=False).tobytes())
        self._offsets.append(self._offsets[-1] + int(array.size))

    def close(self) -> None:
        """Flush the `.bin` file and write the `.idx` file."""
        if self._bin.closed:
            return
        self._bin.close()
        header = HEADER.pack(
            MAGIC,
            VERSION,
            CODE_OF_DTYPE[self.dtype],
            self.vocab_size,
            0 if self.num_sentinels is None else self.num_sentinels + 1,
            self.num_documents,
            self.num_tokens,
            0,
        )
        with open(self.idx_path, "wb") as index_file:
            index_file.write(header)
            index_file.write(np.asarray(self._offsets, dtype=np.int64).tobytes())

    def discard(self) -> None:
        """Close and remove the partial files."""
        if not self._bin.closed:
            self._bin.close()
        for path in (self.bin_path, self.idx_path):
            path.unlink(missing_ok=True)

    def __enter__(self) -> IndexedDatasetWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


class IndexedDataset:
    """A read-only, memory-mapped view of a `.bin`/`.idx` pair; `dataset[i]` is document i."""

    def __init__(self, prefix: str | Path):
        self.prefix = str(prefix)
        self.bin_path, self.idx_path = dataset_paths(prefix)
        header = self._read_header()
        _, _, dtype_code, self.vocab_size, sentinels, self.num_documents, self.num_tokens, _ = header
        self.num_sentinels = sentinels - 1 if sentinels else None  # None: written without the count
        self.dtype = DTYPE_CODES[dtype_code]
        self.offsets = np.memmap(self.idx_path, dtype=np.int64, mode="r", offset=HEADER.size)
        self._check_offsets()
        self._check_bin_size()
        # np.memmap rejects empty files, so an empty corpus gets an empty array instead.
        if self.num_tokens:
            self.tokens = np.memmap(self.bin_path, dtype=self.dtype, mode="r", shape=(self.num_tokens,))
        else:
            self.tokens = np.zeros(0, dtype=self.dtype)

    def _read_header(self) -> tuple:
        if not self.idx_path.is_file():
            raise IndexedDatasetError(f"index file not found: {self.idx_path}; run `t5kit preprocess` to create it")
        if not self.bin_path.is_file():
            raise IndexedDatasetError(f"token file not found: {self.bin_path}; it must sit beside {self.idx_path}")

        with open(self.idx_path, "rb") as index_file:
            raw = index_file.read(HEADER.size)
        if len(raw) < HEADER.size:
            raise IndexedDatasetError(
                f"truncated index file {self.idx_path}: {len(raw)} bytes, shorter than the "
                f"{HEADER.size}-byte header; rerun `t5kit preprocess`"
            )

        header = HEADER.unpack(raw)
        magic, version, dtype_code = header[:3]
        if magic != MAGIC:
            raise IndexedDatasetError(
                f"{self.idx_path} is not a t5kit index file (magic {magic!r}, expected {MAGIC!r})"
            )
        if version != VERSION:
            raise IndexedDatasetError(
                f"{self.idx_path} has format version {version}; this t5kit reads version {VERSION}. "
                "Rerun `t5kit preprocess` with this version"
            )
        if dtype_code not in DTYPE_CODES:
            raise IndexedDatasetError(f"{self.idx_path}: invalid dtype code {dtype_code} (expected 1 or 2)")

        expected_size = HEADER.size + 8 * (header[5] + 1)
        actual_size = os.path.getsize(self.idx_path)
        if actual_size != expected_size:
            raise IndexedDatasetError(
                f"corrupt index file {self.idx_path}: {actual_size} bytes, expected {expected_size} for "
                f"{header[5]} documents; rerun `t5kit preprocess`"
            )
        return header

    def _check_offsets(self) -> None:
        offsets = self.offsets
        if offsets[0] != 0 or offsets[-1] != self.num_tokens or np.any(np.diff(offsets) < 0):
            raise IndexedDatasetError(
                f"corrupt index file {self.idx_path}: document offsets must rise from 0 to the token "
                f"count {self.num_tokens}; rerun `t5kit preprocess`"
            )

    def _check_bin_size(self) -> None:
        expected_size = self.num_tokens * self.dtype.itemsize
        actual_size = os.path.getsize(self.bin_path)
        if actual_size != expected_size:
            raise IndexedDatasetError(
                f"truncated or corrupt token file {self.bin_path}: {actual_size} bytes, expected "
                f"{expected_size} ({self.num_tokens} tokens of {self.dtype}); rerun `t5kit preprocess`"
            )

    def __len__(self) -> int:
        return self.num_documents

    def __getitem__(self, index: int) -> np.ndarray:
        if not -self.num_documents <= index < self.num_documents:
            raise IndexError(f"document {index} out of range for {self.num_documents} documents in {self.prefix}")
        index %= self.num_documents
        return self.tokens[self.offsets[index] : self.offsets[index + 1]]

    @property
    def document_lengths(self) -> np.ndarray:
        """Tokens per document, int64 [num_documents]."""
        return np.diff(self.offsets)

    def __repr__(self) -> str:
        return (
            f"IndexedDataset({self.prefix!r}, documents={self.num_documents}, tokens={self.num_tokens}, "
            f"dtype={self.dtype}, vocab_size={self.vocab_size})"
        )
