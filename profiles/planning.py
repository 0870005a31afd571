"""Planning a launch before running it: ``fit solve``, ``fit whatif`` and ``fit memory``, one
call each.

Each call checks every input first (the model, the rig, and for ``--write-profile`` the conf
file and the profile it would replace), then does the long work, then returns an outcome the
CLI only renders. A solve takes up to its time limit (10 s by default) and a what-if many of
them, so a mistake the user can fix should never cost that wait.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from profiles.calibration_store import coefficients_in_use
from profiles.profile_writer import check_profile_target, production_profile, write_profile
from profiles.rigs import Rig, resolve_rig
from solver.errors import BadInput, CannotFit
from solver.gguf.inventory import Inventory
from solver.gguf.sources import load_inventory
from solver.llama.device_map import CpuFeatures
from solver.llama.memory import MemoryReport, estimate_memory
from solver.placement.launch_cost import launch_config
from solver.placement.solve import SolveReport, SolveRequest, solve
from solver.placement.whatif import WhatIfRow, cheapest_reaching, parse_vary, what_if

# --- fit solve -------------------------------------------------------------------------------


class ProfileTarget(BaseModel):
    """``--write-profile``: which models.conf section the plan becomes, and what it says."""

    model_config = ConfigDict(frozen=True)

    profile_id: str
    conf_path: Path = Path("models.conf")
    model_path: str | None = Field(
        default=None, description="MODEL= of the profile; None: the model, if a local file"
    )
    name: str | None = None
    description: str | None = None
    force: bool = Field(default=False, description="replace a tested profile of that id")


class PlacementRequest(BaseModel):
    """``fit solve MODEL --hardware RIG ...``."""

    model_config = ConfigDict(frozen=True)

    model: str = Field(description="a .gguf path, an hf:// URL or a catalogue name")
    rig: str = Field(default="reference", description="scenario name, TOML file or 'detect'")
    solve: SolveRequest = SolveRequest()
    use_calibration: bool = Field(
        default=True, description="for 'detect': use this machine's `fit calibrate` results"
    )
    profile: ProfileTarget | None = None


class PlacementOutcome(BaseModel):
    """What a solve found, and where its profile went."""

    model_config = ConfigDict(frozen=True)

    model: str = Field(description="the model as the request named it")
    inventory: Inventory
    rig: Rig
    report: SolveReport
    coefficients_note: str | None = Field(
        default=None, description="which cost coefficients priced this machine (detect only)"
    )
    written: Path | None = Field(default=None, description="the conf file the profile went to")
    profile_notes: tuple[str, ...] = Field(
        default=(), description="user settings the profile kept over fit's new values"
    )

    def raise_unless_feasible(self) -> None:
        """``CannotFit`` (exit 1) when no plan fits; the report says what is missing."""
        if not self.report.feasible:
            model = self.inventory.name or self.model
            raise CannotFit(f"{model} does not fit {self.rig.hardware.name}")


def solve_for_profile(request: PlacementRequest) -> PlacementOutcome:
    """Solve the placement and, when it fits and a profile is asked for, write the profile.

    Fails with ``BadInput`` before solving when the profile could not be written: no MODEL=
    path (a catalogue model or URL without ``model_path``), an unreadable or malformed conf
    file, a tested profile of that id without ``force``. An infeasible solve is returned, not
    raised (its report explains the shortfall); nothing is written then.
    """
    target = _checked_target(request.profile, request.model)
    inventory = load_inventory(request.model)
    rig = resolve_rig(request.rig)
    coefficients, note = None, None
    if rig.is_this_machine:  # calibration describes this machine, never a scenario
        coefficients, note = coefficients_in_use(
            rig.machine_id, use_calibration=request.use_calibration
        )
    report = solve(inventory, rig.hardware, request.solve, coefficients=coefficients, cpu=rig.cpu)
    written, notes = None, ()
    if target is not None and report.feasible:
        assert target.model_path is not None  # _checked_target resolved it
        profile = production_profile(
            report, inventory, rig.hardware, profile_id=target.profile_id,
            model_path=target.model_path, name=target.name, description=target.description,
        )  # fmt: skip
        write = write_profile(target.conf_path, profile, force=target.force)
        written, notes = write.path, write.notes
    return PlacementOutcome(
        model=request.model, inventory=inventory, rig=rig, report=report,
        coefficients_note=note, written=written, profile_notes=notes,
    )  # fmt: skip


def _checked_target(target: ProfileTarget | None, model: str) -> ProfileTarget | None:
    """The profile target with its MODEL= path resolved, once everything the write needs is
    known to be in order (see ``check_profile_target``)."""
    if target is None:
        return None
    model_path = target.model_path or (model if Path(model).is_file() else None)
    if model_path is None:
        raise BadInput(
            f"--write-profile needs --model-path: {model} is not a local file, and MODEL= "
            "must name the .gguf llama-server loads"
        )
    check_profile_target(
        target.conf_path, target.profile_id, model_path=model_path, name=target.name,
        description=target.description, force=target.force,
    )  # fmt: skip
    return target.model_copy(update={"model_path": model_path})


# --- fit whatif ------------------------------------------------------------------------------


class Comparison(BaseModel):
    """``fit whatif``: one row per rig and variation, and the cheapest reaching the target."""

    model_config = ConfigDict(frozen=True)

    inventory: Inventory
    rows: tuple[WhatIfRow, ...]
    cheapest: WhatIfRow | None = None


def compare_rigs(
    model: str,
    rigs: Sequence[str],
    request: SolveRequest,
    vary: Sequence[str] = (),
    *,
    with_max_context: bool = True,
    target_tps: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> Comparison:
    """Solve ``model`` on every rig (scenario, TOML file or ``detect``) and variation
    (``KEY=V1,V2`` strings, see ``solver.placement.whatif``); each rig's own CPU decides
    repacking where it has one. The variations are checked before anything is solved."""
    variations = parse_vary(vary)
    inventory = load_inventory(model)
    resolved = [resolve_rig(name) for name in rigs]
    rows = what_if(
        inventory, [rig.hardware for rig in resolved], request, variations,
        with_max_context=with_max_context, progress=progress, cpus=[rig.cpu for rig in resolved],
    )  # fmt: skip
    cheapest = cheapest_reaching(rows, target_tps) if target_tps else None
    return Comparison(inventory=inventory, rows=tuple(rows), cheapest=cheapest)


# --- fit memory ------------------------------------------------------------------------------


def predict_memory(
    model: str,
    llama_args: Sequence[str],
    *,
    rig: str | Rig | None = None,
    cpu: CpuFeatures | None = None,
    unmodelled_margin: int | None = None,
) -> MemoryReport:
    """Every buffer llama-server allocates for ``model`` launched with ``llama_args``.

    ``rig`` (scenario, TOML file or ``detect``, or one already resolved) gives the GPUs;
    without it the arguments may name any ``CUDA<n>``. ``cpu`` decides repacking; without
    it, the rig's own CPU for ``detect``, else this machine's. ``unmodelled_margin``: bytes
    assumed as the compute buffer of each device that runs layers when fit cannot model the
    compute graph.
    """
    resolved = rig if isinstance(rig, Rig) else resolve_rig(rig) if rig else None
    hardware = resolved.hardware if resolved else None
    config = launch_config(llama_args, hardware)
    if cpu is None and resolved is not None:
        cpu = resolved.cpu
    return estimate_memory(
        load_inventory(model), config, hardware=hardware, cpu=cpu,
        unmodelled_margin=unmodelled_margin,
    )  # fmt: skip
