"""Reduced precision on the ONNX export: the int8 graph's recipe and accuracy, and bfloat16 through OpenVINO."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the onnx extra (onnxruntime) is not installed")
onnx = pytest.importorskip("onnx", reason="the onnx extra (onnx) is not installed")

from bertcli.backends import onnx as backend  # noqa: E402
from bertcli.backends import precision  # noqa: E402
from bertcli.resolve import resolve_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_embed import sentences  # noqa: E402

#: int8 min cos to float32 asserted on 32 lines. Measured: 0.9956 on 300 lines and 0.995x on 2,000 on a Xeon
#: with AMX/VNNI (u8·s8 products exact in int32). On AVX2 CPUs without VNNI, ONNX Runtime's u8·s8 kernel adds
#: pairs of products in int16 (vpmaddubsw), which can saturate: uint8 activations up to 255 times int8 weights
#: up to 127, twice, exceeds 32767. The outlier split keeps activations spread over the whole uint8 range, so
#: saturation is possible there; 0.99 leaves room for it while still failing the old recipe (0.979).
INT8_MIN_COS = 0.99


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path_factory, monkeypatch) -> Path:
    """The export cache test_onnx_backend.py uses (one MiniLM export and int8 file per session)."""
    root = tmp_path_factory.getbasetemp() / "bertcli-onnx-cache"
    monkeypatch.setenv("BERTCLI_CACHE", str(root))
    return root / "onnx"


def _feed(folder: Path, texts: list[str]):
    from bertcli.tokenizer import load_tokenizer

    tok = load_tokenizer(resolve_model(str(folder)))
    enc = tok.encode_batch(texts)
    ids = np.zeros((len(enc), max(len(e.ids) for e in enc)), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, e in enumerate(enc):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = 1
    return ids, mask, np.zeros_like(ids)


def _mean_cos(a_encoder, b_encoder, ids, mask, types) -> np.ndarray:
    rows = []
    for start in range(0, len(ids), 16):
        part = slice(start, start + 16)
        a = (a_encoder.run(ids[part], mask[part], types[part])[0] * mask[part, ..., None]).sum(1)
        b = (b_encoder.run(ids[part], mask[part], types[part])[0] * mask[part, ..., None]).sum(1)
        rows.append((a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1))
    return np.concatenate(rows)


@pytest.fixture(scope="module")
def minilm_int8(minilm_dir, tmp_path_factory):
    """MiniLM's float32 session and ONNX Runtime's int8 one (the recipe a core install runs, OpenVINO or not)."""
    root = tmp_path_factory.getbasetemp() / "bertcli-onnx-cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BERTCLI_CACHE", str(root))
        mp.setattr(backend, "int8_runtime", lambda: "onnxruntime")
        resolved = resolve_model(str(minilm_dir))
        return backend.load_encoder(resolved), backend.load_encoder(resolved, quantize="int8")


def test_int8_min_cos_on_minilm(minilm_int8, minilm_dir):
    fp32, int8 = minilm_int8
    lines = sentences(32, seed=7)  # not the benchmark's lines (seed 1234)
    cos = _mean_cos(fp32, int8, *_feed(minilm_dir, lines))
    assert cos.min() >= INT8_MIN_COS, f"int8 min cos {cos.min():.5f} (mean {cos.mean():.5f})"


def test_int8_graph_keeps_attention_and_outliers_in_float32(minilm_int8):
    fp32, int8 = minilm_int8
    assert type(int8.session).__name__ == "InferenceSession" and int8.export.openvino is None
    assert int8.export.path.name == precision.int8_file_name() != "model.int8.onnx"  # old int8 files: not reused
    source = onnx.load(str(fp32.export.path)).graph
    graph = onnx.load(str(int8.export.path)).graph
    attention = {n.name for n in precision.activation_matmuls(source)}
    dense = {n.name for n in precision.dense_matmuls(source)}
    assert len(attention) == 12 and len(dense) == 36  # MiniLM: 6 layers × (Q·Kᵀ, softmax·V) and 6 dense each
    float_matmuls = {n.name for n in graph.node if n.op_type == "MatMul"}
    int8_matmuls = {n.name.removesuffix("_quant") for n in graph.node if n.op_type == "MatMulInteger"}
    assert attention <= float_matmuls and not attention & int8_matmuls
    pooler = {name for name in int8_matmuls if "/pooler/" in name}  # its Gemm, quantized as a MatMul + Add
    assert int8_matmuls - pooler == dense  # every dense layer, nothing else
    outliers = float_matmuls - attention
    assert outliers and all(name.endswith(precision.OUTLIER_MATMUL) for name in outliers)


def _dense_graph(weight: np.ndarray, bias: np.ndarray):
    """x (n, k) → x·W + b, as ONNX: one MatMul with an initializer, one bias Add."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"], name="dense/MatMul"),
             helper.make_node("Add", ["xw", "b"], ["y"], name="dense/Add")]
    graph = helper.make_graph(
        nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", weight.shape[1]])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_split_outliers_is_exact_in_float32():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(16, 8)).astype(np.float32)
    bias = rng.normal(size=8).astype(np.float32)
    x = rng.normal(size=(5, 16)).astype(np.float32)
    x[:, 3] *= 40  # one outlier channel
    ranges = np.abs(x).max(axis=0)
    assert precision.outlier_channels(ranges).tolist() == [3]
    model = _dense_graph(weight, bias)
    want = _run(model, x)
    assert precision.split_outliers(model, precision.dense_matmuls(model.graph), {"x": ranges}) == 1
    onnx.checker.check_model(model)
    np.testing.assert_allclose(_run(model, x), want, rtol=1e-5, atol=1e-4)
    # the int8 MatMul reads x with channel 3 zeroed; the weight's row 3 is zero there
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    assert not inits["W"][3].any() and inits["x/outliers/mask"][3] == 0


# ---------------------------------------------------------------------------------------------------------
# bfloat16 (OpenVINO, an optional extra): tested where it is installed, its absence tested everywhere

#: bf16 min cos to float32 asserted (measured 0.99997 on 300 MiniLM lines on AMX; OpenVINO keeps float32 on
#: CPUs without bfloat16 units, where the two agree to ~1e-6)
BF16_MIN_COS = 0.9995


def test_bfloat16_without_openvino_names_the_extra(run_cli, minilm_dir, monkeypatch, tmp_path):
    from tests.fixtures.checks import one_line_error

    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "openvino.py").write_text("raise ImportError('blocked by the test')\n")
    proc = run_cli("embed", "-m", minilm_dir, "--backend", "onnx", "--compute", "bfloat16", "a cat",
                   env={"PYTHONPATH": f"{Path(__file__).resolve().parents[1]}:{blocker}"})
    line = one_line_error(proc, 7)
    assert "needs OpenVINO" in line and "bertcli[openvino]" in line


def test_bfloat16_refusals():
    from bertcli.backends import check_runnable
    from bertcli.errors import UsageError

    check_runnable("onnx", compute="bfloat16")
    with pytest.raises(UsageError, match="--compute float16 needs --backend torch"):
        check_runnable("onnx", compute="float16")
    with pytest.raises(UsageError, match="two precision modes"):
        backend.load_encoder(object(), quantize="int8", compute="bfloat16")


def test_bfloat16_openvino_close_to_float32(minilm_int8, minilm_dir):
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    fp32, _ = minilm_int8
    bf16 = backend.load_encoder(resolve_model(str(minilm_dir)), compute="bfloat16", threads=1)
    assert type(bf16.session).__name__ == "OpenVinoSession" and bf16.has_pooler == fp32.has_pooler
    # what OpenVINO compiled is cached beside the export, for the next run to import
    assert any((bf16.export.folder / "openvino-cache").iterdir())
    cos = _mean_cos(fp32, bf16, *_feed(minilm_dir, sentences(32, seed=7)))
    assert cos.min() >= BF16_MIN_COS, f"bf16 min cos {cos.min():.6f}"


# ---------------------------------------------------------------------------------------------------------
# int8 on OpenVINO (the [openvino] extra): int8 weights, activations quantized per token and channel group

#: OpenVINO int8 min cos to float32 asserted on 32 lines (measured 0.9972 on them, 0.9966 on the benchmark's
#: 2,000 lines, on an AMD EPYC with AVX512-VNNI and AVX512-BF16; not measured on other CPUs). ONNX Runtime's
#: recipe happens to reach 0.9963 on these 32 lines: the difference shows on the 2,000 (0.9924), not here.
OPENVINO_INT8_MIN_COS = 0.995


def test_int8_runs_on_openvino_when_installed(minilm_int8, minilm_dir):
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    fp32, ort_int8 = minilm_int8
    int8 = backend.load_encoder(resolve_model(str(minilm_dir)), quantize="int8", threads=1)
    assert precision.int8_runtime() == "openvino" and int8.export.openvino == "int8"
    assert type(int8.session).__name__ == "OpenVinoSession" and int8.has_pooler == fp32.has_pooler
    # its own file beside the export and ONNX Runtime's: neither is taken for the other
    assert int8.export.path.name == precision.int8_file_name("openvino") != ort_int8.export.path.name
    assert int8.export.path.parent == ort_int8.export.path.parent
    feed = _feed(minilm_dir, sentences(32, seed=7))
    cos = _mean_cos(fp32, int8, *feed)
    assert cos.min() >= OPENVINO_INT8_MIN_COS, f"OpenVINO int8 min cos {cos.min():.5f} (mean {cos.mean():.5f})"


def test_int8_weights_graph(minilm_int8, tmp_path):
    """Every dense weight becomes int8 per output channel behind a DequantizeLinear; nothing else changes."""
    from onnx import numpy_helper

    fp32, _ = minilm_int8
    dest = tmp_path / "int8w.onnx"
    precision.int8_weights(fp32.export.path, dest)
    source, graph = onnx.load(str(fp32.export.path)).graph, onnx.load(str(dest)).graph
    onnx.checker.check_model(str(dest))
    weights = {i.name: numpy_helper.to_array(i) for i in source.initializer}
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    dense = {n.name for n in precision.dense_matmuls(source)}
    assert len(dense) == 36 and {n.op_type for n in graph.node} - {n.op_type for n in source.node} == {"DequantizeLinear"}
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        dq = producers.get(node.input[1])
        if node.name not in dense:  # attention products: activations on both sides, untouched
            assert dq is None or dq.op_type != "DequantizeLinear"
            continue
        assert dq.op_type == "DequantizeLinear" and dq.attribute[0].i == 1  # per output channel
        q, scale = inits[dq.input[0]], inits[dq.input[1]]
        want = weights[dq.input[0].removesuffix("/int8")]
        assert q.dtype == np.int8 and scale.shape == (want.shape[1],) and np.abs(q).max() == 127
        assert np.abs(q * scale - want).max() <= scale.max() / 2 + 1e-7  # rounding, nothing more
    assert sum(v.size for v in inits.values() if v.dtype == np.float32) < 0.75 * sum(v.size for v in weights.values())


def test_int8_without_openvino_uses_onnx_runtime(run_cli, minilm_dir, tmp_path):
    """A core install (OpenVINO absent) still runs --quantize int8: ONNX Runtime's recipe, its own file."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "openvino.py").write_text("raise ImportError('blocked by the test')\n")
    cache = tmp_path / "cache"
    proc = run_cli("embed", "-m", minilm_dir, "--quantize", "int8", "-f", "jsonl", "a cat",
                   env={"PYTHONPATH": f"{Path(__file__).resolve().parents[1]}:{blocker}", "BERTCLI_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stderr
    assert "to int8 for ONNX Runtime once" in proc.stderr
    assert [p.name for p in cache.glob("onnx/*/model.int8*.onnx")] == [precision.int8_file_name("onnxruntime")]


def test_openvino_is_imported_without_its_telemetry(minilm_dir, tmp_path):
    """``import openvino`` would import its model converter, which starts OpenVINO's telemetry (a client id under
    ~/intel, usage events for Google Analytics) without asking; bertcli imports the runtime without it."""
    import json
    import os
    import subprocess

    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    script = (
        "import json, sys\n"
        "from bertcli.cli import main\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, exc.code\n"
        "print(json.dumps(sorted(m for m in sys.modules if 'telemetry' in m or m.startswith('openvino.tools'))))\n"
    )
    runs = [["embed", "-m", str(minilm_dir), "a cat", *extra, "-o", str(tmp_path / f"{n}.npy")]
            for n, extra in enumerate([["--quantize", "int8"], ["--backend", "onnx", "--compute", "bfloat16"]])]
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CI"}  # OpenVINO's telemetry stays off under CI=true
    env.update(HOME=str(home), BERTCLI_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(runs)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [] and not (home / "intel").exists()
    assert (tmp_path / "0.npy").is_file() and (tmp_path / "1.npy").is_file()
