"""`bertcli detect`: end to end in real processes (JSON, exit codes, one-line errors) and, in-process, TSV, the
table and word-position errors."""

from __future__ import annotations

import io
import json
import re
import sys
import types

import pytest

from bertcli.commands.detect import detect
from bertcli.errors import UsageError


@pytest.fixture
def inproc(monkeypatch, run_output):
    """Run the command function in this process: stdout captured by capsys, a 100-column table console."""
    monkeypatch.setenv("COLUMNS", "100")

    def run(*texts, stdin: str | None = None, **options):
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(stdin.encode())))
        defaults = dict(model=None, replace=None, file=None, device="cpu", fmt=None, quiet=False)
        detect(list(texts) or None, **{**defaults, **options})

    return run


def test_replace_json(run_cli, tiny_electra):
    r = run_cli("detect", "The chef cooked the meal.", "-m", str(tiny_electra), "--replace", "3=ate", "-f", "json")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    [rec] = json.loads(r.stdout)
    assert rec["text"] == "The chef ate the meal."
    assert rec["original"] == "The chef cooked the meal."
    assert rec["replacements"] == [{"word": 3, "old": "cooked", "new": "ate", "start": 9, "end": 12}]
    toks = rec["tokens"]
    assert toks[0]["token"] == "[CLS]" and toks[0]["special"] and toks[0]["word"] is None
    swapped = [t for t in toks if t["swapped"]]
    assert "".join(t["token"].removeprefix("##") for t in swapped) == "ate" and {t["word"] for t in swapped} == {3}
    assert all(0.0 < t["probability"] < 1.0 for t in toks)
    assert all(t["predicted_replaced"] == (t["probability"] > 0.5) for t in toks)


def test_non_discriminator_is_exit_6(run_cli, tiny_bert):
    r = run_cli("detect", "hello", "-m", str(tiny_bert))
    assert r.returncode == 6
    assert r.stderr == (f"error: {tiny_bert} has no replaced-token-detection (ELECTRA discriminator) head "
                        "(architecture: BertForMaskedLM), which `bertcli detect` needs; "
                        "this model fits: bertcli embed, bertcli fill-mask\n")


def test_bad_replace_is_exit_2(run_cli, tiny_electra):
    m = ["-m", str(tiny_electra)]
    for args, message in ((["The chef cooked.", "--replace", "baked=ate"],
                           "error: --replace baked=…: the text has no word 'baked'; its words are 1=The 2=chef 3=cooked 4=."),
                          (["one", "two", "--replace", "1=x"], "--replace goes with exactly one TEXT")):
        r = run_cli("detect", *args, *m)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr and len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr


def test_pos_out_of_range_lists_the_words(inproc, tiny_electra):
    with pytest.raises(UsageError) as info:
        inproc("The chef cooked.", model=str(tiny_electra), replace=["9=ate"], fmt="json")
    assert str(info.value) == ("--replace 9=…: the text has 4 words, so POS must be 1..4 "
                               "(1=The 2=chef 3=cooked 4=.)")


def test_stdin_tsv(inproc, tiny_electra, capsys):
    inproc(stdin="It was a great day\nday\n", model=str(tiny_electra), fmt="tsv")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "line\tposition\ttoken\tid\tword\tspecial\tswapped\tprobability"
    rows = [row.split("\t") for row in lines[1:]]
    assert [r[:5] for r in rows[-3:]] == [["2", "0", "[CLS]", "2", ""], ["2", "1", "day", "366", "1"],
                                         ["2", "2", "[SEP]", "3", ""]]
    assert [r[2] for r in rows if r[0] == "1"] == ["[CLS]", "it", "was", "a", "great", "day", "[SEP]"]


def test_table_marks_the_swap(inproc, tiny_electra, capsys):
    inproc("The chef cooked the meal.", model=str(tiny_electra), replace=["3=ate"], fmt="table")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "original: The chef cooked the meal.   swapped 3: 'cooked' → 'ate'"
    # no colour (captured output): a shade after each token carries p(replaced), the legend shows the ramp
    assert re.sub("[░▒▓█]", "", out[1]).startswith(" the c ##he ##f at ##e the m ##ea ##l .    p(replaced): ")
    assert out[1].endswith("p(replaced): 0 ░▒▓█ 1")
    swapped_rows = [line for line in out if "← swapped" in line]
    assert [row.split()[2] for row in swapped_rows] == ["at", "##e"]


def _terminal(out, **kwargs):
    from rich.console import Console

    buffer = io.StringIO()
    out.stdout_console = Console(file=buffer, force_terminal=True, width=100, soft_wrap=False, highlight=False, **kwargs)
    return buffer


def test_no_color_terminal_shades_the_heat_line(inproc, tiny_electra, run_output):
    """NO_COLOR on a terminal drops the heat line's backgrounds: each token then carries its shade (p(replaced))."""
    buffer = _terminal(run_output, no_color=True)
    inproc("The chef cooked the meal.", model=str(tiny_electra), fmt="table")
    raw = buffer.getvalue()
    assert "\x1b[48" not in raw
    heat = re.sub(r"\x1b\[[0-9;]*m", "", raw).splitlines()[0]
    assert heat.endswith("p(replaced): 0 ░▒▓█ 1")
    shown = heat.split("    p(replaced)")[0].split(" ")[1:]
    assert [re.sub("[░▒▓█]", "", t) for t in shown] == ["the", "c", "##he", "##f", "cook", "##ed", "the", "m", "##ea", "##l", "."]


def test_colour_terminal_paints_the_heat_line(inproc, tiny_electra, run_output):
    buffer = _terminal(run_output, color_system="truecolor")
    inproc("The chef cooked the meal.", model=str(tiny_electra), fmt="table")
    heat = buffer.getvalue().splitlines()[0]
    assert "48;2;" in heat  # truecolor backgrounds
    assert not set(heat) & set("░▒▓█")


def test_replace_by_word_is_replace_by_position(run_cli, tiny_electra):
    m = ["-m", str(tiny_electra), "-f", "json"]
    by_word = run_cli("detect", "The chef cooked the meal.", *m, "--replace", "cooked=ate")
    by_pos = run_cli("detect", "The chef cooked the meal.", *m, "--replace", "3=ate")
    assert by_word.returncode == 0, by_word.stderr
    assert json.loads(by_word.stdout) == json.loads(by_pos.stdout)
    [rec] = json.loads(by_word.stdout)
    assert rec["replacements"] == [{"word": 3, "old": "cooked", "new": "ate", "start": 9, "end": 12}]
