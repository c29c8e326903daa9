"""bertcli.embed core, in-process: vectors against transformers and sentence-transformers on the real MiniLM
folder, every pooling and --layer, batching invariance, the tiny ALBERT/RoBERTa/ELECTRA models, long and empty
texts, the sentence-transformers folder reader and the streaming .npy writer."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from bertcli.embed import (
    NPY_HEADER_BYTES,
    Embedder,
    NpyStreamWriter,
    cosine_matrix,
    load_embedder,
    normalize_layer,
    sentence_transformers_setup,
)
from bertcli.errors import BadInputError, ModelFileError, UsageError
from bertcli.resolve import resolve_model

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread here: on a busy 2-core machine two spinning OpenMP threads make small batches crawl."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TEXTS = ["It was a great day", "Beijing is a beautiful city", "I had a sudden epiphany about the weather today, really!"]


@pytest.fixture(scope="module")
def minilm(minilm_dir) -> Embedder:
    """The MiniLM folder with its sentence-transformers defaults (mean pooling, normalized, 256 tokens)."""
    return load_embedder(resolve_model(str(minilm_dir)), device="cpu")


@pytest.fixture(scope="module")
def reference(minilm_dir):
    """transformers directly: AutoTokenizer + AutoModel, all hidden states, for TEXTS (padded batch)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(minilm_dir))
    model = AutoModel.from_pretrained(str(minilm_dir)).eval()
    batch = tok(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        out = model(**batch, output_hidden_states=True)
    mask = batch["attention_mask"].unsqueeze(-1).float().numpy()

    def mean(hidden):
        return (np.asarray(hidden) * mask).sum(1) / mask.sum(1)

    return {
        "mask": batch["attention_mask"].numpy(),
        "hidden": [h.numpy() for h in out.hidden_states],
        "mean": mean,
        "pooler": out.pooler_output.numpy(),
        "last": out.last_hidden_state.numpy(),
    }


def _with(embedder: Embedder, **changes) -> Embedder:
    """The same loaded model and tokenizer with other settings (no reload)."""
    from dataclasses import replace

    from bertcli.embed import EmbedStats

    return replace(embedder, stats=EmbedStats(), **changes)


# ---------------------------------------------------------------------------------------------------------
# MiniLM: the real model


def test_minilm_defaults_come_from_its_sentence_transformers_files(minilm):
    assert (minilm.pooling, minilm.normalize, minilm.max_length, minilm.dim) == ("mean", True, 256, 384)
    st = minilm.sentence_transformers
    assert st.modules == ("Transformer", "Pooling", "Normalize") and st.unsupported == ()


def test_mean_pooling_equals_transformers_reference(minilm, reference):
    raw = _with(minilm, normalize=False)
    got = raw.embed_array(TEXTS)
    want = reference["mean"](reference["last"]).astype(np.float32)
    assert got.shape == (3, 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    # normalized: the same direction, unit length
    unit = minilm.embed_array(TEXTS)
    np.testing.assert_allclose(unit, want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-6)


def test_vectors_equal_sentence_transformers(minilm, minilm_dir):
    st_mod = pytest.importorskip("sentence_transformers")
    model = st_mod.SentenceTransformer(str(minilm_dir), device="cpu")
    texts = [*TEXTS, "", "word " * 300]  # empty text and one past max_seq_length 256
    want = model.encode(texts, batch_size=32, normalize_embeddings=True)
    embedder = _with(minilm)
    got = embedder.embed_array(texts)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert (embedder.stats.truncated, embedder.stats.empty, embedder.stats.texts) == (1, 1, 5)


def test_every_pooling_shape_and_values(minilm, reference):
    mask = reference["mask"].astype(bool)
    last = reference["hidden"][-1]
    cls = _with(minilm, pooling="cls", normalize=False).embed_array(TEXTS)
    np.testing.assert_allclose(cls, last[:, 0], atol=1e-5)
    pooler = _with(minilm, pooling="pooler", normalize=False).embed_array(TEXTS)
    np.testing.assert_allclose(pooler, reference["pooler"], atol=1e-5)
    maxed = _with(minilm, pooling="max", normalize=False).embed_array(TEXTS)
    want_max = np.stack([last[i][mask[i]].max(0) for i in range(3)])
    np.testing.assert_allclose(maxed, want_max, atol=1e-5)
    none = list(_with(minilm, pooling="none", normalize=False).embed(TEXTS))
    assert [e.vector.shape for e in none] == [(7, 384), (7, 384), (17, 384)]
    assert none[0].tokens == ["[CLS]", "it", "was", "a", "great", "day", "[SEP]"]
    for i, emb in enumerate(none):
        np.testing.assert_allclose(emb.vector, last[i][mask[i]], atol=1e-5)
    for pooling in ("cls", "pooler", "mean", "max"):
        assert _with(minilm, pooling=pooling).embed_array(TEXTS).shape == (3, 384)
    with pytest.raises(UsageError, match="one matrix per text"):
        _with(minilm, pooling="none").embed_array(TEXTS)


@pytest.mark.parametrize("layer, index", [(0, 0), (1, 1), (-2, 5), (-7, 0), (3, 3)])
def test_layer_picks_that_hidden_state(minilm, reference, layer, index):
    got = _with(minilm, normalize=False, layer=layer).embed_array(TEXTS)
    np.testing.assert_allclose(got, reference["mean"](reference["hidden"][index]), atol=1e-5)


def test_layer_bounds_and_last_layer_is_the_default():
    assert normalize_layer(None, 6) is None
    assert normalize_layer(6, 6) is None and normalize_layer(-1, 6) is None
    assert normalize_layer(-7, 6) == 0 and normalize_layer(2, 6) == 2
    for bad in (7, -8):
        with pytest.raises(UsageError, match=f"--layer {bad} is out of range: this model has 6 layers"):
            normalize_layer(bad, 6)


def test_pooler_only_on_the_last_layer(minilm):
    with pytest.raises(UsageError, match="last layer only"):
        _with(minilm, pooling="pooler", layer=2)


def test_batching_and_sorting_change_no_vector_nor_row_order(minilm):
    texts = [f"{'short ' if i % 3 else 'a much longer sentence with many more words in it '}{i}" for i in range(23)]
    one_big = _with(minilm).embed_array(texts)
    from bertcli.batching import TokenBudgetBatcher

    for batcher in (TokenBudgetBatcher(max_tokens=1, window=5), TokenBudgetBatcher(max_tokens=64, window=7),
                    TokenBudgetBatcher(max_tokens=10_000, window=100, sort=False)):
        embedder = _with(minilm, batcher=batcher)
        np.testing.assert_allclose(embedder.embed_array(texts), one_big, atol=1e-5)
    # each row really is its own text: row i alone gives the same vector
    np.testing.assert_allclose(_with(minilm).embed_array([texts[4]])[0], one_big[4], atol=1e-5)
    assert [e.index for e in _with(minilm, batcher=TokenBudgetBatcher(max_tokens=1, window=5)).embed(texts)] == list(range(23))


def test_long_text_truncated_or_refused(minilm):
    from bertcli.inputs import Line

    long = "word " * 400
    embedder = _with(minilm)
    out = list(embedder.embed([Line(1, "hello"), Line(2, long, "docs.txt")]))
    assert [(e.n_tokens, e.truncated) for e in out] == [(3, False), (256, True)]
    assert (embedder.stats.truncated, embedder.stats.first_truncated) == (1, "docs.txt, line 2")
    with pytest.raises(BadInputError, match="docs.txt, line 2: longer than the limit of 256 tokens"):
        list(_with(minilm, on_long="error").embed([Line(1, "hello"), Line(2, long, "docs.txt")]))


def test_a_one_megabyte_line_is_truncated(minilm):
    embedder = _with(minilm)
    [emb] = list(embedder.embed(["lorem ipsum dolor " * 58_255]))  # ~1 MB
    assert (emb.n_tokens, emb.truncated, emb.vector.shape) == (256, True, (384,))


def test_empty_text_is_embedded_and_counted(minilm):
    embedder = _with(minilm)
    out = list(embedder.embed(["", "  ", "x"]))
    assert [e.n_tokens for e in out] == [2, 2, 3]
    assert embedder.stats.empty == 2
    np.testing.assert_allclose(out[0].vector, out[1].vector, atol=1e-6)  # whitespace is no token


def test_max_length_option(minilm_dir):
    resolved = resolve_model(str(minilm_dir))
    with pytest.raises(UsageError, match="more than this model's maximum of 512"):
        load_embedder(resolved, max_length=600)
    with pytest.raises(UsageError, match="unknown --pooling 'avg'"):
        load_embedder(resolved, pooling="avg")


# ---------------------------------------------------------------------------------------------------------
# tiny models of each family


@pytest.mark.parametrize("name", ["albert", "roberta", "electra", "bert"])
def test_tiny_models_every_pooling_works_or_fails_clearly(tiny_models, name):
    resolved = resolve_model(str(tiny_models[name]))
    base = load_embedder(resolved, pooling="mean")
    texts = ["it was a great day", "a city"]
    for pooling in ("cls", "mean", "max"):
        vectors = _with(base, pooling=pooling).embed_array(texts)
        assert vectors.shape == (2, 32) and np.isfinite(vectors).all()
    none = list(_with(base, pooling="none").embed(texts))
    assert [e.vector.shape[1] for e in none] == [32, 32]
    assert [e.vector.shape[0] for e in none] == [e.n_tokens for e in none] == [len(e.tokens) for e in none]
    # masked-LM / pre-training checkpoints carry no pooler; ELECTRA has none at all
    detail = "has no pooler layer" if name == "electra" else "holds no pooler weights"
    with pytest.raises(ModelFileError, match=f"--pooling pooler: .* has no trained pooler .*{detail}.*use --pooling cls"):
        load_embedder(resolved, pooling="pooler")


def test_tiny_roberta_padding_does_not_change_vectors(tiny_roberta):
    """RoBERTa pads with id 1 and counts positions from it: batched rows must equal rows run alone."""
    embedder = load_embedder(resolve_model(str(tiny_roberta)))
    texts = ["it was a great day and the city was beautiful", "a", "a sudden epiphany"]
    together = embedder.embed_array(texts)
    alone = np.stack([embedder.embed_array([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert embedder.max_length == 128  # 130 positions minus RoBERTa's offset of 2


def test_tiny_bert_encoder_has_a_pooler(tiny_bert_base_only):
    import torch
    from transformers import AutoModel

    embedder = load_embedder(resolve_model(str(tiny_bert_base_only)), pooling="pooler")
    got = embedder.embed_array(["it was a great day"])
    model = AutoModel.from_pretrained(str(tiny_bert_base_only)).eval()
    ids = embedder.tokenizer.encode_batch(["it was a great day"])[0].ids
    with torch.inference_mode():
        want = model(input_ids=torch.tensor([ids])).pooler_output.numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# sentence-transformers folders


def _st_folder(tmp_path, pooling: dict, modules: list[str], max_seq: int | None = 128):
    entries = [{"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
               for i, (kind, path) in enumerate(zip(modules, ["", "1_Pooling", "2_Dense", "3_Normalize"]))]
    tmp_path.mkdir()
    (tmp_path / "modules.json").write_text(json.dumps(entries))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    if max_seq:
        (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq}))
    return tmp_path


def test_sentence_transformers_setup(tmp_path, minilm_dir):
    st = sentence_transformers_setup(minilm_dir)
    assert (st.pooling, st.normalize, st.max_seq_length) == ("mean", True, 256)
    cls = sentence_transformers_setup(_st_folder(tmp_path / "a", {"pooling_mode_cls_token": True},
                                                 ["Transformer", "Pooling"]))
    assert (cls.pooling, cls.normalize, cls.max_seq_length, cls.unsupported) == ("cls", False, 128, ())
    dense = sentence_transformers_setup(_st_folder(tmp_path / "b", {"pooling_mode_mean_sqrt_len_tokens": True},
                                                   ["Transformer", "Pooling", "Dense", "Normalize"], None))
    assert dense.pooling is None and dense.normalize is True and dense.max_seq_length is None
    assert dense.unsupported == ("pooling pooling_mode_mean_sqrt_len_tokens", "Dense")
    assert sentence_transformers_setup(tmp_path / "nothing") is None


# ---------------------------------------------------------------------------------------------------------
# .npy streaming and similarity


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_npy_stream_writer_round_trip(dtype):
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((10, 5)).astype(np.float32)
    buf = io.BytesIO()
    writer = NpyStreamWriter(buf, 5, dtype)
    writer.write(rows[:3])
    writer.write(rows[3])
    writer.write(rows[4:])
    writer.close()
    data = buf.getvalue()
    assert len(data) == NPY_HEADER_BYTES + 10 * 5 * np.dtype(dtype).itemsize
    back = np.load(io.BytesIO(data))
    assert back.dtype == np.dtype(dtype) and back.shape == (10, 5)
    np.testing.assert_array_equal(back, rows.astype(dtype))


def test_npy_stream_writer_with_no_rows_and_wrong_width():
    buf = io.BytesIO()
    writer = NpyStreamWriter(buf, 384)
    with pytest.raises(ValueError, match="row width 3 != 384"):
        writer.write(np.zeros(3))
    writer.close()
    assert np.load(io.BytesIO(buf.getvalue())).shape == (0, 384)


def test_cosine_matrix():
    m = cosine_matrix(np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]]))
    np.testing.assert_allclose(m[:3, :3], [[1, 0, 0.70710677], [0, 1, 0.70710677], [0.70710677, 0.70710677, 1]],
                               atol=1e-6)
    assert (m[3] == 0).all()


def test_bfloat16_compute_is_close_to_float32(minilm_dir):
    torch_minilm = load_embedder(resolve_model(str(minilm_dir)), device="cpu", backend="torch")  # autocast is torch's
    exact = _with(torch_minilm).embed_array(TEXTS)
    fast = _with(torch_minilm, compute="bfloat16").embed_array(TEXTS)
    assert fast.dtype == np.float32 and fast.shape == (3, 384)
    assert not np.array_equal(fast, exact)
    assert ((exact * fast).sum(1) >= 0.9999).all()
    with pytest.raises(UsageError, match="unknown --compute 'int8'"):
        _with(torch_minilm, compute="int8")
