"""``fit check``: will a launch fit the rig, before anything is launched?

A launch is a profile's command (``profiles.launch``: the arguments ``fit start`` runs) or a
model with llama-server arguments. Its buffers come from the memory model (``fit memory``'s
``predict_memory``), and each device is held against the solver's own budgets
(``solver.placement.launch_cost.launch_verdict``: GPU memory minus the margin, RAM minus the
reserve), so a plan ``fit solve`` accepts and a launch ``fit check`` passes are judged by one
arithmetic. ``fit test`` runs the same check before it launches (``profiles.measure``).

A profile whose MODEL file is not on this machine (a workspace copied from another one, a
model not downloaded yet) is priced as the catalogue entry its file name names — the catalogue
model whose name the file name starts with, in the quant the file name states, or the nearest
catalogued quant of the same kind (``Q6_K`` for ``UD-Q6_K_XL``) — and the check says so. A
file name that names no catalogue entry is one line saying why, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from profiles.launch import ProfileLaunch, load_profile, profile_launch
from profiles.models_conf import ModelsConf
from profiles.planning import predict_memory
from profiles.rigs import Rig, resolve_rig
from solver.errors import BadInput, CannotFit, FitError
from solver.gguf.catalogue import catalogue_models, catalogue_names
from solver.gguf.sources import SPLIT_NAME
from solver.llama.budget import BudgetVerdict
from solver.llama.device_map import CpuFeatures
from solver.llama.memory import MemoryReport
from solver.llama.text import over_text, verdict_line, verdict_table
from solver.placement.launch_cost import launch_verdict
from solver.placement.setting import SolveRequest
from solver.quantities import GIB, MIB
from solver.text_table import terminal_safe

# the solver's defaults, so that a check and a solve judge a launch alike
DEFAULT_MARGIN = SolveRequest().gpu_margin_bytes
DEFAULT_RESERVE = SolveRequest().ram_reserve_bytes


class LaunchCheck(BaseModel):
    """One launch against the rig: its verdict, or why it could not be checked."""

    model_config = ConfigDict(frozen=True)

    profile: str | None = Field(default=None, description="the profile id, if one was checked")
    model: str | None = Field(
        description="what was priced: a file, a URL or a catalogue name; None: nothing was"
    )
    model_note: str | None = Field(
        default=None, description="set when the model priced is a stand-in for a missing file"
    )
    report: MemoryReport | None = None
    verdict: BudgetVerdict | None = None
    error: str | None = Field(default=None, description="why the launch was not checked")

    @property
    def label(self) -> str:
        return f"[{self.profile}]" if self.profile is not None else str(self.model)

    @property
    def fits(self) -> bool | None:
        """True or False when checked; None when it could not be."""
        return None if self.verdict is None else self.verdict.fits

    def to_json(self) -> dict[str, object]:
        return {
            "profile": self.profile,
            "model": self.model,
            "model_note": self.model_note,
            "fits": self.fits,
            "verdict": None if self.verdict is None else self.verdict.to_json(),
            "notes": [] if self.report is None else list(self.report.notes),
            "error": self.error,
        }


class CheckOutcome(BaseModel):
    """``fit check``: every launch checked, on one rig, under one margin and reserve."""

    model_config = ConfigDict(frozen=True)

    rig: Rig
    gpu_margin: int = Field(description="bytes kept free on every GPU")
    ram_reserve: int = Field(description="bytes of RAM kept for the OS and other programs")
    checks: tuple[LaunchCheck, ...]

    @property
    def fits(self) -> bool:
        return all(check.fits for check in self.checks)

    def to_json(self) -> dict[str, object]:
        return {
            "rig": self.rig.hardware.name,
            "gpu_margin_mib": self.gpu_margin / MIB,
            "ram_reserve_gib": self.ram_reserve / GIB,
            "fits": self.fits,
            "checks": [check.to_json() for check in self.checks],
        }

    def raise_unless_fits(self) -> None:
        """``CannotFit`` (exit 1) naming each launch over budget, its devices and excess;
        else ``BadInput`` (exit 2) when a launch could not be checked; else nothing."""
        over = [c for c in self.checks if c.fits is False]
        if over:
            rig = "this machine" if self.rig.is_this_machine else self.rig.hardware.name
            raise CannotFit(
                "; ".join(
                    f"{c.label} does not fit {rig}: {over_text(c.verdict)}"
                    for c in over
                    if c.verdict is not None
                )
            )
        unchecked = [c for c in self.checks if c.fits is None]
        if unchecked:
            raise BadInput("; ".join(f"{c.label} not checked: {c.error}" for c in unchecked))


def _budgets(gpu_margin: int, ram_reserve: int) -> SolveRequest:
    """The solver's request carrying only what the budgets depend on."""
    return SolveRequest(gpu_margin_bytes=gpu_margin, ram_reserve_bytes=ram_reserve)


# --- one launch --------------------------------------------------------------------------------


def launch_check(
    model: str,
    args: Sequence[str],
    rig: Rig,
    request: SolveRequest,
    *,
    cpu: CpuFeatures | None = None,
    unmodelled_margin: int | None = None,
    profile: str | None = None,
    model_note: str | None = None,
) -> LaunchCheck:
    """``model`` launched with ``args`` on ``rig``: every buffer (``predict_memory``) and each
    device against ``request``'s budgets. A bad input raises."""
    report = predict_memory(model, args, rig=rig, cpu=cpu, unmodelled_margin=unmodelled_margin)
    return LaunchCheck(
        profile=profile, model=model, model_note=model_note, report=report,
        verdict=launch_verdict(report, rig.hardware, request),
    )  # fmt: skip


def check_launch(
    model: str,
    args: Sequence[str],
    *,
    rig: str,
    gpu_margin: int = DEFAULT_MARGIN,
    ram_reserve: int = DEFAULT_RESERVE,
    cpu: CpuFeatures | None = None,
    unmodelled_margin: int | None = None,
) -> CheckOutcome:
    """``fit check MODEL -- ARGS`` and ``fit memory --hardware``: one launch on ``rig``
    (scenario, TOML file or ``detect``)."""
    resolved = resolve_rig(rig)
    check = launch_check(
        model, args, resolved, _budgets(gpu_margin, ram_reserve), cpu=cpu,
        unmodelled_margin=unmodelled_margin,
    )  # fmt: skip
    return CheckOutcome(
        rig=resolved, gpu_margin=gpu_margin, ram_reserve=ram_reserve, checks=(check,)
    )


# --- profiles ----------------------------------------------------------------------------------


def check_profiles(
    conf_path: Path,
    profile_id: str | None = None,
    *,
    rig: str,
    gpu_margin: int = DEFAULT_MARGIN,
    ram_reserve: int = DEFAULT_RESERVE,
) -> CheckOutcome:
    """``fit check [PROFILE]``: the profile's command, or every profile's in the conf's order,
    on ``rig``. A named profile that cannot be checked raises (its one line is the answer);
    of all profiles, each that cannot be checked is reported with why, the others checked."""
    resolved = resolve_rig(rig)
    request = _budgets(gpu_margin, ram_reserve)
    if profile_id is not None:
        checks = [profile_check(load_profile(conf_path, profile_id), resolved, request)]
    else:
        conf = ModelsConf.read(conf_path)
        checks = []
        for pid in conf.ids:
            try:
                launch = profile_launch(conf, conf_path, pid)
                checks.append(profile_check(launch, resolved, request))
            except FitError as error:
                checks.append(LaunchCheck(profile=pid, model=None, error=str(error)))
    return CheckOutcome(
        rig=resolved, gpu_margin=gpu_margin, ram_reserve=ram_reserve, checks=tuple(checks)
    )


def profile_check(launch: ProfileLaunch, rig: Rig, request: SolveRequest) -> LaunchCheck:
    """The profile's arguments (what ``fit start`` runs after ``-m MODEL``) on ``rig``, its
    MODEL priced as ``priced_model`` says."""
    model, note = priced_model(launch)
    return launch_check(
        model, launch.args, rig, request, profile=launch.profile_id, model_note=note
    )


def priced_model(launch: ProfileLaunch) -> tuple[str, str | None]:
    """What a profile's MODEL is priced as: the file when it is there; else the catalogue
    entry its file name names, with a note saying so; else ``BadInput`` saying why not."""
    if launch.model.exists():
        return str(launch.model), None
    shown = _shown_path(launch)
    try:
        name, nearest_of = catalogue_stand_in(launch.model.name)
    except BadInput as error:
        raise BadInput(f"MODEL {shown} not found, and {error}") from None
    note = f"MODEL {shown} not found: priced as the catalogue's {name}"
    if nearest_of is not None:
        note += f" (the catalogue has no {nearest_of}; {name.partition(':')[2]} is the nearest)"
    return name, note


def _shown_path(launch: ProfileLaunch) -> str:
    """MODEL relative to the workspace when it lies inside it, as the profile wrote it."""
    try:
        return str(launch.model.relative_to(launch.workspace.resolve()))
    except ValueError:
        return str(launch.model)


# --- a missing file's catalogue stand-in -------------------------------------------------------

_TOKEN_SEPARATORS = re.compile(r"[-.]")


def catalogue_stand_in(filename: str) -> tuple[str, str | None]:
    """The catalogue name (``model:QUANT``) a GGUF file name names, and the file's own quant
    when the catalogue has only a nearest one (``None`` for an exact match).

    The model: the longest catalogue name the file name starts with (case aside, a split
    part's ``-0000k-of-0000N`` and ``.gguf`` dropped), followed by a separator. The quant: the
    last separated word that is one of the model's catalogued quants; failing that, the last
    word that, cut at an ``_``, is one or begins one (``q6_k_xl`` -> ``Q6_K``, ``q4_k_xl`` ->
    ``Q4_K_M``). ``BadInput`` says which of the two the file name does not give.
    """
    stem = filename.lower().removesuffix(".gguf")
    split = SPLIT_NAME.match(filename.lower())
    if split is not None:
        stem = split.group("prefix")
    models = [m for m in catalogue_models() if stem == m or re.match(rf"{re.escape(m)}[-._]", stem)]
    if not models:
        known = ", ".join(catalogue_models())
        raise BadInput(f"its file name names no catalogue model ({known})")
    model = max(models, key=len)
    quants = {
        name.partition(":")[2].lower(): name.partition(":")[2]
        for name in catalogue_names()
        if name.startswith(f"{model}:")
    }
    words = [w for w in _TOKEN_SEPARATORS.split(stem[len(model) :]) if w]
    for word in reversed(words):
        if word in quants:
            return f"{model}:{quants[word]}", None
    for word in reversed(words):
        nearest = _nearest_quant(word, quants)
        if nearest is not None:
            return f"{model}:{nearest}", word.upper()
    raise BadInput(
        f"the catalogue's {model} has no quant its file name states ({', '.join(quants.values())})"
    )


def _nearest_quant(word: str, quants: dict[str, str]) -> str | None:
    """The catalogued quant ``word`` names once cut at an ``_`` (the shortest cut first that
    still names one: ``q6_k_xl`` -> ``q6_k``), or None."""
    cut = word
    while "_" in cut:
        cut = cut.rsplit("_", 1)[0]
        if cut in quants:
            return quants[cut]
        longer = sorted(q for q in quants if q.startswith(f"{cut}_"))
        if longer:
            return quants[longer[0]]
    return None


# --- text --------------------------------------------------------------------------------------


def check_text(outcome: CheckOutcome) -> str:
    """The rig and its margins, then per launch its verdict line, what was priced, the
    per-device table and the notes; with several launches, a closing count."""
    hardware = outcome.rig.hardware
    lines = [
        f"rig: {terminal_safe(hardware.name)} (budget: GPU memory minus "
        f"{outcome.gpu_margin / MIB:g} MiB, RAM minus {outcome.ram_reserve / GIB:g} GiB)"
    ]
    for check in outcome.checks:
        lines.append("")
        lines += _check_lines(check)
    if len(outcome.checks) > 1:
        lines += ["", _count_line(outcome.checks)]
    return "\n".join(lines)


def _check_lines(check: LaunchCheck) -> list[str]:
    label = terminal_safe(check.label)
    if check.verdict is None or check.report is None:
        return [f"{label} not checked: {terminal_safe(check.error or 'no prediction')}"]
    lines = [f"{label} {verdict_line(check.verdict)}"]
    if check.model_note is not None:
        lines.append(f"  {terminal_safe(check.model_note)}")
    lines += [f"  {line}" for line in verdict_table(check.verdict).splitlines()]
    lines += [f"  note: {terminal_safe(note)}" for note in check.report.notes]
    return lines


def _count_line(checks: Sequence[LaunchCheck]) -> str:
    over = [c.label for c in checks if c.fits is False]
    unchecked = [c.label for c in checks if c.fits is None]
    fitting = sum(1 for c in checks if c.fits)
    kind = "profiles" if all(c.profile is not None for c in checks) else "launches"
    parts = [f"{len(checks)} {kind}: {fitting} fit"]
    if over:
        parts.append(f"{len(over)} over budget ({', '.join(over)})")
    if unchecked:
        parts.append(f"{len(unchecked)} not checked ({', '.join(unchecked)})")
    return terminal_safe(", ".join(parts))
