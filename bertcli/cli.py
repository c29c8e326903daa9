"""The Typer app: global options, the command table, and the one place errors become messages and exit codes.

Only the command being run is imported (`register_commands`); where the command list is shown (``--help``,
no command, an unknown one) the others are placeholders whose one-line help is read from their source without
importing them. Command modules stay light (no torch/transformers at import): each imports what it needs
inside its function (tests/test_layering.py checks it).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from bertcli import __version__, output, settings
from bertcli.choices import BASE_FORMATS, FORMAT_EXTRAS, choice_enum
from bertcli.errors import BertcliError


HELP = """[bold]bertcli[/bold] — inspect and run BERT-family models (BERT, ALBERT, RoBERTa, ELECTRA, SpanBERT,
DeBERTa, ModernBERT).

Output is a Rich table on a terminal and JSON Lines when piped (choose with --format).
Models: an alias (see [bold]bertcli models[/bold]), a hub id org/name\\[@rev], a local folder, or a tokenizer file."""

EPILOG = """[bold]Examples[/bold]

  [bold]$[/bold] bertcli tokenize -m ./AlbertModel "Beijing is a beautiful city"

  [bold]$[/bold] bertcli config -m roberta --format json

  [bold]$[/bold] cat lines.txt | bertcli tokenize -m bert --count

Global options --debug, --offline and --cache-dir may also follow the command."""


class _HelpAsWrittenGroup(typer.core.TyperGroup):
    """The root group: the help of every command, group and parameter below it is shown as written.

    Rich markup stays on for the hand-written parts (this app's HELP, every EPILOG, whose examples
    `commands._common.examples` escapes), but docstrings and `help=` texts are plain prose full of brackets
    (`bertcli[onnx]`, `org/name[@rev]`, `[default: …]`) that Rich would otherwise read as tags and drop.
    """

    def __init__(self, **attrs) -> None:
        super().__init__(**attrs)
        for command in self.commands.values():
            _escape_help(command)


def _escape_help(command) -> None:
    from rich.markup import escape

    if getattr(command, "_bertcli_escaped", False):
        return
    command._bertcli_escaped = True
    if command.help:
        command.help = escape(command.help)
    if command.short_help:
        command.short_help = escape(command.short_help)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = escape(param.help)
    for sub in getattr(command, "commands", {}).values():
        _escape_help(sub)


app = typer.Typer(
    name="bertcli",
    cls=_HelpAsWrittenGroup,
    help=HELP,
    epilog=EPILOG,
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)

#: (command name, module under bertcli.commands, attribute); an attribute that is a Typer app becomes a group.
COMMANDS: list[tuple[str, str, str]] = [
    ("tokenize", "tokenize", "tokenize"),
    ("embed", "embed", "embed"),
    ("qa", "qa", "qa"),
    ("config", "config", "config"),
    ("inspect", "inspect", "inspect"),
    ("models", "models", "models"),
    ("download", "download", "download"),
    ("cache", "cache", "app"),
    ("variants", "variants", "variants"),
    ("compare", "compare", "compare"),
    ("mask", "mask", "mask"),
    ("fill-mask", "fill_mask", "fill_mask"),
    ("detect", "detect", "detect"),
    ("nsp", "nsp", "nsp"),
    ("sop", "sop", "sop"),
    ("zero-shot", "zero_shot", "zero_shot"),
    ("tag", "tag", "tag"),
    ("classify", "classify", "classify"),
    ("rerank", "rerank", "rerank"),
    ("attention", "attention", "attention"),
]


#: The global --format takes every command's formats; the command then checks that it has the one chosen.
GlobalFormat = choice_enum("GlobalFormat", (*BASE_FORMATS, *FORMAT_EXTRAS))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bertcli {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    fmt: Annotated[GlobalFormat | None, typer.Option("--format", "-f", case_sensitive=False, help="Default output format: auto, table, json, jsonl, tsv, or a format of the command's own (tokenize: ids, text; embed: npy; download: path).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or info messages on stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")] = False,
    cache_dir: Annotated[str | None, typer.Option("--cache-dir", envvar="BERTCLI_CACHE_DIR", help="Hugging Face hub cache to use (default: HF_HUB_CACHE or HF_HOME/hub).")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Never touch the network (same as HF_HUB_OFFLINE=1).")] = False,
    token: Annotated[str | None, typer.Option("--token", envvar="HF_TOKEN", show_envvar=False, help="Hub token for gated or private models (default: HF_TOKEN).")] = None,
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    run = settings.current()
    if fmt is not None:
        run.format = str(fmt)
    run.quiet = quiet
    run.debug = run.debug or debug
    run.cache_dir = cache_dir
    run.token = token
    if offline:
        run.offline = True
        os.environ["HF_HUB_OFFLINE"] = "1"


def _summary(module: str, attr: str) -> str:
    """A command's one-line help read from its source with `ast` — without importing the module."""
    spec = importlib.util.find_spec(f"bertcli.commands.{module}")
    if spec is None or not spec.origin:
        return ""
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attr:
            return (ast.get_docstring(node) or "").strip().split("\n")[0]
    doc = (ast.get_docstring(tree) or "").strip().split("\n")[0]
    return doc.split(":", 1)[-1].strip() if doc.startswith("`") else doc


def _register(name: str, module: str, attr: str) -> None:
    obj = getattr(importlib.import_module(f"bertcli.commands.{module}"), attr)
    if isinstance(obj, typer.Typer):
        app.add_typer(obj, name=name)
        return
    app.command(
        name,
        help=obj.__doc__,
        epilog=getattr(sys.modules[obj.__module__], "EXAMPLES", None),
        context_settings={"help_option_names": ["-h", "--help"]},
    )(obj)


def _register_placeholder(name: str, module: str, attr: str) -> None:
    """A stand-in that only lists the command in --help; the real one is imported when it is run."""

    def placeholder() -> None:  # pragma: no cover - never selected: the real command replaces it
        raise typer.Exit(1)

    app.command(name, help=_summary(module, attr))(placeholder)


_OPTIONS_WITH_VALUE = {"--format", "-f", "--cache-dir", "--token"}


def selected_command(args: list[str]) -> str | None:
    """The command named on the line (the first word that is not a global option or its value)."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def register_commands(args: list[str]) -> None:
    """Import only the command being run; list the others by their one-line help.

    So `bertcli tokenize` never imports the modules of `embed` or `qa`, and a command's dependencies load only
    when it runs. The other commands' one-line summaries are needed only where the command list can be shown
    (`bertcli --help`, no command, an unknown one), so a known command skips reading them. Shell completion
    needs every command's options, so then all are imported.
    """
    wanted = selected_command(args)
    everything = "_BERTCLI_COMPLETE" in os.environ
    known = any(name == wanted for name, _, _ in COMMANDS)
    for name, module, attr in COMMANDS:
        if everything or name == wanted:
            _register(name, module, attr)
        elif not known:
            _register_placeholder(name, module, attr)


# Global flags that make sense anywhere on the line: moved in front of the command so that
# `bertcli tokenize … --offline` works like `bertcli --offline tokenize …`.
_HOISTED_FLAGS = {"--debug", "--offline"}
_HOISTED_WITH_VALUE = {"--cache-dir"}


def hoist_global_flags(argv: list[str]) -> list[str]:
    """Move --debug/--offline/--cache-dir found after the command to the front (stops at ``--``)."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg in _HOISTED_FLAGS:
            front.append(arg)
        elif arg in _HOISTED_WITH_VALUE and i + 1 < len(argv):
            front.extend(argv[i : i + 2])
            i += 1
        elif any(arg.startswith(f + "=") for f in _HOISTED_WITH_VALUE):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived: unwinds like Ctrl-C everywhere (temporary files removed, workers stopped)."""


#: The signal that stopped this run (set by `_on_signal`), so the exit code can say which one.
_signal_received: int | None = None


def _on_signal(signum: int, _frame) -> None:
    global _signal_received
    _signal_received = signum
    raise Interrupted()


def _install_signal_handlers() -> None:
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            if signal.getsignal(signum) in (signal.default_int_handler, signal.SIG_DFL):
                signal.signal(signum, _on_signal)
        except (ValueError, OSError):  # not the main thread, or not allowed: keep the default
            pass


def _exit_interrupted() -> None:
    import signal

    if _signal_received == signal.SIGTERM:
        output.error("terminated (SIGTERM)")
        sys.exit(143)
    output.error("interrupted")
    sys.exit(130)


def click_error_line(exc: Exception, args: list[str] | None = None) -> str:
    """Click's own message for a usage error, on one line, with where to look for help."""
    message = " ".join(exc.format_message().split()).rstrip(".")  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoSuchCommand" or message.startswith("No such command"):
        names = ", ".join(name for name, _, _ in COMMANDS)
        return f"{message}; commands: {names} (see 'bertcli --help')"
    if ctx is not None and getattr(ctx, "command_path", None):
        return f"{message}; see '{ctx.command_path} --help'"
    command = selected_command(args or [])
    if command and any(name == command for name, _, _ in COMMANDS):
        return f"{message}; see 'bertcli {command} --help'"
    return f"{message}; see 'bertcli --help'"


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn known errors into one stderr line and an exit code.

    Click runs in non-standalone mode, so its usage errors, aborts and exits come here instead of being
    printed as a Rich box (or, for a closed pipe, turned into exit 1) inside click.
    """
    from bertcli.errors import ReaderGoneError
    from bertcli.files import guard_stdio

    stdout_guard = guard_stdio()
    _install_signal_handlers()
    args = hoist_global_flags(list(sys.argv[1:] if argv is None else argv))
    # This run's settings and output sink, made once here (the global options fill them in; a command's own
    # --format/-q override). --debug is known before parsing, so a usage error can show its traceback.
    debug = "--debug" in args or os.environ.get("BERTCLI_DEBUG", "") not in ("", "0")
    run = settings.use(settings.RunSettings(debug=debug))
    output.use(output.Output(run))
    try:
        register_commands(args)
        code = app(args=args, prog_name="bertcli", standalone_mode=False)
        if _signal_received is not None:  # click turned the KeyboardInterrupt into Exit(130)
            _exit_interrupted()
        sys.stdout.flush()  # a full disk or a gone reader shows here, not at interpreter exit
        if isinstance(code, int) and not isinstance(code, bool) and code:
            sys.exit(code)
    except (ReaderGoneError, BrokenPipeError):
        # The reader went away (`| head`): stop quietly, like other Unix tools. (BrokenPipeError: a pipe written
        # without the guard, outside click — inside, click would have turned it into exit 1.)
        stdout_guard.failed = True
        sys.exit(ReaderGoneError.exit_code)
    except BertcliError as exc:
        if run.debug:
            traceback.print_exc()
        output.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _exit_interrupted()
    except typer.Abort:
        output.error("aborted")
        sys.exit(130)
    except typer.TyperException as exc:  # click's usage errors: bad option, bad value, missing argument …
        if type(exc).__name__ == "NoArgsIsHelpError":  # `bertcli` alone: the help was printed
            sys.exit(2)
        if run.debug:
            traceback.print_exc()
        output.error(click_error_line(exc, args))
        sys.exit(2)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, traceback only with --debug
        if run.debug:
            traceback.print_exc()
        detail = str(exc).splitlines()[0] if str(exc) else ""
        output.error(f"internal error: {type(exc).__name__}: {detail} (run with --debug for the traceback)")
        sys.exit(1)
