"""A Hugging Face repository of GGUF files: its listing grouped into quants, and its card.

``list_quants(repo)`` lists the repository once (huggingface_hub's ``list_repo_tree``, which
honours ``HF_ENDPOINT``) and groups its ``.gguf`` files into quants, whatever the layout:

- flat: ``Model-Q4_K_M.gguf`` beside ``Model-Q8_0.gguf``;
- a folder per quant: ``Q4_K_M/Model-Q4_K_M-00001-of-00003.gguf`` (the folder names it);
- Unsloth dynamic quants: ``UD-Q4_K_XL`` keeps its ``UD-`` prefix, a quant of its own;
- split sets (``NAME-0000k-of-0000N.gguf``): one quant, sizes summed, every part listed in
  order; a set with a part missing is kept and marked incomplete.

Vision projectors (``mmproj*``) and importance matrices (``*imatrix*``) are not quants; they
are listed apart. ``group_quants`` is the pure half (tested without a server).

``read_card(repo)`` returns the README's text (the model card), or None if the repository has
none. Every failure is one line (``hub.explain``): a missing or gated repository is
``BadInput`` (exit 2), a network failure ``OperationFailed`` (exit 1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import PurePosixPath

from pydantic import BaseModel, ConfigDict, Field

from solver.errors import BadInput, FitError, OperationFailed
from solver.gguf.hub import HF_SCHEME, HubFile, check_inside_repo, explain, hub_endpoint
from solver.gguf.sources import SPLIT_NAME

CARD_FILE = "README.md"
MAX_CARD_BYTES = 4 * 1024 * 1024  # the largest real cards are a few hundred KB
# A quant label as llama.cpp's quantize and Unsloth name them, inside a file or folder name:
# Q4_K_M, Q8_0, IQ2_XXS, TQ1_0, BF16, F16, MXFP4, MXFP4_MOE, and UD- dynamic quants.
_QUANT = re.compile(
    r"(?<![A-Za-z0-9])((?:UD-)?(?:I?Q\d(?:_K)?(?:_(?:[0-9]|XXS|XS|S|M|L|XL|NL))*"
    r"|TQ\d_\d|BF16|F16|FP16|F32|MXFP4(?:_MOE)?))(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_NOT_A_QUANT = re.compile(r"mmproj|imatrix", re.IGNORECASE)


class RepoFile(BaseModel):
    """One file of the listing: path in the repository, bytes, and sha256 when LFS gives it."""

    model_config = ConfigDict(frozen=True)

    path: str
    size: int = Field(ge=0)
    sha256: str | None = None


class Quant(BaseModel):
    """The files of one quant, split parts in order."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="the quant's label, e.g. Q4_K_M or UD-Q4_K_XL")
    files: tuple[RepoFile, ...]
    complete: bool = Field(default=True, description="False: a split part is missing")
    expected_parts: int = 1

    @property
    def size(self) -> int:
        """Bytes of all parts."""
        return sum(file.size for file in self.files)

    @property
    def first(self) -> str:
        """The path of the first part: what llama-server's ``-m`` names."""
        return self.files[0].path


class QuantListing(BaseModel):
    """A repository's quants (largest first) and the GGUF files that are not quants."""

    model_config = ConfigDict(frozen=True)

    repo_id: str
    revision: str | None = None
    quants: tuple[Quant, ...]
    extras: tuple[RepoFile, ...] = Field(default=(), description="mmproj, imatrix files")

    def quant(self, name: str) -> Quant:
        """The quant called ``name`` (case-insensitive), or ``BadInput`` listing them all."""
        for quant in self.quants:
            if quant.name.lower() == name.lower():
                return quant
        known = ", ".join(q.name for q in self.quants) or "none"
        raise BadInput(f"{self.repo_id}: no quant {name!r} (quants: {known})")

    def url(self, quant: Quant) -> str:
        """``hf://`` URL of the quant's first part (``solver.gguf.sources`` reads the rest)."""
        return HubFile(self.repo_id, quant.first, self.revision).url


def parse_repo_id(text: str) -> str:
    """``owner/name`` from ``owner/name``, ``hf://owner/name`` or a huggingface.co URL;
    ``BadInput`` for anything the Hub would not accept as a model repository id."""
    body = text.strip()
    for prefix in (HF_SCHEME, "https://huggingface.co/", "http://huggingface.co/"):
        if body.startswith(prefix):
            body = body[len(prefix) :]
    parts = body.strip("/").split("/")
    if len(parts) != 2:
        raise BadInput(f"{text}: expected a Hugging Face repository id OWNER/NAME")
    check_inside_repo(text, parts[0], parts[1], "x")
    return f"{parts[0]}/{parts[1]}"


def quant_label(path: str) -> str:
    """The quant a GGUF file belongs to: its folder when that is a quant label, else the
    last label in its name, else its name without split suffix and extension."""
    pure = PurePosixPath(path)
    folder = pure.parent.name
    if folder and _QUANT.fullmatch(folder):
        return _normalised(folder)
    stem = _set_stem(pure.name)
    found = _QUANT.findall(stem)
    return _normalised(found[-1]) if found else stem


def _normalised(label: str) -> str:
    return label.upper()


def _set_stem(filename: str) -> str:
    """``Model-Q4_K_M-00001-of-00003.gguf`` -> ``Model-Q4_K_M``."""
    match = SPLIT_NAME.match(filename)
    if match:
        return match["prefix"]
    return filename[: -len(".gguf")] if filename.lower().endswith(".gguf") else filename


def group_quants(
    repo_id: str, files: Iterable[RepoFile], revision: str | None = None
) -> QuantListing:
    """Group a listing's ``.gguf`` files into quants (see the module docstring), largest first
    (ties by name), so the same listing always gives the same order."""
    sets: dict[tuple[str, str], list[RepoFile]] = {}
    extras = []
    for file in sorted(files, key=lambda f: f.path):
        if not file.path.lower().endswith(".gguf"):
            continue
        if _NOT_A_QUANT.search(PurePosixPath(file.path).name):
            extras.append(file)
            continue
        pure = PurePosixPath(file.path)
        sets.setdefault((str(pure.parent), _set_stem(pure.name)), []).append(file)
    quants = [_quant(parts) for parts in sets.values()]
    labels = [q.name for q in quants]
    quants = [  # two sets with one label (two flavours of a quant): name them by their files
        q if labels.count(q.name) == 1 else q.model_copy(update={"name": _set_stem_of(q)})
        for q in quants
    ]
    quants.sort(key=lambda q: (-q.size, q.name))
    return QuantListing(
        repo_id=repo_id, revision=revision, quants=tuple(quants), extras=tuple(extras)
    )


def _set_stem_of(quant: Quant) -> str:
    return _set_stem(PurePosixPath(quant.first).name)


def _quant(parts: Sequence[RepoFile]) -> Quant:
    """One split set (or single file) as a quant; parts sorted by number, missing ones noted."""
    match = SPLIT_NAME.match(PurePosixPath(parts[0].path).name)
    expected = int(match["count"]) if match else 1
    numbered = sorted(parts, key=lambda f: f.path)
    numbers = {int(m["no"]) for f in parts if (m := SPLIT_NAME.match(PurePosixPath(f.path).name))}
    complete = len(parts) == 1 if match is None else numbers == set(range(1, expected + 1))
    return Quant(
        name=quant_label(parts[0].path), files=tuple(numbered), complete=complete,
        expected_parts=expected,
    )  # fmt: skip


# --- the Hub ---------------------------------------------------------------------------------


@contextmanager
def hub_errors(repo_id: str, revision: str | None, what: str) -> Iterator[None]:
    """Every failure below as one ``FitError`` line naming the repository."""
    from huggingface_hub.utils import build_hf_headers

    try:
        yield
    except FitError:
        raise
    except Exception as error:
        has_token = "authorization" in {key.lower() for key in build_hf_headers()}
        raise explain(
            error, HubFile(repo_id, "", revision), hub_endpoint(), has_token, what
        ) from None


def list_files(repo_id: str, revision: str | None = None) -> list[RepoFile]:
    """Every file of the repository at ``revision`` (None: the default branch)."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile as HubRepoFile

    with hub_errors(repo_id, revision, "listing the repository"):
        api = HfApi(endpoint=hub_endpoint())
        tree = api.list_repo_tree(repo_id, recursive=True, revision=revision)
        return [
            RepoFile(
                path=entry.path, size=entry.size, sha256=entry.lfs.sha256 if entry.lfs else None
            )
            for entry in tree
            if isinstance(entry, HubRepoFile)
        ]


def list_quants(repo_id: str, revision: str | None = None) -> QuantListing:
    """The repository's quants; ``BadInput`` when it holds no GGUF model file."""
    files = list_files(repo_id, revision)
    listing = group_quants(repo_id, files, revision)
    if not listing.quants:
        what = f"{len(files)} files, none of them a GGUF model" if files else "no files"
        raise BadInput(
            f"{repo_id}: no GGUF quants in this repository ({what}); GGUF conversions usually "
            "live in a separate repository, often named <model>-GGUF"
        )
    for quant in listing.quants:
        for file in quant.files:  # a hostile listing cannot name files outside the repo
            check_inside_repo(f"{HF_SCHEME}{repo_id}/{file.path}", *repo_id.split("/"), file.path)
    return listing


def read_card(repo_id: str, revision: str | None = None) -> str | None:
    """The repository's README.md (its model card) as text, or None when it has none."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    with hub_errors(repo_id, revision, "reading the model card"):
        try:
            path = hf_hub_download(repo_id, CARD_FILE, revision=revision, endpoint=hub_endpoint())
        except EntryNotFoundError:
            return None
    with open(path, "rb") as handle:
        data = handle.read(MAX_CARD_BYTES + 1)
    if len(data) > MAX_CARD_BYTES:
        raise OperationFailed(
            f"{HF_SCHEME}{repo_id}/{CARD_FILE}: larger than {MAX_CARD_BYTES} bytes; not a card"
        )
    return data.decode("utf-8", errors="replace")
