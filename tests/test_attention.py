"""bertcli.attention against transformers' eager attentions; bucketing, top-N, colour scales and the PNG."""

from __future__ import annotations

import io
import struct
import sys

import numpy as np
import pytest

from bertcli.attention import (
    AttentionMap,
    as_record,
    bucket_matrix,
    load_attention_reader,
    parse_head,
    pick_scale,
    require_matplotlib,
    resolve_index,
    resolve_layer,
    save_png,
    shade,
    short_name,
    tick_positions,
    top_attended,
)
from bertcli.errors import MissingDependencyError, UsageError
from bertcli.resolve import resolve_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CHEF = "The chef cooked the meal."


def reference(folder, text: str, **tok_kwargs):
    """All layers' attentions from transformers (eager), as numpy [layers, heads, n, n]."""
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    enc = tok(text, return_tensors="pt", **tok_kwargs)
    with torch.inference_mode():
        out = model(**enc, output_attentions=True)
    return tok.convert_ids_to_tokens(enc["input_ids"][0]), np.stack([a[0].numpy() for a in out.attentions])


@pytest.fixture(scope="module")
def bert_reader(tiny_models):
    return load_attention_reader(resolve_model(str(tiny_models["bert"])))


@pytest.fixture(scope="module")
def minilm_reader(minilm_dir):
    return load_attention_reader(resolve_model(str(minilm_dir)))


@pytest.mark.parametrize("name", ["bert", "roberta", "albert", "electra"])
def test_one_head_equals_transformers(tiny_models, name):
    reader = load_attention_reader(resolve_model(str(tiny_models[name])))
    tokens, ref = reference(tiny_models[name], CHEF)
    amap = reader.read(CHEF, layer=2, head=0)  # layers count from 1 (0 is the embedding output), heads from 0
    assert amap.tokens == tokens
    assert (amap.layer, amap.head, amap.num_layers, amap.num_heads) == (2, 0, 2, 2)
    np.testing.assert_allclose(amap.matrix, ref[1, 0], atol=1e-6)
    np.testing.assert_allclose(amap.matrix.sum(axis=1), 1.0, atol=1e-5)


def test_mean_and_negative_indices(bert_reader, tiny_models):
    _, ref = reference(tiny_models["bert"], CHEF)
    mean = bert_reader.read(CHEF, layer=-1, head="mean")
    assert (mean.layer, mean.head, mean.head_label) == (2, None, "mean")
    np.testing.assert_allclose(mean.matrix, ref[1].mean(axis=0), atol=1e-6)
    last = bert_reader.read(CHEF, layer=-2, head=-1)
    assert (last.layer, last.head) == (1, 1)
    np.testing.assert_allclose(last.matrix, ref[0, 1], atol=1e-6)
    np.testing.assert_allclose(bert_reader.read(CHEF, layer=1, head=1).matrix, last.matrix)  # 1 == -2 here
    assert last.describe() == "layer 1 of 1–2 · head 1 of 0–1"
    assert mean.describe() == "layer 2 of 1–2 · mean of 2 heads"


def test_real_minilm_equals_transformers(minilm_reader, minilm_dir):
    tokens, ref = reference(minilm_dir, "It was a great day")
    amap = minilm_reader.read("It was a great day", layer=-1, head=3)
    assert amap.tokens == tokens == ["[CLS]", "it", "was", "a", "great", "day", "[SEP]"]
    assert (amap.num_layers, amap.num_heads) == (6, 12)
    np.testing.assert_allclose(amap.matrix, ref[5, 3], atol=1e-6)


def test_minilm_at_512_tokens(minilm_reader):
    text = "the quick brown fox jumps over the lazy dog " * 70  # 630 words
    amap = minilm_reader.read(text, layer=1, head=0)
    assert amap.matrix.shape == (512, 512)
    assert amap.truncated == 632 - 512
    assert (amap.tokens[0], amap.tokens[-1]) == ("[CLS]", "[SEP]")
    np.testing.assert_allclose(amap.matrix.sum(axis=1), 1.0, atol=1e-5)
    grid = bucket_matrix(amap.matrix, 40)
    assert (grid.size, len(grid.ranges), grid.ranges[-1]) == (13, 40, (507, 512))
    np.testing.assert_allclose(grid.values.sum(axis=1), 1.0, atol=1e-5)


def test_out_of_range_layer_and_head(bert_reader):
    with pytest.raises(UsageError, match=r"--layer 3 is out of range: this model has 2 layers, so use 1\.\.2 \(or -2\.\.-1"):
        bert_reader.read(CHEF, layer=3)
    with pytest.raises(UsageError, match=r"--layer -3 is out of range"):
        bert_reader.read(CHEF, layer=-3)
    with pytest.raises(UsageError, match=r"--layer 0 is the embedding output, which has no attention: use an encoder "
                                         r"layer, 1\.\.2 \(or -2\.\.-1 from the end\)"):
        bert_reader.read(CHEF, layer=0)
    with pytest.raises(UsageError, match=r"--head 2 is out of range: this model has 2 heads, so use 0\.\.1"):
        bert_reader.read(CHEF, layer=1, head=2)
    assert [resolve_layer(n, 6) for n in (1, 6, -1, -6)] == [0, 5, 5, 0]
    assert resolve_index(-1, 12, "head") == 11 and resolve_index(0, 12, "head") == 0
    assert resolve_index(-1, 6, "layer") == 5
    assert resolve_index(-6, 6, "layer") == 0
    assert parse_head("mean") == "mean" and parse_head(" Mean ") == "mean" and parse_head(None) == "mean"
    assert parse_head("-1") == -1 and parse_head("11") == 11
    with pytest.raises(UsageError, match="give a head number"):
        parse_head("first")


def test_bucket_matrix_by_hand():
    m = np.array([
        [0.5, 0.5, 0.0, 0.0, 0.0],
        [0.1, 0.2, 0.3, 0.4, 0.0],
        [0.0, 0.0, 0.0, 0.0, 1.0],
        [0.2, 0.2, 0.2, 0.2, 0.2],
        [1.0, 0.0, 0.0, 0.0, 0.0],
    ])
    grid = bucket_matrix(m, 2)
    assert (grid.size, grid.ranges, grid.bucketed) == (3, [(0, 3), (3, 5)], True)
    # cell = mean over the bucket's rows of the sum over its columns
    expected = np.array([[(1.0 + 0.6 + 0.0) / 3, (0.0 + 0.4 + 1.0) / 3], [(0.6 + 1.0) / 2, (0.4 + 0.0) / 2]])
    np.testing.assert_allclose(grid.values, expected)
    same = bucket_matrix(m, 5)
    assert (same.size, same.bucketed) == (1, False)
    np.testing.assert_array_equal(same.values, m)


def test_top_attended_and_record():
    m = np.array([[0.1, 0.6, 0.3], [0.4, 0.2, 0.4], [0.0, 0.0, 1.0]], dtype=np.float32)
    order, weights = top_attended(m, 2)
    assert order.tolist() == [[1, 2], [0, 2], [2, 0]]  # a tie keeps the lower position first
    np.testing.assert_allclose(weights, [[0.6, 0.3], [0.4, 0.4], [1.0, 0.0]])
    assert top_attended(m, 10)[0].shape == (3, 3)
    amap = AttentionMap(model="m", tokens=["[CLS]", "hi", "[SEP]"], layer=1, head=None, num_layers=1,
                        num_heads=2, matrix=m)
    rec = as_record(amap, top=1)
    assert rec["head"] is None and rec["layer"] == 1 and "attention" not in rec  # head null: the mean of all heads
    assert rec["top"][0] == [{"position": 1, "token": "hi", "weight": 0.6}]
    full = as_record(amap)
    assert full["attention"][0] == [0.1, 0.6, 0.3]
    with pytest.raises(UsageError, match="--top must be at least 1"):
        top_attended(m, 0)


def test_scales_and_ticks():
    assert pick_scale("auto", 64) == "linear" and pick_scale("auto", 65) == "log" and pick_scale("LOG", 3) == "log"
    with pytest.raises(UsageError, match="--scale 'cubic'"):
        pick_scale("cubic", 3)
    values = np.array([[0.5, 0.25, 0.0]])
    np.testing.assert_allclose(shade(values, "linear", uniform=1 / 3), [[1.0, 0.5, 0.0]])
    # log: floor = uniform/10 = 0.01; 0.5 → 1, 0.01 and below → 0, 0.25 → log(25)/log(50)
    logged = shade(np.array([[0.5, 0.25, 0.0]]), "log", uniform=0.1)
    np.testing.assert_allclose(logged, [[1.0, np.log(25) / np.log(50), 0.0]])
    assert tick_positions(10) == list(range(10))
    assert tick_positions(512) == list(range(0, 512, 16))
    assert tick_positions(100) == list(range(0, 100, 4))
    assert short_name("/a/b/c/model") == "…/c/model"
    assert short_name("google/electra-small-discriminator") == "google/electra-small-discriminator"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_png_short_and_512(bert_reader, minilm_reader):
    pytest.importorskip("matplotlib")
    short = io.BytesIO()
    save_png(bert_reader.read(CHEF, layer=1, head=0), short)
    width, height = _png_size(short.getvalue())
    assert (width, height) == (814, 660)  # 6 × 110 px high, + 1.4 in for the colour bar
    long = io.BytesIO()
    save_png(minilm_reader.read("a b c d " * 200, layer=-1, head="mean"), long)
    assert _png_size(long.getvalue()) == (1474, 1320)  # capped at 12 in


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now raises ImportError
    with pytest.raises(MissingDependencyError) as info:
        require_matplotlib()
    assert str(info.value) == "--png needs matplotlib, which is not installed; pip install 'bertcli[plot]'"
    assert info.value.exit_code == 7
