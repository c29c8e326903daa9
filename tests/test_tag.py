"""`bertcli tag`: the same entities as transformers' token-classification pipeline (five aggregations, four
tokenizer kinds, long texts in windows with stride), the records, bad input, and the terminal views."""

from __future__ import annotations

import io
import json
import re
import types
from dataclasses import replace
from pathlib import Path

import pytest

from bertcli import cli
from tests.fixtures.checks import one_line_error
from tests.fixtures.tiny_models import TAG_LABELS

FAMILIES = ("bert", "albert", "roberta", "electra")  # WordPiece ##, SentencePiece ▁, byte-level Ġ, WordPiece
AGGREGATIONS = ("none", "simple", "first", "average", "max")
TEXTS = [
    "John Smith lives in Paris and works at Google.",
    "Unbelievable tokenization, isn't it?",
    "Zürich naïve café ßø 東京 x",  # accents, an unknown piece, CJK
    "",
]
LONG = " ".join(["John Smith lives in Paris and works at Google in New York."] * 6)


@pytest.fixture(scope="module")
def loaded(tiny_head):
    """family → (folder, transformers model, our Tagger with the default options): each loaded once."""
    from transformers import AutoModelForTokenClassification

    from bertcli.resolve import resolve_model
    from bertcli.tagging import TagOptions, load_tagger

    out = {}
    for family in FAMILIES:
        folder = tiny_head(family, "ForTokenClassification", id2label=TAG_LABELS)
        model = AutoModelForTokenClassification.from_pretrained(folder).eval()
        out[family] = (folder, model, load_tagger(resolve_model(str(folder)), TagOptions(device="cpu", backend="torch")))
    return out


def _with(tagger, **options):
    """The same loaded model with other options (aggregation, window)."""
    from bertcli.tagging import Tagger

    return Tagger(tagger.model, tagger.tok, tagger.id2label, replace(tagger.options, **options))


def _pipeline(folder: Path, model, **tokenizer_kwargs):
    from transformers import AutoTokenizer, pipeline

    tokenizer = AutoTokenizer.from_pretrained(folder, **tokenizer_kwargs)
    return pipeline("token-classification", model=model, tokenizer=tokenizer, device="cpu")


def _assert_same(ours: list[dict], ref: list[dict]) -> None:
    """Same entities, groups, words, offsets (and index for none), scores within 1e-5."""
    assert [{k: v for k, v in e.items() if k != "score"} for e in ours] == \
           [{k: v for k, v in e.items() if k != "score"} for e in ref]
    for a, b in zip(ours, ref):
        assert abs(a["score"] - float(b["score"])) <= 1e-5, (a, b)


@pytest.mark.parametrize("family", FAMILIES)
def test_equal_to_the_pipeline_for_every_aggregation(loaded, family):
    folder, model, tagger = loaded[family]
    pipe = _pipeline(folder, model)
    for aggregation in AGGREGATIONS:
        ours = list(_with(tagger, aggregation=aggregation).tag(TEXTS))
        ref = [pipe(text, aggregation_strategy=aggregation) for text in TEXTS]
        assert sum(map(len, ref)) > 10  # the random head does tag things: the comparison is not vacuous
        for got, want in zip(ours, ref):
            _assert_same(got, want)


@pytest.mark.parametrize("family", FAMILIES)
def test_long_text_in_windows_equals_the_pipeline_with_stride(loaded, family):
    """A text of ~90 tokens in windows of 24 sharing 8: the pipeline's stride= result, entity for entity."""
    folder, model, tagger = loaded[family]
    pipe = _pipeline(folder, model, model_max_length=24)
    for aggregation in ("simple", "first"):
        ours = next(_with(tagger, aggregation=aggregation, max_length=24, stride=8).tag([LONG]))
        ref = pipe(LONG, aggregation_strategy=aggregation, stride=8)
        _assert_same(ours, ref)
        assert ours[-1]["end"] > len(LONG) - 3  # the end of the text was tagged: nothing cut off


def test_windows_hold_the_whole_text_and_overlap(loaded):
    _, _, tagger = loaded["bert"]
    windowed = _with(tagger, max_length=16, stride=4)
    wins = windowed.windows([LONG])[0]
    assert len(wins) > 3 and all(len(w.ids) <= 16 for w in wins)
    covered = sorted({o for w in wins for o, s in zip(w.offsets, w.special_tokens_mask) if not s})
    whole = windowed.tok.encode_batch([LONG], add_special_tokens=False)[0]
    assert covered == sorted(set(whole.offsets))  # every token of the text is in some window
    shared = set(wins[0].offsets[1:-1]) & set(wins[1].offsets[1:-1])
    assert len(shared) == 4  # --stride tokens are shared


def test_none_on_a_long_text_keeps_each_token_once(loaded):
    """The pipeline refuses stride with aggregation none; we tag every token once, in order, with its index in
    the whole text."""
    _, _, tagger = loaded["bert"]
    whole = next(_with(tagger, aggregation="none").tag([LONG]))
    windowed = next(_with(tagger, aggregation="none", max_length=16, stride=4).tag([LONG]))
    starts = [e["start"] for e in windowed]
    assert starts == sorted(set(starts))
    by_start = {e["start"]: e for e in whole}
    assert all(e["index"] == by_start[e["start"]]["index"] for e in windowed if e["start"] in by_start)


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = 0
    try:
        cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_records_equal_the_core_and_tsv_has_a_row_per_entity(loaded, capsys):
    folder, _, tagger = loaded["roberta"]
    code, out, err = _cli(["tag", *TEXTS[:2], "-m", folder, "-f", "jsonl", "--batch-size", "1"], capsys)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["line"] for r in records] == [1, 2] and [r["text"] for r in records] == TEXTS[:2]
    for rec, want in zip(records, tagger.tag(TEXTS[:2])):
        _assert_same(rec["entities"], want)
    code, out, err = _cli(["tag", TEXTS[0], "-m", folder, "-f", "tsv", "-a", "none"], capsys)
    rows = out.splitlines()
    assert rows[0].split("\t") == ["line", "entity", "score", "word", "start", "end", "index"]
    assert len(rows) - 1 == len(next(_with(tagger, aggregation="none").tag(TEXTS[:1])))


@pytest.mark.parametrize(("argv", "code", "says"), [
    (["--stride", "30", "--max-length", "24"], 2, "--stride 30 must be less than the 22 text tokens"),
    (["--max-length", "4000"], 2, "--max-length 4000 is more than the model takes"),
    (["-a", "best"], 2, "'best' is not one of"),
])
def test_bad_options_are_one_line_usage_errors(loaded, capsys, argv, code, says):
    folder = loaded["bert"][0]
    got, out, err = _cli(["tag", "hello", "-m", folder, *argv], capsys)
    assert got == code and out == ""
    assert len(err.strip().splitlines()) == 1 and says in err, err


def test_a_model_without_the_head_is_refused(tiny_models, capsys):
    code, _, err = _cli(["tag", "hello", "-m", tiny_models["bert"]], capsys)
    assert code == 6 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "token-classification head" in err and "fill-mask" in err


def test_empty_and_undecodable_input_exit_5(run_cli, loaded, capsys, tmp_path):
    folder = loaded["bert"][0]
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    code, out, err = _cli(["tag", "-m", folder, "--file", tmp_path / "empty.txt"], capsys)
    assert (code, out, err) == (5, "", "error: empty input: no text to process\n")
    line = one_line_error(run_cli("tag", "-m", folder, input=b"ok\n\xff\xfe bad\n"), 5)  # the exit code, for real
    assert "line 2" in line


def _terminal(run_output, **kwargs) -> io.StringIO:
    from rich.console import Console

    buffer = io.StringIO()
    run_output.stdout_console = Console(file=buffer, force_terminal=True, width=200, soft_wrap=False,
                                        highlight=False, **kwargs)
    return buffer


def _run_table(folder, run_output, monkeypatch, text):
    from bertcli.commands.tag import tag

    monkeypatch.setenv("COLUMNS", "200")
    tag([text], model=str(folder), aggregation="simple", file=None, max_length=None, stride=None, batch_size=None,
        threads=None, device="cpu", backend="torch", fmt="table", quiet=True)


def test_no_color_view_marks_entities_with_brackets_and_labels(loaded, run_output, monkeypatch):
    folder, _, tagger = loaded["bert"]
    buffer = _terminal(run_output, no_color=True)
    _run_table(folder, run_output, monkeypatch, TEXTS[0])
    raw = buffer.getvalue()
    assert "\x1b[48" not in raw and "\x1b[38" not in raw  # no colours at all
    view = re.sub(r"\x1b\[[0-9;]*m", "", raw).splitlines()[0]
    entities = next(tagger.tag(TEXTS[:1]))
    marks = re.findall(r"\[([^\]]*)\]\(([A-Z]+)\)", view)
    assert marks == [(TEXTS[0][e["start"]:e["end"]], e["entity_group"]) for e in entities]
    assert re.sub(r"\[([^\]]*)\]\([A-Z]+\)", r"\1", view[3:]) == TEXTS[0]  # the text itself reads unchanged


def test_colour_view_paints_each_group_and_shows_a_legend(loaded, run_output, monkeypatch):
    folder, _, tagger = loaded["bert"]
    buffer = _terminal(run_output, color_system="truecolor")
    _run_table(folder, run_output, monkeypatch, TEXTS[0])
    lines = buffer.getvalue().splitlines()
    assert "\x1b[1;30;48;5;" in lines[0]  # bold black on a background colour: the entities of the text line
    groups = list(dict.fromkeys(e["entity_group"] for e in next(tagger.tag(TEXTS[:1]))))
    legend = re.sub(r"\x1b\[[0-9;]*m", "", lines[1]).split()
    assert legend == groups and "48;5;" in lines[1]


@pytest.mark.parametrize("family", ["bert", "albert", "roberta"])  # WordPiece, SentencePiece, byte-level BPE
def test_streamed_windows_of_a_long_text_equal_the_one_call_windows(tiny_head, family):
    """A text over CHUNK_CHARS is tokenized in chunks and its windows cut from them: the windows (ids, token
    types, special tokens, offsets) must be the one-call path's, whatever the chunk size, window and stride."""
    import random

    from bertcli import textcut
    from bertcli.resolve import resolve_model
    from bertcli.tagging import Tagger, streamed_windows
    from bertcli.tokenizer import load_tokenizer

    tok = load_tokenizer(resolve_model(str(tiny_head(family, "ForTokenClassification", num_labels=5))))
    backend = tok.backend
    assert textcut.chunk_safe(backend)  # else this test would compare one path to itself
    words = "Paris is the capital of France, where Ada Lovelace   lived\tin 1842 — naïve café 😀 don't".split(" ")
    rng = random.Random(5)
    for _ in range(20):
        text = rng.choice(["", "  "]) + "".join(rng.choice(words) + rng.choice([" ", "  ", "\n", ""])
                                                 for _ in range(rng.randint(1, 300)))
        max_length, stride = rng.choice([16, 24, 40]), rng.choice([0, 3, 6])
        tagger = types.SimpleNamespace(tok=tok, max_length=max_length, stride=stride)
        whole = Tagger.windows(tagger, [text])[0]
        streamed = streamed_windows(backend, text, max_length, stride, chunk_chars=rng.choice([1, 9, 60]))
        if not text.strip():
            assert streamed is None
            continue
        got = [(w.ids, w.type_ids, w.special_tokens_mask, w.offsets) for w in streamed]
        assert got == [(e.ids, e.type_ids, e.special_tokens_mask, e.offsets) for e in whole], (text, max_length, stride)
