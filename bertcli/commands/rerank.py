"""`bertcli rerank`: order documents by a cross-encoder's score for a query."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from bertcli import output
from bertcli.backends import DEFAULT_BACKEND
from bertcli.commands._choices import BackendOption, Function
from bertcli.commands._common import (
    DeviceOpt,
    FormatOpt,
    ModelOpt,
    QuietLongOpt,
    ThreadsOpt,
    apply_output,
    batch_size_option,
    examples,
    file_option,
    max_length_option,
    max_tokens_option,
    resolve,
)
from bertcli.errors import BadInputError, UsageError

EXAMPLES = examples(
    "bertcli rerank -m ./ms-marco-MiniLM -q 'how do cats purr' 'Cats purr by vibrating their larynx.' 'Dogs bark.'",
    "bertcli rerank -m ./ms-marco-MiniLM -q 'capital of France' --file passages.txt --top-k 5 --return-documents",
    "bertcli rerank -m ./ms-marco-MiniLM --input queries.jsonl -f jsonl   # {\"query\", \"docs\"} a line",
)

DocFileOpt = file_option("document")
PairBatchSizeOpt = batch_size_option("pair")
PairMaxTokensOpt = max_tokens_option("pair")
MaxLengthOpt = max_length_option("Truncate each (query, document) pair to N tokens, longest first (default: the "
                                 "model's limit).")


def rerank(
    docs: Annotated[list[str] | None, typer.Argument(help="Documents to rank (default: lines of --file or stdin).", show_default=False)] = None,
    model: ModelOpt = None,
    query: Annotated[str | None, typer.Option("--query", "-q", help="The query to rank the documents for.", show_default=False)] = None,
    file: DocFileOpt = None,
    input_file: Annotated[Path | None, typer.Option("--input", help="JSON Lines of {\"query\": …, \"docs\": […]}: many queries, each ranked on its own.", show_default=False)] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, help="Keep the best N documents of each query (default: all).", show_default=False)] = None,
    return_documents: Annotated[bool, typer.Option("--return-documents", help="Put each document's text in its record.")] = False,
    function: Annotated[Function | None, typer.Option("--function", help="softmax | sigmoid | none. Default: as sentence-transformers' CrossEncoder: the folder's activation_fn, else sigmoid for a one-label model.", show_default=False)] = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    batch_size: PairBatchSizeOpt = None,
    max_tokens: PairMaxTokensOpt = None,
    max_length: MaxLengthOpt = None,
    backend: BackendOption = DEFAULT_BACKEND,
    fmt: FormatOpt = None,
    quiet: QuietLongOpt = False,
) -> None:
    """Rerank documents for a query with a cross-encoder (a one-label sequence-classification model).

    Scores equal sentence-transformers' CrossEncoder.predict, and the order its rank() gives: best first, ties
    in input order. Records carry the document's 0-based corpus_id and its line; --return-documents adds its
    text. --input ranks many queries, one JSON record {"query", "docs"} a line.
    """
    apply_output(fmt, quiet)
    fmt_resolved = output.resolve_format()
    if (query is None) == (input_file is None):
        raise UsageError("give the query with -q QUERY, or many queries with --input FILE.jsonl (not both)")
    if input_file is not None and (docs or file is not None):
        raise UsageError("--input holds the documents of each query: give no DOC arguments or --file with it")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from bertcli.classify import ClassifyOptions, check_reranker, load_classifier, read_queries
    from bertcli.classify import rerank as rank_documents
    from bertcli.inputs import check_utf8, iter_lines

    options = ClassifyOptions(max_length=max_length, device=device, threads=threads, max_tokens=max_tokens,
                              batch_size=batch_size, backend=backend, function=function)
    if query is not None:
        check_utf8(query, "-q")
        if not query.strip():
            raise BadInputError("-q: the query is empty")
        queries = iter([(None, query, iter_lines(docs, file))])
    else:
        from bertcli.inputs import Line

        queries = ((number, q, [Line(i, d, "doc") for i, d in enumerate(documents, start=1)])
                   for number, q, documents in read_queries(input_file))
    first = next(queries, None)  # --input's first record is checked before the model loads
    if first is None:
        raise UsageError(f"{input_file}: no queries")
    resolved = resolve(model)
    check_reranker(resolved)
    with output.loading(resolved.display_name):
        classifier = load_classifier(resolved, options, rerank=True)
    with_text = return_documents or fmt_resolved == "table"  # the table shows each document

    def records():
        from itertools import chain

        for number, text, documents in chain([first], queries):
            where = "-q" if number is None else f"{input_file}, line {number}"
            for ranked in rank_documents(classifier, text, documents, top_k=top_k, where=where, keep_text=with_text):
                yield _record(ranked, text, number, with_text)

    output.emit(output.track(records(), description="ranking", unit="documents"), table=_table, fmt=fmt_resolved,
                tsv_columns=["query", "rank", "corpus_id", "line", "score", *(["text"] if return_documents else [])])
    if classifier.stats.truncated:
        output.warn(f"{classifier.stats.truncated} (query, document) pair(s) longer than {classifier.max_length} "
                    f"tokens were truncated (the first: {classifier.stats.first_truncated})")


def _record(ranked, query: str, query_line: int | None, with_text: bool) -> dict:
    rec: dict = {}
    if query_line is not None:
        rec["query_line"] = query_line
    rec.update(query=query, rank=ranked.rank, corpus_id=ranked.corpus_id, line=ranked.document.number,
               score=ranked.score)
    if with_text:
        rec["text"] = ranked.document.text
    return rec


def _table(records: list[dict]):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list = []
    table = None
    current = None
    for rec in records:
        key = (rec.get("query_line"), rec["query"])
        if key != current:
            current = key
            table = Table(show_edge=False, header_style="bold", pad_edge=False)
            for name, justify in (("rank", "right"), ("score", "right"), ("", "left"), ("line", "right"),
                                  ("document", "left")):
                table.add_column(name, justify=justify, no_wrap=name != "document", ratio=1 if name == "document" else None)
            parts += [*([""] if parts else []), Text(f"query: {rec['query']}", style="bold"), table]
        score = rec["score"]
        table.add_row(str(rec["rank"]), f"{score:.4f}", output.score_bar(min(1.0, max(0.0, score)), width=16),
                      str(rec["line"]), rec.get("text", ""))
    return Group(*parts)
