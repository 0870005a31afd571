"""``fit samplers CARD|REPO [--profile ID] [--write]``: a model's recommended samplers, and
where they go.

``recommend_samplers(request)``:

1. reads the card: a saved file, or the repository's README.md through the Hub;
2. extracts the advice (``solver.card.samplers``); when the card gives no values, takes the
   family's defaults (``data/sampler_defaults.json``) and says so; with neither, fails
   (``OperationFailed``, exit 1: the card was read, it just recommends nothing);
3. picks the mode whose values become flags: the only one, or ``thinking`` (the chat
   template's default for models that have both) unless ``mode`` says otherwise;
4. with ``write``: puts the flags (``--temp``, ``--top-p``, ``--top-k``, ``--min-p``,
   ``--repeat-penalty``, ``--presence-penalty``) into the profile's EXTRA_ARGS
   (``profile_writer.set_profile_options``) and the profile's rows and section into
   ``docs/client-settings.md`` (``client_settings``). The profile is checked before anything
   is written.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from profiles.client_settings import ClientSettingsEntry, update_client_settings
from profiles.models_conf import ModelsConf, check_writable
from profiles.profile_writer import set_profile_options
from solver.card.document import CardDocument, parse_card, read_card_file
from solver.card.facts import card_facts
from solver.card.samplers import (
    Mode,
    SamplerAdvice,
    extract_samplers,
    family_defaults,
    family_of,
)
from solver.errors import BadInput, OperationFailed
from solver.gguf.repo import parse_repo_id, read_card

# llama-server's option for each sampler (solver.llama.options knows them all).
FLAGS = {
    "temperature": "--temp", "top_p": "--top-p", "top_k": "--top-k", "min_p": "--min-p",
    "repeat_penalty": "--repeat-penalty", "presence_penalty": "--presence-penalty",
}  # fmt: skip
# docs/client-settings.md's sampler columns.
COLUMNS = {
    "temperature": "temp", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p",
    "repeat_penalty": "repeat_penalty",
}  # fmt: skip
MODE_NAMES = {"thinking": "thinking mode", "non_thinking": "non-thinking mode", "any": "all modes"}


class SamplersRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str = Field(description="a saved card file, or a Hub repository id")
    profile_id: str | None = None
    write: bool = False
    conf_path: Path = Path("models.conf")
    docs_path: Path | None = Field(
        default=None, description="None: docs/client-settings.md beside the conf file"
    )
    mode: Mode | None = Field(default=None, description="None: thinking, or the only one")
    revision: str | None = None


class SamplersOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    advice: SamplerAdvice
    mode: Mode
    flags: tuple[str, ...]
    written_conf: Path | None = None
    written_docs: Path | None = None
    notes: tuple[str, ...] = ()


def recommend_samplers(request: SamplersRequest) -> SamplersOutcome:
    """The card's (or family's) samplers as flags; written when asked (module docstring)."""
    if request.write and not request.profile_id:
        raise BadInput("--write needs --profile ID: the models.conf profile to write to")
    docs = request.docs_path or request.conf_path.parent / "docs" / "client-settings.md"
    context = None
    if request.write:  # both files checked before either is written
        context = _checked_profile(request)
        if docs.exists():
            check_writable(docs)
    card, names = _card(request)
    advice = extract_samplers(card)
    if not advice.has_values:
        facts = card_facts(card)
        family = family_of(*names, *facts.base_model, facts.name or "")
        if family is None:
            raise OperationFailed(
                f"{card.source}: the card gives no sampler values, and fit has no defaults for "
                "this model's family; set --temp and friends in EXTRA_ARGS yourself"
            )
        advice = _keep_card_notes(family_defaults(family), advice)
    mode = _mode(advice, request.mode)
    flags = _flags(advice, mode)
    if not request.write:
        return SamplersOutcome(source=card.source, advice=advice, mode=mode, flags=flags)
    assert request.profile_id is not None
    write = set_profile_options(request.conf_path, request.profile_id, flags)
    entry = client_settings_entry(request.profile_id, advice, mode, context)
    update_client_settings(docs, entry)
    return SamplersOutcome(
        source=card.source, advice=advice, mode=mode, flags=flags,
        written_conf=write.path, written_docs=docs, notes=write.notes,
    )  # fmt: skip


def _keep_card_notes(defaults: SamplerAdvice, card: SamplerAdvice) -> SamplerAdvice:
    """The family's values with the card's own prompt notes where it has some."""
    return defaults.model_copy(update={"notes": card.notes or defaults.notes})


def _checked_profile(request: SamplersRequest) -> int | None:
    """The profile's CTX_SIZE (for the capability table), once the profile is known to
    exist; ``BadInput`` otherwise, before anything is read from the network."""
    assert request.profile_id is not None
    if not request.conf_path.is_file():
        raise BadInput(f"{request.conf_path}: no such file (give --conf)")
    conf = ModelsConf.read(request.conf_path)
    if request.profile_id not in conf:
        known = ", ".join(conf.ids) or "none"
        raise BadInput(
            f"{request.conf_path}: no profile [{request.profile_id}] (profiles: {known})"
        )
    ctx = conf.profile(request.profile_id).get("CTX_SIZE")
    return int(ctx) if ctx and ctx.isdigit() else None


def _card(request: SamplersRequest) -> tuple[CardDocument, tuple[str, ...]]:
    """The card, and the names its family may be found in (repository id)."""
    path = Path(request.source).expanduser()
    if path.exists() or request.source.endswith(".md"):
        return read_card_file(path), (path.stem,)
    repo_id = parse_repo_id(request.source)
    text = read_card(repo_id, request.revision)
    if text is None:
        raise BadInput(f"hf://{repo_id}: the repository has no README.md (model card)")
    return parse_card(text, f"hf://{repo_id}/README.md"), (repo_id,)


def _mode(advice: SamplerAdvice, asked: Mode | None) -> Mode:
    modes = advice.modes
    if asked is None:
        return "thinking" if "thinking" in modes else "any"
    if asked != "any" and asked not in modes:
        raise BadInput(f"--mode {asked}: the advice has no separate {MODE_NAMES[asked]}")
    return asked


def _number(value: float) -> str:
    return f"{value:g}"


def _flags(advice: SamplerAdvice, mode: Mode) -> tuple[str, ...]:
    flags: list[str] = []
    for name, value in advice.settings(mode).items():
        assert value.value is not None
        flags += [FLAGS[name], _number(value.value)]
    return tuple(flags)


# --- docs/client-settings.md ------------------------------------------------------------------


def client_settings_entry(
    profile_id: str, advice: SamplerAdvice, mode: Mode, max_context: int | None
) -> ClientSettingsEntry:
    """The profile's table cells and section from the advice."""
    chosen = advice.settings(mode)
    samplers = {column: _number(chosen[name].value) for name, column in COLUMNS.items()
                if name in chosen and chosen[name].value is not None}  # fmt: skip
    capability: dict[str, str] = {}
    keys = {note.key for note in advice.notes}
    if "reasoning_levels" in keys:
        capability["Thinking"] = "always (levels)"
    elif advice.modes != ("any",) or "think_switch" in keys:
        capability["Thinking"] = "optional"
    if max_context is not None:
        capability["Max context"] = str(max_context)
    return ClientSettingsEntry(
        profile_id=profile_id, capability=capability, samplers=samplers,
        section=tuple(section_lines(advice, mode)),
    )  # fmt: skip


def _values_text(advice: SamplerAdvice, mode: Mode) -> str:
    return ", ".join(
        f"{name} {_number(value.value)}"
        for name, value in advice.settings(mode).items()
        if value.value is not None
    )


def section_lines(advice: SamplerAdvice, mode: Mode) -> list[str]:
    """The profile's section: the values per mode (the written one first), ranges the card
    gives without a value, prompt requirements, and the sentences they came from."""
    origin = "the model card" if advice.source == "card" else advice.source
    lines = [f"Samplers from {origin}, {MODE_NAMES[mode]} (in EXTRA_ARGS): "
             f"{_values_text(advice, mode)}."]  # fmt: skip
    for other in advice.modes:
        if other not in (mode, "any"):
            lines.append(f"For {MODE_NAMES[other]}: {_values_text(advice, other)}.")
    for value in advice.values:
        if value.value is None and value.low is not None:
            high = _number(value.high if value.high is not None else value.low)
            lines.append(f"{value.name}: between {_number(value.low)} and {high} (no one value).")
    lines += [note.advice for note in advice.notes]
    sentences = list(dict.fromkeys(
        [v.sentence for v in advice.values] + [n.sentence for n in advice.notes]
    ))  # fmt: skip
    if advice.source == "card":
        lines += ["", "From the card:", *(f"> {sentence}" for sentence in sentences)]
    return lines


def samplers_text(outcome: SamplersOutcome) -> str:
    """The values per mode with their sentences, the flags, and what was written."""
    from solver.text_table import terminal_safe

    advice = outcome.advice
    origin = "the model card" if advice.source == "card" else advice.source
    lines = [f"{outcome.source}: samplers from {origin}"]
    for mode in advice.modes:
        lines.append(f"{MODE_NAMES[mode]}:")
        by_sentence: dict[str, list[str]] = {}
        for name, value in advice.settings(mode).items():
            by_sentence.setdefault(value.sentence, []).append(f"{name} {_number(value.value or 0)}")
        for sentence, values in by_sentence.items():
            lines.append(f"  {', '.join(values)}    <- {sentence}")
    for value in advice.values:
        if value.value is None and value.low is not None:
            high = value.high if value.high is not None else value.low
            lines.append(f"  {value.name}: {_number(value.low)}-{_number(high)} (a range)"
                         f"    <- {value.sentence}")  # fmt: skip
    for conflict in advice.conflicts:
        lines.append(f"also said: {conflict.name} = {_number(conflict.value or 0)}    <- "
                     f"{conflict.sentence}")  # fmt: skip
    for note in advice.notes:
        lines.append(f"prompt: {note.advice}    <- {note.sentence}")
    lines.append(f"flags ({MODE_NAMES[outcome.mode]}): {' '.join(outcome.flags)}")
    if outcome.written_conf is not None:
        lines.append(f"wrote the flags to EXTRA_ARGS in {outcome.written_conf}")
    if outcome.written_docs is not None:
        lines.append(f"updated {outcome.written_docs}")
    lines += list(outcome.notes)
    return "\n".join(terminal_safe(line) for line in lines)
