"""Turn what a user calls a model into an ``Inventory``.

MODEL is, in this order:

1. ``hf://...`` — a GGUF on the Hugging Face Hub, read with range requests
   (``solver.gguf.hub``); a part of a split set brings in all its parts;
2. a local file (any path that exists, or ends in ``.gguf``); a part of a split set
   ``NAME-0000k-of-0000N.gguf`` (llama.cpp's ``llama_split_path``) brings in all N parts;
3. a name in fit's catalogue (``solver.gguf.catalogue``, when present).

A split set is merged the way llama.cpp's ``llama_model_loader`` loads one: part k has
``split.no = k - 1`` and every part the same ``split.count``; the first part holds the model
metadata and ``split.tensors.count`` counts the tensors of all parts, each name once.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import Keys

from solver.errors import BadInput
from solver.gguf.hparams import build_inventory
from solver.gguf.hub import HF_SCHEME, HubDeadline, HubRangeSource, parse_hf_url
from solver.gguf.inventory import Inventory, make_tensor
from solver.gguf.loadable import check_loadable
from solver.gguf.reader import ByteSource, GGUFHeader, LocalFileSource, read_header

# llama.cpp src/llama.cpp llama_split_path: "%s-%05d-of-%05d.gguf", parts numbered from 1.
SPLIT_NAME = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
SPLIT_FORMAT = "{prefix}-{no:05d}-of-{count:05d}.gguf"


def load_inventory(model: str) -> Inventory:
    """The inventory of MODEL: a local GGUF, an ``hf://`` URL or a catalogue name."""
    if model.startswith(HF_SCHEME):
        return load_hub_inventory(model)
    path = Path(model).expanduser()
    if path.exists() or model.endswith(".gguf"):
        return load_local_inventory(path)
    return _load_catalogue_entry(model)


def split_part_names(filename: str) -> list[str] | None:
    """All part names of the split set ``filename`` belongs to, or None if it is no part."""
    match = SPLIT_NAME.match(filename)
    if match is None:
        return None
    count = int(match["count"])
    if count == 0 or not 1 <= int(match["no"]) <= count:
        return None
    return [
        SPLIT_FORMAT.format(prefix=match["prefix"], no=no, count=count)
        for no in range(1, count + 1)
    ]


@dataclass(frozen=True)
class _Part:
    """One GGUF file of a model, read."""

    label: str
    header: GGUFHeader
    bytes_read: int


def load_local_inventory(path: str | Path) -> Inventory:
    """Inventory of a local GGUF file or of the whole split set it is part of."""
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"{path}: is a directory, not a GGUF file")
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    names = split_part_names(path.name) or [path.name]
    paths = [path.with_name(name) for name in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise BadInput(
            f"{path}: split set of {len(paths)} parts is missing {len(missing)}: {missing[0]}"
        )

    def read(part_path: Path) -> _Part:
        with LocalFileSource(part_path) as source:
            return _read_part(str(part_path), source)

    return _merge_parts(str(path), [read(p) for p in paths], named_as_split=len(names) > 1)


def load_hub_inventory(url: str) -> Inventory:
    """Inventory of a GGUF (or split set) on the Hub, from its headers alone.

    All parts are read at the commit the first one resolved to, so a push between two
    requests cannot mix revisions, and within one deadline (``HubDeadline``).
    """
    first = parse_hf_url(url)
    directory, _, filename = first.filename.rpartition("/")
    names = split_part_names(filename) or [filename]
    deadline = HubDeadline()
    first_source = HubRangeSource(first, deadline)
    commit = first_source.commit or first.revision
    parts = []
    for name in names:
        full = f"{directory}/{name}" if directory else name
        if full == first.filename:
            source = first_source
        else:
            source = HubRangeSource(first.sibling(full, commit), deadline)
        parts.append(_read_part(source.file.sibling(full, commit).url, source))
    return _merge_parts(url, parts, named_as_split=len(names) > 1)


def _read_part(label: str, source: ByteSource) -> _Part:
    header = read_header(source, label)
    return _Part(label=label, header=header, bytes_read=getattr(source, "bytes_read", 0))


def _merge_parts(label: str, parts: Sequence[_Part], *, named_as_split: bool) -> Inventory:
    """Check the parts form one model (llama_model_loader's rules), build its inventory and
    check that llama.cpp would load it (``check_loadable``)."""
    _check_split_keys(label, parts, named_as_split=named_as_split)
    tensors = []
    seen: dict[str, str] = {}
    for index, part in enumerate(parts):
        for info in part.header.tensors:
            if info.name in seen:
                raise BadInput(f"{part.label}: tensor {info.name!r} is also in {seen[info.name]}")
            seen[info.name] = part.label
            tensors.append(make_tensor(info.name, info.type, info.shape, info.n_bytes, index))
    inventory = build_inventory(
        label,
        parts[0].header.metadata,
        tensors,
        files=[part.label for part in parts],
        header_bytes=sum(part.header.header_size for part in parts),
        bytes_read=sum(part.bytes_read for part in parts),
        file_bytes=sum(part.header.file_size or 0 for part in parts),
    )
    check_loadable(inventory)
    return inventory


def _check_split_keys(label: str, parts: Sequence[_Part], *, named_as_split: bool) -> None:
    n_parts = len(parts)
    for index, part in enumerate(parts):
        metadata = part.header.metadata
        count = _split_int(part, Keys.Split.LLM_KV_SPLIT_COUNT, default=1 if index == 0 else None)
        if not named_as_split and count > 1:
            raise BadInput(
                f"{part.label}: is part of a split set of {count} files, but its name does not "
                "follow NAME-0000k-of-0000N.gguf, so the other parts cannot be found"
            )
        if named_as_split and count != n_parts:
            raise BadInput(
                f"{part.label}: split.count is {count} but the file names say {n_parts} parts"
            )
        if n_parts > 1:
            number = _split_int(part, Keys.Split.LLM_KV_SPLIT_NO, default=None)
            if number != index:
                raise BadInput(
                    f"{part.label}: split.no is {number}, expected {index} for part {index + 1}"
                )
        if index == 0 and Keys.General.ARCHITECTURE not in metadata:
            raise BadInput(f"{part.label}: no {Keys.General.ARCHITECTURE} in the first part")
    if n_parts > 1:
        expected = _split_int(parts[0], Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT, default=None)
        _check_same_model(parts, expected)
        found = sum(len(part.header.tensors) for part in parts)
        if expected != found:
            raise BadInput(
                f"{label}: split.tensors.count says {expected} tensors but the "
                f"{n_parts} parts hold {found}"
            )


def _check_same_model(parts: Sequence[_Part], n_tensors: int) -> None:
    """Every part says it belongs to the same set: gguf-split writes the set's tensor count
    into each part, and a part that carries an architecture must carry the first's. (A part
    of another model with the same layout still differs in its tensors' shapes, which
    ``check_loadable`` compares with the first part's hyperparameters.)"""
    arch = parts[0].header.metadata.get(Keys.General.ARCHITECTURE)
    for part in parts[1:]:
        metadata = part.header.metadata
        count = metadata.get(Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT, n_tensors)
        if count != n_tensors:
            raise BadInput(
                f"{part.label}: split.tensors.count is {count!r:.20} but the first part says "
                f"{n_tensors}: the parts are not of one split set"
            )
        other = metadata.get(Keys.General.ARCHITECTURE, arch)
        if other != arch:
            raise BadInput(
                f"{part.label}: a part of a {other!r:.40} model in a split set of {arch!r}"
            )


def _split_int(part: _Part, key: str, default: int | None) -> int:
    value: Any = part.header.metadata.get(key, default)
    if value is None:
        raise BadInput(f"{part.label}: missing {key} in a split part")
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{part.label}: {key} should be an integer, not {value!r:.40}")
    return value


def _load_catalogue_entry(name: str) -> Inventory:
    """A catalogue model by name; the catalogue module is optional (another part of fit)."""
    catalogue = _optional_module("solver.gguf.catalogue")
    names: list[str] = catalogue.catalogue_names() if catalogue else []
    if name not in names:
        known = f" (catalogue: {', '.join(sorted(names)[:12])})" if names else ""
        raise BadInput(f"{name}: not a file, hf:// URL or catalogue name{known}")
    loader: Callable[[str], Inventory] = catalogue.load_catalogue_entry
    return loader(name)


def _optional_module(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise
        return None
