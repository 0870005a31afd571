"""Read GGUF headers from the Hugging Face Hub with HTTP range requests, never the weights.

``hf://[models/|datasets/|spaces/]OWNER/REPO[@REVISION]/PATH/FILE.gguf`` (huggingface_hub's URI
form) and ``hf://OWNER/REPO/PATH/FILE.gguf@REVISION`` both name one file. The file's size and
commit come from huggingface_hub's ``get_hf_file_metadata`` (a HEAD on ``/resolve/``, which
honours ``HF_ENDPOINT``); bytes come from ranged GETs on the same URL, in the growing windows of
``solver.gguf.reader``, so a header costs at most one window (<= 1 MiB) more than its size. A
server that ignores ``Range`` is cut off after the bytes asked for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_stream_backoff

from solver.errors import BadInput, OperationFailed

HF_SCHEME = "hf://"
_REPO_TYPE_PREFIXES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_TIMEOUT_S = 30.0
_SPECIAL_REF = re.compile(r"^refs/(?:convert/[\w.-]+|pr/\d+)(?=/)")


@dataclass(frozen=True)
class HubFile:
    """One file in a Hub repository at a revision (None: the default branch)."""

    repo_id: str
    filename: str
    revision: str | None = None
    repo_type: str = "model"

    @property
    def url(self) -> str:
        """The ``hf://`` form fit prints for this file."""
        prefix = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        revision = f"@{self.revision}" if self.revision else ""
        return f"{HF_SCHEME}{prefix}{self.repo_id}/{self.filename}{revision}"

    def sibling(self, filename: str, revision: str | None) -> HubFile:
        return HubFile(self.repo_id, filename, revision, self.repo_type)


def parse_hf_url(url: str) -> HubFile:
    """Parse an ``hf://`` URL naming a ``.gguf`` file; ``BadInput`` if it does not."""
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
    return HubFile(f"{owner}/{repo}", path, revision, repo_type)


def _endpoint() -> str | None:
    # Read at call time: huggingface_hub reads HF_ENDPOINT once, at import.
    endpoint = os.environ.get("HF_ENDPOINT")
    return endpoint.rstrip("/") if endpoint else None


class HubRangeSource:
    """A file on the Hub as a ``ByteSource``: ranged GETs, counting the body bytes received."""

    def __init__(self, file: HubFile) -> None:
        self.file = file
        self.endpoint = _endpoint()
        self.bytes_read = 0
        self._headers = build_hf_headers()
        self._headers["Accept-Encoding"] = "identity"  # byte ranges of the file itself
        with _hub_errors(file):
            url = hf_hub_url(
                file.repo_id,
                file.filename,
                repo_type=file.repo_type,
                revision=file.revision,
                endpoint=self.endpoint,
            )
            metadata = get_hf_file_metadata(url, endpoint=self.endpoint)
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
        headers = {**self._headers, "Range": f"bytes={offset}-{last}"}
        wanted = last - offset + 1
        chunks: list[bytes] = []
        received = 0
        with (
            _hub_errors(self.file),
            http_stream_backoff(
                "GET", self.url, headers=headers, follow_redirects=True, timeout=_TIMEOUT_S
            ) as response,
        ):
            if response.status_code >= 400:
                response.read()  # error bodies are small; hf_raise_for_status reads them
            hf_raise_for_status(response)
            self._check_range(response, offset)
            for chunk in response.iter_bytes():
                chunks.append(chunk[: wanted - received])
                received += len(chunk)
                if received >= wanted:
                    break  # a server that ignored Range is cut off here
        self.bytes_read += received
        return b"".join(chunks)

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
def _hub_errors(file: HubFile) -> Iterator[None]:
    """Map huggingface_hub and network failures to fit's errors, naming the file."""
    where = file.url
    try:
        yield
    except (RepositoryNotFoundError, GatedRepoError):
        raise BadInput(f"{where}: repository not found or not accessible") from None
    except RevisionNotFoundError:
        raise BadInput(f"{where}: revision {file.revision!r} not found") from None
    except EntryNotFoundError:
        raise BadInput(f"{where}: no such file in the repository") from None
    except HFValidationError as error:
        raise BadInput(f"{where}: {error}") from None
    except OfflineModeIsEnabled:
        raise OperationFailed(f"{where}: HF_HUB_OFFLINE is set, cannot reach the Hub") from None
    except (HfHubHTTPError, httpx2.HTTPError) as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status == 404:
            raise BadInput(f"{where}: not found on the Hub (HTTP 404)") from None
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise OperationFailed(f"{where}: {reason}") from None
