"""`bertcli detect`: ELECTRA replaced-token detection — how likely the discriminator thinks each token was swapped."""

from __future__ import annotations

from itertools import chain, islice
from typing import Annotated

import typer

from bertcli import output
from bertcli.backends import DEFAULT_BACKEND
from bertcli.commands._choices import BackendOption
from bertcli.commands._common import DeviceOpt, FileOpt, FormatOpt, ModelOpt, QuietOpt, apply_output, examples, resolve
from bertcli.errors import UsageError
from bertcli.inputs import iter_lines, require_nonempty

EXAMPLES = examples(
    'bertcli detect "The chef cooked the meal." -m electra',
    'bertcli detect "The chef cooked the meal." -m electra --replace 3=ate',
    'bertcli detect "The chef cooked the meal." -m electra --replace cooked=ate',
    'bertcli detect "The chef cooked the meal." -m electra --replace 2=car --replace 5=sky --format json',
    "cat sentences.txt | bertcli detect -m electra --format tsv",
    'bertcli detect "The chef cooked the meal in the kitchen." -m electra --corrupt 2 --seed 7',
    'bertcli detect "The chef cooked the meal." -m electra -g electra-generator --corrupt 1 --format json',
)

#: the generator --corrupt samples from when -g is not given
DEFAULT_GENERATOR = "electra-generator"


def detect(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to check (default: lines of --file or stdin).", show_default=False)] = None,
    model: ModelOpt = None,
    replace: Annotated[list[str] | None, typer.Option("--replace", "-r", metavar="POS|OLD=WORD", help="Swap a word for WORD first: word number POS (1-based, as the tokenizer splits words: punctuation counts) or the word OLD itself (its first occurrence); repeatable; one TEXT only.")] = None,
    file: FileOpt = None,
    corrupt: Annotated[int | None, typer.Option("--corrupt", "-c", min=1, metavar="N", help="ELECTRA end to end: mask N tokens of each text, let the generator (-g) sample a replacement for each, and score the result; a sample equal to the original counts as original, as in ELECTRA.", show_default=False)] = None,
    generator: Annotated[str | None, typer.Option("--generator", "-g", metavar="MODEL", help="The generator (a masked-LM head sharing the discriminator's vocabulary) for --corrupt.", show_default=DEFAULT_GENERATOR)] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Random seed for --corrupt (default: a fresh one, printed so the run can be repeated).", show_default=False)] = None,
    device: DeviceOpt = "auto",
    backend: BackendOption = DEFAULT_BACKEND,
    fmt: FormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Replaced-token detection with an ELECTRA discriminator: per token, the probability it was replaced.

    The discriminator scores every token: sigmoid(logit) is its probability that the token is not the
    original (above 0.5: "replaced"). --replace POS=WORD (or OLD=WORD) swaps a word first so you can watch it
    catch the swap; POS counts words from 1 as the tokenizer splits them (punctuation is a word; the "word"
    column of a plain run shows the numbers), OLD names the word itself. Swapped tokens are marked.
    --corrupt N runs ELECTRA's two networks together: N tokens are masked, the generator (-g) samples a
    replacement for each from its softmax, the discriminator scores every token, and the summary says how many
    replaced tokens it caught.
    """
    apply_output(fmt, quiet)
    fmt_resolved = output.resolve_format()
    from bertcli.detect import load_detector, parse_replacement

    if corrupt is not None:
        if replace:
            raise UsageError("--replace and --corrupt do not go together: swap words by hand or let the generator")
        return _corrupt(texts, model, file, corrupt, generator, seed, device, fmt_resolved)
    if generator is not None or seed is not None:
        raise UsageError(f"{'--generator' if generator is not None else '--seed'} goes with --corrupt N")
    swaps = [parse_replacement(spec) for spec in replace or []]
    resolved = resolve(model)
    lines = require_nonempty(iter_lines(texts, file))
    if swaps:
        lines = list(islice(lines, 2))
        if len(lines) != 1:
            raise UsageError("--replace goes with exactly one TEXT (word positions differ from text to text)")
    else:  # the first text is read before the model loads: input that cannot be decoded fails in a blink
        first = list(islice(lines, 1))
        lines = chain(first, lines)
    with output.loading(resolved.display_name):
        detector = load_detector(resolved, device=device, backend=backend)

    def records():
        for n, line in enumerate(lines, start=1):
            result = detector.detect(line.text, swaps)
            if result.truncated:
                output.warn(f"text {n}: {result.truncated} token(s) past the model's maximum of "
                            f"{detector.max_length} were left out")
            yield {"line": n, **result.as_record()}

    output.emit(output.track(records(), description="scoring"), table=_table, table_batch=1, fmt=fmt_resolved,
                tsv_rows=_tsv_rows,
                tsv_columns=["line", "position", "token", "id", "word", "special", "swapped", "probability"])


def _corrupt(texts, model, file, n: int, generator: str | None, seed: int | None, device: str, fmt) -> None:
    """`detect --corrupt N`: the generator corrupts, the discriminator detects."""
    import numpy as np

    from bertcli.detect import load_corrupter

    resolved = resolve(model)
    gen = resolve(generator or DEFAULT_GENERATOR)
    lines = require_nonempty(iter_lines(texts, file))
    first = next(lines)
    with output.loading(f"{resolved.display_name} + {gen.display_name}"):
        corrupter = load_corrupter(resolved, gen, device=device)
    if seed is None:  # drawn and announced only once the models and input are good
        import secrets

        seed = secrets.randbelow(2**31)
        output.info(f"seed {seed} (repeat this run with --seed {seed})")
    rng = np.random.default_rng(seed)

    def records():
        for line in _chain(first, lines):
            result = corrupter.corrupt(line.text, n, rng, where=line.label)
            if result.truncated:
                output.warn(f"{line.label}: {result.truncated} token(s) past the model's maximum of "
                            f"{corrupter.detector.max_length} were left out")
            yield {"line": line.number, "seed": seed, **result.as_record()}

    output.emit(output.track(records(), description="corrupting and scoring"), table=_table, table_batch=1,
                fmt=fmt, tsv_rows=_tsv_rows,
                tsv_columns=["line", "position", "token", "id", "word", "special", "swapped", "probability"])


def _chain(first, rest):
    yield first
    yield from rest


def _tsv_rows(rec: dict):
    for tok in rec["tokens"]:
        yield {"line": rec["line"], **tok}


def heat_style(p: float) -> str:
    """A background from green (surely original) through yellow to red (surely replaced)."""
    red = round(min(1.0, 2 * p) * 220)
    green = round(min(1.0, 2 * (1 - p)) * 200)
    return f"black on rgb({red},{green},60)"


def _table(records: list[dict]):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    colour = output.shows_colour()
    parts = []
    for rec in records:
        if rec.get("original") is not None:
            swaps = ", ".join(f"{r['word']}: {r['old']!r} → {r['new']!r}" for r in rec["replacements"])
            parts.append(Text(f"original: {rec['original']}   swapped {swaps}", style="dim"))
        corruptions = {c["position"]: c for c in rec.get("corruptions", [])}
        if corruptions:
            samples = ", ".join(f"@{c['position']} {c['original']!r} → {c['sampled']!r}"
                                + ("" if c["replaced"] else " (the original)") for c in corruptions.values())
            parts.append(Text(f"original: {rec['text']}   generator sampled {samples} · seed {rec['seed']}",
                              style="dim"))
        heat = Text()
        for tok in rec["tokens"]:
            if tok["special"]:
                continue
            heat.append(" ")
            p = tok["probability"]
            heat.append(tok["token"], style=(heat_style(p) if colour else "") + (" underline" if tok["swapped"] else ""))
            if not colour:  # NO_COLOR or a dumb terminal: the shade after each token carries p(replaced)
                heat.append(output.shade_char(p))
        heat.append("    p(replaced): ", style="dim")
        if colour:
            for label, p in (("0", 0.0), ("0.5", 0.5), ("1", 1.0)):
                heat.append(f" {label} ", style=heat_style(p))
        else:
            heat.append("0 " + output.SHADES.strip() + " 1")
        parts.append(heat)
        table = Table(show_edge=False, header_style="bold", pad_edge=False)
        for name, justify in (("#", "right"), ("token", "left"), ("word", "right"), ("p(replaced)", "right"),
                              ("", "left"), ("verdict", "left")):
            table.add_column(name, justify=justify, no_wrap=True)
        for tok in rec["tokens"]:
            p = tok["probability"]
            verdict = "replaced" if tok["predicted_replaced"] else "original"
            if tok["swapped"]:
                verdict += "  ← replaced by the generator" if corruptions else "  ← swapped"
            elif tok["position"] in corruptions:
                verdict += "  ← generator sampled the original"
            table.add_row(str(tok["position"]), tok["token"], "" if tok["word"] is None else str(tok["word"]),
                          Text(f"{p:.3f}", style=heat_style(p)), Text(output.score_bar(p), style="red" if p > 0.5 else "green"),
                          verdict, style="dim" if tok["special"] else ("bold" if tok["swapped"] else None))
        parts.append(table)
        if corruptions:
            c = rec["caught"]
            parts.append(Text(f"caught {c['caught']} of {c['replaced']} replaced token(s); "
                              f"{c['false_alarms']} false alarm(s) among {c['original']} original token(s)",
                              style="bold"))
        parts.append("")
    return Group(*parts)
