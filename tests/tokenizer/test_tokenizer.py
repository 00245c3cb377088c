"""T5Tokenizer against transformers' T5TokenizerFast, serialization, errors, training and the CLI."""

from __future__ import annotations

import gzip
import json
import shutil
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t5kit.cli.main import main
from t5kit.config.core import ConfigError
from t5kit.data.text_files import TextFileError
from t5kit.tokenizer import T5Tokenizer, TokenizerError, iter_lines, train_tokenizer

# Strings whose ids and decoding must equal transformers'. Every chunk of text between special
# tokens starts a new word, whitespace of any kind collapses, and unknown characters fuse to unk.
EDGE_CASES = [
    "",
    "   ",
    "\n\t \r\n",
    "Hello world",
    "<extra_id_0>",
    "<extra_id_0>hello",
    "<extra_id_0> hello",
    "hello<extra_id_0>",
    "hello <extra_id_0>",
    "a<extra_id_0>b",
    "a <extra_id_0> b",
    "a<extra_id_0><extra_id_1>b",
    "a <extra_id_0> <extra_id_1> b",
    "<extra_id_0><extra_id_99>",
    "The <extra_id_0> walks in <extra_id_1> park",
    "<extra_id_0> cute dog <extra_id_1> the <extra_id_2>",
    "x.<extra_id_5>,y",
    "<extra_id_100> <extra_id_05> <extra_id_-1> <extra_id_0 >",
    "answer</s><pad><unk> text",
    "line one\nline two\n\nline three",
    "tab\tseparated\tvalues",
    "many     spaces   here ",
    "  leading and trailing  ",
    "windows\r\nline\rends",
    "next\x85line\u2028separator\u2029paragraph",
    "no\u00a0break\u3000ideographic\u2009thin",
    "zero\u200bwidth\ufeffbom",
    "emoji 😀 ok 👍🏽 family 👨\u200d👩\u200d👧 flag 🇯🇵 ❤️",
    "日本語のテキスト",
    "中文 한국어 हिन्दी العربية",
    "ﬁnance ① ² ™ … Ｆｕｌｌ ｗｉｄｔｈ ｶﾀｶﾅ",
    "full-width ＜extra_id_0＞ sentinel",
    "ab＜extra_id_1＞cd",
    "ctrl\x01char\x7fdel\x00nul",
    "▁literal▁ meta ▁▁ symbol",
    "1,444 apartments for £666 and £66,666",
    "Hotta....... if you (SSSIs), ababab!!!!!!!! ----------",
    "Café naïve résumé coöperate",
    "Straße İstanbul ǅ ŉ",
]


@pytest.fixture(scope="module")
def spiece(shared_data):
    return shared_data / "t5_tokenizer" / "spiece.model"


@pytest.fixture(scope="module")
def tokenizer(spiece):
    return T5Tokenizer(spiece)


@pytest.fixture(scope="module")
def hf_tokenizer(spiece, tmp_path_factory):
    """Build transformers' T5 tokenizer from a folder with spiece.model, the way transformers 5.x loads T5."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("hf_t5")
    shutil.copy(spiece, folder / "spiece.model")
    return transformers.T5TokenizerFast.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def squad_dev_texts(shared_data):
    data = json.loads((shared_data / "squad_v1.1" / "dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    paragraphs = [paragraph for article in data for paragraph in article["paragraphs"]]
    contexts = [paragraph["context"] for paragraph in paragraphs]
    questions = [qa["question"] for paragraph in paragraphs for qa in paragraph["qas"]]
    return contexts, questions


def hf_ids(hf_tokenizer, texts):
    return hf_tokenizer(list(texts), add_special_tokens=False)["input_ids"]


# ----- ids and layout


def test_special_ids(tokenizer):
    assert (tokenizer.pad_id, tokenizer.eos_id, tokenizer.unk_id) == (0, 1, 2)
    assert [tokenizer.id_to_piece(i) for i in range(3)] == ["<pad>", "</s>", "<unk>"]
    assert tokenizer.num_pieces == 32000
    assert tokenizer.num_sentinels == 100
    assert tokenizer.vocab_size == 32100
    assert tokenizer.padded_vocab_size == 32128
    assert tokenizer.model_type == "unigram"


def test_sentinel_ids(tokenizer, hf_tokenizer):
    assert tokenizer.sentinel_id(0) == 32099
    assert tokenizer.sentinel_id(99) == 32000
    assert tokenizer.id_to_piece(32099) == "<extra_id_0>"
    assert tokenizer.piece_to_id("<extra_id_7>") == 32092
    for i in range(100):
        assert tokenizer.sentinel_id(i) == hf_tokenizer.convert_tokens_to_ids(f"<extra_id_{i}>")
        assert tokenizer.encode(f"<extra_id_{i}>") == [tokenizer.sentinel_id(i)]
    with pytest.raises(IndexError):
        tokenizer.sentinel_id(100)
    with pytest.raises(IndexError):
        tokenizer.id_to_piece(32100)


def test_is_special(tokenizer):
    assert [tokenizer.is_special(i) for i in (0, 1, 2, 3, 31999, 32000, 32099, 32100)] == [
        True, True, True, False, False, True, True, False,
    ]


def test_known_encodings(tokenizer):
    # Ids published with the T5 vocabulary (sentencepiece 0.2.3).
    translate = tokenizer.encode("translate English to German: That is good.")
    assert translate == [13959, 1566, 12, 2968, 10, 466, 19, 207, 5]
    assert tokenizer.encode("Which NFL team represented the AFC at Super Bowl 50?") == [
        4073, 10439, 372, 7283, 8, 71, 5390, 44, 2011, 9713, 943, 58,
    ]
    assert tokenizer.encode("That is good.", add_eos=True) == [466, 19, 207, 5, 1]
    assert tokenizer.encode_batch(["a", ""], add_eos=True) == [[3, 9, 1], [1]]


def test_encode_rejects_bytes(tokenizer):
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        tokenizer.encode_batch(["ok", b"bytes"])


# ----- parity with transformers


def test_parity_squad_dev(tokenizer, hf_tokenizer, squad_dev_texts):
    contexts, questions = squad_dev_texts
    assert (len(contexts), len(questions)) == (2067, 10570)
    for texts in (contexts, questions):
        ours = tokenizer.encode_batch(texts)
        theirs = hf_ids(hf_tokenizer, texts)
        different = [i for i in range(len(texts)) if ours[i] != theirs[i]]
        assert different == [], f"{len(different)} texts differ, first: {texts[different[0]][:200]!r}"


def test_decode_parity_squad_dev(tokenizer, hf_tokenizer, squad_dev_texts):
    contexts, questions = squad_dev_texts
    texts = contexts[:500] + questions[:2000]
    ids = hf_ids(hf_tokenizer, texts)
    with_eos = [sequence + [1] for sequence in ids]
    assert tokenizer.decode_batch(ids) == hf_tokenizer.batch_decode(ids)
    assert tokenizer.decode_batch(with_eos) == hf_tokenizer.batch_decode(with_eos)
    assert tokenizer.decode_batch(with_eos, skip_special_tokens=True) == hf_tokenizer.batch_decode(
        with_eos, skip_special_tokens=True
    )


@pytest.mark.parametrize("text", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_parity_edge_case(tokenizer, hf_tokenizer, text):
    ids = tokenizer.encode(text)
    assert ids == hf_ids(hf_tokenizer, [text])[0]
    assert tokenizer.decode(ids) == hf_tokenizer.decode(ids)
    assert tokenizer.decode(ids, skip_special_tokens=True) == hf_tokenizer.decode(ids, skip_special_tokens=True)


def test_text_after_sentinel_starts_word(tokenizer):
    hello = tokenizer.encode("hello")
    assert hello == [21820]
    assert tokenizer.encode("<extra_id_0>hello") == [32099, *hello]
    assert tokenizer.encode("a<extra_id_0>b") == tokenizer.encode("a <extra_id_0> b") == [3, 9, 32099, 3, 115]


def test_whitespace_collapses(tokenizer):
    expected = tokenizer.encode("a b c")
    for text in ("a\nb\tc", "  a   b\r\nc  ", "a\u00a0b\u3000c", "a\x85b\u2028c"):
        assert tokenizer.encode(text) == expected, repr(text)


def test_parity_every_bmp_character(tokenizer, hf_tokenizer):
    texts = [f"a{chr(c)}b {chr(c)}" for c in range(0x10000) if not 0xD800 <= c < 0xE000]
    assert tokenizer.encode_batch(texts) == hf_ids(hf_tokenizer, texts)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.lists(
        st.sampled_from(
            list("abcxyzAEIOU0123456789 .,;!?'-()<>/_")
            + ["\n", "\t", "  ", "é", "ß", "日本", "😀", "👍🏽", "™", "Ｆ", "the", "444", "..", "▁"]
            + ["<extra_id_0>", "<extra_id_1>", "</s>", "<pad>"]
        ),
        max_size=40,
    )
)
def test_parity_random_text(tokenizer, hf_tokenizer, parts):
    text = "".join(parts)
    ids = tokenizer.encode(text)
    assert ids == hf_ids(hf_tokenizer, [text])[0]
    assert tokenizer.decode(ids) == hf_tokenizer.decode(ids)


def test_tied_pieces_follow_transformers(tokenizer):
    # SentencePiece alone (float32 scores) gives "44" "4", "66" "6" and "......" ".".
    pieces = [tokenizer.id_to_piece(i) for i in tokenizer.encode("1,444 £666 Hotta.......")]
    assert pieces == ["▁1,", "4", "44", "▁£", "6", "66", "▁Hot", "t", "a", ".", "......"]


def test_combining_mark_follows_sentencepiece(tokenizer):
    # NOTE: transformers normalizes per grapheme and drops the mark after full-width "Ｆ" (ids [377]).
    # SentencePiece, which T5 was trained with, keeps it as an unknown character.
    assert tokenizer.encode("Ｆ\u0308") == [377, 2]


def test_decode_skips_ids_outside_vocabulary(tokenizer):
    hello = tokenizer.encode("hello world")
    assert tokenizer.decode([-100, *hello, 32100, 32127]) == "hello world"


def test_decode_special_tokens(tokenizer):
    ids = [0, 32099, 21820, 32098, 2, 1]
    assert tokenizer.decode(ids) == "<pad><extra_id_0> hello<extra_id_1><unk></s>"
    assert tokenizer.decode(ids, skip_special_tokens=True) == "hello"


def test_decode_accepts_tensor(tokenizer):
    torch = pytest.importorskip("torch")
    ids = torch.tensor([[21820, 1], [32099, 0]])
    assert tokenizer.decode_batch(ids, skip_special_tokens=True) == ["hello", ""]


# ----- serialization and errors


def test_save_and_load(tokenizer, spiece, tmp_path):
    directory = tokenizer.save(tmp_path / "tok")
    assert (directory / "spiece.model").read_bytes() == spiece.read_bytes()
    loaded = T5Tokenizer.from_dir(directory)
    assert loaded.vocab_size == 32100
    assert loaded.encode("a <extra_id_3> b") == tokenizer.encode("a <extra_id_3> b")


def test_save_keeps_num_sentinels(spiece, tmp_path):
    small = T5Tokenizer(spiece, num_sentinels=10)
    assert small.vocab_size == 32010
    assert small.sentinel_id(0) == 32009
    assert small.encode("<extra_id_10>") != [32000]
    loaded = T5Tokenizer(small.save(tmp_path / "tok"))
    assert loaded.num_sentinels == 10
    assert loaded.padded_vocab_size == 32128


def test_missing_model_error(tmp_path):
    with pytest.raises(TokenizerError, match="tokenizer not found"):
        T5Tokenizer(tmp_path / "absent.model")
    with pytest.raises(TokenizerError, match="contains no spiece.model"):
        T5Tokenizer(tmp_path)


def test_corrupt_model_error(tmp_path):
    path = tmp_path / "spiece.model"
    path.write_bytes(b"this is not a sentencepiece model")
    with pytest.raises(TokenizerError, match="corrupt"):
        T5Tokenizer(path)


def test_metadata_mismatch_error(spiece, tmp_path):
    shutil.copy(spiece, tmp_path / "spiece.model")
    (tmp_path / "tokenizer.yaml").write_text("num_sentinels: 100\nnum_pieces: 250000\n")
    with pytest.raises(TokenizerError, match="250000 pieces"):
        T5Tokenizer(tmp_path)
    (tmp_path / "tokenizer.yaml").write_text("num_sentinel: 100\n")
    with pytest.raises(ConfigError, match="num_sentinels"):
        T5Tokenizer(tmp_path)


def test_non_t5_layout_error(shared_data, tmp_path):
    import sentencepiece as spm

    lines = (shared_data / "english_text" / "tinyshakespeare" / "input.txt").read_text().splitlines()[:500]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(tmp_path / "default"), vocab_size=200, minloglevel=2
    )
    with pytest.raises(TokenizerError, match=r"\(0, 1, 2\)"):
        T5Tokenizer(tmp_path / "default.model")


# ----- training


@pytest.fixture(scope="module")
def multilingual_files(shared_data, tmp_path_factory):
    """Japanese lines as .jsonl.gz (field "content"), German as .txt.gz and Russian as text, plus held-out Japanese."""
    directory = tmp_path_factory.mktemp("multilingual")
    tatoeba = shared_data / "multilingual_text" / "tatoeba"
    japanese = (tatoeba / "tatoeba.jpn-eng.jpn").read_text(encoding="utf-8").splitlines()
    aozora = (shared_data / "multilingual_text" / "aozora_ja" / "wagahaiwa_nekodearu.txt").read_text(encoding="utf-8")
    with gzip.open(directory / "ja.jsonl.gz", "wt", encoding="utf-8") as file:
        for line in japanese[:900] + aozora.splitlines()[:100]:
            file.write(json.dumps({"content": line, "id": 0}, ensure_ascii=False) + "\n")
    with gzip.open(directory / "de.txt.gz", "wt", encoding="utf-8") as file:
        file.write((tatoeba / "tatoeba.deu-eng.deu").read_text(encoding="utf-8"))
    shutil.copy(tatoeba / "tatoeba.rus-eng.rus", directory / "ru.txt")
    files = [directory / "ja.jsonl.gz", directory / "de.txt.gz", directory / "ru.txt"]
    return files, japanese[900:]


def check_t5_layout(tokenizer, num_pieces):
    assert [tokenizer.id_to_piece(i) for i in range(3)] == ["<pad>", "</s>", "<unk>"]
    assert tokenizer.num_pieces == num_pieces
    assert tokenizer.vocab_size == num_pieces + 100
    assert tokenizer.sentinel_id(0) == num_pieces + 99
    assert tokenizer.sentinel_id(99) == num_pieces
    assert tokenizer.encode("x <extra_id_0> y", add_eos=True)[-1] == 1
    assert tokenizer._processor.bos_id() == -1


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_train_english(shared_data, tmp_path, model_type):
    wiki = shared_data / "english_text" / "wikitext-2" / "wiki.valid.tokens"
    tokenizer = train_tokenizer(
        [wiki], tmp_path / "en", vocab_size=1000, model_type=model_type, input_sentence_size=2000
    )
    check_t5_layout(tokenizer, 1000)
    assert tokenizer.model_type == model_type

    loaded = T5Tokenizer.from_dir(tmp_path / "en")
    held_out = (shared_data / "english_text" / "tinyshakespeare" / "input.txt").read_text().splitlines()[:200]
    held_out = [line for line in held_out if line.strip()]
    assert loaded.encode_batch(held_out) == tokenizer.encode_batch(held_out)
    for line, ids in zip(held_out, loaded.encode_batch(held_out)):
        if loaded.unk_id not in ids:
            assert loaded.decode(ids) == " ".join(line.split())
    text = "The <extra_id_0> of the <extra_id_1> ."
    assert loaded.decode(loaded.encode(text)) == "The<extra_id_0> of the<extra_id_1> ."


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_train_multilingual(multilingual_files, tmp_path, model_type):
    files, held_out = multilingual_files
    tokenizer = train_tokenizer(
        files, tmp_path / "ml", vocab_size=2000, model_type=model_type, character_coverage=0.9995, jsonl_field="content"
    )
    check_t5_layout(tokenizer, 2000)

    round_trips = 0
    for line, ids in zip(held_out, tokenizer.encode_batch(held_out)):
        if tokenizer.unk_id not in ids:
            assert tokenizer.decode(ids) == unicodedata.normalize("NFKC", line)
            round_trips += 1
    # Tatoeba sentences use few rare kanji, so most held-out lines have every character covered.
    assert round_trips >= 50

    sentence = "吾輩は猫である。<extra_id_0>名前はまだ無い。"
    ids = tokenizer.encode(sentence)
    assert tokenizer.unk_id not in ids
    assert tokenizer.sentinel_id(0) in ids
    assert tokenizer.decode(ids) == "吾輩は猫である。<extra_id_0> 名前はまだ無い。"
    assert tokenizer.decode(ids, skip_special_tokens=True) == "吾輩は猫である。 名前はまだ無い。"


def test_train_too_large_vocab_error(multilingual_files, tmp_path):
    files, _ = multilingual_files
    with pytest.raises(TokenizerError, match="Vocabulary size"):
        train_tokenizer(files[2:], tmp_path / "ml", vocab_size=100000, model_type="bpe")


def test_train_config_errors(tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("hello world\n")
    with pytest.raises(ConfigError, match="model_type"):
        train_tokenizer([text], tmp_path / "out", vocab_size=100, model_type="wordpiece")
    with pytest.raises(ConfigError, match="character_coverage"):
        train_tokenizer([text], tmp_path / "out", vocab_size=100, character_coverage=1.5)
    with pytest.raises(ConfigError, match="Did you mean 'jsonl_field'"):
        train_tokenizer([text], tmp_path / "out", vocab_size=100, jsonl_feld="text")
    with pytest.raises(TokenizerError, match="input file not found"):
        train_tokenizer([tmp_path / "absent.txt"], tmp_path / "out", vocab_size=100)


def test_train_empty_input_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(TokenizerError, match="no text found"):
        train_tokenizer([empty], tmp_path / "out", vocab_size=100)


# ----- reading training text


def test_iter_lines_formats(tmp_path):
    plain = tmp_path / "a.txt"
    plain.write_bytes("\ufefffirst\r\n\r\nsecond  \n".encode())
    packed = tmp_path / "b.txt.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as file:
        file.write("third\n")
    records = tmp_path / "c.jsonl"
    records.write_text('{"text": "fourth\\nfifth"}\n\n{"text": "sixth", "other": 1}\n', encoding="utf-8")
    assert list(iter_lines([plain, packed, records])) == ["first", "second", "third", "fourth", "fifth", "sixth"]


def test_iter_lines_errors(tmp_path):
    records = tmp_path / "c.jsonl"
    records.write_text('{"text": "ok"}\n{"body": "x"}\n', encoding="utf-8")
    with pytest.raises(TextFileError, match=r"line 2: field 'text' not found \(found: body\)"):
        list(iter_lines([records]))
    records.write_text('{"text": "ok"}\n{broken\n', encoding="utf-8")
    with pytest.raises(TextFileError, match="invalid JSON in .*c.jsonl at line 2"):
        list(iter_lines([records]))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(TextFileError, match="invalid UTF-8 in .*latin1.txt at line 2"):
        list(iter_lines([latin1]))


def test_train_reports_reader_error(tmp_path):
    records = tmp_path / "c.jsonl"
    records.write_text('{"text": "hello world"}\n' * 50 + "{broken\n", encoding="utf-8")
    with pytest.raises(TextFileError, match="invalid JSON in .* at line 51"):
        train_tokenizer([records], tmp_path / "out", vocab_size=30)


# ----- command line


def test_cli_encode(spiece, capsys):
    assert main(["tokenizer", "encode", "--tokenizer", str(spiece), "--eos", "Hello <extra_id_0> world"]) == 0
    output = capsys.readouterr().out
    assert "[8774, 32099, 296, 1]" in output
    assert "['▁Hello', '<extra_id_0>', '▁world', '</s>']" in output


def test_cli_train(shared_data, tmp_path, capsys):
    source = (shared_data / "english_text" / "gutenberg" / "botchan.txt").read_text(encoding="utf-8-sig")
    text = tmp_path / "botchan.txt"
    text.write_text("\n".join(source.splitlines()[:2000]), encoding="utf-8")
    output_dir = tmp_path / "tok"
    argv = ["tokenizer", "train", "--input", str(text), "--output", str(output_dir), "--vocab-size", "800"]
    assert main([*argv, "--model-type", "bpe"]) == 0
    output = capsys.readouterr().out
    assert "pieces             800" in output
    assert "padded vocab size  1024" in output
    assert "Project Gutenberg" in output
    assert T5Tokenizer(output_dir).vocab_size == 900


def test_cli_error_message(tmp_path, capsys):
    absent = str(tmp_path / "absent.txt")
    argv = ["tokenizer", "train", "--input", absent, "--output", str(tmp_path), "--vocab-size", "10"]
    assert main(argv) == 2
    assert "input file not found" in capsys.readouterr().err


def test_word_starts(tokenizer):
    starts = tokenizer.word_starts()
    assert len(starts) == tokenizer.vocab_size
    ids = tokenizer.encode("Eiffel towers")
    pieces = [tokenizer.id_to_piece(i) for i in ids]
    assert [starts[i] for i in ids] == [piece.startswith("▁") for piece in pieces]
    assert sum(starts[i] for i in ids) == 2
    assert starts[tokenizer.sentinel_id(0)]
    assert starts[tokenizer.eos_id]
