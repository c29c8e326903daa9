"""The settings of one run — the global options — in one object, made once by `bertcli.cli.main`.

Commands read them with `current()` (the cache dir and token they hand to the core, the format chosen); the
output sink (`bertcli.output.Output`) holds the same object for the format and ``-q``. The core never reads
them: it takes what it needs as parameters, so it stays a library. A test that runs a command in this process
gets a fresh pair from the ``run_output`` fixture in ``tests/conftest.py``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RunSettings:
    """The global options of this run (a command's own ``--format``/``-q`` override ``format``/``quiet``)."""

    format: str = "auto"
    quiet: bool = False
    debug: bool = False
    cache_dir: str | None = None
    offline: bool | None = None
    token: str | None = None


_current = RunSettings()


def current() -> RunSettings:
    """This run's settings."""
    return _current


def use(settings: RunSettings) -> RunSettings:
    """Make ``settings`` this run's settings (`cli.main` at the start of a run; tests); returns it."""
    global _current
    _current = settings
    return settings
