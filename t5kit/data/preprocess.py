"""Tokenize text files into train and validation indexed datasets.

`preprocess` reads documents (see `t5kit.data.text_files`), tokenizes them in chunks with a pool of
worker processes, and writes `PREFIX_train.bin/.idx`, `PREFIX_val.bin/.idx` and
`PREFIX_summary.json`. Documents are stored without EOS; the pretraining windows add it. The
tokenizer is `t5kit.tokenizer.T5Tokenizer`, so ids match transformers' T5 tokenizer.

The split is by document. `split_documents` picks `round(n * val_fraction)` documents (at least
one when the fraction is positive and there are two or more documents) with a generator seeded by
`seed`. The same inputs and seed therefore give the same split, whatever the number of workers.
Both splits keep the documents in input order.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from t5kit.data.indexed_dataset import IndexedDataset, IndexedDatasetWriter
from t5kit.data.text_files import Document, Format, OnInvalidUtf8, PlainDocuments, TextReadReport, read_documents
from t5kit.errors import T5kitError

logger = logging.getLogger(__name__)


class PreprocessError(T5kitError):
    """Preprocessing that cannot go on: no tokenizer, no documents, bad arguments."""


def load_tokenizer(path: str | Path):
    """Load the T5 tokenizer from a spiece.model file or a tokenizer folder."""
    from t5kit.tokenizer import T5Tokenizer

    return T5Tokenizer(path)


# Each worker process loads the tokenizer once, in `_init_worker`.
_worker_tokenizer = None


def _init_worker(tokenizer_path: str) -> None:
    global _worker_tokenizer
    _worker_tokenizer = load_tokenizer(tokenizer_path)


def _encode_chunk(texts: list[str]) -> list[np.ndarray]:
    return [np.asarray(ids, dtype=np.int32) for ids in _worker_tokenizer.encode_batch(texts)]


def _chunks(documents: Iterable[Document], size: int) -> Iterator[list[str]]:
    iterator = iter(documents)
    while chunk := [document.text for document in itertools.islice(iterator, size)]:
        yield chunk


def split_documents(num_documents: int, val_fraction: float, seed: int) -> np.ndarray:
    """Return a bool mask [num_documents] marking the validation documents."""
    if not 0.0 <= val_fraction < 1.0:
        raise PreprocessError(f"val_fraction must be in [0, 1), got {val_fraction}")
    num_val = int(round(num_documents * val_fraction))
    if val_fraction > 0 and num_documents >= 2:
        num_val = min(max(num_val, 1), num_documents - 1)
    mask = np.zeros(num_documents, dtype=bool)
    if num_val:
        mask[np.random.default_rng(seed).choice(num_documents, size=num_val, replace=False)] = True
    return mask


@dataclass
class SplitSummary:
    """Document and token counts of one output split."""

    documents: int
    tokens: int
    prefix: str


@dataclass
class PreprocessSummary:
    """Counts of the documents and tokens that `preprocess` read and wrote, saved as `PREFIX_summary.json`."""

    inputs: list[str]
    tokenizer: str
    vocab_size: int
    dtype: str
    seed: int
    val_fraction: float
    documents_read: int
    empty_documents: int
    invalid_utf8_lines: int
    invalid_utf8_positions: list[tuple[str, int]] = field(default_factory=list)
    splits: dict[str, SplitSummary] = field(default_factory=dict)


def _tokenize_all(
    documents: Iterable[Document],
    writer: IndexedDatasetWriter,
    tokenizer_path: str,
    workers: int,
    chunk_size: int,
    progress: bool,
) -> tuple[int, int]:
    """Tokenize documents into `writer`; return (documents read, documents with no tokens)."""
    from tqdm import tqdm

    chunks = _chunks(documents, chunk_size)
    read = empty = 0
    with tqdm(unit="doc", desc="tokenizing", disable=not progress) as bar:
        if workers > 1:
            # spawn, because fork can copy locks held by other threads of the parent (torch, tqdm).
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers, initializer=_init_worker, initargs=(tokenizer_path,)) as pool:
                for encoded in pool.imap(_encode_chunk, chunks):
                    read, empty = _write_chunk(writer, encoded, read, empty, bar)
        else:
            _init_worker(tokenizer_path)
            for encoded in map(_encode_chunk, chunks):
                read, empty = _write_chunk(writer, encoded, read, empty, bar)
    return read, empty


def _write_chunk(writer, encoded: list[np.ndarray], read: int, empty: int, bar) -> tuple[int, int]:
    for ids in encoded:
        if ids.size:
            writer.add_document(ids)
        else:
            empty += 1
    bar.update(len(encoded))
    return read + len(encoded), empty


def _write_splits(source: IndexedDataset, prefix: str, val_mask: np.ndarray) -> dict[str, SplitSummary]:
    splits = {}
    for name, selected in (("train", ~val_mask), ("val", val_mask)):
        split_prefix = f"{prefix}_{name}"
        with IndexedDatasetWriter(split_prefix, source.vocab_size, source.dtype, source.num_sentinels) as writer:
            for index in np.flatnonzero(selected):
                writer.add_document(source[int(index)])
        splits[name] = SplitSummary(writer.num_documents, writer.num_tokens, split_prefix)
    return splits


def preprocess(
    inputs: Sequence[str | Path],
    output_prefix: str | Path,
    tokenizer_path: str | Path,
    *,
    text_format: Format = "auto",
    plain_documents: PlainDocuments = "line",
    jsonl_field: str = "text",
    on_invalid_utf8: OnInvalidUtf8 = "error",
    workers: int = 1,
    val_fraction: float = 0.01,
    seed: int = 1234,
    chunk_size: int = 256,
    progress: bool = True,
) -> PreprocessSummary:
    """Tokenize `inputs` into `PREFIX_train` and `PREFIX_val` indexed datasets and a JSON summary."""
    if not inputs:
        raise PreprocessError("no input files given")
    if workers < 1 or chunk_size < 1:
        raise PreprocessError(f"workers and chunk_size must be at least 1, got {workers} and {chunk_size}")
    if not 0.0 <= val_fraction < 1.0:
        raise PreprocessError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if seed < 0:
        raise PreprocessError(f"seed must be 0 or more, got {seed}")
    prefix = str(output_prefix)
    if prefix.endswith(("/", os.sep)) or Path(prefix).is_dir():
        name = Path(prefix) / "corpus"
        raise PreprocessError(f"output prefix {prefix} is a folder; add a file name to it, such as {name}")
    tokenizer = load_tokenizer(tokenizer_path)
    report = TextReadReport()

    # Tokenize every document into a temporary dataset, because the split needs the document count.
    documents = itertools.chain.from_iterable(
        read_documents(path, report, text_format, plain_documents, jsonl_field, on_invalid_utf8) for path in inputs
    )
    with IndexedDatasetWriter(f"{prefix}_all.tmp", tokenizer.vocab_size, num_sentinels=tokenizer.num_sentinels) as writer:
        read, empty_tokenized = _tokenize_all(documents, writer, str(tokenizer_path), workers, chunk_size, progress)
    source = IndexedDataset(f"{prefix}_all.tmp")
    try:
        if source.num_documents == 0:
            raise PreprocessError(f"no non-empty documents found in {', '.join(map(str, inputs))}")
        splits = _write_splits(source, prefix, split_documents(source.num_documents, val_fraction, seed))
    finally:
        del source
        for path in (Path(f"{prefix}_all.tmp.bin"), Path(f"{prefix}_all.tmp.idx")):
            path.unlink(missing_ok=True)

    summary = PreprocessSummary(
        inputs=[str(path) for path in inputs],
        tokenizer=str(tokenizer.model_file),
        vocab_size=tokenizer.vocab_size,
        dtype=str(writer.dtype),
        seed=seed,
        val_fraction=val_fraction,
        documents_read=read + report.empty_documents,
        empty_documents=report.empty_documents + empty_tokenized,
        invalid_utf8_lines=report.invalid_line_count,
        invalid_utf8_positions=report.invalid_lines,
        splits=splits,
    )
    _log_and_save(summary, prefix)
    return summary


def _log_and_save(summary: PreprocessSummary, prefix: str) -> None:
    for name, split in summary.splits.items():
        logger.info("%s: %d documents, %d tokens -> %s.bin/.idx", name, split.documents, split.tokens, split.prefix)
    logger.info("skipped %d empty documents", summary.empty_documents)
    if summary.invalid_utf8_lines:
        first_positions = ", ".join(f"{path}:{line}" for path, line in summary.invalid_utf8_positions[:5])
        logger.warning("skipped %d lines of invalid UTF-8 (first: %s)", summary.invalid_utf8_lines, first_positions)
    path = Path(f"{prefix}_summary.json")
    path.write_text(json.dumps(asdict(summary), indent=2) + "\n", encoding="utf-8")
    logger.info("summary written to %s", path)
