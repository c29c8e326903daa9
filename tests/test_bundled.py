"""Bundled config.json copies: config, variants -m and inspect of an alias work offline before any download."""

from __future__ import annotations

import json

import pytest

from bertcli.bundled import CONFIGS_DIR, bundled_model
from bertcli.config import count_parameters
from bertcli.resolve import ALIASES
from tests.fixtures.checks import one_line_error


def _note(alias: str) -> str:
    return (f"warning: bundled copy of {ALIASES[alias].repo_id}'s config.json (the model is not cached); "
            f"download the model for its tokenizer and weights: bertcli download {alias}")


def test_every_alias_has_a_bundled_config_and_nothing_else():
    assert sorted(p.name for p in CONFIGS_DIR.iterdir()) == sorted(ALIASES)
    for alias in ALIASES:
        folder = CONFIGS_DIR / alias
        assert [p.name for p in folder.iterdir()] == ["config.json"]
        json.loads((folder / "config.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("alias", list(ALIASES))
def test_bundled_parameter_arithmetic_equals_transformers(alias):
    """bertcli's arithmetic on each bundled config equals the parameter count of the model transformers builds."""
    import torch
    import transformers

    resolved = bundled_model(alias)
    config = resolved.config  # spanbert's config has no model_type: read as bert, as resolve does
    counted = count_parameters(config)
    architecture = (config.get("architectures") or [counted.architecture])[0]  # deberta-v3 names none
    hf_config = transformers.AutoConfig.for_model(**config)
    with torch.device("meta"):  # shapes only: no memory, no time
        model = getattr(transformers, architecture)(hf_config)
    assert counted.total == sum(p.numel() for p in model.parameters())


def test_bundled_model_only_for_aliases_at_main():
    assert bundled_model("albert").repo_id == "albert/albert-base-v2"
    assert bundled_model("albert/albert-base-v2").alias == "albert"
    assert bundled_model("albert-base-v2").alias == "albert"  # the legacy id
    assert bundled_model("albert@main").source == "bundled"
    assert bundled_model("albert@v1") is None
    assert bundled_model("albert", revision="v1") is None
    assert bundled_model("org/other") is None
    assert bundled_model(None) is None


def test_config_albert_offline_reads_the_bundled_copy(run_cli):
    import transformers

    proc = run_cli("config", "albert", "-f", "json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [_note("albert")]
    record = json.loads(proc.stdout)
    assert (record["model"], record["source"], record["family"]) == ("albert/albert-base-v2", "bundled", "ALBERT")
    # ALBERT-base's "12M": the encoder (AlbertModel) as transformers builds it from the same config
    config = json.loads((CONFIGS_DIR / "albert" / "config.json").read_text())
    real = sum(p.numel() for p in transformers.AlbertModel(transformers.AlbertConfig(**config)).parameters())
    assert record["parameters"]["base"] == real == 11_683_584

    table = run_cli("config", "albert", "-f", "table", env={"COLUMNS": "120"})
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].strip() == "albert/albert-base-v2  ·  ALBERT  (bundled config.json)"


def test_variants_and_inspect_offline_read_the_bundled_copy(run_cli):
    proc = run_cli("variants", "albert", "-m", "albert", "-f", "json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [_note("albert")]
    live = json.loads(proc.stdout)["live"]
    assert (live["source"], live["base"]) == ("bundled", 11_683_584)

    proc = run_cli("inspect", "spanbert-qa", "-f", "json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0] == _note("spanbert-qa")
    record = json.loads(proc.stdout)
    assert (record["source"], record["repo_id"], record["family"]) == (
        "bundled", "mrm8488/spanbert-base-finetuned-squadv2", "SpanBERT")
    assert record["weights"]["files"] == []


@pytest.mark.parametrize("args", [
    ["tokenize", "-m", "albert", "hello"],
    ["embed", "-m", "roberta", "hello"],
    ["fill-mask", "-m", "bert", "hello [MASK]"],
    ["config", "albert", "--revision", "v1"],
])
def test_commands_needing_more_than_the_config_still_exit_4(run_cli, args):
    line = one_line_error(run_cli(*args), 4)
    assert "is not in the cache" in line and "offline mode is on" in line
    assert "bundled" not in line


def test_config_diff_of_two_aliases_offline(run_cli):
    proc = run_cli("config", "albert", "--diff", "bert", "-f", "json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [_note("albert"), _note("bert")]
    rows = {row["field"]: (row["a"], row["b"]) for row in json.loads(proc.stdout)}
    assert rows["model_type"] == ("albert", "bert") and rows["embedding_size"] == (128, None)
