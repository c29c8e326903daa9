"""`bertcli classify` against transformers' text-classification pipeline: the same labels in the same order and
the same scores (≤ 1e-5) on tiny random-init sequence-classification models of every family, for single texts
and pairs, with and without ``problem_type``, with 1, 2 and 3 labels; and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.checks import run_in_process

TOL = 1e-5
TEXTS = ["It was a great day", "hello", "The food was cold and the waiter rude, but the view made up for it.",
         "a b c d e f g", ""]
PAIRS = [("A man plays a guitar.", "A person makes music."), ("hello", "world"),
         ("The cat sat on the mat.", "Nothing sat anywhere, ever, in any place at all.")]

#: (family, config overrides): every family, 1/2/3 labels, problem_type absent / single / multi label
CASES = [
    ("bert", dict(id2label={0: "neg", 1: "pos"})),
    ("albert", dict(id2label={0: "a", 1: "b", 2: "c"}, problem_type="single_label_classification")),
    ("roberta", dict(num_labels=1)),
    ("electra", dict(id2label={0: "x", 1: "y", 2: "z"}, problem_type="multi_label_classification")),
    ("roberta", dict(id2label={0: "neg", 1: "neutral", 2: "pos"})),
    ("electra", dict(id2label={0: "no", 1: "yes"})),
]
IDS = [f"{family}-{cfg.get('num_labels', len(cfg.get('id2label', {})))}-{cfg.get('problem_type', 'none')}"
       for family, cfg in CASES]


def run(argv: list) -> tuple[int, str, str]:
    """`bertcli ARGV` in this process: (exit code, stdout, stderr)."""
    proc = run_in_process(*argv)
    return proc.returncode, proc.stdout, proc.stderr


def classify_json(argv: list) -> list[dict]:
    code, out, err = run(["classify", *argv, "-f", "json"])
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def pipelines():
    """One transformers pipeline per model folder, made on first use."""
    from transformers import pipeline

    made: dict = {}

    def get(folder):
        if folder not in made:
            made[folder] = pipeline("text-classification", model=str(folder), device="cpu")
        return made[folder]

    return get


def same_ranking(ours: list[dict], ref: list[dict]) -> None:
    """Same labels with the same scores (≤ TOL), in the same order wherever two scores are not a tie."""
    assert sorted(e["label"] for e in ours) == sorted(e["label"] for e in ref)
    ref_scores = {e["label"]: e["score"] for e in ref}
    for entry in ours:
        assert entry["score"] == pytest.approx(ref_scores[entry["label"]], abs=TOL), (ours, ref)
    for a, b in zip(ours, ref):
        if a["label"] != b["label"]:
            assert abs(a["score"] - b["score"]) <= TOL, (ours, ref)


@pytest.mark.parametrize(("family", "config"), CASES, ids=IDS)
def test_texts_and_pairs_equal_the_pipeline(tiny_head, pipelines, family, config):
    folder = tiny_head(family, "ForSequenceClassification", **config)
    clf = pipelines(folder)
    ours = classify_json(["-m", folder, "--top-k", "0", *TEXTS])
    ref = clf(TEXTS, top_k=None)
    assert [r["text"] for r in ours] == TEXTS and [r["line"] for r in ours] == [1, 2, 3, 4, 5]
    for rec, expected in zip(ours, ref):
        same_ranking(rec["labels"], expected)
        assert (rec["label"], rec["score"]) == (rec["labels"][0]["label"], rec["labels"][0]["score"])


@pytest.mark.parametrize(("family", "config"), CASES[:4], ids=IDS[:4])
def test_pairs_equal_the_pipeline(tiny_head, pipelines, tmp_path, family, config):
    folder = tiny_head(family, "ForSequenceClassification", **config)
    clf = pipelines(folder)
    pairs_file = tmp_path / "pairs.tsv"
    pairs_file.write_text("".join(f"{a}\t{b}\n" for a, b in PAIRS), encoding="utf-8")
    ours = classify_json(["-m", folder, "--pairs", "--file", pairs_file, "--top-k", "2"])
    # return_token_type_ids: transformers 5's ALBERT tokenizer drops the segment ids of a pair (the model then
    # sees segment 0 throughout, unlike 4.x and the models' training: huggingface/transformers#48128); bertcli
    # keeps them, so the reference is asked for them
    ref = clf([{"text": a, "text_pair": b} for a, b in PAIRS], top_k=2, return_token_type_ids=True)
    assert [(r["text"], r["pair"]) for r in ours] == PAIRS
    for rec, expected in zip(ours, ref):
        same_ranking(rec["labels"], expected)
        assert len(rec["labels"]) == min(2, len(expected))
    one = classify_json(["-m", folder, PAIRS[0][0], "--pair", PAIRS[0][1]])
    legacy = clf({"text": PAIRS[0][0], "text_pair": PAIRS[0][1]}, return_token_type_ids=True)  # the best label
    legacy = legacy[0] if isinstance(legacy, list) else legacy
    assert "labels" not in one[0] and one[0]["pair"] == PAIRS[0][1]
    assert one[0]["score"] == pytest.approx(legacy["score"], abs=TOL)


def test_function_and_truncation_equal_the_pipeline(tiny_head, pipelines):
    folder = tiny_head("bert", "ForSequenceClassification", id2label={0: "neg", 1: "pos"})
    clf = pipelines(folder)
    long_text = " ".join(["word", "token", "piece", "sentence"] * 200)  # far past the 128 positions
    for function in ("none", "sigmoid", "softmax"):
        ours = classify_json(["-m", folder, "--function", function, "--top-k", "0", TEXTS[0], long_text])
        ref = clf([TEXTS[0], long_text], top_k=None, function_to_apply=function, truncation=True)
        for rec, expected in zip(ours, ref):
            same_ranking(rec["labels"], expected)
    code, _, err = run(["classify", "-m", folder, long_text, "-f", "json"])
    assert code == 0 and "1 input(s) longer than 128 tokens were truncated (the first: text 1)" in err


def test_batches_and_windows_keep_input_order(tiny_head):
    """Tiny token budgets and windows: many batches, sorted by length inside each window, put back in order."""
    folder = tiny_head("bert", "ForSequenceClassification", id2label={0: "neg", 1: "pos"})
    texts = [("word " * (i % 7)).strip() or "x" for i in range(40)]
    whole = classify_json(["-m", folder, "--top-k", "0", *texts])
    small = classify_json(["-m", folder, "--top-k", "0", "--max-tokens", "16", "--batch-size", "3", *texts])
    assert [r["text"] for r in small] == texts
    for a, b in zip(whole, small):
        same_ranking(a["labels"], b["labels"])


def test_table_and_tsv(tiny_head):
    folder = tiny_head("albert", "ForSequenceClassification", id2label={0: "a", 1: "b", 2: "c"},
                       problem_type="single_label_classification")
    code, out, _ = run(["classify", "-m", folder, "hello world", "-f", "table"])
    assert code == 0 and "hello world" in out and "█" in out
    assert sum(line.count("·") > 0 for line in out.splitlines()) == 3  # a bar per label
    code, out, _ = run(["classify", "-m", folder, "hello world", "--top-k", "2", "-f", "tsv"])
    rows = [line.split("\t") for line in out.splitlines()]
    assert rows[0] == ["line", "text", "rank", "label", "score"] and len(rows) == 3
    assert [r[2] for r in rows[1:]] == ["1", "2"]


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["--pair", "b", "one", "two"], 2, "--pair goes with exactly one TEXT"),
    (["--pair", "b", "--pairs", "one"], 2, "--pair and --pairs do not go together"),
    (["--pairs", "no tab here"], 5, "text 1: --pairs expects 'TEXT<TAB>PAIR'"),
    (["--max-length", "100000", "hi"], 2, "--max-length 100000 is more than this model's maximum of 128 tokens"),
    (["--function", "relu", "hi"], 2, "--function"),
])
def test_bad_input_is_one_line(tiny_head, argv, code, message):
    folder = tiny_head("bert", "ForSequenceClassification", id2label={0: "neg", 1: "pos"})
    got, out, err = run(["classify", "-m", folder, *argv])
    assert got == code and out == "", err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_a_model_without_the_head_is_refused(tiny_bert):
    got, _, err = run(["classify", "-m", tiny_bert, "hello"])
    assert got == 6 and err.count("\n") == 1
    assert "has no sequence-classification head" in err and "bertcli fill-mask" in err


def test_pairs_line_without_tab_exits_5_from_a_process(run_cli, tiny_head):
    """Through `python -m bertcli` with stdin: the exit code and the one line, no traceback."""
    from tests.fixtures.checks import one_line_error

    folder = tiny_head("bert", "ForSequenceClassification", id2label={0: "neg", 1: "pos"})
    proc = run_cli("classify", "-m", folder, "--pairs", input="a\tb\nno tab\n")
    assert one_line_error(proc, 5) == "error: <stdin>, line 2: --pairs expects 'TEXT<TAB>PAIR' (no tab on this line)"
