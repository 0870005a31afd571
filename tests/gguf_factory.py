"""Pytest fixtures that make synthetic GGUF files of any described architecture.

The fixture is registered for every test by conftest.py (``pytest_plugins``); tests
ask for files by architecture: ``synthetic_gguf("deepseek2", quant="Q4_K_M", n_parts=3)``
returns the paths of a tiny 2-layer model (``solver.gguf.synthetic.tiny_blueprint``) that the real
llama-server loads. Files are written once per session and shared by every test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from solver.gguf.blueprint import Blueprint
from solver.gguf.synthetic import tiny_blueprint, write_synthetic_gguf

SyntheticFactory = Callable[..., list[Path]]


@pytest.fixture(scope="session")
def synthetic_gguf(tmp_path_factory: pytest.TempPathFactory) -> SyntheticFactory:
    """``factory(arch_or_blueprint, quant="Q4_K_M", n_parts=1, sparse=False) -> [paths]``."""
    root = tmp_path_factory.mktemp("synthetic-gguf")
    made: dict[tuple, list[Path]] = {}

    def factory(
        model: str | Blueprint,
        quant: str = "Q4_K_M",
        n_parts: int = 1,
        *,
        sparse: bool = False,
    ) -> list[Path]:
        blueprint = model if isinstance(model, Blueprint) else tiny_blueprint(model)
        key = (blueprint.model_dump_json(), quant, n_parts, sparse)
        if key not in made:
            stem = f"{blueprint.name}-{quant}" + ("-sparse" if sparse else "")
            folder = root / f"{len(made):03d}"
            made[key] = write_synthetic_gguf(
                blueprint, quant, folder / f"{stem}.gguf", n_parts=n_parts, sparse=sparse
            )
        return made[key]

    return factory
