"""The backend interface: torch and ONNX give the same facts and outputs; pooling is one numpy function over any
backend's output; the embedder needs nothing of a backend but the interface."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest

from bertcli.backends import BackendOutput, load_backend
from bertcli.embed import Embedder
from bertcli.errors import UsageError
from bertcli.pooling import POOLINGS, pool
from bertcli.resolve import resolve_model
from bertcli.runner import batch_inputs
from bertcli.tokenizer import load_tokenizer

TEXTS = ["It was a great day", "ok", "I had a sudden epiphany about the weather today"]


def _batch(folder):
    tok = load_tokenizer(resolve_model(str(folder)))
    return tok, batch_inputs(tok.encode_batch(TEXTS), tok)


# ---------------------------------------------------------------------------------------------------------
# pooling


def _hidden_and_mask():
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=np.int64)
    return hidden, mask


def test_pooling_reads_real_tokens_only():
    hidden, mask = _hidden_and_mask()
    noisy = hidden.copy()
    noisy[mask == 0] = 1e6  # whatever padding holds never reaches a mean or a max
    for pooling in ("cls", "mean", "max"):
        np.testing.assert_array_equal(pool(noisy, mask, pooling), pool(hidden, mask, pooling))
    np.testing.assert_allclose(pool(hidden, mask, "mean")[1], hidden[1, :2].mean(0), rtol=1e-6)
    np.testing.assert_array_equal(pool(hidden, mask, "max")[2], hidden[2, :3].max(0))
    np.testing.assert_array_equal(pool(hidden, mask, "cls"), hidden[:, 0])
    np.testing.assert_array_equal(pool(hidden, mask, "none"), hidden)
    pooled = np.ones((3, 4), dtype=np.float32)
    np.testing.assert_array_equal(pool(hidden, mask, "pooler", pooled=pooled), pooled)


def test_pooling_normalizes_every_vector():
    hidden, mask = _hidden_and_mask()
    for pooling in ("cls", "mean", "max"):
        vectors = pool(hidden, mask, pooling, normalize=True)
        assert vectors.dtype == np.float32 and vectors.shape == (3, 4)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    zero = pool(np.zeros_like(hidden), mask, "mean", normalize=True)  # a zero vector stays zero, no NaN
    assert (zero == 0).all()


# ---------------------------------------------------------------------------------------------------------
# the embedder runs on the interface alone


@dataclass
class RecordingBackend:
    """A backend with nothing but the interface: hidden states are the token ids, repeated."""

    config: SimpleNamespace
    resolved: SimpleNamespace
    calls: list
    name: str = "fake"
    head: str = "base"
    device: str = "cpu"
    architecture: str = "FakeModel"
    has_pooler: bool = False
    pooler_layer: bool = False
    accepts_token_types: bool = True

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def session(self, compute: str = "float32"):
        import contextlib

        return contextlib.nullcontext()

    def run(self, input_ids, attention_mask, token_type_ids=None, *, layer=None, attention_layer=None,
            positions=None):
        self.calls.append((input_ids.shape, layer))
        hidden = np.repeat(input_ids[..., None].astype(np.float32), self.hidden_size, axis=2)
        return BackendOutput(hidden=hidden)


@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_embedder_pools_any_backend_output(tiny_bert, pooling):
    tok = load_tokenizer(resolve_model(str(tiny_bert)))
    config = SimpleNamespace(num_hidden_layers=2, hidden_size=3, type_vocab_size=2, pad_token_id=0)
    fake = RecordingBackend(config=config, resolved=SimpleNamespace(display_name="fake"), calls=[])
    embedder = Embedder(model=fake, tokenizer=tok, pooling=pooling, layer=1)
    got = embedder.embed_array(TEXTS)
    assert fake.calls and all(layer == 1 for _, layer in fake.calls)
    assert embedder.backend == "fake" and embedder.dim == 3 and embedder.layer_label == "1 of 2"
    for row, enc in zip(got, tok.encode_batch(TEXTS)):
        ids = np.array(enc.ids, dtype=np.float32)
        want = {"cls": ids[0], "mean": ids.mean(), "max": ids.max()}[pooling]
        np.testing.assert_allclose(row, np.full(3, want, dtype=np.float32), rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# the two implementations


def test_torch_and_onnx_backends_agree(tiny_bert, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("BERTCLI_CACHE", str(tmp_path))
    resolved = resolve_model(str(tiny_bert))
    _, (ids, mask, types) = _batch(tiny_bert)
    torch_backend = load_backend(resolved, "base", backend="torch")
    onnx_backend = load_backend(resolved, "base", backend="onnx")
    facts = ("num_layers", "hidden_size", "has_pooler", "accepts_token_types", "device", "head")
    assert [getattr(torch_backend, f) for f in facts] == [getattr(onnx_backend, f) for f in facts]
    assert (torch_backend.name, onnx_backend.name) == ("torch", "onnx")
    assert onnx_backend.architecture == f"{torch_backend.architecture} via ONNX"
    a, b = torch_backend.run(ids, mask, types), onnx_backend.run(ids, mask, types)
    assert a.hidden.dtype == b.hidden.dtype == np.float32 and a.hidden.shape == b.hidden.shape
    real = mask.astype(bool)
    np.testing.assert_allclose(a.hidden[real], b.hidden[real], atol=1e-4)
    for vectors in (a, b):
        assert isinstance(vectors.hidden, np.ndarray) and vectors.logits == {}
    layer = torch_backend.run(ids, mask, types, layer=1), onnx_backend.run(ids, mask, types, layer=1)
    np.testing.assert_allclose(layer[0].hidden[real], layer[1].hidden[real], atol=1e-4)  # the hidden-states export


def test_torch_backend_layers_and_attention(tiny_bert):
    resolved = resolve_model(str(tiny_bert))
    _, (ids, mask, types) = _batch(tiny_bert)
    backend = load_backend(resolved, "base", backend="torch", attn_implementation="eager")
    last = backend.run(ids, mask, types)
    also_last = backend.run(ids, mask, types, layer=backend.num_layers, attention_layer=0)
    np.testing.assert_array_equal(last.hidden, also_last.hidden)
    assert also_last.attentions.shape == (len(TEXTS), backend.config.num_attention_heads) + ids.shape[1:] * 2
    first = backend.run(ids, mask, types, layer=0)
    assert first.hidden.shape == last.hidden.shape and not np.array_equal(first.hidden, last.hidden)


def test_head_logits_at_positions(tiny_bert):
    resolved = resolve_model(str(tiny_bert))
    _, (ids, mask, types) = _batch(tiny_bert)
    mlm = load_backend(resolved, "mlm", backend="torch")
    full = mlm.run(ids, mask, types).logits["logits"]
    assert full.shape == ids.shape + (mlm.config.vocab_size,) and full.dtype == np.float32
    rows, cols = [0, 2, 2], [1, 0, 3]
    picked = mlm.run(ids, mask, types, positions=(rows, cols)).logits["logits"]
    np.testing.assert_array_equal(picked, full[rows, cols])


def test_onnx_refuses_int8_for_a_head(tiny_bert_qa):
    with pytest.raises(UsageError, match="--quantize int8 applies to the encoder"):
        load_backend(resolve_model(str(tiny_bert_qa)), "qa", backend="onnx", quantize="int8")


def test_poolings_are_the_embed_choices():
    from bertcli import embed

    assert embed.POOLINGS is POOLINGS
