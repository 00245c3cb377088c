"""The T5 tokenizer: a SentencePiece model plus sentinel tokens, with the ids of transformers.

Id layout (T5, mT5): pad 0, eos 1, unk 2, then the rest of the SentencePiece pieces, then
`num_sentinels` sentinels counted down from the top: `<extra_id_i>` has id `vocab_size - 1 - i`.
With the original T5 model (32,000 pieces) that gives `<extra_id_0>` = 32099 and
`<extra_id_99>` = 32000. The model's embedding has `padded_vocab_size` rows (32,128), and no
text maps to the padding rows.

Encoding reproduces `T5Tokenizer` (alias `T5TokenizerFast`) of transformers 5.x, built from the
same spiece.model with `T5TokenizerFast.from_pretrained(folder)`:

1. The raw text is split at exact occurrences of `<pad>`, `</s>`, `<unk>` and `<extra_id_0>` to
   `<extra_id_{num_sentinels - 1}>`, and each occurrence becomes its single id. `<extra_id_05>` or
   `<extra_id_100>` (with 100 sentinels) are ordinary text.
2. Each chunk of text between them is normalized by the model's own rule. For T5 that is
   `nmt_nfkc`: NFKC, control characters such as U+0001 and U+007F removed (U+0000 stays and
   becomes unk), and tabs, newlines, carriage returns, no-break spaces and the other Unicode
   spaces mapped to a space. U+0085 (next line) is also treated as a space, because
   transformers splits words on it and SentencePiece does not. Runs of whitespace collapse into
   one word boundary, whitespace at either end of the chunk is dropped, and the chunk gets a
   leading "▁", so every chunk starts a new word.
3. A special-token string that appears only after normalization (for example the full-width
   `＜extra_id_0＞`) also becomes its id, as the transformers Unigram model picks those pieces.
4. Each word is segmented on its own. Where two orders of the same pieces tie ("444" as "4" "44"
   or "44" "4"), the float64 search of `t5kit.tokenizer.unigram` picks the one transformers picks.

Consequences: newlines, tabs and repeated spaces are not kept ("a\n\tb" encodes like "a b"), and
the spaces around a special token carry no information ("a <extra_id_0> b" and
"a<extra_id_0>b" give the same ids). Text right after a special token starts with "▁":
"Hello <extra_id_0>." is [8774, 32099, 3, 5], where 3 is "▁" and 5 is ".". The docstring of the
transformers 4.x T5Tokenizer calls this the legacy behaviour and shows [8774, 32099, 5] for
`legacy=False`. transformers 5.x builds T5 this way whatever `legacy` is set to.

NOTE: transformers normalizes per grapheme cluster, and where a character that NFKC changes
carries a combining mark (full-width "Ｆ" plus U+0308) it keeps only the changed character. This
module keeps SentencePiece's result ("F" plus the mark, here an unk), which is what T5 was
trained with. No text of SQuAD, XQuAD, Tatoeba or the Aozora novel contains such a sequence.

Decoding joins the pieces, turns "▁" into a space and drops the "▁" of the first piece, so
`decode(encode(text))` gives the normalized text. Special tokens decode to their strings, or to
nothing with `skip_special_tokens=True` (which also drops `<unk>`, as transformers does).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from t5kit.config.core import ConfigError, build, load_yaml
from t5kit.config.model import pad_vocab_size
from t5kit.errors import T5kitError
from t5kit.tokenizer.unigram import ExactUnigram, may_tie

logger = logging.getLogger(__name__)

MODEL_FILE = "spiece.model"
METADATA_FILE = "tokenizer.yaml"
DEFAULT_NUM_SENTINELS = 100
WORD_BOUNDARY = "▁"  # U+2581, SentencePiece's whitespace symbol
NEXT_LINE = "\x85"
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
_MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}  # TrainerSpec.ModelType values


class TokenizerError(T5kitError):
    """A tokenizer file that is missing, corrupt or not laid out as T5 expects."""


@dataclass
class TokenizerMetadata:
    """The contents of tokenizer.yaml, saved next to spiece.model."""

    num_sentinels: int = DEFAULT_NUM_SENTINELS
    """Sentinel tokens `<extra_id_i>` appended after the SentencePiece pieces."""
    num_pieces: int | None = None
    """Pieces in spiece.model, checked on load so that a swapped model file is caught."""
    vocab_size: int | None = None
    """Pieces plus sentinels, written for readers of the file and recomputed on load."""

    def __post_init__(self):
        if self.num_sentinels < 0:
            raise ConfigError(f"num_sentinels must be >= 0, got {self.num_sentinels}")


def sentinel_token(i: int) -> str:
    """Return the text of sentinel `i`, as T5 writes it."""
    return f"<extra_id_{i}>"


class T5Tokenizer:
    """Encode and decode text with T5 ids: a SentencePiece model plus sentinels.

    `path` is a SentencePiece .model file or a directory that contains spiece.model (and
    optionally tokenizer.yaml). `num_sentinels` defaults to tokenizer.yaml's value, else 100.
    """

    pad_id = PAD_ID
    eos_id = EOS_ID
    unk_id = UNK_ID

    def __init__(self, path: str | Path, num_sentinels: int | None = None):
        model_file, metadata = _locate(Path(path))
        if num_sentinels is None:
            num_sentinels = metadata.num_sentinels
        if num_sentinels < 0:
            raise TokenizerError(f"num_sentinels must be >= 0, got {num_sentinels}")

        self.model_file = model_file
        self._model_bytes = _read(model_file)
        self._processor = _load_processor(self._model_bytes, model_file)
        model = _parse(self._model_bytes, model_file)
        self._encoder = _load_processor(_without_normalization(model), model_file)
        _check_layout(self._processor, model_file)
        self.model_type = _MODEL_TYPES.get(model.trainer_spec.model_type, "unknown")
        self._exact = ExactUnigram(self._processor) if self.model_type == "unigram" else None
        if metadata.num_pieces is not None and metadata.num_pieces != self._processor.get_piece_size():
            raise TokenizerError(
                f"{model_file.parent / METADATA_FILE} records {metadata.num_pieces} pieces but {model_file} has "
                f"{self._processor.get_piece_size()}; save the tokenizer again with T5Tokenizer.save"
            )

        self.num_pieces = self._processor.get_piece_size()
        self.num_sentinels = num_sentinels
        self.vocab_size = self.num_pieces + num_sentinels
        self.padded_vocab_size = pad_vocab_size(self.vocab_size)

        # The piece of every id, so decoding is a list lookup. Sentinels run downward from the top.
        self._pieces = [self._processor.id_to_piece(i) for i in range(self.num_pieces)]
        self._pieces += [sentinel_token(i) for i in reversed(range(num_sentinels))]
        special_ids = [PAD_ID, EOS_ID, UNK_ID, *range(self.num_pieces, self.vocab_size)]
        self._special_ids = {self._pieces[i]: i for i in special_ids}
        longest_first = sorted(self._special_ids, key=len, reverse=True)
        self._special_pattern = re.compile("|".join(re.escape(piece) for piece in longest_first))
        self._special_first_chars = {piece[0] for piece in self._special_ids}

    @classmethod
    def from_dir(cls, directory: str | Path) -> T5Tokenizer:
        """Load a tokenizer saved by `save` (or any directory with a spiece.model)."""
        return cls(directory)

    def __repr__(self) -> str:
        return (
            f"T5Tokenizer({str(self.model_file)!r}, pieces={self.num_pieces}, sentinels={self.num_sentinels}, "
            f"vocab_size={self.vocab_size}, padded_vocab_size={self.padded_vocab_size})"
        )

    # ----- ids and pieces

    def sentinel_id(self, i: int) -> int:
        """Return the id of `<extra_id_i>`: vocab_size - 1 - i."""
        if not 0 <= i < self.num_sentinels:
            raise IndexError(f"sentinel index {i} is out of range; this tokenizer has {self.num_sentinels} sentinels")
        return self.vocab_size - 1 - i

    def is_special(self, token_id: int) -> bool:
        """Return whether an id is pad, eos, unk or a sentinel."""
        return token_id in (PAD_ID, EOS_ID, UNK_ID) or self.num_pieces <= token_id < self.vocab_size

    def word_starts(self) -> list[bool]:
        """Return, for every id, whether its piece starts a word ("▁" prefix) or is special."""
        return [piece.startswith(WORD_BOUNDARY) or self.is_special(i) for i, piece in enumerate(self._pieces)]

    def id_to_piece(self, token_id: int) -> str:
        """Return the piece of an id, such as "▁the" or "<extra_id_0>"."""
        if not 0 <= token_id < self.vocab_size:
            raise IndexError(f"token id {token_id} is out of range [0, {self.vocab_size})")
        return self._pieces[token_id]

    def piece_to_id(self, piece: str) -> int:
        """Return the id of a piece, or unk_id for a piece not in the vocabulary."""
        if piece in self._special_ids:
            return self._special_ids[piece]
        return self._processor.piece_to_id(piece)

    # ----- encoding

    def encode(self, text: str, add_eos: bool = False) -> list[int]:
        """Encode one text into ids, without eos unless `add_eos`."""
        return self.encode_batch([text], add_eos=add_eos)[0]

    def encode_batch(self, texts: Sequence[str], add_eos: bool = False) -> list[list[int]]:
        """Encode many texts with one SentencePiece call for all of their distinct words."""
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is a {type(text).__name__}, expected str")

        # Split the raw texts at special tokens, then normalize the chunks of text between them.
        raw_parts = [self._split_special(text) for text in texts]
        chunks = [part.replace(NEXT_LINE, " ") for parts in raw_parts for part in parts if isinstance(part, str)]
        normalized = iter(self._processor.normalize(chunks) if chunks else [])

        # Each text becomes a list of special ids (int) and normalized words (str). Normalization
        # can create special-token strings (from full-width brackets), so split at them again.
        items_per_text = []
        for parts in raw_parts:
            items: list[int | str] = []
            for part in parts:
                if isinstance(part, int):
                    items.append(part)
                    continue
                for fragment in self._split_special(next(normalized)):
                    if isinstance(fragment, int):
                        items.append(fragment)
                    else:
                        items.extend(_split_words(fragment))
            items_per_text.append(items)

        # Encode word by word, as transformers does. A lattice over a whole text would add its
        # scores in float32 and lose the precision that picks a word's pieces.
        words = {item for items in items_per_text for item in items if isinstance(item, str)}
        ids_of_word = self._encode_words(list(words))

        ids_per_text = []
        for items in items_per_text:
            ids = []
            for item in items:
                if isinstance(item, int):
                    ids.append(item)
                else:
                    ids.extend(ids_of_word[item])
            if add_eos:
                ids.append(EOS_ID)
            ids_per_text.append(ids)
        return ids_per_text

    def _encode_words(self, words: list[str]) -> dict[str, list[int]]:
        """Encode distinct normalized words, with the float64 search for a Unigram model's words that may tie."""
        ids_of_word = dict(zip(words, self._encoder.encode(words))) if words else {}
        if self._exact is not None:
            for word in words:
                if may_tie(word):
                    ids_of_word[word] = self._exact.encode(word)
        return ids_of_word

    def _split_special(self, text: str) -> list[str | int]:
        """Split text into chunks (str) and special-token ids (int), dropping empty chunks."""
        if not any(char in text for char in self._special_first_chars):
            return [text] if text else []
        parts: list[str | int] = []
        start = 0
        for match in self._special_pattern.finditer(text):
            if match.start() > start:
                parts.append(text[start : match.start()])
            parts.append(self._special_ids[match.group()])
            start = match.end()
        if start < len(text):
            parts.append(text[start:])
        return parts

    # ----- decoding

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Decode ids into text, skipping ids outside [0, vocab_size) as transformers does.

        The skip lets callers pass model output that reaches the padding rows or labels with -100.
        """
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        pieces = []
        for token_id in ids:
            token_id = int(token_id)
            if not 0 <= token_id < self.vocab_size:
                continue
            if skip_special_tokens and self.is_special(token_id):
                continue
            pieces.append(self._pieces[token_id])
        if not pieces:
            return ""
        # The first piece loses every "▁" (the dummy prefix), as the Metaspace decoder does.
        return pieces[0].replace(WORD_BOUNDARY, "") + "".join(pieces[1:]).replace(WORD_BOUNDARY, " ")

    def decode_batch(self, batch: Iterable[Iterable[int]], skip_special_tokens: bool = False) -> list[str]:
        """Decode each sequence of ids in a batch."""
        if hasattr(batch, "tolist"):
            batch = batch.tolist()
        return [self.decode(ids, skip_special_tokens=skip_special_tokens) for ids in batch]

    # ----- serialization

    def save(self, directory: str | Path) -> Path:
        """Write spiece.model and tokenizer.yaml into a directory and return the directory."""
        import yaml

        directory = Path(directory)
        metadata = {"num_sentinels": self.num_sentinels, "num_pieces": self.num_pieces, "vocab_size": self.vocab_size}
        try:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / MODEL_FILE).write_bytes(self._model_bytes)
            header = "# T5 tokenizer: the pieces of spiece.model, then sentinel <extra_id_i> at vocab_size - 1 - i\n"
            (directory / METADATA_FILE).write_text(header + yaml.safe_dump(metadata, sort_keys=False), encoding="utf-8")
        except OSError as error:
            raise TokenizerError(f"cannot save the tokenizer to {directory}: {error.strerror}") from error
        return directory


def _split_words(fragment: str) -> list[str]:
    """Split normalized text before each "▁", so "▁a▁b" gives ["▁a", "▁b"] and "b▁c" gives ["b", "▁c"]."""
    first, *rest = fragment.split(WORD_BOUNDARY)
    words = [first] if first else []
    words += [WORD_BOUNDARY + word for word in rest]
    return words


def _locate(path: Path) -> tuple[Path, TokenizerMetadata]:
    """Return the model file and metadata for a .model file or a tokenizer directory."""
    if path.is_dir():
        model_file = path / MODEL_FILE
        if not model_file.is_file():
            raise TokenizerError(
                f"tokenizer directory {path} contains no {MODEL_FILE}; pass a SentencePiece .model file "
                "or a directory written by T5Tokenizer.save or `t5kit tokenizer train`"
            )
        metadata_file = path / METADATA_FILE
        metadata = TokenizerMetadata()
        if metadata_file.is_file():
            metadata = build(TokenizerMetadata, load_yaml(metadata_file))
        return model_file, metadata
    if not path.is_file():
        raise TokenizerError(
            f"tokenizer not found: {path}; pass a SentencePiece .model file or a directory that contains {MODEL_FILE}"
        )
    return path, TokenizerMetadata()


def _read(model_file: Path) -> bytes:
    try:
        return model_file.read_bytes()
    except OSError as error:
        raise TokenizerError(f"cannot read the tokenizer model {model_file}: {error.strerror}") from error


def _load_processor(model_bytes: bytes, model_file: Path) -> spm.SentencePieceProcessor:
    try:
        return spm.SentencePieceProcessor(model_proto=model_bytes)
    except (RuntimeError, OSError) as error:
        raise TokenizerError(
            f"cannot load {model_file} as a SentencePiece model ({error}); the file is corrupt or of another "
            "format, so copy spiece.model again or train one with `t5kit tokenizer train`"
        ) from error


def _parse(model_bytes: bytes, model_file: Path):
    """Return the SentencePiece ModelProto of a model file's bytes."""
    from google.protobuf.message import DecodeError
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    try:
        model.ParseFromString(model_bytes)
    except DecodeError as error:
        raise TokenizerError(f"cannot parse {model_file} as a SentencePiece model: {error}") from error
    return model


def _without_normalization(model) -> bytes:
    """Return a copy of the model with an identity normalizer, for text that is normalized already.

    The copy adds no "▁" prefix and keeps whitespace, so a fragment that follows a special
    token inside a word is encoded as the rest of that word.
    """
    model = type(model).FromString(model.SerializeToString())
    spec = model.normalizer_spec
    spec.name = "identity"
    spec.precompiled_charsmap = b""
    spec.add_dummy_prefix = False
    spec.remove_extra_whitespaces = False
    return model.SerializeToString()


def _check_layout(processor: spm.SentencePieceProcessor, model_file: Path) -> None:
    """Reject models whose special ids differ from T5's (pad 0, eos 1, unk 2) or that use byte fallback."""
    found = (processor.pad_id(), processor.eos_id(), processor.unk_id())
    if found != (PAD_ID, EOS_ID, UNK_ID):
        raise TokenizerError(
            f"{model_file} has pad, eos and unk ids {found}, but T5 needs (0, 1, 2); "
            "train a T5 vocabulary with `t5kit tokenizer train`"
        )
    if any(processor.is_byte(i) for i in range(processor.get_piece_size())):
        raise TokenizerError(f"{model_file} uses byte-fallback pieces, which T5 tokenizers do not decode")
