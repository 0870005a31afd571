"""Where fit's bundled data lives: the one locator for ``data/`` (GPU table, rigs, catalogue,
llama.cpp's architecture list and option table, the tiny synthetic models' settings).

``data`` is a package with data only; it is found through ``importlib.resources`` so that an
editable checkout and an installed wheel read the same files.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def data_path(*parts: str) -> Path:
    """Path of a bundled data file or folder, e.g. ``data_path("hardware", "reference.toml")``."""
    return Path(str(resources.files("data").joinpath(*parts)))


def read_data_text(*parts: str) -> str:
    """The text of a bundled data file (UTF-8)."""
    return data_path(*parts).read_text(encoding="utf-8")
