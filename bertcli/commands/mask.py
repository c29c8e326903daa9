"""`bertcli mask`: the masking each pretraining scheme would apply to a text, and its statistics.

Needs only a tokenizer (no weights): a model folder, an alias, or a bare tokenizer file.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bertcli import output
from bertcli.commands._choices import Strategy
from bertcli.commands._common import FormatOpt, ModelOpt, QuietOpt, apply_output, examples, resolve
from bertcli.errors import BadInputError, ModelFileError, UsageError

EXAMPLES = examples(
    "bertcli mask 'You are expected to know the laws of your country' -m bert --strategy span --seed 3",
    "bertcli mask 'It was a great day' -m roberta --strategy dynamic --epochs 3",
    "bertcli mask 'The White House correspondents dinner was held on Saturday' -m albert --strategy ngram --seed 1",
    "bertcli mask 'I had a sudden epiphany' -m ./AlbertModel/spiece.model --strategy whole-word",
    "bertcli mask \"$(cat paragraph.txt)\" -m bert --strategy span --samples 2000",
    "bertcli mask 'It was a great day' -m bert --seed 1 --format json | jq -c '.masked_tokens'",
)

STRATEGY_HELP = ("static (BERT), dynamic (RoBERTa: a new mask each epoch), whole-word, "
                 "span (SpanBERT: geometric span lengths, boundaries marked), "
                 "ngram (ALBERT: n-grams of up to 3 words, p(n) ∝ 1/n)")
#: the --samples length table's title, by strategy
LENGTH_TITLES = {"span": "span lengths ℓ (words): Geometric(p=0.2) clipped at 10",
                 "ngram": "n-gram lengths n (words): p(n) ∝ 1/n, n ≤ 3 (ALBERT)"}
#: Caps on --epochs and --samples: far more than any lesson needs, and a typo of a few extra zeros fails at
#: once instead of running for hours (output is streamed, so memory does not depend on them either).
MAX_EPOCHS = 100_000
MAX_SAMPLES = 1_000_000
#: Epochs per table in the table view (each block repeats its title), so a long run prints as it goes.
TABLE_EPOCHS = 256
STYLES = {"mask": "bold white on red", "random": "black on yellow", "same": "black on green",
          "boundary": "bold cyan", "special": "dim"}


def mask(
    text: Annotated[str, typer.Argument(help="The text to mask.", show_default=False)],
    model: ModelOpt = None,
    strategy: Annotated[Strategy, typer.Option("--strategy", "-s", help=STRATEGY_HELP)] = "static",
    epochs: Annotated[int | None, typer.Option("--epochs", "-e", min=1, help="Show the masks of N epochs, streamed as they are drawn (default: 3 for dynamic, else 1; at most 100,000).", show_default=False)] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Random seed (default: a fresh one, printed so the run can be repeated).", show_default=False)] = None,
    mask_prob: Annotated[float | None, typer.Option("--mask-prob", help="Share of the tokens to select for prediction (default: the model family's pretraining rate: 0.30 for ModernBERT, else 0.15).", show_default=False)] = None,
    samples: Annotated[int | None, typer.Option("--samples", min=1, help="Statistics mode: mask the text N times (at most 1,000,000) and compare the observed rate, 80/10/10 split and span lengths with the expected distributions.", show_default=False)] = None,
    fmt: FormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Show how BERT (static), RoBERTa (dynamic), whole-word, SpanBERT (span) and ALBERT (ngram) masking would mask a text.

    Tokens come from the model's tokenizer; special tokens are never masked; the selected tokens are
    replaced 80/10/10 by the mask token ([MASK] or <mask>), a random vocabulary token, or left as they are.
    For span masking the span boundary tokens (just outside each span, what SBO predicts from) are marked ⟨ ⟩.
    ALBERT's n-gram masking draws n-grams of whole words (n ≤ 3, p(n) ∝ 1/n) and replaces each token 80/10/10.
    """
    apply_output(fmt, quiet)
    from bertcli.masking import RESAMPLED_EACH_EPOCH

    if mask_prob is not None and not 0.0 < mask_prob <= 1.0:
        raise UsageError(f"--mask-prob must be in (0, 1], got {mask_prob}")
    if samples is not None and epochs is not None:
        raise UsageError("--samples and --epochs do not go together")
    if epochs is not None and epochs > MAX_EPOCHS:
        raise UsageError(f"--epochs {epochs} is more than the {MAX_EPOCHS:,} this command shows")
    if samples is not None and samples > MAX_SAMPLES:
        raise UsageError(f"--samples {samples} is more than the {MAX_SAMPLES:,} this command draws")
    from bertcli.inputs import check_utf8

    check_utf8(text, "the text argument")
    if not text.strip():
        raise BadInputError("empty text: nothing to mask")
    fmt_resolved = output.resolve_format()
    from bertcli.tokenizer import load_tokenizer

    resolved = resolve(model)
    if mask_prob is None:
        from bertcli.masking import family_mask_prob

        mask_prob = family_mask_prob(resolved.config)
    tok = load_tokenizer(resolved)
    enc = tok.encode_batch([text])[0]
    special = [bool(m) for m in enc.special_tokens_mask]
    if all(special):
        raise BadInputError("the text gives no tokens to mask")
    if seed is None:  # drawn and announced only once the model and text are good: no seed line before an error
        import secrets

        seed = secrets.randbelow(2**31)
        output.info(f"seed {seed} (repeat this run with --seed {seed})")
    if tok.model_max_length and len(enc.ids) > tok.model_max_length:
        output.warn(f"the text has {len(enc.ids)} tokens, more than the model's maximum of {tok.model_max_length}")
    mask_token = _mask_token(tok)
    options = dict(strategy=strategy, rng=seed, mask_prob=mask_prob, mask_token=mask_token,
                   vocabulary=_vocabulary(tok), special_mask=special)
    header = {"model": resolved.display_name, "kind": tok.kind, "text": text, "strategy": strategy, "seed": seed,
              "mask_prob": mask_prob, "mask_token": mask_token}

    if samples is not None:
        from bertcli.masking import sample_statistics

        with output.status(f"masking the text {samples:,} times …"):
            stats = sample_statistics(list(enc.tokens), list(enc.word_ids), samples=samples, **options)
        stats.pop("strategy")
        output.emit_one({**header, **stats}, table=_stats_view, fmt=fmt_resolved)
        return

    from bertcli.masking import iter_mask_epochs

    n_epochs = epochs if epochs is not None else (3 if strategy == "dynamic" else 1)
    results = iter_mask_epochs(list(enc.tokens), list(enc.word_ids), epochs=n_epochs, **options)
    fresh = RESAMPLED_EACH_EPOCH[strategy]
    word_ids = list(enc.word_ids)
    # A generator: each epoch is written as it is drawn (the table view in blocks of TABLE_EPOCHS).
    records = (_record(header, epoch, r, special, word_ids, fresh) for epoch, r in enumerate(results, start=1))
    output.emit(records, table=_view, table_batch=TABLE_EPOCHS, fmt=fmt_resolved,
                tsv_columns=["epoch", "position", "token", "masked", "action", "special", "boundary"],
                tsv_rows=_tsv_rows)


def _mask_token(tok) -> str:
    """The tokenizer's mask token; a bare tokenizer.json names none, so look for [MASK] / <mask> in its vocabulary."""
    if tok.mask_token:
        return tok.mask_token
    for candidate in ("[MASK]", "<mask>"):
        if tok.token_id(candidate) is not None:
            return candidate
    raise ModelFileError("the tokenizer has no mask token ([MASK] or <mask>)")


def _vocabulary(tok) -> list[str]:
    """The tokenizer's vocabulary in id order, special tokens left out: what random replacements draw from."""
    backend = tok.backend
    specials = {t.content for t in backend.get_added_tokens_decoder().values() if t.special}
    specials.update(tok.special_tokens.values())
    vocab = backend.get_vocab(with_added_tokens=True)
    return [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if t not in specials]


def _record(header: dict, epoch: int, result, special: list[bool], word_ids: list, fresh: bool) -> dict[str, Any]:
    rec = {
        **header,
        "epoch": epoch,
        "new_mask": epoch == 1 or fresh,
        "budget": result.budget,
        "tokens": result.tokens,
        "masked_tokens": result.masked_tokens,
        "action": result.action,
        "selected": result.positions,
        "targets": result.targets,
        "special": special,
        "word_ids": word_ids,
    }
    if result.strategy == "span":
        rec["spans"] = [list(s) for s in result.spans]
        rec["boundaries"] = [list(b) for b in result.boundaries]
        rec["span_lengths"] = result.span_lengths
    elif result.strategy == "ngram":
        rec["spans"] = [list(s) for s in result.spans]
        rec["span_lengths"] = result.span_lengths
    return rec


def _boundary_positions(rec: dict) -> set[int]:
    return {p for pair in rec.get("boundaries", []) for p in pair if p is not None}


def _tsv_rows(rec: dict):
    bounds = _boundary_positions(rec)
    for i, token in enumerate(rec["tokens"]):
        yield {"epoch": rec["epoch"], "position": i, "token": token, "masked": rec["masked_tokens"][i],
               "action": rec["action"][i], "special": rec["special"][i], "boundary": i in bounds}


def masked_chips(rec: dict):
    """The masked sequence as coloured chips: [MASK], a→b replacements, (kept) selections, ⟨boundaries⟩."""
    from rich.text import Text

    bounds = _boundary_positions(rec)
    chips = Text()
    for i, (token, new, action) in enumerate(zip(rec["tokens"], rec["masked_tokens"], rec["action"])):
        if i:
            chips.append(" ")
        if rec["special"][i]:
            chips.append(f"⟨{token}⟩" if i in bounds else token,
                         style=STYLES["boundary"] + " dim" if i in bounds else STYLES["special"])
        elif action == "mask":
            chips.append(new, style=STYLES["mask"])
        elif action == "random":
            chips.append(f"{token}→{new}", style=STYLES["random"])
        elif action == "same":
            chips.append(f"({token})", style=STYLES["same"])
        elif i in bounds:
            chips.append(f"⟨{token}⟩", style=STYLES["boundary"])
        else:
            chips.append(token)
    return chips


def _legend(strategy: str, mask_token: str):
    from rich.text import Text

    legend = Text("legend: ", style="dim")
    legend.append(mask_token, style=STYLES["mask"])
    legend.append(" masked (80%)  ")
    legend.append("a→b", style=STYLES["random"])
    legend.append(" random token (10%)  ")
    legend.append("(a)", style=STYLES["same"])
    legend.append(" selected, left unchanged (10%)")
    if strategy == "span":
        legend.append("  ")
        legend.append("⟨a⟩", style=STYLES["boundary"])
        legend.append(" span boundary token (SBO)")
    return legend


def _view(records: list[dict]):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    if not records:
        return Text("")
    first = records[0]
    title = (f"{first['strategy']} masking · {_short(first['model'])} ({first['kind']}) · seed {first['seed']} · "
             f"budget {first['budget']} of {sum(1 for s in first['special'] if not s)} tokens")
    table = Table(title=title, title_justify="left", show_edge=False, header_style="bold", show_lines=False)
    table.add_column("epoch", justify="right")
    table.add_column("masked input")
    table.add_column("selected", justify="right")
    table.add_column("", style="dim")
    table.add_row("", Text(" ".join(first["tokens"]), style="dim"), "", "original")
    for rec in records:
        note = "new mask" if rec["new_mask"] else "same mask as epoch 1"
        if rec["strategy"] == "span" and rec["spans"]:
            note += f" · spans {', '.join(f'{e - s} tok' for s, e in rec['spans'])}"
        elif rec["strategy"] == "ngram" and rec["spans"]:
            note += f" · n-grams of {', '.join(str(n) for n in rec['span_lengths'])} word(s)"
        table.add_row(str(rec["epoch"]), masked_chips(rec), str(len(rec["selected"])), note)
    return Group(table, _legend(first["strategy"], first["mask_token"]))


def _short(name: str) -> str:
    """A model's name for a title: a hub id as is, a path by its last two parts."""
    from pathlib import Path

    path = Path(name)
    return "/".join(path.parts[-2:]) if path.is_absolute() else name


def _bar(fraction: float, width: int = 24) -> str:
    return "█" * round(max(0.0, min(1.0, fraction)) * width)


def _verdict(test: dict) -> str:
    if test["consistent"] is None:
        return f"χ² = {test['chi2']} (df {test['df']}): too few samples for the test"
    word = "[green]consistent[/green]" if test["consistent"] else "[red]NOT consistent[/red]"
    sign = "≤" if test["consistent"] else ">"
    return f"χ² = {test['chi2']} (df {test['df']}) {sign} {test['critical']} at α = 0.001: {word} with the expected distribution"


def _stats_view(rec: dict):
    from rich.console import Group
    from rich.table import Table

    rate = rec["rate"]
    head = (f"[bold]{rec['strategy']}[/bold] masking · {_short(rec['model'])} · {rec['samples']} samples · seed {rec['seed']} · "
            f"{rec['maskable']} maskable tokens, budget {rec['budget']}")
    rates = Table(title="masking rate", title_justify="left", show_edge=False, header_style="bold")
    for col in ("nominal", "expected (budget / n)", "observed", "selected per sample (min / mean / max)"):
        rates.add_column(col, justify="right")
    rates.add_row(f"{rate['nominal']:.2%}", f"{rate['expected']:.2%}", f"[bold]{rate['observed']:.2%}[/bold]",
                  f"{rate['selected_min']} / {rate['selected_mean']:.2f} / {rate['selected_max']}")
    split = rec["split"]
    splits = Table(title=f"80/10/10 split (one decision per {split['unit']})", title_justify="left",
                   show_edge=False, header_style="bold")
    for col, justify in (("replacement", "left"), ("count", "right"), ("observed", "right"),
                         ("expected", "right"), ("", "left")):
        splits.add_column(col, justify=justify)
    labels = {"mask": rec["mask_token"], "random": "random token", "same": "unchanged"}
    for key in ("mask", "random", "same"):
        obs = split["observed"][key]
        splits.add_row(labels[key], f"{split['counts'][key]:,}", f"{obs:.2%}", f"{split['expected'][key]:.0%}",
                       f"[{STYLES[key].split(' on ')[-1]}]{_bar(obs)}[/]")
    parts: list[Any] = [head, "", rates, "", splits, _verdict(split)]
    spans = rec.get("span_lengths")
    if spans:
        table = Table(title=LENGTH_TITLES[rec["strategy"]], title_justify="left",
                      show_edge=False, header_style="bold")
        for col, justify in (("ℓ", "right"), ("count", "right"), ("observed", "right"), ("expected", "right"),
                             ("observed █ / expected │", "left")):
            table.add_column(col, justify=justify)
        top = max(max(spans["observed"]), max(spans["expected"])) or 1.0
        for length, count, obs, exp in zip(spans["lengths"], spans["counts"], spans["observed"], spans["expected"]):
            bar = _bar(obs / top, 30)
            mark = round(exp / top * 30)
            cells = list(bar.ljust(30))
            if 0 < mark <= 30:
                cells[mark - 1] = "│" if cells[mark - 1] == " " else "┃"
            table.add_row(str(length), f"{count:,}", f"{obs:.2%}", f"{exp:.2%}", "[cyan]" + "".join(cells) + "[/cyan]")
        parts += ["", table, f"mean {rec['strategy'].replace('ngram', 'n-gram')} length: observed {spans['mean_observed']:.3f}, expected "
                  f"{spans['mean_expected']:.3f} words", _verdict(spans)]
        if spans["longest_run"] < len(spans["lengths"]):
            parts.append(f"[dim]the text's longest run is {spans['longest_run']} words: expected lengths are "
                         "renormalised over those that fit[/dim]")
    return Group(*parts)
