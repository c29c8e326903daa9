"""ONNX Runtime backend: exports equal torch per family, are cached outside the model folder and reused."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the onnx extra (onnxruntime) is not installed")

from bertcli.backends import check_backend, default_threads, physical_cores  # noqa: E402
from bertcli.backends import onnx as backend  # noqa: E402
from bertcli.backends.precision import int8_file_name, int8_runtime  # noqa: E402
from bertcli.errors import MissingDependencyError, ModelFileError, UsageError  # noqa: E402
from bertcli.resolve import resolve_model  # noqa: E402
from bertcli.tokenizer import load_tokenizer  # noqa: E402

TEXTS = ["It was a great day", "Beijing is a beautiful city", "ok", "I had a sudden epiphany about the weather today"]


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path_factory, monkeypatch) -> Path:
    """One export cache for the whole module (exports are reused across tests, as in real use)."""
    root = tmp_path_factory.getbasetemp() / "bertcli-onnx-cache"
    monkeypatch.setenv("BERTCLI_CACHE", str(root))
    return root / "onnx"


def _folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _inputs(folder: Path, uses_types: bool):
    tok = load_tokenizer(resolve_model(str(folder)))
    enc = tok.encode_batch(TEXTS)
    longest = max(len(e.ids) for e in enc)
    ids = np.zeros((len(enc), longest), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, e in enumerate(enc):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = 1
    return ids, mask, (np.zeros_like(ids) if uses_types else None)


def _torch_outputs(folder: Path, ids, mask, types):
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(folder)).eval()
    kwargs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if types is not None:
        kwargs["token_type_ids"] = torch.from_numpy(types)
    with torch.inference_mode():
        out = model(**kwargs)
    pooled = getattr(out, "pooler_output", None)
    return out.last_hidden_state.numpy(), pooled.numpy() if pooled is not None else None


@pytest.mark.parametrize("name", ["minilm", "bert", "albert", "roberta", "electra"])
def test_export_equals_torch(name, tiny_models, minilm_dir, onnx_cache):
    folder = minilm_dir if name == "minilm" else tiny_models[name]
    before = _folder_state(folder)
    encoder = backend.load_encoder(resolve_model(str(folder)))
    ids, mask, types = _inputs(folder, encoder.uses_token_types)
    hidden, pooled = encoder.run(ids, mask, types)
    want_hidden, want_pooled = _torch_outputs(folder, ids, mask, types)

    assert hidden.shape == want_hidden.shape and hidden.dtype == np.float32
    real = mask.astype(bool)
    assert np.abs(hidden - want_hidden)[real].max() < 1e-4
    a, b = hidden[real], want_hidden[real]
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert cos.min() >= 0.9999
    if name == "minilm":  # a real checkpoint with a trained pooler: exported and equal
        assert encoder.output_names == ["last_hidden_state", "pooler_output"]
        assert np.abs(pooled - want_pooled).max() < 1e-4
    else:  # the tiny models are *ForMaskedLM / *ForPreTraining checkpoints: no trained pooler
        assert encoder.output_names == ["last_hidden_state"] and pooled is None
    assert encoder.input_names == ["input_ids", "attention_mask", "token_type_ids"]
    meta = encoder.export.meta
    assert meta["architecture"] == {"minilm": "BertModel", "bert": "BertModel", "albert": "AlbertModel",
                                    "roberta": "RobertaModel", "electra": "ElectraModel"}[name]
    assert meta["verify_max_abs_diff"] < 1e-4
    # the export sits in bertcli's cache; the model folder is untouched
    assert encoder.export.path.parent.parent == onnx_cache
    assert _folder_state(folder) == before


def test_second_call_reuses_the_export(tiny_models, monkeypatch):
    resolved = resolve_model(str(tiny_models["electra"]))
    first = backend.ensure_export(resolved)
    stamp = first.path.stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(backend, "export_model", no_export)
    second = backend.ensure_export(resolve_model(str(tiny_models["electra"])))
    assert second.created is False
    assert second.path == first.path and second.path.stat().st_mtime_ns == stamp


def test_changed_weights_give_a_new_export(tiny_models, tmp_path):
    folder = tmp_path / "bert"
    shutil.copytree(tiny_models["bert_base_only"], folder)
    first = backend.ensure_export(resolve_model(str(folder)))
    again = backend.ensure_export(resolve_model(str(folder)))
    assert again.created is False and again.folder == first.folder
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes())  # same bytes, new mtime: a new revision for all we know
    changed = backend.ensure_export(resolve_model(str(folder)))
    assert changed.created is True and changed.folder != first.folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in tiny_models["bert_base_only"].iterdir())


def test_int8_is_cached_separately_and_close(minilm_dir):
    resolved = resolve_model(str(minilm_dir))
    fp32 = backend.load_encoder(resolved)
    int8 = backend.load_encoder(resolved, quantize="int8")
    assert int8.export.path.name == int8_file_name(int8_runtime()) and fp32.export.path.name == "model.onnx"
    assert int8.export.path.parent == fp32.export.path.parent and fp32.export.path.is_file()
    # MatMul weights are int8 now; the embedding tables (Gather) stay float32
    assert int8.export.path.stat().st_size < 0.8 * fp32.export.path.stat().st_size
    assert backend.ensure_export(resolved, quantize="int8").created is False
    ids, mask, types = _inputs(minilm_dir, True)
    a = (fp32.run(ids, mask, types)[0] * mask[..., None]).sum(1)
    b = (int8.run(ids, mask, types)[0] * mask[..., None]).sum(1)
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert cos.min() > 0.95  # int8 is an opt-in trade: close, not equal (measured figures in docs/onnx.md)


def test_threads_are_set_explicitly(tiny_models):
    resolved = resolve_model(str(tiny_models["bert_base_only"]))
    assert backend.load_encoder(resolved, threads=1).session.get_session_options().intra_op_num_threads == 1
    default = backend.load_encoder(resolved, workers=2)
    assert default.threads == default_threads(2) == max(1, physical_cores() // 2)
    assert default.session.get_session_options().intra_op_num_threads == default.threads
    with pytest.raises(UsageError):
        backend.load_encoder(resolved, threads=0)


def test_export_failure_names_the_architecture(tiny_models, tmp_path, monkeypatch):
    import torch

    folder = tmp_path / "albert"
    shutil.copytree(tiny_models["albert"], folder)
    config = folder / "config.json"  # a config of its own, so that no cached export answers for it
    config.write_text(config.read_text().replace("{", '{"bertcli_test": 1, ', 1))

    def fail(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::frobnicate' to ONNX opset version 17 is not supported.")

    monkeypatch.setattr(torch.onnx, "export", fail)
    with pytest.raises(ModelFileError) as info:
        backend.ensure_export(resolve_model(str(folder)))
    message = str(info.value)
    assert "AlbertModel (model_type albert)" in message and "aten::frobnicate" in message
    assert "--backend torch" in message
    # nothing half-made is left in the cache, and nothing was written in the model folder
    assert not backend.export_dir(resolve_model(str(folder))).exists()
    assert not [p for p in backend.onnx_cache_dir().iterdir() if p.name.endswith(".part")]
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in tiny_models["albert"].iterdir())


def test_missing_onnxruntime_names_the_extra(tiny_models, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime → ImportError
    with pytest.raises(MissingDependencyError) as info:
        backend.load_encoder(resolve_model(str(tiny_models["bert_base_only"])))
    assert info.value.exit_code == 7
    assert str(info.value) == ("--backend onnx needs ONNX Runtime, which is not installed; pip install onnxruntime "
                               "onnx (dependencies of bertcli: reinstalling bertcli brings them back)")


def test_check_backend():
    assert check_backend("ONNX", "int8") == "onnx"
    assert check_backend("torch") == "torch"
    with pytest.raises(UsageError, match="unknown --backend 'tf'"):
        check_backend("tf")
    with pytest.raises(UsageError, match="--quantize int8 works with --backend onnx only"):
        check_backend("torch", "int8")
    with pytest.raises(UsageError, match="unknown --quantize 'int4'"):
        check_backend("onnx", "int4")


# ---------------------------------------------------------------------------------------------------------
# through the embedder and the command


@pytest.mark.parametrize("name,pooling", [("minilm", None), ("minilm", "pooler"), ("albert", "cls"),
                                          ("roberta", "max"), ("electra", "mean")])
def test_embedder_onnx_equals_torch(name, pooling, tiny_models, minilm_dir):
    from bertcli.embed import load_embedder

    folder = minilm_dir if name == "minilm" else tiny_models[name]
    resolved = resolve_model(str(folder))
    texts = TEXTS + ["", "a much longer sentence " * 20]
    want = load_embedder(resolved, pooling=pooling, max_tokens=64, backend="torch").embed_array(texts)
    embedder = load_embedder(resolved, pooling=pooling, backend="onnx", max_tokens=64)
    got = embedder.embed_array(texts)
    assert embedder.backend == "onnx" and got.shape == want.shape and got.dtype == np.float32
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.9999 and np.abs(got - want).max() < 1e-4
    if name == "minilm" and pooling is None:  # the folder's own mean pooling + Normalize
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_embedder_onnx_refusals(tiny_models):
    from bertcli.embed import load_embedder

    resolved = resolve_model(str(tiny_models["electra"]))
    with pytest.raises(ModelFileError, match=r"no trained pooler \(ElectraModel has no pooler layer\)"):
        load_embedder(resolved, pooling="pooler", backend="onnx")
    layered = load_embedder(resolved, layer=1, backend="onnx")  # --layer reads the hidden-states export
    want = load_embedder(resolved, layer=1, backend="torch").embed_array(TEXTS)
    assert layered.layer_label == "1 of 2" and np.abs(layered.embed_array(TEXTS) - want).max() < 1e-4
    with pytest.raises(UsageError, match="--backend onnx runs on the CPU"):
        load_embedder(resolved, device="cuda", backend="onnx")


def test_cli_onnx_matches_torch_without_importing_torch(run_cli, minilm_dir, tmp_path):
    texts = "\n".join(["It was a great day", "What a lovely afternoon", "Beijing is a beautiful city"]) + "\n"
    (tmp_path / "in.txt").write_text(texts)
    torch_run = run_cli("embed", "-m", minilm_dir, "--backend", "torch", "--file", "in.txt", "-o", "torch.npy")
    first = run_cli("embed", "-m", minilm_dir, "--backend", "onnx", "--file", "in.txt", "-o", "onnx.npy")
    # a second run finds the export in the cache: onnxruntime only, no torch, no transformers
    second = run_cli("embed", "-m", minilm_dir, "--backend", "onnx", "--file", "in.txt", "-o", "onnx2.npy",
                     env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert torch_run.returncode == first.returncode == second.returncode == 0, first.stderr + second.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in second.stderr.splitlines() if line.startswith("import time")}
    assert "onnxruntime" in imported and "torch" not in imported and "transformers" not in imported
    a, b, c = (np.load(tmp_path / f) for f in ("torch.npy", "onnx.npy", "onnx2.npy"))
    assert a.shape == b.shape == (3, 384) and np.array_equal(b, c)
    assert ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min() >= 0.9999
    refused = run_cli("embed", "-m", minilm_dir, "--backend", "torch", "--quantize", "int8", "x")
    assert refused.returncode == 2 and refused.stderr == "error: --quantize int8 works with --backend onnx only\n"
