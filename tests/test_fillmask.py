"""bertcli.fillmask against transformers (AutoTokenizer + AutoModelForMaskedLM → softmax → topk) on tiny models."""

from __future__ import annotations

import pytest

from bertcli.errors import BadInputError, ModelFileError, UsageError
from bertcli.fillmask import filler_word, load_fill_masker, to_model_mask
from bertcli.resolve import resolve_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def maskers(tiny_models):
    """One FillMasker per masked-LM family, loaded once."""
    names = ("bert", "roberta", "albert", "electra_generator")
    return {name: load_fill_masker(resolve_model(str(tiny_models[name]))) for name in names}


def reference(folder, text: str, k: int):
    """transformers' own answer: (ids, [(mask position, top-k ids, top-k probabilities)])."""
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.AutoModelForMaskedLM.from_pretrained(str(folder)).eval()
    enc = tok(text.replace("[MASK]", tok.mask_token), return_tensors="pt")
    with torch.inference_mode():
        logits = model(**enc).logits[0]
    positions = (enc["input_ids"][0] == tok.mask_token_id).nonzero().flatten().tolist()
    out = []
    for p in positions:
        top = logits[p].softmax(-1).topk(k)
        out.append((p, top.indices.tolist(), top.values.tolist()))
    return enc["input_ids"][0].tolist(), out, tok


@pytest.mark.parametrize("name", ["bert", "roberta", "albert", "electra_generator"])
def test_top_k_equals_transformers(maskers, tiny_models, name):
    text = "The capital of France is [MASK]."
    ids, ref, _ = reference(tiny_models[name], text, 5)
    [result] = maskers[name].fill([text], top_k=5)
    assert len(result.masks) == len(ref) == 1
    mask = result.masks[0]
    assert mask.position == ref[0][0]
    assert [f.token_id for f in mask.fillers] == ref[0][1]
    assert [f.score for f in mask.fillers] == pytest.approx(ref[0][2], abs=1e-5)
    assert len(result.tokens) == len(ids)


def test_roberta_mask_is_translated(maskers):
    [result] = maskers["roberta"].fill(["The capital of France is [MASK]."], top_k=1)
    assert result.model_text == "The capital of France is <mask>."
    assert result.tokens[result.masks[0].position] == "<mask>"
    assert result.as_record()["model_text"] == "The capital of France is <mask>."
    # BERT keeps [MASK]; <mask> typed by the user becomes [MASK] there
    [bert] = maskers["bert"].fill(["The capital of France is <mask>."], top_k=1)
    assert bert.model_text == "The capital of France is [MASK]."
    assert "model_text" not in maskers["bert"].fill(["a [MASK] b"], top_k=1)[0].as_record()


def test_several_masks_each_position_independent(maskers, tiny_models):
    text = "[MASK] was a great [MASK] today"
    _, ref, tok = reference(tiny_models["bert"], text, 3)
    [result] = maskers["bert"].fill([text], top_k=3)
    assert [m.index for m in result.masks] == [1, 2]
    assert [m.position for m in result.masks] == [p for p, _, _ in ref] == [1, 5]
    for mask, (_, ids, probs) in zip(result.masks, ref):
        assert [f.token_id for f in mask.fillers] == ids
        assert [f.score for f in mask.fillers] == pytest.approx(probs, abs=1e-5)
    words = [filler_word(tok.convert_ids_to_tokens(ids[0]), tok.decode([ids[0]]), "WordPiece") for _, ids, _ in ref]
    assert result.filled == f"{words[0]} was a great {words[1]} today"
    assert (result.masks[0].start, result.masks[0].end) == (0, 6)
    assert (result.masks[1].start, result.masks[1].end) == (19, 25)


def test_batch_equals_one_by_one(maskers):
    texts = ["It was a [MASK] day.", "The [MASK] is a beautiful city in the north of the country today.", "[MASK]"]
    together = maskers["albert"].fill(texts, top_k=4)
    for text, batched in zip(texts, together):
        [alone] = maskers["albert"].fill([text], top_k=4)
        assert [f.token_id for f in batched.masks[0].fillers] == [f.token_id for f in alone.masks[0].fillers]
        assert [f.score for f in batched.masks[0].fillers] == pytest.approx(
            [f.score for f in alone.masks[0].fillers], abs=1e-5)


def test_scores_are_probabilities(maskers):
    vocab = maskers["bert"].loaded.config.vocab_size
    [result] = maskers["bert"].fill(["It was a [MASK] day."], top_k=vocab + 10)
    scores = [f.score for f in result.masks[0].fillers]
    assert len(scores) == vocab  # top-k is capped at the vocabulary
    assert sum(scores) == pytest.approx(1.0, abs=1e-4)
    assert scores == sorted(scores, reverse=True)


def test_no_mask_is_bad_input(maskers):
    with pytest.raises(BadInputError, match=r"line 7: no mask in the text; write \[MASK\]"):
        maskers["bert"].fill(["It was a great day."], where=["<stdin>, line 7"])
    with pytest.raises(UsageError, match="--top-k"):
        maskers["bert"].fill(["a [MASK]"], top_k=0)


def test_too_long_is_bad_input(maskers):
    text = "[MASK] " + "day " * 200
    # [CLS] [MASK] + 200 × "day" + [SEP] = 203 tokens
    with pytest.raises(BadInputError, match=r"text 1: 203 tokens, more than the model's maximum of 128"):
        maskers["bert"].fill([text])


def test_model_without_mlm_head_names_head_and_command(tiny_models):
    with pytest.raises(ModelFileError) as info:
        load_fill_masker(resolve_model(str(tiny_models["bert_base_only"])))
    message = str(info.value)
    assert "has no masked-LM head (architecture: BertModel)" in message
    assert "`bertcli fill-mask` needs" in message and "this model fits: bertcli embed" in message
    with pytest.raises(ModelFileError, match="this model fits: bertcli embed, bertcli detect"):
        load_fill_masker(resolve_model(str(tiny_models["electra"])))


def test_to_model_mask_and_filler_word():
    assert to_model_mask("a [MASK] b <mask> c", "<mask>") == "a <mask> b <mask> c"
    assert to_model_mask("a [MASK] b <mask> c", "[MASK]") == "a [MASK] b [MASK] c"
    assert to_model_mask("[mask] stays", "<mask>") == "[mask] stays"
    assert filler_word("##ing", "##ing", "WordPiece") == "ing"
    assert filler_word("Ġparis", " paris", "byte-level BPE") == "paris"
    assert filler_word("▁paris", "paris", "SentencePiece") == "paris"
    assert filler_word("ó", "\ufffd", "byte-level BPE") == "ó"  # a lone byte: show the piece
    assert filler_word("Ċ", "\n", "byte-level BPE") == "Ċ"
