"""bertcli.weights: safetensors headers read and validated without torch, names grouped by module, ties."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from bertcli.errors import ModelFileError
from bertcli.weights import (
    TensorInfo,
    filter_tensors,
    group_tensors,
    module_of,
    read_safetensors,
    read_safetensors_header,
    tied_weights,
)


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]], *, data_bytes: int | None = None,
                      header_override: bytes | None = None) -> Path:
    """A hand-made safetensors file: header from {name: (dtype, shape)}, zero data (optionally cut short)."""
    sizes = {"F32": 4, "F16": 2, "I64": 8}
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = header_override if header_override is not None else json.dumps(header).encode()
    data = b"\0" * (offset if data_bytes is None else data_bytes)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_header_read_gives_names_shapes_dtypes_exactly(tmp_path):
    f = write_safetensors(tmp_path / "m.safetensors", {"bert.embeddings.word_embeddings.weight": ("F32", [10, 4]),
                                                      "bert.pooler.dense.bias": ("F16", [4]),
                                                      "bert.embeddings.position_ids": ("I64", [1, 8])})
    tensors = read_safetensors(f)
    assert [(t.name, t.shape, t.dtype, t.numel, t.buffer) for t in tensors] == [
        ("bert.embeddings.word_embeddings.weight", (10, 4), "float32", 40, False),
        ("bert.pooler.dense.bias", (4,), "float16", 4, False),
        ("bert.embeddings.position_ids", (1, 8), "int64", 8, True),
    ]
    header, data_size = read_safetensors_header(f)
    assert header["__metadata__"] == {"format": "pt"}
    assert data_size == 40 * 4 + 4 * 2 + 8 * 8


def test_real_minilm_header(minilm_dir):
    tensors = read_safetensors(minilm_dir / "model.safetensors")
    by_name = {t.name: t for t in tensors}
    assert len(tensors) == 104  # 103 parameters + the position_ids buffer saved by an older transformers
    assert by_name["embeddings.word_embeddings.weight"].shape == (30522, 384)
    assert by_name["encoder.layer.5.intermediate.dense.weight"].shape == (1536, 384)
    assert sum(t.numel for t in tensors if not t.buffer) == 22_713_216


@pytest.mark.parametrize(
    ("data_bytes", "message"),
    [
        (100, "m.safetensors is truncated: tensor 'b' ends at byte 160 of the data but the file holds only 100"),
        (0, "m.safetensors is truncated: tensor 'a' ends at byte 64 of the data but the file holds only 0"),
    ],
)
def test_truncated_data_is_a_model_file_error(tmp_path, data_bytes, message):
    f = write_safetensors(tmp_path / "m.safetensors", {"a": ("F32", [16]), "b": ("F32", [24])}, data_bytes=data_bytes)
    with pytest.raises(ModelFileError) as err:
        read_safetensors(f)
    assert str(err.value).startswith(message)
    assert err.value.exit_code == 6
    assert "download the model again" in str(err.value)


def test_truncated_inside_header(tmp_path):
    f = tmp_path / "m.safetensors"
    f.write_bytes(struct.pack("<Q", 500) + b'{"a": {"dtype"')
    with pytest.raises(ModelFileError, match=r"m.safetensors is truncated: its header needs 500 bytes but the file holds 14"):
        read_safetensors(f)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json at all", "m.safetensors has a corrupt header (not the JSON safetensors writes"),
        (b"[1, 2, 3]", "m.safetensors has a corrupt header (a JSON list, not an object)"),
        (b'{"a": {"dtype": "F99", "shape": [2], "data_offsets": [0, 8]}}',
         "m.safetensors has a corrupt header: tensor 'a' has unknown dtype 'F99'"),
        (b'{"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}',
         "m.safetensors has a corrupt header: tensor 'a' has shape [-2]"),
        (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}',
         "m.safetensors has a corrupt header: tensor 'a' has data offsets [8, 0]"),
        (b'{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}',
         "m.safetensors has a corrupt header: tensor 'a' F32[3] needs 12 bytes but its offsets span 8"),
        (b'{"a": 5}', "m.safetensors has a corrupt header: entry 'a' is not an object"),
    ],
)
def test_corrupt_header(tmp_path, raw, message):
    f = write_safetensors(tmp_path / "m.safetensors", {}, data_bytes=64, header_override=raw)
    with pytest.raises(ModelFileError) as err:
        read_safetensors(f)
    assert str(err.value).startswith(message)


def test_absurd_header_length_and_tiny_file(tmp_path):
    f = tmp_path / "m.safetensors"
    f.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(ModelFileError, match=r"corrupt header \(declared header length 1,099,511,627,776 bytes\)"):
        read_safetensors(f)
    f.write_bytes(b"abc")
    with pytest.raises(ModelFileError, match=r"m.safetensors is too short to be a safetensors file \(3 bytes\)"):
        read_safetensors(f)


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("bert.embeddings.word_embeddings.weight", "embeddings"),
        ("embeddings.LayerNorm.bias", "embeddings"),
        ("electra.embeddings_project.weight", "embedding projection E→H"),
        ("albert.encoder.embedding_hidden_mapping_in.bias", "embedding projection E→H"),
        ("roberta.encoder.layer.11.output.dense.weight", "encoder layer 11"),
        ("albert.encoder.albert_layer_groups.0.albert_layers.1.ffn.weight", "shared layer group 0 · layer 1"),
        ("bert.pooler.dense.weight", "pooler"),
        ("cls.predictions.transform.dense.weight", "head: masked LM"),
        ("lm_head.layer_norm.bias", "head: masked LM"),
        ("predictions.decoder.bias", "head: masked LM"),
        ("generator_lm_head.bias", "head: masked LM"),
        ("cls.seq_relationship.weight", "head: next sentence prediction"),
        ("sop_classifier.classifier.weight", "head: sentence order prediction"),
        ("qa_outputs.bias", "head: question answering"),
        ("discriminator_predictions.dense_prediction.weight", "head: replaced token detection"),
        ("classifier.out_proj.weight", "head: classifier"),
        ("embeddings.position_ids", "buffers"),
        ("something.else", "other"),
    ],
)
def test_module_of(name, module):
    assert module_of(name)[1] == module


def test_groups_come_in_model_order():
    names = ["qa_outputs.weight", "bert.pooler.dense.bias", "bert.encoder.layer.10.output.dense.bias",
             "bert.encoder.layer.2.output.dense.bias", "bert.embeddings.word_embeddings.weight"]
    groups = group_tensors(TensorInfo(n, (2, 3), "float32", "f") for n in names)
    assert [(g.name, g.parameters) for g in groups] == [
        ("embeddings", 6), ("encoder layer 2", 6), ("encoder layer 10", 6), ("pooler", 6),
        ("head: question answering", 6),
    ]


def test_tied_weights_follow_transformers_ties():
    t = [TensorInfo("bert.embeddings.word_embeddings.weight", (600, 32), "float32", "f"),
         TensorInfo("cls.predictions.bias", (600,), "float32", "f")]
    assert [x.as_record() for x in tied_weights(t)] == [
        {"name": "cls.predictions.decoder.weight", "tied_to": "bert.embeddings.word_embeddings.weight", "parameters": 19200},
        {"name": "cls.predictions.decoder.bias", "tied_to": "cls.predictions.bias", "parameters": 600},
    ]
    assert [x.name for x in tied_weights(t, tie_word_embeddings=False)] == ["cls.predictions.decoder.bias"]
    # A decoder stored in the file is not tied.
    t.append(TensorInfo("cls.predictions.decoder.weight", (600, 32), "float32", "f"))
    assert [x.name for x in tied_weights(t)] == ["cls.predictions.decoder.bias"]


def test_filter_glob_and_substring():
    t = [TensorInfo(n, (1,), "float32", "f") for n in
         ("bert.embeddings.word_embeddings.weight", "bert.encoder.layer.0.attention.self.query.weight",
          "bert.encoder.layer.1.attention.self.query.bias")]
    assert [x.name for x in filter_tensors(t, "*layer.1.*")] == ["bert.encoder.layer.1.attention.self.query.bias"]
    assert [x.name for x in filter_tensors(t, "query")] == [t[1].name, t[2].name]
    assert [x.name for x in filter_tensors(t, "*.weight")] == [t[0].name, t[1].name]
    assert filter_tensors(t, "nothing*") == []
    assert filter_tensors(t, None) == t
