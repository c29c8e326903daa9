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
from tests.fixtures.checks import one_line_error

REPO_ROOT = Path(__file__).resolve().parents[1]


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

    from bertcli import qa_spans, textcut
    from bertcli.resolve import resolve_model
    from bertcli.tokenizer import load_tokenizer

    tok = load_tokenizer(resolve_model(str(tiny_models[family]))).backend
    assert textcut.chunk_safe(tok)  # else this test would compare one path to itself
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


def test_windows_of_a_long_context_are_made_lazily(tiny_bert_qa, monkeypatch):
    from bertcli import qa_spans, textcut
    from bertcli.resolve import resolve_model
    from bertcli.tokenizer import load_tokenizer

    tok = load_tokenizer(resolve_model(str(tiny_bert_qa))).backend
    encoded: list[int] = []
    real = textcut.tokens_in_chunks

    def counting(tokenizer, context, chunk_chars):
        for chunk in real(tokenizer, context, chunk_chars):
            encoded.append(len(chunk[0]))
            yield chunk

    monkeypatch.setattr(textcut, "tokens_in_chunks", counting)
    context = "paris is the capital of france and people live there happily. " * 20_000  # 1.3 MB
    windows = qa_spans.iter_windows(tok, "what is the capital?", context, max_length=64)
    first = next(windows)
    assert len(first) == 64 and len(encoded) <= 2  # one chunk of 64 K characters read, not the 1.3 MB
    second = next(windows)
    assert second.offsets[-2][0] > first.offsets[-2][0]


def test_qa_long_context_memory_is_bounded(tmp_path, tiny_bert_qa):
    import random

    rng = random.Random(3)
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    small.write_text(messy_text(rng, 2_000), encoding="utf-8")
    big.write_text(messy_text(rng, 25_000), encoding="utf-8")
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
    assert len(windows) > 300 and windows[-1]["end"] == len(text.rstrip())
    # All windows at once cost ~80 MB more here; streamed, the big context costs little more than the small.
    assert big_peak - small_peak < 40, (small_peak, big_peak)


# --------------------------------------------------------------------------------------------- truncation


@pytest.mark.parametrize("family", ["bert", "albert", "roberta"])  # WordPiece, SentencePiece, byte-level BPE
def test_truncated_encoding_from_a_prefix_equals_the_whole_text_truncated(tiny_models, family, monkeypatch):
    import random

    from bertcli import textcut
    from bertcli.resolve import resolve_model
    from bertcli.tokenizer import load_tokenizer

    tok = load_tokenizer(resolve_model(str(tiny_models[family])))
    assert textcut.chunk_safe(tok.backend)  # else the prefix path would not be taken
    rng = random.Random(5)
    whole = load_tokenizer(resolve_model(str(tiny_models[family]))).backend  # a second copy, encoding whole
    for trial in range(24):
        # Half the trials with tiny first prefixes: they must grow, and often end just past the limit,
        # where a cut in the wrong place would show.
        monkeypatch.setattr(textcut, "MIN_PREFIX", 4096 if trial % 2 else 8)
        monkeypatch.setattr(textcut, "CHARS_PER_TOKEN", 12 if trial % 2 else 1)
        max_length = rng.choice([2, 3, 8, 64, 128])
        # longer than the first prefix; some so spaced out that the prefix must grow
        text = messy_text(rng, rng.randint(2_000, 4_000))
        if trial % 3 == 0:
            text = text.replace(" ", " " * 40)
        specials = rng.choice([True, False])
        assert len(text) > max(textcut.MIN_PREFIX, max_length * textcut.CHARS_PER_TOKEN)
        (got,) = tok.encode_batch([text], max_length=max_length, add_special_tokens=specials)
        whole.enable_truncation(max_length)
        (expected,) = whole.encode_batch([text], add_special_tokens=specials)
        assert (got.ids, got.tokens, got.offsets, got.type_ids, got.special_tokens_mask) == (
            expected.ids, expected.tokens, expected.offsets, expected.type_ids, expected.special_tokens_mask)
        assert bool(got.overflowing) == bool(expected.overflowing) is True
    short = "it was a great day"
    (got,) = tok.encode_batch([short], max_length=128)
    assert not got.overflowing and got.ids == whole.encode(short).ids


@pytest.mark.parametrize("family", ["bert", "albert", "roberta"])  # WordPiece, SentencePiece, byte-level BPE
def test_capped_encoding_counts_the_cut_tokens_in_chunks(tiny_models, family, monkeypatch):
    """`encode_capped` (attention, detect): the kept tokens from a prefix, the cut ones counted chunk by chunk,
    both equal to encoding the whole text."""
    import random

    from bertcli import textcut
    from bertcli.resolve import resolve_model
    from bertcli.tokenizer import load_tokenizer

    tok = load_tokenizer(resolve_model(str(tiny_models[family])))
    whole = load_tokenizer(resolve_model(str(tiny_models[family]))).backend
    whole.no_truncation()
    monkeypatch.setattr(textcut, "COUNT_CHUNK", 97)  # a cut before almost every whitespace run of these texts
    chunked = []
    real = textcut.tokens_in_chunks
    monkeypatch.setattr(textcut, "tokens_in_chunks", lambda *a: chunked.append(1) or real(*a))
    rng = random.Random(11)
    for _ in range(12):
        text = messy_text(rng, rng.randint(60, 900))
        max_length = rng.choice([8, 64, 128])
        enc, cut = tok.encode_capped(text, max_length)
        full = whole.encode(text)
        want_cut = max(0, len(full.ids) - max_length)
        assert cut == want_cut
        assert enc.ids == (full.ids[: max_length - 1] + full.ids[-1:] if want_cut else full.ids)  # [CLS] … [SEP]
        assert textcut.token_count(tok.backend, text, add_special_tokens=False) == len(whole.encode(
            text, add_special_tokens=False).ids)
    assert chunked  # the chunked count ran (not only the whole-text fallback)
    assert tok.encode_capped("it was a great day", None)[1] == 0


@pytest.mark.parametrize("family", ["bert", "albert", "roberta"])  # WordPiece, SentencePiece, byte-level BPE
def test_pairs_cut_from_prefixes_equal_the_whole_pairs_cut(tiny_models, family, monkeypatch):
    """classify/rerank/nsp/tokenize pairs: each side from a prefix, cut longest first, equal to tokenizers
    cutting the whole pair (ids, type ids, offsets), with the exact count of tokens lost."""
    import random

    from bertcli import textcut
    from bertcli.resolve import resolve_model
    from bertcli.tokenizer import load_tokenizer

    tok = load_tokenizer(resolve_model(str(tiny_models[family])))
    whole = load_tokenizer(resolve_model(str(tiny_models[family]))).backend
    monkeypatch.setattr(textcut, "MIN_PREFIX", 8)  # prefixes for every side over a few words
    monkeypatch.setattr(textcut, "CHARS_PER_TOKEN", 1)
    monkeypatch.setattr(textcut, "COUNT_CHUNK", 97)
    rng = random.Random(21)
    pairs = [(messy_text(rng, rng.choice([2, 30, 200])), messy_text(rng, rng.choice([1, 30, 200]))) for _ in range(30)]
    for max_length in (16, 129):
        for specials in (True, False):
            got, cut = tok.encode_pairs(pairs, max_length, add_special_tokens=specials)
            whole.enable_truncation(max_length=max_length, strategy="longest_first")
            want = whole.encode_batch(pairs, add_special_tokens=specials)
            whole.no_truncation()
            full = whole.encode_batch(pairs, add_special_tokens=specials)
            for g, w, f, c in zip(got, want, full, cut):
                assert (g.ids, g.type_ids, g.offsets, g.tokens) == (w.ids, w.type_ids, w.offsets, w.tokens)
                assert c == len(f.ids) - len(w.ids) and bool(g.overflowing) == (c > 0)
    assert tok.encode_batch(["a b"], ["c"], max_length=None)[0].ids == whole.encode("a b", "c").ids


def test_cuts_fall_just_before_a_whitespace_run():
    from bertcli.textcut import cut_at_or_after

    text = "ab  cd\te f"
    assert [cut_at_or_after(text, p) for p in range(len(text) + 1)] == [2, 2, 2, 6, 6, 6, 6, 8, 8, 10, 10]
    # the QA windows test above shows what a cut anywhere else breaks (chunk edges inside every window)


def test_embed_one_huge_line_costs_what_a_long_one_does(tmp_path, tiny_bert_base_only):
    import random

    rng = random.Random(8)
    long_line, huge_line = tmp_path / "long.txt", tmp_path / "huge.txt"
    long_line.write_text(messy_text(rng, 2_000).replace("\n", " ") + "\n", encoding="utf-8")
    huge_line.write_text(messy_text(rng, 400_000).replace("\n", " ") + "\n", encoding="utf-8")  # ~3 MB
    args = ("embed", "-m", tiny_bert_base_only, "-f", "jsonl", "--file")
    peak_rss_mb(tmp_path, *args, long_line)  # warm-up: the first run converts and caches the tokenizer
    long_proc, long_peak = peak_rss_mb(tmp_path, *args, long_line)
    assert long_proc.returncode == 0, long_proc.stderr
    huge_proc, huge_peak = peak_rss_mb(tmp_path, *args, huge_line)
    assert huge_proc.returncode == 0, huge_proc.stderr
    assert "truncated" in huge_proc.stderr
    record = json.loads(huge_proc.stdout)
    assert "truncated" in long_proc.stderr  # both cut to the model's limit
    assert record["n_tokens"] == json.loads(long_proc.stdout)["n_tokens"]
    assert len(record["text"]) == len(huge_line.read_text(encoding="utf-8")) - 1
    # Encoded whole, this line took ~500 MB more; from a prefix it costs only the line itself (held as bytes,
    # text and its JSON record).
    assert huge_peak - long_peak < 60, (long_peak, huge_peak)


#: the long line the huge ones below are compared with: over `textcut.COUNT_CHUNK` (64 KiB), so both runs take
#: the same paths (prefix, counting in chunks) and the difference in peak memory is what grows with the line
LONG_WORDS = 15_000


def test_attention_on_a_huge_line_costs_what_a_long_one_does(tmp_path, tiny_bert):
    """`attention` keeps the model's first 512 tokens and says how many it left out: counted in chunks, a 3 MB
    line costs about what a long one does (encoded whole to count them, ~500 MB more)."""
    import random
    import re

    from bertcli.resolve import resolve_model
    from bertcli.tokenizer import load_tokenizer

    rng = random.Random(12)
    long_line, huge_line = tmp_path / "long.txt", tmp_path / "huge.txt"
    long_line.write_text(messy_text(rng, LONG_WORDS).replace("\n", " ") + "\n", encoding="utf-8")
    huge = messy_text(rng, 400_000).replace("\n", " ")  # ~3 MB
    huge_line.write_text(huge + "\n", encoding="utf-8")
    args = ("attention", "-m", tiny_bert, "-f", "json", "--backend", "onnx", "--file")
    peak_rss_mb(tmp_path, *args, long_line)  # warm-up: tokenizer conversion and the export, cached
    long_proc, long_peak = peak_rss_mb(tmp_path, *args, long_line)
    assert long_proc.returncode == 0, long_proc.stderr
    huge_proc, huge_peak = peak_rss_mb(tmp_path, *args, huge_line)
    assert huge_proc.returncode == 0, huge_proc.stderr
    tok = load_tokenizer(resolve_model(str(tiny_bert))).backend
    tok.no_truncation()
    total = len(tok.encode(huge).ids)
    said = re.search(r"the text is (\d+) tokens; the model takes (\d+), so the last (\d+) were left out",
                     huge_proc.stderr)
    assert said and int(said[1]) == total and int(said[3]) == total - int(said[2]), huge_proc.stderr
    assert len(json.loads(huge_proc.stdout)["tokens"]) == int(said[2])
    assert huge_peak - long_peak < 60, (long_peak, huge_peak)


def test_fill_mask_refuses_a_huge_line_in_the_memory_of_a_long_one(tmp_path, tiny_bert):
    """Too long for the model: refused (exit 5) with its exact token count, counted chunk by chunk."""
    import random

    from bertcli.resolve import resolve_model
    from bertcli.tokenizer import load_tokenizer

    rng = random.Random(13)
    long_line, huge_line = tmp_path / "long.txt", tmp_path / "huge.txt"
    long_line.write_text("[MASK] " + messy_text(rng, LONG_WORDS).replace("\n", " ") + "\n", encoding="utf-8")
    huge = "[MASK] " + messy_text(rng, 400_000).replace("\n", " ")  # ~3 MB
    huge_line.write_text(huge + "\n", encoding="utf-8")
    args = ("fill-mask", "-m", tiny_bert, "-f", "json", "--backend", "onnx", "--file")
    peak_rss_mb(tmp_path, *args, long_line)  # warm-up: tokenizer conversion and the export, cached
    long_proc, long_peak = peak_rss_mb(tmp_path, *args, long_line)
    huge_proc, huge_peak = peak_rss_mb(tmp_path, *args, huge_line)
    tok = load_tokenizer(resolve_model(str(tiny_bert))).backend
    tok.no_truncation()
    total = len(tok.encode(huge).ids)
    for proc in (long_proc, huge_proc):
        assert proc.returncode == 5 and "more than the model's maximum" in proc.stderr, proc.stderr
    assert f"line 1: {total:,} tokens".replace(",", "") in huge_proc.stderr.replace(",", ""), huge_proc.stderr
    assert huge_peak - long_peak < 60, (long_peak, huge_peak)


def test_rerank_of_a_huge_document_costs_what_a_long_one_does(tmp_path, tiny_head):
    """Pairs (rerank, classify with pairs, nsp): each side encoded from a prefix, cut tokens counted in chunks."""
    import random

    cross = tiny_head("roberta", "ForSequenceClassification", num_labels=1)
    rng = random.Random(14)
    long_doc, huge_doc = tmp_path / "long.txt", tmp_path / "huge.txt"
    long_doc.write_text("a short one\n" + messy_text(rng, LONG_WORDS).replace("\n", " ") + "\n", encoding="utf-8")
    huge_doc.write_text("a short one\n" + messy_text(rng, 400_000).replace("\n", " ") + "\n", encoding="utf-8")
    args = ("rerank", "-m", cross, "-q", "which one is short", "-f", "json", "--backend", "onnx", "--file")
    peak_rss_mb(tmp_path, *args, long_doc)  # warm-up: tokenizer conversion and the export, cached
    long_proc, long_peak = peak_rss_mb(tmp_path, *args, long_doc)
    assert long_proc.returncode == 0, long_proc.stderr
    huge_proc, huge_peak = peak_rss_mb(tmp_path, *args, huge_doc)
    assert huge_proc.returncode == 0, huge_proc.stderr
    assert len(json.loads(huge_proc.stdout)) == 2
    # encoded whole as a pair, this document took ~500 MB more
    assert huge_peak - long_peak < 60, (long_peak, huge_peak)


def test_tokenize_count_of_a_huge_line_in_chunks(tmp_path, tiny_roberta):
    import random

    from bertcli.resolve import resolve_model
    from bertcli.tokenizer import load_tokenizer

    rng = random.Random(15)
    small, huge_file = tmp_path / "small.txt", tmp_path / "huge.txt"
    small.write_text(messy_text(rng, LONG_WORDS).replace("\n", " ") + "\n", encoding="utf-8")
    huge = messy_text(rng, 400_000).replace("\n", " ")  # ~3 MB
    huge_file.write_text("a b c\n" + huge + "\nd e\n", encoding="utf-8")
    args = ("tokenize", "-m", tiny_roberta, "--count", "--file")
    peak_rss_mb(tmp_path, *args, small)  # warm-up: the tokenizer is converted once and cached
    small_proc, small_peak = peak_rss_mb(tmp_path, *args, small)
    huge_proc, huge_peak = peak_rss_mb(tmp_path, *args, huge_file)
    tok = load_tokenizer(resolve_model(str(tiny_roberta))).backend
    tok.no_truncation()
    want = [len(tok.encode(t, add_special_tokens=False).ids) for t in ("a b c", huge, "d e")]
    assert small_proc.returncode == 0, small_proc.stderr
    assert huge_proc.returncode == 0 and huge_proc.stdout.split() == [str(n) for n in want], huge_proc.stderr
    assert huge_peak - small_peak < 60, (small_peak, huge_peak)  # counted whole: ~500 MB more


def test_tokenize_truncate_of_a_huge_line(run_cli, tiny_roberta, tmp_path):
    import random

    huge = tmp_path / "huge.txt"
    text = messy_text(random.Random(4), 100_000).replace("\n", " ")
    huge.write_text(text + "\nshort one\n", encoding="utf-8")
    proc = run_cli("tokenize", "-m", tiny_roberta, "--truncate", "5", "--file", huge, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    first, second = json.loads(proc.stdout)
    assert first["count"] == 5 and text.startswith(first["text"]) and 0 < len(first["text"]) < 100
    assert "short one".startswith(second["text"]) and second["count"] <= 5 and second["text"]


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


def test_tag_one_huge_line_costs_its_entities_not_its_encodings(tmp_path, tiny_head):
    """A multi-megabyte line is tokenized in chunks and its windows made as they are run; with a tagger that
    finds almost nothing (its classifier biased to O), a 1 MB line costs about what a long one does."""
    import random
    import shutil

    import numpy as np
    from safetensors.numpy import load_file, save_file

    model = tmp_path / "mostly-o"
    shutil.copytree(tiny_head("bert", "ForTokenClassification", id2label={"0": "O", "1": "B-X", "2": "I-X"}), model)
    weights = load_file(model / "model.safetensors")
    weights["classifier.bias"] = np.array([30.0, 0.0, 0.0], dtype=weights["classifier.bias"].dtype)
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    rng = random.Random(9)
    long_line, huge_line = tmp_path / "long.txt", tmp_path / "huge.txt"
    long_line.write_text(messy_text(rng, 2_000).replace("\n", " ") + "\n", encoding="utf-8")
    huge_line.write_text(messy_text(rng, 140_000).replace("\n", " ") + "\n", encoding="utf-8")  # ~1 MB
    args = ("tag", "-m", model, "-f", "jsonl", "--backend", "onnx", "--file")
    peak_rss_mb(tmp_path, *args, long_line)  # warm-up: tokenizer conversion and the ONNX export, cached
    long_proc, long_peak = peak_rss_mb(tmp_path, *args, long_line)
    assert long_proc.returncode == 0, long_proc.stderr
    huge_proc, huge_peak = peak_rss_mb(tmp_path, *args, huge_line)
    assert huge_proc.returncode == 0, huge_proc.stderr
    record = json.loads(huge_proc.stdout)
    assert record["entities"] == [] and len(record["text"]) == len(huge_line.read_text(encoding="utf-8")) - 1
    # Encoded in one call, this line's windows (tokenizers encodings) took ~160 MB more (measured: 85 → 244 MB);
    # streamed, ~40 MB more: the text itself and one group of 512 windows as token lists (WINDOW_GROUP)
    assert huge_peak - long_peak < 80, (long_peak, huge_peak)
