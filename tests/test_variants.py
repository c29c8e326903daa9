"""Tests for bertcli.variants: the catalog's facts, aliases from resolve.ALIASES, live numbers from configs."""

from __future__ import annotations

import json

import pytest

from bertcli.choices import STRATEGIES
from bertcli.config import count_parameters
from bertcli.errors import UsageError
from bertcli.resolve import ALIASES
from bertcli.variants import OBJECTIVES, VARIANTS, catalog, get_variant, live_numbers


def _layer(h: int, i: int) -> int:
    """One encoder layer's parameters, written out: attention (q, k, v, out + LayerNorm) and FFN (+ LayerNorm)."""
    return 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h


def test_catalog_facts():
    rows = {r["variant"]: r for r in catalog()}
    assert list(rows) == ["BERT", "ALBERT", "RoBERTa", "ELECTRA", "SpanBERT", "DistilBERT", "XLM-RoBERTa", "DeBERTa",
                          "ModernBERT"]
    assert all(set(r["objectives"]) <= set(OBJECTIVES) for r in rows.values())
    rows = {k: rows[k] for k in ("BERT", "ALBERT", "RoBERTa", "ELECTRA", "SpanBERT", "DeBERTa", "ModernBERT")}
    # DistilBERT and XLM-RoBERTa: tests/test_families_distil.py
    assert {k: r["objectives"] for k, r in rows.items()} == {
        "BERT": ["MLM", "NSP"], "ALBERT": ["MLM", "SOP"], "RoBERTa": ["MLM"], "ELECTRA": ["RTD", "MLM"],
        "SpanBERT": ["MLM", "SBO"], "DeBERTa": ["RTD", "MLM"], "ModernBERT": ["MLM"]}
    assert {k: r["masking"] for k, r in rows.items()} == {
        "BERT": "static", "ALBERT": "static", "RoBERTa": "dynamic", "ELECTRA": "dynamic", "SpanBERT": "span",
        "DeBERTa": "dynamic", "ModernBERT": "dynamic"}
    assert {k: (r["tokenizer"], r["marker"]) for k, r in rows.items()} == {
        "BERT": ("WordPiece", "##"), "ALBERT": ("SentencePiece", "▁"), "RoBERTa": ("byte-level BPE", "Ġ"),
        "ELECTRA": ("WordPiece", "##"), "SpanBERT": ("WordPiece", "##"), "DeBERTa": ("SentencePiece", "▁"),
        "ModernBERT": ("byte-level BPE", "Ġ")}
    assert rows["ALBERT"]["tricks"] == ["factorized embedding", "cross-layer sharing"]
    assert rows["BERT"]["tricks"] == rows["RoBERTa"]["tricks"] == rows["SpanBERT"]["tricks"] == []
    assert {k: r["mask_strategy"] for k, r in rows.items()} == {
        "BERT": "static", "ALBERT": "ngram", "RoBERTa": "dynamic", "ELECTRA": "dynamic", "SpanBERT": "span",
        "DeBERTa": "dynamic", "ModernBERT": "dynamic"}
    assert {r["mask_strategy"] for r in rows.values()} <= set(STRATEGIES)  # each one `bertcli mask` has
    assert all(set(r["objectives"]) <= set(OBJECTIVES) for r in rows.values())
    json.dumps(catalog())  # plain JSON


def test_aliases_and_hub_ids_come_from_resolve():
    rows = {r["variant"]: r for r in catalog()}
    for alias in ALIASES.values():
        entry = [a for a in rows[alias.family]["aliases"] if a["alias"] == alias.name]
        assert entry == [{"alias": alias.name, "repo_id": alias.repo_id, "legacy_ids": list(alias.legacy_ids),
                          "description": alias.description}]
    assert [a["alias"] for a in rows["ELECTRA"]["aliases"]] == ["electra", "electra-generator"]
    assert rows["ALBERT"]["aliases"][0]["repo_id"] == "albert/albert-base-v2"
    assert sum(len(r["aliases"]) for r in rows.values()) == len(ALIASES)


@pytest.mark.parametrize("name, expected", [("albert", "ALBERT"), ("RoBERTa", "RoBERTa"), (" SPANBERT ", "SpanBERT"),
                                            ("electra-generator", "ELECTRA"), ("spanbert-qa", "SpanBERT")])
def test_get_variant_by_name_or_alias(name, expected):
    assert get_variant(name).name == expected


def test_unknown_variant_lists_the_choices():
    with pytest.raises(UsageError) as err:
        get_variant("gpt2")
    assert str(err.value) == ("unknown variant 'gpt2'; choose one of BERT, ALBERT, RoBERTa, ELECTRA, SpanBERT, "
                              "DistilBERT, XLM-RoBERTa, DeBERTa, ModernBERT")
    assert err.value.exit_code == 2


def test_live_numbers_for_a_tiny_albert_are_exact():
    config = {"model_type": "albert", "architectures": ["AlbertModel"], "vocab_size": 100, "embedding_size": 8,
              "hidden_size": 32, "num_hidden_layers": 3, "num_hidden_groups": 1, "inner_group_num": 1,
              "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 40, "type_vocab_size": 2}
    live = live_numbers(config)
    assert live["family"] == "ALBERT"
    assert live["factorized_embedding"] == {"V": 100, "E": 8, "H": 32, "factorized": 100 * 8 + 8 * 32,
                                            "unfactorized": 100 * 32, "saved": 100 * 32 - (100 * 8 + 8 * 32)}
    assert live["factorized_embedding"]["factorized"] == 1056
    assert live["factorized_embedding"]["saved"] == 2144
    per_layer = _layer(32, 64)
    assert live["per_layer"] == per_layer
    assert (live["stored_layers"], live["run_layers"]) == (1, 3)
    assert live["sharing"]["saved"] == 2 * per_layer
    assert live["saved_by_tricks"] == 2144 + 2 * per_layer
    embeddings = 100 * 8 + 40 * 8 + 2 * 8 + 2 * 8
    projection = 8 * 32 + 32
    pooler = 32 * 32 + 32
    assert live["total"] == embeddings + projection + per_layer + pooler == count_parameters(config).total
    assert live["word_embeddings"] == 800
    assert live["sizes"] == {"V": 100, "E": 8, "H": 32, "layers": 3, "heads": 2, "intermediate": 64}


def test_live_numbers_equal_count_parameters_on_the_fixtures(tiny_models, minilm_dir):
    from bertcli.resolve import read_config_file

    for name in ("bert", "albert", "roberta", "electra", "electra_generator"):
        config = read_config_file(tiny_models[name] / "config.json")
        live = live_numbers(config)
        count = count_parameters(config)
        assert (live["total"], live["base"], live["per_layer"]) == (count.total, count.base, count.per_layer), name
    albert = read_config_file(tiny_models["albert"] / "config.json")
    v = albert["vocab_size"]
    fact = live_numbers(albert)["factorized_embedding"]
    assert (fact["E"], fact["H"]) == (16, 32)
    assert fact["factorized"] == v * 16 + 16 * 32
    assert fact["unfactorized"] == v * 32
    minilm = live_numbers(read_config_file(minilm_dir / "config.json"))
    assert minilm["total"] == 22_713_216  # all-MiniLM-L6-v2's BertModel
    assert minilm["word_embeddings"] == 30522 * 384
    assert minilm["factorized_embedding"] is minilm["sharing"] is minilm["embedding_projection"] is None


def test_live_numbers_electra_projection_and_spanbert_by_name(tiny_models):
    from bertcli.resolve import read_config_file

    electra = live_numbers(read_config_file(tiny_models["electra"] / "config.json"))
    v = electra["sizes"]["V"]
    assert electra["family"] == "ELECTRA"
    assert electra["embedding_projection"] == {"E": 16, "H": 32, "params": 16 * 32 + 32,
                                               "embedding_params_if_unfactorized": v * 32,
                                               "embedding_params_factorized": v * 16 + 16 * 32 + 32}
    assert electra["saved_by_tricks"] is None
    bert_config = read_config_file(tiny_models["bert"] / "config.json")
    assert live_numbers(bert_config)["family"] == "BERT"
    assert live_numbers(bert_config, name_hints=["SpanBERT/spanbert-base-cased"])["family"] == "SpanBERT"


def test_live_numbers_unknown_model_type():
    with pytest.raises(ValueError):
        live_numbers({"model_type": "gpt2"})


def test_variants_table_keys():
    assert list(VARIANTS) == ["bert", "albert", "roberta", "electra", "spanbert", "distilbert", "xlm-roberta", "deberta",
                              "modernbert"]
