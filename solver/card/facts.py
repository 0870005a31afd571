"""What a model card says about the model: ``card_facts(card) -> CardFacts``.

From the front matter: base model(s), license, pipeline tag and tags. From the body, in the
phrasing of the big labs' "Model Overview" lists ("Number of Parameters: 235B in total and
22B activated", "Number of Layers: 94", "Number of Experts: 128", "Number of Activated
Experts: 8", "Context Length: 32,768 natively and 131,072 tokens with YaRN"): parameters,
layers, experts and context. Dense or MoE: experts named, an ``-A3B`` style name, or the words
mixture-of-experts / MoE. Specialties: capability words found in the tags or pipeline tag, or
at least twice in the text. Whatever the card does not say stays None; nothing is guessed.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from solver.card.document import CardDocument, clean

_B = r"([\d.]+)\s*B\b"
_PARAMS = re.compile(
    rf"Number of Parameters:\s*{_B}(?:\s*in total(?: and|,)\s*{_B}\s*activated)?", re.I
)
_NAME_SHAPE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)B-A(\d+(?:\.\d+)?)B\b", re.I)
_LAYERS = re.compile(r"Number of Layers:\s*(\d+)", re.I)
_EXPERTS = re.compile(r"Number of Experts:\s*(\d+)", re.I)
_ACTIVE_EXPERTS = re.compile(r"Number of Activated Experts:\s*(\d+)", re.I)
_CONTEXT = re.compile(
    r"Context Length:\s*([\d,]+)(?:\s*(?:tokens\s*)?natively(?:\s*and\s*([\d,]+)))?", re.I
)
_CONTEXT_K = re.compile(r"\b(\d+)K(?:[\s-]+token)?[\s-]+context", re.I)
_MOE = re.compile(r"mixture[\s-]of[\s-]experts|\bMoE\b", re.I)
SPECIALTIES = {
    "coding": re.compile(r"\bcod(?:e|ing)\b", re.I),
    "reasoning": re.compile(r"\breasoning\b", re.I),
    "math": re.compile(r"\bmath(?:ematics|ematical)?\b", re.I),
    "tool use": re.compile(r"tool[\s-]?(?:use|calling|call)|function[\s-]calling", re.I),
    "agents": re.compile(r"\bagent(?:s|ic)?\b", re.I),
    "vision": re.compile(r"\bvision\b|image-text-to-text|\bimages?\b", re.I),
    "multilingual": re.compile(r"multilingual|\d+\+? languages", re.I),
    "long context": re.compile(r"long[\s-]context", re.I),
}


class CardFacts(BaseModel):
    model_config = ConfigDict(frozen=True)

    base_model: tuple[str, ...] = ()
    license: str | None = None
    params_b: float | None = Field(default=None, description="total parameters, billions")
    active_params_b: float | None = Field(default=None, description="per token (MoE)")
    moe: bool | None = None
    layers: int | None = None
    experts: int | None = None
    active_experts: int | None = None
    context_length: int | None = Field(default=None, description="native, tokens")
    extended_context_length: int | None = Field(default=None, description="with RoPE scaling")
    specialties: tuple[str, ...] = ()
    name: str | None = Field(default=None, description="the card's first heading")


def _as_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(item) for item in value if isinstance(item, str | int | float))
    return ()


def _int(text: str | None) -> int | None:
    return int(text.replace(",", "")) if text else None


def card_facts(card: CardDocument) -> CardFacts:
    meta, body = card.front_matter, card.body
    license_ = meta.get("license_name") or meta.get("license")
    name = next((clean(line[2:]) for line in body.split("\n") if line.startswith("# ")), None)
    total, active = _params(body, name or "")
    experts = _first_int(_EXPERTS, body)
    context = _CONTEXT.search(body)
    native = _int(context.group(1)) if context else None
    if native is None and (short := _CONTEXT_K.search(body)):
        native = int(short.group(1)) * 1024
    moe = bool(experts or active or _MOE.search(body)) or None
    return CardFacts(
        base_model=_as_tuple(meta.get("base_model")),
        license=str(license_) if license_ is not None else None,
        params_b=total, active_params_b=active, moe=moe if moe else (False if total else None),
        layers=_first_int(_LAYERS, body), experts=experts,
        active_experts=_first_int(_ACTIVE_EXPERTS, body),
        context_length=native, extended_context_length=_int(context.group(2)) if context else None,
        specialties=_specialties(meta, body), name=name,
    )  # fmt: skip


def _first_int(pattern: re.Pattern[str], text: str) -> int | None:
    match = pattern.search(text)
    return int(match.group(1)) if match else None


def _params(body: str, name: str) -> tuple[float | None, float | None]:
    match = _PARAMS.search(body)
    if match:
        active = float(match.group(2)) if match.group(2) else None
        return float(match.group(1)), active
    shape = _NAME_SHAPE.search(name)
    if shape:
        return float(shape.group(1)), float(shape.group(2))
    return None, None


def _specialties(meta: dict[str, Any], body: str) -> tuple[str, ...]:
    tagged = " ".join(_as_tuple(meta.get("tags")) + _as_tuple(meta.get("pipeline_tag")))
    return tuple(
        name
        for name, pattern in SPECIALTIES.items()
        if pattern.search(tagged) or len(pattern.findall(body)) >= 2
    )
