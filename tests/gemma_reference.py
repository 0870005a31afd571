"""gguf-py's own reading of the real gemma file, built once per test session (it is slow:
GGUFReader makes an array per vocabulary token) and shared by the modules that compare to it."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from gguf import GGUFReader


@cache
def gguf_py_reader(path: Path) -> GGUFReader:
    return GGUFReader(path)
