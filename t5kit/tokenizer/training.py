"""Train a SentencePiece vocabulary with T5's special ids from text, gzip and JSON Lines files.

The trained model has pad 0, eos 1, unk 2 and no bos, like the T5 and mT5 vocabularies. The
sentinels `<extra_id_i>` are not learned pieces: `T5Tokenizer` appends them after the pieces.
Input lines stream from the files into the trainer, which keeps a uniform sample of
`input_sentence_size` of them, so a corpus larger than memory needs no temporary copy.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from t5kit.config.core import ConfigError, build
from t5kit.tokenizer.sentencepiece_tokenizer import (
    DEFAULT_NUM_SENTINELS,
    EOS_ID,
    MODEL_FILE,
    PAD_ID,
    UNK_ID,
    T5Tokenizer,
    TokenizerError,
)

logger = logging.getLogger(__name__)


@dataclass
class TokenizerTrainConfig:
    """Options of `train_tokenizer`. The defaults give an English T5-style unigram vocabulary."""

    vocab_size: int = 32000
    """Pieces to learn, counting pad, eos and unk. The sentinels come on top of these."""
    model_type: Literal["unigram", "bpe"] = "unigram"
    """SentencePiece algorithm: unigram language model (T5, mT5) or byte-pair encoding."""
    character_coverage: float = 1.0
    """Fraction of the input characters that get their own piece, so the rarest others map to unk.
    Use 1.0 for English and other small alphabets, 0.9995 for text rich in CJK characters."""
    input_sentence_size: int = 10_000_000
    """Lines the trainer samples uniformly from the input, or 0 to train on every line."""
    shuffle_input_sentence: bool = True
    """Sample lines at random instead of taking the first `input_sentence_size` lines."""
    max_sentence_length: int = 16384
    """Maximum line length in bytes. The trainer skips longer lines."""
    jsonl_field: str = "text"
    """Field that contains the text in each JSON Lines record (.jsonl, .jsonl.gz, .ndjson)."""
    normalization_rule_name: Literal["nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf", "identity"] = "nmt_nfkc"
    """Unicode normalization stored in the model (T5 and mT5 use nmt_nfkc)."""
    split_digits: bool = False
    """Give every digit its own piece (T5 and mT5 do not)."""
    num_sentinels: int = DEFAULT_NUM_SENTINELS
    """Sentinels `<extra_id_i>` the saved tokenizer appends after the pieces."""
    num_threads: int | None = None
    """Trainer threads, or None for every CPU core."""
    seed: int = 0
    """Seed of SentencePiece's random generator (line sampling)."""

    def __post_init__(self):
        if self.vocab_size < 4:
            raise ConfigError(f"vocab_size must be at least 4 (pad, eos, unk and one piece), got {self.vocab_size}")
        if not 0.0 < self.character_coverage <= 1.0:
            raise ConfigError(f"character_coverage must be in (0, 1], got {self.character_coverage}")
        if self.input_sentence_size < 0:
            raise ConfigError(f"input_sentence_size must be >= 0 (0 means every line), got {self.input_sentence_size}")
        if self.max_sentence_length < 1:
            raise ConfigError(f"max_sentence_length must be >= 1 byte, got {self.max_sentence_length}")
        if self.num_sentinels < 0:
            raise ConfigError(f"num_sentinels must be >= 0, got {self.num_sentinels}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ConfigError(f"num_threads must be >= 1 or null for every core, got {self.num_threads}")
        if not self.jsonl_field:
            raise ConfigError("jsonl_field must be a non-empty field name")


def train_tokenizer(
    files: Sequence[str | Path],
    output_dir: str | Path,
    vocab_size: int = 32000,
    model_type: str = "unigram",
    **options,
) -> T5Tokenizer:
    """Train a T5 vocabulary on text files, save spiece.model and tokenizer.yaml, and return it.

    `options` are the other fields of `TokenizerTrainConfig`, such as `character_coverage=0.9995`
    or `jsonl_field="content"`. Files ending in .gz are read through gzip, and .jsonl files
    yield the lines of one field per record.
    """
    import sentencepiece as spm

    config = build(TokenizerTrainConfig, {"vocab_size": vocab_size, "model_type": model_type, **options})
    files = [Path(path) for path in files]
    _check_files(files)

    lines = LineCounter(iter_lines(files, config.jsonl_field))
    model = io.BytesIO()
    spm.set_random_generator_seed(config.seed)
    logger.info("training a %s vocabulary of %d pieces on %d files", config.model_type, config.vocab_size, len(files))
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=lines,
            model_writer=model,
            **_trainer_options(config),
        )
    except RuntimeError as error:
        if lines.error is not None:  # the input reader failed, so raise its own error
            raise lines.error from None
        if lines.count == 0:
            raise TokenizerError(f"no text found in {', '.join(map(str, files))}; the files are empty") from None
        raise TokenizerError(f"SentencePiece training failed: {error}") from error

    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / MODEL_FILE).write_bytes(model.getvalue())
    except OSError as error:
        raise TokenizerError(f"cannot write the tokenizer to {output_dir}: {error.strerror}") from error
    tokenizer = T5Tokenizer(output_dir / MODEL_FILE, num_sentinels=config.num_sentinels)
    tokenizer.save(output_dir)
    logger.info("read %d input lines and saved %r", lines.count, tokenizer)
    return tokenizer


def _trainer_options(config: TokenizerTrainConfig) -> dict:
    """Return SentencePieceTrainer options for a T5 layout: pad 0, eos 1, unk 2, no bos."""
    return {
        "vocab_size": config.vocab_size,
        "model_type": config.model_type,
        "character_coverage": config.character_coverage,
        "input_sentence_size": config.input_sentence_size,
        "shuffle_input_sentence": config.shuffle_input_sentence,
        "max_sentence_length": config.max_sentence_length,
        "normalization_rule_name": config.normalization_rule_name,
        "split_digits": config.split_digits,
        "num_threads": config.num_threads or os.cpu_count() or 1,
        "pad_id": PAD_ID,
        "eos_id": EOS_ID,
        "unk_id": UNK_ID,
        "bos_id": -1,
        "pad_piece": "<pad>",
        "eos_piece": "</s>",
        "unk_piece": "<unk>",
        # SentencePiece logs its progress at INFO, which is shown only when t5kit logs DEBUG.
        "minloglevel": 0 if logger.isEnabledFor(logging.DEBUG) else 1,
    }


def _check_files(files: list[Path]) -> None:
    if not files:
        raise TokenizerError("no input files given; pass one or more text, .gz or .jsonl files")
    for path in files:
        if not path.is_file():
            raise TokenizerError(f"input file not found: {path}")


class LineCounter:
    """Wrap a line iterator, counting lines and keeping the error that stopped it.

    SentencePiece turns an exception raised inside the iterator into a RuntimeError with only
    its text, so the original error is kept here and raised again after training stops.
    """

    def __init__(self, lines: Iterator[str]):
        self._lines = lines
        self.count = 0
        self.error: Exception | None = None

    def __iter__(self) -> LineCounter:
        return self

    def __next__(self) -> str:
        try:
            line = next(self._lines)
        except StopIteration:
            raise
        except Exception as error:  # any reader error, kept whole for train_tokenizer to raise
            self.error = error
            raise
        self.count += 1
        return line


def iter_lines(files: Sequence[str | Path], jsonl_field: str = "text") -> Iterator[str]:
    """Yield the non-empty lines of the documents that `t5kit preprocess` would read from `files`.

    The reader is `t5kit.data.text_files`, so the tokenizer learns from the same text that is
    tokenized later: plain and gzip files line by line, the `jsonl_field` of each .jsonl/.json
    record, WikiText articles. A document of several lines gives each of its lines.
    """
    from t5kit.data.text_files import TextReadReport, read_documents

    report = TextReadReport()
    for path in files:
        for document in read_documents(path, report, jsonl_field=jsonl_field):
            for line in document.text.splitlines():
                if line.strip():
                    yield line
