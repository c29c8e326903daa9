"""Error types users can cause, each with its exit code.

Every failure a user can trigger raises a `BertcliError` subclass. `bertcli.cli` turns it into one line on
stderr and the exit code below; `--debug` shows the traceback too. The table is documented in the README.
"""

from __future__ import annotations


class BertcliError(Exception):
    """Base class: a message for the user, an exit code, and an optional hint (what to try)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # one line, hint appended
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(BertcliError):
    """A bad flag, option value or combination of options."""

    exit_code = 2


class ModelNotFoundError(BertcliError):
    """The model reference names nothing: unknown alias, missing folder, no such repo/revision/file."""

    exit_code = 3


class OfflineError(BertcliError):
    """The model is not cached and the hub cannot be reached (offline mode or network down)."""

    exit_code = 4


class BadInputError(BertcliError):
    """Input text or files that cannot be used: empty, not UTF-8, malformed records."""

    exit_code = 5


class ModelFileError(BertcliError):
    """Model files exist but are unusable: corrupt config/weights, no tokenizer, missing head."""

    exit_code = 6


class MissingDependencyError(BertcliError):
    """An optional package is needed (sentencepiece, onnxruntime, ray, matplotlib)."""

    exit_code = 7


class HubError(BertcliError):
    """The hub refused or failed: 401/403 (gated/private), network errors, server errors."""

    exit_code = 8


class OutputError(BertcliError):
    """Output could not be written (missing folder, disk full, permission)."""

    exit_code = 9


class ReaderGoneError(BertcliError):
    """The reader of stdout (or of a FIFO given to -o) went away, as in `bertcli … | head`: exit quietly."""

    exit_code = 141


def describe(exc: BaseException, *, with_file: bool = True) -> str:
    """One line saying what went wrong, in plain words (permission problems say so, with the file)."""
    filename = getattr(exc, "filename", None) if with_file else None
    if isinstance(exc, PermissionError):
        return f"permission denied{f' reading {filename}' if filename else ''}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {filename}" if filename else "")
    text = str(exc).strip()
    if "look at the above report" in text or "size mismatch" in text:
        return "the weights' tensor shapes do not match the sizes config.json declares"
    first = text.splitlines()[0].strip() if text else ""
    if not first or first.endswith(":"):  # e.g. huggingface_hub's validation error puts the detail on line 2
        rest = [line.strip() for line in text.splitlines()[1:] if line.strip()]
        first = (first + " " + rest[0]).strip() if rest else first
    if type(exc).__name__.endswith("ValidationError"):  # transformers' strict config classes: a config.json field
        first = f"config.json: {first}"
    return first or type(exc).__name__


EXIT_CODES: list[tuple[int, str, str]] = [
    (0, "ok", "success"),
    (1, "error", "unexpected internal error (a bug: please report it, with --debug output)"),
    (UsageError.exit_code, "usage", UsageError.__doc__ or ""),
    (ModelNotFoundError.exit_code, "not found", ModelNotFoundError.__doc__ or ""),
    (OfflineError.exit_code, "offline", OfflineError.__doc__ or ""),
    (BadInputError.exit_code, "bad input", BadInputError.__doc__ or ""),
    (ModelFileError.exit_code, "bad model files", ModelFileError.__doc__ or ""),
    (MissingDependencyError.exit_code, "missing extra", MissingDependencyError.__doc__ or ""),
    (HubError.exit_code, "hub", HubError.__doc__ or ""),
    (OutputError.exit_code, "output", OutputError.__doc__ or ""),
    (130, "interrupted", "Ctrl-C (SIGINT)"),
    (ReaderGoneError.exit_code, "reader went away", ReaderGoneError.__doc__ or ""),
    (143, "terminated", "SIGTERM (kill, a job scheduler, a container stopping): handled like Ctrl-C"),
]
