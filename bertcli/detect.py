"""ELECTRA replaced-token detection: the discriminator's probability that each token was replaced.

The discriminator (``ElectraForPreTraining``) gives one logit per token; ``sigmoid(logit)`` is the probability
that the token is not the original. `apply_replacements` swaps words first (``--replace POS=WORD``) so the
user can watch the discriminator catch the swap.

Word positions (POS) are 1-based and count the words as the model's tokenizer splits them: punctuation is a
word of its own, and a word split into several pieces is still one word ("The chef cooked the meal." →
1 The, 2 chef, 3 cooked, 4 the, 5 meal, 6 .).

torch is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bertcli.errors import UsageError
from bertcli.resolve import ResolvedModel

THRESHOLD = 0.5  # sigmoid(0): above it the discriminator says "replaced"


@dataclass
class Replacement:
    """One swap: the word's 1-based position, the word before and after, and the new word's span in the text."""

    word: int
    old: str
    new: str
    start: int
    end: int


@dataclass
class DetectToken:
    """One token and the discriminator's verdict on it."""

    position: int
    token: str
    id: int
    word: int | None  # 1-based word position (None for special tokens)
    start: int
    end: int
    logit: float
    probability: float
    special: bool
    swapped: bool = False

    @property
    def predicted_replaced(self) -> bool:
        return self.probability > THRESHOLD


@dataclass
class DetectResult:
    """One text after any swaps, the swaps, every token's probability, and how many tokens were cut off."""

    text: str
    tokens: list[DetectToken]
    original: str | None = None
    replacements: list[Replacement] = field(default_factory=list)
    truncated: int = 0

    def as_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"text": self.text}
        if self.original is not None:
            rec["original"] = self.original
            rec["replacements"] = [vars(r).copy() for r in self.replacements]
        rec["tokens"] = [
            {"position": t.position, "token": t.token, "id": t.id, "word": t.word, "start": t.start, "end": t.end,
             "special": t.special, "swapped": t.swapped, "logit": t.logit, "probability": t.probability,
             "predicted_replaced": t.predicted_replaced}
            for t in self.tokens
        ]
        if self.truncated:
            rec["truncated_tokens"] = self.truncated
        return rec


def parse_replacement(spec: str) -> tuple[int | str, str]:
    """``"3=ate"`` → ``(3, "ate")``; ``"cooked=ate"`` → ``("cooked", "ate")`` (the word's first occurrence).

    A clear UsageError otherwise. The word is looked up in the text by `apply_replacements`.
    """
    pos, eq, word = spec.partition("=")
    if not eq or not pos.strip():
        raise UsageError(f"--replace {spec!r}: expected POS=WORD or OLD=WORD, e.g. --replace 3=ate or "
                         f"--replace cooked=ate")
    if not word.strip():
        raise UsageError(f"--replace {spec!r}: WORD is empty")
    try:
        return int(pos.strip()), word.strip()
    except ValueError:
        return pos.strip(), word.strip()


def _word_list(text: str, spans: list[tuple[int, int]]) -> str:
    words = " ".join(f"{i}={text[s:e]}" for i, (s, e) in enumerate(spans[:12], start=1))
    return words + (" …" if len(spans) > 12 else "")


def _word_number(text: str, spans: list[tuple[int, int]], old: str) -> int:
    """The 1-based number of the first word equal to ``old`` (exactly, else ignoring case); UsageError lists them."""
    words = [text[s:e] for s, e in spans]
    for same in (lambda w: w == old, lambda w: w.casefold() == old.casefold()):
        for number, word in enumerate(words, start=1):
            if same(word):
                return number
    raise UsageError(f"--replace {old}=…: the text has no word {old!r}; its words are {_word_list(text, spans)}")


def word_spans(tok, text: str) -> list[tuple[int, int]]:
    """Character span of each word as the tokenizer splits the text (index 0 is word 1)."""
    enc = tok.encode_batch([text], add_special_tokens=False)[0]
    spans: dict[int, list[int]] = {}
    for word, (start, end) in zip(enc.word_ids, enc.offsets):
        if word is None:
            continue
        span = spans.setdefault(word, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    return [tuple(spans[w]) for w in sorted(spans)]  # type: ignore[misc]


def apply_replacements(tok, text: str,
                       replacements: Sequence[tuple[int | str, str]]) -> tuple[str, list[Replacement]]:
    """``text`` with the given words (1-based positions, or the words themselves) swapped, and where each now sits."""
    spans = word_spans(tok, text)
    replacements = [(_word_number(text, spans, pos) if isinstance(pos, str) else pos, new)
                    for pos, new in replacements]
    seen: set[int] = set()
    for number, _ in replacements:
        if not 1 <= number <= len(spans):
            raise UsageError(f"--replace {number}=…: the text has {len(spans)} words, so POS must be 1..{len(spans)} "
                             f"({_word_list(text, spans)})")
        if number in seen:
            raise UsageError(f"--replace: word {number} is given twice")
        seen.add(number)
    out, pos, shift, done = [], 0, 0, []
    for number, new in sorted(replacements):
        start, end = spans[number - 1]
        out += [text[pos:start], new]
        done.append(Replacement(word=number, old=text[start:end], new=new, start=start + shift,
                                end=start + shift + len(new)))
        shift += len(new) - (end - start)
        pos = end
    out.append(text[pos:])
    return "".join(out), done


class Detector:
    """A loaded ELECTRA discriminator plus its tokenizer; call `detect` on texts."""

    def __init__(self, loaded, tok):
        from bertcli.limits import token_limit

        self.loaded = loaded
        self.tok = tok
        self.max_length = token_limit(loaded.config, tok.model_max_length)

    def detect(self, text: str, replacements: Sequence[tuple[int | str, str]] = ()) -> DetectResult:
        """Swap the given words (if any), then score every token of the text."""
        original = None
        done: list[Replacement] = []
        if replacements:
            original = text
            text, done = apply_replacements(self.tok, text, replacements)
        enc, truncated = self.tok.encode_capped(text, self.max_length)
        swapped = [not enc.special_tokens_mask[i] and any(s < r.end and r.start < e for r in done)
                   for i, (s, e) in enumerate(enc.offsets)]
        tokens = self.score(enc, list(enc.ids), list(enc.tokens), swapped)
        return DetectResult(text=text, tokens=tokens, original=original, replacements=done,
                            truncated=truncated)

    def score(self, enc, ids: list[int], token_strings: list[str], swapped: list[bool]) -> list[DetectToken]:
        """The discriminator's verdict on ``ids`` (``enc``'s ids, some perhaps replaced), with ``enc``'s offsets
        and words; ``swapped`` marks the tokens known to be replaced."""
        import numpy as np

        from bertcli.runner import batch_inputs
        from bertcli.scores import sigmoid

        inputs = batch_inputs([enc], self.tok)
        inputs[0][0, :] = np.asarray(ids, dtype=np.int64)
        logits = self.loaded.run(*inputs).logits["logits"][0]
        logit_list, prob_list = logits.tolist(), sigmoid(logits).tolist()
        tokens = []
        for i, (token, tid) in enumerate(zip(token_strings, ids)):
            start, end = enc.offsets[i]
            word = enc.word_ids[i]
            tokens.append(DetectToken(position=i, token=token, id=tid, word=None if word is None else word + 1,
                                      start=start, end=end, logit=logit_list[i], probability=prob_list[i],
                                      special=bool(enc.special_tokens_mask[i]), swapped=swapped[i]))
        return tokens


@dataclass
class Corruption:
    """One position the generator filled: the token there before and the one it sampled (maybe the same)."""

    position: int
    original: str
    original_id: int
    sampled: str
    sampled_id: int
    generator_probability: float  # the generator's probability of the sampled token

    @property
    def replaced(self) -> bool:
        """ELECTRA's label: a sample equal to the original counts as original."""
        return self.sampled_id != self.original_id


@dataclass
class CorruptResult:
    """One text corrupted by the generator and scored by the discriminator."""

    text: str
    corrupted: str
    corruptions: list[Corruption]
    tokens: list[DetectToken]
    truncated: int = 0

    @property
    def caught(self) -> dict[str, int]:
        """How many replaced tokens the discriminator caught, and how many originals it called replaced."""
        scored = [t for t in self.tokens if not t.special]
        return {"replaced": sum(t.swapped for t in scored),
                "caught": sum(t.swapped and t.predicted_replaced for t in scored),
                "original": sum(not t.swapped for t in scored),
                "false_alarms": sum(not t.swapped and t.predicted_replaced for t in scored)}

    def as_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"text": self.text, "corrupted": self.corrupted,
                               "corruptions": [{**vars(c), "replaced": c.replaced} for c in self.corruptions],
                               "caught": self.caught}
        rec["tokens"] = DetectResult(text=self.corrupted, tokens=self.tokens).as_record()["tokens"]
        if self.truncated:
            rec["truncated_tokens"] = self.truncated
        return rec


def sample_from_softmax(logits, rng):
    """One token id per row of ``logits``, drawn from softmax(logits) by the Gumbel-max trick (argmax of the
    logits plus Gumbel noise), as ELECTRA's ``sample_from_softmax`` draws the generator's replacements."""
    import numpy as np

    logits = np.asarray(logits, dtype=np.float64)
    gumbel = -np.log(-np.log(rng.uniform(size=logits.shape) + 1e-9) + 1e-9)
    return (logits + gumbel).argmax(axis=-1)


class Corrupter:
    """ELECTRA end to end: the generator (a masked-LM head, `bertcli.fillmask.FillMasker`) fills masked positions
    by sampling, and the discriminator (`Detector`) scores the result."""

    def __init__(self, detector: Detector, masker):
        if masker.tok.backend.get_vocab() != detector.tok.backend.get_vocab():
            raise UsageError("the generator and the discriminator have different vocabularies, so a sampled token "
                             "would mean another word to the discriminator; use an ELECTRA pair "
                             "(-g electra-generator with -m electra)")
        self.detector = detector
        self.masker = masker

    def corrupt(self, text: str, n: int, rng, *, where: str = "text 1") -> CorruptResult:
        """Mask ``n`` distinct non-special positions (uniformly, from ``rng``: a `numpy.random.Generator`), let the
        generator sample a token for each from its softmax (Gumbel-max, as ELECTRA's ``sample_from_softmax``),
        and score the corrupted ids with the discriminator; ``where`` names the text in errors."""
        from bertcli.errors import BadInputError
        from bertcli.runner import batch_inputs
        from bertcli.scores import softmax

        tok = self.detector.tok
        enc, truncated = tok.encode_capped(text, self.detector.max_length)
        maskable = [i for i, special in enumerate(enc.special_tokens_mask) if not special]
        if n > len(maskable):
            raise BadInputError(f"{where}: {len(maskable)} token(s) to corrupt, fewer than --corrupt {n}")
        positions = sorted(int(p) for p in rng.choice(maskable, size=n, replace=False))
        ids = list(enc.ids)
        inputs = batch_inputs([enc], self.masker.tok)
        inputs[0][0, positions] = self.masker.mask_id
        logits = self.masker.loaded.run(*inputs, positions=([0] * n, positions)).logits["logits"]
        sampled = sample_from_softmax(logits, rng).tolist()
        probs = softmax(logits)
        vocab = tok.backend
        corruptions = []
        for row, (pos, new) in enumerate(zip(positions, sampled)):
            corruptions.append(Corruption(position=pos, original=enc.tokens[pos], original_id=ids[pos],
                                          sampled=vocab.id_to_token(new) or "", sampled_id=int(new),
                                          generator_probability=float(probs[row, new])))
            ids[pos] = int(new)
        strings = list(enc.tokens)
        for c in corruptions:
            strings[c.position] = c.sampled
        replaced = {c.position for c in corruptions if c.replaced}
        tokens = self.detector.score(enc, ids, strings, [i in replaced for i in range(len(ids))])
        kept = [t for i, t in enumerate(ids) if not enc.special_tokens_mask[i]]
        corrupted = vocab.decode(kept, skip_special_tokens=False)
        return CorruptResult(text=text, corrupted=corrupted, corruptions=corruptions, tokens=tokens,
                             truncated=truncated)


def load_corrupter(discriminator: ResolvedModel, generator: ResolvedModel, *, device: str = "cpu") -> Corrupter:
    """The discriminator (`load_detector`) and the generator's masked-LM head (`bertcli.fillmask`), checked to
    share one vocabulary."""
    from bertcli.fillmask import load_fill_masker

    detector = load_detector(discriminator, device=device)
    return Corrupter(detector, load_fill_masker(generator, device=device))


def load_detector(resolved: ResolvedModel, *, device: str = "cpu", backend: str = "auto") -> Detector:
    """The ELECTRA discriminator's head and tokenizer; any other model is refused, naming the command that fits."""
    from bertcli.backends import load_backend
    from bertcli.heads import architectures, missing_head_error
    from bertcli.tokenizer import load_tokenizer

    if resolved.has_config and resolved.config.get("model_type") != "electra":
        _refuse_deberta_rtd(resolved)
        raise missing_head_error(resolved, "rtd", architectures(resolved))
    tok = load_tokenizer(resolved)
    loaded = load_backend(resolved, "rtd", backend=backend, device=device, tokenizer=tok)
    return Detector(loaded, tok)


def _refuse_deberta_rtd(resolved: ResolvedModel) -> None:
    """DeBERTa-v3 was pretrained with replaced-token detection, and some checkpoints keep that head
    (``mask_predictions.*``); transformers has no class that loads it, so detect says so instead of guessing."""
    from bertcli.errors import ModelFileError
    from bertcli.heads import architectures, suggest_commands
    from bertcli.resolve import DEBERTA_TYPES
    from bertcli.weights import read_safetensors

    if resolved.config.get("model_type") not in DEBERTA_TYPES:
        return
    names = [t.name for f in resolved.weight_files() if f.endswith(".safetensors")
             for t in read_safetensors(resolved.file(f))]
    if any(n.startswith("mask_predictions.") for n in names):
        raise ModelFileError(
            f"{resolved.display_name} holds DeBERTa-v3's replaced-token-detection head (mask_predictions.*), "
            "but no transformers class loads it, so `bertcli detect` cannot run it",
            hint="detect runs ELECTRA discriminators; this model fits: "
                 + ", ".join("bertcli " + c for c in suggest_commands(resolved, architectures(resolved))))


def detect(resolved: ResolvedModel, text: str, replacements: Sequence[tuple[int | str, str]] = (), *,
           device: str = "cpu") -> DetectResult:
    """One-shot helper: load the discriminator and score ``text`` (after the swaps)."""
    return load_detector(resolved, device=device).detect(text, replacements)
