"""A small local stand-in for the Hugging Face Hub, for download tests and the download bench.

It answers the endpoints huggingface_hub 2.x calls for a model download, from files a test lays out:

- ``GET /api/models/{repo}[/revision/{rev}]`` — model info (``sha``, ``siblings``);
- ``GET /api/models/{repo}/tree/{rev}[/{path}]`` — the file listing (``oid``, ``size``, ``lfs``);
- ``HEAD|GET /{repo}/resolve/{rev}/{file}`` — regular files answer 200 with ``ETag`` (git blob sha1),
  ``X-Repo-Commit`` and ``Content-Length``; LFS-like files (weights, ``*.model``) answer 302 to a "CDN"
  on another host (127.0.0.2 when it can be bound) with ``X-Linked-Etag`` (sha256) and ``X-Linked-Size``,
  like the real hub; the CDN serves the bytes with ``Range`` support (206).

Xet is never advertised (no ``X-Xet-Hash``, no ``xetHash``), so huggingface_hub uses plain HTTP.

Faults a test can switch on: drop the connection after N bytes of a file (``drop_after``), stream slowly
(``throttle``), answer a status for matching paths (``fail_status``), gated / private / forbidden repos.
Every request is logged in ``requests`` (method, path, Range, Authorization) for assertions.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

LFS_SUFFIXES = (".safetensors", ".bin", ".model", ".h5", ".msgpack", ".ot", ".onnx", ".pt", ".pth", ".ckpt")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def free_port() -> int:
    """A port nothing listens on (bound then released): for 'hub unreachable' tests."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class HubFile:
    path: str
    data: bytes
    lfs: bool
    sha256: str
    oid: str  # git oid: of the content, or of the LFS pointer
    pointer_size: int = 0

    @classmethod
    def make(cls, path: str, data: bytes) -> HubFile:
        sha256 = hashlib.sha256(data).hexdigest()
        lfs = path.endswith(LFS_SUFFIXES)
        if lfs:
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n".encode()
            return cls(path, data, True, sha256, git_blob_sha1(pointer), len(pointer))
        return cls(path, data, False, sha256, git_blob_sha1(data))

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.oid

    def tree_entry(self) -> dict:
        entry = {"type": "file", "oid": self.oid, "size": len(self.data), "path": self.path}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": self.pointer_size}
        return entry


@dataclass
class HubRepo:
    repo_id: str
    commits: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    gated: bool = False  # /resolve needs a token from `tokens`: 401 without one, 403 with another
    private: bool = False  # every endpoint needs a token from `tokens` (401 RepoNotFound otherwise)
    forbidden: bool = False  # every endpoint answers 403 (token without the right permission)
    tokens: set[str] = field(default_factory=set)


@dataclass
class LoggedRequest:
    method: str
    path: str
    range: str | None
    authorization: str | None
    host: str


class FakeHub:
    """The server and its state; start() binds 127.0.0.1 on a random port (and a CDN host)."""

    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.blobs: dict[str, HubFile] = {}  # sha256 -> file, for the CDN
        self.requests: list[LoggedRequest] = []
        self.drop_after: dict[str, int] = {}  # file path -> bytes sent before the connection drops (one-shot)
        self.throttle: float | None = None  # bytes per second for file bodies
        self.fail_status: dict[str, int] = {}  # path substring -> HTTP status to answer
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self.url = ""
        self.cdn_url = ""

    # ------------------------------------------------------------------ content

    def add_repo(self, repo_id: str, files: Path | dict[str, bytes], *, revision: str = "main",
                 gated: bool = False, private: bool = False, forbidden: bool = False,
                 tokens: tuple[str, ...] = ()) -> str:
        """Publish ``files`` (a folder, or {path: bytes}) as a new commit of ``repo_id``; return its sha."""
        if isinstance(files, Path):
            files = {p.relative_to(files).as_posix(): p.read_bytes() for p in sorted(files.rglob("*")) if p.is_file()}
        entries = {path: HubFile.make(path, data) for path, data in sorted(files.items())}
        digest = hashlib.sha1(f"{repo_id}\n{revision}\n".encode())
        for entry in entries.values():
            digest.update(f"{entry.path}\0{entry.oid}\n".encode())
        commit = digest.hexdigest()
        repo = self.repos.setdefault(repo_id, HubRepo(repo_id))
        repo.commits[commit] = entries
        repo.refs[revision] = commit
        repo.gated, repo.private, repo.forbidden = repo.gated or gated, repo.private or private, repo.forbidden or forbidden
        repo.tokens.update(tokens)
        for entry in entries.values():
            if entry.lfs:
                self.blobs[entry.sha256] = entry
        return commit

    def file(self, repo_id: str, path: str, revision: str = "main") -> HubFile:
        repo = self.repos[repo_id]
        return repo.commits[repo.refs.get(revision, revision)][path]

    def env(self, cache_dir: Path | None = None, **extra: str) -> dict[str, str]:
        """Environment for a `bertcli` subprocess that talks to this hub (online, private cache)."""
        env = {"HF_ENDPOINT": self.url, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
        if cache_dir is not None:
            env["HF_HUB_CACHE"] = str(cache_dir)
        env.update(extra)
        return env

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def log(self, method: str | None = None, contains: str = "") -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.requests if (method is None or r.method == method) and contains in r.path]

    # ------------------------------------------------------------------ server

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        main = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._servers.append(main)
        self.url = f"http://127.0.0.1:{main.server_address[1]}"
        try:  # a second loopback address plays the CDN, so redirects leave the "hub" host as on the real hub
            cdn = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
            self._servers.append(cdn)
            self.cdn_url = f"http://127.0.0.2:{cdn.server_address[1]}"
        except OSError:
            self.cdn_url = self.url
        for server in self._servers:
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeHub

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def do_HEAD(self):  # noqa: N802
        self._route(head=True)

    def do_GET(self):  # noqa: N802
        self._route(head=False)

    # ------------------------------------------------------------------ routing

    def _route(self, head: bool) -> None:
        fake = self.fake
        path = urlsplit(self.path).path
        with fake._lock:
            fake.requests.append(LoggedRequest(self.command, path, self.headers.get("Range"),
                                               self.headers.get("Authorization"), self.headers.get("Host", "")))
        for needle, status in fake.fail_status.items():
            if needle in path:
                return self._error(status, "Injected", f"injected {status}", head=head)
        if path.startswith("/cdn/"):
            entry = fake.blobs.get(path.rsplit("/", 1)[-1])
            if entry is None:
                return self._error(404, None, "no such blob", head=head)
            return self._send_file(entry, head=head, extra={"ETag": f'"{entry.sha256}"'})
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/"):]
            if "/tree/" in rest:
                repo_id, _, tail = rest.partition("/tree/")
                rev, _, sub = tail.partition("/")
                return self._tree(unquote(repo_id), unquote(rev), unquote(sub), head)
            repo_id, _, rev = rest.partition("/revision/")
            return self._info(unquote(repo_id), unquote(rev) if rev else "main", head)
        if "/resolve/" in path:
            repo_id, _, tail = path.lstrip("/").partition("/resolve/")
            rev, _, filename = tail.partition("/")
            return self._resolve(unquote(repo_id), unquote(rev), unquote(filename), head)
        return self._error(404, None, "not found", head=head)

    def _repo(self, repo_id: str, rev: str, head: bool, *, for_files: bool = False):
        """The repo and commit, or None after answering the error (404/401/403) the real hub gives."""
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found", head=head)
            return None
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if repo.private and token not in repo.tokens:
            self._error(401, "RepoNotFound", "Repository not found", head=head)
            return None
        if repo.forbidden:
            self._error(403, None, "Your token does not have the required permissions", head=head)
            return None
        if repo.gated and for_files and token not in repo.tokens:
            status = 403 if token else 401
            self._error(status, "GatedRepo", f"Access to model {repo_id} is restricted", head=head)
            return None
        commit = repo.refs.get(rev, rev if rev in repo.commits else None)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head=head)
            return None
        return repo, commit

    def _info(self, repo_id: str, rev: str, head: bool) -> None:
        found = self._repo(repo_id, rev, head)
        if found:
            repo, commit = found
            files = repo.commits[commit]
            self._json({
                "id": repo_id, "modelId": repo_id, "sha": commit, "private": repo.private,
                "gated": "auto" if repo.gated else False, "disabled": False, "downloads": 0, "likes": 0,
                "tags": [], "lastModified": "2024-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": p} for p in files],
            }, head)

    def _tree(self, repo_id: str, rev: str, sub: str, head: bool) -> None:
        found = self._repo(repo_id, rev, head)
        if found:
            repo, commit = found
            files = repo.commits[commit]
            prefix = f"{sub.rstrip('/')}/" if sub else ""
            folders = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
            entries = [{"type": "directory", "oid": git_blob_sha1(d.encode()), "size": 0, "path": d}
                       for d in folders if d.startswith(prefix)]
            entries += [f.tree_entry() for p, f in files.items() if p.startswith(prefix)]
            self._json(entries, head)

    def _resolve(self, repo_id: str, rev: str, filename: str, head: bool) -> None:
        found = self._repo(repo_id, rev, head, for_files=True)
        if not found:
            return
        repo, commit = found
        entry = repo.commits[commit].get(filename)
        if entry is None:
            return self._error(404, "EntryNotFound", f"{filename} does not exist", head=head,
                               extra={"X-Repo-Commit": commit})
        if entry.lfs:
            self.send_response(302)
            for key, value in {
                "Location": f"{self.fake.cdn_url}/cdn/{entry.sha256}",
                "X-Repo-Commit": commit, "X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(len(entry.data)),
                "ETag": f'"{entry.oid}"', "Content-Length": "0",
            }.items():
                self.send_header(key, value)
            self.end_headers()
            return
        self._send_file(entry, head=head, extra={"ETag": f'"{entry.oid}"', "X-Repo-Commit": commit})

    # ------------------------------------------------------------------ responses

    def _json(self, obj, head: bool) -> None:
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str | None, message: str, *, head: bool, extra: dict | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_file(self, entry: HubFile, *, head: bool, extra: dict) -> None:
        data = entry.data
        start, end = 0, len(data)
        range_header = self.headers.get("Range")
        if range_header and range_header.startswith("bytes="):
            first, _, last = range_header[len("bytes="):].partition("-")
            start = int(first or 0)
            end = int(last) + 1 if last else len(data)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        else:
            self.send_response(200)
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        if head:
            return
        body = memoryview(data)[start:end]
        fake = self.fake
        with fake._lock:
            drop = fake.drop_after.pop(entry.path, None) if start == 0 else None
        if drop is not None:
            self.wfile.write(body[:drop])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fake.throttle:
            chunk = max(1024, int(fake.throttle / 20))
            for i in range(0, len(body), chunk):
                self.wfile.write(body[i : i + chunk])
                self.wfile.flush()
                time.sleep(len(body[i : i + chunk]) / fake.throttle)
            return
        self.wfile.write(body)


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    """A running local hub (empty: tests publish repos with ``add_repo``), stopped after the test."""
    hub = FakeHub().start()
    try:
        yield hub
    finally:
        hub.stop()


def publish(hub: FakeHub, repo_id: str, folder: Path, *, extra: dict[str, bytes] | None = None,
            drop: tuple[str, ...] = (), **kwargs) -> str:
    """Publish a model folder (plus ``extra`` files, minus ``drop``) as ``repo_id``; return the commit."""
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    files.update(extra or {})
    for name in drop:
        files.pop(name, None)
    return hub.add_repo(repo_id, files, **kwargs)
