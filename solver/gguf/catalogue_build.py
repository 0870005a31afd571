"""Writing the model catalogue: the record of one model's sources and the JSON file built
from it (``data/models/<name>.json``), atomically; ``solver.gguf.catalogue`` reads them back."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from solver.errors import BadInput
from solver.gguf.blueprint import Blueprint, TensorSpec, gguf_metadata, tensor_specs
from solver.gguf.catalogue import CATALOGUE_DIR, FORMAT_VERSION, LLAMA_CPP_VERSION
from solver.gguf.quant_mix import (
    NamedMix,
    parse_file_type,
    standard_mix,
    tensor_nbytes,
    tensor_types,
)


class PublishedSize(BaseModel):
    """A file size a publisher lists for this model and quant."""

    model_config = ConfigDict(frozen=True)

    bytes: int = Field(description="as listed; GB in listings are 10^9 bytes")
    source: str = Field(description="who published it and where the number was read")
    header_bytes: int = Field(
        default=0,
        description="the file's GGUF header where another published file with the same "
        "tokenizer measures it (0: unknown, left in the comparison)",
    )


class CatalogueSource(BaseModel):
    """What the generator needs to build one catalogue file."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="catalogue name, lower case, e.g. qwen3-30b-a3b")
    blueprint: Blueprint
    hyperparameters_source: str
    quants: tuple[str, ...]
    mixes: tuple[NamedMix, ...] = Field(default=(), description="published recipes, by label")
    default_quant: str
    published: dict[str, PublishedSize] = {}
    notes: tuple[str, ...] = ()


# --- writing ----------------------------------------------------------------------------------


def build_entry(source: CatalogueSource, generated: str) -> dict[str, Any]:
    """The JSON document of one catalogue file."""
    bp = source.blueprint
    mixes = [*map(_standard_mix, source.quants), *source.mixes]
    by_label = {mix.label: mix for mix in mixes}
    if len(by_label) != len(mixes):
        raise BadInput(f"{source.name}: two quants share a label")
    if source.default_quant not in by_label:
        raise BadInput(f"{source.name}: default quant {source.default_quant} not in its quants")
    specs = tensor_specs(bp)
    metadata = gguf_metadata(bp, parse_file_type(by_label[source.default_quant].file_type))
    metadata.pop("general.file_type")
    quants = {mix.label: _quant_entry(source, bp, specs, mix) for mix in mixes}
    return {
        "format": FORMAT_VERSION,
        "name": source.name,
        "default_quant": source.default_quant,
        "provenance": {
            "hyperparameters": source.hyperparameters_source,
            "tensor_layout": (
                f"llama.cpp src/models/*.cpp load_arch_tensors, {LLAMA_CPP_VERSION}; "
                "proven by tiny synthetic models of the same blueprint loading in llama-server "
                "(tests/test_synthetic_llama.py)"
            ),
            "quant_mix": (
                f"llama.cpp src/llama-quant.cpp llama_tensor_get_type, {LLAMA_CPP_VERSION}; "
                "no --pure, no type overrides; IQ quants with an importance matrix (as published "
                "IQ quants are made), the others without (solver/gguf/quant_mix.py)"
            ),
            "generated": generated,
            "generator": "solver/gguf/catalogue_sources.py",
            "notes": list(source.notes),
        },
        "blueprint": bp.model_dump(mode="json", exclude_defaults=True),
        "metadata": metadata,
        "tensors": [[s.name, list(s.shape)] for s in specs],
        "quants": quants,
    }


def _standard_mix(quant: str) -> NamedMix:
    """Published IQ quants are made with an importance matrix (it changes a few choices)."""
    return standard_mix(quant, imatrix=quant.startswith("IQ"))


def _quant_entry(
    source: CatalogueSource, bp: Blueprint, specs: list[TensorSpec], mix: NamedMix
) -> dict[str, Any]:
    types = tensor_types(bp, specs, mix)
    sizes = [tensor_nbytes(t, s.shape) for t, s in zip(types, specs, strict=True)]
    total = sum(sizes)
    by_type: Counter[str] = Counter()
    for type_name, size in zip(types, sizes, strict=True):
        by_type[type_name] += size
    published = source.published.get(mix.label)
    entry: dict[str, Any] = {
        "file_type": int(parse_file_type(mix.file_type)),
        "imatrix": mix.imatrix,
        "n_tensors": len(specs),
        "total_bytes": total,
        "bytes_by_type": dict(by_type.most_common()),
        "published": None if published is None else _published_entry(published, total),
    }
    if mix.source:  # a named recipe says where it was published and what it sets
        entry["recipe"] = mix.model_dump(mode="json", exclude={"label"}, exclude_defaults=True)
    return entry | {"types": types}


def _published_entry(published: PublishedSize, total: int) -> dict[str, Any]:
    """The published size and fit's difference from its tensor data (the file less its
    header where the header is known)."""
    data = published.bytes - published.header_bytes
    entry: dict[str, Any] = {"bytes": published.bytes, "source": published.source}
    if published.header_bytes:
        entry["header_bytes"] = published.header_bytes
    return entry | {"difference_pct": round(100.0 * (total - data) / data, 2)}


def write_catalogue(
    sources: list[CatalogueSource], directory: Path = CATALOGUE_DIR, generated: str | None = None
) -> list[Path]:
    """Write one JSON file per source (atomically) and return the paths."""
    generated = generated or dt.date.today().isoformat()
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for source in sources:
        entry = build_entry(source, generated)
        path = directory / f"{source.name}.json"
        _write_json_atomically(path, entry)
        paths.append(path)
    return paths


def _write_json_atomically(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    text = _compact_json(document)
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _compact_json(document: dict[str, Any]) -> str:
    """Indented JSON where short lists (a tensor, a type list) stay on one line."""
    lines = ["{"]
    items = list(document.items())
    for index, (key, value) in enumerate(items):
        comma = "," if index < len(items) - 1 else ""
        if key == "tensors":
            rows = ",\n    ".join(json.dumps(row) for row in value)
            lines.append(f'  "tensors": [\n    {rows}\n  ]{comma}')
        elif key == "quants":
            body = ",\n".join(
                f"    {json.dumps(quant)}: {json.dumps(entry)}" for quant, entry in value.items()
            )
            lines.append(f'  "quants": {{\n{body}\n  }}{comma}')
        else:
            rendered = json.dumps(value, indent=2).replace("\n", "\n  ")
            lines.append(f"  {json.dumps(key)}: {rendered}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"
