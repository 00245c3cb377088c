"""Generation: cache paths agree, greedy and beam search match transformers, lengths and padding hold."""

from __future__ import annotations

import pytest
import torch
from transformers import T5ForConditionalGeneration

from t5kit.config.core import ConfigError
from t5kit.config.model import load_model_config
from t5kit.convert import to_hf
from t5kit.generate import GenerationConfig, GenerationError, generate, stream
from t5kit.generate.config import resolve_ids
from t5kit.generate.decode_weights import choose_layout, decoder_weights
from t5kit.generate.sampling import warp
from t5kit.generate.static_cache import StaticCacheDecoder
from t5kit.model import T5

VOCAB = 256
# Small random models whose greedy outputs vary from token to token.
MODELS = {
    "v1.1": ("tiny-test", {}),
    "v1.0": ("tiny-test-t5", {"init": "normal", "init_std": 0.3}),
    "nemo": ("tiny-test-nemo", {}),
    "per-layer-bias": ("tiny-test", {"relative_bias_per_layer": True, "num_decoder_layers": 3}),
}


@pytest.fixture(autouse=True)
def one_thread():
    """Run on one thread: the models are tiny, and a second thread only waits on a busy shared core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(name: str = "v1.1") -> T5:
    preset, overrides = MODELS[name]
    torch.manual_seed(0)
    return T5(load_model_config(preset, {"dropout_rate": 0.0, **overrides})).eval()


def batch(rows=4, length=10, seed=1):
    """Token ids [rows, length] with right padding in rows 1 and 3."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, VOCAB, (rows, length), generator=generator)
    mask = torch.ones_like(input_ids)
    if rows > 3:
        mask[1, 6:] = 0
        mask[3, 3:] = 0
    return input_ids * mask, mask


def config(**fields) -> GenerationConfig:
    return GenerationConfig(**{"max_new_tokens": 12, **fields})


def until_stop(tokens: torch.Tensor, stop: set[int]) -> list[list[int]]:
    """Cut each row after its first stop id."""
    rows = []
    for row in tokens.tolist():
        cut = []
        for token in row:
            cut.append(token)
            if token in stop:
                break
        rows.append(cut)
    return rows


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    """The v1.1 and v1.0 test models and their transformers copies, loaded from converted directories."""
    pairs = {}
    for name in ("v1.1", "v1.0"):
        model = tiny(name)
        directory = tmp_path_factory.mktemp(name)
        to_hf(model, directory)
        pairs[name] = (model, T5ForConditionalGeneration.from_pretrained(directory).eval())
    return pairs


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("beams", [1, 3])
def test_cache_modes_agree(name, beams):
    model = tiny(name)
    input_ids, mask = batch()
    outputs = {
        cache: generate(model, input_ids, mask, config=config(cache=cache, num_beams=beams))
        for cache in ("static", "dynamic", "none")
    }
    views = generate(model, input_ids, mask, config=config(num_beams=beams, copy_weights=False))
    assert torch.equal(outputs["static"], outputs["none"])
    assert torch.equal(views, outputs["none"])
    assert torch.equal(outputs["dynamic"], outputs["none"])


@pytest.mark.parametrize("name", list(MODELS))
def test_static_step_logits(name):
    model = tiny(name)
    input_ids, mask = batch()
    prefix = torch.randint(3, VOCAB, (4, 6), generator=torch.Generator().manual_seed(2))
    prefix[:, 0] = 0
    with torch.no_grad():
        encoder_out = model.encode(input_ids, mask)
        expected = model.decode(prefix, encoder_out, mask)
        decoder = StaticCacheDecoder(model, encoder_out, mask, max_length=8)
        steps = torch.stack([decoder.step(prefix[:, i]) for i in range(6)], dim=1)
    torch.testing.assert_close(steps, expected, rtol=1e-5, atol=1e-5)


def test_weight_copies_follow_updates(monkeypatch):
    import t5kit.generate.static_cache as static_cache

    monkeypatch.setattr(static_cache, "choose_layout", lambda model, rows, copy, compile: "packed")
    model = tiny("v1.1")
    input_ids, mask = batch()
    first = decoder_weights(model, "packed")
    assert decoder_weights(model, "packed") is first
    assert first.layout == "packed"
    h = torch.randn(3, model.config.d_model)
    query = model.decoder.blocks[0].self_attn.q
    torch.testing.assert_close(first.layers[0].self_q(h), query(h))
    views = decoder_weights(model, "views")
    assert views.layout == "views"
    assert torch.equal(views.layers[0].self_q(h), query(h))

    # An in-place update (as an optimizer step makes) must not leave stale copies behind.
    before = generate(model, input_ids, mask, config=config())
    with torch.no_grad():
        model.decoder.blocks[1].ffn.wo.weight.mul_(3.0)
        model.lm_head.weight.add_(0.5)
    expected = generate(model, input_ids, mask, config=config(cache="none"))
    assert not torch.equal(expected, before)
    assert torch.equal(generate(model, input_ids, mask, config=config()), expected)
    assert decoder_weights(model, "packed") is not first


def eos_choices(model: T5) -> list[int]:
    """EOS ids that end rows at different steps: the real EOS and two tokens the model emits early."""
    input_ids, mask = batch()
    tokens = generate(model, input_ids, mask, config=config())
    return [1, int(tokens[0, 3]), int(tokens[2, 5])]


@pytest.mark.parametrize("name", ["v1.1", "v1.0"])
@pytest.mark.parametrize("min_new_tokens", [0, 4])
def test_greedy_matches_transformers(oracle, name, min_new_tokens):
    model, theirs = oracle[name]
    input_ids, mask = batch()
    for eos in eos_choices(model):
        ours = generate(model, input_ids, mask, config=config(min_new_tokens=min_new_tokens, eos_token_id=eos))
        expected = theirs.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=12,
            min_new_tokens=min_new_tokens,
            eos_token_id=eos,
            pad_token_id=0,
            decoder_start_token_id=0,
            do_sample=False,
        )
        # transformers returns the start token first.
        assert torch.equal(ours, expected[:, 1:]), eos


@pytest.mark.parametrize("name", ["v1.1", "v1.0"])
@pytest.mark.parametrize(
    ("beams", "length_penalty", "early_stopping", "min_new_tokens"),
    [(4, 1.0, False, 0), (3, 0.5, True, 0), (4, 2.0, "never", 3), (2, -1.0, False, 2), (3, 1.0, True, 0)],
)
def test_beam_matches_transformers(oracle, name, beams, length_penalty, early_stopping, min_new_tokens):
    model, theirs = oracle[name]
    input_ids, mask = batch()
    for eos in eos_choices(model):
        settings = dict(
            num_beams=beams,
            length_penalty=length_penalty,
            early_stopping=early_stopping,
            min_new_tokens=min_new_tokens,
            eos_token_id=eos,
        )
        ours = generate(model, input_ids, mask, config=config(**settings))
        expected = theirs.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=12,
            pad_token_id=0,
            decoder_start_token_id=0,
            do_sample=False,
            **settings,
        )[:, 1:]
        # transformers' beam search fills finished rows with EOS rather than padding.
        assert ours.shape == expected.shape, eos
        assert until_stop(ours, {eos}) == until_stop(expected, {eos}), eos


@pytest.mark.parametrize("beams", [1, 3])
@pytest.mark.parametrize("cache", ["static", "dynamic"])
def test_padding_invariance(beams, cache):
    model = tiny("v1.0")
    input_ids, mask = batch()
    eos = eos_choices(model)[1]
    settings = config(num_beams=beams, cache=cache, eos_token_id=eos)
    together = generate(model, input_ids, mask, config=settings)
    for row in range(input_ids.shape[0]):
        length = int(mask[row].sum())
        alone = generate(model, input_ids[row : row + 1, :length], config=settings)
        assert until_stop(together[row : row + 1], {eos}) == until_stop(alone, {eos}), row


def first_stop(tokens: torch.Tensor, stop: int) -> list[int | None]:
    positions = []
    for row in tokens.tolist():
        positions.append(row.index(stop) if stop in row else None)
    return positions


def test_min_max_new_tokens_exact():
    model = tiny("v1.0")
    input_ids, mask = batch()
    free = generate(model, input_ids, mask, config=config())
    eos = int(free[0, 1])  # row 0 would stop after 2 tokens
    assert first_stop(generate(model, input_ids, mask, config=config(eos_token_id=eos)), eos)[0] == 1

    for minimum in (0, 1, 3, 7):
        tokens = generate(model, input_ids, mask, config=config(eos_token_id=eos, min_new_tokens=minimum))
        stops = [s for s in first_stop(tokens, eos) if s is not None]
        # Exactly `minimum` tokens are generated before an EOS may appear.
        assert all(position >= minimum for position in stops), (minimum, stops)

    for maximum in (1, 5, 9):
        tokens = generate(model, input_ids, mask, config=config(max_new_tokens=maximum, min_new_tokens=maximum, eos_token_id=eos))
        assert tokens.shape == (4, maximum)
        assert not (tokens == eos).any()
        beamed = generate(model, input_ids, mask, config=config(max_new_tokens=maximum, min_new_tokens=maximum, num_beams=2))
        assert beamed.shape == (4, maximum)


def test_stop_ids_end_rows():
    model = tiny("v1.1")
    input_ids, mask = batch()
    free = generate(model, input_ids, mask, config=config())
    stop = int(free[1, 2])
    tokens = generate(model, input_ids, mask, config=config(stop_token_ids=[stop]))
    for row in tokens.tolist():
        if stop in row:
            position = row.index(stop)
            assert row[position + 1 :] == [0] * (len(row) - position - 1)
    stop_in_row_1 = first_stop(tokens, stop)[1]
    assert stop_in_row_1 is not None
    assert stop_in_row_1 <= 2
    assert tokens.shape[1] <= free.shape[1]


def test_all_rows_stop_early():
    model = tiny("v1.1")
    input_ids, mask = batch()
    free = generate(model, input_ids, mask, config=config())
    first = sorted({int(t) for t in free[:, 0]})
    tokens = generate(model, input_ids, mask, config=config(stop_token_ids=first))
    assert tokens.shape == (4, 1)
    assert torch.equal(tokens[:, 0], free[:, 0])


def test_encoder_out_input():
    model = tiny("v1.1")
    input_ids, mask = batch()
    expected = generate(model, input_ids, mask, config=config())
    with torch.no_grad():
        encoder_out = model.encode(input_ids, mask)
        from_embeds = model.encode(inputs_embeds=model.shared(input_ids), attention_mask=mask)
    assert torch.equal(generate(model, encoder_out=encoder_out, attention_mask=mask, config=config()), expected)
    assert torch.equal(generate(model, encoder_out=from_embeds, attention_mask=mask, config=config()), expected)
    beams = config(num_beams=3)
    assert torch.equal(
        generate(model, encoder_out=encoder_out, attention_mask=mask, config=beams),
        generate(model, input_ids, mask, config=beams),
    )


def test_stream_matches_generate():
    model = tiny("v1.0")
    input_ids, mask = batch()
    eos = eos_choices(model)[1]
    for row in range(4):
        length = int(mask[row].sum())
        settings = config(eos_token_id=eos)
        streamed = list(stream(model, input_ids[row : row + 1, :length], config=settings))
        expected = generate(model, input_ids[row : row + 1, :length], config=settings)
        assert streamed == expected[0].tolist()
    with pytest.raises(GenerationError, match="single input"):
        next(stream(model, input_ids, mask))
    with pytest.raises(GenerationError, match="num_beams=1"):
        next(stream(model, input_ids[:1], config=config(num_beams=2)))


def test_sampling_seeded():
    model = tiny("v1.1")
    input_ids, mask = batch()
    settings = config(do_sample=True, seed=5, temperature=1.5)
    first = generate(model, input_ids, mask, config=settings)
    assert torch.equal(first, generate(model, input_ids, mask, config=settings))
    assert not torch.equal(first, generate(model, input_ids, mask, config=config(do_sample=True, seed=6, temperature=1.5)))
    greedy = generate(model, input_ids, mask, config=config())
    assert torch.equal(generate(model, input_ids, mask, config=config(do_sample=True, seed=1, top_k=1)), greedy)
    assert torch.equal(generate(model, input_ids, mask, config=config(do_sample=True, seed=1, top_p=1e-6)), greedy)


def test_warp_filters():
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    inf = float("-inf")
    top_k = warp(logits, GenerationConfig(do_sample=True, top_k=2))
    assert torch.isinf(top_k).tolist() == [[False, False, True, True, True]]
    # 0.5 + 0.2 reaches 0.7: the third token is dropped at top_p=0.7, kept at 0.71.
    assert torch.isinf(warp(logits, GenerationConfig(do_sample=True, top_p=0.7))).tolist() == [[False, False, True, True, True]]
    assert torch.isinf(warp(logits, GenerationConfig(do_sample=True, top_p=0.71))).tolist() == [[False, False, False, True, True]]
    hot = warp(logits, GenerationConfig(do_sample=True, temperature=2.0))
    torch.testing.assert_close(hot, logits / 2)
    assert warp(torch.tensor([[inf, 1.0]]), GenerationConfig(do_sample=True, top_k=1))[0, 1] == 1.0


def test_restores_training_flag():
    model = tiny("v1.1").train()
    input_ids, mask = batch()
    first = generate(model, input_ids, mask, config=config())
    assert model.training
    assert torch.equal(first, generate(model.eval(), input_ids, mask, config=config()))


def test_bfloat16_runs():
    model = tiny("v1.1").to(torch.bfloat16)
    input_ids, mask = batch()
    static = generate(model, input_ids, mask, config=config())
    assert static.shape[0] == 4
    assert torch.equal(static, generate(model, input_ids, mask, config=config(cache="none")))


def test_config_checks():
    for fields, message in [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"min_new_tokens": 30}, "min_new_tokens"),
        ({"num_beams": 2, "do_sample": True}, "beam sampling"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature: must be a positive finite number, got nan"),
        ({"temperature": float("inf")}, "temperature"),
        ({"length_penalty": float("nan")}, "length_penalty: must be a finite number"),
        ({"top_p": 0.0}, "top_p"),
        ({"compile": True, "cache": "dynamic"}, "compile"),
        ({"early_stopping": "sometimes"}, "early_stopping"),
    ]:
        with pytest.raises(ConfigError, match=message):
            GenerationConfig(**fields)
    model = tiny("v1.1")
    input_ids, mask = batch()
    with pytest.raises(GenerationError, match="exactly one"):
        generate(model)
    with pytest.raises(GenerationError, match="attention_mask has shape"):
        generate(model, input_ids, mask[:, :3])
    with pytest.raises(GenerationError, match="outside the model's vocabulary"):
        resolve_ids(config(eos_token_id=VOCAB), model.config, torch.device("cpu"))
    with pytest.raises(GenerationError, match="max_decoder_length"):
        generate(tiny("nemo"), input_ids, config=config(max_new_tokens=500))
    # A relative-position model takes any length, but not one whose [H, T, T] bias cannot fit.
    with pytest.raises(GenerationError, match=r"max_new_tokens 10000000 needs .* GiB .* lower max_new_tokens"):
        generate(model, input_ids, config=config(max_new_tokens=10_000_000))


@pytest.mark.slow
@pytest.mark.parametrize(("layout", "rows"), [("copies", 4), ("dot", 1)])
def test_compiled_static_cache(monkeypatch, layout, rows):
    import t5kit.generate.static_cache as static_cache

    monkeypatch.setattr(static_cache, "choose_layout", lambda model, rows, copy, compile: layout)
    model = tiny("v1.1")
    input_ids, mask = batch()
    input_ids, mask = input_ids[:rows], mask[:rows]
    expected = generate(model, input_ids, mask, config=config(cache="none", max_new_tokens=5))
    assert torch.equal(generate(model, input_ids, mask, config=config(compile=True, max_new_tokens=5)), expected)


@pytest.fixture
def text_checkpoint(tmp_path, shared_data):
    """A tiny random model with T5's vocabulary, saved with the real spiece.model beside it."""
    from t5kit.model import save_model

    torch.manual_seed(0)
    model = T5(load_model_config("tiny-test", {"dropout_rate": 0.0, "vocab_size": 32128, "init": "normal", "init_std": 0.3}))
    directory = save_model(model, tmp_path / "model")
    (directory / "spiece.model").write_bytes((shared_data / "t5_tokenizer" / "spiece.model").read_bytes())
    return model.eval(), directory


def expected_text(model: T5, directory, text: str, **fields) -> str:
    from t5kit.tokenizer import T5Tokenizer

    tokenizer = T5Tokenizer(directory)
    input_ids = torch.tensor([tokenizer.encode(text, add_eos=True)])
    tokens = generate(model, input_ids, config=config(max_new_tokens=10, **fields))
    return tokenizer.decode(tokens[0], skip_special_tokens=True)


def test_cli_streams_one_input(text_checkpoint, capsys):
    from t5kit.cli.main import main

    model, directory = text_checkpoint
    text = "translate English to German: That is good."
    assert main(["generate", "--checkpoint", str(directory), "--max-new-tokens", "10", text]) == 0
    output = capsys.readouterr().out
    assert output == expected_text(model, directory, text) + "\n"
    assert output.strip()


def test_cli_input_file_batches(text_checkpoint, tmp_path, capsys):
    from t5kit.cli.main import main

    model, directory = text_checkpoint
    texts = ["summarize: studies have shown that owning a dog is good for you", "a", "question: why? context: because"]
    path = tmp_path / "inputs.txt"
    path.write_text("\n".join(texts) + "\n")
    arguments = ["generate", "--checkpoint", str(directory), "--max-new-tokens", "10", "--input-file", str(path)]
    assert main(arguments + ["--batch-size", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [expected_text(model, directory, text) for text in texts]
    assert main(arguments + ["--num-beams", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [expected_text(model, directory, text, num_beams=3) for text in texts]


def test_cli_hf_checkpoint(text_checkpoint, tmp_path, capsys):
    from t5kit.cli.main import main

    model, directory = text_checkpoint
    to_hf(model, tmp_path / "hf")
    text = "hello world"
    tokenizer = str(directory / "spiece.model")
    assert main(["generate", "--checkpoint", str(tmp_path / "hf"), "--tokenizer", tokenizer, "--max-new-tokens", "10", text]) == 0
    assert capsys.readouterr().out == expected_text(model, directory, text) + "\n"
    # Without --tokenizer, a directory without spiece.model is an error naming the fix.
    assert main(["generate", "--checkpoint", str(tmp_path / "hf"), text]) == 2
    assert "--tokenizer" in capsys.readouterr().err


@pytest.mark.parametrize("layout", ["packed", "copies", "views"])
@pytest.mark.parametrize("name", ["v1.1", "nemo"])
def test_weight_layouts_match(monkeypatch, layout, name):
    # Small models decode with views; force each layout that larger models or other devices get.
    import t5kit.generate.static_cache as static_cache

    monkeypatch.setattr(static_cache, "choose_layout", lambda model, rows, copy, compile: layout)
    model = tiny(name)
    input_ids, mask = batch()
    for beams in (1, 2):
        expected = generate(model, input_ids, mask, config=config(cache="none", num_beams=beams))
        assert torch.equal(generate(model, input_ids, mask, config=config(num_beams=beams)), expected)
    assert decoder_weights(model, layout).layout == layout


def test_lora_layers_respected():
    from t5kit.peft.lora import LoRAConfig, apply_lora

    model = tiny("v1.1")
    apply_lora(model, LoRAConfig(rank=2, dropout=0.0, targets=["q", "v", "wi_0"]))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("lora_b"):
                param.normal_(std=0.5)
    input_ids, mask = batch()
    expected = generate(model, input_ids, mask, config=config(cache="none"))
    assert torch.equal(generate(model, input_ids, mask, config=config()), expected)
    beams = generate(model, input_ids, mask, config=config(num_beams=2))
    assert torch.equal(beams, generate(model, input_ids, mask, config=config(cache="none", num_beams=2)))
    # The adapters change the output, so the check above saw them.
    plain = tiny("v1.1")
    assert not torch.equal(generate(plain, input_ids, mask, config=config()), expected)


def test_autocast_uses_views():
    # Large enough for packed weights, which autocast cannot feed; the step must fall back to views.
    torch.manual_seed(0)
    model = T5(load_model_config("t5-small", {"dropout_rate": 0.0, "vocab_size": 256, "num_layers": 2})).eval()
    input_ids, mask = batch()
    assert choose_layout(model, rows=4) == "packed"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert choose_layout(model, rows=4) == "views"
        encoder_out = model.encode(input_ids, mask)
        static = generate(model, encoder_out=encoder_out, attention_mask=mask, config=config(max_new_tokens=6))
        dynamic = generate(model, encoder_out=encoder_out, attention_mask=mask, config=config(max_new_tokens=6, cache="dynamic"))
    assert torch.equal(static, dynamic)
