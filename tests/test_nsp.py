"""`bertcli nsp` / `bertcli sop` (bertcli.nsp): BERT's NSP and ALBERT's SOP heads against transformers', pairs
from arguments, TSV lines and sentences, truncation as transformers truncates a pair, and the refusals."""

from __future__ import annotations

import io
import json
import sys
import types

import pytest

from bertcli.errors import BadInputError, ModelFileError, UsageError
from bertcli.inputs import Line
from bertcli.nsp import Pair, iter_sentence_pairs, iter_tsv_pairs, load_scorer, split_sentences
from bertcli.textcut import pair_lengths
from bertcli.resolve import resolve_model
from bertcli.tokenizer import load_tokenizer
from tests.fixtures.checks import one_line_error

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

PAIRS = [("The storm knocked out the power.", "We lit candles and waited."),
         ("It was a great day", "hello world"),
         ("One.", "A much longer second segment that goes on for a while, with commas and words.")]


@pytest.fixture(scope="module")
def bert_pt(tiny_head):
    return tiny_head("bert", "ForPreTraining")


@pytest.fixture(scope="module")
def albert_pt(tiny_head):
    return tiny_head("albert", "ForPreTraining")


@pytest.fixture(scope="module")
def nsp_scorer(bert_pt):
    return load_scorer(resolve_model(str(bert_pt)), "nsp", backend="torch", device="cpu")


@pytest.fixture(scope="module")
def sop_scorer(albert_pt):
    return load_scorer(resolve_model(str(albert_pt)), "sop", backend="torch", device="cpu")


def reference(folder, pairs, output: str):
    """transformers' *ForPreTraining head on the pairs: the softmax of ``output`` (seq_relationship_logits or
    sop_logits), one pair at a time (no padding). Token types asked for: transformers 5's AlbertTokenizer leaves
    them out by default, but ALBERT was pretrained with segment B as type 1, as bertcli feeds it."""
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.AutoModelForPreTraining.from_pretrained(str(folder)).eval()
    probs, logits = [], []
    with torch.inference_mode():
        for a, b in pairs:
            out = getattr(model(**tok(a, b, return_tensors="pt", return_token_type_ids=True)), output)[0]
            logits.append(out.tolist())
            probs.append(out.softmax(-1)[0].item())
    return probs, logits


@pytest.mark.parametrize("objective", ["nsp", "sop"])
def test_probabilities_equal_transformers_heads(objective, request, bert_pt, albert_pt):
    scorer = request.getfixturevalue(f"{objective}_scorer")
    folder, name = (bert_pt, "seq_relationship_logits") if objective == "nsp" else (albert_pt, "sop_logits")
    probs, logits = reference(folder, PAIRS, name)
    back, back_logits = reference(folder, [(b, a) for a, b in PAIRS], name)
    scores = list(scorer.score([Pair(i, a, b) for i, (a, b) in enumerate(PAIRS, 1)], swap=True))
    assert [s.pair.number for s in scores] == [1, 2, 3]  # input order, although batches are sorted by length
    assert [s.probability for s in scores] == pytest.approx(probs, abs=1e-5)
    assert [x for s in scores for x in s.logits] == pytest.approx([x for pair in logits for x in pair], abs=1e-5)
    assert [s.swapped_probability for s in scores] == pytest.approx(back, abs=1e-5)
    assert [x for s in scores for x in s.swapped_logits] == pytest.approx([x for p in back_logits for x in p], abs=1e-5)
    rec = scores[0].as_record()
    assert rec["predicted"] == (rec["probability"] > 0.5) and set(rec["swapped"]) == {"probability", "logits",
                                                                                        "predicted"}


def test_truncation_is_transformers_longest_first(nsp_scorer):
    """Pairs cut to a small limit get the ids and token types tokenizers gives the whole pair."""
    tok = nsp_scorer.tok
    words = "alpha beta gamma delta playing unaffable".split()
    limit = 13  # odd budget (13 - 3 = 10 would be even; 13 keeps the odd-token rule in play with 14 too)
    for n1, n2 in [(2, 3), (9, 2), (2, 9), (8, 8), (12, 7), (7, 12), (20, 20), (6, 5)]:
        a, b = " ".join(words[i % 6] for i in range(n1)), " ".join(words[-i % 6] for i in range(n2))
        for cap in (limit, limit + 1):
            nsp_scorer.max_length = cap
            [enc], [cut] = nsp_scorer._encode([(a, b)])
            whole = tok.backend.encode(a, b)
            tok.backend.enable_truncation(max_length=cap, strategy="longest_first")
            ref = tok.backend.encode(a, b)
            tok.backend.no_truncation()
            assert (enc.ids, enc.type_ids) == (ref.ids, ref.type_ids), (n1, n2, cap)
            assert cut == len(whole.ids) - len(ref.ids)
    nsp_scorer.max_length = 512
    assert pair_lengths(3, 4, 10) == (3, 4) and pair_lengths(2, 20, 10) == (2, 8) and pair_lengths(9, 9, 9) == (4, 5)


def test_sentence_pairs_and_tsv():
    assert split_sentences('He left. "Why?" she asked!  Then… nothing') == ["He left.", '"Why?"', "she asked!",
                                                                            "Then…", "nothing"]
    lines = [Line(1, "First one. Second one."), Line(2, "Third one."), Line(3, "  "), Line(4, "New start. End.")]
    pairs = [(p.number, p.a, p.b) for p in iter_sentence_pairs(lines)]
    assert pairs == [(1, "First one.", "Second one."), (1, "Second one.", "Third one."), (4, "New start.", "End.")]
    tsv = list(iter_tsv_pairs([Line(1, "a\tb", "p.tsv"), Line(2, ""), Line(3, " c \t d ", "p.tsv")]))
    assert [(p.number, p.a, p.b, p.label) for p in tsv] == [(1, "a", "b", "p.tsv, line 1"), (3, "c", "d", "p.tsv, line 3")]
    for bad in ("no tab here", "a\tb\tc", "a\t "):
        with pytest.raises(BadInputError, match=r"^x.tsv, line 7: expected two segments separated by one tab"):
            list(iter_tsv_pairs([Line(7, bad, "x.tsv")]))


@pytest.fixture
def inproc(monkeypatch, run_output, capsys):
    """Run `nsp`/`sop` in this process; returns (stdout, stderr)."""
    from bertcli.commands.nsp import nsp
    from bertcli.commands.sop import sop

    def run(command, *segments, stdin: str | None = None, **options):
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(stdin.encode())))
        defaults = dict(model=None, pairs=None, file=None, swap=False, backend="torch", device="cpu", fmt=None,
                        quiet=False)
        {"nsp": nsp, "sop": sop}[command](list(segments) or None, **{**defaults, **options})
        return capsys.readouterr()

    return run


def test_command_json_tsv_and_file(inproc, bert_pt, albert_pt, tmp_path):
    out = inproc("nsp", *PAIRS[0], model=str(bert_pt), fmt="json", swap=True)
    [rec] = json.loads(out.out)
    assert (rec["line"], rec["a"], rec["b"]) == (1, *PAIRS[0]) and "swapped" in rec
    story = tmp_path / "story.txt"
    story.write_text("The storm hit. Power went out.\nWe waited!\n\nMorning came. It was calm.\n", encoding="utf-8")
    out = inproc("sop", model=str(albert_pt), file=story, fmt="tsv", swap=True)
    rows = [line.split("\t") for line in out.out.splitlines()]
    assert rows[0] == ["line", "a", "b", "probability", "predicted", "swapped_probability"]
    assert [r[:3] for r in rows[1:]] == [["1", "The storm hit.", "Power went out."], ["1", "Power went out.", "We waited!"],
                                         ["4", "Morning came.", "It was calm."]]
    out = inproc("nsp", model=str(bert_pt), stdin="a b\tc d\ne f\tg h\n", fmt="jsonl")
    assert [json.loads(x)["b"] for x in out.out.splitlines()] == ["c d", "g h"]
    long = "word " * 600
    whole = len(load_tokenizer(resolve_model(str(bert_pt))).encode_batch([long], ["short one"])[0].ids)
    out = inproc("nsp", long, "short one", model=str(bert_pt), fmt="json")
    assert json.loads(out.out)[0]["truncated_tokens"] == whole - 128 > 400  # tiny model: 128 positions
    assert out.err == (f"warning: text 1: {whole - 128} token(s) past the model's maximum of 128 were left out "
                       "(longest side first)\n")


def test_usage_and_input_errors(inproc, bert_pt, tmp_path):
    with pytest.raises(UsageError, match="expected two segments, A and B, got 3"):
        inproc("nsp", "a", "b", "c", model=str(bert_pt))
    with pytest.raises(UsageError, match="give the pairs one way: A B or --file, not both"):
        inproc("nsp", "a", "b", model=str(bert_pt), file=tmp_path / "x")
    with pytest.raises(BadInputError, match="empty segment"):
        inproc("nsp", "a", " ", model=str(bert_pt))
    one = tmp_path / "one.txt"
    one.write_text("Only one sentence here.\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="no pairs in the input"):
        inproc("nsp", model=str(bert_pt), file=one)


def test_models_without_the_head_are_refused(bert_pt, albert_pt, tiny_models):
    with pytest.raises(ModelFileError, match=r"has no sentence-order-prediction \(SOP\) head .*which `bertcli sop` "
                                             r"needs; an AlbertForPreTraining checkpoint has one"):
        load_scorer(resolve_model(str(bert_pt)), "sop")
    with pytest.raises(ModelFileError, match=r"has no next-sentence-prediction \(NSP\) head"):
        load_scorer(resolve_model(str(albert_pt)), "nsp")
    # the right model type, but weights without the head (a BertForMaskedLM): refused after reading the weights
    with pytest.raises(ModelFileError, match=r"no next-sentence-prediction \(NSP\) head \(architecture: "
                                             r"BertForMaskedLM\).*google-bert/bert-base-uncased \(alias bert\) has one"):
        load_scorer(resolve_model(str(tiny_models["bert"])), "nsp")
    with pytest.raises(ModelFileError, match=r"no sentence-order-prediction \(SOP\) head \(architecture: "
                                             r"AlbertForMaskedLM\)"):  # no sop_classifier.* in its weights
        load_scorer(resolve_model(str(tiny_models["albert"])), "sop")


def test_exit_codes_end_to_end(run_cli, tiny_models, bert_pt, monkeypatch, run_output, capsys):
    r = run_cli("nsp", "a", "b", "-m", str(tiny_models["electra"]))
    assert "which `bertcli nsp` needs" in one_line_error(r, 6)
    from bertcli import cli

    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(b"one\ttwo\nbroken line\n")))
    with pytest.raises(SystemExit) as exc:
        cli.main(["nsp", "-m", str(bert_pt), "--backend", "torch"])  # no one-off ONNX export note before it
    err = capsys.readouterr().err
    assert (exc.value.code, err) == (5, "error: <stdin>, line 2: expected two segments separated by one tab "
                                        "(A<TAB>B), got 1 field(s)\n")


def test_inspect_lists_nsp_and_sop_where_the_weights_hold_them(bert_pt, albert_pt, tiny_models):
    from bertcli.inspect import inspect_model

    def caps(folder):
        return {c.command: c for c in inspect_model(resolve_model(str(folder))).capabilities if c.command in
                ("nsp", "sop")}

    bert = caps(bert_pt)
    assert bert["nsp"].available and "next-sentence-prediction (NSP) head in the weights" in bert["nsp"].reason
    assert not bert["sop"].available
    assert bert["sop"].reason == ("the sentence-order-prediction (SOP) head is a pre-training head of albert models, "
                                  "not bert (it was pre-trained with NSP: use nsp)")
    albert = caps(albert_pt)
    assert albert["sop"].available and not albert["nsp"].available
    assert albert["nsp"].reason.endswith("not albert (it was pre-trained with SOP: use sop)")
    # a BERT of the right type whose weights dropped the head (a fine-tuned or encoder-only checkpoint)
    plain = caps(tiny_models["bert_base_only"])
    assert not plain["nsp"].available and "cls.seq_relationship.* absent" in plain["nsp"].reason
    assert not caps(tiny_models["electra"])["nsp"].available
