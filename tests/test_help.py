"""`--help` shows help text as written: brackets (`bertcli[onnx]`, `org/name[@rev]`, `[default: …]`) survive Rich.

Every command's help (the 20 commands and `cache ls/rm/verify`) is run at a wide terminal (COLUMNS=200, so
wrapping does not split the words), and every bracketed fragment of its docstring and its parameters' help
must be on screen, plus the ones issue 14 named explicitly.
"""

from __future__ import annotations

import importlib
import re

import pytest
import typer

from bertcli.cli import COMMANDS

#: Fragments issue 14 saw vanish, by command (checked on top of the ones read from the source).
NAMED = {
    "embed": ["bertcli[ray]", "org/name[@rev]"],  # bertcli[onnx] left the help when onnxruntime became core
    "attention": ["bertcli[plot]", "org/name[@rev]"],
    "qa": ["[default: min(model max, 384)]", "[default: min(max-length / 2, 128)]"],
    "download": ["org/name[@rev]"],
    "tag": ["[default: the model's limit]", "[default: min(128, half a window)]"],
    "tokenize": ["org/name[@rev]"],
    "": ["org/name[@rev]"],
}

_BRACKETED = re.compile(r"\S*\[[^\[\]\n]*\]")


def _click_commands() -> dict[str, object]:
    """{'tokenize': click command, …, 'cache ls': …} built the way the app builds them."""
    found: dict[str, object] = {}
    for name, module, attr in COMMANDS:
        obj = getattr(importlib.import_module(f"bertcli.commands.{module}"), attr)
        if isinstance(obj, typer.Typer):
            group = typer.main.get_command(obj)
            for sub_name, sub in group.commands.items():
                found[f"{name} {sub_name}"] = sub
        else:
            one = typer.Typer()
            one.command(name, help=obj.__doc__)(obj)
            found[name] = typer.main.get_command(one)
    return found


def _fragments(command) -> list[str]:
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    return [m.group(0) for text in texts for m in _BRACKETED.finditer(text)]


def _screen_text(stdout: str) -> str:
    """The help with panel borders removed and wrapped lines joined (so a fragment is found whatever the layout)."""
    lines = [line.strip().strip("│╭╮╰╯─").strip() for line in stdout.splitlines()]
    return re.sub(r"\s+", " ", " ".join(line for line in lines if line))


COMMAND_HELP = _click_commands()


def test_all_commands_are_covered():
    assert len(COMMANDS) == 20
    assert {"nsp", "sop", "zero-shot", "tag", "classify", "rerank", "detect", "mask"} <= {name for name, _, _ in COMMANDS}
    assert {"cache ls", "cache rm", "cache verify"} <= set(COMMAND_HELP)


@pytest.mark.parametrize("name", sorted(COMMAND_HELP) + [""])
def test_bracketed_words_survive_help(run_cli, name):
    r = run_cli(*name.split(), "--help", env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    screen = _screen_text(r.stdout)
    wanted = NAMED.get(name, []) + (_fragments(COMMAND_HELP[name]) if name else [])
    missing = [w for w in wanted if w not in screen]
    assert not missing, f"{name or 'bertcli'} --help lost {missing}"
    if name and " " not in name:
        assert "Examples" in r.stdout  # the bold epilog still renders (its markup is not escaped)
        assert "[bold]" not in r.stdout


def test_examples_heading_is_still_bold(run_cli):
    """Escaping stops at the help prose: the Examples epilog keeps its Rich styling on a colour terminal."""
    r = run_cli("tokenize", "--help", env={"COLUMNS": "200", "FORCE_COLOR": "1", "TERM": "xterm-256color"})
    assert r.returncode == 0
    assert "\x1b[1mExamples" in r.stdout
