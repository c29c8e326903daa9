"""Model references: aliases, hub ids in the HF cache, folders, single tokenizer files — and their errors."""

from __future__ import annotations

import json
import shutil

import pytest

from bertcli.errors import ModelFileError, ModelNotFoundError, OfflineError, UsageError
from bertcli.resolve import ALIASES, hub_cache_dir, resolve_model, split_revision, validate_repo_id
from tests.fixtures.tiny_models import copy_without_model_type


def make_cached_repo(cache, repo_id, src, commit="a" * 40, ref="main"):
    """Lay out a repo in the standard HF cache layout (models--org--name/{refs,snapshots,blobs})."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file():
            shutil.copy(f, snap / f.name)
    (repo / "refs").mkdir()
    (repo / "refs" / ref).write_text(commit)
    return snap


def test_aliases_match_the_shared_notes():
    assert {k: a.repo_id for k, a in ALIASES.items()} == {
        "bert": "google-bert/bert-base-uncased",
        "albert": "albert/albert-base-v2",
        "roberta": "FacebookAI/roberta-base",
        "electra": "google/electra-small-discriminator",
        "electra-generator": "google/electra-small-generator",
        "spanbert": "SpanBERT/spanbert-base-cased",
        "spanbert-qa": "mrm8488/spanbert-base-finetuned-squadv2",
        "distilbert": "distilbert/distilbert-base-uncased",
        "xlm-roberta": "FacebookAI/xlm-roberta-base",
        "deberta-v3": "microsoft/deberta-v3-base",
        "modernbert": "answerdotai/ModernBERT-base",
    }


def test_local_folder(minilm_dir):
    r = resolve_model(str(minilm_dir))
    assert r.source == "folder"
    assert r.family == "BERT"
    assert r.config["hidden_size"] == 384
    assert "model.safetensors" in r.files and "1_Pooling/config.json" in r.files
    assert r.tokenizer_kind == "WordPiece"


@pytest.mark.parametrize("name,family,kind", [
    ("bert", "BERT", "WordPiece"), ("albert", "ALBERT", "SentencePiece"),
    ("roberta", "RoBERTa", "byte-level BPE"), ("electra", "ELECTRA", "WordPiece"),
])
def test_tiny_families(tiny_models, name, family, kind):
    r = resolve_model(str(tiny_models[name]))
    assert (r.family, r.tokenizer_kind) == (family, kind)


def test_single_tokenizer_files(tiny_albert, tiny_roberta, minilm_dir):
    assert resolve_model(str(tiny_albert / "spiece.model")).tokenizer_file.name == "spiece.model"
    assert resolve_model(str(minilm_dir / "vocab.txt")).tokenizer_kind == "WordPiece"
    assert resolve_model(str(minilm_dir / "tokenizer.json")).config == {}
    r = resolve_model(str(tiny_roberta / "merges.txt"))  # either BPE file names the pair
    assert r.tokenizer_file.name == "vocab.json" and r.tokenizer_kind == "byte-level BPE"


def test_folder_with_only_vocab_and_merges(tiny_roberta, tmp_path):
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(tiny_roberta / name, tmp_path / name)
    r = resolve_model(str(tmp_path))
    assert r.has_config is False and r.tokenizer_kind == "byte-level BPE" and r.family == "RoBERTa"


def test_hub_id_from_cache(tiny_bert, tmp_path):
    cache = tmp_path / "hub"
    snap = make_cached_repo(cache, "org/tiny", tiny_bert)
    r = resolve_model("org/tiny", cache_dir=cache, offline=True)
    assert r.source == "hub" and r.path == snap and r.commit == "a" * 40 and r.repo_id == "org/tiny"
    # an alias resolves through the same cache entry
    make_cached_repo(cache, "albert/albert-base-v2", tiny_bert)
    assert resolve_model("albert", cache_dir=cache, offline=True).alias == "albert"
    # the legacy id maps to the canonical one
    assert resolve_model("albert-base-v2", cache_dir=cache, offline=True).repo_id == "albert/albert-base-v2"


def test_hub_revision_from_cache(tiny_bert, tmp_path):
    cache = tmp_path / "hub"
    make_cached_repo(cache, "org/tiny", tiny_bert, commit="b" * 40, ref="v1")
    assert resolve_model("org/tiny@v1", cache_dir=cache, offline=True).commit == "b" * 40
    assert resolve_model("org/tiny", revision="v1", cache_dir=cache, offline=True).revision == "v1"
    with pytest.raises(OfflineError):
        resolve_model("org/tiny", cache_dir=cache, offline=True)  # main is not cached
    with pytest.raises(UsageError):
        resolve_model("org/tiny@v1", revision="v2", cache_dir=cache, offline=True)


def test_hf_hub_cache_env_is_honoured(tiny_bert, tmp_path, monkeypatch):
    make_cached_repo(tmp_path / "elsewhere", "org/tiny", tiny_bert)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert hub_cache_dir() == tmp_path / "elsewhere"
    assert resolve_model("org/tiny", offline=True).source == "hub"


def test_offline_miss_says_what_to_run(tmp_path):
    with pytest.raises(OfflineError) as err:
        resolve_model("roberta", cache_dir=tmp_path, offline=True)
    assert "bertcli download FacebookAI/roberta-base" in str(err.value)


@pytest.mark.parametrize("ref", ["../x", "/no/such/dir", "./missing", "a/b/c"])
def test_missing_paths(ref):
    with pytest.raises(ModelNotFoundError, match="no such file or folder"):
        resolve_model(ref, offline=True)


@pytest.mark.parametrize("bad", ["bad name", "org/..", "org//x", "-x/y", "x" * 100])
def test_bad_repo_ids(bad):
    with pytest.raises(ModelNotFoundError):
        validate_repo_id(bad)


def test_unknown_single_name_offline(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not an alias"):
        resolve_model("nosuchalias", cache_dir=tmp_path, offline=True)


def test_empty_ref():
    with pytest.raises(UsageError):
        resolve_model("  ")


def test_folder_without_model_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelFileError, match="no config.json and no tokenizer files"):
        resolve_model(str(tmp_path))


def test_corrupt_config(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    r = resolve_model(str(tmp_path))
    with pytest.raises(ModelFileError, match="not valid JSON"):
        _ = r.config
    (tmp_path / "config.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ModelFileError, match="JSON object"):
        _ = resolve_model(str(tmp_path)).config


def test_split_revision():
    assert split_revision("org/name@v2") == ("org/name", "v2")
    assert split_revision("org/name") == ("org/name", None)


def test_spanbert_family_from_name(tmp_path, tiny_bert):
    snap = make_cached_repo(tmp_path, "SpanBERT/spanbert-base-cased", tiny_bert)
    assert resolve_model("spanbert", cache_dir=tmp_path, offline=True).family == "SpanBERT"
    assert snap.exists()


@pytest.mark.parametrize(("names", "expected"), [
    (("SpanBERT/spanbert-base-cased",), "bert"),
    (("albert-base-v2",), "albert"),
    (("FacebookAI/roberta-base",), "roberta"),
    (("FacebookAI/xlm-roberta-base",), "xlm-roberta"),
    (("google/electra-small-discriminator",), "electra"),
    (("org/my-model", None, "camembert-local"), "camembert"),
    ((None, "spanbert"), "bert"),
    (("org/my-model", None, "weights"), None),
])
def test_model_type_from_name(names, expected):
    from bertcli.resolve import model_type_from_name

    assert model_type_from_name(*names) == expected


def test_config_without_model_type_is_read_by_its_name(tmp_path, tiny_bert):
    source = copy_without_model_type(tiny_bert, tmp_path / "src")
    make_cached_repo(tmp_path / "hub", "SpanBERT/spanbert-base-cased", source)
    r = resolve_model("spanbert", cache_dir=tmp_path / "hub", offline=True)
    assert (r.model_type, r.inferred_model_type, r.family) == ("bert", "bert", "SpanBERT")
    # a folder is judged by its own name only, never by the folders above it
    plain = resolve_model(str(copy_without_model_type(tiny_bert, tmp_path / "spanbert" / "weights")))
    assert (plain.model_type, plain.inferred_model_type, plain.family) == (None, None, "other")
    named = resolve_model(str(copy_without_model_type(tiny_bert, tmp_path / "my-albert-copy")))
    assert named.inferred_model_type == "albert"
    # a config that has a model_type is never second-guessed
    assert resolve_model(str(tiny_bert)).inferred_model_type is None
