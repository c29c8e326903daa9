"""Issue 13, memory and time without bound, plus small input inconsistencies.

Memory is measured in a fresh child process (peak RSS from /proc/self/status VmHWM at its end), comparing a
small input with a much bigger one: the bigger one may cost only a bounded amount more. Never an absolute
number, which would depend on the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def one_line_error(proc, code: int) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


# ------------------------------------------------------------------------------------------- helpers

#: Runs bertcli in this child and writes the child's peak RSS (VmHWM, kB) to $PEAK_FILE when it exits.
_PEAK_WRAPPER = textwrap.dedent(
    """
    import atexit, os, runpy, sys

    def report():
        with open("/proc/self/status") as status:
            peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
        with open(os.environ["PEAK_FILE"], "w") as out:
            out.write(peak)

    atexit.register(report)
    sys.argv = ["bertcli", *sys.argv[1:]]
    runpy.run_module("bertcli", run_name="__main__")
    """
)


def peak_rss_mb(tmp_path: Path, *args, stdin: Path | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """Run `bertcli ARGS` in a fresh child; return (process, its peak RSS in MB). stdout goes to a file."""
    peak_file = tmp_path / "peak.txt"
    out_file = tmp_path / "stdout.txt"
    env = dict(os.environ, PEAK_FILE=str(peak_file), PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    with open(out_file, "wb") as out, open(stdin or os.devnull, "rb") as inp:
        proc = subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, *map(str, args)], stdin=inp, stdout=out,
                              stderr=subprocess.PIPE, env=env, cwd=tmp_path, timeout=300, text=True)
    proc.stdout = out_file.read_text(encoding="utf-8", errors="replace")
    return proc, int(peak_file.read_text()) / 1024


# --------------------------------------------------------------------------------------------- mask


@pytest.mark.parametrize("option, value", [("--epochs", "100000000"), ("--samples", "100000000")])
def test_mask_refuses_epochs_and_samples_over_the_cap(run_cli, tiny_bert, option, value):
    proc = run_cli("mask", "-m", tiny_bert, "It was a great day", "--seed", "1", option, value)
    line = one_line_error(proc, 2)
    assert option in line and ("100,000" in line or "1,000,000" in line)
    assert proc.stdout == ""


def test_mask_caps_are_in_help(run_cli):
    proc = run_cli("mask", "--help", env={"COLUMNS": "200"})
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "at most 100,000" in text and "at most 1,000,000" in text


def test_mask_epochs_stream_in_flat_memory(tmp_path, tiny_bert):
    text = "It was a great day in the city and the river was quiet at night " * 4
    args = ("mask", "-m", tiny_bert, text, "--seed", "1", "-s", "dynamic", "-f", "jsonl")
    peak_rss_mb(tmp_path, *args, "--epochs", "1")  # warm-up: the first run converts and caches the tokenizer
    small, small_peak = peak_rss_mb(tmp_path, *args, "--epochs", "50")
    assert small.returncode == 0, small.stderr
    assert len(small.stdout.splitlines()) == 50
    big, big_peak = peak_rss_mb(tmp_path, *args, "--epochs", "20000")
    assert big.returncode == 0, big.stderr
    lines = big.stdout.splitlines()
    assert len(lines) == 20000 and json.loads(lines[-1])["epoch"] == 20000
    # Held as a list, 20,000 epochs of this text weigh well over 100 MB; streamed they cost nothing more.
    assert big_peak - small_peak < 40, (small_peak, big_peak)


# --------------------------------------------------------------------------------------------- qa

WORDS = ("the city was great and Paris is the capital of France, where people live happily every day. "
         "Café naïve 北京 😀 don't 42 x—y").split()


def messy_text(rng, n_words: int) -> str:
    """Words joined by every kind of whitespace run (double spaces, tabs, newlines, none at all)."""
    seps = [" ", " ", " ", "  ", "\n", " \t ", ""]
    return "".join(rng.choice(WORDS) + rng.choice(seps) for _ in range(n_words))


@pytest.mark.parametrize("family", ["bert_qa", "albert", "roberta"])  # WordPiece, SentencePiece, byte-level BPE
def test_streamed_windows_equal_one_call_windows(tiny_models, family):
    import random

    from bertcli import qa_spans
    from bertcli.resolve import resolve_model
    from bertcli.tokenizer import load_tokenizer

    tok = load_tokenizer(resolve_model(str(tiny_models[family]))).backend
    assert qa_spans._chunk_safe(qa_spans._working_copy(tok))  # else this test would compare one path to itself
    rng = random.Random(7)
    for _ in range(25):
        context = rng.choice(["", "  ", "\n"]) + messy_text(rng, rng.randint(3, 400)) + rng.choice(["", "  "])
        question = rng.choice(["what is the capital?", "who?", "where do people live happily"])
        options = dict(max_length=rng.choice([24, 32, 48]), doc_stride=rng.choice([None, 0, 4, 8]))
        try:
            whole = qa_spans.make_windows(tok, question, context, **options)
        except ValueError as exc:
            whole = str(exc)
        try:  # tiny chunks: a cut before almost every whitespace run
            streamed = list(qa_spans.iter_windows(tok, question, context, chunk_chars=rng.choice([1, 9, 60]),
                                                  **options))
        except ValueError as exc:
            streamed = str(exc)
        assert streamed == whole, (context, question, options)


def test_qa_long_context_memory_is_bounded(tmp_path, tiny_bert_qa):
    import random

    rng = random.Random(3)
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    small.write_text(messy_text(rng, 2_000), encoding="utf-8")
    big.write_text(messy_text(rng, 60_000), encoding="utf-8")
    args = ("qa", "-m", tiny_bert_qa, "-q", "what is the capital?", "--batch-size", "64", "-f", "json",
            "--show-windows", "--context-file")
    peak_rss_mb(tmp_path, *args, small)  # warm-up: the first run converts and caches the tokenizer
    proc_small, small_peak = peak_rss_mb(tmp_path, *args, small)
    assert proc_small.returncode == 0, proc_small.stderr
    proc_big, big_peak = peak_rss_mb(tmp_path, *args, big)
    assert proc_big.returncode == 0, proc_big.stderr
    (record,) = json.loads(proc_big.stdout)
    text = big.read_text(encoding="utf-8")
    assert text[record["start"] : record["end"]] == record["answer"]
    windows = record["windows"]
    assert len(windows) > 1000 and windows[-1]["end"] == len(text.rstrip())
    # All windows at once cost ~100 MB more here; streamed, the big context costs little more than the small.
    assert big_peak - small_peak < 40, (small_peak, big_peak)


# --------------------------------------------------------------------------------------------- compare


def test_compare_refuses_a_huge_line_before_tokenizing(run_cli, tiny_bert, tiny_roberta, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("it was a great day\n" + "word " * 30_000 + "\n", encoding="utf-8")
    proc = run_cli("compare", "-m", tiny_bert, "-m", tiny_roberta, "--file", big)
    line = one_line_error(proc, 5)
    assert f"{big}, line 2: 150,000 characters" in line and "100,000" in line
    assert json.loads(proc.stdout.splitlines()[0])["text"] == "it was a great day"  # line 1 was compared
    ok = run_cli("compare", "-m", tiny_bert, "-m", tiny_roberta, "word " * 19_999)  # 99,995 characters
    assert ok.returncode == 0, ok.stderr


# --------------------------------------------------------------------------------------------- item 11


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_qa_input_without_records_is_bad_input(run_cli, tiny_bert_qa, tmp_path, content):
    empty = tmp_path / "empty.jsonl"
    empty.write_text(content)
    proc = run_cli("qa", "-m", tiny_bert_qa, "--input", empty)
    line = one_line_error(proc, 5)
    assert "empty input" in line and str(empty) in line
    assert proc.stdout == ""
