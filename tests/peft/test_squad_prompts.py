"""SQuAD prompt inputs: template parts, prompt position, context truncation, targets and batching."""

from __future__ import annotations

import pytest
import torch

from t5kit.data.squad import SquadExample
from t5kit.data.squad_prompts import PromptInputBuilder, TemplateError, collate, parse_template
from tests.peft.helpers import CharTokenizer

TOKENIZER = CharTokenizer()
ENC = TOKENIZER.encode


def _example(question="why?", context="abcdefghij", answers=("cde", "cd")) -> SquadExample:
    return SquadExample("q1", "T", context, question, tuple(answers), tuple(0 for _ in answers))


def test_input_layout_with_prompt_first():
    builder = PromptInputBuilder(TOKENIZER, "<prompt> question: {question} context: {context}", num_virtual_tokens=3)
    features = builder(_example())
    expected = [0, 0, 0] + ENC("question:") + ENC("why?") + ENC("context:") + ENC("abcdefghij") + [1]
    assert features.input_ids == expected
    assert features.virtual_mask == [True] * 3 + [False] * (len(expected) - 3)
    assert features.truncated == 0


def test_prompt_position_follows_template():
    builder = PromptInputBuilder(TOKENIZER, "question: {question} <prompt> context: {context}", num_virtual_tokens=2)
    features = builder(_example())
    start = len(ENC("question:") + ENC("why?"))
    assert features.virtual_mask[start : start + 2] == [True, True]
    assert sum(features.virtual_mask) == 2
    assert features.input_ids[start : start + 2] == [0, 0]


def test_zero_virtual_tokens_drops_marker():
    builder = PromptInputBuilder(TOKENIZER, "<prompt> question: {question} context: {context}", num_virtual_tokens=0)
    features = builder(_example())
    assert features.input_ids == ENC("question:") + ENC("why?") + ENC("context:") + ENC("abcdefghij") + [1]
    assert not any(features.virtual_mask)


def test_truncation_cuts_context_keeps_question():
    template = "<prompt> question: {question} context: {context}"
    full = 3 + len(ENC("question:") + ENC("why?") + ENC("context:")) + 10 + 1
    builder = PromptInputBuilder(TOKENIZER, template, num_virtual_tokens=3, max_input_length=full - 4)
    features = builder(_example())
    assert len(features.input_ids) == full - 4
    assert features.input_ids == [0, 0, 0] + ENC("question:") + ENC("why?") + ENC("context:") + ENC("abcdef") + [1]
    assert features.truncated == 4


def test_truncation_with_context_before_question():
    template = "context: {context} question: {question} <prompt>"
    full = len(ENC("context:")) + 10 + len(ENC("question:") + ENC("why?")) + 2 + 1
    builder = PromptInputBuilder(TOKENIZER, template, num_virtual_tokens=2, max_input_length=full - 7)
    features = builder(_example())
    assert features.input_ids == ENC("context:") + ENC("abc") + ENC("question:") + ENC("why?") + [0, 0, 1]


def test_question_too_long_raises():
    builder = PromptInputBuilder(TOKENIZER, num_virtual_tokens=3, max_input_length=12)
    with pytest.raises(TemplateError, match="raise max_input_length"):
        builder(_example(question="a very long question indeed?"))


def test_target_is_first_answer_plus_eos():
    builder = PromptInputBuilder(TOKENIZER, num_virtual_tokens=1, max_target_length=3)
    assert builder(_example(answers=("xy", "z"))).labels == ENC("xy") + [1]
    assert builder(_example(answers=("long answer",))).labels == ENC("lo") + [1]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("<prompt> {question} {answer} {context}", "unknown field"),
        ("<prompt> {question} <prompt> {context}", "at most once"),
        ("<prompt> {question}", "no {context} field"),
    ],
)
def test_bad_templates_raise(template, message):
    with pytest.raises(TemplateError, match=message):
        parse_template(template)


def test_missing_marker_with_prompt_raises():
    with pytest.raises(TemplateError, match="no <prompt> marker"):
        PromptInputBuilder(TOKENIZER, "question: {question} context: {context}", num_virtual_tokens=4)


def test_collate_pads_inputs_and_labels():
    builder = PromptInputBuilder(TOKENIZER, num_virtual_tokens=2)
    short, long = builder(_example(context="ab", answers=("a",))), builder(_example(context="abcdef", answers=("abc",)))
    batch = collate([short, long])
    assert batch.ids == ["q1", "q1"]
    assert batch.input_ids.shape == (2, len(long.input_ids))
    pad = len(long.input_ids) - len(short.input_ids)
    assert batch.attention_mask[0].tolist() == [1] * len(short.input_ids) + [0] * pad
    assert batch.input_ids[0, len(short.input_ids) :].tolist() == [0] * pad
    assert batch.labels[0].tolist() == ENC("a") + [1, -100, -100]
    assert batch.virtual_mask.sum(dim=1).tolist() == [2, 2]
    assert batch.task_ids.tolist() == [0, 0]
    assert batch.virtual_mask.dtype == torch.bool


def test_target_prefix_comes_before_answer():
    builder = PromptInputBuilder(TOKENIZER, num_virtual_tokens=1, max_target_length=5, target_prefix="#")
    assert builder(_example(answers=("xyz",))).labels == ENC("#") + ENC("xyz") + [1]
    assert builder(_example(answers=("long answer",))).labels == ENC("#") + ENC("lon") + [1]


def test_answer_ids_strip_prefix_and_stop_at_special():
    from t5kit.tune.evaluate import answer_ids

    generated = torch.tensor([[9, 5, 6, 1, 0], [9, 7, 2, 8, 1], [5, 6, 7, 8, 4]])
    assert answer_ids(generated, TOKENIZER, prefix_ids=[9]) == [[5, 6], [7], [5, 6, 7, 8, 4]]
    assert answer_ids(generated, TOKENIZER) == [[9, 5, 6], [9, 7], [5, 6, 7, 8, 4]]
