"""`bertcli attention`: end to end in real processes (JSON, the 512-token terminal map, PNG, exit codes) and,
in-process, top-N and TSV."""

from __future__ import annotations

import json
import re

import pytest

from bertcli.commands.attention import attention


@pytest.fixture
def inproc(monkeypatch, run_output):
    """Run the command function in this process: stdout captured by capsys, a 120-column table console."""
    monkeypatch.setenv("COLUMNS", "120")

    def run(text, **options):
        defaults = dict(model=None, layer=-1, head="mean", top=None, png=None, scale="auto", cells=None, file=None,
                        device="cpu", fmt=None, quiet=False)
        attention(text, **{**defaults, **options})

    return run


def test_json_matrix_rows_sum_to_one(run_cli, tiny_bert):
    r = run_cli("attention", "It was a great day", "-m", str(tiny_bert), "--layer", "-1", "--head", "1", "-f", "json")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    rec = json.loads(r.stdout)
    assert (rec["layer"], rec["head"], rec["num_layers"], rec["num_heads"]) == (2, 1, 2, 2)
    assert rec["tokens"] == ["[CLS]", "it", "was", "a", "great", "day", "[SEP]"]
    assert len(rec["attention"]) == 7 and all(len(row) == 7 for row in rec["attention"])
    assert all(abs(sum(row) - 1) < 1e-5 for row in rec["attention"])


def test_512_tokens_terminal_map_is_bucketed_and_fits(run_cli, minilm_dir):
    text = "the quick brown fox jumps over the lazy dog " * 70
    r = run_cli("attention", "-m", str(minilm_dir), "-f", "table", "--head", "3", input=text,
                env={"COLUMNS": "100"})
    assert r.returncode == 0, r.stderr
    assert r.stderr == "warning: the text is 632 tokens; the model takes 512, so the last 120 were left out\n"
    out = r.stdout.splitlines()
    assert "layer 6 of 1–6 · head 3 of 0–11  ·  512 tokens" in out[0]
    # 100 columns - 21 for the labels = 39 two-character cells → buckets of ceil(512/39) = 14 tokens
    assert "512 tokens in 37×37 buckets of 14 consecutive tokens" in r.stdout
    assert max(len(line) for line in out) <= 100
    rows = [line for line in out if line.lstrip().startswith(tuple("0123456789")) and "–" in line[:12]]
    assert len(rows) == 37 and rows[0].startswith("  0–13  [CLS]…") and rows[-1].startswith("504–511 ")
    assert all(len(row) == 21 + 2 * 37 for row in rows)
    assert out[-1].endswith("(log scale)")


def test_png(run_cli, tiny_bert, tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "map.png"
    r = run_cli("attention", "It was a great day", "-m", str(tiny_bert), "--png", str(target), "--head", "0")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""  # only the picture, unless --top or --format asks for more
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["map.png"]  # no temporary file left behind
    assert " ".join(r.stderr.split()) == f"wrote {target} (7 tokens, layer 2 of 1–2 · head 0 of 0–1)"


def test_png_without_matplotlib_is_exit_7(run_cli, tiny_bert, tmp_path):
    fake = tmp_path / "fake"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError(\"No module named 'matplotlib'\")\n")
    from tests.conftest import REPO_ROOT

    r = run_cli("attention", "hi", "-m", str(tiny_bert), "--png", str(tmp_path / "a.png"),
                env={"PYTHONPATH": f"{fake}:{REPO_ROOT}"})
    assert r.returncode == 7
    assert r.stderr == "error: --png needs matplotlib, which is not installed; pip install 'bertcli[plot]'\n"
    assert not (tmp_path / "a.png").exists()


def test_out_of_range_is_exit_2(run_cli, tiny_bert):
    r = run_cli("attention", "hi", "-m", str(tiny_bert), "--layer", "3")
    assert r.returncode == 2
    assert r.stderr == "error: --layer 3 is out of range: this model has 2 layers, so use 1..2 (or -2..-1 from the end)\n"
    r = run_cli("attention", "hi", "-m", str(tiny_bert), "--layer", "0")
    assert (r.returncode, r.stderr) == (2, "error: --layer 0 is the embedding output, which has no attention: use an "
                                           "encoder layer, 1..2 (or -2..-1 from the end)\n")
    r = run_cli("attention", "hi", "-m", str(tiny_bert), "--head", "-3")
    assert (r.returncode, r.stderr) == (2, "error: --head -3 is out of range: this model has 2 heads, so use 0..1 "
                                           "(or -2..-1 from the end)\n")
    r = run_cli("attention", "hi", "-m", str(tiny_bert), "--head", "x")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_top_json_and_table(inproc, minilm_dir, capsys):
    inproc("It was a great day", model=str(minilm_dir), top=2, fmt="json")
    rec = json.loads(capsys.readouterr().out)
    assert "attention" not in rec and len(rec["top"]) == 7
    assert all(len(t) == 2 and t[0]["weight"] >= t[1]["weight"] for t in rec["top"])
    inproc("It was a great day", model=str(minilm_dir), top=2, fmt="table")
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["#", "┃", "token", "┃", "top", "1", "┃", "top", "2"]
    first = rec["top"][1][0]
    assert out[4].split()[:5] == ["1", "│", "it", "│", first["token"]]
    assert f"@{first['position']} {first['weight']:.3f}" in out[4]


def test_tsv_every_pair(inproc, minilm_dir, capsys):
    inproc("hi", model=str(minilm_dir), layer=1, head="0", fmt="tsv")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "query\tquery_token\tkey\tkey_token\tweight"
    assert [line.split("\t")[:4] for line in lines[1:4]] == [["0", "[CLS]", "0", "[CLS]"], ["0", "[CLS]", "1", "hi"],
                                                             ["0", "[CLS]", "2", "[SEP]"]]
    assert len(lines) == 1 + 9  # [CLS] hi [SEP] → 3 × 3
    assert sum(float(x.split("\t")[4]) for x in lines[1:4]) == pytest.approx(1.0, abs=1e-5)


def test_short_map_labels_every_token(inproc, tiny_bert, capsys):
    inproc("It was a great day", model=str(tiny_bert), layer=1, head="1", fmt="table")
    out = capsys.readouterr().out.splitlines()
    assert "buckets" not in "\n".join(out)
    rows = out[3:10]
    assert [row[:20].split() for row in rows] == [["0", "[CLS]"], ["1", "it"], ["2", "was"], ["3", "a"],
                                                 ["4", "great"], ["5", "day"], ["6", "[SEP]"]]
    assert out[2].split() == ["0", "1", "2", "3", "4", "5", "6"]
    assert out[-1].strip().startswith("0 ") and out[-1].endswith("(linear scale)")


def _terminal(out, **kwargs):
    """A 120-column terminal console as the table console of the run's `Output` ``out``; returns its buffer."""
    import io

    from rich.console import Console

    buffer = io.StringIO()
    out.stdout_console = Console(file=buffer, force_terminal=True, width=120, soft_wrap=False, highlight=False, **kwargs)
    return buffer


def test_no_color_terminal_shades_the_map(inproc, run_output, tiny_bert):
    """NO_COLOR on a terminal: Rich drops background colours, so the grid and legend must be drawn in ░▒▓█."""
    buffer = _terminal(run_output, no_color=True)
    inproc("It was a great day", model=str(tiny_bert), fmt="table")
    raw = buffer.getvalue()
    assert "\x1b[48" not in raw  # no background colour codes (bold and dim stay)
    out = re.sub(r"\x1b\[[0-9;]*m", "", raw)
    legend = out.splitlines()[-1]
    assert "░░▒▒▒▒▓▓▓▓████" in legend and legend.rstrip().endswith("(linear scale)")
    grid = [line[21:] for line in out.splitlines() if re.match(r"\d [^ ]", line)]
    assert len(grid) == 7  # [CLS] it was a great day [SEP]
    assert "██" in "".join(grid)  # the largest weight is the top of the scale, whatever the model's numbers


def test_colour_terminal_paints_the_map(inproc, run_output, tiny_bert):
    buffer = _terminal(run_output, color_system="truecolor")
    inproc("It was a great day", model=str(tiny_bert), fmt="table")
    out = buffer.getvalue()
    assert "\x1b[48;2;" in out  # truecolor backgrounds
    assert not set(out) & set("░▒▓█")
