"""``docs/client-settings.md``: what a chat client should use for each profile.

The format is the example workspace's (``../shared/examples/workspace/docs/client-settings.md``):
a title and a line of text, a ``## Capability table`` (Profile, Thinking, Tool use, Vision,
Max context), a ``## Sampler table`` (Profile, temp, top_p, top_k, min_p, repeat_penalty) and
one ``## <profile>`` section per profile with what the tables cannot say.

``update_client_settings(path, entry)`` adds or updates one profile: its row in each table
(cells fit knows replace the old ones; the others, such as Tool use, keep what was written;
a new row goes in profile order and gets ``-`` where fit knows nothing), and its section
(replaced from its heading to the next ``## `` heading). Every other byte of the file stays
as it was; a missing file starts from the example's skeleton; a missing table is added
before the first profile section. The write is atomic and keeps a ``.bak``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from profiles.models_conf import write_atomic
from solver.errors import BadInput

CAPABILITY_HEADING = "## Capability table"
SAMPLER_HEADING = "## Sampler table"
CAPABILITY_COLUMNS = ("Profile", "Thinking", "Tool use", "Vision", "Max context")
SAMPLER_COLUMNS = ("Profile", "temp", "top_p", "top_k", "min_p", "repeat_penalty")
SKELETON = f"""# Client settings

Settings to use in the chat client for each profile in models.conf.

{CAPABILITY_HEADING}

| {" | ".join(CAPABILITY_COLUMNS)} |
|{"---|" * len(CAPABILITY_COLUMNS)}

{SAMPLER_HEADING}

| {" | ".join(SAMPLER_COLUMNS)} |
|{"---|" * len(SAMPLER_COLUMNS)}
"""
_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")


class ClientSettingsEntry(BaseModel):
    """One profile's cells and section; a cell fit does not know is left out."""

    model_config = ConfigDict(frozen=True)

    profile_id: str
    capability: dict[str, str] = Field(default={}, description="column -> cell")
    samplers: dict[str, str] = Field(default={}, description="column -> cell")
    section: tuple[str, ...] = Field(description="the section's lines after its heading")


def update_client_settings(path: Path, entry: ClientSettingsEntry) -> None:
    """Add or update ``entry`` in the file at ``path`` (see the module docstring)."""
    if path.is_dir():
        raise BadInput(f"{path}: is a directory, not the client settings file")
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else SKELETON
    except UnicodeDecodeError as error:
        raise BadInput(f"{path}: not UTF-8 text (byte {error.start})") from None
    lines = text.split("\n")
    lines = _with_row(lines, CAPABILITY_HEADING, CAPABILITY_COLUMNS, entry.profile_id,
                      entry.capability)  # fmt: skip
    lines = _with_row(lines, SAMPLER_HEADING, SAMPLER_COLUMNS, entry.profile_id, entry.samplers)
    lines = _with_section(lines, entry.profile_id, entry.section)
    new = "\n".join(lines)
    if new != text or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, new)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _heading_index(lines: Sequence[str], heading: str) -> int | None:
    return next((i for i, line in enumerate(lines) if line.strip() == heading), None)


def _with_row(
    lines: list[str],
    heading: str,
    columns: Sequence[str],
    profile_id: str,
    known: Mapping[str, str],
) -> list[str]:
    start = _heading_index(lines, heading)
    if start is None:
        lines = _add_table(lines, heading, columns)
        start = _heading_index(lines, heading)
        assert start is not None
    header = next(i for i in range(start + 1, len(lines)) if lines[i].strip().startswith("|"))
    names = [name.lower() for name in _cells(lines[header])]
    rows_start = (
        header + 2 if header + 1 < len(lines) and _RULE.match(lines[header + 1]) else header + 1
    )
    end = rows_start
    while end < len(lines) and lines[end].strip().startswith("|"):
        end += 1
    for index in range(rows_start, end):
        cells = _cells(lines[index])
        if cells and cells[0] == profile_id:
            lines[index] = _row(_filled(cells, names, known))
            return lines
    new = _row(_filled([profile_id] + ["-"] * (len(names) - 1), names, known))
    ids = [_cells(lines[i])[0] for i in range(rows_start, end)]
    position = end if ids != sorted(ids) else rows_start + sum(i < profile_id for i in ids)
    return [*lines[:position], new, *lines[position:]]


def _filled(cells: list[str], names: Sequence[str], known: Mapping[str, str]) -> list[str]:
    cells = cells + ["-"] * (len(names) - len(cells))
    for column, value in known.items():
        if column.lower() in names:
            index = names.index(column.lower())
            if not _same_number(cells[index], value):  # "0.0" stays for 0
                cells[index] = value
    return cells


def _same_number(old: str, new: str) -> bool:
    try:
        return float(old) == float(new)
    except ValueError:
        return False


def _add_table(lines: list[str], heading: str, columns: Sequence[str]) -> list[str]:
    """The table, empty, before the first profile section (after the tables), else at the end."""
    block = [heading, "", _row(columns), "|" + "---|" * len(columns), ""]
    table_headings = {CAPABILITY_HEADING, SAMPLER_HEADING}
    first_section = next(
        (i for i, line in enumerate(lines)
         if line.startswith("## ") and line.strip() not in table_headings),
        None,
    )  # fmt: skip
    if first_section is None:
        tail = lines[:-1] if lines and lines[-1] == "" else lines
        return [*tail, "", *block]
    return [*lines[:first_section], *block, *lines[first_section:]]


def _with_section(lines: list[str], profile_id: str, body: Sequence[str]) -> list[str]:
    heading = f"## {profile_id}"
    start = _heading_index(lines, heading)
    block = [heading, "", *body]
    if start is None:
        tail = lines[:-1] if lines and lines[-1] == "" else lines
        return [*tail, "", *block, ""]
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), None)
    if end is None:
        return [*lines[:start], *block, ""]
    return [*lines[:start], *block, "", *lines[end:]]
