"""Tests for bertcli.compare: cuts by character offsets, differences on a constructed example, real tokenizers."""

from __future__ import annotations

import pytest

from bertcli.compare import MARKERS, Tokenization, compare_record, cuts, differences, marker_for, tokenize
from bertcli.resolve import resolve_model
from bertcli.tokenizer import load_tokenizer


def _tok(model: str, text: str, pieces: list[str], kind: str = "WordPiece") -> Tokenization:
    """A tokenization of ``text`` from its pieces in order (offsets found by searching the text)."""
    offsets, pos = [], 0
    for piece in pieces:
        start = text.index(piece, pos)
        offsets.append((start, start + len(piece)))
        pos = start + len(piece)
    return Tokenization(model, kind, pieces, list(range(len(pieces))), offsets)


TEXT = "an unaffable cat!"  # "un" 3-5, "unaffable" 3-12, "cat" 13-16, "!" 16-17


def test_differences_on_a_constructed_example_are_exact():
    a = _tok("a", TEXT, ["an", "un", "aff", "able", "cat", "!"])
    b = _tok("b", TEXT, ["an", "una", "ffable", "cat", "!"])
    c = _tok("c", TEXT, ["an", "un", "affable", "ca", "t!"])
    assert cuts(TEXT, a) == [0, 2, 3, 5, 8, 12, 13, 16, 17]
    diff = differences(TEXT, [a, b, c])
    assert diff["shared"] == [0, 2, 3, 12, 13, 17]
    assert diff["not_shared"] == [
        {"position": 5, "context": "an un|affable cat!", "models": ["a", "c"]},
        {"position": 6, "context": "an una|ffable cat!", "models": ["b"]},
        {"position": 8, "context": "an unaff|able cat!", "models": ["a"]},
        {"position": 15, "context": "unaffable ca|t!", "models": ["c"]},
        {"position": 16, "context": "naffable cat|!", "models": ["a", "b"]},
    ]
    # regions: between shared cuts at word edges; the cut at 16 ("cat|!") is not shared, so "cat!" is one region
    assert diff["regions"] == [
        {"start": 3, "end": 12, "text": "unaffable",
         "pieces": {"a": ["un", "aff", "able"], "b": ["una", "ffable"], "c": ["un", "affable"]},
         "tokens": {"a": ["un", "aff", "able"], "b": ["una", "ffable"], "c": ["un", "affable"]}},
        {"start": 13, "end": 17, "text": "cat!",
         "pieces": {"a": ["cat", "!"], "b": ["cat", "!"], "c": ["ca", "t!"]},
         "tokens": {"a": ["cat", "!"], "b": ["cat", "!"], "c": ["ca", "t!"]}},
    ]


def test_identical_splits_have_no_differences():
    a = _tok("a", TEXT, ["an", "un", "affable", "cat", "!"])
    b = _tok("b", TEXT, ["an", "un", "affable", "cat", "!"], kind="SentencePiece")
    assert differences(TEXT, [a, b]) == {"shared": [0, 2, 3, 5, 12, 13, 16, 17], "not_shared": [], "regions": []}


def test_cuts_trim_whitespace_and_skip_special_and_empty_tokens():
    text = "It was"
    # a token spanning " was" (space included), a zero-width token, and special tokens at (0, 0)
    t = Tokenization("x", "byte-level BPE", ["<s>", "It", "Ġ", "Ġwas", "</s>"], [0, 1, 2, 3, 4],
                     [(0, 0), (0, 2), (2, 2), (2, 6), (0, 0)], [True, False, False, False, True])
    assert cuts(text, t) == [0, 2, 3, 6]
    assert t.count == 3
    assert t.marker == "Ġ"


def test_inside_a_word_shared_cuts_do_not_split_a_region():
    text = "epiphany"
    a = _tok("a", text, ["ep", "ip", "han", "y"])
    b = _tok("b", text, ["e", "pi", "p", "h", "any"])
    diff = differences(text, [a, b])
    assert diff["shared"] == [0, 4, 8]  # "epip|hany" is shared but lies inside the word
    assert [r["text"] for r in diff["regions"]] == ["epiphany"]
    assert diff["regions"][0]["pieces"] == {"a": ["ep", "ip", "han", "y"], "b": ["e", "pi", "p", "h", "any"]}


def test_markers_per_kind():
    assert {k: v[0] for k, v in MARKERS.items()} == {"WordPiece": "##", "SentencePiece": "▁", "byte-level BPE": "Ġ"}
    assert marker_for("WordPiece") == "##"
    assert marker_for("BPE") is None
    assert marker_for(None) is None


def test_tokenization_checks_lengths():
    with pytest.raises(ValueError):
        Tokenization("x", "WordPiece", ["a", "b"], [1], [(0, 1), (1, 2)])


def test_minilm_tokens_exact(minilm_dir):
    tok = load_tokenizer(resolve_model(str(minilm_dir)))
    plain = tokenize(tok, "It was a great day", "minilm")
    assert plain.tokens == ["it", "was", "a", "great", "day"]
    assert plain.ids == [2009, 2001, 1037, 2307, 2154]
    assert plain.offsets == [(0, 2), (3, 6), (7, 8), (9, 14), (15, 18)]
    assert plain.count == 5
    full = tokenize(tok, "It was a great day", "minilm", add_special_tokens=True)
    assert full.ids == [101, 2009, 2001, 1037, 2307, 2154, 102]
    assert full.special == [True, False, False, False, False, False, True]
    assert full.count == 5


def test_wordpiece_vs_sentencepiece_vs_bpe_on_real_tokenizers(minilm_dir, tiny_albert, tiny_roberta):
    text = "I had a sudden epiphany"
    runs = [tokenize(load_tokenizer(resolve_model(str(path))), text, name)
            for name, path in (("minilm", minilm_dir), ("albert", tiny_albert), ("roberta", tiny_roberta))]
    minilm, albert, roberta = runs
    assert minilm.tokens == ["i", "had", "a", "sudden", "ep", "##ip", "##han", "##y"]
    assert minilm.ids == [1045, 2018, 1037, 5573, 4958, 11514, 4819, 2100]
    assert albert.tokens == ["▁i", "▁had", "▁a", "▁sudden", "▁e", "pi", "p", "h", "any"]
    assert roberta.tokens == ["I", "Ġhad", "Ġa", "Ġsudden", "Ġe", "p", "i", "p", "h", "any"]
    assert [r.kind for r in runs] == ["WordPiece", "SentencePiece", "byte-level BPE"]
    record = compare_record(text, runs)
    assert [m["count"] for m in record["models"]] == [8, 9, 10]
    diff = record["differences"]
    assert diff["shared"] == [0, 1, 2, 5, 6, 7, 8, 14, 15, 19, 23]
    assert [(d["position"], d["models"]) for d in diff["not_shared"]] == [
        (16, ["albert", "roberta"]), (17, ["minilm", "roberta"]), (18, ["albert", "roberta"]),
        (20, ["albert", "roberta"]), (22, ["minilm"]),
    ]
    assert diff["regions"] == [{
        "start": 15, "end": 23, "text": "epiphany",
        "pieces": {"minilm": ["ep", "ip", "han", "y"], "albert": ["e", "pi", "p", "h", "any"],
                   "roberta": ["e", "p", "i", "p", "h", "any"]},
        "tokens": {"minilm": ["ep", "##ip", "##han", "##y"], "albert": ["▁e", "pi", "p", "h", "any"],
                   "roberta": ["Ġe", "p", "i", "p", "h", "any"]},
    }]
