"""The BERT-family catalog: what each variant changes in BERT, and live numbers from a model's config.

The catalog is data (objectives, masking, tokenizer, parameter tricks); the aliases and hub ids come from
`bertcli.resolve.ALIASES` and every number from `bertcli.config.count_parameters` — nothing is typed in twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bertcli.compare import marker_for
from bertcli.errors import UsageError
from bertcli.limits import ROBERTA_TYPES, bert_names
from bertcli.resolve import ALIASES, detect_family

OBJECTIVES: dict[str, str] = {
    "MLM": "masked language modelling: predict the masked tokens",
    "NSP": "next sentence prediction: is segment B the text that follows segment A?",
    "SOP": "sentence order prediction: are two consecutive segments in their original order or swapped?",
    "RTD": "replaced token detection: for every token, was it replaced by the generator?",
    "SBO": "span boundary objective: predict each masked token from the two tokens just outside its span "
           "plus its position in the span",
    "KD": "knowledge distillation: match the teacher's (BERT's) output distribution, softened by a temperature",
    "COS": "cosine embedding loss: align the direction of the student's hidden states with the teacher's",
}
"""The pretraining objectives, by their short names."""

OBJECTIVE_COMMANDS: dict[str, str] = {
    "MLM": "bertcli fill-mask TEXT -m MODEL",
    "NSP": "bertcli nsp A B -m MODEL",
    "SOP": "bertcli sop A B -m MODEL",
    "RTD": "bertcli detect TEXT -m electra --corrupt N",
}
"""The command that runs each objective's head (SBO's head is not released: none)."""

MASKINGS: dict[str, str] = {
    "static": "the mask is chosen once, while preparing the data: every epoch sees the same one",
    "dynamic": "a new mask each time a sequence is seen",
    "span": "contiguous spans of whole words are masked, not single tokens",
}


@dataclass(frozen=True)
class Variant:
    """One BERT-family variant: what it changes in BERT."""

    name: str
    summary: str
    objectives: tuple[str, ...]
    masking: str
    masking_detail: str
    mask_strategy: str  # the `bertcli mask --strategy` that shows it
    tokenizer: str
    tricks: tuple[str, ...]  # short names
    changes: tuple[str, ...]
    model_types: tuple[str, ...]
    trick_details: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.name.lower()

    @property
    def aliases(self) -> list[dict[str, Any]]:
        """The bertcli aliases of this variant with their hub ids (from `bertcli.resolve.ALIASES`)."""
        return [
            {"alias": a.name, "repo_id": a.repo_id, "legacy_ids": list(a.legacy_ids), "description": a.description}
            for a in ALIASES.values() if a.family == self.name
        ]


VARIANTS: dict[str, Variant] = {
    v.key: v
    for v in (
        Variant(
            name="BERT",
            summary="The original: a bidirectional Transformer encoder pretrained on masked LM and NSP.",
            objectives=("MLM", "NSP"),
            masking="static",
            masking_detail="15% of tokens, each replaced 80/10/10 by [MASK] / a random token / itself; "
                           "masks drawn once in preprocessing",
            mask_strategy="static",
            tokenizer="WordPiece",
            tricks=(),
            changes=("the baseline the others change",),
            model_types=("bert",),
        ),
        Variant(
            name="ALBERT",
            summary="A Lite BERT: far fewer parameters for the same shape of model.",
            objectives=("MLM", "SOP"),
            masking="static",
            masking_detail="n-gram masking (n-grams of whole words, n ≤ 3, p(n) ∝ 1/n) chosen once in "
                           "preprocessing, 80/10/10 like BERT",
            mask_strategy="ngram",
            tokenizer="SentencePiece",
            tricks=("factorized embedding", "cross-layer sharing"),
            trick_details=("factorized embedding: V·E + E·H parameters instead of V·H, with E much smaller than H",
                           "cross-layer parameter sharing: the layers share one set of weights"),
            changes=("factorized embedding parameterization: a small embedding size E, then E → H",
                     "cross-layer parameter sharing: all-shared (default), FFN-only or attention-only",
                     "sentence order prediction (SOP) replaces next sentence prediction",
                     "SentencePiece tokenizer (lower-cased)"),
            model_types=("albert",),
        ),
        Variant(
            name="RoBERTa",
            summary="Robustly optimized BERT: the same architecture, trained differently.",
            objectives=("MLM",),
            masking="dynamic",
            masking_detail="BERT's 15% and 80/10/10, but a new mask every time a sequence is fed to the model",
            mask_strategy="dynamic",
            tokenizer="byte-level BPE",
            tricks=(),
            changes=("dynamic masking instead of static masking",
                     "no next sentence prediction: masked LM only, on full-length sequences",
                     "large batches, more data, longer training",
                     "byte-level BPE tokenizer (a leading space becomes Ġ); mask token <mask>"),
            model_types=tuple(t for t in ROBERTA_TYPES if t != "xlm-roberta"),
        ),
        Variant(
            name="ELECTRA",
            summary="A generator replaces tokens; the discriminator learns to tell replaced tokens from originals.",
            objectives=("RTD", "MLM"),
            masking="dynamic",
            masking_detail="the small generator (trained with MLM) sees 15% masked tokens, drawn anew at every "
                           "step; the discriminator sees no [MASK] at all",
            mask_strategy="dynamic",
            tokenizer="WordPiece",
            tricks=("E→H projection", "shared embeddings"),
            trick_details=("embedding projection: embeddings of size E projected to the hidden size H",
                           "the generator and the discriminator share their token embeddings"),
            changes=("replaced token detection over every token instead of masked LM over 15%",
                     "a generator (masked LM, small) and a discriminator released as a pair",
                     "no [MASK] in the discriminator's input: no pretrain/fine-tune mismatch",
                     "no next sentence prediction"),
            model_types=("electra",),
        ),
        Variant(
            name="SpanBERT",
            summary="Masks contiguous spans and predicts them from their boundaries; built for QA and relations.",
            objectives=("MLM", "SBO"),
            masking="span",
            masking_detail="spans of whole words, length ~ Geometric(p=0.2) clipped at 10 words, 15% budget, "
                           "one 80/10/10 decision per span",
            mask_strategy="span",
            tokenizer="WordPiece",
            tricks=(),
            changes=("span masking instead of single-token masking",
                     "span boundary objective (SBO): predict a span from the tokens just outside it",
                     "no next sentence prediction: single segments of full length",
                     "BERT's architecture and cased vocabulary (told apart only by its name)"),
            model_types=("bert",),
        ),
        Variant(
            name="DistilBERT",
            summary="BERT distilled: half the layers, trained to match BERT's outputs.",
            objectives=("KD", "MLM", "COS"),
            masking="dynamic",
            masking_detail="BERT's 15% and 80/10/10, drawn anew for every batch as RoBERTa does; single "
                           "segments, no next sentence prediction",
            mask_strategy="dynamic",
            tokenizer="WordPiece",
            tricks=("distillation", "half the layers"),
            trick_details=("knowledge distillation: the loss is the teacher's soft targets + masked LM + a "
                           "cosine loss on hidden states",
                           "6 layers instead of BERT base's 12, initialized from every other teacher layer; "
                           "no token-type embeddings, no pooler"),
            changes=("trained by knowledge distillation from BERT base (soft-target loss + MLM + cosine loss)",
                     "half the layers at the same width: 6 × 768, initialized from the teacher's layers",
                     "no token-type embeddings, no pooler, no next sentence prediction",
                     "config.json names its sizes dim, n_layers, n_heads and hidden_dim"),
            model_types=("distilbert",),
        ),
        Variant(
            name="XLM-RoBERTa",
            summary="RoBERTa's recipe on 100 languages, with one 250k SentencePiece vocabulary.",
            objectives=("MLM",),
            masking="dynamic",
            masking_detail="RoBERTa's dynamic 15% and 80/10/10 on text streams of 100 languages, each sampled "
                           "with probability ∝ (its share of the data)^0.3",
            mask_strategy="dynamic",
            tokenizer="SentencePiece",
            tricks=("shared vocabulary",),
            trick_details=("one SentencePiece vocabulary of 250k pieces for 100 languages: the word embeddings "
                           "hold most of the parameters",),
            changes=("trained on CC-100: 2.5 TB of filtered CommonCrawl text in 100 languages",
                     "SentencePiece (unigram) vocabulary of 250k pieces instead of byte-level BPE; a piece that "
                     "starts a word begins with ▁",
                     "no language embeddings: the model is not told which language it reads",
                     "RoBERTa's architecture and objective: masked LM only, dynamic masking, mask token <mask>"),
            model_types=("xlm-roberta",),
        ),
        Variant(
            name="DeBERTa",
            summary="Disentangled attention: content and relative position kept apart; v3 trains it ELECTRA-style.",
            objectives=("RTD", "MLM"),
            masking="dynamic",
            masking_detail="v3: a generator half as deep (masked LM on 15% of tokens, drawn anew each step) fills "
                           "the masks and the discriminator labels every token; v1/v2: masked LM only, BERT's 15% "
                           "and 80/10/10",
            mask_strategy="dynamic",
            tokenizer="SentencePiece",
            tricks=("disentangled attention", "relative position buckets", "enhanced mask decoder",
                    "GDES: disentangled embedding sharing"),
            trick_details=("disentangled attention: each token is a content vector and a relative-position vector; "
                           "attention adds content→content, content→position (c2p) and position→content (p2c) "
                           "scores (pos_att_type)",
                           "relative positions: one shared table of 2·position_buckets rows (log buckets beyond "
                           "the near ones), projected by the layer's own key/query weights when share_att_key",
                           "enhanced mask decoder: absolute positions enter only at the top, just before the MLM "
                           "softmax (position_biased_input false: no position table in the input)",
                           "v3: gradient-disentangled embedding sharing: the discriminator reuses the generator's "
                           "token embeddings plus its own residual, and its loss does not pull on the shared part"),
            changes=("disentangled attention over content and relative positions instead of absolute position "
                     "embeddings added to the input",
                     "enhanced mask decoder: absolute positions added late, just before decoding the masks",
                     "v3: replaced token detection (ELECTRA's generator + discriminator) instead of masked LM",
                     "v3: gradient-disentangled embedding sharing between generator and discriminator",
                     "v3: SentencePiece vocabulary of 128k (cased; pieces marked ▁), no token types"),
            model_types=("deberta-v2", "deberta"),
        ),
        Variant(
            name="ModernBERT",
            summary="BERT rebuilt with a decade of LLM practice: rotary positions, local/global attention, GeGLU, "
                    "8,192 tokens.",
            objectives=("MLM",),
            masking="dynamic",
            masking_detail="30% of tokens (twice BERT's rate), 80/10/10, drawn anew each time; no NSP",
            mask_strategy="dynamic",
            tokenizer="byte-level BPE",
            tricks=("rotary positions", "alternating global/local attention", "GeGLU", "no biases", "pre-norm",
                    "unpadding"),
            trick_details=("rotary position embeddings (RoPE) in every attention layer: no position table, so the "
                           "context stretches to 8,192 tokens",
                           "attention alternates: every global_attn_every_n_layers-th layer attends to the whole "
                           "sequence, the others to a sliding window of local_attention tokens",
                           "GeGLU feed-forward: Wi maps H to 2·I (a GELU gate times a linear value), Wo maps I back",
                           "no bias terms in the linear layers and LayerNorms (attention_bias, mlp_bias, norm_bias "
                           "false)",
                           "pre-norm layers (LayerNorm before attention and FFN) and a final norm",
                           "unpadding: padding tokens are removed before the encoder and put back after (flash "
                           "attention; the eager path computes the same values)"),
            changes=("rotary positions instead of a learned position table; 8,192-token context",
                     "alternating global and local (sliding-window) attention layers",
                     "GeGLU feed-forward, no biases, pre-norm, unpadding",
                     "masked LM only, at a 30% masking rate; no next sentence prediction",
                     "trained on 2 trillion tokens including code; byte-level BPE tokenizer (OLMo's), "
                     "[CLS]/[SEP] with no token types"),
            model_types=("modernbert",),
        ),
    )
}
"""The variants, keyed by lower-case name."""


def get_variant(name: str) -> Variant:
    """A variant by name (any case) or by a bertcli alias (``electra-generator`` → ELECTRA)."""
    key = name.strip().lower()
    if key in VARIANTS:
        return VARIANTS[key]
    if key in ALIASES:
        return VARIANTS[ALIASES[key].family.lower()]
    raise UsageError(f"unknown variant {name!r}", hint=f"choose one of {', '.join(v.name for v in VARIANTS.values())}")


def variant_record(variant: Variant) -> dict[str, Any]:
    """The catalog entry of a variant as a plain record (JSON output)."""
    return {
        "variant": variant.name,
        "summary": variant.summary,
        "objectives": list(variant.objectives),
        "masking": variant.masking,
        "masking_detail": variant.masking_detail,
        "mask_strategy": variant.mask_strategy,
        "tokenizer": variant.tokenizer,
        "marker": marker_for(variant.tokenizer),
        "tricks": list(variant.tricks),
        "trick_details": list(variant.trick_details),
        "changes": list(variant.changes),
        "model_types": list(variant.model_types),
        "aliases": variant.aliases,
    }


def catalog() -> list[dict[str, Any]]:
    """Every variant's record, in the catalog's order (BERT first)."""
    return [variant_record(v) for v in VARIANTS.values()]


def live_numbers(config: dict[str, Any], *, name_hints: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Numbers computed from a model's config with `bertcli.config.count_parameters`.

    Always: the family, sizes, total and per-layer parameters, and what the word embeddings cost.
    ALBERT: ``factorized_embedding`` (V·E + E·H vs V·H and what it saves) and ``sharing`` (layers stored vs
    run and what sharing saves). ELECTRA with E ≠ H: ``embedding_projection``. DeBERTa-v2/v3:
    ``relative_positions``. ModernBERT: ``glu``, ``no_bias``, ``attention_layers``, ``tied_decoder``. A config
    whose model type has no parameter arithmetic raises ValueError.
    """
    from bertcli.config import _get as config_value  # a field, or the default transformers applies
    from bertcli.config import count_parameters

    count = count_parameters(config)
    config = bert_names(config)  # DistilBERT's dim/n_layers/n_heads/hidden_dim under BERT's names
    notes = count.notes
    word = next(p for p in count.parts if p.name == "embeddings")
    v = int(config_value(config, "vocab_size", count.model_type))
    h = int(config_value(config, "hidden_size", count.model_type))
    fact = notes.get("factorized_embedding")
    proj = notes.get("embedding_projection")
    e = fact["E"] if fact else proj["E"] if proj else h
    record: dict[str, Any] = {
        "family": detect_family(config, name_hints=list(name_hints)),
        "model_type": count.model_type,
        "architecture": count.architecture,
        "sizes": {"V": v, "E": e, "H": h, "layers": count.run_layers,
                  "heads": config_value(config, "num_attention_heads", count.model_type),
                  "intermediate": config_value(config, "intermediate_size", count.model_type)},
        "total": count.total,
        "base": count.base,
        "per_layer": count.per_layer,
        "stored_layers": count.stored_layers,
        "run_layers": count.run_layers,
        "embeddings": word.params,
        "word_embeddings": v * e,
        "word_embeddings_share": (v * e) / count.total if count.total else None,
        "factorized_embedding": fact,
        "sharing": notes.get("sharing"),
        "embedding_projection": proj,
        "max_positions": config_value(config, "max_position_embeddings", count.model_type),
        # DeBERTa-v2/v3 and ModernBERT (None for the others)
        "relative_positions": notes.get("relative_positions"),
        "glu": notes.get("glu"),
        "no_bias": notes.get("no_bias"),
        "attention_layers": notes.get("attention_layers"),
        "tied_decoder": notes.get("tied_decoder"),
    }
    saved = (fact["saved"] if fact else 0) + (notes["sharing"]["saved"] if notes.get("sharing") else 0)
    record["saved_by_tricks"] = saved if fact or notes.get("sharing") else None
    if count.model_type == "distilbert":
        record["distillation"] = _teacher_numbers(config, count)
    return record


def _teacher_numbers(config: dict[str, Any], student: Any) -> dict[str, Any]:
    """A DistilBERT student against its teacher: BERT of the same width with twice the layers, token types
    and a pooler (for distilbert-base-uncased: bert-base-uncased)."""
    from bertcli.config import count_parameters

    teacher_config = {**{k: v for k, v in config.items() if k not in ("architectures", "model_type")},
                      "model_type": "bert", "num_hidden_layers": 2 * student.run_layers, "type_vocab_size": 2}
    teacher = count_parameters(teacher_config, "BertModel")
    return {"student_layers": student.run_layers, "teacher_layers": teacher.run_layers,
            "student_params": student.base, "teacher_params": teacher.base,
            "share_of_teacher": student.base / teacher.base}
