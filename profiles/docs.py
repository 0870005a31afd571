"""``fit docs check|sync``: the workspace's docs tables against models.conf and the bench data.

Each generated table (``TABLES``) lives in one file under one ``## heading``; its rows come
from the workspace's facts (``DocFacts``), one row per profile in models.conf order. A table
sits between markers, ``<!-- fit:NAME -->`` and ``<!-- /fit:NAME -->``; a table the user
wrote without them (the example workspace's) is the first Markdown table under its heading.

- ``check`` compares each table with what the facts say: a missing row, a row naming no
  profile, and each cell of a column fit owns that differs are one ``Disagreement`` each,
  naming the file, the table and the profile. Columns fit does not own (a model's
  capabilities, which only its card tells) are the user's: never compared, kept on sync. A
  profile without its ``## <id>`` section in docs/client-settings.md is a disagreement too.
- ``sync`` rewrites each table between its markers (adding the markers around a table found
  by its heading), adds a missing heading with its table, a missing section or a missing
  file from its template, and leaves every other line — the prose — byte for byte. Files
  are written atomically with a ``.bak``, only when they change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from profiles.bench_data import display_names, system_prompts
from profiles.client_settings import (
    CAPABILITY_COLUMNS,
    CAPABILITY_HEADING,
    SAMPLER_COLUMNS,
    SAMPLER_HEADING,
    SKELETON,
)
from profiles.models_conf import ModelsConf, Profile, write_atomic
from profiles.profile_writer import arg_groups
from profiles.sampler_settings import COLUMNS, FLAGS
from profiles.workspace import Workspace, is_bench_profile

MISSING = "-"  # a cell fit knows nothing for (profiles.client_settings writes the same)
_SEPARATOR = re.compile(r"^:?-+:?$")


@dataclass(frozen=True)
class DocFacts:
    """What the docs are generated from: the profiles, the bench data."""

    workspace: Workspace
    production: tuple[Profile, ...]
    bench: tuple[Profile, ...]
    names: dict[str, str]
    prompts: dict[str, str]

    @classmethod
    def read(cls, workspace: Workspace) -> DocFacts:
        conf = ModelsConf.read(workspace.conf)
        return cls(
            workspace=workspace,
            production=tuple(p for p in conf.profiles if not is_bench_profile(p.id)),
            bench=tuple(p for p in conf.profiles if is_bench_profile(p.id)),
            names=display_names(workspace),
            prompts=system_prompts(workspace),
        )


Row = dict[str, str]


@dataclass(frozen=True)
class TableSpec:
    """One generated table: where it lives, its columns, which of them fit owns."""

    name: str
    file: str  # a Workspace property
    heading: str
    columns: tuple[str, ...]
    owned: tuple[str, ...]
    rows: Callable[[DocFacts], list[Row]]
    create: bool = True  # sync may make its file; False: only a file the user has

    def path(self, workspace: Workspace) -> Path:
        return getattr(workspace, self.file)


# --- the rows ----------------------------------------------------------------------------

# sampler table column -> the llama-server option whose value it shows
SAMPLER_FLAGS = {column: FLAGS[name] for name, column in COLUMNS.items()}


def option_values(profile: Profile) -> dict[str, str]:
    """EXTRA_ARGS option key -> its value as written (the last occurrence wins, as in
    llama-server)."""
    groups = arg_groups(profile.get("EXTRA_ARGS") or "")
    return {g.key: " ".join(g.args[1:]) for g in groups if g.key is not None}


def capability_rows(facts: DocFacts) -> list[Row]:
    rows = []
    for profile in facts.production:
        values = option_values(profile)
        rows.append(
            {
                "Profile": profile.id, "Thinking": MISSING, "Tool use": MISSING,
                "Vision": "yes" if "--mmproj" in values else MISSING,
                "Max context": profile.get("CTX_SIZE") or MISSING,
            }
        )  # fmt: skip
    return rows


def sampler_rows(facts: DocFacts) -> list[Row]:
    rows = []
    for profile in facts.production:
        values = option_values(profile)
        row = {"Profile": profile.id}
        row.update({name: values.get(flag) or MISSING for name, flag in SAMPLER_FLAGS.items()})
        rows.append(row)
    return rows


def bench_rows(facts: DocFacts) -> list[Row]:
    return [
        {
            "Bench profile": p.id, "Model": facts.names.get(p.id, p.get("NAME") or MISSING),
            "Context": p.get("CTX_SIZE") or MISSING,
            "System prompt": facts.prompts.get(p.id, MISSING),
        }
        for p in facts.bench
    ]  # fmt: skip


def context_text(value: str | None) -> str:
    """CTX_SIZE as the README writes it: 131072 -> 128K."""
    if not value or not value.isdigit():
        return value or MISSING
    tokens = int(value)
    return f"{tokens // 1024}K" if tokens % 1024 == 0 else value


def readme_model_rows(facts: DocFacts) -> list[Row]:
    return [
        {
            "Section ID": f"`{p.id}`", "Model": p.get("NAME") or MISSING, "Type": MISSING,
            "Speed": p.get("SPEED") or MISSING, "Context": context_text(p.get("CTX_SIZE")),
            "Best for": p.get("DESCRIPTION") or MISSING,
        }
        for p in facts.production
    ]  # fmt: skip


TABLES = (
    TableSpec(
        name="capabilities", file="client_settings", heading=CAPABILITY_HEADING,
        columns=CAPABILITY_COLUMNS, owned=("Max context",), rows=capability_rows,
    ),
    TableSpec(
        name="samplers", file="client_settings", heading=SAMPLER_HEADING,
        columns=SAMPLER_COLUMNS, owned=SAMPLER_COLUMNS[1:], rows=sampler_rows,
    ),
    TableSpec(
        name="bench-profiles", file="bench_readme", heading="## Profiles",
        columns=("Bench profile", "Model", "Context", "System prompt"),
        owned=("Model", "Context", "System prompt"), rows=bench_rows,
    ),
    TableSpec(
        name="models", file="readme", heading="## Models",
        columns=("Section ID", "Model", "Type", "Speed", "Context", "Best for"),
        owned=("Model", "Speed", "Context"), rows=readme_model_rows, create=False,
    ),
)  # fmt: skip

TEMPLATES = {
    "client_settings": SKELETON,
    "bench_readme": "# EvalPlus benchmark\n\n`fit bench PROFILE` runs EvalPlus (HumanEval+ or "
    "MBPP+) against a bench profile's llama-server; `fit report` writes results/REPORT.md.\n"
    "Bench profiles are the `bench-*` sections of models.conf (`fit bench-profile PROFILE`).\n",
}


def section_template(profile: Profile) -> str:
    """A new per-profile section of docs/client-settings.md; the user's from then on."""
    name = profile.get("NAME") or profile.id
    description = profile.get("DESCRIPTION")
    about = f"{name}: {description}." if description else f"{name}."
    return (
        f"## {profile.id}\n\n{about} Use the settings of its rows in the tables above "
        "(fit docs sync keeps them equal to models.conf).\n"
    )


# --- reading and writing tables -----------------------------------------------------------


class Disagreement(BaseModel):
    model_config = ConfigDict(frozen=True)

    file: str
    table: str
    profile: str
    message: str

    def line(self) -> str:
        return f"{self.file}: {self.table}: [{self.profile}] {self.message}"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- fit:{name} -->", f"<!-- /fit:{name} -->"


def find_table(lines: Sequence[str], spec: TableSpec) -> tuple[int, int] | None:
    """[start, end) of the table's lines, markers included when it has them."""
    begin, end = markers(spec.name)
    stripped = [line.strip() for line in lines]
    if begin in stripped and end in stripped[stripped.index(begin) :]:
        start = stripped.index(begin)
        return start, stripped.index(end, start) + 1
    if spec.heading not in stripped:
        return None
    at = stripped.index(spec.heading) + 1
    while at < len(lines) and not stripped[at]:
        at += 1
    if at < len(lines) and stripped[at].startswith("|"):
        stop = at
        while stop < len(lines) and stripped[stop].startswith("|"):
            stop += 1
        return at, stop
    return at, at  # the heading without a table: the table goes right under it


def parse_rows(lines: Sequence[str], columns: Sequence[str]) -> list[Row]:
    rows = []
    table = [line.strip() for line in lines if line.strip().startswith("|")]
    if not table:
        return rows
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    for line in table[1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if all(_SEPARATOR.match(cell) for cell in cells):
            continue
        rows.append(dict(zip(header, cells, strict=False)))
    return rows


def render_table(spec: TableSpec, rows: Sequence[Row]) -> list[str]:
    begin, end = markers(spec.name)
    lines = [begin, "| " + " | ".join(spec.columns) + " |", "|" + "---|" * len(spec.columns)]
    lines += ["| " + " | ".join(row.get(c, MISSING) for c in spec.columns) + " |" for row in rows]
    return [*lines, end]


def plain(cell: str) -> str:
    """A key cell without its code span: `` `glm-flash-q8` `` is ``glm-flash-q8``."""
    return cell.strip().strip("`")


def _key(spec: TableSpec) -> str:
    return spec.columns[0]


def merged_rows(spec: TableSpec, wanted: Sequence[Row], existing: Sequence[Row]) -> list[Row]:
    """The facts' rows, with the user's cells in the columns fit does not own (and their
    text where it says the same number)."""
    old = {plain(row.get(_key(spec), "")): row for row in existing}
    merged = []
    for row in wanted:
        previous = old.get(plain(row[_key(spec)]), {})
        kept = {
            c: previous[c]
            for c in spec.columns[1:]
            if c in previous and (c not in spec.owned or same_cell(previous[c], row[c]))
        }
        merged.append({**row, **kept})
    return merged


def same_cell(have: str, want: str) -> bool:
    """Equal text, or equal numbers ("0.0" in a table for ``--min-p 0``)."""
    if have == want:
        return True
    try:
        return float(have) == float(want)
    except ValueError:
        return False


def table_disagreements(
    spec: TableSpec, shown: str, wanted: Sequence[Row], existing: Sequence[Row]
) -> list[Disagreement]:
    key = _key(spec)
    found = {plain(row.get(key, "")): row for row in existing}
    table = spec.heading.lstrip("# ")
    out = []
    for row in wanted:
        profile = plain(row[key])
        if profile not in found:
            out.append(Disagreement(file=shown, table=table, profile=profile, message="no row"))
            continue
        for column in spec.owned:
            have, want = found[profile].get(column, MISSING), row[column]
            if not same_cell(have, want):
                message = f"{column} is {have!r}, models.conf says {want!r}"
                out.append(Disagreement(file=shown, table=table, profile=profile, message=message))
    for profile in found.keys() - {plain(row[key]) for row in wanted}:
        message = "row names no profile in models.conf"
        out.append(Disagreement(file=shown, table=table, profile=profile, message=message))
    return out


# --- check and sync ----------------------------------------------------------------------------


class DocsOutcome(BaseModel):
    """``check``: what disagrees; ``sync``: the files it rewrote."""

    model_config = ConfigDict(frozen=True)

    disagreements: tuple[Disagreement, ...] = ()
    written: tuple[Path, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "disagreements": [d.model_dump() for d in self.disagreements],
            "written": [str(path) for path in self.written],
        }


def _applies(spec: TableSpec, facts: DocFacts, *, create: bool = False) -> bool:
    """A table is due when its file exists, or it would have rows (or ``create``) and fit
    may make its file."""
    if spec.path(facts.workspace).exists():
        return True
    return spec.create and (create or bool(spec.rows(facts)))


def _shown(path: Path, workspace: Workspace) -> str:
    return str(path.relative_to(workspace.root))


def check_docs(conf_path: Path) -> DocsOutcome:
    workspace = Workspace.of(conf_path)
    facts = DocFacts.read(workspace)
    found: list[Disagreement] = []
    for spec in TABLES:
        if not _applies(spec, facts):
            continue
        path = spec.path(workspace)
        shown = _shown(path, workspace)
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        span = find_table(lines, spec)
        existing = parse_rows(lines[span[0] : span[1]], spec.columns) if span else []
        found += table_disagreements(spec, shown, spec.rows(facts), existing)
    found += _missing_sections(facts)
    return DocsOutcome(disagreements=tuple(found))


def _section_ids(text: str) -> set[str]:
    return {line[3:].strip() for line in text.splitlines() if line.startswith("## ")}


def _missing_sections(facts: DocFacts) -> list[Disagreement]:
    path = facts.workspace.client_settings
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    have = _section_ids(text)
    shown = _shown(path, facts.workspace)
    return [
        Disagreement(file=shown, table="sections", profile=p.id, message=f"no '## {p.id}' section")
        for p in facts.production
        if p.id not in have
    ]


def synced_text(text: str, specs: Sequence[TableSpec], facts: DocFacts) -> str:
    """``text`` with each table regenerated (or added under a new heading at the end)."""
    lines = text.splitlines()
    for spec in specs:
        span = find_table(lines, spec)
        if span is None:
            lines += ["", spec.heading, ""] if lines and lines[-1].strip() else [spec.heading, ""]
            span = (len(lines), len(lines))
        existing = parse_rows(lines[span[0] : span[1]], spec.columns)
        rows = merged_rows(spec, spec.rows(facts), existing)
        lines[span[0] : span[1]] = render_table(spec, rows)
    return "\n".join(lines) + "\n"


def sync_docs(
    conf_path: Path, *, only: Sequence[str] | None = None, create: bool = False
) -> DocsOutcome:
    """Regenerate every due table (or those of the files named in ``only``: Workspace
    property names) and add the missing per-profile sections; ``create`` makes a file
    from its template even when its tables have no rows yet (``fit init``)."""
    workspace = Workspace.of(conf_path)
    facts = DocFacts.read(workspace)
    written = []
    for file in dict.fromkeys(spec.file for spec in TABLES):
        if only is not None and file not in only:
            continue
        specs = [s for s in TABLES if s.file == file and _applies(s, facts, create=create)]
        if not specs:
            continue
        path = specs[0].path(workspace)
        before = path.read_text(encoding="utf-8") if path.exists() else TEMPLATES[file]
        after = synced_text(before, specs, facts)
        if file == "client_settings":
            after = _with_sections(after, facts)
        if not path.exists() or after != path.read_text(encoding="utf-8"):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, after)
            written.append(path)
    return DocsOutcome(written=tuple(written))


def _with_sections(text: str, facts: DocFacts) -> str:
    have = _section_ids(text)
    missing = [section_template(p) for p in facts.production if p.id not in have]
    if not missing:
        return text
    return text.rstrip("\n") + "\n\n" + "\n".join(missing)


def docs_text(outcome: DocsOutcome, *, checked: bool) -> str:
    if checked:
        if not outcome.disagreements:
            return "docs agree with models.conf and the bench data"
        return "\n".join(d.line() for d in outcome.disagreements)
    if not outcome.written:
        return "docs already in sync"
    return "\n".join(f"wrote {path}" for path in outcome.written)
