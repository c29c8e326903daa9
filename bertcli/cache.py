"""The Hugging Face hub cache as bertcli sees it: list models, remove one, verify files — no network.

Built on huggingface_hub's cache API (`scan_cache_dir`, `HFCacheInfo.delete_revisions`,
`get_cached_repo_tree`); this module writes none of the layout. Verification needs no network either:
a blob's file name in the cache *is* the hub's ETag — the sha256 of the content for LFS files (weights,
``*.model``), the git blob sha1 for the others — and the listing cached with the snapshot gives sizes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertcli.env import hub_cache_dir
from bertcli.errors import ModelNotFoundError, UsageError
from bertcli.resolve import FAMILIES, canonical_repo_id, detect_family, split_revision

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class CachedRevision:
    """One cached snapshot: its commit, the refs (branches/tags) pointing at it, files and weights state."""

    commit: str
    refs: list[str]
    size: int
    files: list[str]
    weights: str  # complete | incomplete | none
    last_modified: float
    path: Path

    def record(self) -> dict:
        return {"commit": self.commit, "refs": self.refs, "size": self.size, "files": self.files,
                "weights": self.weights, "path": str(self.path)}


@dataclass
class CachedModel:
    """A cached repo: id, family (from its config), size on disk, when last used, its revisions."""

    repo_id: str
    repo_type: str
    family: str
    size: int
    last_used: float
    path: Path
    revisions: list[CachedRevision] = field(default_factory=list)
    partial_downloads: int = 0

    def record(self) -> dict:
        from datetime import datetime, timezone

        return {
            "repo": self.repo_id,
            "type": self.repo_type,
            "family": self.family,
            "size": self.size,
            "last_used": datetime.fromtimestamp(self.last_used, tz=timezone.utc).isoformat(timespec="seconds"),
            "revisions": [r.record() for r in self.revisions],
            "partial_downloads": self.partial_downloads,
            "path": str(self.path),
        }


def _scan(cache_dir=None):
    from huggingface_hub import scan_cache_dir

    root = hub_cache_dir(cache_dir)
    if not root.is_dir():
        # As `hf cache ls` does ("Cache directory not found"): a cache folder that is not there is named, not
        # shown as an empty cache — a mistyped --cache-dir must not look like "nothing cached".
        what = "is not a folder" if root.exists() else "does not exist"
        raise ModelNotFoundError(f"the hub cache folder {root} {what}",
                                 hint="--cache-dir, HF_HUB_CACHE or HF_HOME name the cache; `bertcli download MODEL` fills it")
    try:
        return root, scan_cache_dir(root)
    except Exception as exc:  # noqa: BLE001 - CacheNotFound, unreadable folder
        raise UsageError(f"cannot read the hub cache {root}: {exc}") from exc


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def safetensors_expected_size(path: Path) -> int | None:
    """The size a safetensors file must have according to its own header, or None when the header is bad."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                return None
            (length,) = struct.unpack("<Q", head)
            if length > 100_000_000:
                return None
            header = json.loads(handle.read(length))
    except (OSError, ValueError):
        return None
    if not isinstance(header, dict):
        return None
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
            and isinstance(v.get("data_offsets"), list) and len(v["data_offsets"]) == 2]
    return 8 + length + max(ends, default=0)


def weights_state(folder: Path, files: list[str]) -> str:
    """complete (every weights file present with a sound size), incomplete (a shard missing or cut), none."""
    top = [f for f in files if "/" not in f]
    safetensors = [f for f in top if f.endswith(".safetensors")]
    index = folder / "model.safetensors.index.json"
    pickles = [f for f in top if re.match(r"^pytorch_model(-\d+-of-\d+)?\.bin$", f)]
    if index.is_file():
        shards = set(_read_json(index).get("weight_map", {}).values())
        if not shards or any(not (folder / s).is_file() for s in shards):
            return "incomplete"
    if safetensors:
        for name in safetensors:
            path = folder / name
            if not path.is_file() or safetensors_expected_size(path) != path.stat().st_size:
                return "incomplete"
        return "complete"
    if pickles:
        return "complete" if all((folder / p).is_file() and (folder / p).stat().st_size > 0 for p in pickles) else "incomplete"
    return "none"


def cache_problems(cache_dir=None) -> list[str]:
    """One line per cached repo huggingface_hub could not read (broken links, refs without snapshots)."""
    root, info = _scan(cache_dir)
    lines = []
    for warning in getattr(info, "warnings", []) if info is not None else []:
        text = str(warning)
        if "Snapshots dir doesn't exist" in text:
            continue  # a refused or interrupted first download: refs only, nothing to show or fix
        lines.append(text)
    return lines


def list_models(cache_dir=None, *, all_repos: bool = False) -> list[CachedModel]:
    """The cached repos, sorted by id: only BERT-family models unless ``all_repos``."""
    root, info = _scan(cache_dir)
    if info is None:
        return []
    partial: dict[Path, int] = {}
    for item in getattr(info, "incomplete_files", ()):
        repo_path = item.file_path.parent.parent
        partial[repo_path] = partial.get(repo_path, 0) + 1
    models = []
    for repo in info.repos:
        revisions = []
        family = "other"
        for rev in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
            files = sorted(f.file_path.relative_to(rev.snapshot_path).as_posix() for f in rev.files)
            revisions.append(CachedRevision(rev.commit_hash, sorted(rev.refs), rev.size_on_disk, files,
                                            weights_state(rev.snapshot_path, files), rev.last_modified,
                                            rev.snapshot_path))
            if family == "other" and repo.repo_type == "model":
                family = detect_family(_read_json(rev.snapshot_path / "config.json"), name_hints=[repo.repo_id])
        if not all_repos and (repo.repo_type != "model" or family not in FAMILIES):
            continue
        models.append(CachedModel(repo.repo_id, repo.repo_type, family, repo.size_on_disk, repo.last_accessed,
                                  repo.repo_path, revisions, partial.get(repo.repo_path, 0)))
    return sorted(models, key=lambda m: (m.repo_type, m.repo_id.lower()))


# ---------------------------------------------------------------------------------------------------------
# rm


@dataclass
class Removal:
    """What `remove` will delete: a whole repo, or some of its revisions; freed bytes as huggingface_hub counts."""

    repo_id: str
    commits: list[str]
    whole_repo: bool
    freed_bytes: int
    paths: list[Path]
    strategy: Any = None

    def record(self) -> dict:
        return {"repo": self.repo_id, "commits": self.commits, "whole_repo": self.whole_repo,
                "freed_bytes": self.freed_bytes, "paths": [str(p) for p in self.paths]}


def _find_repo(info, repo_id: str):
    for repo in info.repos:
        if repo.repo_type == "model" and repo.repo_id == repo_id:
            return repo
    return None


_NOT_A_REPO = {
    "verify": ("cache verify checks cached hub models (their files against the hashes the hub gave)",
               "for a model folder, `bertcli inspect {name} --tensors` reads its weights' headers and sizes"),
    "rm": ("cache rm removes cached hub models only", "it never deletes anything outside the hub cache"),
}


def _repo_name(name: str, command: str) -> tuple[str, str | None]:
    """canonical_repo_id of a name typed to `cache rm/verify`; a local path (never a valid repo id) is refused
    with what the command does instead (exit 2)."""
    try:
        return canonical_repo_id(name)
    except ModelNotFoundError:
        path = Path(name).expanduser()
        if not path.exists():
            raise
        what, hint = _NOT_A_REPO[command]
        kind = "folder" if path.is_dir() else "file"
        raise UsageError(f"{what}: {name} is a local {kind}, not a hub repo id", hint=hint.format(name=name)) from None


def _cached_repo(info, name: str, command: str):
    """(repo id, its CachedRepoInfo or None) for a name as typed: the id as cached first, then its canonical id.

    ``cache ls`` shows repos under the id they were cached with; a legacy id (``bert-base-uncased``) typed
    as shown names that folder, not its current id's (``google-bert/bert-base-uncased``), when both exist.
    """
    repo_id, alias = _repo_name(name, command)
    if info is not None and alias is None and name != repo_id:
        literal = _find_repo(info, name)
        if literal is not None:
            return name, literal
    return repo_id, _find_repo(info, repo_id) if info is not None else None


def _matching_revisions(repo, revision: str) -> list:
    """Revisions whose ref is ``revision`` or whose commit starts with it (at least 7 hex digits)."""
    found = [r for r in repo.revisions if revision in r.refs]
    if not found and re.fullmatch(r"[0-9a-f]{7,40}", revision):
        found = [r for r in repo.revisions if r.commit_hash.startswith(revision)]
    return found


def plan_removal(ref: str, *, cache_dir=None) -> Removal:
    """Plan removing ``MODEL[@REV]`` from the cache (nothing is deleted yet). Every path must lie in the cache."""
    name, revision = split_revision(ref)
    _repo_name(name, "rm")  # a bad name fails before the cache is read
    root, info = _scan(cache_dir)
    repo_id, repo = _cached_repo(info, name, "rm")
    if repo is None:
        raise ModelNotFoundError(f"{repo_id} is not in the cache ({root})", hint="see `bertcli cache ls --all`")
    if revision:
        revisions = _matching_revisions(repo, revision)
        if not revisions:
            known = ", ".join(sorted({*(ref for r in repo.revisions for ref in r.refs),
                                      *(r.commit_hash[:12] for r in repo.revisions)}))
            raise ModelNotFoundError(f"{repo_id} has no cached revision {revision!r}", hint=f"cached: {known}")
    else:
        revisions = list(repo.revisions)
    commits = sorted(r.commit_hash for r in revisions)
    if commits:
        # delete_revisions matches bare commit hashes in every cached repo (and only in the first one that has
        # each): two repos sharing a commit (a legacy and a current id, a mirror) would lose the wrong one.
        # Planned on a view of the cache holding this repo alone, it can only touch this repo's paths.
        strategy = dataclasses.replace(info, repos=frozenset({repo})).delete_revisions(*commits)
        paths = sorted({*strategy.repos, *strategy.snapshots, *strategy.refs, *strategy.blobs, *strategy.files})
        freed, whole = strategy.expected_freed_size, repo.repo_path in strategy.repos
    else:  # a repo folder with no snapshot (an interrupted first download): the folder itself goes
        strategy, paths, freed, whole = None, [repo.repo_path], repo.size_on_disk, True
    _check_inside(root, paths)
    _check_inside(repo.repo_path, [p for p in paths if p != repo.repo_path], f"the folder of {repo_id}")
    return Removal(repo_id, commits, whole, freed, paths, strategy)


def _check_inside(root: Path, paths: list[Path], what: str = "the cache") -> None:
    base = Path(os.path.abspath(root))
    for path in paths:
        absolute = Path(os.path.abspath(path))
        if absolute == base or base not in absolute.parents:
            raise UsageError(f"refusing to delete {path}: it is not inside {what} {base}")


def remove(removal: Removal) -> int:
    """Delete what ``removal`` planned; return the bytes freed."""
    if removal.strategy is not None:
        removal.strategy.execute()
    else:
        import shutil

        for path in removal.paths:
            shutil.rmtree(path, ignore_errors=True)
    return removal.freed_bytes


# ---------------------------------------------------------------------------------------------------------
# verify


@dataclass
class FileCheck:
    """The verdict on one cached file: ok | corrupt | missing | partial (leftover of a cut download)."""

    commit: str
    file: str
    size: int | None
    status: str
    detail: str = ""
    algorithm: str | None = None

    def record(self) -> dict:
        return {"commit": self.commit, "file": self.file, "size": self.size, "status": self.status,
                "check": self.algorithm, "detail": self.detail}

    @property
    def failed(self) -> bool:
        return self.status in ("corrupt", "missing")


def _hash(path: Path, algorithm: str) -> str:
    from huggingface_hub.utils.sha import git_hash, sha_fileobj

    with open(path, "rb") as handle:
        return sha_fileobj(handle).hex() if algorithm == "sha256" else git_hash(handle.read())


def check_file(commit: str, name: str, pointer: Path, expected_size: int | None) -> FileCheck:
    """Check one snapshot file against the ETag its blob is named after, its listed size and its own header."""
    blob = Path(os.path.realpath(pointer))
    if not blob.is_file():
        return FileCheck(commit, name, None, "missing", f"blob {blob.name} is gone (broken link)")
    size = blob.stat().st_size
    if expected_size is not None and size != expected_size:
        kind = "truncated" if size < expected_size else "too long"
        return FileCheck(commit, name, size, "corrupt", f"{kind}: {size} bytes, the hub lists {expected_size}")
    if name.endswith(".safetensors"):
        want = safetensors_expected_size(blob)
        if want is None:
            return FileCheck(commit, name, size, "corrupt", "safetensors header does not parse")
        if want != size:
            return FileCheck(commit, name, size, "corrupt", f"safetensors header needs {want} bytes, file has {size}")
    etag = blob.name
    algorithm = "sha256" if _SHA256.match(etag) else "git-sha1" if _SHA1.match(etag) else None
    if algorithm is None:
        return FileCheck(commit, name, size, "ok", "no hub hash known (size only)")
    actual = _hash(blob, algorithm)
    if actual != etag:
        return FileCheck(commit, name, size, "corrupt", f"{algorithm} {actual[:12]}… ≠ hub {etag[:12]}…", algorithm)
    return FileCheck(commit, name, size, "ok", "", algorithm)


def verify(ref: str, *, cache_dir=None) -> list[FileCheck]:
    """Check every cached file of ``MODEL[@REV]`` (all cached revisions without @REV). No network."""
    from huggingface_hub import get_cached_repo_tree

    name, revision = split_revision(ref)
    _repo_name(name, "verify")  # a bad name fails before the cache is read
    root, info = _scan(cache_dir)
    repo_id, repo = _cached_repo(info, name, "verify")
    if repo is None:
        damaged = _verify_unscannable(root, repo_id, revision)
        if damaged is not None:
            return damaged
        raise ModelNotFoundError(f"{repo_id} is not in the cache ({root})", hint=f"run `bertcli download {repo_id}`")
    revisions = _matching_revisions(repo, revision) if revision else sorted(repo.revisions, key=lambda r: r.commit_hash)
    if revision and not revisions:
        raise ModelNotFoundError(f"{repo_id} has no cached revision {revision!r}")
    checks: list[FileCheck] = []
    for rev in revisions:
        try:
            sizes = {f.path: f.size for f in get_cached_repo_tree(repo_id, revision=rev.commit_hash, cache_dir=root)}
        except Exception:  # noqa: BLE001 - no cached listing: hashes and headers only
            sizes = {}
        for file in sorted(rev.files, key=lambda f: f.file_path.relative_to(rev.snapshot_path).as_posix()):
            rel = file.file_path.relative_to(rev.snapshot_path).as_posix()
            checks.append(check_file(rev.commit_hash, rel, file.file_path, sizes.get(rel)))
        for rel in sorted(set(sizes) - {f.file_path.relative_to(rev.snapshot_path).as_posix() for f in rev.files}):
            pointer = rev.snapshot_path / rel
            if pointer.is_symlink():  # listed, linked, but its blob is gone
                checks.append(FileCheck(rev.commit_hash, rel, None, "missing", "blob is gone (broken link)"))
    for item in getattr(info, "incomplete_files", ()):
        if item.file_path.parent.parent == repo.repo_path:
            checks.append(FileCheck("", f"blobs/{item.file_path.name}", item.size_on_disk, "partial",
                                    "leftover of an interrupted download (not in any snapshot)"))
    return checks


def _verify_unscannable(root: Path, repo_id: str, revision: str | None) -> list[FileCheck] | None:
    """Checks for a repo folder that scan_cache_dir rejected (typically a snapshot link whose blob is gone).

    Only reads the folder: each snapshot's files are checked like any other, so the broken ones show up.
    """
    from huggingface_hub.file_download import repo_folder_name

    snapshots = root / repo_folder_name(repo_id=repo_id, repo_type="model") / "snapshots"
    if not snapshots.is_dir():
        return None
    checks = []
    for snap in sorted(p for p in snapshots.iterdir() if p.is_dir()):
        if revision and re.fullmatch(r"[0-9a-f]{7,40}", revision) and not snap.name.startswith(revision):
            continue
        for pointer in sorted(p for p in snap.rglob("*") if p.is_symlink() or p.is_file()):
            checks.append(check_file(snap.name, pointer.relative_to(snap).as_posix(), pointer, None))
    return checks
