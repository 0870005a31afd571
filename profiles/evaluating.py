"""``fit evaluate``: which quant of a model to take for this rig, and why.

``evaluate(request)`` does, in order:

1. resolve what the user named (``resolve_source``): a Hub repository (``owner/name``,
   ``hf://owner/name`` or its URL), or, offline, a local GGUF or catalogue entry (one quant);
   the rig is resolved first so a typo costs no download;
2. read the model card: ``--card FILE`` (a saved card) or the repository's README.md;
3. list the repository's quants (``solver.gguf.repo``) and read every complete quant's GGUF
   header by range requests, in parallel, so each is planned from its real tensor types;
4. solve each quant on the rig at the target context as ``fit whatif`` does (fits, strategy,
   decode and prefill t/s, the largest context that fits) and attach the card's KLD and
   perplexity rows by quant label;
5. recommend (``recommend``): the highest-quality quant that fits the target context at a
   usable decode speed. Quality is the card's KLD where every candidate has one (lower is
   better), else the file size (more bits per weight is better), and the reason says which.

A quant whose header cannot be read or priced keeps its error and the others go on; only
when no quant could be read does the first error end the command. ``choose`` answers the
question "which quant" (``--quant``, or the interactive prompt of the CLI).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from profiles.rigs import Rig, resolve_rig
from solver.card.document import CardDocument, parse_card, read_card_file
from solver.card.facts import CardFacts, card_facts
from solver.card.quality import QualityRow, quality_rows
from solver.cost.fidelity import corpus_intervals
from solver.errors import BadInput, FitError
from solver.gguf.inventory import Inventory, TensorGroup
from solver.gguf.repo import (
    Quant,
    list_quants,
    parse_repo_id,
    quant_label,
    read_card,
)
from solver.gguf.sources import load_inventory
from solver.placement.setting import SolveRequest
from solver.placement.whatif import WhatIfRow, what_if

HEADER_WORKERS = 4  # parallel header reads: each is a few small range requests
DEFAULT_CONTEXT = 32768
DEFAULT_MIN_TPS = 10.0  # a reply of 500 tokens in under a minute


class EvaluateRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str = Field(description="repo id, hf://owner/name, local .gguf or catalogue name")
    card: Path | None = Field(default=None, description="a saved model card to read instead")
    revision: str | None = None
    rig: str = "reference"
    context: int = Field(default=DEFAULT_CONTEXT, ge=1)
    min_decode_tps: float = Field(default=DEFAULT_MIN_TPS, ge=0)
    solve: SolveRequest = SolveRequest(time_limit_s=5.0)


class QuantEvaluation(BaseModel):
    """One quant on the rig."""

    model_config = ConfigDict(frozen=True)

    name: str
    size_bytes: int
    files: tuple[str, ...]
    model: str = Field(description="what `fit solve` takes for it: hf:// URL, path or name")
    file_type: str | None = None
    fits: bool | None = Field(default=None, description="None: not evaluated (see error)")
    strategy: str | None = None
    decode_tps: float | None = None
    decode_interval: tuple[float, float] | None = None
    prefill_tps: float | None = None
    prefill_interval: tuple[float, float] | None = None
    max_context: int | None = None
    kld: float | None = None
    ppl: float | None = None
    quality_row: str | None = Field(default=None, description="the card's row for this quant")
    notes: tuple[str, ...] = ()
    error: str | None = None


class Evaluation(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    repo_id: str | None = None
    revision: str | None = None
    card_source: str | None = None
    card: CardFacts | None = None
    rig: str
    context: int
    min_decode_tps: float
    quants: tuple[QuantEvaluation, ...]
    extras: tuple[str, ...] = Field(default=(), description="mmproj / imatrix files")
    recommended: str | None = None
    reason: str

    def quant(self, name: str) -> QuantEvaluation:
        for quant in self.quants:
            if quant.name.lower() == name.lower():
                return quant
        known = ", ".join(q.name for q in self.quants)
        raise BadInput(f"--quant {name}: not a quant of {self.source} (quants: {known})")


def choose(evaluation: Evaluation, answer: str | None) -> QuantEvaluation | None:
    """The quant ``answer`` names (``BadInput`` if none), or None when there is no answer."""
    return None if answer is None else evaluation.quant(answer)


# --- 1. what the user named ------------------------------------------------------------------


class Source(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["hub", "local"]
    repo_id: str | None = None
    model: str | None = Field(default=None, description="local: the .gguf path or catalogue name")


def resolve_source(text: str) -> Source:
    """A local file or a catalogue name (offline, one quant), else a Hub repository id."""
    path = Path(text).expanduser()
    if path.exists() or text.endswith(".gguf"):
        return Source(kind="local", model=text)
    from solver.gguf.catalogue import catalogue_names

    if text in catalogue_names():
        return Source(kind="local", model=text)
    return Source(kind="hub", repo_id=parse_repo_id(text))


# --- 2-5. --------------------------------------------------------------------------------------


def evaluate(request: EvaluateRequest, progress: Callable[[str], None] | None = None) -> Evaluation:
    """Every quant of the model on the rig, and the recommended one (see the module)."""
    say = progress or (lambda _line: None)
    rig = resolve_rig(request.rig)
    source = resolve_source(request.source)
    card = _card(request, source)
    listing = None
    if source.kind == "hub":
        assert source.repo_id is not None
        say(f"listing {source.repo_id}")
        listing = list_quants(source.repo_id, request.revision)
        models = [(quant, listing.url(quant)) for quant in listing.quants]
    else:
        assert source.model is not None
        models = [(None, source.model)]
    inventories = _read_headers(models, say)
    quality = quality_rows(card) if card is not None else []
    quants = [
        _evaluate_quant(quant, model, found, rig, request, quality, say)
        for (quant, model), found in zip(models, inventories, strict=True)
    ]
    if all(q.error is not None for q in quants):
        raise inventories[0] if isinstance(inventories[0], FitError) else BadInput(quants[0].error)
    recommended, reason = recommend(quants, request.context, request.min_decode_tps)
    return Evaluation(
        source=request.source, repo_id=source.repo_id, revision=request.revision,
        card_source=card.source if card else None, card=card_facts(card) if card else None,
        rig=rig.hardware.name, context=request.context, min_decode_tps=request.min_decode_tps,
        quants=tuple(quants), extras=tuple(f.path for f in listing.extras) if listing else (),
        recommended=recommended, reason=reason,
    )  # fmt: skip


def _card(request: EvaluateRequest, source: Source) -> CardDocument | None:
    if request.card is not None:
        return read_card_file(request.card)
    if source.kind != "hub" or source.repo_id is None:
        return None
    text = read_card(source.repo_id, request.revision)
    return parse_card(text, f"hf://{source.repo_id}/README.md") if text is not None else None


def _read_headers(
    models: Sequence[tuple[Quant | None, str]], say: Callable[[str], None]
) -> list[Inventory | FitError]:
    """Each quant's inventory (or the error reading it), in the listing's order."""
    done = [0]

    def read(item: tuple[Quant | None, str]) -> Inventory | FitError:
        quant, model = item
        try:
            if quant is not None and not quant.complete:
                raise BadInput(
                    f"{model}: split set of {quant.expected_parts} parts, only "
                    f"{len(quant.files)} in the repository"
                )
            return load_inventory(model)
        except FitError as error:
            return error
        finally:
            done[0] += 1
            say(f"read {done[0]}/{len(models)} headers")

    with ThreadPoolExecutor(max_workers=HEADER_WORKERS) as pool:
        return list(pool.map(read, models))


def _evaluate_quant(
    quant: Quant | None,
    model: str,
    found: Inventory | FitError,
    rig: Rig,
    request: EvaluateRequest,
    quality: Sequence[QualityRow],
    say: Callable[[str], None],
) -> QuantEvaluation:
    files = tuple(f.path for f in quant.files) if quant else (model,)
    name = quant.name if quant else _local_name(found, model)
    base = QuantEvaluation(
        name=name, size_bytes=quant.size if quant else _size(found), files=files, model=model,
    )  # fmt: skip
    base = base.model_copy(update=_quality(name, quality))
    if isinstance(found, FitError):
        return base.model_copy(update={"error": str(found)})
    say(f"solving {name} on {rig.hardware.name}")
    solve_request = request.solve.model_copy(update={"contexts": (request.context,)})
    try:
        row = what_if(found, [rig.hardware], solve_request, cpus=[rig.cpu])[0]
    except FitError as error:
        return base.model_copy(update={"error": str(error), "file_type": found.file_type})
    return base.model_copy(update={**_row_fields(row), "file_type": found.file_type,
                                   "notes": tuple(quant_notes(found))})  # fmt: skip


def _local_name(found: Inventory | FitError, model: str) -> str:
    if isinstance(found, Inventory) and found.file_type:
        return found.file_type
    return quant_label(model.rsplit(":", 1)[-1] if ":" in model else model)


def _size(found: Inventory | FitError) -> int:
    return found.total_bytes if isinstance(found, Inventory) else 0


def _row_fields(row: WhatIfRow) -> dict[str, object]:
    intervals = corpus_intervals()
    fields: dict[str, object] = {
        "fits": row.fits, "strategy": row.strategy, "decode_tps": row.decode_tps,
        "prefill_tps": row.prefill_tps, "max_context": row.max_context,
    }  # fmt: skip
    if row.decode_tps is not None:
        fields["decode_interval"] = tuple(
            round(x, 1) for x in intervals.decode.bounds(row.decode_tps)
        )
    if row.prefill_tps is not None:
        fields["prefill_interval"] = tuple(
            round(x, 0) for x in intervals.prefill.bounds(row.prefill_tps)
        )
    return fields


def _quality(name: str, rows: Sequence[QualityRow]) -> dict[str, object]:
    """The card's KLD / perplexity row whose label names this quant."""
    for row in rows:
        if quant_label(row.label).lower() == name.lower():
            return {"kld": row.kld, "ppl": row.ppl, "quality_row": row.row}
    return {}


_MIX_GROUPS = (
    (TensorGroup.FFN_EXPERTS, "routed experts"),
    (TensorGroup.FFN_SHARED_EXPERTS, "shared experts"),
    (TensorGroup.FFN_DENSE, "dense FFN"),
    (TensorGroup.ATTENTION, "attention"),
    (TensorGroup.OUTPUT, "output"),
)


def quant_notes(inventory: Inventory) -> list[str]:
    """How the quant was made, from its header: the ggml types of each tensor group with
    their share of the group's bytes ("routed experts Q4_K 94%, Q6_K 6%"), so a dynamic
    quant (Unsloth's UD- quants raise some groups and layers) can be told from a standard
    mix of the same label. Routers are always F32 in llama.cpp's quants: not shown."""
    bytes_by: dict[TensorGroup, dict[str, int]] = {}
    for tensor in inventory.tensors:
        group = bytes_by.setdefault(tensor.group, {})
        group[tensor.type] = group.get(tensor.type, 0) + tensor.n_bytes
    parts = []
    for group, label in _MIX_GROUPS:
        types = bytes_by.get(group)
        if not types:
            continue
        total = sum(types.values()) or 1
        ranked = sorted(types.items(), key=lambda item: (-item[1], item[0]))
        parts.append(f"{label} " + ", ".join(f"{name} {n / total:.0%}" for name, n in ranked))
    return [f"types: {'; '.join(parts)}"] if parts else []


# --- 5. the recommendation -----------------------------------------------------------------


def recommend(
    quants: Sequence[QuantEvaluation], context: int, min_tps: float
) -> tuple[str | None, str]:
    """The highest-quality quant that fits ``context`` at ``min_tps`` or more, and why."""
    priced = [q for q in quants if q.error is None]
    usable = [q for q in priced if q.fits and (q.decode_tps or 0.0) >= min_tps]
    if not usable:
        fitting = [q for q in priced if q.fits]
        if fitting:
            fastest = max(fitting, key=lambda q: q.decode_tps or 0.0)
            return None, (
                f"no quant reaches {min_tps:g} t/s at {context} tokens; the fastest that fits "
                f"is {fastest.name} at {fastest.decode_tps:.1f} t/s (lower --min-tps to take it)"
            )
        return None, f"no quant fits this rig at {context} tokens of context"
    by_kld = all(q.kld is not None for q in usable)
    key = (lambda q: (q.kld, -q.size_bytes)) if by_kld else (lambda q: (-q.size_bytes, q.name))
    best = min(usable, key=key)  # type: ignore[arg-type]
    measure = f"the lowest KLD in the card ({best.kld:g})" if by_kld else "the largest file"
    shut_out = [q for q in priced if q.size_bytes > best.size_bytes and q not in usable]
    why_not = ""
    if shut_out:
        bigger = shut_out[-1]
        why_not = f"; {bigger.name} is larger but " + (
            f"reaches only {bigger.decode_tps:.1f} t/s" if bigger.fits else "does not fit"
        )
    return best.name, (
        f"{best.name}: of the quants that fit {context} tokens at {min_tps:g} t/s or more "
        f"({len(usable)} of {len(quants)}), it has {measure}; estimated decode "
        f"{best.decode_tps:.1f} t/s{why_not}"
    )


# --- rendering -------------------------------------------------------------------------------


def evaluation_text(evaluation: Evaluation) -> str:
    """The card's facts, one row per quant, and the recommendation with its reason."""
    from solver.placement.text import interval_note
    from solver.text_table import rows_table, terminal_safe

    lines = [f"{evaluation.source} on {evaluation.rig}, target context {evaluation.context}"]
    if evaluation.card is not None:
        lines.append(f"card ({evaluation.card_source}): {_facts_line(evaluation.card)}")
    else:
        lines.append("card: none read (give --card FILE for a saved one)")
    table = rows_table([_quant_row(q) for q in evaluation.quants])  # escapes its cells
    lines.append(table)
    for quant in evaluation.quants:
        for note in quant.notes:
            lines.append(f"note: {quant.name}: {note}")
        if quant.error:
            lines.append(f"error: {quant.name}: {quant.error}")
    if evaluation.extras:
        lines.append(f"not quants: {', '.join(evaluation.extras)}")
    lines.append(f"note: {interval_note(corpus_intervals())}")
    verdict = f"recommended: {evaluation.reason}" if evaluation.recommended else evaluation.reason
    lines.append(verdict)
    return "\n".join(line if line is table else terminal_safe(line) for line in lines)


def _facts_line(card: CardFacts) -> str:
    parts = []
    if card.name:
        parts.append(card.name)
    if card.base_model:
        parts.append(f"base {', '.join(card.base_model)}")
    if card.params_b is not None:
        active = f"-A{card.active_params_b:g}B" if card.active_params_b else ""
        parts.append(f"{card.params_b:g}B{active}")
    if card.moe is not None:
        experts = f" ({card.experts} experts, {card.active_experts} active)" if card.experts else ""
        parts.append(("MoE" if card.moe else "dense") + experts)
    if card.layers:
        parts.append(f"{card.layers} layers")
    if card.context_length:
        extended = (
            f" ({card.extended_context_length} extended)" if card.extended_context_length else ""
        )
        parts.append(f"context {card.context_length}{extended}")
    if card.license:
        parts.append(f"license {card.license}")
    if card.specialties:
        parts.append(f"specialties: {', '.join(card.specialties)}")
    return "; ".join(parts) or "no facts found"


def _dash(value: object, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def _quant_row(quant: QuantEvaluation) -> dict[str, object]:
    from solver.quantities import GIB

    decode = _dash(quant.decode_tps, ".1f")
    if quant.decode_interval:
        decode += f" ({quant.decode_interval[0]:.1f}-{quant.decode_interval[1]:.1f})"
    prefill = _dash(quant.prefill_tps, ".0f")
    if quant.prefill_interval:
        prefill += f" ({quant.prefill_interval[0]:.0f}-{quant.prefill_interval[1]:.0f})"
    fits = "error" if quant.error else ("yes" if quant.fits else "no")
    return {
        "quant": quant.name, "GiB": f"{quant.size_bytes / GIB:.2f}",
        "parts": str(len(quant.files)), "fits": fits, "strategy": quant.strategy or "-",
        "decode t/s (p10-p90)": decode, "prefill t/s (p10-p90)": prefill,
        "max ctx": _dash(quant.max_context), "KLD": _dash(quant.kld, "g"),
        "PPL": _dash(quant.ppl, "g"),
    }  # fmt: skip
