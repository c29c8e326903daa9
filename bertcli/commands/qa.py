"""`bertcli qa`: extractive question answering with any *ForQuestionAnswering model (SpanBERT, BERT, …)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from bertcli import output
from bertcli.backends import DEFAULT_BACKEND
from bertcli.commands._choices import BackendOption
from bertcli.commands._common import DeviceOpt, FormatOpt, ModelOpt, QuietLongOpt, apply_output, examples, resolve
from bertcli.errors import BadInputError, UsageError
from bertcli.inputs import check_utf8, decode_line, open_input, read_document

EXAMPLES = examples(
    'bertcli qa -m spanbert-qa -q "What is Maching Learning?" -c "Machine Learning is a subset of Artifical '
    'Intelligence. It is widely for creating a variety of applications such as email filtering and computer vision"',
    "bertcli qa -m ./my-squad2-model -q 'Who wrote it?' -q 'When?' --context-file story.txt --top-k 3",
    "cat story.txt | bertcli qa -m spanbert-qa -q 'Where is the tower?' --show-windows",
    "bertcli qa -m spanbert-qa --input questions.jsonl > answers.jsonl   # {\"id\", \"question\", \"context\"} a line",
    "bertcli qa -m spanbert-qa -q 'Who won?' -c \"$TEXT\" --no-null --format json",
)

#: Answer fields, in output order (the best answer's are also the record's own).
ANSWER_FIELDS = ("answer", "score", "start", "end", "window", "no_answer")

#: Contexts from this many characters on get a progress bar (on a terminal): about 100 windows of 384 tokens.
PROGRESS_CHARS = 100_000

#: Characters of context shown around the answer in the table view of a long context.
EXCERPT_CHARS = 240


def qa(
    question: Annotated[list[str] | None, typer.Option("--question", "-q", help="A question (repeat for several questions over one context).", show_default=False)] = None,
    model: ModelOpt = None,
    context: Annotated[str | None, typer.Option("--context", "-c", help="The context to find answers in (default: --context-file or stdin).", show_default=False)] = None,
    context_file: Annotated[Path | None, typer.Option("--context-file", help="Read the context from FILE ('-' = stdin); offsets count its characters.", show_default=False)] = None,
    input_file: Annotated[Path | None, typer.Option("--input", help="JSON Lines of {\"id\", \"question\", \"context\"} ('-' = stdin): one answer record each, streamed.", show_default=False)] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Return the N best answers, ranked across all windows.")] = 1,
    max_length: Annotated[int | None, typer.Option("--max-length", help="Tokens per window [default: min(model max, 384)].", show_default=False)] = None,
    doc_stride: Annotated[int | None, typer.Option("--doc-stride", min=0, help="Tokens shared by consecutive windows [default: min(max-length / 2, 128)].", show_default=False)] = None,
    max_answer_length: Annotated[int, typer.Option("--max-answer-length", min=1, help="Longest answer, in tokens.")] = 15,
    null_threshold: Annotated[float, typer.Option("--null-threshold", help="Answer 'no answer' only when the null score beats the best span's by more than X.")] = 0.0,
    no_null: Annotated[bool, typer.Option("--no-null", help="Never answer 'no answer': always the best span (transformers' handle_impossible_answer=False).")] = False,
    show_windows: Annotated[bool, typer.Option("--show-windows", help="Also show how the context was split into windows.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Windows per model call.")] = 32,
    device: DeviceOpt = "auto",
    backend: BackendOption = DEFAULT_BACKEND,
    fmt: FormatOpt = None,
    quiet: QuietLongOpt = False,
) -> None:
    """Answer questions from a context: the best span, its score and character offsets.

    Long contexts are split into overlapping windows (--max-length, --doc-stride) and answers are ranked
    across all of them, as transformers 4.x's question-answering pipeline did. For SQuAD 2.0 models
    (e.g. spanbert-qa) "no answer" wins when the null score beats the best span (--null-threshold);
    --no-null forces the best span. With --input, a malformed line is reported with its line number,
    the other records are still answered, and the exit code is 5 at the end.
    """
    apply_output(fmt, quiet)
    fmt_resolved = output.resolve_format()
    questions = list(question or [])
    if input_file is not None:
        if questions or context is not None or context_file is not None:
            raise UsageError("--input brings its own questions and contexts: drop -q/--context/--context-file")
    else:
        if not questions:
            raise UsageError("give a question with -q/--question (or records with --input FILE.jsonl)")
        if context is not None and context_file is not None:
            raise UsageError("give the context with --context or --context-file, not both")
        for i, q in enumerate(questions, start=1):
            check_utf8(q, f"question {i}" if len(questions) > 1 else "the question")
            if not q.strip():
                raise BadInputError("the question is empty")

    from bertcli.qa import QAItem, QAOptions, load_answerer

    options = QAOptions(max_length=max_length, doc_stride=doc_stride, max_answer_len=max_answer_length,
                        top_k=top_k, allow_null=not no_null, null_threshold=null_threshold, batch_size=batch_size)
    if input_file is None:
        text = _read_context(context, context_file)  # before loading the model: bad input fails fast
        items: Iterator[QAItem] = iter([QAItem(q, text, None) for q in questions])
    else:
        items = _read_records(input_file)
    answerer = load_answerer(resolve(model), device=device, options=options, backend=backend)

    failed = total = 0
    progress = _WindowProgress() if input_file is None and len(text) >= PROGRESS_CHARS else None

    def records() -> Iterator[dict]:
        nonlocal failed, total
        for result in answerer.answer_all(items, progress=progress):
            total += 1
            if result.error is not None:
                if input_file is None:
                    raise result.error
                failed += 1
                output.error(f"{result.item.key[0]}: {result.error}")
                continue
            yield _record(result, top_k=top_k, show_windows=show_windows, batch=input_file is not None,
                          with_context=fmt_resolved == "table")

    try:
        output.emit(records(), table=_table, table_batch=1, fmt=fmt_resolved, tsv_columns=_tsv_columns(input_file),
                    tsv_rows=_tsv_rows)
    finally:
        if progress is not None:
            progress.stop()
    if failed:
        raise BadInputError(f"{failed} of {total} input records could not be answered (see the lines above)")


class _WindowProgress:
    """A progress bar on stderr (terminal only) counting the windows of a long context as batches finish."""

    def __init__(self) -> None:
        import time

        self.clock = time.perf_counter
        self.start = self.clock()
        self.done = 0
        self.bar = output.make_progress(unit="windows")
        self.task = None
        if self.bar is not None:
            self.bar.start()
            self.task = self.bar.add_task("answering", total=None, rate="")

    def __call__(self, windows: int) -> None:
        self.done += windows
        if self.bar is not None:
            rate = self.done / max(self.clock() - self.start, 1e-9)
            self.bar.update(self.task, completed=self.done, rate=f"{rate:,.0f} windows/s")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# ------------------------------------------------------------------------------------------------- input


def _read_context(context: str | None, context_file: Path | None) -> str:
    """The context from --context, --context-file (or '-'), or stdin; strict UTF-8, BOM dropped."""
    if context is not None:
        text = check_utf8(context, "--context")
    else:
        text = read_document(context_file, what="context file",
                             no_input="no context: give --context TEXT, --context-file FILE, or pipe it on stdin")
    if not text.strip():
        raise BadInputError("the context is empty")
    return text


def _read_records(path: Path) -> Iterator:
    """QAItems from a JSON Lines file, streamed; a bad line becomes an item with its error set."""
    from bertcli.qa import QAItem

    if str(path) == "-":
        handle, source = sys.stdin.buffer, "<stdin>"
    else:
        path = Path(path).expanduser()
        handle = open_input(path, what="JSON Lines file")  # closed when the stream ends
        source = str(path)
    seen = False
    try:
        for number, raw in enumerate(handle, start=1):
            where = f"{source}, line {number}"
            if not raw.strip():
                continue
            seen = True
            try:
                record = json.loads(decode_line(raw, first=number == 1))
            except UnicodeDecodeError:
                yield QAItem("", "", (where, None), error=BadInputError("not UTF-8 text"))
                continue
            except ValueError as exc:
                yield QAItem("", "", (where, None), error=BadInputError(f"not valid JSON ({exc.msg} at column {exc.colno})"))
                continue
            if not isinstance(record, dict):
                yield QAItem("", "", (where, None), error=BadInputError('expected an object {"id", "question", "context"}'))
                continue
            problem = next((f'"{k}" must be a string' for k in ("question", "context")
                            if k in record and not isinstance(record[k], str)), None)
            missing = [k for k in ("question", "context") if k not in record]
            if missing:
                problem = f"missing {' and '.join(repr(k).replace(chr(39), chr(34)) for k in missing)}"
            key = (where, record.get("id"))
            if problem:
                yield QAItem("", "", key, error=BadInputError(problem))
                continue
            yield QAItem(record["question"], record["context"], key)
        if not seen:  # like embed/tokenize: nothing to answer is bad input, not success
            raise BadInputError(f"empty input: {source} holds no records to answer")
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


# ------------------------------------------------------------------------------------------------- output


def _record(result, *, top_k: int, show_windows: bool, batch: bool, with_context: bool) -> dict:
    best = result.answers[0]
    rec: dict = {}
    if batch:
        rec["id"] = result.item.key[1]
    rec["question"] = result.item.question
    rec.update({name: best[name] for name in ANSWER_FIELDS})
    rec["null_score"] = best["null_score"]
    if top_k > 1:
        rec["answers"] = [{name: a[name] for name in ANSWER_FIELDS} for a in result.answers]
    if show_windows:
        rec["windows"] = list(result.windows)  # already summaries (`bertcli.qa.window_summary`)
    if with_context:
        rec["context"] = result.item.context
    return rec


def _tsv_columns(input_file) -> list[str]:
    return (["id"] if input_file is not None else []) + ["question", "rank", *ANSWER_FIELDS, "null_score"]


def _tsv_rows(record: dict):
    for rank, answer in enumerate(record.get("answers") or [record], start=1):
        yield {**record, **answer, "rank": rank}


def _excerpt(context: str, start: int, end: int) -> tuple[str, int]:
    """The context, or a window of it around [start, end) for long contexts: (text, offset of text[0])."""
    if len(context) <= 3 * EXCERPT_CHARS:
        return context, 0
    first = max(0, start - EXCERPT_CHARS)
    last = min(len(context), end + EXCERPT_CHARS)
    return context[first:last], first


def _table(records: list[dict]):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts = []
    for rec in records:
        head = Text()
        if rec.get("id") is not None:
            head.append(f"[{rec['id']}] ", style="dim")
        head.append("Q ", style="bold")
        head.append(rec["question"])
        parts.append(head)
        line = Text("A ", style="bold")
        if rec["no_answer"]:
            line.append("(no answer)", style="bold magenta")
        else:
            line.append(rec["answer"], style="bold green")
        line.append(f"   score {rec['score']:.4f}", style="")
        if rec.get("null_score") is not None:
            line.append(f"   null {rec['null_score']:.4f}", style="dim")
        if not rec["no_answer"]:
            line.append(f"   chars {rec['start']}–{rec['end']}   window {rec['window']}", style="dim")
        parts.append(line)
        answers = rec.get("answers")
        if answers:
            table = Table(show_edge=False, header_style="bold", pad_edge=False)
            for name, justify in (("#", "right"), ("answer", "left"), ("score", "right"), ("chars", "right"),
                                  ("window", "right")):
                table.add_column(name, justify=justify)
            for rank, a in enumerate(answers, start=1):
                table.add_row(str(rank), "(no answer)" if a["no_answer"] else a["answer"], f"{a['score']:.4f}",
                              "" if a["no_answer"] else f"{a['start']}–{a['end']}", str(a["window"]))
            parts.append(table)
        context = rec.get("context")
        if context is not None:
            text, shift = _excerpt(context, rec["start"], rec["end"])
            body = Text(("…" if shift else "") + text + ("…" if shift + len(text) < len(context) else ""),
                        style="dim" if rec["no_answer"] else "")
            lead = 1 if shift else 0
            for a in answers or []:
                if not a["no_answer"] and a is not answers[0] and shift <= a["start"] and a["end"] <= shift + len(text):
                    body.stylize("underline", a["start"] - shift + lead, a["end"] - shift + lead)
            if not rec["no_answer"]:
                body.stylize("bold black on yellow", rec["start"] - shift + lead, rec["end"] - shift + lead)
            parts.append(body)
        windows = rec.get("windows")
        if windows:
            table = Table(title=f"{len(windows)} window(s)", show_edge=False, header_style="bold", pad_edge=False)
            for name in ("window", "tokens", "context tokens", "chars"):
                table.add_column(name, justify="right")
            table.add_column("starts with", overflow="ellipsis", no_wrap=True, max_width=48)
            for w in windows:
                starts = (context or "")[w["start"] : w["start"] + 48].split("\n")[0]
                table.add_row(str(w["window"]), str(w["tokens"]), str(w["context_tokens"]),
                              f"{w['start']}–{w['end']}", starts)
            parts.append(table)
        parts.append(Text(""))
    return Group(*parts)
