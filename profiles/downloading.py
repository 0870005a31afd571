"""``fit download REPO --quant Q``: one quant's files into ``models/<ModelName>/<QuantName>/``.

``download(request)`` lists the repository (``solver.gguf.repo``), picks the quant, and for
each of its files (every part of a split set, into the same folder):

1. refuses a name that would leave the destination (path segments are checked when listed;
   the model, quant and file names must be plain names, and the final path must lie inside
   ``dest``) before anything is fetched;
2. downloads it with huggingface_hub (``get_hf_file_metadata``, then ``http_get``) into
   ``<quant folder>/.fit-download/<name>.incomplete``; a later run resumes that file with a
   range request from its size; huggingface_hub retries broken connections and shows a
   progress bar on stderr;
3. verifies the size against the listing and the sha256 where the Hub gives one (LFS files),
   deleting a staged file that fails;
4. moves it into place with one rename, so a file under its final name is always complete
   and verified; a final file already there with the right size and hash is kept.

``download_command`` is the equivalent ``huggingface-cli download`` line, printed first.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field

from solver.errors import BadInput, OperationFailed
from solver.gguf.hub import hub_endpoint
from solver.gguf.repo import Quant, RepoFile, hub_errors, list_quants, parse_repo_id

STAGING = ".fit-download"
_PLAIN_NAME = re.compile(r"^(?!\.)[\w.+-]{1,200}$")
_GGUF_SUFFIX = re.compile(r"[-_.]gguf$", re.IGNORECASE)
_HASH_CHUNK = 8 * 1024 * 1024


class DownloadRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    repo: str = Field(description="owner/name, hf://owner/name or a huggingface.co URL")
    quant: str
    dest: Path = Path("models")
    revision: str | None = None


class DownloadedFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    size: int
    sha256: str | None = Field(
        default=None, description="checked against the Hub's; None: size only"
    )
    reused: bool = Field(default=False, description="already there, complete and verified")


class Download(BaseModel):
    model_config = ConfigDict(frozen=True)

    repo_id: str
    quant: str
    directory: Path
    command: str = Field(description="the equivalent huggingface-cli line")
    files: tuple[DownloadedFile, ...] = ()

    @property
    def model_path(self) -> Path:
        """The file llama-server's ``-m`` names: the first part."""
        return self.files[0].path


def model_name(repo_id: str) -> str:
    """``unsloth/Qwen3-30B-A3B-GGUF`` -> ``Qwen3-30B-A3B``."""
    name = repo_id.split("/")[1]
    return _GGUF_SUFFIX.sub("", name) or name


def quant_directory(dest: Path, repo_id: str, quant: Quant) -> Path:
    """``dest/<ModelName>/<QuantName>``; ``BadInput`` if either is not a plain name."""
    model = model_name(repo_id)
    for what, name in (("model", model), ("quant", quant.name)):
        if not _PLAIN_NAME.match(name):
            raise BadInput(f"{repo_id}: {what} name {name!r} is not a plain folder name")
    return dest / model / quant.name


def plan_download(request: DownloadRequest) -> tuple[str, Quant, Path]:
    """The repository id, the quant and its folder, every name checked; nothing written."""
    repo_id = parse_repo_id(request.repo)
    listing = list_quants(repo_id, request.revision)
    quant = listing.quant(request.quant)
    if not quant.complete:
        raise BadInput(
            f"{repo_id}: quant {quant.name} is a split set of {quant.expected_parts} parts but "
            f"the repository holds {len(quant.files)}"
        )
    directory = quant_directory(request.dest, repo_id, quant)
    for file in quant.files:
        _final_path(directory, file, request.dest)
    return repo_id, quant, directory


def download_command(repo_id: str, quant: Quant, directory: Path) -> str:
    """``huggingface-cli download REPO FILES --local-dir DIR`` putting the files where
    ``download`` does (a quant folder in the repository lands as that folder)."""
    folders = {str(PurePosixPath(f.path).parent) for f in quant.files}
    local_dir = directory.parent if folders == {quant.name} else directory
    words = ["huggingface-cli", "download", repo_id, *(f.path for f in quant.files)]
    return shlex.join([*words, "--local-dir", str(local_dir)])


def download(request: DownloadRequest, announce: Callable[[str], None] | None = None) -> Download:
    """Download the quant (see the module). ``announce`` hears the equivalent command
    before the first byte is fetched."""
    repo_id, quant, directory = plan_download(request)
    command = download_command(repo_id, quant, directory)
    if announce is not None:
        announce(command)
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / STAGING
    files = [_fetch(repo_id, request.revision, file, directory, staging, request.dest)
             for file in quant.files]  # fmt: skip
    shutil.rmtree(staging, ignore_errors=True)  # fit's own folder: all its files are in place
    return Download(
        repo_id=repo_id, quant=quant.name, directory=directory, command=command,
        files=tuple(files),
    )  # fmt: skip


def _final_path(directory: Path, file: RepoFile, dest: Path) -> Path:
    name = PurePosixPath(file.path).name
    final = directory / name
    inside = dest.resolve() in final.resolve().parents
    if not _PLAIN_NAME.match(name) or not inside:
        raise BadInput(f"{file.path}: not a plain file name; it would be written outside {dest}")
    return final


def _fetch(
    repo_id: str, revision: str | None, file: RepoFile, directory: Path, staging: Path, dest: Path
) -> DownloadedFile:
    final = _final_path(directory, file, dest)
    if final.exists():
        return DownloadedFile(
            path=final, size=file.size, sha256=_verified(final, file), reused=True
        )
    staging.mkdir(exist_ok=True)
    partial = staging / f"{final.name}.incomplete"
    try:
        with hub_errors(repo_id, revision, f"downloading {file.path}"):
            _download_into(partial, repo_id, revision, file)
    except OperationFailed as error:
        raise OperationFailed(
            f"{error}; the {_size_of(partial)} bytes that arrived are kept in {partial} (not "
            "under the final name): run the same command again to resume"
        ) from None
    try:
        sha = _verified(partial, file)
    except OperationFailed:
        partial.unlink(missing_ok=True)  # a wrong file is not worth resuming
        raise
    os.replace(partial, final)
    return DownloadedFile(path=final, size=file.size, sha256=sha)


def _size_of(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _download_into(partial: Path, repo_id: str, revision: str | None, file: RepoFile) -> None:
    """Append the rest of the file to ``partial`` with huggingface_hub's ``http_get`` (a
    range request from its current size; retries and a progress bar on stderr).
    ``hf_hub_download`` itself deletes what it fetched when a download breaks, so it cannot
    resume across runs; this keeps the bytes."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    endpoint = hub_endpoint()
    url = hf_hub_url(repo_id, file.path, revision=revision, endpoint=endpoint)
    metadata = get_hf_file_metadata(url, endpoint=endpoint)
    expected = metadata.size if metadata.size is not None else file.size
    have = _size_of(partial)
    if have > expected:  # not a prefix of this file: start over
        partial.unlink()
        have = 0
    with partial.open("r+b" if have else "wb") as handle:
        handle.seek(have)
        http_get(
            metadata.location, handle, resume_size=have, headers=build_hf_headers(),
            expected_size=expected, displayed_filename=PurePosixPath(file.path).name,
        )  # fmt: skip


def _verified(path: Path, file: RepoFile) -> str | None:
    """The file's sha256 when the Hub gave one to compare with (None: size checked only);
    ``OperationFailed`` naming the difference otherwise."""
    size = path.stat().st_size
    if size != file.size:
        raise OperationFailed(
            f"{path}: {size} bytes, the Hub lists {file.size} for {file.path}; move it away "
            "and download again"
        )
    if file.sha256 is None:
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != file.sha256:
        raise OperationFailed(
            f"{path}: sha256 {digest.hexdigest()[:16]}... differs from the Hub's "
            f"{file.sha256[:16]}... for {file.path}; move it away and download again"
        )
    return file.sha256


def download_text(result: Download) -> str:
    """One line per file (written or kept, and how it was verified), then the MODEL= line."""
    lines = [
        f"{'kept' if f.reused else 'wrote'} {f.path} ({f.size} bytes, "
        f"{'sha256 verified' if f.sha256 else 'size verified'})"
        for f in result.files
    ]
    return "\n".join([*lines, f"MODEL={result.model_path}"])
