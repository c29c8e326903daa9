"""DistilBERT and XLM-RoBERTa (issue 18): tokens, hidden states, fill-mask and QA equal transformers on tiny
random-init models; config arithmetic equals the real tensor sum; inspect, variants and config rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bertcli.backends import load_backend
from bertcli.config import count_parameters
from bertcli.inspect import inspect_model
from bertcli.resolve import resolve_model
from bertcli.tokenizer import load_tokenizer
from bertcli.variants import live_numbers

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

FAMILIES = ("distilbert", "xlm-roberta")
PREFIX = {"distilbert": "DistilBert", "xlm-roberta": "XLMRoberta"}
TEXTS = ["It was a great day.", "Zürich, São Paulo and Kraków", "北京是一个美丽的城市。", "I love this city 😀 ok",
         "Señor Muñoz visited the résumé workshop in Montréal, 2024!"]


@pytest.fixture(autouse=True)
def bertcli_cache(tmp_path_factory, monkeypatch):
    """Converted tokenizers and ONNX exports go to the session's temp folder, never to ~/.cache."""
    monkeypatch.setenv("BERTCLI_CACHE", str(tmp_path_factory.getbasetemp() / "bertcli-cache-distil"))


def _auto(folder, cls="AutoModel"):
    return getattr(transformers, cls).from_pretrained(str(folder)).eval()


def _batch(tok, texts):
    """Right-padded numpy inputs from our tokenizer (as `runner.batch_inputs` makes them)."""
    enc = tok.encode_batch(texts)
    width = max(len(e.ids) for e in enc)
    ids = np.full((len(enc), width), tok.token_id(tok.special_tokens.get("pad_token", "<pad>")) or 0, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, e in enumerate(enc):
        ids[row, : len(e.ids)], mask[row, : len(e.ids)] = e.ids, 1
    return ids, mask


# ---------------------------------------------------------------------------------------------------------
# tokens


@pytest.mark.parametrize("family", FAMILIES)
def test_tokens_equal_autotokenizer(tiny_head, family):
    folder = tiny_head(family, "ForMaskedLM")
    tok = load_tokenizer(resolve_model(str(folder)))
    ref = transformers.AutoTokenizer.from_pretrained(str(folder))
    for text in TEXTS:
        ours = tok.encode_batch([text])[0]
        want = ref(text)
        assert ours.ids == want["input_ids"], text
        assert tok.token_strings(ours) == ref.convert_ids_to_tokens(want["input_ids"]), text
        # neither model has a second token type (DistilBERT has no token-type embeddings at all): transformers 5
        # maps distilbert to BertTokenizer, whose token_type_ids are all 0 — bertcli shows none
        assert set(want.get("token_type_ids", [0])) == {0}
    assert tok.uses_token_types is False
    if family == "xlm-roberta":  # SentencePiece with fairseq's ids: <s>=0 <pad>=1 </s>=2 <unk>=3, <mask> last
        ids = tok.encode_batch(["It was a great day"])[0]
        assert tok.token_strings(ids)[0] == "<s>" and tok.token_strings(ids)[1].startswith("▁")
        assert tok.special_ids == {"cls_token": 0, "pad_token": 1, "sep_token": 2, "unk_token": 3,
                                   "mask_token": ref.mask_token_id, "bos_token": 0, "eos_token": 2}
        assert ref.mask_token_id == json.loads((folder / "config.json").read_text())["vocab_size"] - 1
    else:
        assert tok.mask_token == "[MASK]" and tok.kind == "WordPiece"


def test_tokenize_command_shows_no_token_types_for_distilbert(run_cli, tiny_head):
    proc = run_cli("tokenize", "-m", tiny_head("distilbert", "ForMaskedLM"), "Hello world", "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert "token_type_ids" not in record and record["tokens"][0] == "[CLS]"


# ---------------------------------------------------------------------------------------------------------
# hidden states, fill-mask, QA


@pytest.mark.parametrize("family", FAMILIES)
def test_hidden_states_equal_transformers(tiny_head, family):
    folder = tiny_head(family, "Model")
    resolved = resolve_model(str(folder))
    tok = load_tokenizer(resolved)
    ids, mask = _batch(tok, TEXTS)
    backend = load_backend(resolved, "base", backend="torch", device="cpu")
    assert backend.accepts_token_types is (family != "distilbert")  # DistilBERT's forward takes none
    assert backend.has_pooler is (family == "xlm-roberta")  # RoBERTa's pooler; DistilBERT has none
    hidden = backend.run(ids, mask, None).hidden
    ref = transformers.AutoTokenizer.from_pretrained(str(folder))(TEXTS, padding=True, return_tensors="pt")
    assert ref["input_ids"].tolist() == ids.tolist()
    with torch.inference_mode():
        want = _auto(folder)(**ref).last_hidden_state.numpy()
    real = mask.astype(bool)
    assert np.abs(hidden - want)[real].max() < 1e-5


@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_embeddings_equal_torch(tiny_head, family):
    folder = tiny_head(family, "Model")
    resolved = resolve_model(str(folder))
    ids, mask = _batch(load_tokenizer(resolved), TEXTS)
    onnx = load_backend(resolved, "base", backend="onnx", device="cpu")
    assert onnx.accepts_token_types is (family != "distilbert")  # the export takes the inputs the model does
    hidden = onnx.run(ids, mask, None).hidden
    want = load_backend(resolved, "base", backend="torch", device="cpu").run(ids, mask, None).hidden
    real = mask.astype(bool)
    assert np.abs(hidden - want)[real].max() < 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_fill_mask_equals_transformers(tiny_head, family):
    from bertcli.fillmask import load_fill_masker

    folder = tiny_head(family, "ForMaskedLM")
    text = "The capital of France is [MASK]."
    [result] = load_fill_masker(resolve_model(str(folder))).fill([text], top_k=5)
    ref_tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    enc = ref_tok(text.replace("[MASK]", ref_tok.mask_token), return_tensors="pt")
    with torch.inference_mode():
        logits = _auto(folder, "AutoModelForMaskedLM")(**enc).logits[0]
    [position] = (enc["input_ids"][0] == ref_tok.mask_token_id).nonzero().flatten().tolist()
    top = logits[position].softmax(-1).topk(5)
    [mask] = result.masks
    assert mask.position == position
    assert [f.token_id for f in mask.fillers] == top.indices.tolist()
    assert [f.score for f in mask.fillers] == pytest.approx(top.values.tolist(), abs=1e-5)
    assert result.tokens[position] == ref_tok.mask_token  # "<mask>" for XLM-R, typed as [MASK]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("suffix, head", [("ForSequenceClassification", "seqcls"), ("ForTokenClassification", "tokcls")])
def test_classification_heads_equal_transformers(tiny_head, family, suffix, head):
    folder = tiny_head(family, suffix, id2label={0: "neg", 1: "pos", 2: "mixed"})
    resolved = resolve_model(str(folder))
    ids, mask = _batch(load_tokenizer(resolved), TEXTS[:3])
    logits = load_backend(resolved, head, backend="torch", device="cpu").run(ids, mask, None).logits["logits"]
    with torch.inference_mode():
        want = _auto(folder, "AutoModel" + suffix)(input_ids=torch.from_numpy(ids),
                                                   attention_mask=torch.from_numpy(mask)).logits.numpy()
    assert logits.shape == want.shape and want.shape[-1] == 3
    real = mask.astype(bool) if head == "tokcls" else slice(None)
    assert np.abs(logits - want)[real].max() < 1e-5


def _reference_answer(enc, start: np.ndarray, end: np.ndarray, context: str, max_len: int = 15) -> str:
    """transformers 4.57's question-answering pipeline for one window, top_k=1, no null answer: softmax over the
    context tokens and CLS, the 12 best spans start ≤ end < start + 15 (CLS closed), each widened to whole words
    (align_to_words), scores of equal texts (lower-cased) summed, the best text."""
    open_ = [i for i, s in enumerate(enc.sequence_ids(0)) if s == 1] + [0]
    closed = np.ones(len(start), dtype=bool)
    closed[open_] = False

    def softmax(x):
        x = np.where(closed, -10000.0, x)
        e = np.exp(x - x.max())
        return e / e.sum()

    outer = np.outer(softmax(start), softmax(end))
    outer[0, :] = outer[:, 0] = 0.0
    outer = np.tril(np.triu(outer), max_len - 1)
    order = np.argsort(-outer.flatten(), kind="stable")[:12]
    totals: dict[str, float] = {}
    for flat in order:
        s, e = divmod(int(flat), len(start))
        if outer[s, e] <= 0:
            continue
        first = enc.word_to_chars(0, enc.token_to_word(0, s), sequence_index=1).start
        last = enc.word_to_chars(0, enc.token_to_word(0, e), sequence_index=1).end
        text = context[first:last]
        totals[text.lower()] = totals.get(text.lower(), 0.0) + float(outer[s, e])
    return max(totals, key=totals.get)


@pytest.mark.parametrize("family", FAMILIES)
def test_qa_equals_transformers(tiny_head, family):
    from bertcli.qa import QAOptions, load_answerer

    folder = tiny_head(family, "ForQuestionAnswering")
    question, context = "Where is the Eiffel Tower?", "The Eiffel Tower is in Paris, the capital of France."
    answerer = load_answerer(resolve_model(str(folder)), device="cpu", options=QAOptions(allow_null=False))
    assert answerer.use_token_types is False
    [window] = answerer.windows(question, context)
    ref_tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    enc = ref_tok(question, context, return_tensors="pt")
    assert window.input_ids == enc["input_ids"][0].tolist()  # XLM-R pairs: <s> q </s></s> c </s>
    with torch.inference_mode():
        out = _auto(folder, "AutoModelForQuestionAnswering")(**enc)
    [(start, end)] = answerer.logits([window])
    assert np.abs(start - out.start_logits[0].numpy()).max() < 1e-5
    assert np.abs(end - out.end_logits[0].numpy()).max() < 1e-5
    [best] = answerer.answer(question, context)
    assert best["answer"].lower() == _reference_answer(enc, out.start_logits[0].numpy(), out.end_logits[0].numpy(),
                                                       context)
    assert context[best["start"] : best["end"]] == best["answer"]


# ---------------------------------------------------------------------------------------------------------
# parameter arithmetic, inspect, variants, config


def _meta_count(config: dict, architecture: str) -> int:
    hf_config = transformers.AutoConfig.for_model(**config)
    with torch.device("meta"):
        model = getattr(transformers, architecture)(hf_config)
    return sum(p.numel() for p in model.parameters())


DISTIL = dict(model_type="distilbert", vocab_size=611, dim=48, n_layers=3, n_heads=4, hidden_dim=80,
              max_position_embeddings=97)
XLMR = dict(model_type="xlm-roberta", vocab_size=613, hidden_size=48, num_hidden_layers=3, num_attention_heads=4,
            intermediate_size=80, max_position_embeddings=99, type_vocab_size=1, pad_token_id=1)


@pytest.mark.parametrize("base, extra", [
    (DISTIL, {}), (DISTIL, {"sinusoidal_pos_embds": True}), (DISTIL, {"tie_word_embeddings": False}),
    (XLMR, {}), (XLMR, {"tie_word_embeddings": False}),
], ids=["distilbert", "distilbert-sinusoidal", "distilbert-untied", "xlm-roberta", "xlm-roberta-untied"])
@pytest.mark.parametrize("suffix", ["Model", "ForMaskedLM", "ForQuestionAnswering", "ForSequenceClassification",
                                    "ForTokenClassification"])
def test_parameter_arithmetic_equals_the_tensor_sum(base, extra, suffix):
    config = {**base, **extra, "num_labels": 3 if suffix != "ForQuestionAnswering" else 2}
    architecture = PREFIX[config["model_type"]] + suffix
    counted = count_parameters({**config, "architectures": [architecture]})
    assert counted.total == _meta_count(config, architecture)
    assert counted.base == _meta_count(config, PREFIX[config["model_type"]] + "Model")
    assert counted.run_layers == counted.stored_layers == 3


def test_distilbert_arithmetic_parts():
    counted = count_parameters(DISTIL)
    h, v, p, i = 48, 611, 97, 80
    parts = {part.name: part.params for part in counted.parts}
    assert parts == {"embeddings": v * h + p * h + 2 * h, "encoder": 3 * counted.per_layer}  # no token types, no pooler
    assert counted.per_layer == 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h
    assert counted.architecture == "DistilBertModel"
    assert counted.notes["distilbert"] == {"token_type_embeddings": False, "pooler": False, "sinusoidal_positions": False}


@pytest.mark.parametrize("family", FAMILIES)
def test_inspect_rows(tiny_head, family):
    folder = tiny_head(family, "ForMaskedLM")
    ins = inspect_model(resolve_model(str(folder)))
    record = ins.as_record()
    assert record["family"] == {"distilbert": "DistilBERT", "xlm-roberta": "XLM-RoBERTa"}[family]
    assert record["weights"]["matches_config"] is True
    assert record["uses_token_types"] is False
    assert {c["command"]: c["available"] for c in record["capabilities"]} == {
        "tokenize": True, "embed": True, "fill-mask": True, "qa": False, "detect": False, "classify": False,
        "tag": False, "rerank": False, "zero-shot": False, "nsp": False, "sop": False}
    modules = [m["module"] for m in record["weights"]["modules"]]
    assert modules == ["embeddings", "encoder layer 0", "encoder layer 1", "head: masked LM"]
    # special-token ids read from the files alone equal the tokenizer transformers builds
    ref = transformers.AutoTokenizer.from_pretrained(str(folder))
    specials = record["tokenizer"]["special_tokens"]
    assert {role: s["id"] for role, s in specials.items()} == {
        role: ref.convert_tokens_to_ids(s["token"]) for role, s in specials.items()}
    assert specials["mask_token"]["id"] == ref.mask_token_id
    if family == "distilbert":
        assert [t["name"] for t in record["weights"]["tied"]] == ["vocab_projector.weight"]


def test_variants_live_numbers(tiny_head):
    config = json.loads((tiny_head("distilbert", "ForMaskedLM") / "config.json").read_text())
    live = live_numbers(config)
    assert (live["family"], live["sizes"]["H"], live["sizes"]["layers"]) == ("DistilBERT", 32, 2)
    assert live["total"] == _meta_count(config, "DistilBertForMaskedLM")
    distil = live["distillation"]
    teacher = dict(model_type="bert", vocab_size=config["vocab_size"], hidden_size=32, num_hidden_layers=4,
                   num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    assert (distil["student_layers"], distil["teacher_layers"]) == (2, 4)
    assert distil["student_params"] == _meta_count(config, "DistilBertModel")
    assert distil["teacher_params"] == _meta_count(teacher, "BertModel")
    xlmr = live_numbers(json.loads((tiny_head("xlm-roberta", "ForMaskedLM") / "config.json").read_text()))
    assert xlmr["family"] == "XLM-RoBERTa" and "distillation" not in xlmr


def test_config_diff_across_families_offline(run_cli):
    proc = run_cli("config", "distilbert", "--diff", "xlm-roberta", "-f", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["field"]: (row["a"], row["b"]) for row in json.loads(proc.stdout)}
    assert rows["model_type"] == ("distilbert", "xlm-roberta")
    assert rows["dim"] == (768, None) and rows["n_layers"] == (6, None)  # DistilBERT's own names, as in its file
    # ... and its sizes under BERT's names, so that the families line up: equal widths are no difference
    assert rows["num_hidden_layers"] == (6, 12)
    assert "hidden_size" not in rows and "num_attention_heads" not in rows and "intermediate_size" not in rows
    assert rows["vocab_size"] == (30522, 250002) and rows["max_position_embeddings"] == (512, 514)


def test_model_type_from_a_name():
    from bertcli.resolve import detect_family, model_type_from_name

    assert model_type_from_name("distilbert/distilbert-base-uncased") == "distilbert"  # not "bert"
    assert model_type_from_name("FacebookAI/xlm-roberta-base") == "xlm-roberta"  # not "roberta"
    assert detect_family({"model_type": "xlm-roberta"}, name_hints=[]) == "XLM-RoBERTa"
    assert detect_family({"model_type": "camembert"}, name_hints=[]) == "RoBERTa"
