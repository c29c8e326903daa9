"""The tiny models load with transformers' Auto classes and their tokenizers behave like the real ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.tiny_models import BUILDERS, build_tiny_bert, training_corpus

REPO_ROOT = Path(__file__).resolve().parents[1]

EXPECTED = {
    # name: (architecture, files in the folder)
    "bert": ("BertForMaskedLM", {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"}),
    "bert_fast": (
        "BertForMaskedLM",
        {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "tokenizer.json"},
    ),
    "bert_qa": ("BertForQuestionAnswering", {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"}),
    "bert_base_only": ("BertModel", {"config.json", "model.safetensors", "vocab.txt"}),
    "albert": ("AlbertForMaskedLM", {"config.json", "model.safetensors", "spiece.model"}),
    "roberta": ("RobertaForMaskedLM", {"config.json", "model.safetensors", "vocab.json", "merges.txt"}),
    "electra": ("ElectraForPreTraining", {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"}),
    "electra_generator": (
        "ElectraForMaskedLM",
        {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"},
    ),
}


def test_builders_cover_every_expected_model(tiny_models):
    assert set(BUILDERS) == set(EXPECTED) == set(tiny_models)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_folder_loads_with_its_architecture(tiny_models, name):
    import torch
    import transformers
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    folder = tiny_models[name]
    architecture, files = EXPECTED[name]
    assert {p.name for p in folder.iterdir()} == files

    config = AutoConfig.from_pretrained(folder)
    assert config.architectures == [architecture]
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (32, 2, 2)

    model, info = getattr(transformers, architecture).from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"]
    assert not info["unexpected_keys"]

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert len(tokenizer) == config.vocab_size
    encoded = tokenizer("Beijing is a beautiful city", return_tensors="pt")
    assert encoded["input_ids"].shape == (1, 7)
    assert tokenizer.unk_token_id not in encoded["input_ids"][0].tolist()
    with torch.no_grad():
        out = AutoModel.from_pretrained(folder)(**encoded)
    assert out.last_hidden_state.shape == (1, 7, 32)


def test_wordpiece_vocab_layout_and_tokens(tiny_bert):
    from transformers import AutoTokenizer

    vocab = (tiny_bert / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(vocab) == 600
    assert json.loads((tiny_bert / "config.json").read_text())["vocab_size"] == 600

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    encoded = tokenizer("It was a great day")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens == ["[CLS]", "it", "was", "a", "great", "day", "[SEP]"]
    assert encoded["input_ids"] == [vocab.index(t) for t in tokens]
    assert encoded["token_type_ids"] == [0] * 7

    # A word not in the vocabulary splits into '##' continuation pieces.
    pieces = tokenizer.tokenize("epiphany")
    assert len(pieces) > 1 and pieces[0] == "e" and all(p.startswith("##") for p in pieces[1:])
    assert pieces[0] + "".join(p[2:] for p in pieces[1:]) == "epiphany"
    # Lower-cased, CJK characters split one by one, emoji known.
    assert tokenizer.tokenize("BEIJING 北京 😀") == ["beijing", "北", "京", "😀"]


def test_electra_tokenizer_is_the_bert_vocab(tiny_bert, tiny_electra, tiny_electra_generator):
    bert_vocab = (tiny_bert / "vocab.txt").read_bytes()
    assert (tiny_electra / "vocab.txt").read_bytes() == bert_vocab
    assert (tiny_electra_generator / "vocab.txt").read_bytes() == bert_vocab


def test_electra_has_embeddings_projection(tiny_electra, tiny_electra_generator):
    from safetensors import safe_open

    for folder in (tiny_electra, tiny_electra_generator):
        config = json.loads((folder / "config.json").read_text())
        assert (config["embedding_size"], config["hidden_size"]) == (16, 32)
        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            assert f.get_slice("electra.embeddings_project.weight").get_shape() == [32, 16]
            assert f.get_slice("electra.embeddings.word_embeddings.weight").get_shape() == [600, 16]


def test_albert_sentencepiece_model_and_tokens(tiny_albert):
    import sentencepiece as spm
    from transformers import AutoTokenizer

    sp = spm.SentencePieceProcessor(model_file=str(tiny_albert / "spiece.model"))
    assert [sp.id_to_piece(i) for i in range(5)] == ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    assert sp.unk_id() == 1 and sp.pad_id() == 0
    config = json.loads((tiny_albert / "config.json").read_text())
    assert config["vocab_size"] == sp.get_piece_size()
    assert (config["embedding_size"], config["num_hidden_groups"], config["type_vocab_size"]) == (16, 1, 2)

    tokenizer = AutoTokenizer.from_pretrained(tiny_albert)
    encoded = tokenizer("Beijing is a beautiful city")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    # Same shape as albert-base-v2's [2, 6579, 25, 21, 1632, 136, 3]: lower-cased by ALBERT's tokenizer.
    assert tokens == ["[CLS]", "▁beijing", "▁is", "▁a", "▁beautiful", "▁city", "[SEP]"]
    assert encoded["input_ids"] == [2, *(sp.piece_to_id(t) for t in tokens[1:-1]), 3]
    # The spiece.model itself does not lower-case (like ALBERT's): that is the tokenizer's job.
    assert sp.encode("Beijing", out_type=str)[0] != "▁beijing"


def test_albert_shares_one_layer_group(tiny_albert):
    from safetensors import safe_open

    with safe_open(str(tiny_albert / "model.safetensors"), "pt") as f:
        groups = {k.split("albert_layer_groups.")[1].split(".")[0] for k in f.keys() if "albert_layer_groups." in k}
        assert groups == {"0"}
        assert f.get_slice("albert.encoder.embedding_hidden_mapping_in.weight").get_shape() == [32, 16]


def test_roberta_byte_level_bpe(tiny_roberta):
    from transformers import AutoTokenizer

    vocab = json.loads((tiny_roberta / "vocab.json").read_text(encoding="utf-8"))
    first_five = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])[:5]]
    assert first_five == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    assert (tiny_roberta / "merges.txt").read_text(encoding="utf-8").startswith("#version: 0.2\n")
    config = json.loads((tiny_roberta / "config.json").read_text())
    assert config["vocab_size"] == len(vocab)
    assert (config["max_position_embeddings"], config["pad_token_id"], config["bos_token_id"]) == (130, 1, 0)
    assert (config["eos_token_id"], config["type_vocab_size"]) == (2, 1)

    tokenizer = AutoTokenizer.from_pretrained(tiny_roberta)
    encoded = tokenizer("It was a great day")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens == ["<s>", "It", "Ġwas", "Ġa", "Ġgreat", "Ġday", "</s>"]
    assert encoded["input_ids"] == [0, *(vocab[t] for t in tokens[1:-1]), 2]
    # Cased, and bytes outside the vocabulary still encode (no <unk>).
    assert tokenizer.tokenize("it was") == ["it", "Ġwas"]
    assert vocab["<unk>"] not in tokenizer("北京 😀")["input_ids"]


def test_bert_fast_tokenizer_json_has_padding_and_truncation_on(tiny_bert, tiny_bert_fast):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    data = json.loads((tiny_bert_fast / "tokenizer.json").read_text(encoding="utf-8"))
    assert data["padding"]["strategy"] == {"Fixed": 64}
    assert data["padding"]["pad_id"] == 0 and data["padding"]["pad_token"] == "[PAD]"
    assert data["truncation"]["max_length"] == 64
    assert data["model"]["type"] == "WordPiece"

    raw = Tokenizer.from_file(str(tiny_bert_fast / "tokenizer.json")).encode("It was a great day")
    assert len(raw.ids) == 64
    assert raw.tokens[:8] == ["[CLS]", "it", "was", "a", "great", "day", "[SEP]", "[PAD]"]

    # transformers ignores the stored padding for a plain call, and agrees with the legacy vocab.txt folder.
    fast_ids = AutoTokenizer.from_pretrained(tiny_bert_fast)("It was a great day")["input_ids"]
    assert fast_ids == AutoTokenizer.from_pretrained(tiny_bert)("It was a great day")["input_ids"]
    assert fast_ids == raw.ids[:7]


def test_models_are_deterministic(tiny_bert, tmp_path):
    again = build_tiny_bert(tmp_path / "bert")
    for name in ("model.safetensors", "config.json", "vocab.txt"):
        assert (again / name).read_bytes() == (tiny_bert / name).read_bytes()


def test_tokenizer_training_is_deterministic_across_processes(tiny_models, tmp_path):
    # The tokenizers trainers use per-process hash seeds; a fresh process must train the same files.
    script = (
        "import sys; from pathlib import Path; from tests.fixtures import tiny_models as t; "
        "d = Path(sys.argv[1]); t._write_wordpiece(d); (d / 'spiece.model').write_bytes(t._spiece_model()); "
        "v, m = t._bpe_files(); (d / 'bpe').write_text(repr((sorted(v.items()), m)))"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, cwd=REPO_ROOT, timeout=60)
    assert (tmp_path / "vocab.txt").read_bytes() == (tiny_models["bert"] / "vocab.txt").read_bytes()
    assert (tmp_path / "spiece.model").read_bytes() == (tiny_models["albert"] / "spiece.model").read_bytes()
    vocab = json.loads((tiny_models["roberta"] / "vocab.json").read_text(encoding="utf-8"))
    merges = (tiny_models["roberta"] / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]
    assert (tmp_path / "bpe").read_text() == repr((sorted(vocab.items()), merges))


def test_corpus_is_varied():
    corpus = training_corpus()
    assert len(corpus) >= 300
    assert len(set(corpus)) > 0.9 * len(corpus)
    text = "".join(corpus)
    assert all(ch in text for ch in "é北😀ü")


def test_environment_is_offline_and_hermetic(hf_home):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    assert Path(os.environ["HF_HOME"]) == hf_home
    assert not str(hf_home).startswith(str(Path.home() / ".cache"))
    import huggingface_hub.constants as hub

    assert hub.HF_HUB_OFFLINE is True
    assert Path(hub.HF_HUB_CACHE).is_relative_to(hf_home)


def test_minilm_dir(minilm_dir):
    assert (minilm_dir / "config.json").is_file()
    assert (minilm_dir / "tokenizer.json").is_file()
