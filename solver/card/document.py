"""A model card split into what the other modules read: front matter, tables, sentences.

The front matter is the YAML between a first line ``---`` and the next ``---`` (the Hub's
card metadata). The body's markdown tables become ``Table`` (header and rows of cell text,
markdown emphasis removed); its prose becomes ``Sentence`` records: each bullet item, and each
sentence of a paragraph, with the heading it sits under and the lead-in line ("For thinking
mode:") it follows. Lines inside fenced code blocks are ``code`` sentences, one per line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from solver.errors import BadInput

MAX_CARD_BYTES = 4 * 1024 * 1024  # the largest real cards are a few hundred KB
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z*`_\"(])")
_MARKUP = re.compile(r"\*\*|__|`|<br\s*/?>|\[(?=[^\]]*\]\()|\]\([^)]*\)")


class Table(BaseModel):
    model_config = ConfigDict(frozen=True)

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    heading: str = ""


class Sentence(BaseModel):
    """One sentence (or bullet, or code line) with where it stands."""

    model_config = ConfigDict(frozen=True)

    text: str
    kind: Literal["prose", "code"] = "prose"
    heading: str = Field(default="", description="the nearest heading above it")
    lead: str = Field(default="", description="the line ending in ':' it follows, if any")


class CardDocument(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str = Field(description="file path or hf:// repository the card came from")
    front_matter: dict[str, Any] = {}
    body: str = ""

    @property
    def tables(self) -> list[Table]:
        return card_tables(self.body)

    @property
    def sentences(self) -> list[Sentence]:
        return card_sentences(self.body)


def parse_card(text: str, source: str) -> CardDocument:
    """The card's front matter (a mapping, or ``BadInput`` naming the YAML problem) and body."""
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip() != "---":
        return CardDocument(source=source, body=text)
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise BadInput(f"{source}: the front matter opened by '---' on line 1 is never closed")
    try:
        meta = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        raise BadInput(f"{source}: the front matter is not valid YAML{where}") from None
    if not isinstance(meta, dict):
        raise BadInput(f"{source}: the front matter is not a mapping of keys to values")
    return CardDocument(source=source, front_matter=meta, body="\n".join(lines[end + 1 :]))


def read_card_file(path: Path) -> CardDocument:
    """A saved card (e.g. ``models/documentation/CANDIDATES/README_<name>.md``)."""
    if not path.is_file():
        raise BadInput(f"{path}: no such card file")
    data = path.read_bytes()[: MAX_CARD_BYTES + 1]
    if len(data) > MAX_CARD_BYTES:
        raise BadInput(f"{path}: larger than {MAX_CARD_BYTES} bytes; not a model card")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadInput(f"{path}: not UTF-8 text (byte {error.start})") from None
    return parse_card(text, str(path))


def clean(text: str) -> str:
    """Cell or sentence text without markdown emphasis, code ticks and link targets."""
    return " ".join(_MARKUP.sub("", text).split())


def _cells(line: str) -> tuple[str, ...]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") else body
    return tuple(clean(cell) for cell in body.split("|"))


def card_tables(body: str) -> list[Table]:
    """Every markdown table: a row of cells, a rule of dashes, then rows."""
    lines = body.split("\n")
    tables, heading, index = [], "", 0
    while index < len(lines):
        line = lines[index]
        if match := _HEADING.match(line):
            heading = clean(match.group(1))
        next_line = lines[index + 1] if index + 1 < len(lines) else ""
        if "|" in line and _TABLE_RULE.match(next_line):
            header, rows = _cells(line), []
            index += 2
            while index < len(lines) and "|" in lines[index] and lines[index].strip():
                rows.append(_cells(lines[index]))
                index += 1
            tables.append(Table(header=header, rows=tuple(rows), heading=heading))
            continue
        index += 1
    return tables


def card_sentences(body: str) -> list[Sentence]:
    """Prose sentences and bullets (tables left out), and code lines, in card order."""
    found: list[Sentence] = []
    heading, lead, in_code, paragraph = "", "", False, []

    def flush() -> None:
        text = clean(" ".join(paragraph))
        for part in _SENTENCE_END.split(text):
            if part.strip():
                found.append(Sentence(text=part.strip(), heading=heading, lead=lead))
        paragraph.clear()

    for line in body.split("\n"):
        if _FENCE.match(line):
            flush()
            in_code = not in_code
            continue
        if in_code:
            if line.strip():
                found.append(Sentence(text=line.strip(), kind="code", heading=heading, lead=lead))
            continue
        if match := _HEADING.match(line):
            flush()
            heading, lead = clean(match.group(1)), ""
        elif not line.strip() or ("|" in line and line.strip().startswith("|")):
            flush()
        elif _BULLET.match(line):
            flush()
            paragraph.append(_BULLET.sub("", line, count=1))
            flush()
            if line.rstrip().endswith(":"):  # "- Thinking mode:" over nested bullets
                lead = clean(_BULLET.sub("", line, count=1))
        else:
            if not paragraph and not line.rstrip().endswith(":"):
                lead = ""  # a new paragraph of prose ends what a lead-in line introduced
            paragraph.append(line.strip())
            if line.rstrip().endswith(":"):
                flush()
                lead = clean(line)
    flush()
    return found
