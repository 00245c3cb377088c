"""Float64 Unigram segmentation of single words, for the ties where SentencePiece's float32 differs.

SentencePiece and the Unigram model of Hugging Face tokenizers run the same Viterbi search over
the pieces of a word, but SentencePiece adds the piece scores in float32 and tokenizers in
float64. When two segmentations use the same pieces in another order, their scores are equal up
to rounding, and rounding decides which one wins: SentencePiece splits "444" as "44" "4", and
tokenizers as "4" "44". `ExactUnigram` reproduces the tokenizers search (tokenizers 0.23,
`Unigram::encode_optimized`) for the words where such a tie can happen.
"""

from __future__ import annotations

import sentencepiece as spm

UNKNOWN_PENALTY = 10.0  # unknown characters score (lowest piece score - 10), as in SentencePiece


class ExactUnigram:
    """Segment words of a Unigram SentencePiece model with float64 scores."""

    def __init__(self, processor: spm.SentencePieceProcessor):
        self._pieces: dict[str, tuple[int, float]] = {}
        scores = []
        for piece_id in range(processor.get_piece_size()):
            score = processor.get_score(piece_id)
            scores.append(score)
            if not (processor.is_control(piece_id) or processor.is_unknown(piece_id)):
                self._pieces[processor.id_to_piece(piece_id)] = (piece_id, score)
        self._unk_id = processor.unk_id()
        self._unk_score = min(scores) - UNKNOWN_PENALTY
        self._max_length = max(map(len, self._pieces))

    def encode(self, word: str) -> list[int]:
        """Return the ids of the best segmentation of one normalized word."""
        # best[end] = (score, start, id) of the best path that ends at character `end`.
        best: list[tuple[float, int, int] | None] = [None] * (len(word) + 1)
        best[0] = (0.0, -1, -1)
        for start in range(len(word)):
            base = best[start][0]
            has_single_char_piece = False
            # Shorter pieces first, and a later piece must score strictly higher to win a tie.
            for end in range(start + 1, min(len(word), start + self._max_length) + 1):
                entry = self._pieces.get(word[start:end])
                if entry is None:
                    continue
                candidate = entry[1] + base
                if best[end] is None or candidate > best[end][0]:
                    best[end] = (candidate, start, entry[0])
                has_single_char_piece = has_single_char_piece or end == start + 1
            if not has_single_char_piece:
                candidate = self._unk_score + base
                if best[start + 1] is None or candidate > best[start + 1][0]:
                    best[start + 1] = (candidate, start, self._unk_id)

        # Walk back from the end. Adjacent unknown characters fuse into one unk id.
        ids: list[int] = []
        end = len(word)
        while end > 0:
            _, start, piece_id = best[end]
            if not (piece_id == self._unk_id and ids and ids[-1] == self._unk_id):
                ids.append(piece_id)
            end = start
        return ids[::-1]


def may_tie(word: str) -> bool:
    """Return whether two orders of the same pieces could both segment `word`.

    Two different segmentations with the same pieces place some piece of two or more characters
    at two different positions, so the first two characters of that piece occur twice.
    """
    bigrams = [word[i : i + 2] for i in range(len(word) - 1)]
    return len(set(bigrams)) < len(bigrams)
