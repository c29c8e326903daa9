"""`bertcli tokenize` from the command line: formats, streaming input, helpers, and every error path."""

from __future__ import annotations

import json

import pytest

IDS = [101, 2009, 2001, 1037, 2307, 2154, 102]


def test_minilm_reference_json(run_cli, minilm_dir):
    r = run_cli("tokenize", "-m", str(minilm_dir), "It was a great day", "-f", "json")
    assert r.returncode == 0, r.stderr
    [rec] = json.loads(r.stdout)
    assert rec["input_ids"] == IDS
    assert rec["tokens"] == ["[CLS]", "it", "was", "a", "great", "day", "[SEP]"]
    assert rec["token_type_ids"] == [0] * 7 and rec["attention_mask"] == [1] * 7
    assert rec["offsets"] == [[0, 0], [0, 2], [3, 6], [7, 8], [9, 14], [15, 18], [0, 0]]
    assert r.stderr == ""


def test_piped_default_is_jsonl_streamed_from_stdin(run_cli, minilm_dir):
    r = run_cli("tokenize", "-m", str(minilm_dir), input="It was a great day\n\nhello\n")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 3  # blank lines keep their place
    assert json.loads(lines[0])["input_ids"] == IDS
    assert json.loads(lines[1])["input_ids"] == [101, 102]


def test_ids_count_truncate(run_cli, minilm_dir):
    m = ["-m", str(minilm_dir)]
    assert run_cli("tokenize", *m, "-f", "ids", input="It was a great day\n").stdout == " ".join(map(str, IDS)) + "\n"
    assert run_cli("tokenize", *m, "--count", input="It was a great day\nhi there\n").stdout == "5\n2\n"
    assert run_cli("tokenize", *m, "--truncate", "3", input="It was a great day\nhi\n").stdout == "It was a\nhi\n"
    counted = run_cli("tokenize", *m, "--count", "-f", "jsonl", "It was a great day")
    assert json.loads(counted.stdout) == {"line": 1, "text": "It was a great day", "count": 5}
    cut = run_cli("tokenize", *m, "--truncate", "3", "-f", "jsonl", input="It was a great day\nhi\n")
    assert [json.loads(x) for x in cut.stdout.splitlines()] == [
        {"line": 1, "text": "It was a", "count": 3}, {"line": 2, "text": "hi", "count": 1}]


def test_roberta_has_no_token_types_and_albert_has(run_cli, tiny_roberta, tiny_albert):
    rob = json.loads(run_cli("tokenize", "-m", str(tiny_roberta), "It was a great day").stdout)
    assert rob["tokens"] == ["<s>", "It", "Ġwas", "Ġa", "Ġgreat", "Ġday", "</s>"]
    assert "token_type_ids" not in rob
    alb = json.loads(run_cli("tokenize", "-m", str(tiny_albert / "spiece.model"), "Beijing is a beautiful city").stdout)
    assert alb["tokens"] == ["[CLS]", "▁beijing", "▁is", "▁a", "▁beautiful", "▁city", "[SEP]"]
    assert alb["token_type_ids"] == [0] * 7


def test_pair_and_pairs(run_cli, minilm_dir):
    one = json.loads(run_cli("tokenize", "-m", str(minilm_dir), "who?", "--pair", "it was").stdout)
    assert one["tokens"] == ["[CLS]", "who", "?", "[SEP]", "it", "was", "[SEP]"]
    assert one["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]
    many = run_cli("tokenize", "-m", str(minilm_dir), "--pairs", input="who?\tit was\na\tb\n")
    assert [json.loads(x)["token_type_ids"] for x in many.stdout.splitlines()] == [[0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1]]


def test_max_length_and_no_special(run_cli, minilm_dir):
    rec = json.loads(run_cli("tokenize", "-m", str(minilm_dir), "It was a great day", "--max-length", "4").stdout)
    assert rec["input_ids"] == [101, 2009, 2001, 102]
    rec = json.loads(run_cli("tokenize", "-m", str(minilm_dir), "It was a great day", "--no-special-tokens").stdout)
    assert rec["input_ids"] == IDS[1:-1]


def test_tsv(run_cli, minilm_dir):
    lines = run_cli("tokenize", "-m", str(minilm_dir), "It was", "-f", "tsv").stdout.splitlines()
    assert lines[0].split("\t") == ["line", "position", "token", "id", "token_type_id", "attention_mask",
                                    "start", "end", "word_id", "special"]
    assert lines[2].split("\t") == ["1", "1", "it", "2009", "0", "1", "0", "2", "0", "false"]


def test_table_view_shows_tokens_and_chips(run_cli, minilm_dir):
    r = run_cli("tokenize", "-m", str(minilm_dir), "It was a great day", "-f", "table")
    assert r.returncode == 0
    for expected in ("[CLS]", "2009", "great", "15–18", "7 tokens, 5 without specials, WordPiece"):
        assert expected in r.stdout


def test_env_default_model(run_cli, minilm_dir):
    r = run_cli("tokenize", "It was a great day", "-f", "ids", env={"BERTCLI_MODEL": str(minilm_dir)})
    assert r.stdout.split() == [str(i) for i in IDS]


def test_one_megabyte_line(run_cli, minilm_dir):
    r = run_cli("tokenize", "-m", str(minilm_dir), "--count", input="word " * 200_000 + "\n")
    assert r.returncode == 0 and r.stdout == "200000\n"
    r = run_cli("tokenize", "-m", str(minilm_dir), "-f", "ids", input="word " * 200_000 + "\n")
    assert r.returncode == 0 and len(r.stdout.split()) == 200_002
    assert r.stderr.count("\n") == 1 and "longer than the model's maximum of 512" in r.stderr


@pytest.mark.parametrize("args,stdin,code,message", [
    (["-m", "nosuchalias", "x"], None, 3, "not an alias"),
    (["-m", "./missing-folder", "x"], None, 3, "no such file or folder"),
    (["-m", "roberta", "x"], None, 4, "bertcli download FacebookAI/roberta-base"),
    (["-m", "{tmp}", "x"], None, 6, "no config.json and no tokenizer files"),
    (["-m", "{minilm}", "x", "-f", "yaml"], None, 2, "Invalid value for '--format' / '-f': 'yaml' is not one of"),
    (["-m", "{minilm}"], b"ok\n\xff\xfe bad\n", 5, "<stdin>, line 2: not UTF-8"),
    (["-m", "{minilm}"], b"", 5, "empty input"),
    (["-m", "{minilm}", "--file", "/no/such/file.txt"], None, 5, "no such file"),
    (["-m", "{minilm}", "--count", "--truncate", "2", "x"], None, 2, "do not go together"),
    (["-m", "{minilm}", "a", "b", "--pair", "c"], None, 2, "exactly one TEXT"),
    (["-m", "{minilm}", "--pairs"], "no tab here\n", 5, "line 1: --pairs expects"),
])
def test_errors_are_one_line(run_cli, minilm_dir, tmp_path, args, stdin, code, message):
    args = [a.replace("{minilm}", str(minilm_dir)).replace("{tmp}", str(tmp_path)) for a in args]
    r = run_cli("tokenize", *args, input=stdin)
    assert r.returncode == code, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1


def test_corrupt_config_json(run_cli, tiny_bert, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_bert, folder)
    (folder / "config.json").write_text("{oops")
    r = run_cli("config", str(folder))
    assert r.returncode == 6 and "not valid JSON" in r.stderr and "Traceback" not in r.stderr


def test_debug_shows_traceback(run_cli):
    r = run_cli("tokenize", "-m", "./missing-folder", "x", "--debug")
    assert r.returncode == 3 and "Traceback" in r.stderr
