"""A local stand-in for the Hugging Face Hub's file endpoints, for tests.

It serves ``HEAD`` and ``GET /{repo_id}/resolve/{revision}/{path}`` the way huggingface_hub's
``get_hf_file_metadata`` and a ranged download expect (``X-Repo-Commit``, ``ETag``,
``Content-Length``, ``Accept-Ranges``; 206 with ``Content-Range`` for ``Range: bytes=a-b``;
404 with ``X-Error-Code`` for unknown revisions or files) and counts the body bytes it sends
per file. It binds 127.0.0.1 on a free port; point ``HF_ENDPOINT`` at ``FakeHub.url``.

Misbehaving modes, each bounded in time so no server thread outlives a test by more than
``DRIP_LIMIT_S``: ``drop_after`` (announce the whole range, send that many body bytes, close
the connection), ``drip_bytes_per_s`` (send the body a byte at a time at that rate, giving up
after ``DRIP_LIMIT_S``), ``status`` (answer every request with that HTTP status and
``X-Error-Code``/``X-Error-Message`` as the Hub does, e.g. 401, 403 ``GatedRepo``, 429, 503).
``requests`` records (method, path, Range, Authorization) of every request.

Repository listings: ``GET /api/models/{repo_id}/tree/{revision}[/{folder}]`` answers as the
Hub does (a JSON list of ``file`` and ``directory`` entries; ``lfs`` with the sha256 for files
added with one, as the Hub gives for LFS files, whose ``ETag`` is then that sha256 too);
an unknown repository is 404 ``RepoNotFound``. ``gated`` names repositories whose files
answer 401 ``GatedRepo`` to a request without ``Authorization`` (their listing and README.md
stay public, as on the Hub). ``cut_after`` (bytes) serves at most that many body bytes of
any one file in total: the GET that reaches it closes the connection, later GETs of that
file get 503 — a download that breaks and stays broken until the test sets ``cut_after``
back to None.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RESOLVE = re.compile(r"^/(?:(?:models|datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_TREE = re.compile(r"^/api/models/([^/]+/[^/]+)/tree/([^/?]+)(?:/([^?]*))?(?:\?.*)?$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_CHUNK = 64 * 1024
DRIP_LIMIT_S = 10.0


def use_hub(monkeypatch: pytest.MonkeyPatch, hub: FakeHub, home: Path) -> None:
    """Point huggingface_hub (and fit's range reads) at ``hub`` for one test: no token, no
    telemetry, a fresh ``HF_HOME``, no proxy for the loopback address."""
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("HF_TOKEN", raising=False)


class FakeHub:
    """Files by (repo_id, path); ``bytes_sent[(repo_id, path)]`` counts GET body bytes."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], Path] = {}
        self.bytes_sent: Counter[tuple[str, str]] = Counter()
        self.requests: list[tuple[str, str, str | None, str | None]] = []
        self.ignore_range = False
        self.drop_after: int | None = None
        self.drip_bytes_per_s: float | None = None
        self.status: tuple[int, str, str] | None = None  # (status, X-Error-Code, message)
        self.sha256: dict[tuple[str, str], str] = {}
        self.gated: set[str] = set()
        self.cut_after: int | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, repo_id: str, path: str, local: Path, *, lfs: bool = False) -> None:
        """Serve ``local`` as ``path`` of ``repo_id``; ``lfs``: as an LFS file, with its
        sha256 in the listing and as its ETag (hashed here, so keep such files small)."""
        self.files[(repo_id, path)] = local
        if lfs:
            self.sha256[(repo_id, path)] = hashlib.sha256(local.read_bytes()).hexdigest()

    def tree(self, repo_id: str, folder: str) -> list[dict[str, object]] | None:
        """The Hub's recursive tree listing of ``folder`` ("" for the root), or None when
        the repository is unknown."""
        paths = sorted(path for repo, path in self.files if repo == repo_id)
        if not paths:
            return None
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        entries: list[dict[str, object]] = []
        folders: set[str] = set()
        for path in paths:
            if not path.startswith(prefix):
                continue
            parts = path.split("/")
            for depth in range(1, len(parts)):
                name = "/".join(parts[:depth])
                if name.startswith(prefix) and name not in folders:
                    folders.add(name)
                    entries.append({"type": "directory", "oid": COMMIT, "size": 0, "path": name})
            entries.append(self._file_entry(repo_id, path))
        return entries

    def _file_entry(self, repo_id: str, path: str) -> dict[str, object]:
        size = self.files[(repo_id, path)].stat().st_size
        entry: dict[str, object] = {"type": "file", "oid": COMMIT, "size": size, "path": path}
        sha = self.sha256.get((repo_id, path))
        if sha is not None:
            entry["lfs"] = {"oid": sha, "size": size, "pointerSize": 134}
        return entry

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _count(self, key: tuple[str, str], n: int) -> None:
        with self._lock:
            self.bytes_sent[key] += n

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _fail(self, status: int, code: str, message: str = "") -> None:
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                if message:
                    self.send_header("X-Error-Message", message)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _serve(self, body: bool) -> None:
                hub.requests.append(
                    (
                        self.command,
                        self.path,
                        self.headers.get("Range"),
                        self.headers.get("Authorization"),
                    )
                )
                if hub.status is not None:
                    self._fail(*hub.status)
                    return
                tree = _TREE.match(unquote(self.path))
                if tree is not None:
                    self._serve_tree(*tree.groups())
                    return
                match = _RESOLVE.match(unquote(self.path))
                if match is None:
                    self._fail(404, "RepoNotFound")
                    return
                repo_id, revision, path = match.groups()
                public = path in ("README.md", ".gitattributes")  # a gated repo's card shows
                if repo_id in hub.gated and not public and not self.headers.get("Authorization"):
                    self._fail(401, "GatedRepo", f"Access to model {repo_id} is restricted.")
                    return
                if revision not in ("main", COMMIT):
                    self._fail(404, "RevisionNotFound")
                    return
                local = hub.files.get((repo_id, path))
                if local is None:
                    self._fail(404, "EntryNotFound")
                    return
                size = local.stat().st_size
                if (
                    body
                    and hub.cut_after is not None
                    and hub.bytes_sent[(repo_id, path)] >= hub.cut_after
                ):
                    self._fail(503, "ServiceUnavailable", "the test cut this file off")
                    return
                start, end, status = 0, size - 1, 200
                wanted = _RANGE.match(self.headers.get("Range", ""))
                if wanted and not hub.ignore_range:
                    start = int(wanted.group(1))
                    end = min(int(wanted.group(2) or size - 1), size - 1)
                    status = 206
                self.send_response(status)
                self.send_header("X-Repo-Commit", COMMIT)
                etag = hub.sha256.get((repo_id, path), f"{COMMIT[:8]}-{size}")
                self.send_header("ETag", f'"{etag}"')
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(end - start + 1))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.end_headers()
                if body:
                    self._send_file(local, start, end, (repo_id, path))

            def _serve_tree(self, repo_id: str, revision: str, folder: str | None) -> None:
                entries = hub.tree(repo_id, folder or "")
                if entries is None:
                    self._fail(404, "RepoNotFound")
                    return
                if revision not in ("main", COMMIT):
                    self._fail(404, "RevisionNotFound")
                    return
                data = json.dumps(entries).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(data)

            def _send_file(self, local: Path, start: int, end: int, key: tuple[str, str]) -> None:
                left = end - start + 1
                if hub.drop_after is not None:
                    left = min(left, hub.drop_after)
                    self.close_connection = True  # then the socket closes mid-body
                if hub.cut_after is not None:
                    left = min(left, max(hub.cut_after - hub.bytes_sent[key], 0))
                    self.close_connection = True
                chunk_size, pause = _CHUNK, 0.0
                if hub.drip_bytes_per_s:
                    chunk_size, pause = 1, 1.0 / hub.drip_bytes_per_s
                    self.close_connection = True
                give_up = time.monotonic() + DRIP_LIMIT_S
                with local.open("rb") as handle:
                    handle.seek(start)
                    while left > 0 and time.monotonic() < give_up:
                        chunk = handle.read(min(chunk_size, left))
                        try:
                            self.wfile.write(chunk)
                        except (BrokenPipeError, ConnectionResetError):
                            self.close_connection = True
                            return
                        hub._count(key, len(chunk))
                        left -= len(chunk)
                        if pause:
                            self.wfile.flush()
                            time.sleep(pause)

        return Handler
