"""The benchmark's data files in a workspace, as ``fit bench-profile`` and ``fit report`` use
them (paths in ``profiles.workspace``):

- ``bench-client.conf`` (models.conf format): ``[bench-<id>]`` with ``SYSTEM_PROMPT=`` for a
  model that needs one (fit's table: ``data/bench_client.json``, by architecture);
- ``display-names.json``: ``{"bench-<id>": "name the report shows"}``;
- ``reference-scores.json``: ``{"bench-<id>": {"humaneval": {"base": 92.1, "plus": 87.2,
  "source": "URL"}}}``, published pass@1 in percent; an empty object until the user (or
  a later fit) fills it in, and the report then shows ``-``.

Entries the user wrote are never replaced: fit only adds what is missing. The JSON files are
written sorted with two-space indents (same input, same bytes) and atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from profiles.models_conf import ModelsConf, edit_conf, write_atomic
from profiles.workspace import Workspace
from solver.datafiles import read_data_text
from solver.errors import BadInput


class Score(BaseModel):
    """A published pass@1 (percent) on one dataset, with where it was published."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: float | None = Field(default=None, ge=0, le=100)
    plus: float | None = Field(default=None, ge=0, le=100)
    source: str | None = None


class BenchEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    bench_profile: str
    display_name: str
    architecture: str


def system_prompt_for(architecture: str) -> str | None:
    table = json.loads(read_data_text("bench_client.json"))["system_prompts"]
    return table.get(architecture)


def read_json_map(path: Path) -> dict[str, Any]:
    """A JSON object file; missing is empty; anything else is ``BadInput`` naming it."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadInput(f"{path}: not a readable JSON file: {error}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: must hold one JSON object")
    return data


def write_json_map(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def display_names(workspace: Workspace) -> dict[str, str]:
    names = read_json_map(workspace.display_names)
    return {str(key): str(value) for key, value in names.items()}


def reference_scores(workspace: Workspace) -> dict[str, dict[str, Score]]:
    """Bench profile -> dataset -> published score; a malformed entry is ``BadInput``."""
    path = workspace.reference_scores
    scores: dict[str, dict[str, Score]] = {}
    for profile, datasets in read_json_map(path).items():
        if not isinstance(datasets, dict):
            raise BadInput(f"{path}: [{profile}] must map datasets to scores")
        scores[profile] = {}
        for dataset, score in datasets.items():
            try:
                scores[profile][dataset] = Score.model_validate(score)
            except ValidationError as error:
                problem = error.errors()[0]
                where = ".".join(str(part) for part in (dataset, *problem["loc"]))
                raise BadInput(f"{path}: [{profile}] {where}: {problem['msg']}") from None
    return scores


def system_prompts(workspace: Workspace) -> dict[str, str]:
    """Bench profile -> SYSTEM_PROMPT from bench-client.conf."""
    if not workspace.bench_client.exists():
        return {}
    conf = ModelsConf.read(workspace.bench_client)
    return {p.id: p.get("SYSTEM_PROMPT") or "" for p in conf.profiles if p.get("SYSTEM_PROMPT")}


def record_bench_entry(workspace: Workspace, entry: BenchEntry) -> None:
    """Add what is missing for a new bench profile: its display name, its (empty) reference
    scores, and its system prompt where its architecture needs one."""
    names = read_json_map(workspace.display_names)
    if entry.bench_profile not in names:
        write_json_map(workspace.display_names, {**names, entry.bench_profile: entry.display_name})
    scores = read_json_map(workspace.reference_scores)
    if entry.bench_profile not in scores:
        write_json_map(workspace.reference_scores, {**scores, entry.bench_profile: {}})
    prompt = system_prompt_for(entry.architecture)
    if prompt is None:
        return
    workspace.bench_dir.mkdir(parents=True, exist_ok=True)

    def add(conf: ModelsConf) -> None:
        if entry.bench_profile not in conf:
            conf.add_profile(entry.bench_profile, {"SYSTEM_PROMPT": prompt})

    edit_conf(workspace.bench_client, add, create=True)
