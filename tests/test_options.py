"""Options with a fixed set of values: listed in --help, completed by the shell, checked once by click."""

from __future__ import annotations

import pytest

from bertcli.backends import BACKENDS, QUANTIZE
from bertcli.choices import BASE_FORMATS, COMPUTE, DTYPES, ENGINES, FORMAT_EXTRAS, ON_LONG, POOLINGS, SCALES, STRATEGIES
from bertcli.resolve import ALIASES


@pytest.fixture
def complete(run_cli):
    """The words bash completion offers for the command line ``words`` with the cursor on word ``cword``."""

    def run(words: str, cword: int, env: dict[str, str] | None = None) -> list[str]:
        proc = run_cli(env={"_BERTCLI_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword),
                            **(env or {})})
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    return run


@pytest.mark.parametrize("words, expected", [
    ("bertcli embed --pooling ", POOLINGS),
    ("bertcli embed --on-long ", ON_LONG),
    ("bertcli embed --compute ", COMPUTE),
    ("bertcli embed --dtype ", DTYPES),
    ("bertcli embed --backend ", BACKENDS),
    ("bertcli embed --quantize ", QUANTIZE),
    ("bertcli embed --engine ", ENGINES),
    ("bertcli embed -f ", (*BASE_FORMATS, "npy")),
    ("bertcli tokenize -f ", (*BASE_FORMATS, "ids", "text")),
    ("bertcli config -f ", BASE_FORMATS),
    ("bertcli mask --strategy ", STRATEGIES),
    ("bertcli attention --scale ", SCALES),
    ("bertcli qa --device ", ("auto", "cpu", "cuda", "mps")),
])
def test_choices_complete_from_the_core_constants(complete, words, expected):
    assert complete(words, 3) == list(expected)


def test_a_started_choice_completes_to_its_matches(complete):
    assert complete("bertcli mask -s w", 3) == ["whole-word"]
    assert complete("bertcli embed --device c", 3) == ["cpu", "cuda"]
    assert complete("bertcli -f n", 2) == ["npy"]


def test_model_completes_aliases_and_cached_repo_ids(complete, tmp_path):
    hub = tmp_path / "hub"
    (hub / "models--acme--tiny-bert" / "snapshots").mkdir(parents=True)
    (hub / "models--solo").mkdir()
    (hub / "datasets--acme--corpus").mkdir()  # not a model
    (hub / "models--broken").write_text("")  # not a folder
    assert complete("bertcli embed -m ", 3, env={"HF_HUB_CACHE": str(hub)}) == [*ALIASES, "acme/tiny-bert", "solo"]
    assert complete("bertcli tokenize -m ac", 3, env={"HF_HUB_CACHE": str(hub)}) == ["acme/tiny-bert"]
    # the global --cache-dir names the cache to list
    assert complete(f"bertcli --cache-dir {hub} qa -m ac", 5) == ["acme/tiny-bert"]
    # no cache at all: the aliases still complete
    assert complete("bertcli embed -m electra", 3, env={"HF_HUB_CACHE": str(tmp_path / "none")}) == [
        "electra", "electra-generator"]


def test_every_model_reference_completes(complete):
    assert complete("bertcli config al", 2) == ["albert"]  # [MODEL] argument
    assert complete("bertcli config --diff ro", 3) == ["roberta"]
    assert complete("bertcli inspect spanbert", 2) == ["spanbert", "spanbert-qa"]
    assert complete("bertcli download el", 2) == ["electra", "electra-generator"]
    assert complete("bertcli cache verify el", 3) == ["electra", "electra-generator"]
    assert complete("bertcli compare -m bert -m al", 5) == ["albert"]


@pytest.mark.parametrize("args, message", [
    (["embed", "--dtype", "float64", "x"],
     "error: Invalid value for '--dtype': 'float64' is not one of 'float32', 'float16'; see 'bertcli embed --help'"),
    (["embed", "--compute", "int8", "x"],
     "error: Invalid value for '--compute': 'int8' is not one of 'float32', 'bfloat16', 'float16'; "
     "see 'bertcli embed --help'"),
    (["embed", "--on-long", "skip", "x"],
     "error: Invalid value for '--on-long': 'skip' is not one of 'truncate', 'error'; see 'bertcli embed --help'"),
    (["embed", "--backend", "tf", "x"],
     "error: Invalid value for '--backend': 'tf' is not one of 'auto', 'torch', 'onnx'; see 'bertcli embed --help'"),
    (["embed", "--quantize", "int4", "x"],
     "error: Invalid value for '--quantize': 'int4' is not one of 'int8'; see 'bertcli embed --help'"),
    (["embed", "-f", "ids", "x"],
     "error: Invalid value for '--format' / '-f': 'ids' is not one of 'auto', 'table', 'json', 'jsonl', 'tsv', "
     "'npy'; see 'bertcli embed --help'"),
    (["attention", "--scale", "cubic", "x"],
     "error: Invalid value for '--scale': 'cubic' is not one of 'auto', 'linear', 'log'; "
     "see 'bertcli attention --help'"),
    (["--format", "yaml", "config"],
     "error: Invalid value for '--format' / '-f': 'yaml' is not one of "
     f"{', '.join(repr(f) for f in (*BASE_FORMATS, *FORMAT_EXTRAS))}; see 'bertcli --help'"),
])
def test_a_bad_choice_is_one_line_and_exit_2_before_any_model_loads(run_cli, args, message):
    proc = run_cli(*args, "-m", "no/such-model")  # the model is never looked at
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == message
    assert proc.stdout == ""


def test_help_lists_the_choices(run_cli):
    proc = run_cli("embed", "--help", env={"COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr
    for values in (POOLINGS, ON_LONG, COMPUTE, DTYPES, BACKENDS, ENGINES, (*BASE_FORMATS, "npy")):
        assert "<" + "|".join(values) + ">" in proc.stdout, values


def test_choices_keep_their_old_case_rules(run_cli, minilm_dir):
    # --format was always read case-blind (and so was --backend, --scale); the value reaches the command lowered
    proc = run_cli("tokenize", "-m", minilm_dir, "-f", "JSONL", "hi")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('{"') and proc.stdout.count("\n") == 1
    proc = run_cli("-f", "IDS", "tokenize", "-m", minilm_dir, "hi")
    assert proc.returncode == 0 and proc.stdout.split() == ["101", "7632", "102"], proc.stderr
    # --pooling never was: POOLING is refused as before
    assert run_cli("embed", "-m", minilm_dir, "--pooling", "MEAN", "hi").returncode == 2
