"""Cut an indexed dataset into raw windows, the unit that an objective turns into one example.

Two layouts:
- `concat` (the default, as t5x does for span corruption): the documents form one stream, each
  followed by EOS, and the stream is cut into windows of exactly `window_length` tokens. A window
  may hold the end of one document and the start of the next. The last partial window is dropped.
- `document`: every document is cut on its own into windows of at most `window_length` tokens, so a
  window never crosses a document boundary. Short documents and document ends give short windows;
  turn packing on to fill rows with them. Pieces shorter than `min_length` are dropped.
"""

from __future__ import annotations

import numpy as np

from t5kit.data.indexed_dataset import IndexedDataset


class TokenWindows:
    """The raw windows of one dataset; `windows[i]` is an int64 array of token ids."""

    def __init__(
        self, dataset: IndexedDataset, window_length: int, layout: str = "concat", eos_id: int = 1, min_length: int = 2
    ):
        if window_length < min_length:
            raise ValueError(f"window_length {window_length} is below the minimum window length {min_length}")
        self.dataset = dataset
        self.window_length = window_length
        self.layout = layout
        self.eos_id = eos_id
        lengths = dataset.document_lengths
        if layout == "concat":
            # Stream position of each document's first token: its offset plus one EOS per earlier document.
            self._stream_starts = np.asarray(dataset.offsets[:-1]) + np.arange(dataset.num_documents)
            self._lengths = lengths
            self._count = (dataset.num_tokens + dataset.num_documents) // window_length
        elif layout == "document":
            self._starts, self._window_lengths = self._document_windows(lengths, min_length)
            self._count = len(self._starts)
        else:
            raise ValueError(f"window layout must be 'concat' or 'document', got {layout!r}")

    def _document_windows(self, lengths: np.ndarray, min_length: int) -> tuple[np.ndarray, np.ndarray]:
        pieces = -(-lengths // self.window_length)  # ceil division
        document = np.repeat(np.arange(len(lengths)), pieces)
        first_piece = np.cumsum(pieces) - pieces
        piece = np.arange(len(document)) - np.repeat(first_piece, pieces)
        starts = np.asarray(self.dataset.offsets[:-1])[document] + piece * self.window_length
        window_lengths = np.minimum(self.window_length, lengths[document] - piece * self.window_length)
        keep = window_lengths >= min_length
        return starts[keep], window_lengths[keep]

    def __len__(self) -> int:
        return int(self._count)

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < self._count:
            raise IndexError(f"window {index} out of range for {self._count} windows of {self.dataset.prefix}")
        if self.layout == "document":
            start = self._starts[index]
            return np.asarray(self.dataset.tokens[start : start + self._window_lengths[index]], dtype=np.int64)
        return self._stream_window(index * self.window_length)

    def _stream_window(self, position: int) -> np.ndarray:
        output = np.empty(self.window_length, dtype=np.int64)
        filled = 0
        document = int(np.searchsorted(self._stream_starts, position, side="right")) - 1
        while filled < self.window_length:
            offset = position - self._stream_starts[document]
            length = self._lengths[document]
            if offset < length:
                take = int(min(length - offset, self.window_length - filled))
                start = self.dataset.offsets[document] + offset
                output[filled : filled + take] = self.dataset.tokens[start : start + take]
            else:
                # The EOS that follows the document.
                take = 1
                output[filled] = self.eos_id
                document += 1
            filled += take
            position += take
        return output
