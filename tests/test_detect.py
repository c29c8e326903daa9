"""bertcli.detect against transformers' ElectraForPreTraining, plus word positions and swaps."""

from __future__ import annotations

import pytest

from bertcli.detect import THRESHOLD, apply_replacements, load_detector, parse_replacement, word_spans
from bertcli.errors import ModelFileError, UsageError
from bertcli.resolve import resolve_model
from bertcli.tokenizer import load_tokenizer

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CHEF = "The chef cooked the meal."


@pytest.fixture(scope="module")
def detector(tiny_models):
    return load_detector(resolve_model(str(tiny_models["electra"])))


def reference(folder, text: str):
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.AutoModelForPreTraining.from_pretrained(str(folder)).eval()
    enc = tok(text, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**enc).logits[0]
    return tok.convert_ids_to_tokens(enc["input_ids"][0]), logits.tolist(), torch.sigmoid(logits).tolist()


def test_probabilities_equal_transformers(detector, tiny_models):
    tokens, logits, probs = reference(tiny_models["electra"], CHEF)
    result = detector.detect(CHEF)
    assert [t.token for t in result.tokens] == tokens
    assert [t.logit for t in result.tokens] == pytest.approx(logits, abs=1e-6)
    assert [t.probability for t in result.tokens] == pytest.approx(probs, abs=1e-6)
    assert [t.predicted_replaced for t in result.tokens] == [p > THRESHOLD for p in probs]
    assert result.original is None and result.replacements == [] and result.truncated == 0
    assert [t.special for t in result.tokens] == [True] + [False] * (len(tokens) - 2) + [True]


def test_word_spans_count_punctuation(tiny_models):
    tok = load_tokenizer(resolve_model(str(tiny_models["electra"])))
    assert word_spans(tok, CHEF) == [(0, 3), (4, 8), (9, 15), (16, 19), (20, 24), (24, 25)]


def test_replace_swaps_word_and_marks_its_tokens(detector, tiny_models):
    result = detector.detect(CHEF, [(3, "ate")])
    assert result.text == "The chef ate the meal."
    assert result.original == CHEF
    [swap] = result.replacements
    assert (swap.word, swap.old, swap.new, swap.start, swap.end) == (3, "cooked", "ate", 9, 12)
    swapped = [t.token for t in result.tokens if t.swapped]
    assert "".join(s.removeprefix("##") for s in swapped) == "ate"
    assert all(t.word == 3 for t in result.tokens if t.swapped)
    # the scores are those of the swapped text, exactly as transformers gives them
    _, _, probs = reference(tiny_models["electra"], "The chef ate the meal.")
    assert [t.probability for t in result.tokens] == pytest.approx(probs, abs=1e-6)


def test_several_replacements_shift_spans(tiny_models):
    tok = load_tokenizer(resolve_model(str(tiny_models["electra"])))
    text, done = apply_replacements(tok, CHEF, [(6, "!"), (2, "dog")])
    assert text == "The dog cooked the meal!"
    assert [(r.word, r.old, r.new, r.start, r.end) for r in done] == [(2, "chef", "dog", 4, 7), (6, ".", "!", 23, 24)]
    assert text[done[1].start:done[1].end] == "!"


def test_replace_errors(tiny_models):
    tok = load_tokenizer(resolve_model(str(tiny_models["electra"])))
    with pytest.raises(UsageError, match=r"the text has 6 words, so POS must be 1\.\.6 \(1=The 2=chef 3=cooked"):
        apply_replacements(tok, CHEF, [(7, "x")])
    with pytest.raises(UsageError, match="POS must be 1..6"):
        apply_replacements(tok, CHEF, [(0, "x")])
    with pytest.raises(UsageError, match="word 2 is given twice"):
        apply_replacements(tok, CHEF, [(2, "a"), (2, "b")])
    assert parse_replacement("3=ate") == (3, "ate")
    assert parse_replacement(" 3 = ate ") == (3, "ate")
    assert parse_replacement("cooked=ate") == ("cooked", "ate")
    # a word is its first occurrence (exactly, else ignoring case); positions and words mix
    text, done = apply_replacements(tok, CHEF, [("the", "a"), ("Meal", "dish"), (2, "cook")])
    assert text == "The cook cooked a dish." and [r.word for r in done] == [2, 4, 5]
    with pytest.raises(UsageError, match=r"the text has no word 'baked'; its words are 1=The 2=chef 3=cooked"):
        apply_replacements(tok, CHEF, [("baked", "x")])
    with pytest.raises(UsageError, match="word 3 is given twice"):
        apply_replacements(tok, CHEF, [(3, "a"), ("cooked", "b")])
    for bad, message in (("3", "expected POS=WORD"), ("=x", "expected POS=WORD"), ("3=", "WORD is empty")):
        with pytest.raises(UsageError, match=message):
            parse_replacement(bad)


def test_long_text_is_cut_to_the_model_maximum(detector):
    result = detector.detect("day " * 200)
    assert len(result.tokens) == 128
    assert result.truncated == 202 - 128
    assert result.as_record()["truncated_tokens"] == 74


@pytest.mark.parametrize("name, fits", [
    ("bert", "bertcli embed, bertcli fill-mask"),
    ("electra_generator", "bertcli embed, bertcli fill-mask"),
    ("bert_base_only", "bertcli embed"),
])
def test_non_discriminator_refused(tiny_models, name, fits):
    with pytest.raises(ModelFileError) as info:
        load_detector(resolve_model(str(tiny_models[name])))
    message = str(info.value)
    assert "has no replaced-token-detection (ELECTRA discriminator) head" in message
    assert "which `bertcli detect` needs" in message
    assert message.endswith(f"this model fits: {fits}")
