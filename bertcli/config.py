"""Reading configs and the parameter arithmetic of each variant — from config.json alone (no torch).

The counts follow the transformers implementations exactly, so they equal ``sum(p.numel() for p in
model.parameters())`` for the model class a config's ``architectures`` names (tests check this on real models):

- BERT / RoBERTa / SpanBERT: embeddings V·H + P·H + T·H + LayerNorm, L identical layers, a pooler.
- ALBERT: factorized embeddings V·E + E·H (instead of V·H) and cross-layer sharing: only
  ``num_hidden_groups × inner_group_num`` layers are stored, however many (``num_hidden_layers``) are run.
- ELECTRA: embeddings of size E projected to H (``embeddings_project``) when E ≠ H; no pooler.
- DistilBERT: BERT's layers under other names (``dim``, ``n_layers``, ``n_heads``, ``hidden_dim``), half as many;
  no token-type embeddings and no pooler; a sinusoidal position table (``sinusoidal_pos_embds``) is still stored.
- XLM-RoBERTa: RoBERTa's arithmetic, with a 250k SentencePiece vocabulary.
- DeBERTa-v2/v3: no absolute positions in the input (``position_biased_input``), a shared table of relative
  positions (2·``position_buckets`` rows) with its LayerNorm, position projections per layer unless
  ``share_att_key``; no pooler (a classifier brings its own). v1 (model_type deberta): one bias-free q/k/v
  projection plus q and v biases, no buckets.
- ModernBERT: no position table (rotary), GeGLU (Wi: H → 2·I), no bias terms unless the config asks, pre-norm
  (layer 0 has no attention norm) and a final norm; the MLM decoder tied to the word embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bertcli.limits import ROBERTA_TYPES, bert_names

# Config fields grouped for display; anything not listed lands in "other".
FIELD_GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("architecture", ("model_type", "architectures", "hidden_act", "position_embedding_type",
                      "num_hidden_groups", "inner_group_num", "tie_word_embeddings", "is_decoder",
                      "add_cross_attention", "use_cache", "torch_dtype", "dtype", "transformers_version",
                      "activation", "sinusoidal_pos_embds", "tie_weights_",
                      # DeBERTa's disentangled attention; ModernBERT's attention layout and bias switches
                      "relative_attention", "position_buckets", "max_relative_positions", "pos_att_type",
                      "share_att_key", "norm_rel_ebd", "position_biased_input", "global_attn_every_n_layers",
                      "local_attention", "attention_bias", "mlp_bias", "norm_bias", "decoder_bias")),
    ("sizes", ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "intermediate_size", "max_position_embeddings", "type_vocab_size", "num_labels",
               "dim", "n_layers", "n_heads", "hidden_dim")),
    ("tokens", ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id",
                "unk_token_id", "mask_token_id", "decoder_start_token_id")),
    ("dropout", ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout",
                 "classifier_dropout_prob", "summary_last_dropout", "layer_norm_eps", "initializer_range",
                 "dropout", "attention_dropout", "qa_dropout", "seq_classif_dropout")),
]

# transformers' defaults for fields a config.json may omit, per model_type.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "bert": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2),
    "roberta": dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2),
    "albert": dict(vocab_size=30000, embedding_size=128, hidden_size=4096, num_hidden_layers=12,
                   num_hidden_groups=1, num_attention_heads=64, intermediate_size=16384, inner_group_num=1,
                   max_position_embeddings=512, type_vocab_size=2),
    "electra": dict(vocab_size=30522, embedding_size=128, hidden_size=256, num_hidden_layers=12,
                    num_attention_heads=4, intermediate_size=1024, max_position_embeddings=512, type_vocab_size=2),
    # DistilBERT's own names (dim, n_layers, n_heads, hidden_dim) are read as these (`limits.bert_names`)
    "distilbert": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=6, num_attention_heads=12,
                       intermediate_size=3072, max_position_embeddings=512, type_vocab_size=0),
    "deberta-v2": dict(vocab_size=128100, hidden_size=1536, num_hidden_layers=24, num_attention_heads=24,
                       intermediate_size=6144, max_position_embeddings=512, type_vocab_size=0,
                       relative_attention=False, position_buckets=-1, max_relative_positions=-1,
                       share_att_key=False, pos_att_type=None, norm_rel_ebd="none", position_biased_input=True,
                       legacy=True, conv_kernel_size=0, conv_groups=1),
    "deberta": dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, max_position_embeddings=512, type_vocab_size=0, relative_attention=False,
                    max_relative_positions=-1, pos_att_type=None, position_biased_input=True, legacy=True,
                    talking_head=False),
    "modernbert": dict(vocab_size=50368, hidden_size=768, num_hidden_layers=22, num_attention_heads=12,
                       intermediate_size=1152, max_position_embeddings=8192, attention_bias=False, mlp_bias=False,
                       norm_bias=False, classifier_bias=False, decoder_bias=True, global_attn_every_n_layers=3,
                       local_attention=128),
}
SUPPORTED_TYPES = tuple(_DEFAULTS)

def grouped_fields(config: dict[str, Any]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """The config's fields in display groups (architecture, sizes, tokens, dropout, other), in a stable order."""
    seen: set[str] = set()
    groups = []
    for name, keys in FIELD_GROUPS:
        rows = [(k, config[k]) for k in keys if k in config]
        seen.update(keys)
        if rows:
            groups.append((name, rows))
    other = [(k, config[k]) for k in sorted(config) if k not in seen and not k.startswith("_")]
    if other:
        groups.append(("other", other))
    return groups


@dataclass
class ParamPart:
    name: str
    params: int
    formula: str = ""


@dataclass
class ParamCount:
    """Parameter arithmetic for one config."""

    model_type: str
    architecture: str
    total: int
    base: int  # the encoder as AutoModel loads it (with pooler where the family has one)
    parts: list[ParamPart] = field(default_factory=list)
    per_layer: int = 0
    stored_layers: int = 0
    run_layers: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "architecture": self.architecture,
            "total": self.total,
            "base": self.base,
            "per_layer": self.per_layer,
            "stored_layers": self.stored_layers,
            "run_layers": self.run_layers,
            "parts": [{"name": p.name, "params": p.params, "formula": p.formula} for p in self.parts],
            **self.notes,
        }


class ConfigSizeError(ValueError):
    """Config sizes no model can have (negative, zero, fractional, absurdly large): no arithmetic is done."""


def _get(config: dict[str, Any], key: str, model_type: str) -> Any:
    value = config.get(key)
    return value if value is not None else _DEFAULTS[model_type].get(key)


def _layer_params(h: int, i: int) -> int:
    attention = 4 * (h * h + h) + 2 * h  # q, k, v, output dense + LayerNorm
    ffn = (h * i + i) + (i * h + h) + 2 * h  # intermediate, output dense + LayerNorm
    return attention + ffn


def main_architecture(config: dict[str, Any]) -> str:
    archs = config.get("architectures") or []
    return archs[0] if archs else ""


def count_parameters(config: dict[str, Any], architecture: str | None = None) -> ParamCount:
    """Parameters of the model a config describes (``architecture`` defaults to its first ``architectures``)."""
    model_type = (config.get("model_type") or "").lower()
    if model_type in ROBERTA_TYPES:
        model_type = "roberta"
    if model_type not in _DEFAULTS:
        raise ValueError(f"parameter counts are known for {', '.join(SUPPORTED_TYPES)}, not {model_type or 'a config without model_type'}")
    from bertcli.modelfiles import size_problems

    config = bert_names(config)
    problems = size_problems(config)
    if problems:
        raise ConfigSizeError(f"config.json's sizes cannot be counted: {'; '.join(problems)}")
    g = lambda key: _get(config, key, model_type)  # noqa: E731
    if model_type in _OTHER_COUNTS:
        return _OTHER_COUNTS[model_type](g, architecture or main_architecture(config), config)
    v, h, nl = int(g("vocab_size")), int(g("hidden_size")), int(g("num_hidden_layers"))
    i, p, t = int(g("intermediate_size")), int(g("max_position_embeddings")), int(g("type_vocab_size"))
    t = 0 if model_type == "distilbert" else t  # DistilBERT has no token-type embeddings
    e = int(g("embedding_size")) if model_type in ("albert", "electra") and g("embedding_size") else h
    arch = architecture or main_architecture(config) or {"bert": "BertModel", "roberta": "RobertaModel",
                                                          "albert": "AlbertModel", "electra": "ElectraModel",
                                                          "distilbert": "DistilBertModel"}[model_type]
    parts: list[ParamPart] = []
    notes: dict[str, Any] = {}

    word = v * e
    embeddings = word + p * e + t * e + 2 * e
    if model_type == "distilbert":
        sinusoidal = bool(config.get("sinusoidal_pos_embds"))
        notes["distilbert"] = {"token_type_embeddings": False, "pooler": False, "sinusoidal_positions": sinusoidal}
        parts.append(ParamPart("embeddings", embeddings, f"V·H + P·H + LN = {v}·{h} + {p}·{h} + 2·{h}"
                               + (" (P·H: fixed sinusoids, stored)" if sinusoidal else "")))
    else:
        parts.append(ParamPart("embeddings", embeddings, f"V·E + P·E + T·E + LN = {v}·{e} + {p}·{e} + {t}·{e} + 2·{e}"))
    per_layer = _layer_params(h, i)
    stored_layers = nl
    projection = 0
    if model_type == "albert":
        groups, inner = int(g("num_hidden_groups")), int(g("inner_group_num"))
        stored_layers = groups * inner
        projection = e * h + h
        parts.append(ParamPart("embedding projection E→H", projection, f"E·H + H = {e}·{h} + {h}"))
        notes["factorized_embedding"] = {
            "V": v, "E": e, "H": h,
            "factorized": v * e + e * h,
            "unfactorized": v * h,
            "saved": v * h - (v * e + e * h),
        }
        notes["sharing"] = {
            "num_hidden_layers": nl, "num_hidden_groups": groups, "inner_group_num": inner,
            "stored_layer_params": stored_layers * per_layer,
            "unshared_layer_params": nl * per_layer,
            "saved": (nl - stored_layers) * per_layer,
        }
    elif model_type == "electra" and e != h:
        projection = e * h + h
        parts.append(ParamPart("embedding projection E→H", projection, f"E·H + H = {e}·{h} + {h}"))
        notes["embedding_projection"] = {"E": e, "H": h, "params": projection,
                                         "embedding_params_if_unfactorized": v * h,
                                         "embedding_params_factorized": v * e + projection}
    encoder = stored_layers * per_layer
    parts.append(ParamPart("encoder", encoder, f"{stored_layers} stored layer(s) × {per_layer:,}"
                           + (f" (run {nl} times)" if stored_layers != nl else "")))

    pooler = h * h + h if model_type not in ("electra", "distilbert") else 0
    head, head_name, with_pooler = _head(arch, model_type, v, e, h, config)
    base = embeddings + projection + encoder + pooler
    if with_pooler and pooler:
        parts.append(ParamPart("pooler", pooler, f"H·H + H = {h}·{h} + {h}"))
    if head:
        parts.append(ParamPart(head_name, head))
    total = embeddings + projection + encoder + (pooler if with_pooler else 0) + head
    return ParamCount(model_type, arch, total, base, parts, per_layer, stored_layers, nl, notes)


def _head(arch: str, model_type: str, v: int, e: int, h: int, config: dict[str, Any]) -> tuple[int, str, bool]:
    """(head parameters, head name, whether the model keeps the pooler) for an architecture class name."""
    num_labels = int(config.get("num_labels") or len(config.get("id2label") or {}) or 2)
    tied = config.get("tie_word_embeddings", True) is not False
    if arch.endswith("Model") and not arch.endswith(("ForMaskedLM", "ForPreTraining")):
        return 0, "", True
    if arch.endswith("ForQuestionAnswering"):
        return 2 * h + 2, "QA head (start/end logits)", False
    if arch.endswith("ForTokenClassification"):
        return h * num_labels + num_labels, "token classification head", False
    if arch.endswith("ForSequenceClassification"):
        if model_type in ("roberta", "electra", "distilbert"):  # a dense layer (pre_classifier) before the classifier
            return (h * h + h) + (h * num_labels + num_labels), "classification head", False
        return h * num_labels + num_labels, "classification head", True
    decoder = 0 if tied else v * (h if model_type in ("bert", "roberta", "distilbert") else e)
    if not tied and model_type in ("bert", "roberta", "albert"):
        decoder += v  # untied, the decoder's own bias is no longer the head's bias
    if model_type in ("bert", "roberta", "distilbert") and arch.endswith(("ForMaskedLM", "ForCausalLM")):
        return (h * h + h) + 2 * h + v + decoder, "MLM head", False
    if model_type == "bert" and arch.endswith("ForPreTraining"):
        return (h * h + h) + 2 * h + v + decoder + (2 * h + 2), "MLM + NSP heads", True
    if model_type == "albert" and arch.endswith("ForMaskedLM"):
        return (h * e + e) + 2 * e + v + decoder, "MLM head", False
    if model_type == "albert" and arch.endswith("ForPreTraining"):
        return (h * e + e) + 2 * e + v + decoder + (2 * h + 2), "MLM + SOP heads", True
    if model_type == "electra" and arch.endswith("ForPreTraining"):
        return (h * h + h) + (h + 1), "replaced-token-detection head", False
    if model_type == "electra" and arch.endswith("ForMaskedLM"):
        return (h * e + e) + 2 * e + v + decoder, "generator MLM head", False
    return 0, "", True


def _head_size(arch: str, h: int, config: dict[str, Any]) -> tuple[int, str]:
    """A linear classifier over H of the task heads both DeBERTa and ModernBERT share (0 for other classes)."""
    num_labels = int(config.get("num_labels") or len(config.get("id2label") or {}) or 2)
    if arch.endswith("ForQuestionAnswering"):  # Linear(H, num_labels): 2 in every QA checkpoint
        return h * num_labels + num_labels, "QA head (start/end logits)"
    if arch.endswith("ForTokenClassification"):
        return h * num_labels + num_labels, "token classification head"
    if arch.endswith("ForSequenceClassification"):
        return h * num_labels + num_labels, "classification head"
    return 0, ""


def _pos_att_types(value: Any) -> list[str]:
    if isinstance(value, str):
        return [x.strip() for x in value.lower().split("|") if x.strip()]
    return [str(x).lower() for x in value or []]


def _count_deberta_v2(g, arch: str, config: dict[str, Any], *, v1: bool = False) -> ParamCount:
    """DeBERTa-v2/v3 as transformers' DebertaV2* classes build them (relative positions, no pooler); with ``v1``
    DeBERTa's Deberta* classes (one q/k/v projection without bias plus q and v biases, no position buckets)."""
    v, h, nl, i = int(g("vocab_size")), int(g("hidden_size")), int(g("num_hidden_layers")), int(g("intermediate_size"))
    p, t = int(g("max_position_embeddings")), int(g("type_vocab_size") or 0)
    e = int(g("embedding_size") or h)
    arch = arch or ("DebertaModel" if v1 else "DebertaV2Model")
    absolute = g("position_biased_input") is not False
    embeddings = v * e + (p * e if absolute else 0) + (t * e if t > 0 else 0) + (e * h if e != h else 0) + 2 * h
    parts = [ParamPart("embeddings", embeddings, f"V·E{' + P·E' if absolute else ''}{' + T·E' if t > 0 else ''}"
                       f"{' + E·H' if e != h else ''} + LN = {v}·{e}{f' + {p}·{e}' if absolute else ''}"
                       f"{f' + {t}·{e}' if t > 0 else ''}{f' + {e}·{h}' if e != h else ''} + 2·{h}")]
    per_layer = _layer_params(h, i)
    if v1:  # in_proj H→3H without bias, q_bias and v_bias; talking heads mix the heads' scores
        heads = int(g("num_attention_heads"))
        per_layer += -h + (2 * heads * heads if g("talking_head") else 0)
    notes: dict[str, Any] = {}
    relative = 0
    if g("relative_attention"):
        buckets = -1 if v1 else int(g("position_buckets") or -1)
        max_rel = int(g("max_relative_positions") or -1)
        span = buckets if buckets > 0 else (max_rel if max_rel >= 1 else p)
        types, shared = _pos_att_types(g("pos_att_type")), not v1 and bool(g("share_att_key"))
        projections = 0 if shared else (h * h + h) * sum(k in types for k in ("c2p", "p2c"))
        projections -= h if v1 and "c2p" in types else 0  # v1's pos_proj has no bias
        per_layer += projections
        norm = 2 * h if not v1 and "layer_norm" in str(g("norm_rel_ebd") or "none").lower() else 0
        relative = 2 * span * h + norm
        parts.append(ParamPart("relative positions", relative, f"2·span·H{' + LN' if norm else ''} = 2·{span}·{h}"
                               + (f" + 2·{h}" if norm else "")))
        notes["relative_positions"] = {
            "position_buckets": buckets if buckets > 0 else None,
            "max_relative_positions": max_rel if max_rel >= 1 else p,
            "rel_embeddings": 2 * span * h, "share_att_key": shared, "pos_att_type": types,
            "position_projections_per_layer": projections, "absolute_positions_in_input": absolute,
            "absolute_position_table_saved": 0 if absolute else p * e,
        }
    if not v1 and int(g("conv_kernel_size") or 0) > 0:
        k, groups = int(g("conv_kernel_size")), int(g("conv_groups") or 1)
        conv = h * (h // groups) * k + h + 2 * h
        relative += conv
        parts.append(ParamPart("convolution layer", conv, f"H·H/groups·k + H + LN = {h}·{h // groups}·{k} + 3·{h}"))
    encoder = nl * per_layer
    parts.append(ParamPart("encoder", encoder, f"{nl} layer(s) × {per_layer:,}"))
    head, head_name = _head_size(arch, h, config)
    tied = config.get("tie_word_embeddings", True) is not False
    if arch.endswith("ForSequenceClassification"):  # ContextPooler, then the classifier
        ph = int(config.get("pooler_hidden_size") or h)
        head += ph * ph + ph
    elif arch.endswith("ForMaskedLM") and g("legacy") is not False:
        head, head_name = (h * e + e) + 2 * e + v + (0 if tied else v * e), "MLM head"
    elif arch.endswith("ForMaskedLM"):
        head, head_name = (h * h + h) + 2 * h + v, "MLM head (uses the word embeddings)"
    base = embeddings + relative + encoder
    if head:
        parts.append(ParamPart(head_name, head))
    return ParamCount("deberta" if v1 else "deberta-v2", arch, base + head, base, parts, per_layer, nl, nl, notes)


def _count_modernbert(g, arch: str, config: dict[str, Any]) -> ParamCount:
    """ModernBERT as transformers' ModernBert* classes build it (rotary positions, GeGLU, biases off by default)."""
    v, h, nl, i = int(g("vocab_size")), int(g("hidden_size")), int(g("num_hidden_layers")), int(g("intermediate_size"))
    arch = arch or "ModernBertModel"
    ln = h * (2 if g("norm_bias") else 1)  # a LayerNorm: weight, and a bias only with norm_bias
    ab, mb = bool(g("attention_bias")), bool(g("mlp_bias"))
    embeddings = v * h + ln
    attention = (h * 3 * h + (3 * h if ab else 0)) + (h * h + (h if ab else 0))
    glu = (h * 2 * i + (2 * i if mb else 0)) + (i * h + (h if mb else 0))
    per_layer = ln + attention + ln + glu  # attention norm, attention, MLP norm, GeGLU
    encoder = nl * per_layer - (ln if nl else 0)  # layer 0 has no attention norm (the embeddings' norm serves)
    parts = [ParamPart("embeddings", embeddings, f"V·H + LN = {v}·{h} + {ln} (no position table: rotary)"),
             ParamPart("encoder", encoder, f"{nl} layer(s) × {per_layer:,} − {ln} (layer 0 has no attention norm)"),
             ParamPart("final norm", ln)]
    every = int(g("global_attn_every_n_layers") or 1)
    biases = (3 * h + h) * (not ab) + (2 * i + h) * (not mb) + h * 2 * (not g("norm_bias"))
    notes = {
        "glu": {"H": h, "I": i, "Wi": h * 2 * i, "Wo": i * h, "params_per_layer": glu,
                "plain_ffn_of_same_params_width": glu // (2 * h) if h else None},
        "no_bias": {"attention_bias": ab, "mlp_bias": mb, "norm_bias": bool(g("norm_bias")),
                    "bias_params_left_out": nl * biases + (0 if g("norm_bias") else 2 * h)},
        "attention_layers": {"global": sum(1 for k in range(nl) if k % every == 0),
                             "local": sum(1 for k in range(nl) if k % every != 0),
                             "local_window": int(g("local_attention") or 0)},
    }
    head, head_name = _head_size(arch, h, config)
    prediction_head = h * h + (h if g("classifier_bias") else 0) + ln
    if head:
        head += prediction_head
    elif arch.endswith("ForMaskedLM"):
        tied = config.get("tie_word_embeddings", True) is not False
        head, head_name = prediction_head + (0 if tied else v * h) + (v if g("decoder_bias") else 0), "MLM head"
        notes["tied_decoder"] = {"tied": tied, "decoder_params_saved": v * h if tied else 0}
    base = embeddings + encoder + ln
    if head:
        parts.append(ParamPart(head_name, head))
    return ParamCount("modernbert", arch, base + head, base, parts, per_layer, nl, nl, notes)


_OTHER_COUNTS = {"deberta-v2": _count_deberta_v2, "modernbert": _count_modernbert,
                 "deberta": lambda g, arch, config: _count_deberta_v2(g, arch, config, v1=True)}
