"""DeBERTa-v2/v3 and ModernBERT (issue 18): tiny random-init models of each, checked against transformers —
tokens, hidden states (torch and ONNX), fill-mask, QA logits, attention, the parameter arithmetic, inspect,
variants, mask and detect."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bertcli.config import count_parameters
from bertcli.resolve import ALIASES, detect_family, resolve_model
from tests.fixtures.checks import one_line_error

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

FAMILIES = ("deberta-v2", "modernbert")
TEXTS = ["It was a great day.", "Paris is the capital of France, héhé 😀!", "  Spaces   and\ttabs. ", "x"]
LONG = " ".join(["The quick brown fox jumps over the lazy dog near the river bank."] * 3)  # > window, > buckets


@pytest.fixture(scope="module")
def mlm(tiny_head):
    return {family: tiny_head(family, "ForMaskedLM") for family in FAMILIES}


@pytest.fixture(scope="module")
def reference_tokenizers(mlm):
    return {family: transformers.AutoTokenizer.from_pretrained(str(folder)) for family, folder in mlm.items()}


@pytest.mark.parametrize("family", FAMILIES)
def test_tokens_equal_autotokenizer(mlm, reference_tokenizers, family):
    from bertcli.tokenizer import load_tokenizer

    tok = load_tokenizer(resolve_model(str(mlm[family])))
    ref = reference_tokenizers[family]
    for text in TEXTS + ["Paris is [MASK] ."]:
        enc = tok.encode_batch([text])[0]
        ids = ref(text)["input_ids"]
        assert enc.ids == ids, text
        assert tok.token_strings(enc) == ref.convert_ids_to_tokens(ids), text
    pair = tok.encode_batch(["Where is it?"], ["It is in Paris."])[0]
    assert pair.ids == ref("Where is it?", "It is in Paris.")["input_ids"]
    assert tok.uses_token_types is False  # deberta-v3: type_vocab_size 0; ModernBERT: none at all
    assert tok.mask_token == "[MASK]" and tok.token_id("[MASK]") == ref.mask_token_id
    marker = {"deberta-v2": "▁", "modernbert": "Ġ"}[family]
    assert any(t.startswith(marker) for t in tok.token_strings(tok.encode_batch(TEXTS[:1])[0]))


@pytest.mark.parametrize("backend", ["torch", "onnx"])
@pytest.mark.parametrize("family", FAMILIES)
def test_hidden_states_equal_transformers(mlm, reference_tokenizers, family, backend):
    """A padded batch holding a text longer than ModernBERT's local window and DeBERTa's position buckets."""
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    from bertcli.embed import load_embedder

    texts = [LONG, *TEXTS]
    embedder = load_embedder(resolve_model(str(mlm[family])), pooling="none", backend=backend)
    ours = list(embedder.embed(texts))
    model = transformers.AutoModel.from_pretrained(str(mlm[family])).eval()
    enc = reference_tokenizers[family](texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**enc).last_hidden_state.numpy()
    assert ours[0].n_tokens > 32  # longer than the window (16) and than the buckets can tell apart
    for i, emb in enumerate(ours):
        n = int(enc["attention_mask"][i].sum())
        assert emb.vector.shape == (n, 32)
        np.testing.assert_allclose(emb.vector, hidden[i, :n], atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_fill_mask_equals_transformers(mlm, reference_tokenizers, family):
    from bertcli.fillmask import load_fill_masker

    text = "The capital of France is [MASK]."
    [result] = load_fill_masker(resolve_model(str(mlm[family]))).fill([text], top_k=5)
    tok = reference_tokenizers[family]
    model = transformers.AutoModelForMaskedLM.from_pretrained(str(mlm[family])).eval()
    enc = tok(text, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**enc).logits[0]
    position = enc["input_ids"][0].tolist().index(tok.mask_token_id)
    top = logits[position].softmax(-1).topk(5)
    [mask] = result.masks
    assert mask.position == position
    assert [f.token_id for f in mask.fillers] == top.indices.tolist()
    assert [f.score for f in mask.fillers] == pytest.approx(top.values.tolist(), abs=1e-5)
    assert result.tokens == tok.convert_ids_to_tokens(enc["input_ids"][0])
    # the top filler goes where [MASK] was, the text around it kept (ModernBERT's [MASK] absorbs the space)
    assert result.filled == f"The capital of France is {mask.fillers[0].word}."
    assert text[mask.start:mask.end] == "[MASK]"


@pytest.mark.parametrize("family", FAMILIES)
def test_qa_logits_equal_transformers(tiny_head, family):
    from bertcli.qa import load_answerer

    folder = tiny_head(family, "ForQuestionAnswering")
    question, context = "Where is the tower?", "The tower is in Paris, and it is tall."
    answerer = load_answerer(resolve_model(str(folder)), device="cpu")
    [window] = answerer.windows(question, context)
    [(start, end)] = answerer.logits([window])
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(str(folder)).eval()
    enc = tok(question, context, return_tensors="pt")
    assert window.input_ids == enc["input_ids"][0].tolist()
    enc.pop("token_type_ids", None)  # neither model uses token types (deberta-v3: type_vocab_size 0)
    with torch.inference_mode():
        out = model(**enc)
    np.testing.assert_allclose(start, out.start_logits[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(end, out.end_logits[0].numpy(), atol=1e-5)
    [best] = answerer.answer(question, context)
    assert context[best["start"]:best["end"]] == best["answer"]


def test_modernbert_attention_weights_show_the_local_window(mlm):
    """Eager attention returns weights on ModernBERT: its local layer attends within the window only."""
    from bertcli.attention import load_attention_reader

    reader = load_attention_reader(resolve_model(str(mlm["modernbert"])))
    global_map, local_map = (reader.read(LONG, layer=layer, head="mean") for layer in (1, 2))  # layer 1 global
    n = len(local_map.tokens)
    far = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) > 8  # window 16: 8 tokens either side
    assert n > 32
    np.testing.assert_allclose(np.asarray(local_map.matrix).sum(-1), 1, atol=1e-5)
    assert np.asarray(local_map.matrix)[far].max() == 0
    assert np.asarray(global_map.matrix)[far].min() > 0


# ------------------------------------------------------------------------------------------------------
# config arithmetic: equal to the sum of the real tensors of the model transformers builds

_SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100,
              max_position_embeddings=64, pad_token_id=0)
_DEBERTA = [
    {},  # v1-like defaults: absolute positions, no relative attention
    dict(relative_attention=True, position_buckets=16, pos_att_type="p2c|c2p", share_att_key=True,
         norm_rel_ebd="layer_norm", position_biased_input=False, type_vocab_size=0),  # deberta-v3
    dict(relative_attention=True, pos_att_type=["c2p", "p2c"], type_vocab_size=2, embedding_size=16),  # v2 unshared
    dict(relative_attention=True, max_relative_positions=20, pos_att_type="c2p", conv_kernel_size=3, legacy=False),
]
_DEBERTA_V1 = [
    dict(relative_attention=True, pos_att_type="c2p|p2c", type_vocab_size=2, embedding_size=16),  # deberta-base-like
    dict(relative_attention=True, max_relative_positions=20, pos_att_type=["c2p"], talking_head=True, legacy=False),
]
_MODERNBERT = [
    {},
    dict(attention_bias=True, mlp_bias=True, norm_bias=True, classifier_bias=True, num_hidden_layers=4),
    dict(decoder_bias=False, tie_word_embeddings=False, num_labels=5),
]
_SUFFIXES = ("Model", "ForMaskedLM", "ForQuestionAnswering", "ForSequenceClassification", "ForTokenClassification")


@pytest.mark.parametrize("prefix, extra", [("DebertaV2", e) for e in _DEBERTA] + [("Deberta", e) for e in _DEBERTA_V1]
                         + [("ModernBert", e) for e in _MODERNBERT])
def test_parameter_arithmetic_equals_the_real_tensors(prefix, extra):
    config_cls = getattr(transformers, prefix + "Config")
    size = {"intermediate_size": 48, "bos_token_id": 1, "eos_token_id": 2, "cls_token_id": 1, "sep_token_id": 2} \
        if prefix == "ModernBert" else {}
    config = config_cls(**{**_SMALL, **size, **extra})
    for suffix in _SUFFIXES:
        with torch.device("meta"):  # shapes only
            model = getattr(transformers, prefix + suffix)(config)
        as_json = {**config.to_dict(), "architectures": [prefix + suffix]}
        assert count_parameters(as_json).total == sum(p.numel() for p in model.parameters()), (suffix, extra)


def test_bundled_alias_numbers():
    from bertcli.bundled import bundled_model

    deberta = count_parameters(bundled_model("deberta-v3").config)
    assert (deberta.architecture, deberta.total) == ("DebertaV2Model", deberta.base)
    rel = deberta.notes["relative_positions"]
    assert (rel["position_buckets"], rel["rel_embeddings"], rel["position_projections_per_layer"]) == (256, 2 * 256 * 768, 0)
    assert rel["absolute_positions_in_input"] is False
    modern = count_parameters(bundled_model("modernbert").config)
    assert modern.architecture == "ModernBertForMaskedLM"
    assert modern.notes["glu"]["Wi"] == 768 * 2 * 1152
    assert modern.notes["attention_layers"] == {"global": 8, "local": 14, "local_window": 128}
    assert modern.notes["tied_decoder"] == {"tied": True, "decoder_params_saved": 50368 * 768}
    assert {ALIASES["deberta-v3"].family, ALIASES["modernbert"].family} == {"DeBERTa", "ModernBERT"}
    from bertcli.limits import token_limit

    # ModernBERT's 8,192-token context (rotary: no table to run out of), DeBERTa-v3's 512
    assert token_limit(bundled_model("modernbert").config, 8192) == 8192
    assert token_limit(bundled_model("deberta-v3").config, None) == 512


@pytest.mark.parametrize("model_type, family, arch", [("deberta-v2", "DeBERTa", "DebertaV2ForMaskedLM"),
                                                      ("deberta", "DeBERTa", "DebertaForQuestionAnswering"),
                                                      ("modernbert", "ModernBERT", "ModernBertModel")])
def test_family_detection(model_type, family, arch, tmp_path):
    from bertcli.inspect import no_model_type_error

    assert detect_family({"model_type": model_type}) == family
    (tmp_path / "config.json").write_text(json.dumps({"architectures": [arch]}))  # no model_type: the hint names it
    assert f'add "model_type": "{model_type}"' in str(no_model_type_error(resolve_model(str(tmp_path))))


# ------------------------------------------------------------------------------------------------------
# inspect, variants, mask, detect


@pytest.mark.parametrize("family, suffix, runs", [
    ("deberta-v2", "ForMaskedLM", {"tokenize", "embed", "fill-mask"}),
    ("modernbert", "ForMaskedLM", {"tokenize", "embed", "fill-mask"}),
    ("modernbert", "ForQuestionAnswering", {"tokenize", "embed", "qa"}),
])
def test_inspect(tiny_head, family, suffix, runs):
    from bertcli.inspect import inspect_model

    rec = inspect_model(resolve_model(str(tiny_head(family, suffix)))).as_record()
    assert rec["family"] == {"deberta-v2": "DeBERTa", "modernbert": "ModernBERT"}[family]
    assert {c["command"] for c in rec["capabilities"] if c["available"]} == runs
    assert rec["weights"]["matches_config"] is True  # config arithmetic = the tensors in the file
    modules = [m["module"] for m in rec["weights"]["modules"]]
    assert "other" not in modules
    tok = transformers.AutoTokenizer.from_pretrained(str(tiny_head(family, suffix)))
    specials = rec["tokenizer"]["special_tokens"]
    assert specials["mask_token"] == {"token": "[MASK]", "id": tok.mask_token_id}  # deberta: after the pieces
    assert rec["uses_token_types"] is False


def test_variants_live_numbers(mlm):
    from bertcli.variants import get_variant, live_numbers

    assert get_variant("deberta-v3").name == "DeBERTa" and get_variant("modernbert").name == "ModernBERT"
    deberta = live_numbers(json.loads((mlm["deberta-v2"] / "config.json").read_text()))
    assert deberta["family"] == "DeBERTa"
    assert deberta["relative_positions"]["rel_embeddings"] == 2 * 16 * 32
    modern = live_numbers(json.loads((mlm["modernbert"] / "config.json").read_text()))
    assert (modern["family"], modern["max_positions"]) == ("ModernBERT", 512)
    assert modern["attention_layers"] == {"global": 1, "local": 1, "local_window": 16}
    assert modern["glu"]["params_per_layer"] == 32 * 96 + 48 * 32


def test_mask_defaults_to_the_family_rate(mlm, run_output, capsys):
    from bertcli.commands.mask import mask

    rates = {}
    for family in FAMILIES:
        mask(LONG, model=str(mlm[family]), strategy="dynamic", epochs=1, seed=0, mask_prob=None, samples=None,
             fmt="json", quiet=True)
        rates[family] = json.loads(capsys.readouterr().out)[0]["mask_prob"]
    assert rates == {"deberta-v2": 0.15, "modernbert": 0.30}


def test_detect_refuses_deberta_even_with_its_rtd_head(tiny_head, tmp_path, run_cli):
    """DeBERTa-v3's discriminator head (mask_predictions.*) has no transformers class: a clear exit 6."""
    import shutil

    from safetensors.numpy import load_file, save_file

    folder = shutil.copytree(tiny_head("deberta-v2", "ForMaskedLM"), tmp_path / "deberta-rtd")
    tensors = load_file(folder / "model.safetensors")
    tensors["mask_predictions.classifier.weight"] = np.zeros((1, 32), dtype=np.float32)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    err = one_line_error(run_cli("detect", "It was great.", "-m", folder), 6)
    assert "holds DeBERTa-v3's replaced-token-detection head (mask_predictions.*)" in err
    assert "fits: bertcli embed, bertcli fill-mask" in err


def test_deberta_original_mlm_head_is_read_not_initialised(tiny_head, tmp_path):
    """microsoft/deberta-base and the v2 checkpoints ship lm_predictions.* and no `legacy` in config.json:
    fill-mask loads that head (transformers' default would build another one, randomly initialised)."""
    import shutil

    from bertcli.fillmask import load_fill_masker

    folder = shutil.copytree(tiny_head("deberta-v2", "ForMaskedLM", legacy=False), tmp_path / "deberta-v2")
    config = json.loads((folder / "config.json").read_text())
    del config["legacy"]
    (folder / "config.json").write_text(json.dumps(config))
    text = "The capital of France is [MASK]."
    [result] = load_fill_masker(resolve_model(str(folder))).fill([text], top_k=3)
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.AutoModelForMaskedLM.from_pretrained(str(folder), legacy=False).eval()
    enc = tok(text, return_tensors="pt")
    with torch.inference_mode():
        probs = model(**enc).logits[0, result.masks[0].position].softmax(-1)
    top = probs.topk(3)
    assert [f.token_id for f in result.masks[0].fillers] == top.indices.tolist()
    assert [f.score for f in result.masks[0].fillers] == pytest.approx(top.values.tolist(), abs=1e-5)
