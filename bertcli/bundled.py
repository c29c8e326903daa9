"""Bundled copies of the aliases' config.json, so that config-only commands work offline before any download.

The aliases' config.json files (small, public facts) ship as package data in
``bertcli/data/configs/<alias>/config.json``. `config`, `variants -m` and `inspect` need nothing else, so when
an alias (or its hub id) is not cached and the hub cannot be used, they read the bundled copy instead — marked
``source: bundled`` and announced on stderr. Commands that need weights or a tokenizer never use it.

Nothing here imports torch, transformers or the output layer.
"""

from __future__ import annotations

from pathlib import Path

from bertcli.resolve import ALIASES, ResolvedModel, canonical_repo_id, split_revision

CONFIGS_DIR = Path(__file__).resolve().parent / "data" / "configs"


def bundled_config_folder(alias: str) -> Path | None:
    """The folder holding the bundled config.json of an alias, or None."""
    folder = CONFIGS_DIR / alias
    return folder if (folder / "config.json").is_file() else None


def bundled_model(ref: str | None, *, revision: str | None = None) -> ResolvedModel | None:
    """A config-only ResolvedModel (source "bundled") for an alias or its hub id at the main revision, else None.

    A bundled config is the repo's main revision: a reference that names another revision gets None.
    """
    if ref is None or not str(ref).strip():
        return None
    name, rev_in_ref = split_revision(str(ref).strip())
    if (revision or rev_in_ref or "main") != "main":
        return None
    repo_id, _ = canonical_repo_id(name)
    alias = next((a for a in ALIASES.values() if a.repo_id == repo_id), None)
    folder = bundled_config_folder(alias.name) if alias else None
    if folder is None:
        return None
    return ResolvedModel(ref=str(ref).strip(), source="bundled", path=folder, repo_id=repo_id, revision="main",
                         alias=alias.name, files=["config.json"])


def bundled_note(resolved: ResolvedModel) -> str:
    """The stderr line telling the user the config is a bundled copy."""
    return (f"bundled copy of {resolved.repo_id}'s config.json (the model is not cached); "
            f"download the model for its tokenizer and weights: bertcli download {resolved.alias}")
