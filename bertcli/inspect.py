"""What a model is, what it can run, and its weight tensors — from its files alone, without loading it.

`inspect_model` reads config.json, the tokenizer files and the safetensors headers (never the tensor data) and
returns an `Inspection`: family, architectures, tokenizer kind and files, special tokens and their ids, max
positions, token types, weight files/format/dtype/size, the tensors grouped by module with totals checked
against `bertcli.config.count_parameters`, and which bertcli commands can run on the model and why.

No torch and no transformers are imported (pickle weights, read only with ``allow_pickle``, are the exception:
see `bertcli.weights.read_pickle_weights`). Legacy tokenizer files are *not* converted (conversion goes through
transformers): special-token ids are read straight from the vocabulary — ``vocab.txt`` line numbers,
``vocab.json`` entries, ``spiece.model`` pieces (via sentencepiece, when installed) — which are the ids
transformers' tokenizers use for those files.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertcli.errors import ModelFileError
from bertcli.heads import HEAD_SUFFIXES, PAIR_HEAD_TYPES
from bertcli.limits import ROBERTA_TYPES, bert_names
from bertcli.resolve import DEBERTA_TYPES, MODERNBERT_TYPES, ResolvedModel
from bertcli.weights import (
    ModuleGroup,
    TensorInfo,
    TiedWeight,
    group_tensors,
    read_pickle_weights,
    read_safetensors,
    tied_weights,
    weight_format,
)

#: commands inspect reports on, in display order
COMMANDS = ("tokenize", "embed", "fill-mask", "qa", "detect", "classify", "tag", "rerank", "zero-shot", "nsp", "sop")

#: commands that run a head other than their own (`bertcli.heads.HEADS` names each head's own command)
SHARED_HEAD_COMMANDS = {"rerank": "seqcls", "zero-shot": "seqcls"}

#: model types bertcli's runner loads (count_parameters knows them too)
RUNNABLE_TYPES = ("bert", "albert", "electra", *ROBERTA_TYPES, "distilbert", *DEBERTA_TYPES, *MODERNBERT_TYPES)

TOKENIZER_FILE_NAMES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                        "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model",
                        "spm.model")

#: what transformers' tokenizer classes use when no file names a special token (role → token)
DEFAULT_SPECIALS: dict[str, dict[str, str]] = {
    "WordPiece": {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
                  "mask_token": "[MASK]"},
    "SentencePiece": {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "<pad>", "unk_token": "<unk>",
                      "mask_token": "[MASK]", "bos_token": "[CLS]", "eos_token": "[SEP]"},
    "byte-level BPE": {"cls_token": "<s>", "sep_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
                       "mask_token": "<mask>", "bos_token": "<s>", "eos_token": "</s>"},
}
DEFAULT_SPECIALS["xlm-sentencepiece"] = DEFAULT_SPECIALS["byte-level BPE"]
#: DeBERTa-v2/v3's spm.model: [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3 in the pieces; [MASK] comes after them
DEFAULT_SPECIALS["spm.model"] = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
                                 "mask_token": "[MASK]", "bos_token": "[CLS]", "eos_token": "[SEP]"}

INSTALL_SENTENCEPIECE = "pip install sentencepiece protobuf"  # core dependencies; only a broken install lacks them

#: what each weight-derived head looks like in the tensor groups
_HEAD_MODULES = {"mlm": "head: masked LM", "qa": "head: question answering", "rtd": "head: replaced token detection",
                 "seqcls": "head: classifier", "tokcls": "head: classifier", "nsp": "head: next sentence prediction",
                 "sop": "head: sentence order prediction"}
_HEAD_TENSOR_HINT = {"qa": "qa_outputs.*", "rtd": "discriminator_predictions.*", "seqcls": "classifier.*",
                     "tokcls": "classifier.*", "nsp": "cls.seq_relationship.*", "sop": "sop_classifier.*"}
#: each head as capability reasons name it
_HEAD_WHAT = {"mlm": "masked-LM head", "qa": "question-answering head",
              "rtd": "replaced-token-detection head (ELECTRA discriminator)",
              "seqcls": "sequence-classification head", "tokcls": "token-classification head",
              "nsp": "next-sentence-prediction (NSP) head", "sop": "sentence-order-prediction (SOP) head"}
_MLM_TENSORS = {"bert": "cls.predictions.*", **dict.fromkeys(ROBERTA_TYPES, "lm_head.*"), "albert": "predictions.*",
                "electra": "generator_predictions.*", "distilbert": "vocab_projector.*", "modernbert": "decoder.*",
                **dict.fromkeys(DEBERTA_TYPES, "cls.predictions.* or lm_predictions.*")}


@dataclass
class Capability:
    """Whether one bertcli command can run on the model, and why."""

    command: str
    available: bool
    reason: str

    def as_record(self) -> dict:
        return {"command": self.command, "available": self.available, "reason": self.reason}


@dataclass
class WeightFile:
    name: str
    format: str
    size: int
    read: bool
    note: str = ""

    def as_record(self) -> dict:
        return {"name": self.name, "format": self.format, "size": self.size, "read": self.read,
                **({"note": self.note} if self.note else {})}


@dataclass
class Inspection:
    """Everything `inspect_model` found; `as_record` gives the stable JSON form."""

    resolved: ResolvedModel
    family: str
    model_type: str | None
    architectures: list[str]
    tokenizer: dict[str, Any]
    max_positions: int | None
    token_types: int | None
    weight_files: list[WeightFile] = field(default_factory=list)
    tensors: list[TensorInfo] = field(default_factory=list)
    groups: list[ModuleGroup] = field(default_factory=list)
    tied: list[TiedWeight] = field(default_factory=list)
    config_parameters: dict[str, Any] | None = None
    capabilities: list[Capability] = field(default_factory=list)
    missing_packages: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refused: str | None = None  # why the model-running commands refuse this model (a config the weights contradict)

    @property
    def weights_read(self) -> bool:
        return any(f.read for f in self.weight_files)

    @property
    def parameters(self) -> int | None:
        """Parameters stored in the weight files (buffers excluded; tied tensors once) — None if unread."""
        return sum(g.parameters for g in self.groups) if self.weights_read else None

    @property
    def state_dict_parameters(self) -> int | None:
        """numel summed over the model's ``state_dict()``: the file's parameters plus the tied copies."""
        p = self.parameters
        return None if p is None else p + sum(t.numel for t in self.tied)

    @property
    def dtype(self) -> str | None:
        dtypes = sorted({t.dtype for t in self.tensors if not t.buffer})
        if not dtypes:
            return None
        return dtypes[0] if len(dtypes) == 1 else "mixed (" + ", ".join(dtypes) + ")"

    def capability(self, command: str) -> Capability:
        return next(c for c in self.capabilities if c.command == command)

    def as_record(self, *, tensors: list[TensorInfo] | None = None) -> dict[str, Any]:
        r = self.resolved
        cfg = r.config
        record: dict[str, Any] = {
            "model": r.display_name,
            "source": r.source,
            "path": str(r.tokenizer_file or r.path),
            "repo_id": r.repo_id,
            "revision": r.revision,
            "commit": r.commit,
            "family": self.family,
            "model_type": self.model_type,
            "architectures": self.architectures,
            "tokenizer": self.tokenizer,
            "max_positions": self.max_positions,
            "token_types": self.token_types,
            "uses_token_types": bool(self.token_types and self.token_types > 1),
            "weights": {
                "files": [f.as_record() for f in self.weight_files],
                "format": _main_format(self.weight_files),
                "size": sum(f.size for f in self.weight_files),
                "dtype": self.dtype,
                "config_dtype": cfg.get("dtype") or cfg.get("torch_dtype"),
                "tensors": len([t for t in self.tensors if not t.buffer]) if self.weights_read else None,
                "parameters": self.parameters,
                "buffers": [t.name for t in self.tensors if t.buffer],
                "tied": [t.as_record() for t in self.tied],
                "state_dict_parameters": self.state_dict_parameters,
                "config_parameters": (self.config_parameters or {}).get("total"),
                "matches_config": (None if self.parameters is None or not self.config_parameters
                                   else self.parameters == self.config_parameters["total"]),
                "modules": [{"module": g.name, "tensors": len(g.tensors), "parameters": g.parameters}
                            for g in self.groups],
            },
            "capabilities": [c.as_record() for c in self.capabilities],
            "missing_packages": self.missing_packages,
            "notes": self.notes,
        }
        if self.config_parameters:
            for key in ("factorized_embedding", "sharing", "embedding_projection"):
                if key in self.config_parameters:
                    record["weights"][key] = self.config_parameters[key]
        if tensors is not None:
            record["tensors"] = [t.as_record() for t in tensors]
        return record


def _main_format(files: list[WeightFile]) -> str | None:
    read = [f.format for f in files if f.read]
    if read:
        return read[0]
    return files[0].format if files else None


# ---------------------------------------------------------------------------------------------------------
# the one entry point


def inspect_model(resolved: ResolvedModel, *, allow_pickle: bool = False) -> Inspection:
    """Inspect a resolved model from its files (see the module docstring). Raises `ModelFileError` for
    corrupt or truncated weights and for a config.json without ``model_type``."""
    cfg = resolved.config
    if resolved.has_config and not cfg.get("model_type"):
        raise no_model_type_error(resolved)
    model_type = cfg.get("model_type")
    family = resolved.family
    ins = Inspection(
        resolved=resolved,
        family=family,
        model_type=model_type,
        architectures=list(cfg.get("architectures") or []),
        tokenizer={},
        max_positions=cfg.get("max_position_embeddings"),
        token_types=cfg.get("type_vocab_size") if resolved.has_config else None,
    )
    ins.tokenizer = _tokenizer_info(resolved, ins)
    if resolved.has_config:
        _read_weights(resolved, ins, allow_pickle=allow_pickle)
        _config_arithmetic(ins)
    ins.capabilities = _capabilities(ins)
    return ins


def no_model_type_error(resolved: ResolvedModel) -> ModelFileError:
    guess = _guess_model_type(resolved)
    if guess:
        hint = f'add "model_type": "{guess}" to config.json (its architectures or weight names say {guess})'
    else:
        hint = 'add "model_type" (bert, albert, roberta or electra) to config.json'
    return ModelFileError(
        f"{resolved.file('config.json')} has no model_type, so transformers (and bertcli) cannot tell which "
        "model class reads it",
        hint=hint,
    )


def _guess_model_type(resolved: ResolvedModel) -> str | None:
    """bert / albert / roberta / electra / deberta(-v2) / modernbert from ``architectures``, or the weights' name
    prefix (a hint only)."""
    for arch in resolved.config.get("architectures") or []:
        for prefix, mt in (("Albert", "albert"), ("XLMRoberta", "xlm-roberta"), ("Roberta", "roberta"),
                           ("Electra", "electra"), ("DistilBert", "distilbert"), ("DebertaV2", "deberta-v2"),
                           ("Deberta", "deberta"), ("ModernBert", "modernbert"), ("Bert", "bert")):
            if arch.startswith(prefix):
                return mt
    for name in resolved.weight_files():
        if name.endswith(".safetensors"):
            try:
                names = [t.name for t in read_safetensors(resolved.file(name))]
            except ModelFileError:
                return None
            for prefix in ("albert.", "roberta.", "electra.", "distilbert.", "bert."):
                if any(n.startswith(prefix) for n in names):
                    return prefix[:-1]
    return None


# ---------------------------------------------------------------------------------------------------------
# tokenizer


def _tokenizer_info(resolved: ResolvedModel, ins: Inspection) -> dict[str, Any]:
    from bertcli.resolve import tokenizer_source
    from bertcli.tokenizer import _model_max_length, _read_json, _specials_from_files

    try:
        source, path = tokenizer_source(resolved)
    except ModelFileError:
        return {"kind": None, "source": None, "files": [], "special_tokens": {}, "model_max_length": None}
    kind = resolved.tokenizer_kind
    if resolved.tokenizer_file is not None:
        files = [f for f in resolved.files]
        tok_config: dict = {}
    else:
        files = [n for n in TOKENIZER_FILE_NAMES if resolved.has(n)]
        tok_config = _read_json(resolved.file("tokenizer_config.json"))
    explicit = _specials_from_files(resolved, tok_config)
    defaults_key = {"sentencepiece.bpe.model": "xlm-sentencepiece", "spm.model": "spm.model"}.get(source, kind or "")
    lookup = _vocab_lookup(source, path, ins)
    specials: dict[str, dict[str, Any]] = {}
    for role, token in explicit.items():
        specials[role] = {"token": token, "id": lookup(token) if lookup else None}
    for role, token in DEFAULT_SPECIALS.get(defaults_key, {}).items():
        if role in specials or lookup is None:
            continue
        tid = lookup(token)
        if tid is not None:
            specials[role] = {"token": token, "id": tid}
    order = ("cls_token", "sep_token", "pad_token", "unk_token", "mask_token", "bos_token", "eos_token")
    specials = {role: specials[role] for role in order if role in specials}
    return {
        "kind": kind,
        "source": source,
        "files": files,
        "special_tokens": specials,
        "model_max_length": _model_max_length(resolved, tok_config),
    }


def _vocab_lookup(source: str, path: Path, ins: Inspection):
    """token → id from the tokenizer's own files (None when it cannot be read here)."""
    try:
        if source == "tokenizer.json":
            from tokenizers import Tokenizer

            from bertcli.modelfiles import model_files

            with model_files(f"cannot load tokenizer {path}"):
                tok = Tokenizer.from_file(str(path))
            return tok.token_to_id
        if source == "vocab.txt":
            ids: dict[str, int] = {}
            with open(path, encoding="utf-8") as fh:
                for i, line in enumerate(fh):
                    ids.setdefault(line.rstrip("\n"), i)
            return ids.get
        if source == "vocab.json":
            vocab = json.loads(path.read_text(encoding="utf-8"))
            return vocab.get if isinstance(vocab, dict) else None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"cannot read tokenizer file {path}: {exc}") from exc
    if source.endswith(".model"):
        missing = [pkg for pkg, mod in (("sentencepiece", "sentencepiece"), ("protobuf", "google.protobuf"))
                   if not package_available(mod)]
        if missing:
            ins.missing_packages.append({
                "package": " and ".join(missing),
                "needed_for": f"the SentencePiece tokenizer ({path.name})",
                "install": INSTALL_SENTENCEPIECE,
            })
        if "sentencepiece" in missing:
            return None
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor()
        try:
            sp.Load(str(path))
        except (OSError, RuntimeError) as exc:
            raise ModelFileError(f"{path.name} is not a valid SentencePiece model: {str(exc).splitlines()[0]}") from exc

        def lookup(token: str) -> int | None:
            tid = sp.PieceToId(token)
            if sp.IdToPiece(tid) != token:  # DeBERTa-v2/v3 add [MASK] right after the pieces
                return sp.GetPieceSize() if source == "spm.model" and token == "[MASK]" else None
            return tid

        return _fairseq_ids(sp, lookup) if source == "sentencepiece.bpe.model" else lookup
    return None


#: XLM-R's ids for fairseq's own specials; every other piece sits one above its sentencepiece id, <mask> last
_FAIRSEQ_SPECIALS = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}


def _fairseq_ids(sp: Any, lookup):
    """token → id as XLM-R's tokenizer numbers a sentencepiece.bpe.model (fairseq's dictionary layout)."""
    def fairseq_lookup(token: str) -> int | None:
        if token in _FAIRSEQ_SPECIALS:
            return _FAIRSEQ_SPECIALS[token]
        if token == "<mask>":
            return sp.GetPieceSize() + 1
        tid = lookup(token)
        return tid + 1 if tid is not None and tid > 2 else None

    return fairseq_lookup


def package_available(module: str) -> bool:
    """Whether ``module`` can be imported (a ``None`` entry in sys.modules counts as missing)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------------------
# weights


def _read_weights(resolved: ResolvedModel, ins: Inspection, *, allow_pickle: bool) -> None:
    names = [f for f in resolved.files if "/" not in f and weight_format(f)]
    safetensors = [f for f in names if weight_format(f) == "safetensors"]
    pickles = [f for f in names if weight_format(f) == "pickle"]
    read_pickles = allow_pickle and not safetensors
    for name in names:
        fmt = weight_format(name) or "?"
        size = resolved.file(name).stat().st_size
        note = ""
        read = False
        if fmt == "safetensors":
            read = True
        elif fmt == "pickle":
            if safetensors:
                note = "not read: safetensors preferred"
            elif read_pickles:
                read, note = True, "loaded with torch.load(weights_only=True)"
            else:
                note = "not read: pickle can run code when loaded; pass --allow-pickle to load it with weights_only=True"
        else:
            note = f"{fmt} weights are not read by bertcli"
        ins.weight_files.append(WeightFile(name, fmt, size, read, note))
    tensors: list[TensorInfo] = []
    for wf in ins.weight_files:
        if not wf.read:
            continue
        if wf.format == "safetensors":
            tensors += read_safetensors(resolved.file(wf.name))
        else:
            tensors += read_pickle_weights(resolved.file(wf.name))
    ins.groups = group_tensors(tensors)
    ins.tensors = [t for g in ins.groups for t in g.tensors]  # model order: embeddings, layers, pooler, heads
    ins.tied = tied_weights(tensors, tie_word_embeddings=resolved.config.get("tie_word_embeddings", True) is not False)
    if not names:
        ins.notes.append("no weight files (model.safetensors or pytorch_model.bin): only the tokenizer can run")
    elif pickles and not safetensors and not allow_pickle:
        ins.notes.append(f"{', '.join(pickles)}: pickle weights not read (pass --allow-pickle); capabilities "
                         "below come from config.json alone")


def _config_arithmetic(ins: Inspection) -> None:
    from bertcli.config import ConfigSizeError, count_parameters
    from bertcli.modelfiles import stored_layers

    cfg = bert_names(ins.resolved.config)  # DistilBERT's n_layers read as num_hidden_layers
    layers, kind = stored_layers(ins.tensors)
    wanted = cfg.get("num_hidden_layers")
    if kind == "layer" and layers and isinstance(wanted, int) and wanted > layers:
        ins.refused = f"config.json asks for num_hidden_layers {wanted:,} but the weights hold {layers} layer(s)"
    try:
        count = count_parameters(cfg)
    except ConfigSizeError as exc:
        ins.refused = ins.refused or str(exc)
        count = None
    except (ValueError, TypeError):
        count = None
    if ins.refused:
        ins.notes.append(f"{ins.refused}: the model-running commands refuse this model")
    if count is None or ins.refused:
        return
    ins.config_parameters = count.as_record()
    if ins.parameters is not None and ins.parameters != count.total:
        ins.notes.append(
            f"the weights hold {ins.parameters:,} parameters but config arithmetic for {count.architecture} gives "
            f"{count.total:,}: the checkpoint's heads differ from what config.json declares"
        )


# ---------------------------------------------------------------------------------------------------------
# capabilities


def _capabilities(ins: Inspection) -> list[Capability]:
    from bertcli.heads import HEADS, check_head

    r = ins.resolved
    caps = [_tokenize_capability(ins)]
    model_cmds = [c for c in COMMANDS if c != "tokenize"]
    head_of = {**{HEADS[h][2]: h for h in HEADS}, **SHARED_HEAD_COMMANDS}  # command → head
    if not r.has_config:
        return caps + [Capability(c, False, "no config.json: this is a tokenizer only") for c in model_cmds]
    if (ins.model_type or "").lower() not in RUNNABLE_TYPES:
        why = f"model_type {ins.model_type!r} is not a BERT-family model (bertcli runs {', '.join(RUNNABLE_TYPES)})"
        return caps + [Capability(c, False, why) for c in model_cmds]
    if not ins.weight_files:
        return caps + [Capability(c, False, "no weight files") for c in model_cmds]
    if ins.refused:
        return caps + [Capability(c, False, ins.refused) for c in model_cmds]
    modules = {g.name for g in ins.groups}
    for command in model_cmds:
        head = head_of[command]
        try:
            check_head(r, head)  # the runner's own test: does config.json declare this head?
            declared = True
        except ModelFileError:
            declared = False
        if head == "rtd" and (ins.model_type or "") != "electra":
            caps.append(Capability(command, False, _rtd_refusal(ins, modules)))
        elif head in PAIR_HEAD_TYPES and not declared:
            caps.append(Capability(command, False, _pair_head_refusal(ins, head)))
        elif not ins.weights_read:
            caps.append(_capability_from_config(ins, command, head, declared))
        else:
            caps.append(_capability_from_weights(ins, command, head, modules, declared))
        caps[-1] = _label_condition(r, caps[-1])
    if not any(f.format == "safetensors" for f in ins.weight_files):
        # The runner loads safetensors only (pickle can run code): say what the weights hold, and that they must
        # be converted before any model command runs them.
        caps = [Capability(c.command, False, f"{c.reason}; but the weights are pickle only, and bertcli runs "
                           "safetensors (convert them once with transformers' save_pretrained)")
                if c.available and c.command != "tokenize" else c for c in caps]
    return caps


def _rtd_refusal(ins: Inspection, modules: set[str]) -> str:
    """Why detect cannot run on a model that is not an ELECTRA discriminator (DeBERTa-v3's own RTD head included)."""
    if "head: replaced token detection" in modules:
        return ("the weights hold a replaced-token-detection head (mask_predictions.*, DeBERTa-v3's discriminator) "
                "that no transformers class loads; detect runs ELECTRA discriminators")
    return "replaced-token detection needs an ELECTRA discriminator"


def _pair_head_refusal(ins: Inspection, head: str) -> str:
    """Why nsp or sop cannot run on a model of another type (BERT pre-trained with NSP, ALBERT with SOP)."""
    types = ", ".join(PAIR_HEAD_TYPES[head])
    other = next((h for h, kinds in PAIR_HEAD_TYPES.items() if h != head and ins.model_type in kinds), None)
    return (f"the {_HEAD_WHAT[head]} is a pre-training head of {types} models, not {ins.model_type}"
            + (f" (it was pre-trained with {other.upper()}: use {other})" if other else ""))


def _label_condition(resolved: ResolvedModel, cap: Capability) -> Capability:
    """rerank needs a one-label classifier (a cross-encoder), zero-shot one whose id2label names entailment."""
    from bertcli.heads import entailment_id, num_labels

    if not cap.available or cap.command not in ("classify", "tag", *SHARED_HEAD_COMMANDS):
        return cap
    n = num_labels(resolved)
    id2label = resolved.config.get("id2label")
    names = ", ".join(str(v) for v in id2label.values()) if isinstance(id2label, dict) and id2label else "none named"
    if cap.command in ("classify", "tag"):
        return Capability(cap.command, True, f"{cap.reason}; labels: {names}")
    if cap.command == "rerank" and n != 1:
        return Capability("rerank", False, f"a cross-encoder has one label; this classifier has {n} ({names}): "
                                           "use classify")
    entail = entailment_id(resolved)
    if cap.command == "zero-shot" and entail is None:
        return Capability("zero-shot", False, f"id2label names no entailment class ({names}): zero-shot needs an "
                                              "NLI model")
    if cap.command == "zero-shot":
        return Capability("zero-shot", True, f"an NLI classifier: entailment is label {entail} of {n} ({names})")
    return Capability("rerank", True, "a one-label sequence classifier: a cross-encoder's score per pair")


def _tokenize_capability(ins: Inspection) -> Capability:
    tok = ins.tokenizer
    if not tok.get("kind"):
        return Capability("tokenize", False, "no tokenizer files (tokenizer.json, vocab.txt, spiece.model, "
                                             "vocab.json + merges.txt)")
    if ins.missing_packages and tok.get("source", "").endswith(".model"):
        m = ins.missing_packages[0]
        return Capability("tokenize", False, f"{tok['source']} needs {m['package']}: {m['install']}")
    return Capability("tokenize", True, f"{tok['kind']} tokenizer from {tok['source']}")


def _capability_from_config(ins: Inspection, command: str, head: str, declared: bool) -> Capability:
    pickle_note = " (weights not read: pickle; inspect --allow-pickle reads them)"
    if not any(f.format in ("safetensors", "pickle") for f in ins.weight_files):
        return Capability(command, False, "no safetensors or pickle weights")
    if head == "base":
        return Capability(command, True, "config declares an encoder" + pickle_note)
    if not ins.architectures:
        return Capability(command, False, "config.json declares no architectures and the weights were not read "
                                          "(pass --allow-pickle to check them)")
    if head in PAIR_HEAD_TYPES:  # the weights decide (heads.PAIR_HEAD_TYPES); a declared pre-training class hints
        if any(a.endswith(HEAD_SUFFIXES[head]) for a in ins.architectures):
            return Capability(command, True, f"config declares {', '.join(ins.architectures)}" + pickle_note)
        return Capability(command, False, f"config.json declares {', '.join(ins.architectures)}; whether the "
                                          f"weights keep the {_HEAD_WHAT[head]} is unknown until they are read"
                                          + pickle_note)
    if declared:
        return Capability(command, True, f"config declares {', '.join(ins.architectures)}" + pickle_note)
    return Capability(command, False, _short_refusal(ins, head))


def _capability_from_weights(ins: Inspection, command: str, head: str, modules: set[str], declared: bool) -> Capability:
    archs = ", ".join(ins.architectures) or "none declared"
    if "embeddings" not in modules:
        return Capability(command, False, "the weights hold no embeddings: not a BERT-family encoder checkpoint")
    if head == "base":
        layers = sum(1 for m in modules if m.startswith(("encoder layer", "shared layer group")))
        pooler = "with pooler" if "pooler" in modules else "no pooler (mean/CLS pooling only)"
        return Capability(command, True, f"encoder weights: embeddings + {layers} stored layer(s), {pooler}")
    in_weights = _HEAD_MODULES[head] in modules or (  # ModernBERT's QA head is named classifier
        head == "qa" and ins.model_type in MODERNBERT_TYPES and "head: classifier" in modules)
    what = _HEAD_WHAT[head]
    if in_weights and declared:
        extra = " (generator)" if head == "mlm" and ins.model_type == "electra" else ""
        return Capability(command, True, f"{what}{extra} in the weights; architectures: {archs}")
    if in_weights and head in ("seqcls", "tokcls"):  # one classifier.* group: the declared class says which it is
        return Capability(command, False, _short_refusal(ins, head))
    if in_weights:
        return Capability(command, False, f"the weights hold a {what} but config.json's architectures ({archs}) "
                                          "do not declare it, and bertcli follows the config")
    if head == "mlm" and ins.model_type == "electra" and "head: replaced token detection" in modules:
        return Capability(command, False, "an ELECTRA discriminator has no masked-LM head: it labels each token "
                                          "original or replaced (use detect; the generator does fill-mask)")
    tensors = (_MLM_TENSORS.get(ins.model_type or "", "") if head == "mlm" else
               "classifier.*" if ins.model_type in MODERNBERT_TYPES and head == "qa" else _HEAD_TENSOR_HINT[head])
    reason = f"no {what} in the weights ({tensors} absent)"
    if head in PAIR_HEAD_TYPES:
        reason += "; fine-tuned checkpoints usually drop their pre-training heads"
    elif declared and ins.architectures:
        reason += f", although config.json declares {archs}: transformers would initialise it randomly"
    elif ins.family == "SpanBERT" and head == "mlm":
        reason += "; SpanBERT base ships its encoder only"
    return Capability(command, False, reason)


def _short_refusal(ins: Inspection, head: str) -> str:
    what = _HEAD_WHAT[head]
    return f"config.json declares {', '.join(ins.architectures)}, which has no {what}"
