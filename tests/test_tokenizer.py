"""bertcli's tokenizer equals transformers' AutoTokenizer, for every tokenizer family, on varied text."""

from __future__ import annotations

import random
import shutil

import pytest

from bertcli.resolve import resolve_model
from bertcli.tokenizer import converted_cache_dir, load_tokenizer

BASE = [
    "It was a great day",
    "I had a sudden epiphany",
    "Beijing is a beautiful city",
    "Machine Learning is a subset of Artifical Intelligence.",
    "",
    " ",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nmixed",
    "multiple     spaces    between words",
    "Café crème brûlée, naïve façade — déjà vu!",
    "ÀÉÎÕÜ àéîõü ßøåæ œ",
    "Emoji: 😀🚀👍🏽 and 👨‍👩‍👧‍👦 family",
    "北京是一个美丽的城市",
    "東京とニューヨーク",
    "한국어 문장입니다",
    "Mixed 中文 and English 混合",
    "Numbers 3.14159, 1,000,000 and -42e10",
    "URLs like https://example.com/a?b=c&d=e#f",
    "e-mail: someone@example.org",
    "Punctuation!!! ??? ... ;;; ::: ''' \"\"\"",
    "CamelCaseWordsAndSNAKE_case_words",
    "don't won't can't it's we're",
    "Ω≈ç√∫˜µ≤≥÷ ¡™£¢∞§¶•ªº",
    "\u00a0non-breaking\u2009thin\u200bzero-width",
    "a" * 300,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "[CLS] [SEP] [MASK] <s> </s> <mask> literal specials",
    "The quick brown fox jumps over the lazy dog. " * 20,
]


def corpus(n: int = 300) -> list[str]:
    rng = random.Random(1234)
    words = " ".join(BASE).split()
    out = list(BASE)
    while len(out) < n:
        k = rng.randint(1, 25)
        seps = [" ", "  ", "\t", " , ", ". ", "-", ""]
        out.append("".join(rng.choice(words) + rng.choice(seps) for _ in range(k)))
    return out


def _transformers_encode(folder, texts, pairs=None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    args = (texts, pairs) if pairs is not None else (texts,)
    return tok(*args, return_token_type_ids=True, return_attention_mask=True), tok


@pytest.mark.parametrize("name", ["bert", "bert_fast", "bert_base_only", "albert", "roberta", "electra"])
def test_equals_autotokenizer_on_varied_text(tiny_models, name):
    folder = tiny_models[name]
    texts = corpus()
    ours = load_tokenizer(resolve_model(str(folder)))
    encs = ours.encode_batch(texts)
    ref, tok = _transformers_encode(folder, texts)
    for i, text in enumerate(texts):
        assert encs[i].ids == ref["input_ids"][i], text
        assert ours.token_strings(encs[i]) == tok.convert_ids_to_tokens(ref["input_ids"][i]), text
        assert encs[i].attention_mask == ref["attention_mask"][i], text
        assert encs[i].type_ids == ref["token_type_ids"][i], text


@pytest.mark.parametrize("name", ["bert", "albert", "roberta"])
def test_pairs_equal_autotokenizer(tiny_models, name):
    folder = tiny_models[name]
    texts = corpus(60)
    firsts, seconds = texts[:30], texts[30:60]
    ours = load_tokenizer(resolve_model(str(folder)))
    encs = ours.encode_batch(firsts, seconds)
    ref, _ = _transformers_encode(folder, firsts, seconds)
    for i in range(30):
        assert encs[i].ids == ref["input_ids"][i]
        assert encs[i].type_ids == ref["token_type_ids"][i]


def test_minilm_reference_ids(minilm_dir):
    tok = load_tokenizer(resolve_model(str(minilm_dir)))
    enc = tok.encode_batch(["It was a great day"])[0]
    assert enc.ids == [101, 2009, 2001, 1037, 2307, 2154, 102]
    assert enc.tokens == ["[CLS]", "it", "was", "a", "great", "day", "[SEP]"]
    assert tok.kind == "WordPiece"
    assert tok.model_max_length == 512


def test_tokenizer_json_padding_is_ignored(minilm_dir, tiny_bert_fast):
    # Both tokenizer.json files pad (128 / 64) and truncate; a plain call must not.
    for folder in (minilm_dir, tiny_bert_fast):
        tok = load_tokenizer(resolve_model(str(folder)))
        assert len(tok.encode_batch(["It was a great day"])[0].ids) == 7
        long = tok.encode_batch(["word " * 300])[0]
        assert len(long.ids) == 302


def test_roberta_byte_level_tokens(tiny_roberta):
    tok = load_tokenizer(resolve_model(str(tiny_roberta)))
    enc = tok.encode_batch(["It was a great day"], add_special_tokens=False)[0]
    assert enc.tokens == ["It", "Ġwas", "Ġa", "Ġgreat", "Ġday"]
    assert tok.kind == "byte-level BPE"
    assert tok.uses_token_types is False


def test_albert_sentencepiece_from_bare_spiece_file(tiny_albert):
    # The source document loads ALBERT's tokenizer from the path of spiece.model alone.
    resolved = resolve_model(str(tiny_albert / "spiece.model"))
    assert resolved.source == "file"
    tok = load_tokenizer(resolved)
    enc = tok.encode_batch(["Beijing is a beautiful city"])[0]
    assert enc.tokens == ["[CLS]", "▁beijing", "▁is", "▁a", "▁beautiful", "▁city", "[SEP]"]
    assert enc.ids[0] == 2 and enc.ids[-1] == 3
    assert "<unk>" not in enc.tokens
    assert tok.kind == "SentencePiece"
    assert tok.uses_token_types is True  # ALBERT: shown although transformers 5 hides them by default


def test_legacy_conversion_is_cached_outside_the_model_folder(tiny_bert, tmp_path, monkeypatch):
    folder = tmp_path / "model"
    shutil.copytree(tiny_bert, folder)
    before = sorted(p.name for p in folder.iterdir())
    monkeypatch.setenv("BERTCLI_CACHE", str(tmp_path / "cache"))
    first = load_tokenizer(resolve_model(str(folder)))
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written into the user's folder
    cached = list(converted_cache_dir().glob("*/tokenizer.json"))
    assert len(cached) == 1
    # The second load comes from the cache, without converting again.
    import bertcli.tokenizer as mod

    monkeypatch.setattr(mod, "_convert_with_transformers", lambda *a, **k: pytest.fail("converted twice"))
    second = load_tokenizer(resolve_model(str(folder)))
    text = "It was a great day"
    assert second.encode_batch([text])[0].ids == first.encode_batch([text])[0].ids


def test_truncation_longest_first(tiny_bert):
    tok = load_tokenizer(resolve_model(str(tiny_bert)))
    enc = tok.encode_batch(["word " * 50], max_length=10)[0]
    assert len(enc.ids) == 10 and enc.ids[0] == 2 and enc.ids[-1] == 3
