"""Zero-shot classification with an NLI model, as transformers' zero-shot-classification pipeline does it.

Each text (the premise) is paired with one hypothesis per candidate label (``template.format(label)``) and the
pair goes through the model's sequence-classification head. The entailment class is found from config.json's
``id2label`` (`bertcli.heads.entailment_id`); the contradiction class likewise (else the pipeline's guess: the
last class when entailment is the first, else the first). Scores:

- single-label (the default): the entailment logits softmaxed across the candidate labels (they sum to 1);
- multi-label (``--multi-label``, and always for one candidate label, as the pipeline does): per label, the
  softmax over [contradiction, entailment], its entailment part.

Pairs are tokenized with the premise truncated first (the hypothesis is never cut), batched with the token-budget
batcher, and the records stream in input order; a premise far over the limit is tokenized from a prefix
(`bertcli.textcut`), so memory stays bounded by the batch whatever one line weighs.

numpy and torch are imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bertcli.backends import DEFAULT_BACKEND
from bertcli.errors import ModelFileError, UsageError
from bertcli.resolve import ResolvedModel

DEFAULT_TEMPLATE = "This example is {}."

#: id2label names that mark an NLI model's contradiction class, compared lower-cased (as `heads.ENTAILMENT_LABELS`)
CONTRADICTION_PREFIX = "contradict"


@dataclass
class ZeroShotResult:
    """One text's answer: the candidate labels sorted by score, best first."""

    text: str
    labels: list[str]
    scores: list[float]
    truncated: bool = False

    def as_record(self) -> dict[str, Any]:
        return {"text": self.text, "labels": self.labels, "scores": self.scores}


@dataclass
class ZeroShotStats:
    texts: int = 0
    pairs: int = 0
    batches: int = 0
    truncated: int = 0
    first_truncated: str | None = None  # where the first truncated text came from ("text 2", "FILE, line 7")


def parse_labels(spec: str | None) -> list[str]:
    """``--labels a,b,c`` → ["a", "b", "c"] (split at commas, stripped, empties dropped: the pipeline's rule)."""
    if spec is None:
        raise UsageError("give the candidate labels: --labels a,b,c")
    labels = [label.strip() for label in spec.split(",") if label.strip()]
    if not labels:
        raise UsageError(f"--labels {spec!r} names no label; give them comma-separated: --labels sports,politics")
    seen: set[str] = set()
    for label in labels:
        if label in seen:
            raise UsageError(f"--labels names {label!r} twice")
        seen.add(label)
    return labels


def hypotheses(template: str, labels: Sequence[str]) -> list[str]:
    """The hypothesis of each label: ``template`` with the label where its ``{}`` stands."""
    try:
        out = [template.format(label) for label in labels]
    except (IndexError, KeyError, ValueError) as exc:
        raise UsageError(f"--template {template!r} cannot be filled in ({type(exc).__name__}: {exc})",
                         hint='write {} where the label goes, e.g. --template "This example is {}."') from exc
    if out[0] == template:
        raise UsageError(f"--template {template!r} has no {{}} where the label goes",
                         hint='e.g. --template "This example is {}."')
    return out


def contradiction_id(resolved: ResolvedModel, entailment: int) -> int:
    """The contradiction class: the id2label name starting with 'contradict', else the pipeline's choice (the
    last class when entailment is class 0, else class 0)."""
    from bertcli.heads import num_labels

    id2label = resolved.config.get("id2label")
    if isinstance(id2label, dict):
        for key, name in id2label.items():
            if str(name).lower().startswith(CONTRADICTION_PREFIX):
                try:
                    return int(key)
                except (TypeError, ValueError):
                    break
    return num_labels(resolved) - 1 if entailment == 0 else 0


def check_model(resolved: ResolvedModel, *, multi_label: bool, n_candidates: int) -> tuple[int, int]:
    """Refuse a model zero-shot cannot use, before loading anything; returns (entailment id, contradiction id)."""
    from bertcli.heads import check_head, entailment_id, num_labels

    if not resolved.has_config:
        raise ModelFileError(f"{resolved.display_name} has no config.json: zero-shot needs an NLI model with a "
                             "sequence-classification head")
    check_head(resolved, "seqcls", command="zero-shot")
    names = _label_names(resolved)
    if num_labels(resolved) == 1 and (multi_label or n_candidates == 1):
        why = "--multi-label weighs" if multi_label else "one candidate label is scored by weighing"
        raise UsageError(f"{why} entailment against contradiction, but {resolved.display_name} has one label "
                         f"({names})", hint="give two or more labels without --multi-label, or use an NLI model")
    entail = entailment_id(resolved)
    if entail is None:
        raise ModelFileError(
            f"{resolved.display_name}'s labels name no entailment class (id2label: {names}), so it cannot score "
            "hypotheses",
            hint="zero-shot needs an NLI model (e.g. FacebookAI/roberta-large-mnli); `bertcli classify` runs this one "
                 "on its own labels")
    return entail, contradiction_id(resolved, entail)


def _label_names(resolved: ResolvedModel) -> str:
    id2label = resolved.config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return ", ".join(f"{k}: {v}" for k, v in sorted(id2label.items(), key=lambda kv: str(kv[0])))
    return "none given"


@dataclass
class ZeroShotClassifier:
    """A loaded NLI model (a `bertcli.backends.Backend` for the ``seqcls`` head) + tokenizer + candidate labels."""

    model: Any
    tokenizer: Any  # bertcli.tokenizer.LoadedTokenizer
    labels: list[str]
    template: str = DEFAULT_TEMPLATE
    multi_label: bool = False
    entailment: int = 2
    contradiction: int = 0
    max_length: int | None = None
    batcher: Any = None  # bertcli.batching.TokenBudgetBatcher (its window counts texts)
    token_types: bool | None = None  # None: decided on the first batch (the tokenizer's and the model's)
    stats: ZeroShotStats = field(default_factory=ZeroShotStats)

    def __post_init__(self) -> None:
        from bertcli.batching import TokenBudgetBatcher

        self.hypotheses = hypotheses(self.template, self.labels)
        if self.batcher is None:
            self.batcher = TokenBudgetBatcher()
        self._check_hypotheses()

    def _check_hypotheses(self) -> None:
        """Each hypothesis with an empty premise must leave room for the premise within max_length."""
        if not self.max_length:
            return
        encs = self.tokenizer.encode_batch([""] * len(self.hypotheses), self.hypotheses)
        for label, hyp, enc in zip(self.labels, self.hypotheses, encs):
            if len(enc.ids) >= self.max_length:
                raise UsageError(f"the hypothesis of label {label!r} ({hyp!r}) takes {len(enc.ids)} tokens with the "
                                 f"special tokens, leaving no room for the text within {self.max_length}",
                                 hint="shorten the label or --template, or raise --max-length")

    def classify(self, texts: Iterable[Any]) -> Iterator[ZeroShotResult]:
        """One `ZeroShotResult` per text (str or `bertcli.inputs.Line`), in input order, streamed by window."""
        with self.model.session():
            for window in self.batcher.windows(texts):
                yield from self._window(window)

    def _window(self, window: list) -> list[ZeroShotResult]:
        import numpy as np

        strings = [getattr(t, "text", t) for t in window]
        n_labels = len(self.labels)
        encodings, truncated = self._encode(window, strings)
        lengths = [len(e.ids) for e in encodings]
        logits = None
        for batch in self.batcher.plan(lengths):
            out = self._forward([encodings[i] for i in batch])
            if logits is None:
                logits = np.zeros((len(encodings), out.shape[-1]), dtype=np.float32)
            logits[batch] = out
            self.stats.batches += 1
        scores = self.scores(logits.reshape(len(strings), n_labels, -1))
        return [self._result(text, row, cut) for text, row, cut in zip(strings, scores, truncated)]

    def scores(self, logits):
        """(texts, labels, classes) logits → (texts, labels) scores, as the pipeline computes them."""
        from bertcli.scores import softmax

        if self.multi_label or len(self.labels) == 1:
            return softmax(logits[..., [self.contradiction, self.entailment]])[..., 1]
        return softmax(logits[..., self.entailment], axis=-1)

    def _result(self, text: str, scores, truncated: bool) -> ZeroShotResult:
        order = list(reversed(scores.argsort()))  # the pipeline's order, ties included
        return ZeroShotResult(text=text, labels=[self.labels[i] for i in order],
                              scores=[float(scores[i]) for i in order], truncated=truncated)

    def _encode(self, window: list, strings: list[str]) -> tuple[list, list[bool]]:
        """Every (text, hypothesis) pair of the window, the text truncated first (never the hypothesis); also
        whether each text was cut."""
        premises = [self._premise(t) for t in strings]
        firsts = [p for p in premises for _ in self.hypotheses]
        seconds = [h for _ in premises for h in self.hypotheses]
        backend = self.tokenizer.backend
        if self.max_length:
            backend.enable_truncation(max_length=self.max_length, strategy="only_first")
        else:
            backend.no_truncation()
        encodings = backend.encode_batch(list(zip(firsts, seconds)))
        n_labels = len(self.labels)
        truncated = [any(e.overflowing for e in encodings[i * n_labels:(i + 1) * n_labels]) for i in range(len(window))]
        for item, cut in zip(window, truncated):
            self.stats.texts += 1
            if cut:
                self.stats.truncated += 1
                if self.stats.first_truncated is None:
                    self.stats.first_truncated = _where(item, self.stats.texts)
        self.stats.pairs += len(encodings)
        return encodings, truncated

    def _premise(self, text: str) -> str:
        """``text``, or a prefix of it whose tokens hold all that the pair can keep (a long line costs what a
        long sentence does: `bertcli.textcut`)."""
        from bertcli.textcut import CHARS_PER_TOKEN, MIN_PREFIX, chunk_safe, cut_at_or_after, encode_truncated

        if not self.max_length or len(text) <= max(MIN_PREFIX, self.max_length * CHARS_PER_TOKEN):
            return text
        backend = self.tokenizer.backend
        if not chunk_safe(backend):
            return text
        backend.enable_truncation(max_length=self.max_length, strategy="longest_first")
        enc = encode_truncated(backend, [text], self.max_length, add_special_tokens=False)[0]
        if not enc.overflowing:
            return text
        end = max(e for _, e in enc.offsets)
        return text[:cut_at_or_after(text, end)]

    def _forward(self, encodings: list):
        from bertcli.runner import batch_inputs

        if self.token_types is None:  # the rule of every pair command (classify, rerank, nsp, sop): segment ids
            self.token_types = bool(self.tokenizer.uses_token_types) and getattr(self.model, "accepts_token_types", True)
        out = self.model.run(*batch_inputs(encodings, self.tokenizer, with_types=self.token_types))
        return out.logits["logits"]


def _where(item: Any, ordinal: int) -> str:
    from bertcli.inputs import line_label

    number = getattr(item, "number", None)
    return line_label(ordinal) if number is None else line_label(number, getattr(item, "source", None))


def load_zero_shot(
    resolved: ResolvedModel,
    labels: list[str],
    *,
    template: str = DEFAULT_TEMPLATE,
    multi_label: bool = False,
    backend: str = DEFAULT_BACKEND,
    device: str = "cpu",
    threads: int | None = None,
    batch_size: int | None = None,
    max_length: int | None = None,
    max_tokens: int | None = None,
) -> ZeroShotClassifier:
    """Check the model (head, labels), then load its tokenizer and ``seqcls`` head; refusals come before loading."""
    from bertcli.backends import load_backend
    from bertcli.batching import DEFAULT_WINDOW, TokenBudgetBatcher, token_budget
    from bertcli.limits import token_limit
    from bertcli.tokenizer import load_tokenizer

    hypotheses(template, labels)  # a bad template fails before the model loads
    entail, contra = check_model(resolved, multi_label=multi_label, n_candidates=len(labels))
    tok = load_tokenizer(resolved)
    limit = token_limit(resolved.config, tok.model_max_length)
    if max_length is not None and limit is not None and max_length > limit:
        raise UsageError(f"--max-length {max_length} is more than this model's maximum of {limit} tokens")
    model = load_backend(resolved, "seqcls", backend=backend, device=device, tokenizer=tok, threads=threads)
    batcher = TokenBudgetBatcher(max_tokens=token_budget(max_tokens, model), max_batch=batch_size,
                                 window=max(1, DEFAULT_WINDOW // len(labels)))
    return ZeroShotClassifier(model=model, tokenizer=tok, labels=labels, template=template, multi_label=multi_label,
                              entailment=entail, contradiction=contra, max_length=max_length or limit,
                              batcher=batcher)
