"""`bertcli zero-shot` against transformers' zero-shot-classification pipeline (labels and scores, single- and
multi-label, on tiny random-init NLI models of each family), its bad inputs, and `inspect`'s capabilities for the
classification heads."""

from __future__ import annotations

import json

import pytest

from bertcli.resolve import resolve_model
from tests.fixtures.checks import one_line_error, run_in_process
from tests.fixtures.tiny_models import HEAD_FAMILIES

transformers = pytest.importorskip("transformers")

NLI = {0: "contradiction", 1: "neutral", 2: "entailment"}
#: a wide init (0.5, not 0.02) spreads the random logits, so no two labels' scores are near a tie
WIDE = {"initializer_range": 0.5}
LABELS = ["sports", "politics", "cooking", "the weather"]
TEXTS = ["The match went to penalties after extra time.", "Stir the sauce and let it simmer.", "Élections à Paris"]
#: over textcut's MIN_PREFIX characters: with --max-length 32 it is tokenized from a prefix
LONG = " ".join(f"word{i} and more" for i in range(600))
SEQCLS = "ForSequenceClassification"


def nli_model(tiny_head, family: str, **config):
    id2label = config.pop("id2label", NLI)
    return tiny_head(family, SEQCLS, id2label=id2label, label2id={v: k for k, v in id2label.items()},
                     **{**WIDE, **config})


run = run_in_process


def records(*argv) -> list[dict]:
    proc = run("zero-shot", *argv, "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def assert_same(ours: list[dict], reference: list[dict]) -> None:
    assert len(ours) == len(reference)
    for n, (got, want) in enumerate(zip(ours, reference), start=1):
        assert got["line"] == n and got["text"] == want["sequence"]
        assert got["labels"] == want["labels"]
        assert got["scores"] == pytest.approx(want["scores"], abs=1e-5)


@pytest.mark.parametrize("family", HEAD_FAMILIES)
def test_equals_the_pipeline(tiny_head, family):
    folder = nli_model(tiny_head, family)
    pipe = transformers.pipeline("zero-shot-classification", model=str(folder))
    if family == "albert":  # transformers 5's ALBERT tokenizer drops a pair's segment ids, which ALBERT was
        pipe.tokenizer.model_input_names = ["input_ids", "token_type_ids", "attention_mask"]  # trained with
    want = pipe(TEXTS, candidate_labels=LABELS)
    assert_same(records(*TEXTS, "-m", folder, "--labels", ",".join(LABELS)), want)
    assert all(sum(r["scores"]) == pytest.approx(1, abs=1e-5) for r in want)
    want = pipe(TEXTS, candidate_labels=LABELS, multi_label=True, hypothesis_template="It is about {}!")
    assert_same(records(*TEXTS, "-m", folder, "--labels", ",".join(LABELS), "--multi-label",
                        "--template", "It is about {}!", "--batch-size", "3"), want)
    # a long text cut to the limit, from the text only (the hypothesis stays whole), read from a prefix
    pipe.tokenizer.model_max_length = 32
    want = pipe([LONG, "Hi."], candidate_labels=LABELS[:2])
    proc = run("zero-shot", LONG, "Hi.", "-m", folder, "--labels", ",".join(LABELS[:2]), "--max-length", "32",
               "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr
    assert_same([json.loads(line) for line in proc.stdout.splitlines()], want)
    assert proc.stderr.strip() == "warning: 1 text(s) longer than 32 tokens with the hypothesis were cut to fit " \
                                  "(the first: text 1)"


def test_one_label_is_scored_on_its_own_and_the_file_streams(tiny_head, tmp_path):
    """One candidate label: entailment against contradiction, as the pipeline does even without multi_label;
    texts from --file, in input order, across batches of one pair."""
    folder = nli_model(tiny_head, "bert")
    pipe = transformers.pipeline("zero-shot-classification", model=str(folder))
    (tmp_path / "in.txt").write_text("\n".join([*TEXTS, ""]) + "\n", encoding="utf-8")
    want = pipe(TEXTS, candidate_labels=["sports"])
    assert 0 < want[0]["scores"][0] < 1 and want[0]["scores"][0] != pytest.approx(want[1]["scores"][0])
    got = records("-m", folder, "--labels", "sports", "--file", tmp_path / "in.txt", "--batch-size", "1")
    assert_same(got[:-1], want)
    # a blank line (which the pipeline refuses) is labelled as the empty text, so record N is line N
    assert got[-1]["line"] == len(TEXTS) + 1 and got[-1]["text"] == "" and got[-1]["labels"] == ["sports"]


def test_entailment_found_wherever_id2label_puts_it(tiny_head):
    """entailment first, contradiction last (as some MNLI checkpoints order them): the same answers as the
    pipeline, multi-label included (which needs the contradiction class)."""
    folder = nli_model(tiny_head, "bert", id2label={0: "ENTAILMENT", 1: "NEUTRAL", 2: "CONTRADICTION"})
    pipe = transformers.pipeline("zero-shot-classification", model=str(folder))
    want = pipe(TEXTS[:2], candidate_labels=LABELS, multi_label=True)
    assert_same(records(*TEXTS[:2], "-m", folder, "--labels", ",".join(LABELS), "--multi-label"), want)


def test_table_shows_each_text_with_its_labels_and_bars(tiny_head):
    proc = run("zero-shot", TEXTS[0], "-m", nli_model(tiny_head, "bert"), "--labels", "sports,cooking", "-f", "table")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == TEXTS[0]
    assert sorted(line.split()[0] for line in lines[1:3]) == ["cooking", "sports"]
    assert all("█" in line or "·" in line for line in lines[1:3])
    tsv = run("zero-shot", TEXTS[0], "-m", nli_model(tiny_head, "bert"), "--labels", "sports,cooking", "-f", "tsv")
    assert tsv.stdout.splitlines()[0].split("\t") == ["line", "rank", "label", "score"]
    assert [row.split("\t")[:2] for row in tsv.stdout.splitlines()[1:]] == [["1", "1"], ["1", "2"]]


@pytest.mark.parametrize("args, code, message", [
    (["--labels", " , ,"], 2, "--labels ' , ,' names no label"),
    ([], 2, "give the candidate labels: --labels a,b,c"),
    (["--labels", "a,b,a"], 2, "--labels names 'a' twice"),
    (["--labels", "a,b", "--template", "This is it."], 2, "--template 'This is it.' has no {} where the label goes"),
    (["--labels", "a,b", "--template", "About {topic}."], 2, "--template 'About {topic}.' cannot be filled in"),
    (["--labels", "a,b", "--max-length", "5"], 2, "the hypothesis of label 'a' ('This example is a.') takes"),
    (["--labels", "a,b", "--max-length", "100000"], 2, "--max-length 100000 is more than this model's maximum"),
])
def test_bad_options(tiny_head, args, code, message):
    proc = run("zero-shot", "hello", "-m", nli_model(tiny_head, "bert"), *args)
    assert message in one_line_error(proc, code)


def test_model_without_entailment_is_refused_with_its_labels(tiny_head):
    folder = tiny_head("bert", SEQCLS, id2label={0: "negative", 1: "positive"})
    line = one_line_error(run("zero-shot", "hello", "-m", folder, "--labels", "a,b"), 6)
    assert "labels name no entailment class (id2label: 0: negative, 1: positive)" in line
    assert "zero-shot needs an NLI model" in line and "bertcli classify" in line


def test_multi_label_on_a_one_label_model(tiny_head):
    folder = tiny_head("bert", SEQCLS, num_labels=1)
    line = one_line_error(run("zero-shot", "hello", "-m", folder, "--labels", "a,b", "--multi-label"), 2)
    assert "--multi-label weighs entailment against contradiction" in line and "has one label (0: LABEL_0)" in line
    line = one_line_error(run("zero-shot", "hello", "-m", folder, "--labels", "a"), 2)
    assert "one candidate label is scored by weighing entailment against contradiction" in line


def test_model_without_a_classification_head_names_what_it_fits(tiny_models):
    line = one_line_error(run("zero-shot", "hello", "-m", tiny_models["bert"], "--labels", "a,b"), 6)
    assert "has no sequence-classification head (architecture: BertForMaskedLM), which `bertcli zero-shot` needs" in line
    assert "this model fits: bertcli embed, bertcli fill-mask" in line


def test_exit_codes_through_python_m(run_cli, tiny_head):
    """The one subprocess: a template without {} fails with exit 2 before any model loads."""
    proc = run_cli("zero-shot", "hello", "-m", nli_model(tiny_head, "bert"), "--labels", "a", "--template", "x")
    assert "has no {} where the label goes" in one_line_error(proc, 2)


# ---------------------------------------------------------------------------------------------------------
# inspect: the capabilities of the classification heads


def capabilities(folder) -> dict[str, tuple[bool, str]]:
    from bertcli.inspect import inspect_model

    return {c.command: (c.available, c.reason) for c in inspect_model(resolve_model(str(folder))).capabilities}


def available(folder) -> list[str]:
    return [command for command, (ok, _) in capabilities(folder).items() if ok]


def test_inspect_nli_model(tiny_head):
    folder = nli_model(tiny_head, "roberta")
    assert available(folder) == ["tokenize", "embed", "classify", "zero-shot"]
    caps = capabilities(folder)
    assert caps["classify"][1].endswith("; labels: contradiction, neutral, entailment")
    assert caps["zero-shot"][1] == "an NLI classifier: entailment is label 2 of 3 (contradiction, neutral, entailment)"
    assert caps["rerank"][1].startswith("a cross-encoder has one label; this classifier has 3")
    assert caps["tag"][1] == "config.json declares RobertaForSequenceClassification, which has no token-classification head"


def test_inspect_cross_encoder_and_plain_classifier(tiny_head):
    assert available(tiny_head("electra", SEQCLS, num_labels=1)) == ["tokenize", "embed", "classify", "rerank"]
    plain = tiny_head("albert", SEQCLS, id2label={0: "negative", 1: "positive"})
    assert available(plain) == ["tokenize", "embed", "classify"]
    assert capabilities(plain)["zero-shot"][1] == ("id2label names no entailment class (negative, positive): "
                                                  "zero-shot needs an NLI model")


def test_inspect_token_classifier_and_encoder(tiny_head, tiny_models):
    tagger = tiny_head("bert", "ForTokenClassification", id2label={0: "O", 1: "B-PER", 2: "I-PER"})
    assert available(tagger) == ["tokenize", "embed", "tag"]
    assert capabilities(tagger)["tag"][1].endswith("; labels: O, B-PER, I-PER")
    caps = capabilities(tiny_models["bert_base_only"])
    for command in ("classify", "tag", "rerank", "zero-shot"):
        assert caps[command][0] is False and "(classifier.* absent)" in caps[command][1], command


@pytest.mark.parametrize("family", ["bert", "albert", "roberta", "electra"])
def test_pairs_are_sent_as_classify_sends_them(tiny_head, family):
    """One rule for every pair command: the hypothesis is segment 1 wherever the model has token types (ALBERT
    too, as it was trained), so zero-shot's multi-label score is classify's pair logits, softmaxed over
    [contradiction, entailment]."""
    import numpy as np

    folder = nli_model(tiny_head, family)
    text, label = TEXTS[0], LABELS[0]
    got = records(text, "-m", folder, "--labels", label, "--template", "This example is {}.")
    proc = run("classify", text, "--pair", f"This example is {label}.", "-m", folder, "--function", "none",
               "--top-k", "0", "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr
    logits = {entry["label"]: entry["score"] for entry in json.loads(proc.stdout)["labels"]}
    pair = np.array([logits["contradiction"], logits["entailment"]])
    want = np.exp(pair - pair.max()) / np.exp(pair - pair.max()).sum()
    assert got[0]["scores"][0] == pytest.approx(float(want[1]), abs=1e-5)


def test_a_long_text_is_tokenized_from_a_prefix(tiny_head):
    """Memory stays bounded by the batch: a text far over the limit is encoded from a prefix (whose kept tokens
    are the whole text's: the pipeline equality above holds for LONG), not whole, once per label."""
    from bertcli.zeroshot import load_zero_shot

    zs = load_zero_shot(resolve_model(str(nli_model(tiny_head, "bert"))), ["a", "b"], max_length=32, backend="torch")
    prefix = zs._premise(LONG)
    assert LONG.startswith(prefix) and len(prefix) < len(LONG) // 2
    assert zs._premise("short text") == "short text"
    [result] = zs.classify([LONG])
    assert result.truncated and zs.stats.truncated == 1 and zs.stats.pairs == 2
