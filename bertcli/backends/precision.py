"""Reduced precision for the ONNX export: two int8 recipes, and OpenVINO sessions (bfloat16, int8).

`int8_runtime` picks who runs ``--quantize int8``; `bertcli.backends.onnx` caches that runtime's int8 file beside
``model.onnx``:

- OpenVINO (the [openvino] extra): `int8_weights` writes int8 weights behind ``DequantizeLinear`` and nothing
  else; OpenVINO's int8 kernels quantize each token's activations per `OPENVINO_INT8_GROUP` channels. MiniLM
  (2,000 lines): min cos 0.996 to float32.
- ONNX Runtime (core): `quantize_int8`, activations per tensor, outlier channels split off: min cos 0.992. What it
  does, each step measured on all-MiniLM-L6-v2 (docs/onnx.md has the numbers):

- only the dense layers become int8: a MatMul is quantized when one of its inputs is a weight (an initializer,
  `dense_matmuls`); the attention products (Q·Kᵀ and softmax·V, both inputs activations: `activation_matmuls`)
  are named in ``nodes_to_exclude`` and stay float32 whatever ONNX Runtime's quantizer would do by default;
- weights int8 per output channel (symmetric), activations uint8 per tensor, quantized on the fly (dynamic: no
  calibration set fixes the activation range of a user's text). Per-tensor weights: min cos 0.89;
  ``reduce_range``: 0.96 (per-channel int8 without it: 0.977);
- outlier channels are split off (LLM.int8(), Dettmers et al. 2022): BERT-family encoders have one or two
  hidden channels tens of times larger than the median (after some LayerNorms and GELUs), and a per-tensor
  uint8 scale stretched over them leaves a dozen levels for every other channel. For each dense input, the
  channels over `OUTLIER_FACTOR` × the median channel's max |x| are zeroed in the int8 MatMul's input (one
  float32 Mul, shared by Q, K and V) and multiplied by their own rows of the weight in a small float32 MatMul
  added after the bias (`split_outliers`). Which channels: from one run of the float32 graph on random token
  ids (`channel_ranges`) — the outlier channels are a property of the weights, not of the text. On MiniLM
  (300 lines) min cos 0.977 → 0.991 / 0.994 / 0.995 with a factor 6 / 3 / 2, the model's time 0.59× → 0.67× /
  0.71× / 0.74× float32's; 3 is used. (SmoothQuant-style rescaling was tried first: worse, because the
  per-output-channel weight scales cannot absorb per-input-row factors.)

Needs the ``onnx`` package (the [onnx] extra) and onnxruntime; both imported inside the functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

#: bumped whenever the int8 recipe changes: part of the int8 file's name, so old int8 files are not reused
INT8_FORMAT = 2
#: calibration: this many rows of random token ids of this length (enough to light every outlier channel)
CALIBRATION_SHAPE = (8, 64)
#: an input channel is an outlier when its max |x| is over this many times the median channel's (6: faster,
#: further from float32; 2: closer, slower — see the module docstring)
OUTLIER_FACTOR = 3.0
MAX_OUTLIERS = 32
#: the name ending of the float32 MatMuls that carry the outlier channels
OUTLIER_MATMUL = "/outliers/MatMul"


#: bumped whenever the OpenVINO int8 file (`int8_weights`) changes
INT8_WEIGHTS_FORMAT = 1
#: OpenVINO's int8 kernels quantize a dense layer's input per token and per group of this many channels
#: (MiniLM, 2,000 lines: 32 → min cos 0.9974, 64 → 0.9964, 128 → 0.9936; 64 is ~8 % faster than 32)
OPENVINO_INT8_GROUP = 64


def int8_file_name(runtime: str = "onnxruntime") -> str:
    """The cached int8 file's name for ``runtime`` (carries its recipe's version: old files are not reused)."""
    if runtime == "openvino":
        return f"model.int8w-v{INT8_WEIGHTS_FORMAT}.onnx"
    return f"model.int8-v{INT8_FORMAT}.onnx"


def int8_runtime() -> str:
    """Who runs ``--quantize int8``: ``"openvino"`` when the [openvino] extra imports (int8 weights, activations
    quantized per token and channel group by OpenVINO's kernels: min cos 0.996 on MiniLM), else
    ``"onnxruntime"`` (`quantize_int8`: activations per tensor, min cos 0.992)."""
    try:
        import_openvino()
    except (ImportError, OSError):  # absent, or a broken install (a shared library that will not load)
        return "onnxruntime"
    return "openvino"


#: imported by ``openvino/__init__`` only for ``openvino.convert_model``, which bertcli does not use
OPENVINO_CONVERTER = "openvino.tools.ovc"


def import_openvino():
    """``import openvino`` without its model converter (`OPENVINO_CONVERTER`), whose import starts OpenVINO's
    telemetry without asking (a client id written under ~/intel, usage events queued for Google Analytics unless
    the user opted out) and costs ~60 ms. ``openvino/__init__`` skips the converter when its import fails; it
    is importable again afterwards, for code that wants it."""
    import sys

    if sys.modules.get("openvino") is not None:
        return sys.modules["openvino"]
    blocked = OPENVINO_CONVERTER not in sys.modules
    if blocked:
        sys.modules[OPENVINO_CONVERTER] = None  # makes `import openvino.tools.ovc` raise ImportError
    try:
        import openvino
    finally:
        if blocked and sys.modules.get(OPENVINO_CONVERTER, 0) is None:
            del sys.modules[OPENVINO_CONVERTER]
    return openvino


def _initializers(graph: Any) -> dict[str, Any]:
    return {init.name: init for init in graph.initializer}


def dense_matmuls(graph: Any) -> list[Any]:
    """The MatMul nodes that multiply by a weight (one input an initializer): the layers worth quantizing."""
    inits = _initializers(graph)
    return [n for n in graph.node if n.op_type == "MatMul" and any(i in inits for i in n.input)]


def activation_matmuls(graph: Any) -> list[Any]:
    """The MatMul nodes whose inputs are both activations (attention scores and their product with V)."""
    inits = _initializers(graph)
    return [n for n in graph.node if n.op_type == "MatMul" and not any(i in inits for i in n.input)]


def channel_ranges(model_path: Path, outputs: list[str], *, input_names: list[str], vocab_size: int,
                   threads: int = 1) -> dict[str, np.ndarray]:
    """max |x| per last-axis channel of each named activation, over random token ids run through the graph."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    known = {o.name for o in model.graph.output}
    for name in outputs:
        if name not in known:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep the named tensors
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rows, length = CALIBRATION_SHAPE
    rng = np.random.default_rng(0)
    ids = rng.integers(min(1000, vocab_size // 2), vocab_size, size=(rows, length), dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if "token_type_ids" in input_names:
        feed["token_type_ids"] = np.zeros_like(ids)
    values = session.run(outputs, feed)
    return {name: np.abs(v.reshape(-1, v.shape[-1])).max(axis=0) for name, v in zip(outputs, values)}


def split_outliers(model: Any, nodes: list[Any], ranges: dict[str, np.ndarray]) -> int:
    """Take the outlier input channels out of ``nodes``' (to be int8) MatMuls, in place; returns how many inputs
    were split.

    x·W = (x·m)·W' + x[:, o]·W[o, :]: m zeroes the outlier channels o of x (one float32 Mul per input tensor,
    shared by the MatMuls that read it, e.g. Q, K and V), W' is W with rows o zeroed (so they do not widen the
    int8 column scales), and the few outlier channels go through a small float32 MatMul of their own (one
    Gather of k channels per input, k × out per MatMul), added to the int8 result.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = _initializers(graph)
    by_input: dict[str, list[Any]] = {}
    for node in nodes:
        by_input.setdefault(node.input[0], []).append(node)
    split = 0
    for act, readers in by_input.items():
        outliers = outlier_channels(ranges[act])
        if outliers.size == 0:
            continue
        split += 1
        keep = np.ones(ranges[act].shape[0], np.float32)
        keep[outliers] = 0.0
        base = f"{act}/outliers"
        masked, picked = f"{base}/masked", f"{base}/picked"
        graph.initializer.extend([numpy_helper.from_array(keep, f"{base}/mask"),
                                  numpy_helper.from_array(outliers, f"{base}/idx")])
        first = min(list(graph.node).index(n) for n in readers)
        graph.node.insert(first, helper.make_node("Mul", [act, f"{base}/mask"], [masked], name=f"{base}/Mask"))
        graph.node.insert(first + 1, helper.make_node("Gather", [act, f"{base}/idx"], [picked], name=f"{base}/Gather",
                                                      axis=-1))
        for node in readers:
            _route_outliers(graph, inits, node, masked, picked, outliers, keep)
    return split


def outlier_channels(ranges: np.ndarray) -> np.ndarray:
    """Channels whose max |x| is over OUTLIER_FACTOR × the median channel's (the largest MAX_OUTLIERS), int64."""
    found = np.flatnonzero(ranges > OUTLIER_FACTOR * np.median(ranges))
    return np.sort(found[np.argsort(ranges[found])[::-1][:MAX_OUTLIERS]]).astype(np.int64)


def _route_outliers(graph: Any, inits: dict[str, Any], node: Any, masked: str, picked: str, outliers: np.ndarray,
                    keep: np.ndarray) -> None:
    """``node`` reads the masked input; a float32 MatMul of the outlier channels is added to its output."""
    from onnx import helper, numpy_helper

    weight_name = node.input[1]
    weight = numpy_helper.to_array(inits[weight_name]).astype(np.float32)  # (in, out)
    base = f"{node.name}/outliers"
    graph.initializer.append(numpy_helper.from_array(weight[outliers], f"{base}/w"))
    inits[weight_name].CopyFrom(numpy_helper.from_array(weight * keep[:, None], weight_name))
    node.input[0] = masked
    tail = _bias_add(graph, inits, node) or node  # add after the bias: keeps ONNX Runtime's MatMul+bias fusion
    result = tail.output[0]
    tail.output[0] = f"{base}/int8_part"
    position = list(graph.node).index(node)
    graph.node.insert(position, helper.make_node("MatMul", [picked, f"{base}/w"], [f"{base}/float_part"],
                                                 name=f"{node.name}{OUTLIER_MATMUL}"))
    graph.node.insert(list(graph.node).index(tail) + 1, helper.make_node(
        "Add", [f"{base}/int8_part", f"{base}/float_part"], [result], name=f"{base}/Add"))


def _bias_add(graph: Any, inits: dict[str, Any], node: Any) -> Any | None:
    """The Add that adds a bias (an initializer) to ``node``'s output, when that is its only reader."""
    readers = [n for n in graph.node if node.output[0] in n.input]
    if len(readers) == 1 and readers[0].op_type == "Add" and any(i in inits for i in readers[0].input):
        return readers[0]
    return None


def _vocab_size(graph: Any) -> int:
    """Rows of the word-embedding table (the Gather that reads input_ids)."""
    inits = _initializers(graph)
    for node in graph.node:
        if node.op_type == "Gather" and node.input[1] == "input_ids" and node.input[0] in inits:
            return int(inits[node.input[0]].dims[0])
    return 1000


def quantize_int8(source: Path, dest: Path) -> None:
    """Write the int8 graph of the float32 export ``source`` to ``dest`` (see the module docstring)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    graph = model.graph
    inputs = [i.name for i in graph.input]
    dense = dense_matmuls(graph)
    inputs_of_dense = sorted({n.input[0] for n in dense})
    ranges = channel_ranges(source, inputs_of_dense, input_names=inputs, vocab_size=_vocab_size(graph))
    split_outliers(model, dense, ranges)
    keep_float = [n.name for n in activation_matmuls(graph)] + [n.name for n in graph.node
                                                                if n.name.endswith(OUTLIER_MATMUL)]
    split = dest.with_name(dest.name + ".split.onnx")
    try:
        onnx.save(model, str(split))
        quantize_dynamic(str(split), str(dest), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], nodes_to_exclude=keep_float,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        split.unlink(missing_ok=True)


def int8_weights(source: Path, dest: Path) -> None:
    """Write ``source`` with int8 weights to ``dest``, for OpenVINO: each dense layer's weight (`dense_matmuls`)
    becomes int8, symmetric per output channel, behind a ``DequantizeLinear``. OpenVINO reads that pattern as a
    compressed weight and runs the MatMul on its int8 kernels, quantizing the activations on the fly per token
    and per `OPENVINO_INT8_GROUP` channels; attention, LayerNorms and embeddings are not quantized (OpenVINO
    runs them in bfloat16 on CPUs with bfloat16 units, `OPENVINO_MODES`)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    inits = _initializers(graph)
    for node in dense_matmuls(graph):
        name = node.input[1]
        weight = numpy_helper.to_array(inits[name]).astype(np.float32)  # (in, out)
        scale = np.abs(weight).max(axis=0) / 127.0
        scale[scale == 0] = 1.0
        quantized = np.clip(np.rint(weight / scale), -127, 127).astype(np.int8)
        graph.initializer.remove(inits.pop(name))
        graph.initializer.extend([numpy_helper.from_array(quantized, f"{name}/int8"),
                                  numpy_helper.from_array(scale.astype(np.float32), f"{name}/scale"),
                                  numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{name}/zero")])
        graph.node.insert(list(graph.node).index(node), helper.make_node(
            "DequantizeLinear", [f"{name}/int8", f"{name}/scale", f"{name}/zero"], [f"{name}/dequantized"],
            name=f"{node.name}/DequantizeLinear", axis=1))
        node.input[1] = f"{name}/dequantized"
    onnx.save(model, str(dest))


# ---------------------------------------------------------------------------------------------------------
# OpenVINO: bfloat16 (the float32 export) and int8 (`int8_weights`)


#: what `--backend onnx --compute bfloat16` needs
OPENVINO_HINT = "pip install 'bertcli[openvino]'"
#: OpenVINO's settings for each mode it runs: --compute bfloat16 (the float32 export) and --quantize int8 (the
#: `int8_weights` file: int8 MatMuls, the rest in bfloat16 where the CPU has bfloat16 units, else float32 —
#: MiniLM min cos 0.99660 against 0.99641 with the rest in float32, and 3-5 % faster on AVX512-BF16)
OPENVINO_MODES = {"bfloat16": {"INFERENCE_PRECISION_HINT": "bf16"},
                  "int8": {"INFERENCE_PRECISION_HINT": "bf16", "DYNAMIC_QUANTIZATION_GROUP_SIZE": OPENVINO_INT8_GROUP}}
#: the folder, beside the export, where OpenVINO caches what it compiled
OPENVINO_CACHE = "openvino-cache"


def require_openvino():
    """Import openvino, or say which extra to install (`MissingDependencyError`, exit 7)."""
    from bertcli.errors import MissingDependencyError

    try:
        openvino = import_openvino()
    except ImportError as exc:
        raise MissingDependencyError("--compute bfloat16 with --backend onnx needs OpenVINO, which is not installed",
                                     hint=OPENVINO_HINT) from exc
    return openvino


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name


class OpenVinoSession:
    """The exported graph compiled by OpenVINO for the CPU, shaped as an ``onnxruntime.InferenceSession``
    (``run(output_names, feed)``, ``get_inputs()``, ``get_outputs()``), so `bertcli.backends.onnx` runs it as it
    runs ONNX Runtime. With ``INFERENCE_PRECISION_HINT=bf16`` OpenVINO computes the MatMuls in bfloat16 on AMX or
    AVX512-BF16 (and, by its own rule, in float32 on CPUs that have neither); on the `int8_weights` file it runs
    the dense MatMuls on its int8 kernels (`OPENVINO_MODES`)."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.inputs = [i.get_any_name() for i in compiled.inputs]
        self.outputs = {o.get_any_name(): o for o in compiled.outputs}

    def get_inputs(self) -> list[_Named]:
        return [_Named(n) for n in self.inputs]

    def get_outputs(self) -> list[_Named]:
        return [_Named(n) for n in self.outputs]

    def run(self, output_names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = self.request.infer({name: feed[name] for name in self.inputs})
        names = output_names or list(self.outputs)
        return [np.asarray(result[self.outputs[name]], dtype=np.float32) for name in names]


def openvino_session(path: Path, *, threads: int, mode: str = "bfloat16") -> OpenVinoSession:
    """Compile the ONNX file ``path`` with OpenVINO on the CPU, ``threads`` threads, in ``mode`` (`OPENVINO_MODES`)."""
    from bertcli.errors import ModelFileError

    ov = require_openvino()
    config = {**OPENVINO_MODES[mode], "INFERENCE_NUM_THREADS": int(threads), "PERFORMANCE_HINT": "LATENCY",
              "NUM_STREAMS": 1}
    if os.access(path.parent, os.W_OK):
        # OpenVINO keeps the compiled model beside the export: the next run imports it (0.13 s) instead of
        # compiling (0.47 s for MiniLM). Only a speed-up: an unwritable cache compiles every time.
        config["CACHE_DIR"] = str(path.parent / OPENVINO_CACHE)
    try:
        compiled = ov.Core().compile_model(str(path), "CPU", config)
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or ["error"])[0][:300]
        hint = "use --compute float32" if mode == "bfloat16" else None
        raise ModelFileError(f"OpenVINO cannot compile {path}: {first}", hint=hint) from exc
    return OpenVinoSession(compiled)
