"""`bertcli mask`: reproducible masks per strategy, special tokens never masked, span boundaries, statistics.

Also the statistics core it uses (`bertcli.masking.sample_statistics`, `chi_square`), tested in process.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bertcli.masking import SPAN_LENGTH_PMF, chi_square, sample_statistics

TEXT = "You are expected to know the laws of your country and to follow them every day"
MINILM_TOKENS = ["[CLS]", "you", "are", "expected", "to", "know", "the", "laws", "of", "your", "country", "and",
                 "to", "follow", "them", "every", "day", "[SEP]"]
PARAGRAPH = " ".join([TEXT, "The quick brown fox jumps over the lazy dog near the river bank",
                      "Paris is the capital of France and Berlin is the capital of Germany",
                      "Machine learning is a subset of artificial intelligence used for email filtering"] * 2)


def _records(proc) -> list[dict]:
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_seed_reproducible_and_seeds_differ(run_cli, minilm_dir):
    args = ("mask", PARAGRAPH, "-m", minilm_dir, "--strategy", "static", "-f", "jsonl", "-q")
    first = run_cli(*args, "--seed", "7")
    again = run_cli(*args, "--seed", "7")
    other = run_cli(*args, "--seed", "8")
    assert first.stdout == again.stdout
    [a], [b] = _records(first), _records(other)
    assert a["tokens"] == b["tokens"] and a["masked_tokens"] != b["masked_tokens"]
    maskable = sum(1 for s in a["special"] if not s)
    assert a["budget"] == round(maskable * 0.15) and len(a["selected"]) == a["budget"]
    assert a["seed"] == 7 and a["mask_token"] == "[MASK]" and a["strategy"] == "static"
    for i in a["selected"]:
        assert a["targets"][i] == a["tokens"][i]
        assert (a["action"][i], a["masked_tokens"][i] == "[MASK]") in {("mask", True), ("random", False), ("same", False)}
    # without --seed a fresh one is drawn and printed on stderr
    proc = run_cli("mask", TEXT, "-m", minilm_dir, "-f", "jsonl")
    [rec] = _records(proc)
    assert proc.stderr.strip() == f"seed {rec['seed']} (repeat this run with --seed {rec['seed']})"


def test_no_seed_line_before_an_error(run_cli):
    """Offline, an alias that is not cached: the one error line only (the seed is drawn after the model resolves)."""
    r = run_cli("mask", "hello world", "-m", "bert")
    assert r.returncode == 4
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr


def test_dynamic_epochs_new_masks_static_repeats_and_specials_never_masked(run_cli, minilm_dir):
    dynamic = _records(run_cli("mask", TEXT, "-m", minilm_dir, "--strategy", "dynamic", "--epochs", "40",
                               "--seed", "1", "-f", "jsonl"))
    assert [r["epoch"] for r in dynamic] == list(range(1, 41))
    assert all(r["new_mask"] for r in dynamic)
    assert dynamic[0]["tokens"] == MINILM_TOKENS
    assert len({tuple(r["selected"]) for r in dynamic}) > 10  # a new mask each epoch
    for r in dynamic:  # [CLS] and [SEP] are never selected, never changed
        assert r["action"][0] == r["action"][-1] == "keep"
        assert r["masked_tokens"][0] == "[CLS]" and r["masked_tokens"][-1] == "[SEP]"
    static = _records(run_cli("mask", TEXT, "-m", minilm_dir, "--strategy", "static", "--epochs", "3",
                              "--seed", "1", "-f", "jsonl"))
    assert [r["new_mask"] for r in static] == [True, False, False]
    assert static[0]["masked_tokens"] == static[1]["masked_tokens"] == static[2]["masked_tokens"]
    assert static[0]["masked_tokens"] == dynamic[0]["masked_tokens"]  # same seed: same first epoch
    default = _records(run_cli("mask", TEXT, "-m", minilm_dir, "--strategy", "dynamic", "--seed", "1", "-f", "jsonl"))
    assert len(default) == 3


def test_span_boundaries_marked(run_cli, minilm_dir):
    [rec] = _records(run_cli("mask", PARAGRAPH, "-m", minilm_dir, "--strategy", "span", "--seed", "3", "-f", "jsonl"))
    assert rec["spans"] and len(rec["spans"]) == len(rec["boundaries"]) == len(rec["span_lengths"])
    for (start, end), (left, right) in zip(rec["spans"], rec["boundaries"]):
        assert (left, right) == (start - 1, end)
        assert rec["action"][left] == rec["action"][right] == "keep"
        assert all(rec["action"][i] != "keep" for i in range(start, end))
    table = run_cli("mask", PARAGRAPH, "-m", minilm_dir, "--strategy", "span", "--seed", "3", "-f", "table",
                    env={"COLUMNS": "400"}).stdout
    for left, right in rec["boundaries"]:
        assert f"⟨{rec['tokens'][left]}⟩" in table and f"⟨{rec['tokens'][right]}⟩" in table
    assert "span boundary token (SBO)" in table
    tsv = run_cli("mask", PARAGRAPH, "-m", minilm_dir, "--strategy", "span", "--seed", "3", "-f", "tsv").stdout
    rows = [line.split("\t") for line in tsv.splitlines()[1:]]
    # a word between two spans is the boundary of both: positions listed once
    assert [int(r[1]) for r in rows if r[6] == "true"] == sorted({p for b in rec["boundaries"] for p in b})


def test_bare_tokenizer_files_and_roberta_mask_token(run_cli, tiny_roberta, tiny_bert_fast):
    records = _records(run_cli("mask", PARAGRAPH, "-m", tiny_roberta / "vocab.json", "--strategy", "whole-word",
                               "--seed", "0", "--mask-prob", "0.5", "-f", "jsonl"))
    [rec] = records
    assert rec["mask_token"] == "<mask>" and rec["tokens"][0] == "<s>" and rec["kind"] == "byte-level BPE"
    vocab = json.loads((tiny_roberta / "vocab.json").read_text(encoding="utf-8"))
    randoms = [rec["masked_tokens"][i] for i in rec["selected"] if rec["action"][i] == "random"]
    assert randoms and all(t in vocab and t not in ("<s>", "<pad>", "</s>", "<unk>", "<mask>") for t in randoms)
    assert "<mask>" in rec["masked_tokens"]
    # whole-word: every piece of a word is selected together
    for w in {rec["word_ids"][i] for i in rec["selected"]}:
        assert all(i in rec["selected"] for i, wid in enumerate(rec["word_ids"]) if wid == w)
    # a bare tokenizer.json names no mask token: [MASK] is found in its vocabulary
    [fast] = _records(run_cli("mask", TEXT, "-m", tiny_bert_fast / "tokenizer.json", "--seed", "0", "-f", "jsonl"))
    assert fast["mask_token"] == "[MASK]" and fast["tokens"][0] == "[CLS]"


def test_bad_strategy_and_options_one_line_exit_2(run_cli, minilm_dir):
    for args, message in (
        (("--strategy", "bogus"), "error: Invalid value for '--strategy' / '-s': 'bogus' is not one of 'static', 'dynamic', 'whole-word', "
                                   "'span', 'ngram'; see 'bertcli mask --help'"),
        (("--mask-prob", "1.5"), "error: --mask-prob must be in (0, 1], got 1.5"),
        (("--samples", "10", "--epochs", "2"), "error: --samples and --epochs do not go together"),
    ):
        proc = run_cli("mask", TEXT, "-m", minilm_dir, *args)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == message and "Traceback" not in proc.stderr
    proc = run_cli("mask", "   ", "-m", minilm_dir)
    assert proc.returncode == 5 and proc.stderr.strip() == "error: empty text: nothing to mask"


def test_samples_mode_reports_distributions(run_cli, minilm_dir):
    proc = run_cli("mask", PARAGRAPH, "-m", minilm_dir, "--strategy", "span", "--samples", "1500", "--seed", "11",
                   "-f", "json")
    rec = json.loads(proc.stdout)
    assert rec["samples"] == 1500 and rec["budget"] == round(rec["maskable"] * 0.15)
    assert rec["rate"]["expected"] == rec["budget"] / rec["maskable"]
    assert rec["rate"]["selected_min"] >= rec["budget"]  # span masking reaches the budget (may overshoot a word)
    split = rec["split"]
    assert split["unit"] == "span" and split["df"] == 2 and split["consistent"] is True
    assert sum(split["counts"].values()) == sum(rec["span_lengths"]["counts"])
    spans = rec["span_lengths"]
    assert spans["expected"] == pytest.approx(list(SPAN_LENGTH_PMF))  # the paragraph has room for 10 words
    assert spans["consistent"] is True and abs(spans["mean_observed"] - 3.797) < 0.15
    table = run_cli("mask", PARAGRAPH, "-m", minilm_dir, "--strategy", "static", "--samples", "300", "--seed", "11",
                    "-f", "table", env={"COLUMNS": "160"}).stdout
    assert "80/10/10 split (one decision per token)" in table and "at α = 0.001: consistent" in table


# ---- the statistics core (bertcli.masking.sample_statistics), in process ----

def test_chi_square_verdicts():
    assert chi_square([800, 100, 100], [0.8, 0.1, 0.1]) == {"chi2": 0.0, "df": 2, "critical": 13.816, "consistent": True}
    bad = chi_square([900, 50, 50], [0.8, 0.1, 0.1])
    assert bad["chi2"] == pytest.approx(100 ** 2 / 800 + 2 * 50 ** 2 / 100) and bad["consistent"] is False
    assert chi_square([3, 1, 0], [0.8, 0.1, 0.1])["consistent"] is None  # expected counts below 5


def test_sample_statistics_static_exact_rate_and_the_split_test_has_power():
    tokens = ["[CLS]"] + [f"w{i}" for i in range(100)] + ["[SEP]"]
    word_ids = [None, *range(100), None]
    stats = sample_statistics(tokens, word_ids, strategy="static", rng=5, samples=800)
    assert stats["budget"] == 15 and stats["maskable"] == 100
    assert stats["rate"]["observed"] == 0.15 and stats["rate"]["selected_min"] == stats["rate"]["selected_max"] == 15
    assert sum(stats["split"]["counts"].values()) == 800 * 15 and stats["split"]["consistent"] is True
    assert "span_lengths" not in stats
    other = sample_statistics(tokens, word_ids, strategy="static", rng=5, samples=800, replace_probs=(0.9, 0.05, 0.05))
    assert other["split"]["expected"] == {"mask": 0.9, "random": 0.05, "same": 0.05}
    assert other["split"]["consistent"] is True
    # the same counts held against BERT's 80/10/10 fail the test: it tells the two splits apart
    assert chi_square(list(other["split"]["counts"].values()), [0.8, 0.1, 0.1])["consistent"] is False


def test_sample_statistics_span_short_text_renormalises_expected_lengths():
    tokens = ["[CLS]", "a", "b", "c", "d", "[SEP]"]
    stats = sample_statistics(tokens, [None, 0, 1, 2, 3, None], strategy="span", rng=0, samples=200, mask_prob=0.5)
    spans = stats["span_lengths"]
    assert spans["longest_run"] == 4
    expected = np.array(SPAN_LENGTH_PMF[:4]) / SPAN_LENGTH_PMF[:4].sum()
    assert spans["expected"][:4] == pytest.approx(expected.tolist()) and spans["expected"][4:] == [0.0] * 6
    assert sum(spans["counts"][4:]) == 0
