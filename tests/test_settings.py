"""One settings object and one output sink per run, made by `cli.main`; commands read them, never `cli`."""

from __future__ import annotations

import ast
import contextlib
import io
import json
from pathlib import Path

from bertcli import cli, output, settings

COMMANDS_DIR = Path(cli.__file__).parent / "commands"


def _main(argv: list[str]) -> tuple[int, str]:
    buffer = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(buffer):
        try:
            cli.main(argv)
        except SystemExit as exc:
            code = exc.code or 0
    return code, buffer.getvalue()


def test_each_run_starts_from_fresh_settings(run_output, tmp_path):
    code, text = _main(["--format", "json", "--cache-dir", str(tmp_path), "-q", "models"])
    assert code == 0 and isinstance(json.loads(text), list)  # one JSON array
    first = settings.current()
    assert (first.format, first.cache_dir, first.quiet) == ("json", str(tmp_path), True)
    assert output.current().settings is first  # the sink holds the run's settings, not a copy
    code, text = _main(["models"])
    assert code == 0 and all(json.loads(line) for line in text.splitlines())  # JSON Lines: nothing carried over
    second = settings.current()
    assert second is not first and (second.format, second.cache_dir, second.quiet) == ("auto", None, False)


def test_a_command_option_overrides_the_global_one_for_that_run_only(run_output):
    code, text = _main(["-f", "json", "models", "-f", "tsv"])
    assert code == 0 and text.startswith("alias\t")
    assert settings.current().format == "tsv"


def test_the_fixture_gives_a_fresh_pair_and_puts_the_old_one_back(run_output):
    assert output.current() is run_output and run_output.settings is settings.current()
    assert run_output.settings == settings.RunSettings()


def test_no_command_imports_the_cli_module():
    """Commands read `bertcli.settings`, never `bertcli.cli` (an import back up to the face)."""
    for path in sorted(COMMANDS_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(name == "bertcli.cli" or name.startswith("bertcli.cli.") for name in names), path.name
