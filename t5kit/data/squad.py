"""Read SQuAD v1.1 and v2.0 JSON files, and XQuAD, which uses the v1.1 format.

A SQuAD file is `{"version": ..., "data": [article, ...]}`. An article contains a `title` and
`paragraphs`, a paragraph contains a `context` and `qas`, and a question contains an `id`, the
`question` text and its gold `answers` (`text` and `answer_start`, a character offset into the context).
SQuAD v2.0 adds `is_impossible` to each question, with an empty `answers` list when it is true.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t5kit.errors import T5kitError

logger = logging.getLogger(__name__)


class SquadFormatError(T5kitError):
    """A SQuAD file whose JSON is valid but lacks a field or has a field of the wrong type."""


@dataclass(frozen=True)
class SquadExample:
    """One SQuAD question with its paragraph and all of its gold answers."""

    id: str
    """Question id, unique within the file."""
    title: str
    """Title of the Wikipedia article, or empty when the file has none."""
    context: str
    """The paragraph that contains the answers."""
    question: str
    """The question text."""
    answers: tuple[str, ...]
    """Gold answer texts in file order, duplicates kept (dev sets list one per annotator)."""
    answer_starts: tuple[int, ...]
    """Character offset of each gold answer in `context`, parallel to `answers`."""
    is_impossible: bool = False
    """True for a SQuAD v2.0 question that the paragraph does not answer."""


def load_json(path: str | os.PathLike, description: str = "SQuAD file") -> Any:
    """Parse a `.json` or gzip-compressed `.json.gz` file, raising T5kitError with the position of a syntax error."""
    path = Path(path)
    if not path.is_file():
        raise T5kitError(f"{description} not found: {path}")

    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as file:
                return json.load(file)
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except json.JSONDecodeError as error:
        raise T5kitError(
            f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from error
    except UnicodeDecodeError as error:
        raise T5kitError(f"{path}: not UTF-8 text (invalid byte at offset {error.start})") from error
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise T5kitError(f"{path}: invalid or truncated gzip file ({error})") from error


def read_squad(source: str | os.PathLike | Mapping[str, Any]) -> Iterator[SquadExample]:
    """Yield the questions of a SQuAD-format file, or of its already parsed JSON, in file order.

    Raises SquadFormatError naming the file, the article, paragraph and question index and the
    field, for example "missing 'question' in data[3] ('Super_Bowl_50') paragraphs[2] qas[5]".
    Validation runs as the questions are yielded, so an error can come after earlier examples.
    """
    if isinstance(source, Mapping):
        name, root = "<SQuAD data>", source
    else:
        name, root = str(source), load_json(source)

    if not isinstance(root, Mapping):
        raise SquadFormatError(f"{name}: expected a JSON object with a 'data' list, got {_type_name(root)}")
    articles = _get(root, "data", list, "the top-level object", name)

    seen: dict[str, str] = {}
    for article_index, article in enumerate(articles):
        where = f"data[{article_index}]"
        _check_object(article, where, name)
        title = _get(article, "title", str, where, name, required=False) or ""
        if title:
            where = f"{where} ({title!r})"
        paragraphs = _get(article, "paragraphs", list, where, name)

        for paragraph_index, paragraph in enumerate(paragraphs):
            paragraph_where = f"{where} paragraphs[{paragraph_index}]"
            _check_object(paragraph, paragraph_where, name)
            context = _get(paragraph, "context", str, paragraph_where, name)
            questions = _get(paragraph, "qas", list, paragraph_where, name)

            for question_index, qa in enumerate(questions):
                qa_where = f"{paragraph_where} qas[{question_index}]"
                example = _read_question(qa, title, context, qa_where, name)
                if example.id in seen:
                    raise SquadFormatError(
                        f"{name}: duplicate question id {example.id!r} in {qa_where}, first used in {seen[example.id]}"
                    )
                seen[example.id] = qa_where
                yield example


def _read_question(qa: Any, title: str, context: str, where: str, name: str) -> SquadExample:
    _check_object(qa, where, name)
    question_id = _get(qa, "id", str, where, name)
    question = _get(qa, "question", str, where, name)
    answers = _get(qa, "answers", list, where, name)
    is_impossible = _get(qa, "is_impossible", bool, where, name, required=False) or False

    texts, starts = [], []
    for answer_index, answer in enumerate(answers):
        answer_where = f"{where} answers[{answer_index}]"
        _check_object(answer, answer_where, name)
        texts.append(_get(answer, "text", str, answer_where, name))
        starts.append(_get(answer, "answer_start", int, answer_where, name))

    return SquadExample(
        id=question_id,
        title=title,
        context=context,
        question=question,
        answers=tuple(texts),
        answer_starts=tuple(starts),
        is_impossible=is_impossible,
    )


def _get(obj: Mapping[str, Any], key: str, kind: type, where: str, name: str, required: bool = True) -> Any:
    """Return `obj[key]` after checking its JSON type, or None when an optional key is absent."""
    if key not in obj:
        if not required:
            return None
        raise SquadFormatError(f"{name}: missing {key!r} in {where}")

    value = obj[key]
    # bool is a subclass of int in Python, but `true` is not a valid JSON offset.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SquadFormatError(
            f"{name}: {key!r} in {where} must be {_JSON_TYPE_NAMES[kind]}, got {_type_name(value)}"
        )
    return value


def _check_object(value: Any, where: str, name: str) -> None:
    if not isinstance(value, Mapping):
        raise SquadFormatError(f"{name}: {where} must be a JSON object, got {_type_name(value)}")


_JSON_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "an object"}


def _type_name(value: Any) -> str:
    """Name the JSON type of a parsed value, as the user sees it in the file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
