"""bertcli.inspect: family, tokenizer, capabilities and tensor totals from the files — checked against the
models loaded with transformers in the test.

What is compared: the file's parameters (tied tensors once, buffers excluded) equal
``sum(p.numel() for p in model.parameters())`` (which counts a shared tensor once) and
`bertcli.config.count_parameters`; adding the tied copies that save_pretrained leaves out gives the sum of
``numel`` over ``model.state_dict()`` (which lists a tied tensor under both names), and the names match.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from bertcli.config import count_parameters
from bertcli.errors import ModelFileError
from bertcli.inspect import inspect_model
from bertcli.resolve import resolve_model

# name → (family, tokenizer kind, tokenizer source, available commands, parameters, state_dict numel)
EXPECTED = {
    "bert": ("BERT", "WordPiece", "vocab.txt", ["tokenize", "embed", "fill-mask"], 42_232, 62_032),
    "bert_fast": ("BERT", "WordPiece", "tokenizer.json", ["tokenize", "embed", "fill-mask"], 42_232, 62_032),
    "bert_qa": ("BERT", "WordPiece", "vocab.txt", ["tokenize", "embed", "qa"], 40_578, 40_578),
    "bert_base_only": ("BERT", "WordPiece", "vocab.txt", ["tokenize", "embed"], 41_568, 41_568),
    "albert": ("ALBERT", "SentencePiece", "spiece.model", ["tokenize", "embed", "fill-mask"], 18_407, 25_054),
    "roberta": ("RoBERTa", "byte-level BPE", "vocab.json", ["tokenize", "embed", "fill-mask"], 48_864, 75_264),
    "electra": ("ELECTRA", "WordPiece", "vocab.txt", ["tokenize", "embed", "detect"], 30_433, 30_433),
    "electra_generator": ("ELECTRA", "WordPiece", "vocab.txt", ["tokenize", "embed", "fill-mask"], 30_504, 40_104),
    "minilm": ("BERT", "WordPiece", "tokenizer.json", ["tokenize", "embed"], 22_713_216, 22_713_216),
}


@pytest.fixture(scope="module")
def folders(tiny_models, minilm_dir) -> dict[str, Path]:
    return {**tiny_models, "minilm": minilm_dir}


def _available(ins) -> list[str]:
    return [c.command for c in ins.capabilities if c.available]


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


@pytest.mark.parametrize("name", list(EXPECTED))
def test_family_tokenizer_capabilities_and_totals_match_the_loaded_model(folders, name):
    import transformers

    family, kind, source, available, params, state_params = EXPECTED[name]
    folder = folders[name]
    ins = inspect_model(resolve_model(str(folder)))
    assert (ins.family, ins.tokenizer["kind"], ins.tokenizer["source"]) == (family, kind, source)
    assert _available(ins) == available
    assert (ins.parameters, ins.state_dict_parameters) == (params, state_params)

    config = json.loads((folder / "config.json").read_text())
    model = getattr(transformers, config["architectures"][0]).from_pretrained(str(folder))
    state = model.state_dict()
    assert ins.parameters == sum(p.numel() for p in model.parameters()) == count_parameters(config).total
    assert ins.state_dict_parameters == sum(v.numel() for v in state.values())
    stored = {t.name for t in ins.tensors if not t.buffer}
    assert set(state) == stored | {t.name for t in ins.tied}
    assert ins.as_record()["weights"]["matches_config"] is True


@pytest.mark.parametrize("name", list(EXPECTED))
def test_special_token_ids_equal_transformers(folders, name):
    import transformers

    ins = inspect_model(resolve_model(str(folders[name])))
    tok = transformers.AutoTokenizer.from_pretrained(str(folders[name]))
    specials = ins.tokenizer["special_tokens"]
    assert {"cls_token", "sep_token", "pad_token", "unk_token", "mask_token"} <= set(specials)
    for role, entry in specials.items():
        assert getattr(tok, role) == entry["token"], role
        assert tok.convert_tokens_to_ids(entry["token"]) == entry["id"], role


def test_minilm_summary_record(minilm_dir):
    rec = inspect_model(resolve_model(str(minilm_dir))).as_record()
    assert rec["architectures"] == ["BertModel"]
    assert rec["tokenizer"]["special_tokens"] == {
        "cls_token": {"token": "[CLS]", "id": 101}, "sep_token": {"token": "[SEP]", "id": 102},
        "pad_token": {"token": "[PAD]", "id": 0}, "unk_token": {"token": "[UNK]", "id": 100},
        "mask_token": {"token": "[MASK]", "id": 103},
    }
    assert rec["tokenizer"]["files"] == ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]
    assert (rec["max_positions"], rec["token_types"], rec["uses_token_types"]) == (512, 2, True)
    w = rec["weights"]
    assert w["files"] == [{"name": "model.safetensors", "format": "safetensors",
                           "size": (minilm_dir / "model.safetensors").stat().st_size, "read": True}]
    assert (w["format"], w["dtype"], w["tensors"], w["buffers"]) == ("safetensors", "float32", 103, ["embeddings.position_ids"])
    assert [(m["module"], m["parameters"]) for m in w["modules"]] == [
        ("embeddings", 11_918_592), *[(f"encoder layer {i}", 1_774_464) for i in range(6)], ("pooler", 147_840),
        ("buffers", 0),
    ]
    caps = {c["command"]: c for c in rec["capabilities"]}
    assert caps["embed"]["reason"] == "encoder weights: embeddings + 6 stored layer(s), with pooler"
    assert caps["fill-mask"] == {"command": "fill-mask", "available": False,
                                 "reason": "no masked-LM head in the weights (cls.predictions.* absent)"}
    assert rec["notes"] == [] and rec["missing_packages"] == []


def test_albert_shared_group_and_factorized_embedding(tiny_albert):
    ins = inspect_model(resolve_model(str(tiny_albert)))
    assert [(g.name, len(g.tensors), g.parameters) for g in ins.groups] == [
        ("embeddings", 5, 8_368), ("embedding projection E→H", 2, 544), ("shared layer group 0 · layer 0", 16, 8_544),
        ("head: masked LM", 5, 951),
    ]
    words = next(t for t in ins.tensors if t.name == "albert.embeddings.word_embeddings.weight")
    proj = next(t for t in ins.tensors if t.name == "albert.encoder.embedding_hidden_mapping_in.weight")
    assert (words.shape, proj.shape) == ((391, 16), (32, 16))  # V×E, then E→H
    w = ins.as_record()["weights"]
    assert w["factorized_embedding"] == {"V": 391, "E": 16, "H": 32, "factorized": 6_768, "unfactorized": 12_512,
                                         "saved": 5_744}
    assert w["sharing"]["num_hidden_layers"] == 2 and w["sharing"]["stored_layer_params"] == 8_544
    assert [t.as_record() for t in ins.tied] == [
        {"name": "predictions.decoder.weight", "tied_to": "albert.embeddings.word_embeddings.weight", "parameters": 6_256},
        {"name": "predictions.decoder.bias", "tied_to": "predictions.bias", "parameters": 391},
    ]


def test_electra_discriminator_has_no_fill_mask(tiny_electra):
    ins = inspect_model(resolve_model(str(tiny_electra)))
    assert ins.capability("fill-mask").reason.startswith("an ELECTRA discriminator has no masked-LM head")
    assert ins.capability("detect").available
    assert ins.capability("qa").reason == "no question-answering head in the weights (qa_outputs.* absent)"


def test_spanbert_base_without_mlm_head(tiny_bert_base_only, tmp_path):
    folder = _copy(tiny_bert_base_only, tmp_path / "spanbert-base-cased")
    config = json.loads((folder / "config.json").read_text())
    del config["architectures"]
    (folder / "config.json").write_text(json.dumps(config))
    ins = inspect_model(resolve_model(str(folder)))
    assert ins.family == "SpanBERT"
    assert _available(ins) == ["tokenize", "embed"]
    assert ins.capability("fill-mask").reason == (
        "no masked-LM head in the weights (cls.predictions.* absent); SpanBERT base ships its encoder only")


def test_declared_head_missing_from_weights(tiny_bert_base_only, tmp_path):
    folder = _copy(tiny_bert_base_only, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["BertForMaskedLM"]
    (folder / "config.json").write_text(json.dumps(config))
    ins = inspect_model(resolve_model(str(folder)))
    assert not ins.capability("fill-mask").available
    assert ins.capability("fill-mask").reason == (
        "no masked-LM head in the weights (cls.predictions.* absent), although config.json declares "
        "BertForMaskedLM: transformers would initialise it randomly")
    assert ins.notes == ["the weights hold 41,568 parameters but config arithmetic for BertForMaskedLM gives 42,232: "
                         "the checkpoint's heads differ from what config.json declares"]


# ---------------------------------------------------------------------------------------------------------
# broken folders


def test_truncated_safetensors(tiny_bert_base_only, tmp_path):
    folder = _copy(tiny_bert_base_only, tmp_path / "m")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match=r"^model\.safetensors is truncated: tensor '[\w.]+' ends at byte "
                                              r"[\d,]+ of the data but the file holds only [\d,]+; the download"):
        inspect_model(resolve_model(str(folder)))


def test_corrupt_header(tiny_bert_base_only, tmp_path):
    folder = _copy(tiny_bert_base_only, tmp_path / "m")
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:20] = b"garbage!!!!!"
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"^model\.safetensors has a corrupt header \(not the JSON"):
        inspect_model(resolve_model(str(folder)))


def test_config_without_model_type(tiny_bert, tiny_bert_base_only, tmp_path):
    for src, name, hint in [
        (tiny_bert, "a", 'add "model_type": "bert" to config.json (its architectures or weight names say bert)'),
        (tiny_bert_base_only, "b", 'add "model_type" (bert, albert, roberta or electra) to config.json'),
    ]:
        folder = _copy(src, tmp_path / name)
        config = json.loads((folder / "config.json").read_text())
        del config["model_type"]
        if name == "b":
            del config["architectures"]
        (folder / "config.json").write_text(json.dumps(config))
        with pytest.raises(ModelFileError) as err:
            inspect_model(resolve_model(str(folder)))
        assert str(err.value) == (f"{folder / 'config.json'} has no model_type, so transformers (and bertcli) cannot "
                                  f"tell which model class reads it; {hint}")


def test_bare_spiece_model_is_a_tokenizer_only(tiny_albert, tmp_path):
    (tmp_path / "tok").mkdir()
    shutil.copy(tiny_albert / "spiece.model", tmp_path / "tok" / "spiece.model")
    ins = inspect_model(resolve_model(str(tmp_path / "tok")))
    assert (ins.family, ins.tokenizer["kind"], ins.weight_files) == ("ALBERT", "SentencePiece", [])
    assert ins.tokenizer["special_tokens"]["mask_token"] == {"token": "[MASK]", "id": 4}
    assert _available(ins) == ["tokenize"]
    assert ins.capability("embed").reason == "no config.json: this is a tokenizer only"


@pytest.mark.parametrize(("hidden", "package"), [(("sentencepiece",), "sentencepiece"),
                                                  (("sentencepiece", "google.protobuf"), "sentencepiece and protobuf")])
def test_missing_sentencepiece_is_named_with_install(tiny_albert, monkeypatch, hidden, package):
    for module in hidden:
        monkeypatch.setitem(sys.modules, module, None)
    ins = inspect_model(resolve_model(str(tiny_albert / "spiece.model")))
    assert ins.missing_packages == [{"package": package, "needed_for": "the SentencePiece tokenizer (spiece.model)",
                                     "install": "pip install sentencepiece protobuf"}]
    assert ins.tokenizer["special_tokens"] == {}
    assert ins.capability("tokenize").available is False
    assert ins.capability("tokenize").reason == f"spiece.model needs {package}: pip install sentencepiece protobuf"


@pytest.fixture(scope="module")
def pickle_folder(tiny_bert, tmp_path_factory) -> Path:
    """tiny_bert with its weights as pytorch_model.bin (state_dict with the tied decoder) instead of safetensors."""
    import torch
    import transformers

    folder = tmp_path_factory.mktemp("pickle") / "m"
    folder.mkdir()
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        shutil.copy(tiny_bert / name, folder / name)
    model = transformers.BertForMaskedLM.from_pretrained(str(tiny_bert))
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


def test_pickle_only_not_read_without_allow_pickle(pickle_folder):
    ins = inspect_model(resolve_model(str(pickle_folder)))
    assert [(f.name, f.format, f.read) for f in ins.weight_files] == [("pytorch_model.bin", "pickle", False)]
    assert ins.parameters is None and ins.tensors == []
    assert _available(ins) == ["tokenize"]  # the model commands run safetensors only
    assert ins.capability("fill-mask").reason == (
        "config declares BertForMaskedLM (weights not read: pickle; inspect --allow-pickle reads them); but the "
        "weights are pickle only, and bertcli runs safetensors (convert them once with transformers' save_pretrained)")
    assert ins.notes == ["pytorch_model.bin: pickle weights not read (pass --allow-pickle); capabilities below come "
                         "from config.json alone"]


def test_pickle_with_allow_pickle_reconciles_ties(pickle_folder):
    ins = inspect_model(resolve_model(str(pickle_folder)), allow_pickle=True)
    assert ins.weight_files[0].read
    # torch.save kept the tied decoder (shared storage): read once, reported as tied, as from safetensors.
    assert (ins.parameters, ins.state_dict_parameters) == (42_232, 62_032)
    assert [t.name for t in ins.tied] == ["cls.predictions.decoder.weight", "cls.predictions.decoder.bias"]
    assert _available(ins) == ["tokenize"]  # what the weights hold is told, but running needs safetensors
    assert ins.capability("fill-mask").reason.startswith("masked-LM head in the weights")
    assert "pickle only" in ins.capability("embed").reason
