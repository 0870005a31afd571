"""Read GGUF headers from the Hugging Face Hub with HTTP range requests, never the weights.

``hf://[models/|datasets/|spaces/]OWNER/REPO[@REVISION]/PATH/FILE.gguf`` (huggingface_hub's URI
form) and ``hf://OWNER/REPO/PATH/FILE.gguf@REVISION`` both name one file. The file's size and
commit come from huggingface_hub's ``get_hf_file_metadata`` (a HEAD on ``/resolve/``, which
honours ``HF_ENDPOINT``); bytes come from ranged GETs on the same URL, in the growing windows of
``solver.gguf.reader``, so a header costs at most one window (<= 1 MiB) more than its size. A
server that ignores ``Range`` is cut off after the bytes asked for.

Untrusted parts of a URL cannot leave the repository: a path segment ``.`` or ``..`` (which
an HTTP client normalises away, sending the token to another route) and repository ids
huggingface_hub would not accept are refused before any request.

Every request runs against one deadline per model (``HubDeadline``: ``FIT_HUB_TIMEOUT_S``,
default 300 s, for all HEADs and GETs of all parts), so a server that stalls or drips a byte a
second cannot hang fit; a connection that breaks is retried a few times within it. Each
failure is one line saying what failed and what to do (``explain``).
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import unquote, urlsplit

import httpx2
from huggingface_hub import get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from solver.errors import BadInput, FitError, OperationFailed

HF_SCHEME = "hf://"
_REPO_TYPE_PREFIXES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_SPECIAL_REF = re.compile(r"^refs/(?:convert/[\w.-]+|pr/\d+)(?=/)")
# huggingface_hub's validate_repo_id, per part: letters, digits, '-', '_', '.'; no leading or
# trailing '-' or '.', no '--' or '..'
_REPO_PART = re.compile(r"^(?![-.])(?!.*(?:--|\.\.))[\w.-]{1,96}(?<![-.])$")

TIMEOUT_ENV = "FIT_HUB_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 300.0  # a 256 MiB header (the reader's ceiling) at ~1 MB/s
_SOCKET_TIMEOUT_S = 30.0  # no byte for this long on one connection: it is dead
_TRIES = 3  # a broken connection is retried twice, within the deadline

T = TypeVar("T")


@dataclass(frozen=True)
class HubFile:
    """One file in a Hub repository at a revision (None: the default branch); an empty
    ``filename`` stands for the repository itself."""

    repo_id: str
    filename: str
    revision: str | None = None
    repo_type: str = "model"

    @property
    def url(self) -> str:
        """The ``hf://`` form fit prints for this file."""
        prefix = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        revision = f"@{self.revision}" if self.revision else ""
        if not self.filename:  # the repository itself
            return f"{HF_SCHEME}{prefix}{self.repo_id}{revision}"
        return f"{HF_SCHEME}{prefix}{self.repo_id}/{self.filename}{revision}"

    def sibling(self, filename: str, revision: str | None) -> HubFile:
        return HubFile(self.repo_id, filename, revision, self.repo_type)


def parse_hf_url(url: str) -> HubFile:
    """Parse an ``hf://`` URL naming a ``.gguf`` file; ``BadInput`` if it does not, or if any
    part of it could address something outside the repository."""
    if not url.startswith(HF_SCHEME):
        raise BadInput(f"{url}: not an hf:// URL")
    body = url[len(HF_SCHEME) :]
    revision: str | None = None
    head, at, tail = body.rpartition("@")
    if at and head.endswith(".gguf"):  # hf://owner/repo/file.gguf@revision
        body, revision = head, tail
    parts = body.split("/")
    repo_type = _REPO_TYPE_PREFIXES.get(parts[0], "model")
    if parts[0] in _REPO_TYPE_PREFIXES:
        parts = parts[1:]
    if len(parts) < 3 or not all(parts):
        raise BadInput(f"{url}: expected hf://OWNER/REPO/PATH/FILE.gguf[@REVISION]")
    owner, repo, path = parts[0], parts[1], "/".join(parts[2:])
    repo, at, repo_revision = repo.partition("@")  # hf://owner/repo@revision/file.gguf
    if at:
        if revision is not None or not repo_revision:
            raise BadInput(f"{url}: give the revision once, after the repo or after the file")
        # Like huggingface_hub's URI parser: refs/pr/N and refs/convert/X contain slashes.
        special = _SPECIAL_REF.match(f"{repo_revision}/{path}")
        if special:
            revision, path = special.group(0), f"{repo_revision}/{path}"[special.end() + 1 :]
        else:
            revision = repo_revision
    if not path.endswith(".gguf"):
        raise BadInput(f"{url}: does not name a .gguf file")
    if revision == "":
        raise BadInput(f"{url}: empty revision after '@'")
    check_inside_repo(url, owner, repo, path)
    return HubFile(f"{owner}/{repo}", path, revision, repo_type)


def check_inside_repo(url: str, owner: str, repo: str, path: str) -> None:
    """Refuse what would make the request leave ``/OWNER/REPO/resolve/REV/``: a ``.`` or
    ``..`` path segment (the client normalises ``/resolve/main/../../api/x`` to ``/api/x``,
    token included), an empty segment, a backslash or a control character, and repository
    ids the Hub does not allow."""
    for name, part in (("owner", owner), ("repository", repo)):
        if not _REPO_PART.match(part):
            raise BadInput(
                f"{url}: {name} {part!r} is not a Hub name (letters, digits, '-', '_', '.'; "
                "no leading or trailing '-' or '.', no '--' or '..')"
            )
    segments = path.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise BadInput(f"{url}: the file path may not contain '.', '..' or empty segments")
    if any(char == "\\" or ord(char) < 0x20 or ord(char) == 0x7F for char in path):
        raise BadInput(f"{url}: the file path contains a backslash or a control character")


def hub_endpoint() -> str | None:
    # Read at call time: huggingface_hub reads HF_ENDPOINT once, at import.
    endpoint = os.environ.get("HF_ENDPOINT")
    return endpoint.rstrip("/") if endpoint else None


def _timeout_from_env() -> float:
    text = os.environ.get(TIMEOUT_ENV, "")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 86400:
        raise BadInput(f"{TIMEOUT_ENV}={text!r}: give seconds, more than 0 and at most 86400")
    return seconds


@dataclass
class HubDeadline:
    """The time every request for one model must finish in (all HEADs and GETs, all parts).

    ``seconds`` defaults to ``$FIT_HUB_TIMEOUT_S``, else ``DEFAULT_TIMEOUT_S``.
    """

    seconds: float = field(default_factory=_timeout_from_env)
    start: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return self.start + self.seconds - time.monotonic()


class HubRangeSource:
    """A file on the Hub as a ``ByteSource``: ranged GETs, counting the body bytes received.

    ``deadline`` is shared by every source of one model; a new one starts if none is given.
    """

    def __init__(self, file: HubFile, deadline: HubDeadline | None = None) -> None:
        self.file = file
        self.endpoint = hub_endpoint()
        self.deadline = deadline or HubDeadline()
        self.bytes_read = 0
        self._headers = build_hf_headers()
        self._headers["Accept-Encoding"] = "identity"  # byte ranges of the file itself
        self._has_token = "authorization" in {key.lower() for key in self._headers}
        with self._errors("looking up the file"):
            url = hf_hub_url(
                file.repo_id,
                file.filename,
                repo_type=file.repo_type,
                revision=file.revision,
                endpoint=self.endpoint,
            )
            _check_normalised(file, url)
            metadata = self._within(
                "looking up the file",
                lambda _cancel: get_hf_file_metadata(
                    url, timeout=_SOCKET_TIMEOUT_S, endpoint=self.endpoint
                ),
            )
        if metadata.size is None:
            raise OperationFailed(f"{file.url}: the Hub did not report the file's size")
        self.url = url
        self.commit = metadata.commit_hash
        self._size = metadata.size

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, size: int) -> bytes:
        if size <= 0 or offset >= self._size:
            return b""
        last = min(offset + size, self._size) - 1
        what = f"reading bytes {offset}-{last}"
        with self._errors(what):
            for attempt in range(_TRIES):
                try:
                    return self._within(what, lambda cancel: self._get(offset, last, cancel))
                except _RETRYABLE as error:
                    pause = 2.0**attempt
                    if attempt == _TRIES - 1 or self.deadline.remaining() <= pause:
                        raise _Tried(error, attempt + 1) from None
                    time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(self, offset: int, last: int, cancel: threading.Event) -> bytes:
        """One ranged GET; stops early when ``cancel`` is set (the deadline passed)."""
        headers = {**self._headers, "Range": f"bytes={offset}-{last}"}
        wanted = last - offset + 1
        chunks: list[bytes] = []
        received = 0
        with get_session().stream(
            "GET", self.url, headers=headers, follow_redirects=True, timeout=_SOCKET_TIMEOUT_S
        ) as response:
            if response.status_code == 429 or response.status_code >= 500:
                raise _RetryableStatus(response.status_code)
            if response.status_code >= 400:
                response.read()  # error bodies are small; hf_raise_for_status reads them
            hf_raise_for_status(response)
            self._check_range(response, offset)
            try:
                for chunk in response.iter_bytes():
                    chunks.append(chunk[: wanted - received])
                    received += len(chunk)
                    self.bytes_read += len(chunk)
                    if received >= wanted or cancel.is_set():
                        break  # a server that ignored Range is cut off here
            except httpx2.TransportError as error:
                raise _Broken(error, received, wanted) from None
        return b"".join(chunks)

    def _within(self, what: str, work: Callable[[threading.Event], T]) -> T:
        """``work`` in a daemon thread, given up (and told to stop) when the deadline passes:
        a socket timeout bounds each read, not a server that drips a byte a second."""
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise self._timed_out(what)
        outcome: list[T] = []
        failure: list[BaseException] = []
        cancel, done = threading.Event(), threading.Event()

        def run() -> None:
            try:
                outcome.append(work(cancel))
            except BaseException as error:  # handed to the caller's thread as it is
                failure.append(error)
            finally:
                done.set()

        threading.Thread(target=run, name=f"fit hub: {what}", daemon=True).start()
        if not done.wait(remaining):
            cancel.set()
            raise self._timed_out(what)
        if failure:
            raise failure[0]
        return outcome[0]

    def _timed_out(self, what: str) -> OperationFailed:
        return OperationFailed(
            f"{self.file.url}: {what} did not finish within {self.deadline.seconds:g} s "
            f"({self.bytes_read} bytes received): the connection to {_host(self.endpoint)} is "
            f"stalled or too slow; retry, or allow more time with {TIMEOUT_ENV}"
        )

    def _check_range(self, response: httpx2.Response, offset: int) -> None:
        if response.status_code == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise OperationFailed(
                    f"{self.file.url}: asked for bytes from {offset}, got {content_range!r}"
                )
        elif offset != 0:
            raise OperationFailed(
                f"{self.file.url}: the server ignores HTTP range requests "
                f"(status {response.status_code}); cannot read the header alone"
            )

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Every failure below as one ``FitError`` line naming the file (``explain``)."""
        try:
            yield
        except FitError:
            raise
        except Exception as error:
            raise explain(error, self.file, self.endpoint, self._has_token, what) from None


def _check_normalised(file: HubFile, url: str) -> None:
    """The URL the client will send is the one built: nothing in it is normalised away."""
    sent = httpx2.URL(url).path
    if sent != unquote(urlsplit(url).path) or "/resolve/" not in sent:
        raise BadInput(f"{file.url}: the request would leave the repository ({sent})")


class _RetryableStatus(Exception):
    """HTTP 429 or 5xx on a range read: worth another try."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class _Broken(Exception):
    """The connection broke inside a body, after ``received`` of ``wanted`` bytes."""

    def __init__(self, error: httpx2.TransportError, received: int, wanted: int) -> None:
        super().__init__(_first_line(error))
        self.error, self.received, self.wanted = error, received, wanted


class _Tried(Exception):
    """The last failure of a read after ``tries`` attempts."""

    def __init__(self, error: Exception, tries: int) -> None:
        super().__init__(str(error))
        self.error, self.tries = error, tries


_RETRYABLE = (httpx2.TransportError, _RetryableStatus, _Broken)


def explain(
    error: BaseException, file: HubFile, endpoint: str | None, has_token: bool, what: str
) -> FitError:
    """One line for a failed Hub request: what failed, and what the user can do about it.

    ``BadInput`` (exit 2) where the URL names nothing readable (no such repository, revision
    or file, a gated or private repository); ``OperationFailed`` (exit 1) where the network or
    the server failed.
    """
    where, host = file.url, _host(endpoint)
    tries = ""
    if isinstance(error, _Tried):
        tries = f" ({error.tries} tries)"
        error = error.error
    token_hint = (
        "check that HF_TOKEN (or `hf auth login`) is a token of an account with access"
        if has_token
        else "set HF_TOKEN or run `hf auth login` with an account that has access"
    )
    if isinstance(error, OfflineModeIsEnabled):
        return OperationFailed(
            f"{where}: HF_HUB_OFFLINE is set, so the Hub cannot be reached; unset it, or give "
            "a local .gguf file"
        )
    if isinstance(error, GatedRepoError):  # before RepositoryNotFoundError, its base
        return BadInput(
            f"{where}: {file.repo_id} is a gated repository: accept its conditions on "
            f"{endpoint or 'https://huggingface.co'}/{file.repo_id}, then {token_hint}"
        )
    if isinstance(error, RepositoryNotFoundError):
        return BadInput(f"{where}: repository not found, or private ({token_hint})")
    if isinstance(error, RevisionNotFoundError):
        return BadInput(f"{where}: revision {file.revision!r} not found")
    if isinstance(error, EntryNotFoundError):
        return BadInput(f"{where}: no such file in the repository")
    if isinstance(error, HFValidationError):
        return BadInput(f"{where}: {_first_line(error)}")
    if isinstance(error, _RetryableStatus | HfHubHTTPError):
        response = getattr(error, "response", None)
        status = getattr(error, "status", None) or getattr(response, "status_code", None)
        return _status_error(where, host, status, token_hint, tries, error)
    if isinstance(error, _Broken):
        return OperationFailed(
            f"{where}: the connection to {host} broke after {error.received} of "
            f"{error.wanted} bytes{tries}: check the network and retry"
        )
    if isinstance(error, httpx2.TransportError):
        return _network_error(where, host, error, tries, what)
    return OperationFailed(f"{where}: {what} failed: {_first_line(error)}")


def _status_error(
    where: str, host: str, status: int | None, token_hint: str, tries: str, error: BaseException
) -> FitError:
    if status == 401:
        return BadInput(f"{where}: the Hub refused the request (HTTP 401): {token_hint}")
    if status == 403:
        return BadInput(f"{where}: access denied (HTTP 403): {token_hint}")
    if status == 404:
        return BadInput(f"{where}: not found on the Hub (HTTP 404)")
    if status == 429:
        return OperationFailed(
            f"{where}: {host} is rate-limiting requests (HTTP 429){tries}: wait a few "
            "minutes and retry; requests with a token (HF_TOKEN) get a higher limit"
        )
    if status is not None and status >= 500:
        return OperationFailed(
            f"{where}: {host} failed (HTTP {status}){tries}: the Hub or the endpoint "
            "(HF_ENDPOINT) has a problem; retry later"
        )
    return OperationFailed(f"{where}: {host} answered HTTP {status}: {_first_line(error)}")


def _network_error(
    where: str, host: str, error: httpx2.TransportError, tries: str, what: str
) -> OperationFailed:
    causes = _causes(error)
    if any(isinstance(cause, socket.gaierror) for cause in causes):
        return OperationFailed(
            f"{where}: cannot resolve {host} (DNS lookup failed): offline, or no DNS? Check "
            "the network connection (or HF_ENDPOINT for a mirror)"
        )
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return OperationFailed(
            f"{where}: {host} refused the connection: check HF_ENDPOINT and any proxy (HTTPS_PROXY)"
        )
    if any(isinstance(cause, ssl.SSLError) for cause in causes):
        return OperationFailed(
            f"{where}: TLS with {host} failed ({_first_line(error)}): a proxy that "
            "intercepts TLS needs its CA in SSL_CERT_FILE"
        )
    if isinstance(error, httpx2.ProxyError):
        return OperationFailed(
            f"{where}: the proxy failed ({_first_line(error)}): check HTTPS_PROXY"
        )
    if isinstance(error, httpx2.ConnectTimeout):
        return OperationFailed(
            f"{where}: no connection to {host} within {_SOCKET_TIMEOUT_S:g} s{tries}: check "
            "the network connection and any proxy (HTTPS_PROXY)"
        )
    if isinstance(error, httpx2.TimeoutException):
        return OperationFailed(
            f"{where}: {host} sent nothing for {_SOCKET_TIMEOUT_S:g} s while {what}{tries}; "
            "retry later"
        )
    return OperationFailed(
        f"{where}: {what} failed: {_first_line(error)}{tries}; check the network and retry"
    )


def _causes(error: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in found and len(found) < 16:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _host(endpoint: str | None) -> str:
    from huggingface_hub import constants

    return urlsplit(endpoint or constants.ENDPOINT).netloc or "the Hub"
