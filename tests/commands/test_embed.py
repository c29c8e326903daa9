"""`bertcli embed`: end to end in real processes (npy from stdin, jsonl, similarity, bad input, exit codes) and,
in-process, the disk-full case (no partial file) and -o formats."""

from __future__ import annotations

import errno
import io
import json

import numpy as np
import pytest

from bertcli.commands.embed import embed
from bertcli.errors import OutputError


@pytest.fixture
def inproc(monkeypatch, run_output):
    """Run the command function in this process (stdout via capsys, fresh output settings)."""
    import torch

    monkeypatch.setenv("COLUMNS", "120")
    before = torch.get_num_threads()
    torch.set_num_threads(1)

    def run(texts, **options):
        defaults = dict(model=None, file=None, pooling=None, layer=None, normalize=None, out=None, dtype="float32",
                        similarity=False, device="cpu", threads=None, batch_size=None, max_tokens=None,
                        max_length=None, compute="float32", on_long="truncate", fmt=None, quiet=True)
        embed(texts, **{**defaults, **options})

    yield run
    torch.set_num_threads(before)


def _reference(minilm_dir, texts):
    from bertcli.embed import load_embedder
    from bertcli.resolve import resolve_model

    return load_embedder(resolve_model(str(minilm_dir))).embed_array(texts)


def test_stdin_to_npy_file_in_input_order_with_empty_line(run_cli, minilm_dir, tmp_path):
    lines = ["It was a great day", "", "Beijing is a beautiful city", "word " * 300]
    r = run_cli("embed", "-m", minilm_dir, "--normalize", "-f", "npy", "-o", "x.npy", "--max-tokens", "40",
                input="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        "warning: 1 text(s) longer than 256 tokens were truncated (first: <stdin>, line 4); "
        "--on-long error refuses them instead",
        "warning: 1 empty line(s) embedded as the empty text (kept so that rows match lines)",
        f"wrote 4 × 384 float32 to x.npy",
    ]
    got = np.load(tmp_path / "x.npy")
    assert got.shape == (4, 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, _reference(minilm_dir, lines), atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]  # no temporary file left


def test_npy_to_a_pipe_and_float16(run_cli, tiny_bert):
    r = run_cli("embed", "-m", tiny_bert, "-f", "npy", "--dtype", "float16", "--pooling", "cls", input="a city\nit was\n")
    assert r.returncode == 0, r.stderr
    got = np.load(io.BytesIO(r.stdout_bytes))
    assert got.shape == (2, 32) and got.dtype == np.float16


def test_jsonl_tokens_with_pooling_none(run_cli, tiny_bert):
    r = run_cli("embed", "It was a great day", "-m", tiny_bert, "--pooling", "none", "-f", "jsonl")
    assert r.returncode == 0, r.stderr
    [rec] = [json.loads(line) for line in r.stdout.splitlines()]
    assert rec["line"] == 1 and rec["text"] == "It was a great day" and rec["n_tokens"] == 7
    assert rec["tokens"] == ["[CLS]", "it", "was", "a", "great", "day", "[SEP]"]
    assert np.array(rec["vector"]).shape == (7, 32)


def test_similarity_json(run_cli, minilm_dir):
    texts = ["a cat sits on the mat", "a kitten sits on the rug", "quarterly tax form"]
    r = run_cli("embed", *texts, "-m", minilm_dir, "--similarity", "-f", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)  # an array of one record per text, the same records as -f jsonl
    assert [row["text"] for row in rows] == texts and [row["line"] for row in rows] == [1, 2, 3]
    matrix = np.array([row["similarity"] for row in rows])
    ref = _reference(minilm_dir, texts)
    np.testing.assert_allclose(matrix, ref @ ref.T, atol=1e-5)
    assert matrix[0, 1] > 0.5 > matrix[0, 2]


@pytest.mark.parametrize(
    "args, stdin, code, message",
    [
        (["--pooling", "avg", "x"], None, 2, "error: Invalid value for '--pooling' / '-p': 'avg' is not one of 'cls', 'pooler', 'mean', 'max', 'none'; "
         "see 'bertcli embed --help'"),
        (["-o", "missing/x.npy", "x"], None, 9, "error: cannot write missing/x.npy: folder missing does not exist"),
        (["-f", "npy", "--pooling", "none", "x"], None, 2, "error: --format npy writes one matrix with one row per "
         "text; --pooling none gives one per token (use -f jsonl)"),
        ([], b"fine\n\xff\xfe bad\n", 5, "error: <stdin>, line 2: not UTF-8 text (byte 0xff at column 1)"),
        (["--pooling", "pooler", "x"], None, 6, "error: --pooling pooler: {model} has no trained pooler (ElectraModel "
         "has no pooler layer); use --pooling cls, mean or max"),
        (["--on-long", "error", "--max-length", "4", "a b c d e f"], None, 5,
         "error: text 1: longer than the limit of 4 tokens; --on-long truncate cuts long texts to the limit"),
    ],
)
def test_bad_input_gives_one_clear_line(run_cli, tiny_electra, tmp_path, args, stdin, code, message):
    r = run_cli("embed", "-m", tiny_electra, *args, input=stdin)
    assert r.returncode == code, r.stderr
    assert r.stderr.splitlines() == [message.format(model=tiny_electra)]
    assert r.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_one_megabyte_line_is_truncated_with_a_warning(run_cli, tiny_bert):
    r = run_cli("embed", "-m", tiny_bert, "-f", "jsonl", "-q", input="hello world\n" + "city " * 210_000 + "\n")
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [rec["n_tokens"] for rec in recs] == [6, 128]
    assert r.stderr == ("warning: 1 text(s) longer than 128 tokens were truncated (first: <stdin>, line 2); "
                        "--on-long error refuses them instead\n")


# ---------------------------------------------------------------------------------------------------------
# in-process


def test_disk_full_leaves_no_partial_file(inproc, tiny_bert, tmp_path, monkeypatch):
    from bertcli.embed import NpyStreamWriter

    real_write = NpyStreamWriter._write
    calls = {"n": 0}

    def full_disk(self, data):
        calls["n"] += 1
        if calls["n"] > 1:  # the header goes through, the first rows do not
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, data)

    monkeypatch.setattr(NpyStreamWriter, "_write", full_disk)
    target = tmp_path / "x.npy"
    with pytest.raises(OutputError, match=f"cannot write {target}: No space left on device"):
        inproc(["a city", "it was a great day"], model=str(tiny_bert), out=target)
    assert list(tmp_path.iterdir()) == []


def test_output_file_format_from_suffix_and_table(inproc, tiny_bert, tmp_path, capsys):
    target = tmp_path / "v.jsonl"
    inproc(["a city", "it was"], model=str(tiny_bert), out=target, pooling="cls", normalize=True)
    recs = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["text"] for r in recs] == ["a city", "it was"]
    assert all(abs(np.linalg.norm(r["vector"]) - 1) < 1e-5 for r in recs)
    assert capsys.readouterr().out == ""
    inproc(["a city"], model=str(tiny_bert), fmt="table")
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "shape (1, 32) float32 · mean pooling · layer last (2)"
    assert "a city" in out and "…" in out


def test_config_without_model_type_runs_by_its_name(run_cli, tiny_bert, tmp_path):
    """An early checkpoint's config.json (no model_type, no tokenizer_config.json, like SpanBERT's first release)
    is read as the type its name says, with a warning, and gives the same ids and vectors as the original."""
    from tests.fixtures.tiny_models import copy_without_model_type

    folder = copy_without_model_type(tiny_bert, tmp_path / "spanbert-tiny")
    hidden = json.loads((folder / "config.json").read_text())["hidden_size"]
    warning = (f"warning: {folder}: config.json has no model_type; reading it as 'bert', which its name says "
               "(as transformers 4 did)\n")
    texts = ["the cat sat on the mat", "hello world"]

    ran = run_cli("embed", "-m", folder, *texts, "-f", "jsonl", "-q")  # -q: the one-off export line; warnings stay
    original = run_cli("embed", "-m", tiny_bert, *texts, "-f", "jsonl")
    assert ran.returncode == 0 and ran.stderr == warning
    got = np.array([json.loads(line)["vector"] for line in ran.stdout.splitlines()])
    want = np.array([json.loads(line)["vector"] for line in original.stdout.splitlines()])
    assert got.shape == want.shape == (2, hidden)
    np.testing.assert_allclose(got, want, atol=1e-6)

    ids = run_cli("tokenize", "-m", folder, texts[0], "-f", "ids")
    assert ids.returncode == 0 and ids.stdout == run_cli("tokenize", "-m", tiny_bert, texts[0], "-f", "ids").stdout
    shown = run_cli("config", folder, "-f", "json")
    record = json.loads(shown.stdout)
    assert shown.returncode == 0 and (record["family"], record["config"]["model_type"]) == ("SpanBERT", "bert")
    inspected = run_cli("inspect", folder, "-f", "json")
    report = json.loads(inspected.stdout)
    assert inspected.returncode == 0 and inspected.stderr == warning
    assert (report["family"], report["model_type"]) == ("SpanBERT", "bert")
    assert {c["command"]: c["available"] for c in report["capabilities"]}["embed"] is True
