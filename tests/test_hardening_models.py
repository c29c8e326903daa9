"""Issue 13, model files: corrupt or contradictory model files exit 6 with one line naming the file.

Every corrupt copy is made at test time from a tiny model (or MiniLM for the sentence-transformers files),
then a command is run on it. Each case asserts the exit code, that stderr is one ``error:`` line without a
traceback, and that the message names the file that is wrong. Also here: text arguments that are not UTF-8
(exit 5, the argument named), misleading messages (pickle, model_type, spiece.model, "above report"),
NaN in config.json, and the ONNX export cache (a corrupt export is made again; an unwritable cache is exit 9).
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from bertcli.errors import BadInputError, ModelFileError

# ---------------------------------------------------------------------------------------------------------
# helpers


def corrupt_copy(src: Path, dest: Path, corrupt: Callable[[Path], None]) -> Path:
    """A copy of model folder ``src`` at ``dest``, then ``corrupt(dest)``."""
    shutil.copytree(src, dest)
    corrupt(dest)
    return dest


def edit_json(name: str, change: Callable[[object], object]) -> Callable[[Path], None]:
    def run(folder: Path) -> None:
        path = folder / name
        data = json.loads(path.read_text())
        path.write_text(json.dumps(change(data)))
    return run


def set_config(**fields) -> Callable[[Path], None]:
    return edit_json("config.json", lambda d: {**d, **fields})


def write(name: str, data: bytes | str) -> Callable[[Path], None]:
    def run(folder: Path) -> None:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            (folder / name).write_text(data)
        else:
            (folder / name).write_bytes(data)
    return run


def safetensors_with_header_length(length: int) -> Callable[[Path], None]:
    def run(folder: Path) -> None:
        path = folder / "model.safetensors"
        raw = path.read_bytes()
        path.write_bytes(struct.pack("<Q", length) + raw[8:])
    return run


def truncate(name: str, size: int) -> Callable[[Path], None]:
    def run(folder: Path) -> None:
        path = folder / name
        path.write_bytes(path.read_bytes()[:size])
    return run


def assert_one_error(proc, code: int, *needles: str) -> str:
    """Exit ``code``; stderr is exactly one ``error:`` line (no traceback) containing every needle."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ---------------------------------------------------------------------------------------------------------
# item 3: corrupt weights, configs and tokenizer files → exit 6 naming the file, in every model command

FILL = "hello [MASK] ."

#: id, tiny model, corruption, command (MODEL is replaced by the corrupt folder), file the message names
CORRUPT_CASES = [
    ("truncated safetensors / embed", "bert_fast", truncate("model.safetensors", 5000),
     ["embed", "-m", "MODEL", "hello"], "model.safetensors"),
    ("truncated safetensors / embed --backend onnx", "bert_fast", truncate("model.safetensors", 5000),
     ["embed", "-m", "MODEL", "--backend", "onnx", "hello"], "model.safetensors"),
    ("header length 10^15 / qa", "bert_qa", safetensors_with_header_length(10**15),
     ["qa", "-m", "MODEL", "-q", "who?", "--context", "hello world"], "model.safetensors"),
    ("header not JSON / fill-mask", "bert", write("model.safetensors", struct.pack("<Q", 12) + b"not json!!!!" + b"\0" * 64),
     ["fill-mask", "-m", "MODEL", FILL], "model.safetensors"),
    ("zero-byte weights / detect", "electra", write("model.safetensors", b""),
     ["detect", "-m", "MODEL", "hello world"], "model.safetensors"),
    ("truncated safetensors / attention", "bert", truncate("model.safetensors", 20000),
     ["attention", "-m", "MODEL", "hello world", "-f", "json"], "model.safetensors"),
    ("vocab_size lots / embed", "bert_fast", set_config(vocab_size="lots"),
     ["embed", "-m", "MODEL", "hello"], "config.json"),
    ("hidden_size 32.5 / fill-mask", "bert", set_config(hidden_size=32.5),
     ["fill-mask", "-m", "MODEL", FILL], "config.json"),
    ("tokenizer.json id beyond the vocabulary / embed", "bert_fast",
     edit_json("tokenizer.json", lambda d: {**d, "model": {**d["model"], "vocab": {**d["model"]["vocab"], "hello": 99999}}}),
     ["embed", "-m", "MODEL", "hello"], "tokenizer.json"),
    ("tokenizer.json id beyond the vocabulary / fill-mask", "bert_fast",
     edit_json("tokenizer.json", lambda d: {**d, "model": {**d["model"], "vocab": {**d["model"]["vocab"], "hello": 99999}}}),
     ["fill-mask", "-m", "MODEL", FILL], "tokenizer.json"),
    ("vocab.txt not UTF-8 / tokenize", "bert", write("vocab.txt", b"\xff\xfe\x80abc\n"),
     ["tokenize", "-m", "MODEL", "hello"], "vocab.txt"),
    ("vocab.txt empty / embed", "bert", write("vocab.txt", b""),
     ["embed", "-m", "MODEL", "hello"], "vocab.txt"),
    ("merges.txt garbage / tokenize", "roberta", write("merges.txt", bytes(range(256)) * 4),
     ["tokenize", "-m", "MODEL", "hello"], "merges.txt"),
    ("vocab.json a list / fill-mask", "roberta", write("vocab.json", "[1, 2, 3]"),
     ["fill-mask", "-m", "MODEL", "hello <mask> ."], "vocab.json"),
    ("tokenizer.json a JSON list / inspect", "bert_fast", write("tokenizer.json", "[1, 2, 3]"),
     ["inspect", "-m", "MODEL"], "tokenizer.json"),
    ("tokenizer.json a JSON list / embed", "bert_fast", write("tokenizer.json", "[1, 2, 3]"),
     ["embed", "-m", "MODEL", "hello"], "tokenizer.json"),
    ("num_hidden_layers 1000000 / embed", "bert_fast", set_config(num_hidden_layers=1_000_000),
     ["embed", "-m", "MODEL", "hello"], "num_hidden_layers"),
    ("num_hidden_layers 5 over 2 stored / embed", "bert_fast", set_config(num_hidden_layers=5),
     ["embed", "-m", "MODEL", "hello"], "holds 2 layer"),
    ("hidden_act 5 / embed", "bert_fast", set_config(hidden_act=5),
     ["embed", "-m", "MODEL", "hello"], "config.json: Validation error for field 'hidden_act'"),
    ("huge vocab_size / fill-mask", "bert_fast", set_config(vocab_size=100_000),
     ["fill-mask", "-m", "MODEL", FILL], "vocab_size"),
    ("max_position_embeddings the weights do not hold / embed", "bert_fast", set_config(max_position_embeddings=4096),
     ["embed", "-m", "MODEL", "hello"], "says max_position_embeddings 4,096 but model.safetensors holds"),
    ("layer_norm_eps NaN / config", "bert_fast",
     lambda f: (f / "config.json").write_text((f / "config.json").read_text().replace('"layer_norm_eps": 1e-12', '"layer_norm_eps": NaN')),
     ["config", "-m", "MODEL", "-f", "json"], "layer_norm_eps"),
]


@pytest.mark.parametrize("name,model,corrupt,command,names", CORRUPT_CASES, ids=[c[0] for c in CORRUPT_CASES])
def test_corrupt_model_files_exit_6_naming_the_file(run_cli, tiny_models, tmp_path, name, model, corrupt, command,
                                                     names):
    folder = corrupt_copy(tiny_models[model], tmp_path / "m", corrupt)
    proc = run_cli(*[str(folder) if a == "MODEL" else a for a in command])  # the session's cache: conversions shared
    line = assert_one_error(proc, 6, names)
    assert "look at the above report" not in line
    assert proc.stdout == ""


def test_nan_fixture_really_holds_nan(tiny_models, tmp_path):
    """The NaN case above edits the config by text: make sure the text it replaces is there."""
    assert '"layer_norm_eps": 1e-12' in (tiny_models["bert_fast"] / "config.json").read_text()


def test_corrupt_spiece_model_says_so_not_tiktoken(run_cli, tiny_models, tmp_path):
    pytest.importorskip("sentencepiece")
    folder = corrupt_copy(tiny_models["albert"], tmp_path / "m", write("spiece.model", bytes(range(256)) * 8))
    proc = run_cli("fill-mask", "-m", folder, "hello [MASK] .", env={"BERTCLI_CACHE": str(tmp_path / "bc")})
    line = assert_one_error(proc, 6, "spiece.model", "corrupt")
    assert "tiktoken" not in proc.stderr and "pip install" not in line


def test_ray_engine_corrupt_weights_exit_6(run_cli, tiny_models, tmp_path):
    pytest.importorskip("ray")
    pytest.importorskip("pyarrow")
    folder = corrupt_copy(tiny_models["bert_fast"], tmp_path / "m", truncate("model.safetensors", 5000))
    (tmp_path / "in.txt").write_text("hello\n")
    proc = run_cli("embed", "-m", folder, "--engine", "ray", "--file", "in.txt", "-o", "v",
                   env={"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
    assert_one_error(proc, 6, "model.safetensors")
    assert not (tmp_path / "v").exists() or not any((tmp_path / "v").glob("part-*"))


def test_inspect_reports_layers_the_weights_do_not_hold(run_cli, tiny_models, tmp_path):
    folder = corrupt_copy(tiny_models["bert_fast"], tmp_path / "m", set_config(num_hidden_layers=1_000_000))
    proc = run_cli("inspect", "-m", folder, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    caps = {c["command"]: c for c in record["capabilities"]}
    assert caps["tokenize"]["available"] and not caps["embed"]["available"]
    assert "num_hidden_layers" in caps["embed"]["reason"]


# ---------------------------------------------------------------------------------------------------------
# item 7: silently wrong results


def test_negative_vocab_size_in_config_warns_and_counts_nothing(run_cli, tiny_models, tmp_path):
    folder = corrupt_copy(tiny_models["bert_fast"], tmp_path / "m", set_config(vocab_size=-1))
    proc = run_cli("config", "-m", folder, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)  # valid JSON
    assert record["parameters"] is None and "vocab_size is -1" in record["parameters_unavailable"]
    assert proc.stderr.startswith("warning: ") and "vocab_size is -1" in proc.stderr


ST_CASES = [
    ("modules.json not JSON", write("modules.json", "{garbage"), "modules.json"),
    ("modules.json an object", write("modules.json", "{}"), "modules.json"),
    ("pooling config not JSON", write("1_Pooling/config.json", "nope"), "1_Pooling/config.json"),
    ("pooling config missing", lambda f: (f / "1_Pooling" / "config.json").unlink(), "1_Pooling/config.json"),
    ("pooling config selects nothing", write("1_Pooling/config.json", "{}"), "1_Pooling/config.json"),
    ("max_seq_length -5", write("sentence_bert_config.json", '{"max_seq_length": -5}'), "sentence_bert_config.json"),
    ("max_seq_length 10^9", write("sentence_bert_config.json", '{"max_seq_length": 1000000000}'),
     "sentence_bert_config.json"),
    ("max_seq_length long", write("sentence_bert_config.json", '{"max_seq_length": "long"}'),
     "sentence_bert_config.json"),
]


@pytest.mark.parametrize("name,corrupt,names", ST_CASES, ids=[c[0] for c in ST_CASES])
def test_corrupt_sentence_transformers_files_exit_6(tmp_path, minilm_dir, name, corrupt, names):
    """In process (no subprocess, no model run): load_embedder refuses before loading the weights."""
    from bertcli.embed import load_embedder
    from bertcli.resolve import resolve_model

    folder = corrupt_copy(minilm_dir, tmp_path / "m", corrupt)
    with pytest.raises(ModelFileError) as err:
        load_embedder(resolve_model(str(folder)))
    assert names in str(err.value) and "\n" not in str(err.value)


def test_corrupt_modules_json_from_the_cli(run_cli, minilm_dir, tmp_path):
    folder = corrupt_copy(minilm_dir, tmp_path / "m", write("modules.json", "{garbage"))
    assert_one_error(run_cli("embed", "-m", folder, "hello"), 6, "modules.json")


def test_bad_max_seq_length_is_overridden_by_max_length(tmp_path, minilm_dir):
    from bertcli.embed import load_embedder
    from bertcli.resolve import resolve_model

    folder = corrupt_copy(minilm_dir, tmp_path / "m", write("sentence_bert_config.json", '{"max_seq_length": "long"}'))
    embedder = load_embedder(resolve_model(str(folder)), max_length=64)
    assert embedder.max_length == 64 and embedder.normalize and embedder.pooling == "mean"


# ---------------------------------------------------------------------------------------------------------
# item 9: messages that mislead


def test_pickle_only_model_says_what_works(run_cli, tiny_models, tmp_path):
    import torch
    from safetensors.torch import load_file

    def to_pickle(folder: Path) -> None:
        torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
        (folder / "model.safetensors").unlink()

    folder = corrupt_copy(tiny_models["bert_fast"], tmp_path / "m", to_pickle)
    line = assert_one_error(run_cli("embed", "-m", folder, "hello"), 6, "pytorch_model.bin", "safetensors")
    assert "pass --allow-pickle" not in line  # embed has no such flag
    assert "save_pretrained" in line


def test_config_without_model_type_says_so(run_cli, tiny_models, tmp_path):
    folder = corrupt_copy(tiny_models["bert_fast"], tmp_path / "m", edit_json(
        "config.json", lambda d: {k: v for k, v in d.items() if k != "model_type"}))
    line = assert_one_error(run_cli("embed", "-m", folder, "hello"), 6, "config.json", "model_type")
    assert "fits: bertcli embed" not in line


def test_unreadable_weights_say_permission_denied(tmp_path, tiny_models, monkeypatch):
    """As root chmod 000 does not stop reading, so the refusal is simulated where the file is opened."""
    import bertcli.weights as weights
    from bertcli.modelfiles import check_weights
    from bertcli.resolve import resolve_model

    resolved = resolve_model(str(tiny_models["bert_fast"]))

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(weights, "open", denied, raising=False)
    with pytest.raises(ModelFileError) as err:
        check_weights(resolved)
    assert "permission denied" in str(err.value) and "model.safetensors" in str(err.value)
    assert "No such file" not in str(err.value)


def test_model_files_translates_library_errors():
    from bertcli.modelfiles import describe, model_files

    with pytest.raises(ModelFileError, match=r"^x/config\.json: boom$"):
        with model_files("x/config.json"):
            raise RuntimeError("boom\nsecond line")
    with pytest.raises(ModelFileError, match="permission denied reading /m/w"):
        with model_files("cannot load m"):
            raise PermissionError(13, "Permission denied", "/m/w")
    with pytest.raises(BadInputError):  # bertcli's own errors pass through untouched
        with model_files("x"):
            raise BadInputError("mine")
    err = RuntimeError("Error(s) in loading state_dict: size mismatch. For details look at the above report!")
    assert "look at the above report" not in describe(err)


def test_size_problems_and_non_finite_fields():
    from bertcli.modelfiles import non_finite_fields, size_problems

    assert size_problems({"vocab_size": 30522, "hidden_size": 768, "layer_norm_eps": 1e-12}) == []
    assert len(size_problems({"vocab_size": "lots", "hidden_size": 32.5, "num_hidden_layers": 0,
                              "intermediate_size": 10**15, "layer_norm_eps": float("nan")})) == 5
    assert size_problems({"type_vocab_size": True}) == ["type_vocab_size must be a whole number, not True"]
    assert non_finite_fields({"a": 1.0, "b": [float("inf")], "c": {"d": float("nan")}}) == ["b[0]", "c.d"]


# ---------------------------------------------------------------------------------------------------------
# item 4: text arguments that are not UTF-8 → exit 5 naming the argument

BAD = "ok\udcff"  # what Python makes of the byte 0xff in argv (surrogateescape); subprocess passes the byte back

UTF8_CASES = [
    (["tokenize", "-m", "bert_fast", "fine", BAD], "text argument 2"),
    (["tokenize", "-m", "bert_fast", "fine", "--pair", BAD], "--pair"),
    (["compare", "-m", "bert_fast", "-m", "roberta", BAD], "text argument 1"),
    (["mask", "-m", "bert_fast", BAD], "the text argument"),
    (["embed", "-m", "bert_fast", BAD], "text argument 1"),
    (["fill-mask", "-m", "bert_fast", BAD], "text argument 1"),
    (["detect", "-m", "electra", BAD], "text argument 1"),
    (["attention", "-m", "bert_fast", BAD], "the text argument"),
    (["qa", "-m", "bert_qa", "-q", BAD, "--context", "fine"], "the question"),
    (["qa", "-m", "bert_qa", "-q", "fine?", "--context", BAD], "--context"),
]


@pytest.mark.parametrize("command,label", UTF8_CASES, ids=[" ".join(c[0][:1] + [c[1]]) for c in UTF8_CASES])
def test_text_argument_not_utf8_exits_5(run_cli, tiny_models, command, label):
    args = [str(tiny_models[a]) if a in tiny_models else a for a in command]
    assert_one_error(run_cli(*args), 5, label, "not valid UTF-8", "0xff")


def test_check_utf8_passes_good_text():
    from bertcli.inputs import check_utf8

    assert check_utf8("héllo ✓", "x") == "héllo ✓"
    with pytest.raises(BadInputError, match="^x is not valid UTF-8 \\(byte 0xfe at character 2\\)$"):
        check_utf8("a\udcfe", "x")


# ---------------------------------------------------------------------------------------------------------
# item 3: bertcli's own cache — a corrupt ONNX export is made again; an unwritable cache is exit 9


def test_corrupt_cached_onnx_export_is_made_again(tiny_models, tmp_path, monkeypatch):
    """In process (one torch import, two exports): a cached model.onnx that ONNX Runtime cannot read is thrown
    away and exported again; ``export.rebuilt`` says why (`bertcli embed` prints it as a warning)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import numpy as np

    from bertcli.backends.onnx import load_encoder
    from bertcli.resolve import resolve_model

    monkeypatch.setenv("BERTCLI_CACHE", str(tmp_path / "bc"))
    resolved = resolve_model(str(tiny_models["bert_base_only"]))
    ids, mask = np.array([[2, 10, 11, 3]], dtype=np.int64), np.ones((1, 4), dtype=np.int64)
    first = load_encoder(resolved, threads=1)
    assert first.export.created and first.export.rebuilt is None
    want = first.run(ids, mask, np.zeros_like(ids))[0]
    first.export.path.write_bytes(b"\x00garbage" * 100)
    again = load_encoder(resolved, threads=1)
    assert again.export.rebuilt and "model.onnx" in again.export.rebuilt
    assert again.export.path.stat().st_size > 1000
    np.testing.assert_allclose(again.run(ids, mask, np.zeros_like(ids))[0], want, atol=1e-5)
    (again.export.folder / "meta.json").write_text("{bad")
    third = load_encoder(resolved, threads=1)
    assert third.export.rebuilt and "meta.json" in third.export.rebuilt


def test_unwritable_bertcli_cache(run_cli, tiny_models, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {"BERTCLI_CACHE": str(blocker / "cache")}
    # the converted-tokenizer cache is a speed-up only: tokenize still works, converting each time
    ok = run_cli("tokenize", "-m", tiny_models["bert"], "hello", "-f", "json", env=env)
    assert ok.returncode == 0, ok.stderr
    pytest.importorskip("onnxruntime")
    proc = run_cli("embed", "-m", tiny_models["bert_fast"], "--backend", "onnx", "hello", "-q", env=env)
    assert_one_error(proc, 9, str(blocker / "cache"), "BERTCLI_CACHE")
