"""Read documents from text files: plain, gzip-compressed, JSON Lines and WikiText.

Formats:
- `plain`: with `plain_documents="line"` (the default) every line is one document, as in corpora
  stored one paragraph per line. With `"block"` a document is a run of non-blank lines, and blank
  lines separate documents.
- `jsonl`: one JSON object per line; the document is the string in `jsonl_field`.
- `wikitext`: a line ` = Title = ` (one `=` on each side) starts a new article, as in WikiText-2 and
  WikiText-103. Section headings (` = = Section = = `) stay inside their article.
- `auto`: `jsonl` for `.jsonl`/`.json`/`.ndjson`, `wikitext` for `.tokens`, `plain` otherwise.

A name ending in `.gz` is decompressed on the fly. Files are decoded line by line, so invalid UTF-8
is reported with its file and line number: by default as an `InvalidUtf8Error`, or with
`on_invalid_utf8="skip"` the line is left out and listed in `TextReadReport.invalid_lines`.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from t5kit.errors import T5kitError

logger = logging.getLogger(__name__)

Format = Literal["auto", "plain", "jsonl", "wikitext"]
PlainDocuments = Literal["line", "block"]
OnInvalidUtf8 = Literal["error", "skip"]

WIKITEXT_TITLE = re.compile(r"^ = [^=].* = $")
# At most this many skipped lines are kept by position; the count covers them all.
MAX_LISTED_INVALID_LINES = 100


class TextFileError(T5kitError):
    """A text file that cannot be read as documents: missing, malformed JSON, missing field."""


class InvalidUtf8Error(TextFileError):
    """A line that is not valid UTF-8."""


@dataclass(frozen=True)
class Document:
    """One document's text and where it starts (file and 1-based line)."""

    text: str
    path: str
    line: int


@dataclass
class TextReadReport:
    """Counts gathered while reading: empty documents and skipped invalid UTF-8 lines."""

    empty_documents: int = 0
    invalid_line_count: int = 0
    invalid_lines: list[tuple[str, int]] = field(default_factory=list)

    def record_invalid(self, path: str, line: int) -> None:
        self.invalid_line_count += 1
        if len(self.invalid_lines) < MAX_LISTED_INVALID_LINES:
            self.invalid_lines.append((path, line))


def detect_format(path: str | Path) -> str:
    """Return `jsonl`, `wikitext` or `plain` from the file name, ignoring a `.gz` suffix."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[: -len(".gz")]
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith(".tokens"):
        return "wikitext"
    return "plain"


def _open_binary(path: Path) -> BinaryIO:
    if not path.is_file():
        raise TextFileError(f"input file not found: {path}")
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _binary_lines(path: Path) -> Iterator[bytes]:
    with _open_binary(path) as stream:
        try:
            yield from stream
        except (OSError, EOFError) as error:
            # gzip raises BadGzipFile (an OSError) or EOFError for damaged or truncated files.
            raise TextFileError(f"cannot read {path}: {error}; check that the file is complete") from None


def read_lines(path: str | Path, on_invalid_utf8: OnInvalidUtf8, report: TextReadReport) -> Iterator[tuple[int, str]]:
    """Yield `(line_number, text)` for each line of a file without its line ending."""
    path = Path(path)
    for number, raw in enumerate(_binary_lines(path), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            if on_invalid_utf8 == "error":
                raise InvalidUtf8Error(
                    f"invalid UTF-8 in {path} at line {number}, byte {error.start + 1} of the line "
                    f"({raw[error.start:error.start + 4]!r}); fix the file or pass --on-invalid-utf8 skip "
                    "to leave such lines out"
                ) from None
            report.record_invalid(str(path), number)
            continue
        if number == 1:
            text = text.removeprefix("\ufeff")
        yield number, text.rstrip("\r\n")


def _plain_lines(path: Path, lines: Iterator[tuple[int, str]], report: TextReadReport) -> Iterator[Document]:
    for number, text in lines:
        if text.strip():
            yield Document(text.strip(), str(path), number)
        else:
            report.empty_documents += 1


def _blocks(path: Path, lines: Iterator[tuple[int, str]], starts_document) -> Iterator[Document]:
    """Group lines into documents, starting a new one at each line where `starts_document(text)` is true."""
    block: list[str] = []
    first_line = 0
    for number, text in lines:
        if starts_document(text) and block:
            yield Document("\n".join(block), str(path), first_line)
            block = []
        stripped = text.strip()
        if stripped:
            if not block:
                first_line = number
            block.append(stripped)
    if block:
        yield Document("\n".join(block), str(path), first_line)


def _blank_line_blocks(path: Path, lines: Iterator[tuple[int, str]]) -> Iterator[Document]:
    block: list[str] = []
    first_line = 0
    for number, text in lines:
        stripped = text.strip()
        if stripped:
            if not block:
                first_line = number
            block.append(stripped)
        elif block:
            yield Document("\n".join(block), str(path), first_line)
            block = []
    if block:
        yield Document("\n".join(block), str(path), first_line)


def _jsonl(path: Path, lines: Iterator[tuple[int, str]], field_name: str, report: TextReadReport) -> Iterator[Document]:
    for number, text in lines:
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            raise TextFileError(f"invalid JSON in {path} at line {number}: {error.msg}") from None
        if not isinstance(record, dict) or field_name not in record:
            keys = ", ".join(sorted(record)) if isinstance(record, dict) else type(record).__name__
            raise TextFileError(
                f"{path} line {number}: field '{field_name}' not found (found: {keys}); "
                "choose the text field with --jsonl-field"
            )
        value = record[field_name]
        if not isinstance(value, str):
            kind = type(value).__name__
            raise TextFileError(f"{path} line {number}: field '{field_name}' is {kind}, expected a string")
        if value.strip():
            yield Document(value, str(path), number)
        else:
            report.empty_documents += 1


def read_documents(
    path: str | Path,
    report: TextReadReport,
    text_format: Format = "auto",
    plain_documents: PlainDocuments = "line",
    jsonl_field: str = "text",
    on_invalid_utf8: OnInvalidUtf8 = "error",
) -> Iterator[Document]:
    """Yield the non-empty documents of one file; empty ones are counted in `report`."""
    path = Path(path)
    kind = detect_format(path) if text_format == "auto" else text_format
    lines = read_lines(path, on_invalid_utf8, report)
    if kind == "jsonl":
        yield from _jsonl(path, lines, jsonl_field, report)
    elif kind == "wikitext":
        yield from _blocks(path, lines, lambda text: WIKITEXT_TITLE.match(text) is not None)
    elif kind == "plain" and plain_documents == "line":
        yield from _plain_lines(path, lines, report)
    elif kind == "plain" and plain_documents == "block":
        yield from _blank_line_blocks(path, lines)
    else:
        raise TextFileError(f"unknown text format {kind!r} or plain document mode {plain_documents!r}")
