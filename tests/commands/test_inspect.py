"""`bertcli inspect` end to end: real processes, exact output, exit codes, and no torch import."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# Runs bertcli in-process under runpy, then reports which heavy modules got imported (on stderr's last line).
_HARNESS = """
import json, runpy, sys
for name in json.loads(sys.argv[1]):
    sys.modules[name] = None  # makes `import name` fail, as if the package were not installed
sys.argv = ["bertcli", *sys.argv[2:]]
code = 0
try:
    runpy.run_module("bertcli", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code or 0
sys.stderr.write("LOADED " + json.dumps([m for m in ("torch", "transformers") if sys.modules.get(m)]) + "\\n")
sys.exit(code)
"""


def run_bertcli(*args, hide: tuple[str, ...] = (), cwd=None) -> tuple[int, str, list[str], list[str]]:
    """(exit code, stdout, stderr lines without the report, heavy modules imported)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), COLUMNS="200")
    proc = subprocess.run([sys.executable, "-c", _HARNESS, json.dumps(list(hide)), *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
    lines = proc.stderr.splitlines()
    assert lines and lines[-1].startswith("LOADED "), proc.stderr
    return proc.returncode, proc.stdout, lines[:-1], json.loads(lines[-1][len("LOADED "):])


def test_minilm_tensors_json_without_torch(minilm_dir):
    code, out, err, loaded = run_bertcli("inspect", minilm_dir, "--tensors", "--format", "json")
    assert (code, err, loaded) == (0, [], [])
    rec = json.loads(out)
    assert rec["family"] == "BERT" and rec["tokenizer"]["kind"] == "WordPiece"
    assert rec["weights"]["parameters"] == rec["weights"]["config_parameters"] == 22_713_216
    assert len(rec["tensors"]) == 104
    assert rec["tensors"][0] == {"name": "embeddings.LayerNorm.bias", "module": "embeddings", "shape": [384],
                                 "dtype": "float32", "parameters": 384, "buffer": False, "file": "model.safetensors"}
    assert rec["tensors"][-1]["name"] == "embeddings.position_ids" and rec["tensors"][-1]["parameters"] == 0
    assert sum(t["parameters"] for t in rec["tensors"]) == 22_713_216
    assert [c["command"] for c in rec["capabilities"] if c["available"]] == ["tokenize", "embed"]


def test_albert_table_shows_shared_group_and_factorization(tiny_albert, run_cli):
    proc = run_cli("inspect", tiny_albert, "--tensors", "--format", "table", env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "shared layer group 0 · layer 0" in out
    assert "albert.embeddings.word_embeddings.weight" in out and "391×16" in out
    assert "albert.encoder.embedding_hidden_mapping_in.weight" in out and "32×16" in out
    assert "parameters: 18,407 in 28 tensors  = config arithmetic ✓" in out
    assert ("factorized embedding: word_embeddings V×E = 391×16 plus the E→H projection 16×32: "
            "V·E + E·H = 6,768 instead of V·H = 12,512") in out
    assert "cross-layer sharing: 1 shared layer group(s) × 1 layer(s) stored, run for all 2 layers" in out


def test_summary_table(tiny_electra, run_cli):
    proc = run_cli("inspect", "-m", tiny_electra, "--format", "table", env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    rows = [re.split(r"\s{2,}", line.strip()) for line in proc.stdout.splitlines()]
    assert ["special tokens", "cls [CLS]=2", "sep [SEP]=3", "pad [PAD]=0", "unk [UNK]=1", "mask [MASK]=4"] in rows
    assert ["detect", "✓", "replaced-token-detection head (ELECTRA discriminator) in the weights; "
            "architectures: ElectraForPreTraining"] in rows
    assert ["embedding projection E→H", "2", "544"] in rows
    assert ["parameters", "30,433 in 43 tensors", "= config arithmetic ✓"] in rows


def test_filter_tsv(tiny_bert, run_cli):
    proc = run_cli("inspect", tiny_bert, "--filter", "*word_embeddings*", "--format", "tsv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("module\tname\tshape\tdtype\tparameters\tfile\n"
                           "embeddings\tbert.embeddings.word_embeddings.weight\t600×32\tfloat32\t19200\tmodel.safetensors\n")


def test_tsv_needs_tensors(tiny_bert, run_cli):
    proc = run_cli("inspect", tiny_bert, "--format", "tsv")
    assert proc.returncode == 2
    assert proc.stderr == "error: --format tsv lists tensors: add --tensors (or use json for the summary)\n"


def _broken(kind: str, tiny_bert: Path, tiny_albert: Path, root: Path) -> Path:
    folder = root / kind
    if kind == "spiece":
        folder.mkdir()
        shutil.copy(tiny_albert / "spiece.model", folder / "spiece.model")
        return folder
    shutil.copytree(tiny_bert, folder)
    weights = folder / "model.safetensors"
    if kind == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif kind == "corrupt":
        data = bytearray(weights.read_bytes())
        data[8:14] = b"\xff\xfe!!!!"
        weights.write_bytes(bytes(data))
    elif kind == "no_model_type":
        config = json.loads((folder / "config.json").read_text())
        del config["model_type"]
        (folder / "config.json").write_text(json.dumps(config))
    elif kind == "pickle":
        weights.rename(folder / "pytorch_model.bin")  # only the name matters until --allow-pickle
    return folder


@pytest.mark.parametrize(
    ("kind", "args", "hide", "code", "stderr"),
    [
        ("truncated", (), (), 6, r"error: model\.safetensors is truncated: tensor '[\w.]+' ends at byte [\d,]+ of the "
                                 r"data but the file holds only [\d,]+; the download was probably interrupted: "
                                 r"download the model again"),
        ("corrupt", ("--tensors",), (), 6, r"error: model\.safetensors has a corrupt header \(not the JSON safetensors "
                                           r"writes: .*\)"),
        ("no_model_type", (), (), 6, r"error: .*config\.json has no model_type, so transformers \(and bertcli\) cannot "
                                     r'tell which model class reads it; add "model_type": "bert" to config\.json .*'),
        ("pickle", ("--tensors",), (), 6, r"error: .* has only pickle weights \(pytorch_model\.bin\), which can run code "
                                          r"when loaded; pass --allow-pickle if you trust the source .*"),
        ("pickle", (), (), 0, r"warning: pytorch_model\.bin: pickle weights not read \(pass --allow-pickle\); "
                              r"capabilities below come from config\.json alone"),
        ("spiece", (), ("sentencepiece",), 0, r"warning: the SentencePiece tokenizer \(spiece\.model\) needs "
                                              r"sentencepiece: pip install sentencepiece protobuf"),
    ],
)
def test_broken_folders_one_line_and_exit_code(kind, args, hide, code, stderr, tiny_bert, tiny_albert, tmp_path):
    folder = _broken(kind, tiny_bert, tiny_albert, tmp_path)
    rc, out, err, loaded = run_bertcli("inspect", folder, *args, "--format", "json", hide=hide)
    assert rc == code
    assert len(err) == 1 and re.fullmatch(stderr, err[0]), err
    assert loaded == []
    if code:
        assert out == ""
    else:
        assert json.loads(out)["family"] in ("BERT", "ALBERT")


def test_spiece_folder_with_sentencepiece(tiny_albert, tmp_path):
    folder = _broken("spiece", tiny_albert, tiny_albert, tmp_path)
    rc, out, err, loaded = run_bertcli("inspect", folder, "--format", "json")
    assert (rc, err, loaded) == (0, [], [])
    rec = json.loads(out)
    assert rec["tokenizer"]["special_tokens"]["cls_token"] == {"token": "[CLS]", "id": 2}
    assert [c["command"] for c in rec["capabilities"] if c["available"]] == ["tokenize"]


def test_help_has_examples(run_cli):
    proc = run_cli("inspect", "--help", env={"COLUMNS": "200"})
    assert proc.returncode == 0
    assert "bertcli inspect albert --tensors" in proc.stdout
    assert "--allow-pickle" in proc.stdout and "--filter" in proc.stdout
