"""``fit add REPO``: the guided path from a Hugging Face repository to a tested, benchmarked,
documented profile, one step after the other, resumable.

Steps (``STEPS``), each one library call of its own command:

1. ``evaluate``: every quant of the repo on the rig (``profiles.evaluating``);
2. ``quant``: which quant to take (``--quant``; with ``--yes`` the recommended one; else the
   caller's question);
3. ``download``: the quant into ``models/<Model>/<Quant>/`` (``profiles.downloading``);
4. ``profile``: solve the placement and write the production profile (``fit solve
   --write-profile``);
5. ``samplers``: the card's samplers into the profile and docs (``fit samplers --write``);
6. ``test``: launch and measure it, marking it tested (``fit test``);
7. ``bench-profile``, 8. ``bench`` (EvalPlus, ``--bench-limit N`` problems), 9. ``report``;
10. ``docs``: ``fit docs sync``.

State lives in the workspace (``.fit/add/<owner>--<name>.json``): after each step its result
is saved, so a run that stops (Ctrl-C, a failed step, a closed terminal) continues with the
first step not done. ``--redo STEP`` runs that step and every later one again; ``--skip
STEP`` leaves out a step no later one needs (``SKIPPABLE``). A step
that cannot apply to this model (a card with no sampler values and no family defaults) is
recorded as skipped with its reason, and the rest goes on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from profiles.bench_profile import make_bench_profile
from profiles.bench_report import write_report
from profiles.bench_run import MAX_TOKENS, run_bench
from profiles.docs import sync_docs
from profiles.downloading import DownloadRequest, download
from profiles.evaluating import EvaluateRequest, Evaluation, evaluate
from profiles.measure import measure_profile, prepare_measuring
from profiles.models_conf import write_atomic
from profiles.planning import PlacementRequest, ProfileTarget, solve_for_profile
from profiles.sampler_settings import SamplersRequest, recommend_samplers
from profiles.workspace import Workspace, bench_id
from solver.errors import BadInput, FitError, OperationFailed
from solver.gguf.repo import parse_repo_id
from solver.placement.setting import SolveRequest

STEPS = (
    "evaluate", "quant", "download", "profile", "samplers", "test", "bench-profile", "bench",
    "report", "docs",
)  # fmt: skip
OPTIONAL = ("samplers", "bench-profile", "bench", "report")  # a failure skips them
# steps no later step needs: the only ones --skip may leave out
SKIPPABLE = ("samplers", "test", "bench-profile", "bench", "report", "docs")
SKIPPED = "skipped"


class AddRequest(BaseModel):
    """``fit add REPO`` and its options."""

    model_config = ConfigDict(frozen=True)

    repo: str
    conf_path: Path = Path("models.conf")
    quant: str | None = None
    yes: bool = Field(default=False, description="take the recommended answer to every question")
    profile_id: str | None = Field(default=None, description="None: from the model and quant")
    rig: str = "detect"
    context: int = Field(default=32768, ge=1)
    bench_limit: int | None = Field(default=None, ge=1)
    bench_max_tokens: int = Field(default=MAX_TOKENS, ge=1)
    skip: tuple[str, ...] = ()
    redo: str | None = None
    server: Path | None = None


class AddState(BaseModel):
    """What is done, saved after every step."""

    model_config = ConfigDict(frozen=True)

    repo_id: str
    done: dict[str, dict[str, Any]] = {}

    def value(self, step: str, key: str) -> Any:
        return self.done[step][key]


class StepReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    step: str
    status: str = Field(description="done, skipped, or resumed (done by an earlier run)")
    summary: str


Chooser = Callable[[Evaluation], str]
Say = Callable[[str], None]


def state_path(workspace: Workspace, repo_id: str) -> Path:
    return workspace.state_dir / "add" / (repo_id.replace("/", "--") + ".json")


def load_state(path: Path, repo_id: str) -> AddState:
    if not path.exists():
        return AddState(repo_id=repo_id)
    try:
        return AddState.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise BadInput(f"{path}: not fit add's state ({str(error).splitlines()[0]})") from None


def _check(request: AddRequest) -> None:
    for step in (*request.skip, *([request.redo] if request.redo else [])):
        if step not in STEPS:
            raise BadInput(f"no step {step!r}; the steps are {', '.join(STEPS)}")
    for step in request.skip:
        if step not in SKIPPABLE:
            raise BadInput(f"--skip {step}: later steps need it; skippable: {', '.join(SKIPPABLE)}")
    if not request.conf_path.exists():
        raise BadInput(f"{request.conf_path}: no such file (`fit init` makes a workspace)")


def run_add(
    request: AddRequest, *, choose: Chooser | None = None, say: Say | None = None
) -> list[StepReport]:
    """Run every step not done yet (module docstring); returns one report per step."""
    _check(request)
    repo_id = parse_repo_id(request.repo)
    workspace = Workspace.of(request.conf_path)
    path = state_path(workspace, repo_id)
    state = load_state(path, repo_id)
    if request.redo:
        later = STEPS[STEPS.index(request.redo) :]
        state = state.model_copy(update={"done": {k: v for k, v in state.done.items()
                                                  if k not in later}})  # fmt: skip
    reports = []
    for step in STEPS:
        if step in state.done:
            reports.append(StepReport(step=step, status="resumed", summary=_summary(state, step)))
            continue
        result = {"status": SKIPPED, "reason": "--skip"} if step in request.skip else None
        if result is None:
            if say is not None:
                say(f"fit add: {step}")
            result = _run_step(step, request, state, workspace, choose, say)
        state = state.model_copy(update={"done": {**state.done, step: result}})
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, state.model_dump_json(indent=2) + "\n", backup=False)
        reports.append(StepReport(step=step, status=result.get("status", "done"),
                                  summary=_summary(state, step)))  # fmt: skip
    return reports


def _run_step(
    step: str, request: AddRequest, state: AddState, workspace: Workspace,
    choose: Chooser | None, say: Say | None,
) -> dict[str, Any]:  # fmt: skip
    """One step; an optional step that cannot apply is skipped with its reason."""
    try:
        return STEP_FUNCTIONS[step](request, state, workspace, choose, say)
    except FitError as error:
        if step in OPTIONAL and not isinstance(error, BadInput):
            return {"status": SKIPPED, "reason": str(error)}
        raise


# --- the steps -------------------------------------------------------------------------------


def _evaluate(request: AddRequest, state: AddState, *_: Any) -> dict[str, Any]:
    found = evaluate(EvaluateRequest(source=state.repo_id, rig=request.rig,
                                     context=request.context))  # fmt: skip
    fitting = [q.name for q in found.quants if q.fits]
    return {
        "recommended": found.recommended, "reason": found.reason,
        "quants": [q.name for q in found.quants], "fitting": fitting,
        "evaluation": found.model_dump(mode="json"),
    }  # fmt: skip


def _quant(request: AddRequest, state: AddState, _w: Workspace, choose: Chooser | None,
           _s: Say | None) -> dict[str, Any]:  # fmt: skip
    evaluation = Evaluation.model_validate(state.value("evaluate", "evaluation"))
    answer = request.quant
    if answer is None and request.yes:
        answer = evaluation.recommended
    if answer is None and choose is not None:
        answer = choose(evaluation)
    if answer is None:
        raise BadInput("which quant? give --quant Q, or --yes to take the recommended one")
    return {"quant": evaluation.quant(answer).name}


def _download(request: AddRequest, state: AddState, workspace: Workspace, *_: Any) -> dict:
    dest = workspace.root / "models"
    got = download(DownloadRequest(repo=state.repo_id, quant=state.value("quant", "quant"),
                                   dest=dest))  # fmt: skip
    return {"model": str(got.model_path.relative_to(workspace.root)), "command": got.command}


def default_profile_id(repo_id: str, quant: str) -> str:
    """``unsloth/Qwen3-30B-A3B-GGUF`` + ``Q4_K_M`` -> ``qwen3-30b-a3b-q4_k_m``."""
    from profiles.downloading import model_name

    text = f"{model_name(repo_id)}-{quant}".lower()
    return re.sub(r"[^a-z0-9._-]+", "-", text).strip("-._")


def _profile_id(request: AddRequest, state: AddState) -> str:
    return request.profile_id or default_profile_id(state.repo_id, state.value("quant", "quant"))


def _profile(request: AddRequest, state: AddState, workspace: Workspace, *_: Any) -> dict:
    profile_id = _profile_id(request, state)
    model = state.value("download", "model")
    outcome = solve_for_profile(
        PlacementRequest(
            model=str(workspace.root / model), rig=request.rig,
            solve=SolveRequest(contexts=(request.context,)),
            profile=ProfileTarget(profile_id=profile_id, conf_path=request.conf_path,
                                  model_path=model),
        )
    )  # fmt: skip
    outcome.raise_unless_feasible()
    return {"profile": profile_id, "decode_tps": outcome.report.decode_tps,
            "args": list(outcome.report.args)}  # fmt: skip


def _samplers(request: AddRequest, state: AddState, *_: Any) -> dict[str, Any]:
    found = recommend_samplers(SamplersRequest(
        source=state.repo_id, profile_id=state.value("profile", "profile"), write=True,
        conf_path=request.conf_path,
    ))  # fmt: skip
    return {"flags": list(found.flags), "source": found.advice.source}


def _test(request: AddRequest, state: AddState, *_: Any) -> dict[str, Any]:
    setup = prepare_measuring(request.conf_path, state.value("profile", "profile"),
                              use_calibration=True)  # fmt: skip
    record, run_file = measure_profile(setup, server=request.server)
    if not record.ok:
        raise OperationFailed(f"[{setup.launch.profile_id}] did not run: {record.failure}")
    return {"decode_tps": record.decode_tps, "run": str(run_file)}


def _bench_profile(request: AddRequest, state: AddState, *_: Any) -> dict[str, Any]:
    made = make_bench_profile(request.conf_path, state.value("profile", "profile"),
                              rig=request.rig)  # fmt: skip
    return {"bench_profile": made.bench_profile_id}


def _bench(request: AddRequest, state: AddState, *_: Any) -> dict[str, Any]:
    profile = bench_id(state.value("profile", "profile"))
    if state.done.get("bench-profile", {}).get("status") == SKIPPED:
        return {"status": SKIPPED, "reason": "no bench profile"}
    run, folder = run_bench(
        request.conf_path, profile, limit=request.bench_limit, server=request.server,
        max_tokens=request.bench_max_tokens,
    )  # fmt: skip
    return {"folder": str(folder), "pass_at_1": run.pass_at_1, "plus": run.plus_pass_at_1,
            "problems": run.problems}  # fmt: skip


def _report(request: AddRequest, *_: Any) -> dict[str, Any]:
    return {"report": str(write_report(request.conf_path).path)}


def _docs(request: AddRequest, *_: Any) -> dict[str, Any]:
    synced = sync_docs(request.conf_path)
    return {"written": [str(path) for path in synced.written]}


STEP_FUNCTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "evaluate": _evaluate, "quant": _quant, "download": _download, "profile": _profile,
    "samplers": _samplers, "test": _test, "bench-profile": _bench_profile, "bench": _bench,
    "report": _report, "docs": _docs,
}  # fmt: skip


def _summary(state: AddState, step: str) -> str:
    result = state.done[step]
    if result.get("status") == SKIPPED:
        return f"skipped: {result.get('reason')}"
    shown = {
        "evaluate": lambda r: f"recommended {r['recommended']} ({r['reason']})",
        "quant": lambda r: r["quant"],
        "download": lambda r: r["model"],
        "profile": lambda r: f"[{r['profile']}], estimated ~{r['decode_tps']:.0f} t/s",
        "samplers": lambda r: " ".join(r["flags"]) or "none",
        "test": lambda r: f"measured {r['decode_tps']:.1f} t/s decode",
        "bench-profile": lambda r: f"[{r['bench_profile']}]",
        "bench": lambda r: (
            f"pass@1 {r['pass_at_1']:.1f}% base, {r['plus']:.1f}% plus on {r['problems']} problems"
        ),
        "report": lambda r: r["report"],
        "docs": lambda r: ", ".join(r["written"]) or "already in sync",
    }
    return shown[step](result)


def add_text(reports: Sequence[StepReport]) -> str:
    width = max(len(step) for step in STEPS)
    return "\n".join(f"{r.step:<{width}}  {r.status:<8}  {r.summary}" for r in reports)


# --- fit init ------------------------------------------------------------------------------

CONF_HEADER = """\
# models.conf — llama-server profiles, one [section] per profile; `fit start <profile-id>` runs
#   llama-server -m $MODEL -c $CTX_SIZE -ngl $N_GPU_LAYERS --fit $FIT $EXTRA_ARGS
# Keys: NAME, DESCRIPTION, SPEED, MODEL, CTX_SIZE, N_GPU_LAYERS, FIT, EXTRA_ARGS.
# Comments above a section belong to it and must survive every edit.
# `fit add OWNER/REPO` adds a model: evaluate, download, profile, samplers, test, benchmark.

# --- Production profiles -------------------------------------------------------

# --- Bench profiles (EvalPlus; discovered as bench-*) ---------------------------
"""
BENCH_CLIENT_HEADER = (
    "# Per-profile client settings for fit bench. Only profiles that need a system prompt appear.\n"
)


def init_workspace(folder: Path) -> list[Path]:
    """Create a workspace in ``folder``: models.conf with its header, the docs skeleton and
    the benchmark folder. A file already there is kept as it is; returns the files made."""
    conf = folder / "models.conf"
    made = []
    for path, text in (
        (conf, CONF_HEADER),
        (folder / "benchmarks" / "evalplus" / "bench-client.conf", BENCH_CLIENT_HEADER),
    ):
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text, backup=False)
            made.append(path)
    workspace = Workspace.of(conf)
    missing = [p for p in (workspace.client_settings, workspace.bench_readme) if not p.exists()]
    sync_docs(conf, only=("client_settings", "bench_readme"), create=True)
    made += [folder / path.relative_to(workspace.root) for path in missing if path.exists()]
    workspace.results.mkdir(parents=True, exist_ok=True)
    return made
