"""`bertcli fill-mask`: end to end in real processes (JSON, exit codes, one-line errors) and, in-process, the
other formats and the table."""

from __future__ import annotations

import io
import json
import sys
import types

import pytest

from bertcli.commands.fill_mask import fill_mask
from bertcli.errors import BadInputError


@pytest.fixture
def inproc(monkeypatch, run_output):
    """Run the command function in this process: stdout captured by capsys, a 100-column table console."""
    monkeypatch.setenv("COLUMNS", "100")

    def run(*texts, stdin: str | None = None, **options):
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(stdin.encode())))
        defaults = dict(model=None, top_k=5, file=None, device="cpu", fmt=None, quiet=False)
        fill_mask(list(texts) or None, **{**defaults, **options})

    return run


def test_roberta_json_translates_mask_and_matches_transformers(run_cli, tiny_roberta):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    r = run_cli("fill-mask", "The capital of France is [MASK].", "-m", str(tiny_roberta), "--top-k", "3", "-f", "json")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    [rec] = json.loads(r.stdout)
    assert rec["text"] == "The capital of France is [MASK]."
    assert rec["model_text"] == "The capital of France is <mask>."
    [mask] = rec["masks"]
    tok = transformers.AutoTokenizer.from_pretrained(str(tiny_roberta))
    model = transformers.AutoModelForMaskedLM.from_pretrained(str(tiny_roberta)).eval()
    enc = tok(rec["model_text"], return_tensors="pt")
    assert mask["position"] == enc["input_ids"][0].tolist().index(tok.mask_token_id)
    with torch.inference_mode():
        top = model(**enc).logits[0, mask["position"]].softmax(-1).topk(3)
    assert [p["token_id"] for p in mask["predictions"]] == top.indices.tolist()
    assert [p["score"] for p in mask["predictions"]] == pytest.approx(top.values.tolist(), abs=1e-5)
    assert [p["token"] for p in mask["predictions"]] == tok.convert_ids_to_tokens(top.indices.tolist())
    assert rec["filled"] == "The capital of France is " + mask["predictions"][0]["word"] + "."


def test_no_mask_is_exit_5(run_cli, tiny_bert):
    r = run_cli("fill-mask", "-m", str(tiny_bert), input="a [MASK] here\nno mask here\n")
    assert r.returncode == 5
    assert r.stderr == ("error: <stdin>, line 2: no mask in the text; write [MASK] where a word is missing "
                        "(for this model [MASK] and <mask> both mean [MASK])\n")


def test_model_without_mlm_head_is_exit_6(run_cli, tiny_bert_base_only):
    r = run_cli("fill-mask", "a [MASK]", "-m", str(tiny_bert_base_only))
    assert r.returncode == 6
    assert r.stderr == (f"error: {tiny_bert_base_only} has no masked-LM head (architecture: BertModel), which "
                        "`bertcli fill-mask` needs; this model fits: bertcli embed\n")


def test_empty_input_and_bad_top_k(run_cli, tiny_bert):
    empty = run_cli("fill-mask", "-m", str(tiny_bert), input="")
    assert (empty.returncode, empty.stderr) == (5, "error: empty input: no text to process\n")
    bad = run_cli("fill-mask", "a [MASK]", "-m", str(tiny_bert), "--top-k", "0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--top-k" in bad.stderr


def test_stdin_lines_as_jsonl_then_tsv(inproc, tiny_bert, capsys):
    inproc(stdin="It was a [MASK] day.\n[MASK] is a [MASK] city\n", model=str(tiny_bert), top_k=2, fmt="jsonl")
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [rec["line"] for rec in recs] == [1, 2]
    assert [len(rec["masks"]) for rec in recs] == [1, 2]
    assert [m["position"] for m in recs[1]["masks"]] == [1, 4]
    assert all(len(m["predictions"]) == 2 for rec in recs for m in rec["masks"])
    inproc("[MASK] is a [MASK] city", model=str(tiny_bert), top_k=2, fmt="tsv")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "line\tmask\tposition\trank\ttoken\ttoken_id\tword\tscore"
    assert [row.split("\t")[:4] for row in lines[1:]] == [["1", "1", "1", "1"], ["1", "1", "1", "2"],
                                                        ["1", "2", "4", "1"], ["1", "2", "4", "2"]]
    ids = [int(row.split("\t")[5]) for row in lines[1:]]
    assert ids == [p["token_id"] for m in recs[1]["masks"] for p in m["predictions"]]  # same text, same answer


def test_table_shows_filled_sentence(inproc, tiny_albert, capsys):
    inproc("It was a [MASK] day.", "[MASK] and [MASK]", model=str(tiny_albert), top_k=2, fmt="table")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("It was a ") and out[0].endswith(" day.")
    assert out[1].split() == ["mask", "@pos", "┃", "#", "┃", "word", "┃", "token", "┃", "score", "┃"]
    assert out[3].split()[:4] == ["1", "@4", "│", "1"]
    second = next(line for line in out[5:] if line and line[0] not in " ━─│" and "┃" not in line)
    assert second.endswith("(2 masks, each predicted on its own)")


def test_file_line_numbers_in_errors(inproc, tiny_bert, tmp_path):
    path = tmp_path / "cloze.txt"
    path.write_text("a [MASK]\n\n")
    with pytest.raises(BadInputError, match=rf"{path}, line 2: no mask in the text"):
        inproc(model=str(tiny_bert), file=path, fmt="jsonl")


def test_no_color_terminal_keeps_the_bars(inproc, tiny_bert, run_output):
    """NO_COLOR on a terminal: the score bars are characters (█ and ·), so they survive without colour."""
    import re

    from rich.console import Console

    buffer = io.StringIO()
    run_output.stdout_console = Console(file=buffer, force_terminal=True, no_color=True, width=100, soft_wrap=False,
                                        highlight=False)
    inproc("hello [MASK]", model=str(tiny_bert), top_k=3, fmt="table")
    raw = buffer.getvalue()
    assert "\x1b[48" not in raw and "\x1b[38" not in raw  # no colours at all
    rows = [line for line in re.sub(r"\x1b\[[0-9;]*m", "", raw).splitlines() if "·" in line]
    assert len(rows) == 3 and all(re.search(r"[█·]{20}$", row.rstrip()) for row in rows)
