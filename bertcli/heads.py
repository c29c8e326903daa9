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
}

#: the outputs each head's model returns, by name, for both backends (the base head's hidden states are read
#: separately); a head's logits have the batch first, then (for per-token heads) the sequence
HEAD_LOGITS: dict[str, tuple[str, ...]] = {
    "mlm": ("logits",),
    "qa": ("start_logits", "end_logits"),
    "rtd": ("logits",),
    "seqcls": ("logits",),
    "tokcls": ("logits",),
}

#: architecture-name suffixes that carry each head
HEAD_SUFFIXES: dict[str, tuple[str, ...]] = {
    "mlm": ("ForMaskedLM", "ForPreTraining"),
    "qa": ("ForQuestionAnswering",),
    "rtd": ("ForPreTraining",),
    "seqcls": ("ForSequenceClassification",),
    "tokcls": ("ForTokenClassification",),
}

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


def check_head(resolved: ResolvedModel, head: str) -> None:
    """Refuse early (before loading weights) when the config says the head is not there."""
    if head == "base":
        return
    archs = architectures(resolved)
    if not archs:
        return  # no declaration: loading will tell (missing head weights)
    if head == "rtd":
        ok = resolved.config.get("model_type") == "electra" and any(a.endswith("ForPreTraining") for a in archs)
    else:
        ok = any(a.endswith(HEAD_SUFFIXES[head]) for a in archs)
    if not ok:
        raise missing_head_error(resolved, head, archs)


def missing_head_error(resolved: ResolvedModel, head: str, archs: list[str]) -> ModelFileError:
    _, what, command = HEADS[head]
    fits = [c for c in suggest_commands(resolved, archs) if c != command]  # never suggest what just failed
    hint = f"this model fits: {', '.join('bertcli ' + c for c in fits)}" if fits else None
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
    return out
