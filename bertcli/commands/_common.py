"""Options every command shares, declared once, and the small glue between options and the core.

Options with a fixed set of values are typed with str Enums built from the core's tuples (`bertcli.choices`),
so ``--help`` lists the values, the shell completes them and click checks them once: `Format` and
`format_option` here, the model-running commands' own (`--pooling`, `--backend` …) in `_choices`.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from bertcli import output, settings
from bertcli.choices import BASE_FORMATS, DEVICE_KINDS, choice_enum
from bertcli.env import hub_cache_dir
from bertcli.errors import HubError, OfflineError
from bertcli.resolve import ALIASES, ResolvedModel, resolve_model

FORMAT_HELP = "Output: auto (table on a terminal, jsonl when piped), table, json, jsonl, tsv"


def complete_model(ctx: typer.Context, incomplete: str) -> list[str]:
    """`-m <TAB>`: the aliases and the repo ids in the hub cache (a directory listing: no hub, no torch)."""
    names = list(ALIASES)
    root_params = ctx.find_root().params if ctx is not None else {}
    try:
        with os.scandir(hub_cache_dir(root_params.get("cache_dir"))) as entries:
            names += sorted(entry.name[len("models--"):].replace("--", "/") for entry in entries
                            if entry.name.startswith("models--") and entry.is_dir())
    except OSError:  # no cache yet, or unreadable: the aliases still complete
        pass
    return [name for name in names if name.startswith(incomplete)]


def complete_device(incomplete: str) -> list[str]:
    """`--device <TAB>`: the device kinds (``cuda:N`` is typed by hand)."""
    return [kind for kind in DEVICE_KINDS if kind.startswith(incomplete)]


ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", envvar="BERTCLI_MODEL", show_envvar=True, autocompletion=complete_model,
                 help="Alias (bert, albert, roberta, electra, …), hub id org/name[@rev], folder, or tokenizer file."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or info messages on stderr.")]
QuietLongOpt = Annotated[bool, typer.Option("--quiet", help="No progress or info messages on stderr.")]
RevisionOpt = Annotated[str | None, typer.Option("--revision", help="Hub revision: branch, tag or commit.")]
DeviceOpt = Annotated[str, typer.Option("--device", autocompletion=complete_device,
                                        help="cpu, cuda, cuda:N, mps or auto.")]

#: --format's type for the commands with no formats of their own (a member is its plain string: ``"json"``)
Format = choice_enum("Format", BASE_FORMATS)


def format_option(enum: type[Enum] = Format, help: str = FORMAT_HELP):
    """The per-command ``--format/-f`` typed by ``enum`` (`Format`, or a command's own with its extras)."""
    return Annotated[enum | None, typer.Option("--format", "-f", help=help, show_default=False, case_sensitive=False)]


FormatOpt = format_option()


# The input and batching options of the model-running commands. A factory takes what the command's help must
# name (what a line of --file is, what a batch holds); each alias is the factory's most common form.
THREADS_HELP = "CPU threads for torch or ONNX Runtime (default: the physical cores)."


def file_option(what: str = "text"):
    """``--file``: one ``what`` (text, document …) a line, read from FILE or stdin."""
    return Annotated[Path | None, typer.Option("--file", help=f"Read one {what} a line from FILE ('-' = stdin).")]


def threads_option(help: str = THREADS_HELP):
    """``--threads N`` (N ≥ 1; default None: the physical cores)."""
    return Annotated[int | None, typer.Option("--threads", min=1, help=help, show_default=False)]


def batch_size_option(what: str = "text"):
    """``--batch-size N``: at most N ``what``s (texts, pairs, windows …) a batch (default None: the token budget)."""
    return Annotated[int | None, typer.Option(
        "--batch-size", min=1, show_default=False,
        help=f"At most N {what}s per batch (default: only the token budget bounds it).")]


def max_tokens_option(what: str = "text"):
    """``--max-tokens N``: a batch's token budget, counted as ``what``s × the longest one, padding included."""
    return Annotated[int | None, typer.Option(
        "--max-tokens", min=1, show_default=False,
        help=f"Token budget of a batch: {what}s × longest {what}, padding included "
             "(default: 1024 on cpu, 16384 on a GPU).")]


def max_length_option(help: str):
    """``--max-length N`` (N ≥ 2: room for the special tokens); ``help`` says what is cut, and how, per command."""
    return Annotated[int | None, typer.Option("--max-length", min=2, help=help, show_default=False)]


FileOpt = file_option()
ThreadsOpt = threads_option()
BatchSizeOpt = batch_size_option()
MaxTokensOpt = max_tokens_option()


def apply_output(fmt: str | None = None, quiet: bool = False) -> None:
    """Per-command --format/--quiet override the global ones."""
    if fmt is not None:
        output.configure(format=str(fmt))
    if quiet:
        output.configure(quiet=True)


def resolve(ref: str | None, *, revision: str | None = None, config_only: bool = False) -> ResolvedModel:
    """Resolve a model with the run's global settings (cache dir, offline); downloads are announced on stderr.

    ``config_only`` (config, variants -m, inspect): an alias that is not cached and cannot be downloaded falls
    back to its bundled config.json (`bertcli.bundled`), with a note on stderr.
    """
    run = settings.current()
    try:
        resolved = resolve_model(ref, revision=revision, cache_dir=run.cache_dir,
                                 offline=run.offline, token=run.token, on_download=output.info,
                                 progress=output.DownloadProgressBar())
    except (OfflineError, HubError):
        from bertcli.bundled import bundled_model, bundled_note

        resolved = bundled_model(ref, revision=revision) if config_only else None
        if resolved is None:
            raise
        output.warn(bundled_note(resolved))
    if resolved.inferred_model_type:
        output.warn(f"{resolved.display_name}: config.json has no model_type; reading it as "
                    f"{resolved.inferred_model_type!r}, which its name says (as transformers 4 did)")
    return resolved


def examples(*lines: str) -> str:
    """An 'Examples' epilog for --help (Rich markup escaped)."""
    body = "\n\n".join(f"  [bold]$[/bold] {line.replace('[', chr(92) + '[')}" for line in lines)
    return f"[bold]Examples[/bold]\n\n{body}"


def fit_table(build, optional: tuple[str, ...] = ()):
    """A Rich table that fits the console: ``build(dropped)`` makes the table without the columns named in
    ``dropped``; ``optional`` columns are dropped in that order while even the table's narrowest layout (every
    wrappable column wrapped) is wider than the console — the point where Rich would start cutting cells.

    Callers keep ids and paths whole (``no_wrap`` with ``min_width``) and let prose columns wrap: dropping a
    column of extras first means an id is never cut to ``goo…`` to make room for them.
    """
    from rich.measure import Measurement

    console = output.console()
    unbounded = console.options.update(max_width=1 << 16)  # console.measure clamps to the console's width

    dropped: set[str] = set()
    table = build(dropped)
    for name in optional:
        if Measurement.get(console, unbounded, table).minimum <= console.width:
            break
        dropped.add(name)
        table = build(dropped)
    return table
