"""The JSON contract: every command's `-f json` and `-f jsonl` records against the schema declared once in
`bertcli/schema.py`, which the docs pages show.

- a stream: `jsonl` is one record a line and `json` the array of the same records;
- a report: `json` is one object and `jsonl` the same object on one line;
- one key, one type: each record's keys and types fit its schema (nothing missing, nothing undeclared).

Model commands run in this process (one torch import for all, tiny models); `download` and `cache`, which
need the local fake hub's environment at import time, run in subprocesses.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from bertcli import cli
from bertcli.schema import SCHEMAS, markdown, problems
from tests.conftest import REPO_ROOT
from tests.fixtures.tiny_models import TAG_LABELS
from tests.hubserver import fake_hub, publish  # noqa: F401 - fixture

COVERED: set[str] = set()


def _run_inprocess(argv: list[str]) -> tuple[int, str]:
    """`bertcli ARGV` in this process: (exit code, stdout)."""
    # cli.main makes this run's settings and output sink afresh (so no state leaks from the previous run)
    buffer = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(buffer):
        try:
            cli.main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code or 0
    return code, buffer.getvalue()


def _check(name: str, run, argv: list[str], *, same: bool = True) -> list[dict]:
    """Run ARGV with -f json and -f jsonl; check the stream/report rule and every record against SCHEMAS[name]."""
    schema = SCHEMAS[name]
    code_json, text_json = run([*argv, "-f", "json"])
    code_jsonl, text_jsonl = run([*argv, "-f", "jsonl"])
    assert (code_json, code_jsonl) == (0, 0), (name, text_json[-300:], text_jsonl[-300:])
    parsed = json.loads(text_json)
    lines = [json.loads(line) for line in text_jsonl.splitlines()]
    if schema.kind == "stream":
        assert isinstance(parsed, list) and parsed, f"{name}: -f json must be a non-empty array"
        records = parsed
        assert len(lines) == len(parsed), f"{name}: jsonl and json give different numbers of records"
    else:
        assert isinstance(parsed, dict), f"{name}: a report is one object with -f json"
        assert len(lines) == 1, f"{name}: a report is one line with -f jsonl"
        records = [parsed]
    if same:
        assert lines == records, f"{name}: -f json and -f jsonl give different records"
    for i, record in enumerate(records + lines):
        found = problems(record, schema.fields)
        assert not found, f"{name} record {i}: {found}"
    COVERED.add(name)
    return records


@pytest.fixture(scope="module")
def models(tiny_models, tiny_head) -> dict[str, Path]:
    return {**tiny_models, "bert_tokcls": tiny_head("bert", "ForTokenClassification", id2label=TAG_LABELS)}


def test_tokenize(models):
    bert = models["bert"]
    recs = _check("tokenize", _run_inprocess, ["tokenize", "-m", bert, "It was a great day", "hello"])
    assert [r["line"] for r in recs] == [1, 2]
    pair = _check("tokenize", _run_inprocess, ["tokenize", "-m", bert, "Who wrote it?", "--pair", "Ada did."])
    assert "pair" in pair[0] and "sequence_ids" in pair[0]
    _check("tokenize", _run_inprocess, ["tokenize", "-m", models["roberta"], "It was"])  # no token types
    _check("tokenize --count", _run_inprocess, ["tokenize", "-m", bert, "It was a great day", "hi", "--count"])
    cut = _check("tokenize --truncate", _run_inprocess, ["tokenize", "-m", bert, "It was a great day", "--truncate", "3"])
    assert cut == [{"line": 1, "text": "It was a", "count": 3}]


def test_embed(models):
    bert = models["bert"]
    _check("embed", _run_inprocess, ["embed", "-m", bert, "a b", "c"])
    _check("embed --pooling none", _run_inprocess, ["embed", "-m", bert, "a b", "--pooling", "none"])
    _check("embed --similarity", _run_inprocess, ["embed", "-m", bert, "a b", "c", "--similarity"])


def test_qa(models, tmp_path):
    qa = models["bert_qa"]
    _check("qa", _run_inprocess, ["qa", "-m", qa, "-q", "Who?", "-c", "Ada wrote it in Paris.", "--top-k", "2",
                                  "--show-windows"])
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"id": "a", "question": "Who?", "context": "Ada wrote it."}\n'
                         '{"id": "b", "question": "Where?", "context": "In Paris."}\n')
    recs = _check("qa", _run_inprocess, ["qa", "-m", qa, "--input", questions])
    assert [r["id"] for r in recs] == ["a", "b"]


def test_config_inspect_models_variants(models):
    bert, albert = models["bert"], models["albert"]
    _check("config", _run_inprocess, ["config", bert])
    _check("config --diff", _run_inprocess, ["config", bert, "--diff", albert])
    _check("inspect", _run_inprocess, ["inspect", bert])
    _check("inspect", _run_inprocess, ["inspect", bert, "--tensors"])
    _check("models", _run_inprocess, ["models"])
    _check("variants", _run_inprocess, ["variants"])
    _check("variants", _run_inprocess, ["variants", "-m", albert])
    one = _check("variants VARIANT", _run_inprocess, ["variants", "albert", "-m", albert])
    assert one[0]["variant"] == "ALBERT" and one[0]["live"]["model_type"] == "albert"


def test_compare_mask_fill_detect_attention(models):
    bert, electra = models["bert"], models["electra"]
    _check("compare", _run_inprocess, ["compare", "hello world", "a b", "-m", bert, "-m", models["roberta"]])
    _check("mask", _run_inprocess, ["mask", "hello world is nice", "-m", bert, "--seed", "1", "--epochs", "2"])
    _check("mask", _run_inprocess, ["mask", "hello world is nice", "-m", bert, "--seed", "1", "--strategy", "span"])
    ngram = _check("mask", _run_inprocess, ["mask", "hello world is nice", "-m", bert, "--seed", "1", "--strategy",
                                            "ngram"])
    assert "spans" in ngram[0] and "boundaries" not in ngram[0]
    _check("mask --samples", _run_inprocess, ["mask", "hello world is nice today", "-m", bert, "--seed", "1",
                                              "--strategy", "ngram", "--samples", "50"])
    _check("mask --samples", _run_inprocess, ["mask", "hello world is nice", "-m", bert, "--seed", "1", "--samples", "50"])
    _check("mask --samples", _run_inprocess, ["mask", "hello world is nice today", "-m", bert, "--seed", "1",
                                              "--strategy", "span", "--samples", "50"])
    _check("fill-mask", _run_inprocess, ["fill-mask", "hello [MASK]", "[MASK] is [MASK]", "-m", bert, "--top-k", "2"])
    _check("detect", _run_inprocess, ["detect", "The chef cooked the meal.", "hello", "-m", electra])
    _check("detect", _run_inprocess, ["detect", "The chef cooked the meal.", "-m", electra, "--replace", "3=ate"])
    _check("detect --corrupt", _run_inprocess, ["detect", "The chef cooked the meal.", "hello", "-m", electra,
                                                 "-g", models["electra_generator"], "--corrupt", "2", "--seed", "3"])
    tagger = models["bert_tokcls"]
    _check("tag", _run_inprocess, ["tag", "John Smith lives in Paris.", "hello", "-m", tagger])
    _check("tag --aggregation none", _run_inprocess, ["tag", "John Smith lives in Paris.", "-m", tagger, "-a", "none"])
    head = _check("attention", _run_inprocess, ["attention", "hello world", "-m", bert, "--head", "0"])
    assert (head[0]["layer"], head[0]["head"]) == (2, 0)
    mean = _check("attention", _run_inprocess, ["attention", "hello world", "-m", bert, "--layer", "1"])
    assert (mean[0]["layer"], mean[0]["head"]) == (1, None)
    _check("attention --top", _run_inprocess, ["attention", "hello world", "-m", bert, "--top", "2"])


def test_nsp_sop(models, tiny_head):
    bert_pt, albert_pt = tiny_head("bert", "ForPreTraining"), tiny_head("albert", "ForPreTraining")
    _check("nsp", _run_inprocess, ["nsp", "It rained.", "We stayed in.", "-m", bert_pt])
    swapped = _check("nsp", _run_inprocess, ["nsp", "It rained.", "We stayed in.", "-m", bert_pt, "--swap"])
    assert "swapped" in swapped[0]
    _check("sop", _run_inprocess, ["sop", "It rained.", "word " * 300, "-m", albert_pt, "--swap"])


def test_zero_shot(tiny_head):
    nli = tiny_head("bert", "ForSequenceClassification", id2label={0: "contradiction", 1: "neutral", 2: "entailment"})
    recs = _check("zero-shot", _run_inprocess, ["zero-shot", "a cake", "the match", "-m", nli, "--labels", "food,sport"])
    assert [r["line"] for r in recs] == [1, 2] and sorted(recs[0]["labels"]) == ["food", "sport"]
    _check("zero-shot", _run_inprocess, ["zero-shot", "a cake", "-m", nli, "--labels", "food,sport", "--multi-label"])


def test_classify_rerank(tiny_head, tmp_path):
    folder = tiny_head("bert", "ForSequenceClassification", id2label={0: "neg", 1: "pos"})
    _check("classify", _run_inprocess, ["classify", "hello world", "a day", "-m", folder])
    _check("classify", _run_inprocess, ["classify", "hello", "--pair", "world", "-m", folder, "--top-k", "0"])
    one = tiny_head("bert", "ForSequenceClassification", num_labels=1, initializer_range=0.5)
    _check("rerank", _run_inprocess, ["rerank", "-m", one, "-q", "cats", "a cat", "a dog", "--return-documents"])
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"query": "cats", "docs": ["a cat", "a dog"]}\n', encoding="utf-8")
    _check("rerank", _run_inprocess, ["rerank", "-m", one, "--input", queries, "--top-k", "1"])


def test_download_and_cache(run_cli, fake_hub, tiny_models, tmp_path):  # noqa: F811 - fixture
    publish(fake_hub, "org/tiny-bert", tiny_models["bert_fast"])
    env = fake_hub.env(tmp_path / "hub")

    def run(argv):
        r = run_cli(*argv, env=env)
        return r.returncode, r.stdout

    _check("download --dry-run", run, ["download", "org/tiny-bert", "--dry-run"])
    first = _check("download", run, ["download", "org/tiny-bert", "-q"], same=False)  # the second run fetches nothing
    assert first[0]["downloaded_bytes"] == first[0]["bytes"] > 0
    _check("cache ls", run, ["cache", "ls"], same=False)  # last_used may move between the two runs
    _check("cache verify", run, ["cache", "verify", "org/tiny-bert"])
    _check("cache rm", run, ["cache", "rm", "org/tiny-bert", "--dry-run"])


def test_every_schema_was_exercised_and_every_command_has_one():
    """Runs after the tests above (file order): each declared record kind was produced and checked."""
    if not COVERED:
        pytest.skip("needs the command tests above in the same run")
    assert COVERED == set(SCHEMAS), sorted(set(SCHEMAS) - COVERED)
    commands = {name for name, _, _ in cli.COMMANDS}
    assert {s.split()[0] for s in SCHEMAS} == commands


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_docs_page_shows_the_schema(name):
    page = (REPO_ROOT / SCHEMAS[name].page).read_text(encoding="utf-8")
    assert markdown(name) in page, f"{SCHEMAS[name].page} lacks the table of `{name}` (bertcli.schema.markdown)"


def test_checker_catches_a_wrong_type():
    fields = SCHEMAS["tokenize --truncate"].fields
    assert problems({"line": 1, "text": "It was a", "count": 3}, fields) == []
    assert problems({"line": 1, "text": "It was a", "tokens": 3}, fields) == [".count: missing",
                                                                               ".tokens: not in the schema"]
    assert problems({"line": "1", "text": "x", "count": 3}, fields)[0].startswith(".line: expected int, got str")
    head = SCHEMAS["attention"].fields
    assert any(p.startswith(".head: expected int|null") for p in problems({"head": "0"}, head))
