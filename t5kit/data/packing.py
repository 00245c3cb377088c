"""Pack encoder-decoder examples into fixed-size rows, several short examples per row.

Each example in a row gets a segment id, 1-based, and padding gets 0, in the encoder
(`encoder_segment_ids`) and the decoder (`decoder_segment_ids`). The model lets a token attend only
to tokens of its own segment, so neither attention nor the relative position bias crosses examples.
Relative positions need no reset per segment, because the masks drop every pair of positions
from different segments.

The decoder inputs are the targets shifted right within each segment, with the start id (0 in T5)
at every segment start, so no segment's decoder input contains another segment's token. Labels
are the targets, with -100 on padding so the loss ignores it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from t5kit.data.span_corruption import Example

IGNORE_INDEX = -100


@dataclass
class PackedRows:
    """A batch of rows as int64 numpy arrays: [B, L] for the encoder, [B, S] for the decoder."""

    input_ids: np.ndarray
    encoder_segment_ids: np.ndarray
    decoder_input_ids: np.ndarray
    labels: np.ndarray
    decoder_segment_ids: np.ndarray


def shift_right_segments(targets: np.ndarray, segment_ids: np.ndarray, start_id: int = 0) -> np.ndarray:
    """Shift `targets` [..., S] right by one inside each segment; segment starts get `start_id`."""
    shifted = np.empty_like(targets)
    shifted[..., 0] = start_id
    shifted[..., 1:] = targets[..., :-1]
    starts = np.ones_like(segment_ids, dtype=bool)
    starts[..., 1:] = segment_ids[..., 1:] != segment_ids[..., :-1]
    shifted[starts] = start_id
    shifted[segment_ids == 0] = start_id
    return shifted


def segment_attention_mask(
    query_segment_ids: np.ndarray, key_segment_ids: np.ndarray, causal: bool = False
) -> np.ndarray:
    """Return a bool mask [B, Q, K]: True where query and key share a segment and neither is padding."""
    same = query_segment_ids[:, :, None] == key_segment_ids[:, None, :]
    mask = same & (query_segment_ids[:, :, None] > 0)
    if causal:
        query_length, key_length = query_segment_ids.shape[1], key_segment_ids.shape[1]
        mask &= np.tril(np.ones((query_length, key_length), dtype=bool))
    return mask


class RowPacker:
    """Fill `num_rows` rows with examples, first fit, at most `max_segments` examples per row.

    `max_segments=1` gives one example per row, padded: no packing.
    """

    def __init__(
        self,
        num_rows: int,
        inputs_length: int,
        targets_length: int,
        max_segments: int | None = None,
        pad_id: int = 0,
        decoder_start_id: int = 0,
    ):
        self.num_rows = num_rows
        self.inputs_length = inputs_length
        self.targets_length = targets_length
        self.max_segments = max_segments
        self.pad_id = pad_id
        self.decoder_start_id = decoder_start_id
        self._input_ids = np.full((num_rows, inputs_length), pad_id, dtype=np.int64)
        self._targets = np.full((num_rows, targets_length), pad_id, dtype=np.int64)
        self._encoder_segments = np.zeros((num_rows, inputs_length), dtype=np.int64)
        self._decoder_segments = np.zeros((num_rows, targets_length), dtype=np.int64)
        self._input_used = np.zeros(num_rows, dtype=np.int64)
        self._target_used = np.zeros(num_rows, dtype=np.int64)
        self._segments = np.zeros(num_rows, dtype=np.int64)

    @property
    def num_examples(self) -> int:
        return int(self._segments.sum())

    def add(self, example: Example) -> bool:
        """Place `example` in the first row with room; return False when no row has room."""
        inputs_length, targets_length = len(example.inputs), len(example.targets)
        if inputs_length > self.inputs_length or targets_length > self.targets_length:
            raise ValueError(
                f"example with {inputs_length} inputs and {targets_length} targets does not fit a row of "
                f"{self.inputs_length} inputs and {self.targets_length} targets"
            )
        fits = (self._input_used + inputs_length <= self.inputs_length) & (
            self._target_used + targets_length <= self.targets_length
        )
        if self.max_segments is not None:
            fits &= self._segments < self.max_segments
        rows = np.flatnonzero(fits)
        if rows.size == 0:
            return False
        row = rows[0]
        self._segments[row] += 1
        segment = self._segments[row]
        start, end = self._input_used[row], self._input_used[row] + inputs_length
        self._input_ids[row, start:end] = example.inputs
        self._encoder_segments[row, start:end] = segment
        self._input_used[row] = end
        start, end = self._target_used[row], self._target_used[row] + targets_length
        self._targets[row, start:end] = example.targets
        self._decoder_segments[row, start:end] = segment
        self._target_used[row] = end
        return True

    def finish(self) -> PackedRows:
        """Return the rows; rows that got no example stay all padding."""
        labels = np.where(self._decoder_segments > 0, self._targets, IGNORE_INDEX)
        decoder_input_ids = shift_right_segments(self._targets, self._decoder_segments, self.decoder_start_id)
        return PackedRows(
            input_ids=self._input_ids.copy(),
            encoder_segment_ids=self._encoder_segments.copy(),
            decoder_input_ids=decoder_input_ids,
            labels=labels,
            decoder_segment_ids=self._decoder_segments.copy(),
        )
