"""`bertcli variants`: the catalog as JSON and as a table, one variant in detail, live numbers from -m."""

from __future__ import annotations

import json

from bertcli.config import count_parameters
from bertcli.resolve import read_config_file
from tests.fixtures.checks import one_line_error


def test_catalog_piped_is_jsonl_and_table_is_coloured_columns(run_cli):
    proc = run_cli("variants")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["variant"] for r in rows] == ["BERT", "ALBERT", "RoBERTa", "ELECTRA", "SpanBERT", "DistilBERT", "XLM-RoBERTa",
                                            "DeBERTa", "ModernBERT"]
    assert all("live" not in r for r in rows)
    assert rows[4]["masking"] == "span" and rows[4]["objectives"] == ["MLM", "SBO"]
    table = run_cli("variants", "-f", "table", env={"COLUMNS": "160"}).stdout
    for expected in ("objectives", "MLM + SOP", "RTD + MLM", "factorized embedding", "cross-layer sharing",
                     "albert → albert/albert-base-v2", "marker ▁", "marker Ġ"):
        assert expected in table, expected


def test_albert_detail_with_live_numbers_of_the_tiny_albert(run_cli, tiny_albert):
    proc = run_cli("variants", "albert", "-m", tiny_albert, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert rec["variant"] == "ALBERT"
    live = rec["live"]
    config = read_config_file(tiny_albert / "config.json")
    v = config["vocab_size"]
    assert live["factorized_embedding"] == {"V": v, "E": 16, "H": 32, "factorized": v * 16 + 16 * 32,
                                            "unfactorized": v * 32, "saved": v * 32 - (v * 16 + 16 * 32)}
    assert live["total"] == count_parameters(config).total
    assert live["sharing"]["saved"] == (config["num_hidden_layers"] - 1) * live["per_layer"]
    table = run_cli("variants", "albert", "-m", tiny_albert, "-f", "table", env={"COLUMNS": "160"}).stdout
    assert f"{v}·16 + 16·32" in table and f"{v * 16 + 16 * 32:,}" in table and f"{v * 32:,}" in table
    assert "saved by sharing" in table and "bertcli mask TEXT -m MODEL --strategy ngram" in table
    assert "run it: bertcli sop A B -m MODEL" in table and "bertcli nsp" not in table


def test_catalog_with_minilm_fills_the_bert_row(run_cli, minilm_dir):
    rows = [json.loads(x) for x in run_cli("variants", "-m", minilm_dir, "-f", "jsonl").stdout.splitlines()]
    live = [r for r in rows if "live" in r]
    assert [r["variant"] for r in live] == ["BERT"]
    assert live[0]["live"]["total"] == 22_713_216
    assert live[0]["live"]["sizes"]["V"] == 30522 and live[0]["live"]["sizes"]["H"] == 384


def test_errors_are_one_line(run_cli, tiny_albert):
    err = one_line_error(run_cli("variants", "gpt2"), 2)
    assert err == ("error: unknown variant 'gpt2'; choose one of BERT, ALBERT, RoBERTa, ELECTRA, SpanBERT, DistilBERT, "
                   "XLM-RoBERTa, DeBERTa, ModernBERT")
    err = one_line_error(run_cli("variants", "-m", tiny_albert / "spiece.model"), 6)
    assert "no config.json" in err
