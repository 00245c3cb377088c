"""Packing: segment ids, per-segment shift, label padding, masks that never cross segments."""

from __future__ import annotations

import numpy as np
import pytest

from t5kit.data.packing import RowPacker, segment_attention_mask, shift_right_segments
from t5kit.data.span_corruption import Example


def example(inputs: list[int], targets: list[int]) -> Example:
    return Example(np.asarray(inputs), np.asarray(targets))


def packed_three():
    packer = RowPacker(num_rows=2, inputs_length=8, targets_length=6)
    assert packer.add(example([11, 12, 13, 1], [21, 22, 1]))
    assert packer.add(example([31, 32, 1], [41, 1]))
    assert packer.add(example([51, 52, 53, 54, 55, 1], [61, 62, 63, 1]))
    return packer, packer.finish()


def test_segment_ids_exact():
    _, rows = packed_three()
    assert rows.encoder_segment_ids.tolist() == [[1, 1, 1, 1, 2, 2, 2, 0], [1, 1, 1, 1, 1, 1, 0, 0]]
    assert rows.decoder_segment_ids.tolist() == [[1, 1, 1, 2, 2, 0], [1, 1, 1, 1, 0, 0]]


def test_rows_exact():
    _, rows = packed_three()
    assert rows.input_ids.tolist() == [[11, 12, 13, 1, 31, 32, 1, 0], [51, 52, 53, 54, 55, 1, 0, 0]]
    assert rows.labels.tolist() == [[21, 22, 1, 41, 1, -100], [61, 62, 63, 1, -100, -100]]
    assert rows.decoder_input_ids.tolist() == [[0, 21, 22, 0, 41, 0], [0, 61, 62, 63, 0, 0]]


def test_full_packer_rejects():
    packer, _ = packed_three()
    assert packer.num_examples == 3
    assert not packer.add(example([1] * 5, [1]))
    assert packer.add(example([71, 1], [81, 1]))


def test_one_segment_per_row():
    packer = RowPacker(num_rows=2, inputs_length=8, targets_length=6, max_segments=1)
    assert packer.add(example([11, 1], [21, 1]))
    assert packer.add(example([31, 1], [41, 1]))
    assert not packer.add(example([51, 1], [61, 1]))


def test_too_long_example_raises():
    packer = RowPacker(num_rows=1, inputs_length=4, targets_length=4)
    with pytest.raises(ValueError, match="does not fit"):
        packer.add(example([1] * 5, [1]))


def test_shift_right_starts_each_segment():
    targets = np.array([[5, 6, 7, 8, 9, 0]])
    segments = np.array([[1, 1, 2, 2, 2, 0]])
    assert shift_right_segments(targets, segments, start_id=0).tolist() == [[0, 5, 0, 7, 8, 0]]


def test_decoder_inputs_stay_in_segment():
    rng = np.random.default_rng(0)
    packer = RowPacker(num_rows=3, inputs_length=32, targets_length=16)
    for index in range(12):
        n_in, n_out = int(rng.integers(2, 12)), int(rng.integers(2, 7))
        token = 1000 * (index + 1)
        packer.add(example(list(range(token, token + n_in)), list(range(token + 500, token + 500 + n_out))))
    rows = packer.finish()
    for row in range(3):
        for position, segment in enumerate(rows.decoder_segment_ids[row]):
            value = rows.decoder_input_ids[row, position]
            if segment == 0 or value == 0:
                continue
            # Every token of example i lies in [1000 * (i + 1), 1000 * (i + 2)). The decoder input at
            # each position must come from the same example as the label there.
            label = rows.labels[row, position]
            assert value // 1000 == label // 1000


def test_attention_masks_never_cross_segments():
    _, rows = packed_three()
    for query_ids, key_ids, causal in [
        (rows.encoder_segment_ids, rows.encoder_segment_ids, False),
        (rows.decoder_segment_ids, rows.decoder_segment_ids, True),
        (rows.decoder_segment_ids, rows.encoder_segment_ids, False),
    ]:
        mask = segment_attention_mask(query_ids, key_ids, causal=causal)
        batch, query, key = np.nonzero(mask)
        assert np.all(query_ids[batch, query] == key_ids[batch, key])
        assert np.all(query_ids[batch, query] > 0)
        if causal:
            assert np.all(key <= query)


def test_attention_mask_allows_own_segment():
    _, rows = packed_three()
    mask = segment_attention_mask(rows.encoder_segment_ids, rows.encoder_segment_ids)
    assert mask[0, :4, :4].all()
    assert mask[0, 4:7, 4:7].all()
    assert not mask[0, :4, 4:].any()
    assert not mask[0, 7].any()


def test_packed_logits_match_separate_examples():
    torch = pytest.importorskip("torch")
    from t5kit.config.model import load_model_config
    from t5kit.model import T5

    model = T5(load_model_config("tiny-test", {"dropout_rate": 0.0})).eval()
    examples = [example([11, 12, 13, 1], [21, 22, 1]), example([31, 32, 1], [41, 1]), example([51, 1], [61, 62, 1])]
    packer = RowPacker(num_rows=1, inputs_length=12, targets_length=10)
    for item in examples:
        assert packer.add(item)
    rows = packer.finish()

    def run(packed_rows, segments: bool):
        names = ("input_ids", "decoder_input_ids", "encoder_segment_ids", "decoder_segment_ids")
        tensors = {name: torch.from_numpy(getattr(packed_rows, name)) for name in names}
        with torch.no_grad():
            return model(
                tensors["input_ids"],
                tensors["decoder_input_ids"],
                attention_mask=(tensors["encoder_segment_ids"] > 0).long(),
                decoder_attention_mask=(tensors["decoder_segment_ids"] > 0).long(),
                encoder_segment_ids=tensors["encoder_segment_ids"] if segments else None,
                decoder_segment_ids=tensors["decoder_segment_ids"] if segments else None,
            )

    packed = run(rows, segments=True)
    start = 0
    for item in examples:
        alone = RowPacker(num_rows=1, inputs_length=len(item.inputs), targets_length=len(item.targets))
        alone.add(item)
        expected = run(alone.finish(), segments=False)
        length = len(item.targets)
        torch.testing.assert_close(packed[:, start : start + length], expected, atol=1e-5, rtol=1e-5)
        start += length
