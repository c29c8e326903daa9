"""`bertcli qa` end to end, on a tiny QA model trained in the session (so the right span is known)."""

from __future__ import annotations

import json
import random

import pytest

from bertcli.qa_spans import make_windows
from tests.fixtures.trained_qa import build_trained_qa, make_example, pools
from tests.fixtures.checks import one_line_error


@pytest.fixture(scope="session")
def trained_qa(tmp_path_factory):
    return build_trained_qa(tmp_path_factory.getbasetemp() / "trained_qa")  # shared with tests/test_qa.py


@pytest.fixture(scope="module")
def vocab(trained_qa):
    return (trained_qa / "vocab.txt").read_text(encoding="utf-8").splitlines()


def test_answers_questions_with_the_right_span_and_no_answer(run_cli, trained_qa, vocab):
    rng = random.Random(21)
    question, context, expected = make_example(rng, vocab, fillers=3, answerable=True)
    other_question, no_fact, _ = make_example(rng, vocab, fillers=3, answerable=False)
    proc = run_cli("qa", "-m", trained_qa, "-q", question, "-q", "what is " + expected + "?", "-c", context)
    assert proc.returncode == 0, proc.stderr
    first, second = [json.loads(line) for line in proc.stdout.splitlines()]
    start = context.index(f" is {expected}.") + 4
    assert list(first) == ["question", "answer", "score", "start", "end", "window", "no_answer", "null_score"]
    assert (first["question"], first["answer"], first["start"], first["end"], first["window"], first["no_answer"]) == (
        question, expected, start, start + len(expected), 0, False)
    assert 0 < first["null_score"] < first["score"] <= 1
    # the model learned "the fact is the answer", whatever the subject asked: same span for the second question
    assert (second["question"], second["answer"], second["start"]) == ("what is " + expected + "?", expected, start)
    # a context without a fact: SQuAD 2.0's "no answer", with its null score as the score
    proc = run_cli("qa", "-m", trained_qa, "-q", other_question, "-c", no_fact)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert (rec["answer"], rec["start"], rec["end"], rec["window"], rec["no_answer"]) == ("", 0, 0, 0, True)
    assert rec["score"] == rec["null_score"] > 0.5


def test_no_null_forces_a_span_and_context_from_stdin(run_cli, trained_qa, vocab):
    question, context, _ = make_example(random.Random(22), vocab, fillers=3, answerable=False)
    proc = run_cli("qa", "-m", trained_qa, "-q", question, "--no-null", input=context + "\n")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert rec["no_answer"] is False and rec["answer"]
    assert (context + "\n")[rec["start"] : rec["end"]] == rec["answer"]
    assert rec["score"] < rec["null_score"]  # forced: the null answer would have won


def test_input_jsonl_streams_and_reports_bad_lines(run_cli, trained_qa, vocab, tmp_path):
    rng = random.Random(23)
    good = [make_example(rng, vocab, fillers=2, answerable=True) for _ in range(3)]
    lines = [
        json.dumps({"id": "a", "question": good[0][0], "context": good[0][1]}),
        '{"id": "broken", "question": ',
        json.dumps({"id": 7, "question": good[1][0], "context": good[1][1]}),
        json.dumps({"id": "c", "question": good[2][0]}),
        "",
        json.dumps({"question": good[2][0], "context": good[2][1]}),
    ]
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = run_cli("qa", "-m", trained_qa, "--input", path)
    assert proc.returncode == 5
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["id"], r["answer"]) for r in records] == [("a", good[0][2]), (7, good[1][2]), (None, good[2][2])]
    assert proc.stderr.splitlines() == [
        f"error: {path}, line 2: not valid JSON (Expecting value at column 30)",
        f'error: {path}, line 4: missing "context"',
        "error: 2 of 5 input records could not be answered (see the lines above)",
    ]


def test_top_k_across_windows_and_show_windows(run_cli, trained_qa, vocab):
    rng = random.Random(24)
    common, answer_words = pools(vocab)
    first, second = answer_words[3], answer_words[7]
    fillers = [" ".join(rng.sample(common, 4)).capitalize() + "." for _ in range(30)]
    context = " ".join(fillers[:2] + [f"London is {first}."] + fillers[2:26] + [f"London is {second}."] + fillers[26:])
    proc = run_cli("qa", "-m", trained_qa, "-q", "What is london?", "-c", context, "--top-k", "2",
                   "--max-length", "48", "--doc-stride", "16", "--show-windows", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    (rec,) = json.loads(proc.stdout)
    from bertcli.resolve import resolve_model
    from bertcli.tokenizer import load_tokenizer

    windows = make_windows(load_tokenizer(resolve_model(str(trained_qa))).backend, "What is london?", context,
                           max_length=48, doc_stride=16)
    assert [w["window"] for w in rec["windows"]] == list(range(len(windows)))
    for summary, window in zip(rec["windows"], windows):
        context_offsets = [o for o, s in zip(window.offsets, window.sequence_ids) if s == 1]
        assert summary == {"window": window.index, "tokens": len(window), "context_tokens": len(context_offsets),
                           "start": context_offsets[0][0], "end": context_offsets[-1][1]}
    assert rec["windows"][-1]["end"] == len(context)  # the last window reaches the final "."
    answers = {a["answer"]: a for a in rec["answers"]}
    assert set(answers) == {first, second}
    for word in (first, second):
        a = answers[word]
        assert context[a["start"] : a["end"]] == word
        win = rec["windows"][a["window"]]
        assert win["start"] <= a["start"] and a["end"] <= win["end"]
    assert answers[first]["window"] == 0 and answers[second]["window"] >= 4
    assert rec["answer"] == rec["answers"][0]["answer"]


def test_table_view_highlights_the_answer(run_cli, trained_qa, vocab):
    question, context, expected = make_example(random.Random(25), vocab, fillers=2, answerable=True)
    proc = run_cli("qa", "-m", trained_qa, "-q", question, "-c", context, "--format", "table",
                   env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"Q {question}"
    assert lines[1].startswith(f"A {expected}   score 0.")
    assert f"chars {context.index(' is ' + expected) + 4}–" in lines[1]
    assert lines[2] == context


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-q", "", "-c", "London is cold."], 5, "error: the question is empty"),
        (["-q", "What is london?", "-c", "  "], 5, "error: the context is empty"),
        (["-q", "What is london?", "--context-file", "missing.txt"], 5, "error: no such context file: missing.txt"),
        (["-c", "London is cold."], 2, "error: give a question with -q/--question (or records with --input FILE.jsonl)"),
        (["-q", "What is london?", "-c", "London is cold.", "--doc-stride", "382"], 2,
         "error: doc_stride 382 must be smaller than max_length 384 minus 2 special tokens (382)"),
        (["-q", "What is london?", "-c", "London is cold. " * 20, "--max-length", "16", "--doc-stride", "9"], 2,
         "error: doc_stride 9 must be smaller than the context room in a window "
         "(16 max_length - 3 special tokens - 4 question tokens = 9)"),
        (["-q", "What is london?", "-c", "London is cold.", "--max-length", "1000"], 2,
         "error: --max-length 1000 is more than this model takes (512 tokens)"),
    ],
)
def test_bad_input_and_usage(run_cli, trained_qa, args, code, message):
    assert one_line_error(run_cli("qa", "-m", trained_qa, *args), code) == message


def test_model_without_qa_head_names_embed(run_cli, tiny_bert_base_only):
    line = one_line_error(run_cli("qa", "-m", tiny_bert_base_only, "-q", "What?", "-c", "It was a day."), 6)
    assert "has no question-answering head" in line and "bertcli embed" in line
