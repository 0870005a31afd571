"""``fit tune`` for one profile: a stored Optuna study whose trials are real launches.

1. The space comes from the profile's measurable arguments and the predictor
   (``solver.tune.tuner.tune_space``); its notes say which knobs are left out and why.
2. The study is opened (created, or resumed with its earlier trials) in ``storage``, by
   default SQLite in the workspace's ``.fit/`` folder.
3. Trials run until ``n_trials`` have finished; each trial is launched ``repetitions`` times,
   each launch measured by ``profiles.measure.trial_measure`` and stored under runs/ like
   ``fit test``'s; the trial keeps the mean and its 95% confidence interval.
4. With ``apply_best`` the best complete trial's settings are written into the profile, only
   when ``solver.tune.tuner.apply_verdict`` finds the improvement over the profile's own
   settings outside the noise (the intervals do not overlap); otherwise the outcome says why
   and the profile is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from optuna.trial import FrozenTrial
from pydantic import BaseModel, ConfigDict, Field

from profiles.launch import measurable_args, workspace_file
from profiles.measure import MeasuringSetup, trial_measure
from profiles.outcome import apply_settings
from solver.cost.model import Objective
from solver.errors import OperationFailed
from solver.tune.tuner import (
    DEFAULT_REPETITIONS,
    TuneObjective,
    TuneOutcome,
    apply_verdict,
    best_trial,
    open_study,
    run_study,
    settings_of,
    study_space,
    tune_space,
)


def default_storage(conf_path: Path) -> str:
    """``sqlite:///WORKSPACE/.fit/tune.db`` (the folder is created)."""
    folder = workspace_file(conf_path, ".fit")
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'tune.db'}"


class TuneRequest(BaseModel):
    """What ``fit tune`` was asked for (its options)."""

    model_config = ConfigDict(frozen=True)

    objective: Objective = Objective.DECODE
    n_trials: int = Field(default=20, description="finished trials the study should have")
    storage: str | None = Field(default=None, description="Optuna RDB URL [default_storage]")
    study_name: str | None = Field(default=None, description="[PROFILE-OBJECTIVE]")
    heartbeat_s: float = 10.0
    apply_best: bool = False
    repetitions: int = Field(
        default=DEFAULT_REPETITIONS, ge=1, description="launches measured per trial"
    )
    server: Path | None = Field(default=None, description="llama-server [the resolved one]")
    n_predict: int = Field(default=16, description="tokens generated per measured prompt")


def tune_profile(
    setup: MeasuringSetup,
    request: TuneRequest,
    *,
    on_note: Callable[[str], None] | None = None,
    on_trial: Callable[[FrozenTrial], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> TuneOutcome:
    """Steps 1-4. ``on_note`` hears the space's notes once the study is open, ``on_trial``
    each finished trial, ``progress`` each launch's steps. Applying a study without a
    complete trial is an operation failure."""
    launch = setup.launch
    args, _ = measurable_args(launch.args)
    space, current, notes = tune_space(args, setup.predictor)
    url = default_storage(launch.conf_path) if request.storage is None else request.storage
    name = request.study_name or f"{launch.profile_id}-{request.objective.value}"
    study = open_study(url, name, objective=request.objective, heartbeat_s=request.heartbeat_s)
    space = study_space(study, space)
    for note in notes:
        if on_note is not None:
            on_note(note)

    measure = trial_measure(
        setup.request(kind="tune", args=args),
        machine=setup.machine,
        predictor=setup.predictor,
        server=request.server,
        n_predict=request.n_predict,
        progress=progress,
    )
    tuner = TuneObjective(
        args, space, setup.predictor, measure, request.objective, request.repetitions
    )
    run_study(study, tuner, current, request.n_trials, on_trial=on_trial)
    best = best_trial(study)
    applied = verdict = None
    if request.apply_best:
        if best is None:
            raise OperationFailed(f"study {name} has no completed trial to apply")
        verdict = apply_verdict(study, current, space)
    if verdict is not None and verdict.apply and best is not None:
        applied = apply_settings(
            launch.conf_path,
            launch.profile_id,
            settings_of(best, space),
            study=name,
            trial=best.number,
            decode_tps=best.user_attrs.get("decode_tps"),
            prompt_tps=best.user_attrs.get("prompt_tps"),
        )
    return TuneOutcome(
        study=name,
        storage=url,
        objective=request.objective,
        trials=tuple(study.get_trials(deepcopy=False)),
        best=best,
        applied_to=applied,
        verdict=verdict,
    )
