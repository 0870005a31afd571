"""The Python environment EvalPlus runs in, separate from fit's own.

EvalPlus 0.3.1 declares google-generativeai, whose protobuf<6 cannot be installed beside
ortools' protobuf>=6.33 (pip: ResolutionImpossible), so it cannot be one of fit's
dependencies. fit runs it as the separate program it is, from its own virtual environment
under ``~/.cache/fit/evalplus/`` (``$FIT_CACHE_DIR`` moves it): EvalPlus without its
dependencies, plus the pinned packages its OpenAI-compatible code generation and its
evaluation import (``data/evalplus_requirements.txt``). ``$FIT_EVALPLUS_PYTHON`` names a
Python that already has EvalPlus instead. Made once (a few minutes of downloads), then
reused; a half-made environment is never used (it is built beside and renamed).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from profiles.llama_build import fit_cache_dir
from solver.datafiles import data_path
from solver.errors import OperationFailed

EVALPLUS_VERSION = "0.3.1"
REQUIREMENTS = "evalplus_requirements.txt"
PYTHON_VARIABLE = "FIT_EVALPLUS_PYTHON"


def environment_dir() -> Path:
    """Keyed by EvalPlus's version, the requirements and this Python's version."""
    digest = hashlib.sha256(data_path(REQUIREMENTS).read_bytes()).hexdigest()[:10]
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    return fit_cache_dir() / "evalplus" / f"{EVALPLUS_VERSION}-{python}-{digest}"


def evalplus_python(progress: Callable[[str], None] | None = None) -> Path:
    """A Python that runs EvalPlus: ``$FIT_EVALPLUS_PYTHON``, or fit's environment, made
    now when it is not there yet."""
    named = os.environ.get(PYTHON_VARIABLE)
    if named:
        return Path(named)
    folder = environment_dir()
    python = folder / "bin" / "python"
    if python.exists():
        return python
    if progress is not None:
        progress(f"installing EvalPlus {EVALPLUS_VERSION} into {folder} (once)")
    _build(folder)
    return python


def _build(folder: Path) -> None:
    partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    pip = [str(partial / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    steps = [
        [sys.executable, "-m", "venv", str(partial)],
        [*pip, "--no-deps", f"evalplus=={EVALPLUS_VERSION}"],
        [*pip, "-r", str(data_path(REQUIREMENTS))],
    ]
    try:
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                raise OperationFailed(
                    f"could not install EvalPlus ({' '.join(step[:4])}...): {last[0]}"
                )
        try:
            partial.rename(folder)
        except OSError as error:  # another fit made it meanwhile: use theirs
            if not (folder / "bin" / "python").exists():
                raise OperationFailed(
                    f"could not install EvalPlus into {folder}: {error}"
                ) from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
