"""Model resolution and the hub cache: one place that turns what a user typed into files on disk.

A model reference is one of:

1. an alias (``bert``, ``albert``, ``roberta``, ``electra``, ``electra-generator``, ``spanbert``, ``spanbert-qa``,
   ``distilbert``, ``xlm-roberta``, ``deberta-v3``, ``modernbert``);
2. a hub repo id (``org/name`` or a legacy ``name``), optionally ``@revision``, looked up in the standard
   Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE`` / ``--cache-dir``) and downloaded through huggingface_hub
   when missing and online;
3. a local folder (config.json, tokenizer files, weights);
4. a single tokenizer file (``spiece.model``, ``vocab.txt``, ``tokenizer.json``, ``vocab.json`` with
   ``merges.txt`` beside it) or a folder holding only tokenizer files.

Nothing here imports torch or transformers. Hub access goes only through huggingface_hub, imported lazily.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from bertcli.env import hub_cache_dir, is_offline
from bertcli.errors import ModelFileError, ModelNotFoundError, OfflineError, UsageError
from bertcli.limits import ROBERTA_TYPES


@dataclass(frozen=True)
class Alias:
    name: str
    repo_id: str
    family: str
    description: str
    legacy_ids: tuple[str, ...] = ()


ALIASES: dict[str, Alias] = {
    a.name: a
    for a in (
        Alias("bert", "google-bert/bert-base-uncased", "BERT", "BERT base, uncased (WordPiece)", ("bert-base-uncased",)),
        Alias("albert", "albert/albert-base-v2", "ALBERT", "ALBERT base v2 (SentencePiece)", ("albert-base-v2",)),
        Alias("roberta", "FacebookAI/roberta-base", "RoBERTa", "RoBERTa base (byte-level BPE)", ("roberta-base",)),
        Alias("electra", "google/electra-small-discriminator", "ELECTRA", "ELECTRA small discriminator"),
        Alias("electra-generator", "google/electra-small-generator", "ELECTRA", "ELECTRA small generator (masked LM)"),
        Alias("spanbert", "SpanBERT/spanbert-base-cased", "SpanBERT", "SpanBERT base, cased (no MLM head)"),
        Alias("spanbert-qa", "mrm8488/spanbert-base-finetuned-squadv2", "SpanBERT", "SpanBERT fine-tuned on SQuAD 2.0"),
        Alias("distilbert", "distilbert/distilbert-base-uncased", "DistilBERT",
              "DistilBERT base, uncased (distilled, 6 layers)", ("distilbert-base-uncased",)),
        Alias("xlm-roberta", "FacebookAI/xlm-roberta-base", "XLM-RoBERTa",
              "XLM-RoBERTa base (100 languages, SentencePiece)", ("xlm-roberta-base",)),
        Alias("deberta-v3", "microsoft/deberta-v3-base", "DeBERTa", "DeBERTa-v3 base (SentencePiece, 128k)"),
        Alias("modernbert", "answerdotai/ModernBERT-base", "ModernBERT", "ModernBERT base (BPE, 8,192 tokens)"),
    )
}

#: Legacy hub ids (pre-namespacing) mapped to their canonical ids, so both hit the same cache entry.
LEGACY_IDS: dict[str, str] = {legacy: a.repo_id for a in ALIASES.values() for legacy in a.legacy_ids}

TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "sentencepiece.bpe.model", "spm.model", "vocab.txt", "vocab.json")

_REPO_ID_RE = re.compile(r"^(?:[A-Za-z0-9][\w.\-]*/)?[A-Za-z0-9][\w.\-]*$")


@dataclass
class ResolvedModel:
    """A model reference resolved to files on disk."""

    ref: str
    source: str  # "folder" | "file" | "hub"
    path: Path  # the folder holding the files (snapshot folder for hub models)
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None
    alias: str | None = None
    tokenizer_file: Path | None = None  # set when the user named one tokenizer file
    files: list[str] = field(default_factory=list)

    @property
    def display_name(self) -> str:
        if self.repo_id:
            return self.repo_id + (f"@{self.revision}" if self.revision and self.revision != "main" else "")
        return self.ref

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def has_config(self) -> bool:
        return self.tokenizer_file is None and self.has("config.json")

    @cached_property
    def config(self) -> dict[str, Any]:
        """config.json as a dict ({} when the reference is a bare tokenizer).

        A config without ``model_type`` (early checkpoints such as SpanBERT/spanbert-base-cased) gets one from
        the model's name where the name says it, as transformers 4 did (transformers 5 refuses such a config);
        `inferred_model_type` then tells, and loaders pass this config explicitly.
        """
        if not self.has_config:
            return {}
        data = read_config_file(self.file("config.json"))
        if not data.get("model_type"):
            guess = model_type_from_name(self.repo_id, self.alias, None if self.repo_id else self.path.name)
            if guess:
                data["model_type"] = guess
                self._inferred_model_type = guess
        return data

    @property
    def inferred_model_type(self) -> str | None:
        """The model_type taken from the name because config.json has none (else None)."""
        _ = self.config
        return getattr(self, "_inferred_model_type", None)

    @property
    def model_type(self) -> str | None:
        return self.config.get("model_type")

    @property
    def family(self) -> str:
        """BERT / ALBERT / RoBERTa / ELECTRA / SpanBERT / other, from the config (or the tokenizer alone)."""
        return detect_family(self.config, name_hints=[self.repo_id or "", str(self.path), self.alias or ""],
                             tokenizer_kind=None if self.config else self.tokenizer_kind)

    @cached_property
    def tokenizer_kind(self) -> str | None:
        return tokenizer_kind(self)

    def weight_files(self) -> list[str]:
        return sorted(f for f in self.files if f.endswith((".safetensors", ".bin")) and "/" not in f)


# ---------------------------------------------------------------------------------------------------------
# which tokenizer file a model has, and its kind (from the files alone: no tokenizers library)

#: Legacy tokenizer file → the kind of tokenizer it defines.
LEGACY_KINDS = {
    "spiece.model": "SentencePiece",
    "sentencepiece.bpe.model": "SentencePiece",
    "spm.model": "SentencePiece",  # DeBERTa-v2/v3
    "vocab.txt": "WordPiece",
    "vocab.json": "byte-level BPE",
}


def tokenizer_source(model: ResolvedModel) -> tuple[str, Path]:
    """(kind of source, file) — ``tokenizer.json`` preferred, else the legacy file that defines the vocab."""
    if model.tokenizer_file is not None:
        name = model.tokenizer_file.name
        if name == "tokenizer.json":
            return "tokenizer.json", model.tokenizer_file
        known = name in ("sentencepiece.bpe.model", "spm.model")
        return ("spiece.model" if name.endswith(".model") and not known else name), model.tokenizer_file
    if model.has("tokenizer.json"):
        return "tokenizer.json", model.file("tokenizer.json")
    for name in ("spiece.model", "sentencepiece.bpe.model", "spm.model", "vocab.txt", "vocab.json"):
        if model.has(name):
            if name == "vocab.json" and not model.has("merges.txt"):
                continue
            return name, model.file(name)
    raise ModelFileError(
        f"{model.display_name} has no tokenizer files",
        hint="expected tokenizer.json, spiece.model, vocab.txt or vocab.json + merges.txt",
    )


def tokenizer_kind(model: ResolvedModel) -> str | None:
    """WordPiece / SentencePiece / byte-level BPE / BPE, from the files (None when there is no tokenizer)."""
    try:
        source, path = tokenizer_source(model)
    except ModelFileError:
        return None
    if source != "tokenizer.json":
        return LEGACY_KINDS.get(source)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return kind_from_tokenizer_json(data) if isinstance(data, dict) else None


def kind_from_tokenizer_json(data: dict) -> str:
    model = data.get("model")
    model_type = model.get("type") if isinstance(model, dict) else None
    if model_type == "WordPiece":
        return "WordPiece"
    if model_type == "Unigram":
        return "SentencePiece"
    if model_type == "BPE":
        blob = json.dumps(data.get("pre_tokenizer")) + json.dumps(data.get("decoder"))
        return "byte-level BPE" if "ByteLevel" in blob else "BPE"
    return model_type or "unknown"


def read_config_file(path: Path) -> dict[str, Any]:
    """Read config.json; a clear error when it is not valid JSON or not an object."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{path} is not UTF-8 text") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} must hold a JSON object, not {type(data).__name__}")
    from bertcli.modelfiles import non_finite_fields

    bad = non_finite_fields(data)
    if bad:  # Python's parser takes NaN/Infinity; nothing downstream can use them, and JSON output could not hold them
        raise ModelFileError(f"{path}: {', '.join(bad[:3])} {'is' if len(bad) == 1 else 'are'} NaN or Infinity, "
                             "which JSON does not allow and no model can compute with")
    return data


FAMILIES = ("BERT", "ALBERT", "RoBERTa", "ELECTRA", "SpanBERT", "DistilBERT", "XLM-RoBERTa", "DeBERTa", "ModernBERT")

#: DeBERTa's model types (v1, and v2 which v3 uses) and ModernBERT's
DEBERTA_TYPES = ("deberta-v2", "deberta")
MODERNBERT_TYPES = ("modernbert",)

#: model types a name may declare, longest first so that "albert", "roberta" and "distilbert" win over "bert"
_NAME_MODEL_TYPES = ("xlm-roberta", "distilbert", "camembert", "deberta-v2", "deberta", "modernbert", "roberta", "albert",
                     "electra", "bert")


def model_type_from_name(*names: str | None) -> str | None:
    """transformers 4's rule for a config without model_type: the longest known type the name contains.

    Only our families are recognized; the first name (repo id, alias, folder name) that says one wins.
    """
    for name in names:
        lowered = (name or "").lower()
        for model_type in _NAME_MODEL_TYPES:
            if model_type in lowered:
                return model_type
    return None


def detect_family(config: dict[str, Any], *, name_hints: list[str] = (), tokenizer_kind: str | None = None) -> str:
    """The variant a config belongs to. SpanBERT uses BERT's architecture, so only its name tells it apart."""
    model_type = (config.get("model_type") or "").lower()
    hints = " ".join([*name_hints, str(config.get("_name_or_path", ""))]).lower()
    if model_type == "bert" and "spanbert" in hints:
        return "SpanBERT"
    mapping = {"bert": "BERT", "albert": "ALBERT", "electra": "ELECTRA", **dict.fromkeys(ROBERTA_TYPES, "RoBERTa"),
               "distilbert": "DistilBERT", "xlm-roberta": "XLM-RoBERTa",
               **dict.fromkeys(DEBERTA_TYPES, "DeBERTa"), **dict.fromkeys(MODERNBERT_TYPES, "ModernBERT")}
    if model_type in mapping:
        return mapping[model_type]
    if not config and tokenizer_kind:
        return {"WordPiece": "BERT", "SentencePiece": "ALBERT", "byte-level BPE": "RoBERTa"}.get(tokenizer_kind, "other")
    return "other"


# ---------------------------------------------------------------------------------------------------------
# cache locations


# ---------------------------------------------------------------------------------------------------------
# parsing references


def split_revision(ref: str) -> tuple[str, str | None]:
    """``org/name@rev`` → (``org/name``, ``rev``)."""
    if "@" in ref and not os.path.exists(ref):
        name, _, rev = ref.rpartition("@")
        if name and rev:
            return name, rev
    return ref, None


def canonical_repo_id(ref: str) -> tuple[str, str | None]:
    """An alias or repo id → (canonical repo id, alias name or None). Validates the id (no path tricks)."""
    alias = ALIASES.get(ref.lower())
    if alias:
        return alias.repo_id, alias.name
    if ref in LEGACY_IDS:
        return LEGACY_IDS[ref], None
    validate_repo_id(ref)
    return ref, None


def validate_repo_id(repo_id: str) -> None:
    """Reject anything that is not ``name`` or ``org/name`` — in particular ``..``, absolute paths, extra slashes."""
    if (
        not _REPO_ID_RE.match(repo_id)
        or ".." in repo_id
        or repo_id.endswith((".", "-"))
        or len(repo_id) > 96
    ):
        raise ModelNotFoundError(
            f"{repo_id!r} is neither an alias, an existing path, nor a valid hub repo id",
            hint=f"aliases: {', '.join(ALIASES)}; repo ids look like org/name",
        )


def looks_like_path(ref: str) -> bool:
    """True for references that can only mean a path (so a missing one is 'no such file', not a hub miss)."""
    return (
        ref.startswith((".", "/", "~"))
        or "\\" in ref
        or ref.count("/") > 1
        or ref.endswith((".json", ".txt", ".model", ".safetensors", ".bin"))
    )


# ---------------------------------------------------------------------------------------------------------
# resolution


def resolve_model(
    ref: str | None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    token: str | bool | None = None,
    download: bool = True,
    on_download=None,
    progress=None,
) -> ResolvedModel:
    """Resolve a model reference to files on disk (see the module docstring for the forms accepted).

    A hub model missing from the cache is downloaded through huggingface_hub unless offline; offline, the
    error names the exact command to run. ``on_download`` receives one-line notices; ``progress`` (a
    `bertcli.hub.DownloadProgress`) reports the transfer.
    """
    if ref is None or not str(ref).strip():
        raise UsageError("no model given: pass --model/-m (or set BERTCLI_MODEL)", hint=f"aliases: {', '.join(ALIASES)}")
    ref = str(ref).strip()
    path = Path(ref).expanduser()
    if path.exists():
        return _resolve_local(ref, path)
    if looks_like_path(ref):
        raise ModelNotFoundError(f"no such file or folder: {ref}")
    name, rev_in_ref = split_revision(ref)
    if revision and rev_in_ref and revision != rev_in_ref:
        raise UsageError(f"two revisions given: {ref!r} and --revision {revision}")
    revision = revision or rev_in_ref
    repo_id, alias = canonical_repo_id(name)
    return _resolve_hub(ref, repo_id, alias, revision=revision, cache_dir=cache_dir, offline=offline,
                        token=token, download=download, on_download=on_download,
                        progress=progress)


def _list_files(folder: Path) -> list[str]:
    files = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.is_file():
            files.append(rel.as_posix())
    return files


def _resolve_local(ref: str, path: Path) -> ResolvedModel:
    path = path.resolve()
    if path.is_file():
        name = path.name
        if name == "config.json":
            return _resolve_local(ref, path.parent)
        if name == "merges.txt":
            name, path = "vocab.json", path.parent / "vocab.json"
        if name.endswith(".model") or name in ("vocab.txt", "tokenizer.json", "vocab.json"):
            if name == "vocab.json" and not (path.parent / "merges.txt").is_file():
                raise ModelFileError(f"{path} needs merges.txt beside it (byte-level BPE tokenizer)")
            return ResolvedModel(ref=ref, source="file", path=path.parent, tokenizer_file=path,
                                 files=[name] + (["merges.txt"] if name == "vocab.json" else []))
        raise ModelFileError(
            f"{path} is not a model folder or tokenizer file",
            hint="give a folder with config.json, or spiece.model / vocab.txt / tokenizer.json / vocab.json",
        )
    if not path.is_dir():
        raise ModelNotFoundError(f"no such file or folder: {ref}")
    try:
        files = _list_files(path)
    except OSError as exc:
        raise ModelFileError(f"cannot read folder {path}: {exc.strerror or exc}") from exc
    top = {f for f in files if "/" not in f}
    if "config.json" not in top and not top.intersection(TOKENIZER_FILES):
        raise ModelFileError(
            f"{path} holds no config.json and no tokenizer files",
            hint="expected config.json, tokenizer.json, spiece.model, vocab.txt or vocab.json + merges.txt",
        )
    return ResolvedModel(ref=ref, source="folder", path=path, files=files)


def lookup_cached_snapshot(repo_id: str, *, revision: str | None = None, cache_dir=None) -> Path | None:
    """The snapshot folder of a cached repo revision holding what a run needs, or None. Never touches the network."""
    from bertcli import hub

    return hub.cached_snapshot(repo_id, revision=revision, cache_dir=cache_dir)


def _resolve_hub(ref, repo_id, alias, *, revision, cache_dir, offline, token, download, on_download,
                 progress=None) -> ResolvedModel:
    from bertcli import hub

    folder = lookup_cached_snapshot(repo_id, revision=revision, cache_dir=cache_dir)
    if folder is None and (is_offline(offline) or not download):
        folder = hub.cached_snapshot(repo_id, revision=revision, cache_dir=cache_dir, allow_partial=True)
    if folder is None:
        if is_offline(offline) or not download:
            if "/" not in repo_id and alias is None and repo_id not in LEGACY_IDS.values():
                raise ModelNotFoundError(
                    f"{repo_id!r} is not an alias, a path, or a cached hub model",
                    hint=f"aliases: {', '.join(ALIASES)}; hub ids look like org/name",
                )
            raise OfflineError(
                f"{repo_id}{'@' + revision if revision else ''} is not in the cache ({hub_cache_dir(cache_dir)}) "
                "and offline mode is on",
                hint=hub.hub_hint(repo_id, revision),
            )
        if on_download:
            on_download(f"{repo_id} is not cached: downloading it into {hub_cache_dir(cache_dir)}")
        folder = hub.download_for_run(repo_id, revision=revision, cache_dir=cache_dir, token=token,
                                     progress=progress, notify=on_download)
    commit = folder.name if len(folder.name) == 40 else None
    files = _list_files(folder)
    if not files:
        raise ModelFileError(f"the cached snapshot of {repo_id} is empty ({folder})", hint=hub.hub_hint(repo_id, revision))
    return ResolvedModel(ref=ref, source="hub", path=folder, repo_id=repo_id, revision=revision or "main",
                         commit=commit, alias=alias, files=files)
