"""Bundled data: GPU spec table, hardware scenarios, model catalogue, sampler defaults."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent


def data_path(*parts: str) -> Path:
    """Path of a bundled data file, e.g. ``data_path("gpus.csv")``."""
    return DATA_DIR.joinpath(*parts)
