"""The heads a model command runs, from config.json alone (no torch): which transformers class loads each head,
which architectures declare it, and the refusal that names the head missing and the commands that fit.

`bertcli.runner` loads models through these tables; `bertcli.inspect` reports what a model can run with the
same ones, without importing the runner.
"""

from __future__ import annotations

from bertcli.errors import ModelFileError
from bertcli.resolve import ResolvedModel

#: head name → (transformers auto class, what it is called for users, the command it serves)
HEADS: dict[str, tuple[str, str, str]] = {
    "base": ("AutoModel", "encoder", "embed"),
    "mlm": ("AutoModelForMaskedLM", "masked-LM head", "fill-mask"),
    "qa": ("AutoModelForQuestionAnswering", "question-answering head", "qa"),
    "rtd": ("AutoModelForPreTraining", "replaced-token-detection (ELECTRA discriminator) head", "detect"),
    "seqcls": ("AutoModelForSequenceClassification", "sequence-classification head", "classify"),
    "tokcls": ("AutoModelForTokenClassification", "token-classification head", "tag"),
    "nsp": ("AutoModelForNextSentencePrediction", "next-sentence-prediction (NSP) head", "nsp"),
    "sop": ("AutoModelForPreTraining", "sentence-order-prediction (SOP) head", "sop"),
}

#: the outputs each head's model returns, by name, for both backends (the base head's hidden states are read
#: separately); a head's logits have the batch first, then (for per-token heads) the sequence
HEAD_LOGITS: dict[str, tuple[str, ...]] = {
    "mlm": ("logits",),
    "qa": ("start_logits", "end_logits"),
    "rtd": ("logits",),
    "seqcls": ("logits",),
    "tokcls": ("logits",),
    "nsp": ("logits",),  # *ForNextSentencePrediction: the seq_relationship head's two logits (0 = B follows A)
    "sop": ("sop_logits",),  # AlbertForPreTraining: the sop_classifier's two logits (0 = in original order)
}

#: architecture-name suffixes that carry each head
HEAD_SUFFIXES: dict[str, tuple[str, ...]] = {
    "mlm": ("ForMaskedLM", "ForPreTraining"),
    "qa": ("ForQuestionAnswering",),
    "rtd": ("ForPreTraining",),
    "seqcls": ("ForSequenceClassification",),
    "tokcls": ("ForTokenClassification",),
    "nsp": ("ForPreTraining", "ForNextSentencePrediction"),
    "sop": ("ForPreTraining",),
}

#: the model types whose pretraining head each sentence-pair objective is (transformers'
#: AutoModelForNextSentencePrediction types; ALBERT's AlbertForPreTraining holds SOP). For these heads the
#: weights decide, not config.json's architectures: google-bert/bert-base-uncased declares BertForMaskedLM
#: and still ships the NSP head (cls.seq_relationship), so a model of the right type is loaded and refused
#: only when that head's tensors are missing.
PAIR_HEAD_TYPES: dict[str, tuple[str, ...]] = {
    "nsp": ("bert", "ernie", "fnet", "megatron-bert", "mobilebert"),
    "sop": ("albert",),
}

#: the head's own tensors where its class holds others too (AlbertForPreTraining also has the MLM head, which a
#: SOP run does not need): only these must be in the weights
HEAD_TENSORS: dict[str, str] = {"sop": "sop_classifier."}

#: a checkpoint that has each sentence-pair head, for the refusal's hint
PAIR_HEAD_EXAMPLES: dict[str, str] = {"nsp": "google-bert/bert-base-uncased (alias bert)",
                                      "sop": "an AlbertForPreTraining checkpoint"}

#: id2label names that mark an NLI model's entailment class (zero-shot), compared lower-cased
ENTAILMENT_LABELS = ("entailment", "entail", "entails")


def num_labels(resolved: ResolvedModel) -> int:
    """How many labels config.json gives the classification head (``id2label``, else ``num_labels``, else 2)."""
    config = resolved.config
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return len(id2label)
    value = config.get("num_labels")
    return value if isinstance(value, int) and value > 0 else 2


def entailment_id(resolved: ResolvedModel) -> int | None:
    """The label id whose name means entailment in config.json's ``id2label`` (None when no label does)."""
    id2label = resolved.config.get("id2label")
    if not isinstance(id2label, dict):
        return None
    for key, name in id2label.items():
        if str(name).lower().startswith(ENTAILMENT_LABELS[1]):
            try:
                return int(key)
            except (TypeError, ValueError):
                return None
    return None


def architectures(resolved: ResolvedModel) -> list[str]:
    return list(resolved.config.get("architectures") or [])


def check_head(resolved: ResolvedModel, head: str, *, command: str | None = None) -> None:
    """Refuse early (before loading weights) when the config says the head is not there (``command``: the command
    that asked, when it is not the head's own, e.g. zero-shot for ``seqcls``)."""
    if head == "base":
        return
    if head in PAIR_HEAD_TYPES:
        if resolved.config.get("model_type") not in PAIR_HEAD_TYPES[head]:
            raise missing_head_error(resolved, head, architectures(resolved))
        return  # the weights decide (see PAIR_HEAD_TYPES)
    archs = architectures(resolved)
    if not archs:
        return  # no declaration: loading will tell (missing head weights)
    if head == "rtd":
        ok = resolved.config.get("model_type") == "electra" and any(a.endswith("ForPreTraining") for a in archs)
    else:
        ok = any(a.endswith(HEAD_SUFFIXES[head]) for a in archs)
    if not ok:
        raise missing_head_error(resolved, head, archs, command=command)


def missing_head_error(resolved: ResolvedModel, head: str, archs: list[str], *,
                       command: str | None = None) -> ModelFileError:
    _, what, own = HEADS[head]
    command = command or own
    fits = [c for c in suggest_commands(resolved, archs) if c != command]  # never suggest what just failed
    hint = f"this model fits: {', '.join('bertcli ' + c for c in fits)}" if fits else None
    if head in PAIR_HEAD_EXAMPLES:
        hint = f"{PAIR_HEAD_EXAMPLES[head]} has one" + (f"; {hint}" if hint else "")
    return ModelFileError(
        f"{resolved.display_name} has no {what} (architecture: {', '.join(archs) or 'unknown'}), "
        f"which `bertcli {command}` needs",
        hint=hint,
    )


def suggest_commands(resolved: ResolvedModel, archs: list[str]) -> list[str]:
    """Commands a model's declared architectures can serve (embed always)."""
    out = ["embed"]
    if any(a.endswith(HEAD_SUFFIXES["qa"]) for a in archs):
        out.append("qa")
    if any(a.endswith("ForMaskedLM") for a in archs) or (
        resolved.config.get("model_type") != "electra" and any(a.endswith("ForPreTraining") for a in archs)
    ):
        out.append("fill-mask")
    if resolved.config.get("model_type") == "electra" and any(a.endswith("ForPreTraining") for a in archs):
        out.append("detect")
    if any(a.endswith(HEAD_SUFFIXES["seqcls"]) for a in archs):
        out.append("classify")
        if num_labels(resolved) == 1:
            out.append("rerank")
        if entailment_id(resolved) is not None:
            out.append("zero-shot")
    if any(a.endswith(HEAD_SUFFIXES["tokcls"]) for a in archs):
        out.append("tag")
    model_type = resolved.config.get("model_type")
    for head in ("nsp", "sop"):  # declared pretraining heads only (a checkpoint may hold one undeclared)
        if model_type in PAIR_HEAD_TYPES[head] and any(a.endswith(HEAD_SUFFIXES[head]) for a in archs):
            out.append(head)
    return out
