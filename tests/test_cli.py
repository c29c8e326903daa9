"""The CLI shell: --help lists every command with examples, --version, light imports, global flags anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bertcli import __version__
from bertcli.cli import COMMANDS, hoist_global_flags

COMMANDS_DIR = Path(__file__).resolve().parent.parent / "bertcli" / "commands"


def test_version(run_cli):
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"bertcli {__version__}"


def command_panel(help_text: str) -> list[str]:
    """The command names in the "Commands" panel of `bertcli --help`, in order (a wrapped summary's continuation
    lines start with spaces and are skipped)."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("╭─ Commands"))
    names = []
    for line in lines[start + 1 :]:
        if line.startswith("╰"):
            return names
        assert line.startswith("│ "), line
        if line[2:3] != " ":
            names.append(line[2:].split()[0])
    raise AssertionError("the Commands panel never ends")


def test_help_lists_every_command(run_cli):
    r = run_cli("--help", env={"COLUMNS": "200"})
    assert r.returncode == 0
    listed = command_panel(r.stdout)
    assert listed == [name for name, _, _ in COMMANDS]  # each once, in the table's order
    # and the table holds every command module there is (bertcli/commands/<name>.py, _private ones aside)
    modules = sorted(p.stem.replace("_", "-") for p in COMMANDS_DIR.glob("*.py") if not p.stem.startswith("_"))
    assert sorted(listed) == modules


def test_every_command_help_has_examples(run_cli):
    for name, _, _ in COMMANDS:
        r = run_cli(name, "--help", env={"COLUMNS": "200"})
        assert r.returncode == 0, name
        assert "Examples" in r.stdout and "$ bertcli" in r.stdout, name


def test_python_dash_m(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bertcli", "--version"], capture_output=True, text=True)
    assert r.stdout.startswith("bertcli ")


def test_help_and_tokenize_do_not_import_torch(minilm_dir):
    for argv in (["--help"], ["tokenize", "-m", str(minilm_dir), "hi", "-f", "ids"]):
        code = (f"import sys; sys.argv=['bertcli']+{argv!r}\nfrom bertcli.cli import main\n"
                "try: main()\nexcept SystemExit: pass\n"
                "bad=[m for m in ('torch','transformers') if m in sys.modules]\nassert not bad, bad")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_hoisting_global_flags():
    assert hoist_global_flags(["tokenize", "x", "--offline", "--cache-dir", "/c", "--debug"]) == [
        "--offline", "--cache-dir", "/c", "--debug", "tokenize", "x"]
    assert hoist_global_flags(["tokenize", "--", "--offline"]) == ["tokenize", "--", "--offline"]


def test_unknown_option_is_a_usage_error(run_cli):
    r = run_cli("tokenize", "--bogus")
    assert r.returncode == 2 and "No such option" in r.stderr and "Traceback" not in r.stderr


def test_broken_pipe_is_quiet(minilm_dir, tmp_path):
    cmd = f"yes 'It was a great day' | head -n 20000 | {sys.executable} -m bertcli tokenize -m {minilm_dir} | head -n 1"
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
    assert r.stdout.count("\n") == 1 and "Traceback" not in r.stderr


def test_only_the_selected_command_module_is_imported(minilm_dir):
    code = (f"import sys; sys.argv=['bertcli','tokenize','-m',{str(minilm_dir)!r},'hi','-f','ids']\n"
            "from bertcli.cli import main\ntry: main()\nexcept SystemExit: pass\n"
            "mods=sorted(m for m in sys.modules if m.startswith('bertcli.commands.') and not m.endswith('_common'))\n"
            "assert mods == ['bertcli.commands.tokenize'], mods")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_shell_completion_sees_every_command_and_its_options():
    import os

    def complete(words: str, cword: int) -> list[str]:
        env = {**os.environ, "_BERTCLI_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        r = subprocess.run([sys.executable, "-m", "bertcli"], env=env, capture_output=True, text=True)
        return r.stdout.split()

    assert complete("bertcli to", 1) == ["tokenize"]
    assert set(complete("bertcli tokenize --tr", 2)) == {"--truncation", "--truncate"}
    assert "--pooling" in complete("bertcli embed --po", 2)


def test_readme_exit_codes_are_the_error_table():
    """errors.EXIT_CODES is the one table: the README lists exactly its codes, and every error class's code is in it."""
    import re

    from bertcli import errors

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    listed = [int(m) for m in re.findall(r"^\| (\d+) \|", section, flags=re.M)]
    assert listed == [code for code, _, _ in errors.EXIT_CODES]
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.BertcliError)]
    assert len(classes) > 8 and {c.exit_code for c in classes} <= set(listed)
