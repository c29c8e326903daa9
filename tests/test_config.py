"""Parameter arithmetic from config.json alone equals the real models' parameter counts."""

from __future__ import annotations

import json

import pytest

from bertcli.config import count_parameters, grouped_fields

ROBERTA_BASE = {
    "architectures": ["RobertaForMaskedLM"], "attention_probs_dropout_prob": 0.1, "bos_token_id": 0,
    "eos_token_id": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 514,
    "model_type": "roberta", "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1,
    "type_vocab_size": 1, "vocab_size": 50265,
}
ELECTRA_SMALL_DISC = {
    "architectures": ["ElectraForPreTraining"], "attention_probs_dropout_prob": 0.1, "embedding_size": 128,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 256, "initializer_range": 0.02,
    "intermediate_size": 1024, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "electra",
    "num_attention_heads": 4, "num_hidden_layers": 12, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 30522,
}
ALBERT_BASE_V2 = {
    "architectures": ["AlbertForMaskedLM"], "embedding_size": 128, "hidden_size": 768, "intermediate_size": 3072,
    "max_position_embeddings": 512, "model_type": "albert", "num_attention_heads": 12, "num_hidden_groups": 1,
    "num_hidden_layers": 12, "inner_group_num": 1, "type_vocab_size": 2, "vocab_size": 30000,
}


def _real(model_cls, config_dict):
    import transformers

    config = transformers.AutoConfig.for_model(**config_dict)
    model = getattr(transformers, model_cls)(config)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("cfg", [ROBERTA_BASE, ELECTRA_SMALL_DISC, ALBERT_BASE_V2], ids=["roberta", "electra", "albert"])
def test_reference_configs_equal_real_models(cfg):
    assert count_parameters(cfg).total == _real(cfg["architectures"][0], cfg)


@pytest.mark.parametrize("arch", ["BertModel", "BertForMaskedLM", "BertForQuestionAnswering", "BertForPreTraining",
                                  "AlbertModel", "AlbertForPreTraining", "RobertaForQuestionAnswering",
                                  "ElectraForMaskedLM", "ElectraForSequenceClassification"])
def test_heads_equal_real_models(arch):
    mt = arch.split("For")[0].replace("Model", "").lower()
    cfg = dict(model_type=mt, vocab_size=97, hidden_size=24, num_hidden_layers=3, num_attention_heads=2,
               intermediate_size=40, max_position_embeddings=33, architectures=[arch])
    if mt in ("albert", "electra"):
        cfg["embedding_size"] = 8
    assert count_parameters(cfg).total == _real(arch, cfg)


def test_tiny_fixture_models_and_minilm(tiny_models, minilm_dir):
    import transformers

    for folder in [*tiny_models.values(), minilm_dir]:
        cfg = json.loads((folder / "config.json").read_text())
        model = getattr(transformers, cfg["architectures"][0]).from_pretrained(str(folder))
        assert count_parameters(cfg).total == sum(p.numel() for p in model.parameters()), folder.name


def test_minilm_exact():
    cfg = {"model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
           "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512,
           "type_vocab_size": 2, "architectures": ["BertModel"]}
    assert count_parameters(cfg).total == 22_713_216


def test_albert_factorization_and_sharing():
    pc = count_parameters(ALBERT_BASE_V2)
    fact = pc.notes["factorized_embedding"]
    assert fact["factorized"] == 30000 * 128 + 128 * 768
    assert fact["unfactorized"] == 30000 * 768
    assert fact["saved"] == 30000 * 768 - (30000 * 128 + 128 * 768)
    share = pc.notes["sharing"]
    assert share["stored_layer_params"] == pc.per_layer
    assert share["unshared_layer_params"] == 12 * pc.per_layer
    assert share["saved"] == 11 * pc.per_layer == 11 * 7_087_872


def test_electra_projection():
    pc = count_parameters(ELECTRA_SMALL_DISC)
    assert pc.notes["embedding_projection"]["params"] == 128 * 256 + 256


def test_unknown_model_type():
    with pytest.raises(ValueError, match="not gpt2"):
        count_parameters({"model_type": "gpt2"})


def test_grouped_fields_order():
    groups = dict(grouped_fields(ROBERTA_BASE))
    assert list(groups) == ["architecture", "sizes", "tokens", "dropout"]
    assert ("max_position_embeddings", 514) in groups["sizes"]
    assert ("layer_norm_eps", 1e-05) in groups["dropout"]


def test_token_limit_one_rule_for_dicts_and_config_objects():
    from types import SimpleNamespace

    from bertcli.limits import ROBERTA_TYPES, position_limit, token_limit

    for model_type in ROBERTA_TYPES:  # position ids start after the padding index: 514 positions, 512 tokens
        config = {"model_type": model_type, "max_position_embeddings": 514}
        assert position_limit(config) == 512
        assert position_limit(SimpleNamespace(**config)) == 512  # a transformers config object reads the same
    bert = {"model_type": "bert", "max_position_embeddings": 512}
    assert position_limit(bert) == 512
    assert token_limit(bert, 128) == 128 and token_limit(bert, 1024) == 512  # the smaller of the two
    assert token_limit(bert, None) == 512 and token_limit(bert, 0) == 512  # a tokenizer without a limit
    assert token_limit({"model_type": "bert"}, 256) == 256  # a config without positions
    assert token_limit({}, None) is None and position_limit({"max_position_embeddings": "512"}) is None
