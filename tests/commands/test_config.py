"""`bertcli config`: grouped fields, exact reference values, parameter arithmetic, --diff."""

from __future__ import annotations

import json

from tests.test_config import ELECTRA_SMALL_DISC, ROBERTA_BASE


def _folder(tmp_path, name, cfg):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_roberta_base_reference_values(run_cli, tmp_path):
    folder = _folder(tmp_path, "roberta-base", ROBERTA_BASE)
    rec = json.loads(run_cli("config", str(folder), "-f", "json").stdout)
    cfg = rec["config"]
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["intermediate_size"]) == (768, 12, 12, 3072)
    assert (cfg["vocab_size"], cfg["max_position_embeddings"], cfg["pad_token_id"], cfg["bos_token_id"], cfg["eos_token_id"]) == (50265, 514, 1, 0, 2)
    assert cfg["layer_norm_eps"] == 1e-05 and cfg["type_vocab_size"] == 1
    assert rec["family"] == "RoBERTa"
    table = run_cli("config", str(folder), "-f", "table", env={"COLUMNS": "160"}).stdout
    for expected in ("50265", "514", "1e-05", "3072", "RobertaForMaskedLM"):
        assert expected in table


def test_electra_reference_values_and_projection(run_cli, tmp_path):
    folder = _folder(tmp_path, "electra-small", ELECTRA_SMALL_DISC)
    rec = json.loads(run_cli("config", "-m", str(folder), "-f", "json").stdout)
    cfg = rec["config"]
    assert (cfg["embedding_size"], cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]) == (128, 256, 4, 12)
    assert (cfg["intermediate_size"], cfg["vocab_size"], cfg["layer_norm_eps"]) == (1024, 30522, 1e-12)
    assert cfg["architectures"] == ["ElectraForPreTraining"]
    assert rec["parameters"]["embedding_projection"]["params"] == 128 * 256 + 256
    table = run_cli("config", str(folder), "-f", "table", env={"COLUMNS": "200"}).stdout
    assert "embedding projection" in table and "1e-12" in table


def test_albert_factorization_shown(run_cli, tiny_albert):
    rec = json.loads(run_cli("config", str(tiny_albert), "-f", "json").stdout)
    fact = rec["parameters"]["factorized_embedding"]
    v = rec["config"]["vocab_size"]
    assert fact["factorized"] == v * 16 + 16 * 32 and fact["unfactorized"] == v * 32
    table = run_cli("config", str(tiny_albert), "-f", "table", env={"COLUMNS": "200"}).stdout
    assert "factorized embedding" in table and "cross-layer sharing" in table


def test_minilm_total(run_cli, minilm_dir):
    rec = json.loads(run_cli("config", str(minilm_dir), "-f", "json").stdout)
    assert rec["parameters"]["total"] == 22_713_216


def test_diff(run_cli, tmp_path):
    a = _folder(tmp_path, "a", ROBERTA_BASE)
    b = _folder(tmp_path, "b", {**ROBERTA_BASE, "num_hidden_layers": 6, "new_field": True})
    rows = [json.loads(x) for x in run_cli("config", str(a), "--diff", str(b), "-f", "jsonl").stdout.splitlines()]
    assert rows == [{"field": "new_field", "a": None, "b": True}, {"field": "num_hidden_layers", "a": 12, "b": 6}]


def test_tokenizer_only_has_no_config(run_cli, tiny_albert):
    r = run_cli("config", str(tiny_albert / "spiece.model"))
    assert r.returncode == 6 and "has no config.json" in r.stderr


def test_unknown_model_type_shows_config_without_params(run_cli, tmp_path):
    folder = _folder(tmp_path, "gpt", {"model_type": "gpt2", "n_embd": 8})
    rec = json.loads(run_cli("config", str(folder), "-f", "json").stdout)
    assert rec["parameters"] is None and "not gpt2" in rec["parameters_unavailable"]


def test_config_does_not_import_torch(tmp_path, tiny_bert):
    import subprocess
    import sys

    code = ("import sys; sys.argv=['bertcli','config',%r,'-f','json'];"
            "from bertcli.cli import main\ntry: main()\nexcept SystemExit: pass\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'") % str(tiny_bert)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
