"""Sampler advice from a model card: the values its authors recommend, and where they said so.

``extract_samplers(card)`` reads, in card order, tables whose header or first column names
samplers (``| Parameter | Thinking | Non-thinking |``, ``| temp | top_p | ... |``), prose
("We suggest using Temperature=0.7, TopP=0.8, TopK=20", "Set the temperature within the range
of 0.5-0.7 (0.6 is recommended)", "you can adjust the presence_penalty parameter between 0 and
2") and llama.cpp command lines in code blocks (``--temp 0.6 --top-k 20``). Each value is a
``SamplerValue`` with its mode (thinking, non-thinking, or any), the sentence it came from and
its kind; a range without a recommended value keeps its bounds and no value. Prose and tables
come before code lines; the first value for a (mode, sampler) wins and a later different one
is kept as a conflict, so nothing a card says is silently dropped.

The mode of a value is what its sentence says ("For non-thinking mode (enable_thinking=False),
use ..."), else its table column or row, else the lead-in line or heading it stands under.

System prompt requirements become ``PromptNote`` records: GPT-OSS reasoning levels
(``Reasoning: high``), Qwen's ``/think`` and ``/no_think`` switches, "avoid adding a system
prompt", a forced ``<think>`` opening, and "do not use greedy decoding".

``family_defaults(name)``: when a card gives no values, the defaults of the model's family
(``data/sampler_defaults.json``, each family with the source of its values); the advice then
says ``source = "family defaults: ..."``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from solver.card.document import CardDocument, Sentence, Table
from solver.datafiles import read_data_text

Mode = Literal["thinking", "non_thinking", "any"]
SAMPLERS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "presence_penalty")
_NAMES = {
    "temperature": r"temperature|temp",
    "top_p": r"top[\s_-]?p",
    "top_k": r"top[\s_-]?k",
    "min_p": r"min[\s_-]?p",
    "repeat_penalty": r"(?:repeat|repetition)[\s_-]?penalty",
    "presence_penalty": r"presence[\s_-]?penalty",
}
_NAME = re.compile(
    r"(?<![A-Za-z_])(?:--)?(?:"
    + "|".join(f"(?P<{key}>{pattern})" for key, pattern in _NAMES.items())
    + r")(?![A-Za-z])",
    re.IGNORECASE,
)
_NUMBER = r"\d+(?:\.\d+)?"
# What may stand between a sampler's name and its value: "=", ":", "of", "set to", a short
# TeX symbol ("the temperature parameter $T_{model}$ is set to 0.3"), ...
_FILLER = (
    r"(?:(?:of|to|is|at|around|about|be|set|use|value|within|the|range|between|from|a|an|"
    r"parameter|should|must|we|recommend|recommended|suggest)\b|\$[^$]{0,20}\$)"
)
_VALUE = re.compile(
    rf"^[\s=:`*\"']*(?:{_FILLER}[\s=:`*\"']*)*(?P<low>{_NUMBER})"
    rf"(?:\s*(?:-|–|to|and)\s*(?P<high>{_NUMBER}))?",
    re.IGNORECASE,
)
_RECOMMENDED = re.compile(
    rf"(?P<value>{_NUMBER})\s+is\s+recommended|recommended:?\s+(?P<after>{_NUMBER})", re.I
)
_NON_THINKING = re.compile(
    r"non[\s-]?thinking|enable_thinking\s*=\s*false|no[\s_-]?think|without thinking|"
    r"thinking (?:is )?(?:disabled|off)|instruct(?:ion)? mode|non[\s-]?reasoning",
    re.IGNORECASE,
)
_THINKING = re.compile(r"thinking|reasoning mode", re.IGNORECASE)


class SamplerValue(BaseModel):
    """One recommended sampler value, or a range without one (``value`` None)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="one of SAMPLERS")
    value: float | None
    low: float | None = None
    high: float | None = None
    mode: Mode = "any"
    sentence: str = Field(description="the card's sentence, table row or code line")
    kind: Literal["table", "prose", "code", "default"] = "prose"


class PromptNote(BaseModel):
    """A requirement on the system prompt or chat, with the card's sentence."""

    model_config = ConfigDict(frozen=True)

    key: str
    advice: str
    sentence: str


class SamplerAdvice(BaseModel):
    """What a card (or a family's defaults) recommends."""

    model_config = ConfigDict(frozen=True)

    source: str = Field(description="'card' or 'family defaults: <family> (<where from>)'")
    values: tuple[SamplerValue, ...] = ()
    conflicts: tuple[SamplerValue, ...] = Field(
        default=(), description="later values that differ from the one kept"
    )
    notes: tuple[PromptNote, ...] = ()

    @property
    def modes(self) -> tuple[Mode, ...]:
        """The modes the advice distinguishes: ``("thinking", "non_thinking")`` or ``("any",)``."""
        split = {v.mode for v in self.values} - {"any"}
        return ("thinking", "non_thinking") if split else ("any",)

    def settings(self, mode: Mode = "any") -> dict[str, SamplerValue]:
        """Sampler -> value for ``mode``: the mode's own values over those for any mode;
        ranges without a value are left out."""
        chosen: dict[str, SamplerValue] = {}
        for value in self.values:
            if value.value is None or value.mode not in (mode, "any"):
                continue
            if value.name not in chosen or chosen[value.name].mode == "any":
                chosen[value.name] = value
        return {name: chosen[name] for name in SAMPLERS if name in chosen}

    @property
    def has_values(self) -> bool:
        return any(value.value is not None for value in self.values)


def extract_samplers(card: CardDocument) -> SamplerAdvice:
    """The card's own advice (``source="card"``); empty ``values`` when it gives none."""
    found = [v for table in card.tables for v in _table_values(table)]
    sentences = card.sentences
    found += [v for s in sentences if s.kind == "prose" for v in _sentence_values(s)]
    found += [v for s in sentences if s.kind == "code" for v in _sentence_values(s)]
    kept, conflicts = _first_per_mode(found)
    return SamplerAdvice(
        source="card", values=tuple(kept), conflicts=tuple(conflicts),
        notes=tuple(prompt_notes(sentences)),
    )  # fmt: skip


def _first_per_mode(
    values: Iterable[SamplerValue],
) -> tuple[list[SamplerValue], list[SamplerValue]]:
    kept: dict[tuple[str, str], SamplerValue] = {}
    conflicts = []
    for value in values:
        key = (value.mode, value.name)
        first = kept.get(key)
        if first is None or (first.value is None and value.value is not None):
            kept[key] = value
        elif value.value is not None and value.value != first.value:
            conflicts.append(value)
    return list(kept.values()), conflicts


def mode_of(text: str) -> Mode | None:
    """The thinking mode a piece of text is about, if it names exactly one ("Switching
    between thinking and non-thinking mode" names none)."""
    rest = _NON_THINKING.sub(" ", text)
    thinking = _THINKING.search(rest) is not None
    if rest != text:
        return None if thinking else "non_thinking"
    return "thinking" if thinking else None


def _sentence_values(sentence: Sentence) -> list[SamplerValue]:
    text = sentence.text
    if sentence.kind == "code" and not re.search(r"--(?:temp|top-|min-p|repeat|presence)", text):
        return []  # a code line counts only as a command line with sampler flags
    mode = mode_of(text) or mode_of(sentence.lead) or mode_of(sentence.heading) or "any"
    matches = list(_NAME.finditer(text))
    values = []
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        window = text[match.end() : min(end, match.end() + 80)]
        name = next(key for key, hit in match.groupdict().items() if hit)
        value = _value_in(window)
        if value is not None:
            low, high, chosen = value
            values.append(
                SamplerValue(
                    name=name,
                    value=chosen,
                    low=low,
                    high=high,
                    mode=mode,
                    sentence=text,
                    kind="code" if sentence.kind == "code" else "prose",
                )
            )
    return values


def _value_in(window: str) -> tuple[float | None, float | None, float | None] | None:
    """(low, high, value) of the value right after a sampler's name, or None."""
    match = _VALUE.match(window)
    if match is None:
        return None
    low = float(match["low"])
    if match["high"] is None:
        return None, None, low
    high = float(match["high"])
    recommended = _RECOMMENDED.search(window[match.end() :])
    chosen = None
    if recommended:
        chosen = float(recommended["value"] or recommended["after"])
    return low, high, chosen


def _table_values(table: Table) -> list[SamplerValue]:
    names = [_sampler_name(cell) for cell in table.header]
    if sum(name is not None for name in names) >= 2:  # | Mode | temp | top_p | ... |
        return [
            value
            for row in table.rows
            for column, name in enumerate(names)
            if name is not None and column < len(row)
            for value in _cell_value(name, row[column], mode_of(" ".join(row[:1])), row)
        ]
    modes = [mode_of(cell) for cell in table.header]
    found = []
    for row in table.rows:  # | Parameter | Thinking | Non-thinking |
        name = _sampler_name(row[0]) if row else None
        if name is None:
            continue
        for column in range(1, len(row)):
            mode = modes[column] if column < len(modes) else None
            found += _cell_value(name, row[column], mode or mode_of(table.heading), row)
    return found


def _sampler_name(cell: str) -> str | None:
    match = _NAME.fullmatch(cell.strip().strip(":").strip())
    return next((key for key, hit in match.groupdict().items() if hit), None) if match else None


def _cell_value(name: str, cell: str, mode: Mode | None, row: Sequence[str]) -> list[SamplerValue]:
    value = _value_in(cell)
    if value is None:
        return []
    low, high, chosen = value
    return [
        SamplerValue(
            name=name,
            value=chosen,
            low=low,
            high=high,
            mode=mode or "any",
            sentence="| " + " | ".join(row) + " |",
            kind="table",
        )
    ]


# --- system prompt requirements --------------------------------------------------------------

_NOTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "reasoning_levels",
        re.compile(r"reasoning[\s_-]?(?:level|effort)|Reasoning:\s*(?:low|medium|high)", re.I),
        "Set the reasoning level in the system prompt: `Reasoning: low|medium|high`.",
    ),
    (
        "think_switch",
        re.compile(r"/no_think|/think\b"),
        "Add /think or /no_think to a system or user message to switch thinking per turn.",
    ),
    (
        "no_system_prompt",
        re.compile(
            r"(?:avoid|without|do not|don't)\s+(?:adding\s+|using\s+|use\s+)?a\s+system\s+prompt",
            re.I,
        ),
        "Use no system prompt: put every instruction in the user prompt.",
    ),
    (
        "think_prefix",
        re.compile(
            r"(?:start|begin|initiate)\w*\s+(?:its\s+)?(?:response|output)\s+with\s+\"?<think>",
            re.I,
        ),
        "Make the reply start with <think> (the chat template may already do it).",
    ),
    (
        "no_greedy",
        re.compile(r"(?:do not|don't|avoid)\s+(?:use\s+)?greedy decoding", re.I),
        "Do not use greedy decoding (temperature 0): it degrades output and repeats.",
    ),
)


def prompt_notes(sentences: Iterable[Sentence]) -> list[PromptNote]:
    """The first sentence of the card for each requirement, in ``_NOTES`` order."""
    found: dict[str, PromptNote] = {}
    for sentence in sentences:
        for key, pattern, advice in _NOTES:
            if key not in found and pattern.search(sentence.text):
                found[key] = PromptNote(key=key, advice=advice, sentence=sentence.text)
    return [found[key] for key, _, _ in _NOTES if key in found]


# --- family defaults -------------------------------------------------------------------------

DEFAULTS_FILE = "sampler_defaults.json"


class _Family(BaseModel):
    model_config = ConfigDict(frozen=True)

    family: str
    match: tuple[str, ...]
    source: str
    values: dict[str, dict[str, float]] = Field(description="mode -> sampler -> value")
    notes: tuple[str, ...] = Field(default=(), description="keys of _NOTES that apply")


@cache
def _families() -> tuple[_Family, ...]:
    document = json.loads(read_data_text(DEFAULTS_FILE))
    return tuple(_Family.model_validate(item) for item in document["families"])


def family_of(*names: str) -> str | None:
    """The first family whose pattern occurs in any of ``names`` (repo id, base model,
    ``general.name``, architecture), lower-cased."""
    text = " ".join(names).lower()
    for family in _families():
        if any(pattern in text for pattern in family.match):
            return family.family
    return None


def family_defaults(family: str) -> SamplerAdvice:
    """The bundled defaults of ``family`` (see ``family_of``), said to be defaults."""
    entry = next(f for f in _families() if f.family == family)
    sentence = f"fit's defaults for the {entry.family} family, from {entry.source}"
    values = tuple(
        SamplerValue(name=name, value=value, mode=mode, sentence=sentence, kind="default")  # type: ignore[arg-type]
        for mode, settings in entry.values.items()
        for name, value in settings.items()
    )
    notes = tuple(
        PromptNote(key=key, advice=advice, sentence=sentence)
        for key, _, advice in _NOTES
        if key in entry.notes
    )
    return SamplerAdvice(
        source=f"family defaults: {entry.family} ({entry.source})", values=values, notes=notes
    )
