"""`bertcli tokenize`: tokens, ids, masks and offsets exactly as transformers' tokenizer gives them."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bertcli import output
from bertcli.choices import BASE_FORMATS, choice_enum
from bertcli.commands._common import (
    FORMAT_HELP,
    FileOpt,
    ModelOpt,
    QuietOpt,
    apply_output,
    examples,
    format_option,
    resolve,
)
from bertcli.errors import UsageError
from bertcli.inputs import Line, batched, iter_lines, require_nonempty, split_pair

EXAMPLES = examples(
    'bertcli tokenize -m ./AlbertModel "Beijing is a beautiful city"',
    "bertcli tokenize -m roberta 'I had a sudden epiphany' --format json",
    "cat corpus.txt | bertcli tokenize -m bert --format ids > ids.txt",
    "cat corpus.txt | bertcli tokenize -m bert --count | paste - corpus.txt",
    "bertcli tokenize -m bert --truncate 16 --file long.txt",
    "bertcli tokenize -m bert 'Who wrote it?' --pair 'Ada wrote it.'",
)

BATCH_LINES = 1024
#: ``ids`` (one line of ids per text) for tokens; ``text`` (plain lines) for --count and --truncate
TokenizeFormat = choice_enum("TokenizeFormat", (*BASE_FORMATS, "ids", "text"))
TokenizeFormatOpt = format_option(TokenizeFormat, FORMAT_HELP + "; ids (tokens), text (--count, --truncate)")


def tokenize(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to tokenize (default: lines of --file or stdin).", show_default=False)] = None,
    model: ModelOpt = None,
    file: FileOpt = None,
    pair: Annotated[str | None, typer.Option("--pair", help="Second sequence for a single TEXT (question/context, sentence pairs).")] = None,
    pairs: Annotated[bool, typer.Option("--pairs", help="Each input line is 'TEXT<TAB>PAIR'.")] = False,
    max_length: Annotated[int | None, typer.Option("--max-length", min=1, help="Truncate to N tokens (implies --truncation).")] = None,
    truncation: Annotated[bool, typer.Option("--truncation", help="Truncate to --max-length, or to the model's maximum length.")] = False,
    no_special: Annotated[bool, typer.Option("--no-special-tokens", help="Leave out [CLS]/[SEP] (<s>/</s>).")] = False,
    count: Annotated[bool, typer.Option("--count", help="Print only the number of tokens of each text, without special tokens ([CLS]/[SEP]).")] = False,
    truncate: Annotated[int | None, typer.Option("--truncate", min=0, help="Print each text cut to its first N tokens (special tokens not counted), as text.")] = None,
    fmt: TokenizeFormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Tokenize texts: tokens, ids, token types, attention mask, offsets.

    Results equal transformers' AutoTokenizer for the same model (WordPiece, SentencePiece, byte-level BPE).
    Input streams: one text a line from --file or stdin, in constant memory.
    """
    apply_output(fmt, quiet)
    if count and truncate is not None:
        raise UsageError("--count and --truncate do not go together")
    if pair is not None and pairs:
        raise UsageError("--pair and --pairs do not go together")
    if pair is not None and texts and len(texts) != 1:
        raise UsageError("--pair goes with exactly one TEXT (use --pairs for many)")
    if pair is not None and not texts:
        raise UsageError("--pair needs one TEXT argument")
    if pair is not None:
        from bertcli.inputs import check_utf8

        check_utf8(pair, "--pair")
    mode = "count" if count else "truncate" if truncate is not None else "tokens"
    fmt_resolved = output.resolve_format(extras=("ids",) if mode == "tokens" else ("text",))

    from bertcli.tokenizer import load_tokenizer

    resolved = resolve(model)
    with output.loading(f"the tokenizer of {resolved.display_name}"):
        tok = load_tokenizer(resolved)
    limit = max_length
    if truncation and limit is None:
        limit = tok.model_max_length
    long_lines = 0

    def records():
        nonlocal long_lines
        lines = require_nonempty(iter_lines(texts, file))
        line_no = 0  # records count input lines (or TEXT arguments) from 1, like every command's "line"
        for batch in batched(lines, BATCH_LINES):
            firsts, seconds = _split_pairs(batch, pair, pairs)
            if mode == "count":
                for line, n in zip(batch, tok.count(firsts)):
                    line_no += 1
                    yield {"line": line_no, "text": line.text, "count": n}
                continue
            if mode == "truncate":
                # Encoded truncated (from a prefix of each long line: a huge line costs what a long one does).
                encs = tok.encode_batch(firsts, add_special_tokens=False, max_length=truncate or 1)
                for text, enc in zip(firsts, encs):
                    line_no += 1
                    end = enc.offsets[truncate - 1][1] if truncate and len(enc.ids) >= truncate else len(text)
                    yield {"line": line_no, "text": text[:end] if truncate else "", "count": min(truncate, len(enc.ids))}
                continue
            encs = tok.encode_batch(firsts, seconds, add_special_tokens=not no_special, max_length=limit)
            if limit is None and tok.model_max_length:
                long_lines += sum(len(enc.ids) > tok.model_max_length for enc in encs)
            if fmt_resolved == "ids":  # the pipe format: skip building full records
                yield from ({"input_ids": enc.ids} for enc in encs)
                continue
            for i, enc in enumerate(encs):
                line_no += 1
                yield _record(tok, line_no, firsts[i], seconds[i] if seconds else None, enc)

    if mode != "tokens" and output.current().settings.format in ("auto", "text"):
        # ttok-style: plain lines, one per input line, on a terminal and in pipes alike.
        _write_plain(str(r["count"]) if mode == "count" else r["text"] for r in records())
    elif fmt_resolved == "ids":
        _write_plain(" ".join(map(str, r["input_ids"])) for r in records())
    elif mode == "tokens":
        output.emit(records(), table=lambda recs: _table(recs, tok), table_batch=1, fmt=fmt_resolved,
                    tsv_rows=_tsv_rows, tsv_columns=_tsv_columns(tok))
    else:
        output.emit(records(), table=_count_table if mode == "count" else _truncate_table, fmt=fmt_resolved)
    if long_lines:
        output.warn(f"{long_lines} text(s) longer than the model's maximum of {tok.model_max_length} tokens; "
                    "the model cannot take them whole (use --truncation or --max-length)")


def _split_pairs(batch: list[Line], pair: str | None, pairs: bool) -> tuple[list[str], list[str] | None]:
    if pair is not None:
        return [batch[0].text], [pair]
    if not pairs:
        return [line.text for line in batch], None
    firsts, seconds = zip(*(split_pair(line) for line in batch))
    return list(firsts), list(seconds)


def _record(tok, line: int, text: str, pair: str | None, enc) -> dict:
    rec: dict = {"line": line, "text": text}
    if pair is not None:
        rec["pair"] = pair
    rec["tokens"] = tok.token_strings(enc)
    rec["input_ids"] = enc.ids
    if tok.uses_token_types:
        rec["token_type_ids"] = enc.type_ids
    rec["attention_mask"] = enc.attention_mask
    rec["offsets"] = enc.offsets
    rec["word_ids"] = enc.word_ids
    rec["special_tokens_mask"] = enc.special_tokens_mask
    if pair is not None:
        rec["sequence_ids"] = enc.sequence_ids
    return rec


def _write_plain(lines) -> None:
    out = sys.stdout
    for n, line in enumerate(lines, start=1):
        out.write(line + "\n")
        if n % 256 == 0:
            out.flush()
    out.flush()


def _tsv_columns(tok) -> list[str]:
    cols = ["line", "position", "token", "id"]
    if tok.uses_token_types:
        cols.append("token_type_id")
    return cols + ["attention_mask", "start", "end", "word_id", "special"]


def _tsv_rows(record: dict):
    for i, token in enumerate(record["tokens"]):
        row = {"line": record["line"], "position": i, "token": token, "id": record["input_ids"][i],
               "attention_mask": record["attention_mask"][i], "start": record["offsets"][i][0],
               "end": record["offsets"][i][1], "word_id": record["word_ids"][i],
               "special": bool(record["special_tokens_mask"][i])}
        if "token_type_ids" in record:
            row["token_type_id"] = record["token_type_ids"][i]
        yield row


CHIP_STYLES = ("black on bright_cyan", "black on bright_yellow", "black on bright_green", "black on bright_magenta")


def token_chips(text: str, offsets: list[list[int]], special: list[int]):
    """The text with each token's character span coloured in turn, so the cuts are visible at a glance."""
    from rich.text import Text

    chips = Text()
    pos = 0
    colour = 0
    for (start, end), is_special in zip(offsets, special):
        if is_special or end <= start or start < pos:
            continue
        chips.append(text[pos:start])
        chips.append(text[start:end], style=CHIP_STYLES[colour % len(CHIP_STYLES)])
        colour += 1
        pos = end
    chips.append(text[pos:])
    return chips


def _table(records: list[dict], tok):
    from rich.console import Group
    from rich.table import Table

    parts = []
    for rec in records:
        table = Table(title=None, show_edge=False, header_style="bold", pad_edge=False)
        for name, justify in (("#", "right"), ("token", "left"), ("id", "right")):
            table.add_column(name, justify=justify)
        if "token_type_ids" in rec:
            table.add_column("type", justify="right")
        for name in ("mask", "offsets", "word", "special"):
            table.add_column(name, justify="right" if name != "special" else "center")
        for i, token in enumerate(rec["tokens"]):
            row = [str(i), token, str(rec["input_ids"][i])]
            if "token_type_ids" in rec:
                row.append(str(rec["token_type_ids"][i]))
            word = rec["word_ids"][i]
            special = rec["special_tokens_mask"][i]
            row += [str(rec["attention_mask"][i]), f"{rec['offsets'][i][0]}–{rec['offsets'][i][1]}",
                    "" if word is None else str(word), "✓" if special else ""]
            table.add_row(*row, style="dim" if special else None)
        seq_ids = rec.get("sequence_ids")
        first_offsets = [o for o, s in zip(rec["offsets"], seq_ids or [0] * len(rec["offsets"])) if s in (0, None)]
        first_special = [m for m, s in zip(rec["special_tokens_mask"], seq_ids or [0] * len(rec["offsets"])) if s in (0, None)]
        header = token_chips(rec["text"], first_offsets, first_special)
        specials = sum(rec["special_tokens_mask"])
        counts = f"{len(rec['tokens'])} tokens, {len(rec['tokens']) - specials} without specials" if specials else f"{len(rec['tokens'])} tokens"
        header.append(f"   ({counts}, {tok.kind})", style="dim")
        parts += [header, table, ""]
    return Group(*parts)


def _count_table(records: list[dict]):
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    table.add_column("tokens", justify="right")
    table.add_column("text", overflow="ellipsis", no_wrap=True, max_width=80)
    for rec in records:
        table.add_row(str(rec["count"]), rec["text"])
    return table


def _truncate_table(records: list[dict]):
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    table.add_column("tokens", justify="right")
    table.add_column("text")
    for rec in records:
        table.add_row(str(rec["count"]), rec["text"])
    return table
