"""The model on CPU: forward, backward, loss, masks, packing and parity with transformers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import T5ForConditionalGeneration
from transformers.models.t5.modeling_t5 import T5Attention

from t5kit.config.model import load_model_config
from t5kit.convert.hf_keys import key_table
from t5kit.model import T5, load_model, save_model, shift_right
from t5kit.model.io import CheckpointError
from t5kit.model.layers import relative_position_bucket, segment_positions
from tests.model.hf_oracle import hf_config

TINY_PRESETS = ["tiny-test", "tiny-test-t5", "tiny-test-nemo"]


def tiny(preset="tiny-test", **overrides):
    return T5(load_model_config(preset, {"dropout_rate": 0.0, **overrides})).eval()


def random_batch(vocab=256, batch=3, enc_len=11, dec_len=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab, (batch, enc_len), generator=generator)
    labels = torch.randint(3, vocab, (batch, dec_len), generator=generator)
    mask = torch.ones_like(input_ids)
    if batch > 1:
        mask[1, enc_len - 4 :] = 0
    return input_ids, mask, labels


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_forward_backward_loss(preset):
    model = tiny(preset)
    model.train()
    input_ids, mask, labels = random_batch()
    logits = model(input_ids, shift_right(labels), attention_mask=mask)
    assert logits.shape == (3, 7, 256)
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
    assert torch.isfinite(loss)
    assert loss.item() > 0
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_few_steps_fit_one_batch(preset):
    model = tiny(preset)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    input_ids, mask, labels = random_batch()
    losses = []
    for _ in range(30):
        logits = model(input_ids, shift_right(labels), attention_mask=mask)
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.5


def test_ignored_labels_do_not_count():
    model = tiny()
    input_ids, mask, labels = random_batch()
    logits = model(input_ids, shift_right(labels), attention_mask=mask)
    masked = labels.clone()
    masked[:, 4:] = -100
    loss = F.cross_entropy(logits.flatten(0, 1), masked.flatten(), ignore_index=-100)
    expected = F.cross_entropy(logits[:, :4].flatten(0, 1), labels[:, :4].flatten())
    assert torch.allclose(loss, expected)


@pytest.mark.parametrize("preset", ["tiny-test", "tiny-test-t5"])
def test_logits_match_transformers(preset):
    config = load_model_config(preset, {"dropout_rate": 0.0})
    oracle = T5ForConditionalGeneration(hf_config(config)).eval()
    model = T5(config).eval()
    weights = oracle.state_dict()
    state = {ours: weights[theirs] for theirs, ours in key_table(config).items()}
    if not config.tie_word_embeddings:
        # A separate head, since transformers ties it when built from a config.
        state["lm_head.weight"] = torch.randn_like(state["lm_head.weight"])
        oracle.lm_head.weight = torch.nn.Parameter(state["lm_head.weight"].clone())
    model.load_state_dict(state, strict=False)
    input_ids, mask, labels = random_batch()
    with torch.no_grad():
        expected = oracle(input_ids=input_ids, attention_mask=mask, decoder_input_ids=shift_right(labels)).logits
        actual = model(input_ids, shift_right(labels), attention_mask=mask)
    assert (expected - actual).abs().max().item() < 1e-4


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(("num_buckets", "max_distance"), [(32, 128), (8, 16), (64, 256)])
def test_buckets_match_transformers(bidirectional, num_buckets, max_distance):
    positions = torch.arange(-4096, 4097)
    expected = T5Attention._relative_position_bucket(
        positions, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
    )
    actual = relative_position_bucket(positions, bidirectional, num_buckets, max_distance)
    assert torch.equal(actual, expected)


def test_buckets_cover_range():
    positions = torch.arange(-4096, 4097)
    buckets = relative_position_bucket(positions, True, 32, 128)
    assert buckets.min().item() == 0
    assert buckets.max().item() == 31
    assert relative_position_bucket(torch.tensor([0, -1, 1]), True, 32, 128).tolist() == [0, 1, 17]
    assert relative_position_bucket(torch.tensor([1, 5, -1]), False, 32, 128).tolist() == [0, 0, 1]


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_padding_does_not_change_outputs(preset):
    model = tiny(preset)
    input_ids, _, labels = random_batch(batch=1, enc_len=6)
    padded = torch.cat([input_ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 6), torch.zeros(1, 5)], dim=1).long()
    with torch.no_grad():
        alone = model(input_ids, shift_right(labels))
        with_padding = model(padded, shift_right(labels), attention_mask=mask)
    assert (alone - with_padding).abs().max().item() < 1e-5


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_packed_rows_equal_separate_examples(preset):
    model = tiny(preset)
    first = random_batch(batch=1, enc_len=5, dec_len=3, seed=1)
    second = random_batch(batch=1, enc_len=4, dec_len=4, seed=2)
    input_ids = torch.cat([first[0], second[0]], dim=1)
    labels = torch.cat([first[2], second[2]], dim=1)
    decoder_input_ids = torch.cat([shift_right(first[2]), shift_right(second[2])], dim=1)
    encoder_segments = torch.tensor([[1] * 5 + [2] * 4])
    decoder_segments = torch.tensor([[1] * 3 + [2] * 4])
    with torch.no_grad():
        packed = model(
            input_ids,
            decoder_input_ids,
            encoder_segment_ids=encoder_segments,
            decoder_segment_ids=decoder_segments,
        )
        alone_first = model(first[0], shift_right(first[2]))
        alone_second = model(second[0], shift_right(second[2]))
    assert labels.shape[1] == packed.shape[1]
    assert (packed[:, :3] - alone_first).abs().max().item() < 1e-5
    assert (packed[:, 3:] - alone_second).abs().max().item() < 1e-5


def test_segment_positions_restart():
    segments = torch.tensor([[1, 1, 1, 2, 2, 3, 0, 0]])
    assert segment_positions(segments).tolist() == [[0, 1, 2, 0, 1, 0, 0, 1]]


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_cached_decoding_matches_full(preset):
    model = tiny(preset)
    input_ids, mask, labels = random_batch()
    decoder_input_ids = shift_right(labels)
    with torch.no_grad():
        encoder_out = model.encode(input_ids, mask)
        full = model.decode(decoder_input_ids, encoder_out, mask)
        cache = model.new_cache()
        steps = [
            model.decode(decoder_input_ids[:, i : i + 1], encoder_out, mask, cache=cache)
            for i in range(decoder_input_ids.shape[1])
        ]
    assert (torch.cat(steps, dim=1) - full).abs().max().item() < 1e-5


def test_per_layer_relative_bias_tables():
    model = tiny(relative_bias_per_layer=True)
    assert len(model.encoder.relative_bias) == 2
    assert len(model.decoder.relative_bias) == 2
    input_ids, mask, labels = random_batch()
    assert model(input_ids, shift_right(labels), attention_mask=mask).shape == (3, 7, 256)


def test_tied_head_shares_embedding():
    model = tiny("tiny-test-t5")
    assert not hasattr(model, "lm_head")
    assert model.encoder.embed_tokens.weight is model.shared.weight
    assert model.decoder.embed_tokens.weight is model.shared.weight


def test_absolute_positions_reject_long_input():
    model = tiny("tiny-test-nemo")
    with pytest.raises(ValueError, match="max_encoder_length"):
        model(torch.ones(1, 65, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long))


def test_shift_right_replaces_ignored_labels():
    labels = torch.tensor([[5, 6, 1, -100]])
    assert shift_right(labels).tolist() == [[0, 5, 6, 1]]


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_save_and_load_round_trip(tmp_path, preset):
    model = tiny(preset)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path).eval()
    input_ids, mask, labels = random_batch()
    with torch.no_grad():
        assert torch.equal(model(input_ids, shift_right(labels), mask), loaded(input_ids, shift_right(labels), mask))
    assert not list(tmp_path.glob("*.tmp"))


def test_load_rejects_corrupt_weights(tmp_path):
    save_model(tiny(), tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(tmp_path)


def test_load_rejects_shape_mismatch(tmp_path):
    save_model(tiny(), tmp_path)
    config = (tmp_path / "config.yaml").read_text().replace("d_ff: 64", "d_ff: 96")
    (tmp_path / "config.yaml").write_text(config)
    with pytest.raises(CheckpointError, match="has shape"):
        load_model(tmp_path)


def test_load_rejects_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="config.yaml not found"):
        load_model(tmp_path / "nowhere")
