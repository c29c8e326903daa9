"""ONNX Runtime runs every head with torch's answers (issue 17), `--backend auto` chooses it, and its warm path
imports neither torch nor transformers.

Every tiny family model, every head: hidden states, attention weights and logits within 1e-4 of torch, and the
answers the commands give (fill-mask top-k, QA spans, detect flags) equal. Exports go to the session's shared
bertcli cache (tests/conftest.py), so each tiny model and head is exported once per session.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from bertcli.backends import choose_backend, load_backend  # noqa: E402
from bertcli.backends import onnx as onnx_backend  # noqa: E402
from bertcli.errors import ModelFileError, UsageError  # noqa: E402
from bertcli.resolve import resolve_model  # noqa: E402
from bertcli.runner import batch_inputs  # noqa: E402
from bertcli.tokenizer import load_tokenizer  # noqa: E402

FAMILIES = ("bert", "albert", "roberta", "electra")
MLM_MODELS = {"bert": "bert", "albert": "albert", "roberta": "roberta", "electra": "electra_generator"}
REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
TEXTS = ["It was a great day", "ok", "Beijing is a beautiful city, said the woman on the train"]
MASKED = ["It was a [MASK] day", "[MASK] is a beautiful [MASK] .", "hello <mask>"]


def _both(folder, head: str, **kwargs):
    resolved = resolve_model(str(folder))
    return (load_backend(resolved, head, backend="torch", **kwargs),
            load_backend(resolved, head, backend="onnx", **kwargs))


def _batch(folder):
    tok = load_tokenizer(resolve_model(str(folder)))
    return batch_inputs(tok.encode_batch(TEXTS), tok)


def _real_max_diff(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """max |a − b| over real tokens (per-token outputs: batch, length, …)."""
    return float(np.abs(a - b)[mask.astype(bool)].max())


def _same_ranking(ids_a, scores_a, ids_b, scores_b, tie: float = 1e-6) -> None:
    """Equal ids rank by rank, except where two neighbouring scores are a tie for float32."""
    np.testing.assert_allclose(scores_a, scores_b, atol=1e-5)
    for rank, (a, b) in enumerate(zip(ids_a, ids_b)):
        near = [scores_a[j] for j in (rank - 1, rank + 1) if 0 <= j < len(scores_a)]
        if all(abs(scores_a[rank] - s) > tie for s in near):
            assert a == b, (rank, ids_a, ids_b)


@pytest.mark.parametrize("family", FAMILIES)
def test_base_layers_and_attentions_equal_torch(family, tiny_models):
    folder = tiny_models[family]  # the encoder of each family's tiny checkpoint
    torch_model, onnx_model = _both(folder, "base", features=("hidden_states", "attentions"))
    ids, mask, types = _batch(folder)
    assert onnx_model.name == "onnx" and set(onnx_model.variants) == {"hidden_states", "attentions"}
    for layer in (0, 1, -1):
        a = torch_model.run(ids, mask, types, layer=layer)
        b = onnx_model.run(ids, mask, types, layer=layer)
        assert b.hidden.shape == a.hidden.shape and _real_max_diff(a.hidden, b.hidden, mask) <= 1e-4
    real = mask.astype(bool)
    pair = real[:, None, :, None] & real[:, None, None, :]
    for attention_layer in (0, -1):
        a = torch_model.run(ids, mask, types, attention_layer=attention_layer)
        b = onnx_model.run(ids, mask, types, attention_layer=attention_layer)
        assert b.attentions.shape == a.attentions.shape == (len(TEXTS), torch_model.config.num_attention_heads,
                                                            ids.shape[1], ids.shape[1])
        assert float(np.abs(a.attentions - b.attentions)[np.broadcast_to(pair, a.attentions.shape)].max()) <= 1e-4
        assert _real_max_diff(a.hidden, b.hidden, mask) <= 1e-4  # the last layer comes with them
    both = onnx_model.run(ids, mask, types, layer=1, attention_layer=0)  # two variants in one call
    assert both.hidden is not None and both.attentions is not None


@pytest.mark.parametrize("family", FAMILIES)
def test_fill_mask_top_k_equals_torch(family, tiny_models):
    from bertcli.fillmask import FillMasker

    folder = tiny_models[MLM_MODELS[family]]
    tok = load_tokenizer(resolve_model(str(folder)))
    torch_model, onnx_model = _both(folder, "mlm")
    ids, mask, types = _batch(folder)
    rows, cols = [0, 1, 2, 2], [1, 0, 2, 5]
    a = torch_model.run(ids, mask, types, positions=(rows, cols)).logits["logits"]
    b = onnx_model.run(ids, mask, types, positions=(rows, cols)).logits["logits"]
    assert b.shape == a.shape == (4, torch_model.config.vocab_size) and np.abs(a - b).max() <= 1e-4
    full = onnx_model.run(ids, mask, types).logits["logits"]  # no positions: every token, (batch, length, vocab)
    assert full.shape == ids.shape + (torch_model.config.vocab_size,)
    np.testing.assert_allclose(full[rows, cols], b, atol=1e-5)
    want = FillMasker(torch_model, tok).fill(MASKED, top_k=5)
    got = FillMasker(onnx_model, tok).fill(MASKED, top_k=5)
    for w, g in zip(want, got):
        assert [m.position for m in g.masks] == [m.position for m in w.masks]
        for wm, gm in zip(w.masks, g.masks):
            _same_ranking([f.token_id for f in wm.fillers], [f.score for f in wm.fillers],
                          [f.token_id for f in gm.fillers], [f.score for f in gm.fillers])


@pytest.mark.parametrize("family", FAMILIES)
def test_qa_spans_equal_torch(family, tiny_head, tiny_bert_qa):
    from bertcli.qa import QuestionAnswerer

    folder = tiny_bert_qa if family == "bert" else tiny_head(family, "ForQuestionAnswering")
    tok = load_tokenizer(resolve_model(str(folder)))
    torch_model, onnx_model = _both(folder, "qa")
    ids, mask, types = _batch(folder)
    a, b = torch_model.run(ids, mask, types).logits, onnx_model.run(ids, mask, types).logits
    for name in ("start_logits", "end_logits"):
        assert b[name].shape == a[name].shape == ids.shape and _real_max_diff(a[name], b[name], mask) <= 1e-4
    context = "The Eiffel Tower is in Paris. It was built in 1889 for the World's Fair, and it is 330 metres tall."
    want = QuestionAnswerer(torch_model, tok).answer("When was it built?", context)
    got = QuestionAnswerer(onnx_model, tok).answer("When was it built?", context)
    assert len(got) == len(want) >= 1
    _same_ranking([(x["start"], x["end"]) for x in want], [x["score"] for x in want],
                  [(x["start"], x["end"]) for x in got], [x["score"] for x in got])


def test_detect_flags_equal_torch(tiny_models):
    from bertcli.detect import Detector

    folder = tiny_models["electra"]
    tok = load_tokenizer(resolve_model(str(folder)))
    torch_model, onnx_model = _both(folder, "rtd")
    text = "the chef cooked the meal and the guests ate it"
    want = Detector(torch_model, tok).detect(text, [(2, "ate")])
    got = Detector(onnx_model, tok).detect(text, [(2, "ate")])
    assert [t.token for t in got.tokens] == [t.token for t in want.tokens] and got.text == want.text
    for w, g in zip(want.tokens, got.tokens):
        assert abs(w.logit - g.logit) <= 1e-4 and abs(w.probability - g.probability) <= 1e-5
        if abs(w.probability - 0.5) > 1e-4:
            assert (w.probability > 0.5) == (g.probability > 0.5)  # the replaced/original flag


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("suffix,head", [("ForSequenceClassification", "seqcls"), ("ForTokenClassification", "tokcls")])
def test_classification_logits_equal_torch(family, suffix, head, tiny_head):
    folder = tiny_head(family, suffix, id2label={0: "neg", 1: "neutral", 2: "pos"})
    torch_model, onnx_model = _both(folder, head)
    ids, mask, types = _batch(folder)
    a, b = torch_model.run(ids, mask, types).logits["logits"], onnx_model.run(ids, mask, types).logits["logits"]
    if head == "seqcls":
        assert b.shape == a.shape == (len(TEXTS), 3) and np.abs(a - b).max() <= 1e-4
    else:
        assert b.shape == a.shape == ids.shape + (3,) and _real_max_diff(a, b, mask) <= 1e-4
        sliced = onnx_model.run(ids, mask, types, positions=([0, 2], [1, 3])).logits["logits"]
        np.testing.assert_array_equal(sliced, b[[0, 2], [1, 3]])


# ---------------------------------------------------------------------------------------------------------
# --backend auto: the one decision


def test_auto_chooses_onnx_unless_it_cannot_serve(tiny_models, monkeypatch):
    resolved = resolve_model(str(tiny_models["bert"]))
    monkeypatch.setattr("bertcli.backends.gpu_visible", lambda: False)
    assert choose_backend(resolved, "mlm").name == "onnx"
    assert choose_backend(resolved, "mlm", device="auto").name == "onnx"
    real_find_spec = importlib.util.find_spec
    with monkeypatch.context() as mp:  # bfloat16 on the export needs OpenVINO: installed here or not, both ways
        mp.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real_find_spec(name, *a))
        for kwargs, reason in [({"device": "cuda:1"}, "--device cuda:1"),
                               ({"compute": "bfloat16"}, "--compute bfloat16 without OpenVINO")]:
            choice = choose_backend(resolved, "mlm", **kwargs)
            assert choice.name == "torch" and choice.reason.startswith(reason)
        mp.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "openvino" else real_find_spec(name, *a))
        assert choose_backend(resolved, "mlm", compute="bfloat16").name == "onnx"
    monkeypatch.setattr("bertcli.backends.gpu_visible", lambda: True)
    assert choose_backend(resolved, "mlm", device="auto").name == "torch"
    assert choose_backend(resolved, "mlm", backend="torch").name == "torch"
    with pytest.raises(UsageError, match="--backend onnx runs on the CPU"):
        choose_backend(resolved, "mlm", backend="onnx", device="cuda")
    with pytest.raises(UsageError, match="--compute float16 needs --backend torch"):
        choose_backend(resolved, "mlm", backend="onnx", compute="float16")
    assert choose_backend(resolved, "base", quantize="int8").name == "onnx"  # only ONNX runs int8 weights


def test_auto_announces_the_export_once(tiny_models, tmp_path, monkeypatch, run_output, capsys):
    monkeypatch.setenv("BERTCLI_CACHE", str(tmp_path / "cache"))
    resolved = resolve_model(str(tiny_models["electra"]))
    model = load_backend(resolved, "rtd")
    assert model.name == "onnx" and onnx_backend.is_exported(resolved, "rtd")
    folder = onnx_backend.export_dir(resolved, "rtd")
    assert folder.name.startswith("electra-rtd-") and folder.parent == tmp_path / "cache" / "onnx"
    first = capsys.readouterr().err
    assert first == (f"exporting {resolved.display_name}'s replaced-token-detection (ELECTRA discriminator) head "
                     f"to ONNX once (cached in {folder})\n")
    assert choose_backend(resolved, "rtd").missing == ()
    assert load_backend(resolved, "rtd").name == "onnx" and capsys.readouterr().err == ""
    run_output.settings.quiet = True
    load_backend(resolved, "base")  # another head: its own export, announced unless -q
    assert onnx_backend.is_exported(resolved, "base") and capsys.readouterr().err == ""


def test_a_failed_export_falls_back_to_torch_and_is_remembered(tiny_models, tmp_path, monkeypatch):
    import torch

    folder = tmp_path / "roberta"
    shutil.copytree(tiny_models["roberta"], folder)
    config = folder / "config.json"  # a config of its own, so that no cached export answers for it
    config.write_text(config.read_text().replace("{", '{"bertcli_test": 2, ', 1))
    resolved = resolve_model(str(folder))

    def fail(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::frobnicate' to ONNX opset version 17 is not supported.")

    monkeypatch.setattr(torch.onnx, "export", fail)
    model = load_backend(resolved, "mlm")
    assert model.name == "torch" and "aten::frobnicate" in onnx_backend.remembered_failure(resolved, "mlm")
    assert not onnx_backend.export_dir(resolved, "mlm").exists()

    def no_retry(*args, **kwargs):
        raise AssertionError("auto tried the failed export again")

    monkeypatch.setattr(onnx_backend, "export_model", no_retry)
    choice = choose_backend(resolved, "mlm")
    assert choice.name == "torch" and "its ONNX export failed before" in choice.reason
    assert load_backend(resolved, "mlm").name == "torch"
    monkeypatch.undo()
    monkeypatch.setattr(torch.onnx, "export", fail)
    with pytest.raises(ModelFileError, match="cannot export .*RobertaForMaskedLM.*aten::frobnicate") as info:
        load_backend(resolved, "mlm", backend="onnx")  # explicit: tried again, and the error is the answer
    assert info.value.exit_code == 6


# ---------------------------------------------------------------------------------------------------------
# the warm path


WARM_SCRIPT = """
import json, sys
from bertcli.cli import main
codes = []
for argv in json.loads(sys.argv[1]):
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code or 0
    codes.append(code)
print(json.dumps({"codes": codes, "heavy": [m for m in ("torch", "transformers") if m in sys.modules]}))
"""


def test_warm_commands_import_neither_torch_nor_transformers(tiny_models, tiny_bert_qa, tiny_head, tmp_path):
    """Every model command with its export cached (embed, fill-mask, qa, detect, classify, rerank, zero-shot,
    tag, nsp): onnxruntime and numpy only (one process)."""
    out = tmp_path / "vectors.npy"
    nli = tiny_head("bert", "ForSequenceClassification", id2label={0: "contradiction", 1: "neutral", 2: "entailment"})
    cross, tagger = tiny_head("bert", "ForSequenceClassification", num_labels=1), tiny_head("bert", "ForTokenClassification")
    pretrained = tiny_head("bert", "ForPreTraining")
    runs = [
        ["embed", "-m", str(tiny_models["bert"]), "a sentence", "-o", str(out)],
        ["fill-mask", "-m", str(tiny_models["roberta"]), "hello <mask> .", "-f", "json"],
        ["qa", "-m", str(tiny_bert_qa), "--question", "who?", "--context", "Ada wrote it.", "-f", "json"],
        ["detect", "-m", str(tiny_models["electra"]), "the chef ate the meal", "-f", "json"],
        ["classify", "-m", str(nli), "a sentence", "-f", "json"],
        ["zero-shot", "-m", str(nli), "a sentence", "--labels", "a,b", "-f", "json"],
        ["rerank", "-m", str(cross), "-q", "cats", "a cat", "a dog", "-f", "json"],
        ["tag", "-m", str(tagger), "john lives in paris", "-f", "json"],
        ["nsp", "-m", str(pretrained), "it rained.", "we stayed in.", "-f", "json"],
        # --quantize int8: OpenVINO's int8 file where the extra is installed, else ONNX Runtime's
        ["embed", "-m", str(tiny_models["bert"]), "a sentence", "--quantize", "int8", "-o", str(tmp_path / "int8.npy")],
    ]
    if importlib.util.find_spec("openvino") is not None:
        runs.append(["embed", "-m", str(tiny_models["bert"]), "a sentence", "--compute", "bfloat16", "-o",
                     str(tmp_path / "bf16.npy")])
    for folder, head in [(tiny_models["bert"], "base"), (tiny_models["roberta"], "mlm"),
                         (tiny_bert_qa, "qa"), (tiny_models["electra"], "rtd"), (nli, "seqcls"),
                         (cross, "seqcls"), (tagger, "tokcls"), (pretrained, "nsp")]:  # what a first run leaves
        onnx_backend.ensure_export(resolve_model(str(folder)), head)
        load_tokenizer(resolve_model(str(folder)))  # legacy vocabularies: converted once, then cached
    onnx_backend.ensure_export(resolve_model(str(tiny_models["bert"])), quantize="int8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", WARM_SCRIPT, json.dumps(runs)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"codes": [0] * len(runs), "heavy": []}, proc.stderr
    assert "exporting" not in proc.stderr and "quantizing" not in proc.stderr and out.is_file()


def test_onnxruntime_and_onnx_are_core_dependencies():
    """Item 3 of issue 17: the default runtime is installed with bertcli; `bertcli[onnx]` still resolves."""
    import re
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = {re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    assert {"onnxruntime", "onnx"} <= core
    assert project["optional-dependencies"]["onnx"] == []


def test_big_batches_run_in_slices_with_the_same_answers(tiny_models, monkeypatch):
    """A batch over RUN_TOKENS runs a few rows at a time (bounded attention memory): same outputs, same order."""
    folder = tiny_models["bert"]
    resolved = resolve_model(str(folder))
    mlm, base = load_backend(resolved, "mlm", backend="onnx"), load_backend(resolved, "base", backend="onnx")
    ids, mask, types = _batch(folder)
    positions = ([2, 0, 1, 2], [5, 1, 0, 2])  # not in row order: put back as given
    whole = mlm.run(ids, mask, types, positions=positions).logits["logits"]
    encoded = base.run(ids, mask, types)
    monkeypatch.setattr(onnx_backend, "RUN_TOKENS", ids.shape[1])  # one row a run
    np.testing.assert_allclose(mlm.run(ids, mask, types, positions=positions).logits["logits"], whole, atol=1e-5)
    sliced = base.run(ids, mask, types)
    np.testing.assert_allclose(sliced.hidden[mask.astype(bool)], encoded.hidden[mask.astype(bool)], atol=1e-5)
