"""The tuner's trial rules, without launches: what cannot fit is pruned before any launch,
a failed launch is a failed trial, the study counts and resumes by its stored trials.

``measure`` is the tuner's injected launch step; here it is a plain function so each rule
is seen alone (the real launches are in tests/test_tune_llama.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from optuna.trial import TrialState

from solver.cost.model import Objective
from solver.errors import BadInput
from solver.gguf.sources import load_inventory
from solver.hardware.scenario import load_hardware
from solver.placement.launch_cost import LaunchPredictor
from solver.quantities import MIB
from solver.tune.tuner import (
    Measure,
    TrialMeasurement,
    TuneObjective,
    apply_verdict,
    best_trial,
    confidence_interval,
    finished_trials,
    open_study,
    run_study,
    settings_of,
    study_space,
    tune_space,
)

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
ARGS = ["-c", "1024", "-np", "1", "--fit", "off", "-ngl", "0"]


@pytest.fixture(scope="module")
def gemma(gemma_gguf: Path):
    return load_inventory(str(gemma_gguf))


def _predictor(gemma, ram_bytes: int) -> LaunchPredictor:
    rig = load_hardware("reference")
    host = rig.host.model_copy(update={"ram_bytes": ram_bytes, "available_bytes": ram_bytes})
    return LaunchPredictor(gemma, rig.model_copy(update={"gpus": (), "host": host}))


def _study(tmp_path: Path, name: str = "s"):
    return open_study(f"sqlite:///{tmp_path / 'tune.db'}", name, objective=Objective.DECODE)


def test_the_profile_as_written_is_the_first_trial(gemma, tmp_path: Path) -> None:
    predictor = _predictor(gemma, 64 * 1024 * MIB)
    space, current, notes = tune_space([*ARGS, "-t", "1", "-b", "256"], predictor, max_threads=2)
    assert (current.n_batch, current.n_ubatch, current.threads) == (256, 256, 1)
    assert space.gpu_slots is None and notes  # CPU only: -ngl/-ts not tuned, and it says so
    seen: list[list[str]] = []

    def measure(args: list[str], report_partial) -> TrialMeasurement:
        seen.append(args)
        return TrialMeasurement(ok=True, decode_tps=10.0 + len(seen), prompt_tps=100.0)

    study = _study(tmp_path)
    run_study(study, TuneObjective(ARGS, space, predictor, measure, Objective.DECODE), current, 3)
    assert seen[0][-6:] == ["-b", "256", "-ub", "256", "-t", "1"]
    assert settings_of(study.trials[0], space) == current
    assert best_trial(study).number == 2
    # a second run with the same target finds the work done and launches nothing
    run_study(study, TuneObjective(ARGS, space, predictor, measure, Objective.DECODE), current, 3)
    assert len(seen) == 3 and len(finished_trials(study)) == 3


def test_what_cannot_fit_is_pruned_without_a_launch(gemma, tmp_path: Path) -> None:
    # 4 GiB of RAM is all the reserve: nothing can fit
    predictor = _predictor(gemma, 4 * 1024 * MIB)
    space, current, _ = tune_space(ARGS, predictor, max_threads=2)

    def measure(args: list[str], report_partial) -> TrialMeasurement:
        raise AssertionError("a candidate that cannot fit was launched")

    study = _study(tmp_path)
    run_study(study, TuneObjective(ARGS, space, predictor, measure, Objective.DECODE), current, 2)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    assert "does not fit: host memory" in study.trials[0].user_attrs["pruned_reason"]


def test_failed_launch_is_a_failed_trial_and_the_study_goes_on(gemma, tmp_path: Path) -> None:
    predictor = _predictor(gemma, 64 * 1024 * MIB)
    space, current, _ = tune_space(ARGS, predictor, max_threads=2)
    outcomes = iter(
        [
            TrialMeasurement(ok=False, failure="out of memory on CPU: allocation failed"),
            TrialMeasurement(ok=True, decode_tps=20.0, prompt_tps=90.0),
        ]
    )

    def measure(args: list[str], report_partial) -> TrialMeasurement:
        return next(outcomes)

    study = _study(tmp_path)
    run_study(study, TuneObjective(ARGS, space, predictor, measure, Objective.DECODE), current, 2)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[0].user_attrs["failure"].startswith("out of memory")


def test_slow_short_request_is_pruned_before_the_full_measurement(gemma, tmp_path: Path) -> None:
    predictor = _predictor(gemma, 64 * 1024 * MIB)
    space, current, _ = tune_space(ARGS, predictor, max_threads=2)
    speeds = iter([30.0, 40.0, 5.0])
    finished: list[float] = []

    def measure(args: list[str], report_partial) -> TrialMeasurement:
        speed = next(speeds)
        report_partial(speed, 100.0)  # raises TrialPruned when below the median
        finished.append(speed)
        return TrialMeasurement(ok=True, decode_tps=speed, prompt_tps=100.0)

    study = _study(tmp_path)
    run_study(study, TuneObjective(ARGS, space, predictor, measure, Objective.DECODE), current, 3)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2 + [TrialState.PRUNED]
    assert finished == [30.0, 40.0]


def test_a_study_keeps_its_objective(tmp_path: Path) -> None:
    _study(tmp_path, "kept")
    with pytest.raises(BadInput, match="optimises decode"):
        open_study(f"sqlite:///{tmp_path / 'tune.db'}", "kept", objective=Objective.PREFILL)


def test_a_storage_url_of_no_known_database_is_bad_input() -> None:
    with pytest.raises(BadInput, match="cannot open tuning storage nope://x"):
        open_study("nope://x", "study", objective=Objective.DECODE)


# --- the grid and the noise (issue 15: `fit tune --trials 3 --apply` wrote -b 3383 -ub 33) ---


def _noisy(rng: random.Random, speed_of) -> Measure:
    """A fake launch: ``speed_of(args)`` t/s with seeded noise of 1 t/s (standard deviation)."""

    def measure(args: list[str], report_partial) -> TrialMeasurement:
        return TrialMeasurement(ok=True, decode_tps=speed_of(args) + rng.gauss(0, 1.0))

    return measure


def _run(gemma, tmp_path: Path, measure: Measure, n_trials: int, args=ARGS):
    predictor = _predictor(gemma, 64 * 1024 * MIB)
    space, current, _ = tune_space(args, predictor, max_threads=4)
    study = _study(tmp_path)
    tuner = TuneObjective(args, space, predictor, measure, Objective.DECODE, repetitions=3)
    run_study(study, tuner, current, n_trials)
    return study, space, current


def test_candidates_are_on_the_grid_llama_users_use(gemma, tmp_path: Path) -> None:
    study, space, current = _run(gemma, tmp_path, _noisy(random.Random(1), lambda a: 10.0), 12)
    assert (current.n_batch, current.n_ubatch) == (2048, 512)  # llama.cpp's defaults
    powers = {2**k for k in range(4, 13)}
    for trial in study.trials:
        settings = settings_of(trial, space)
        assert settings.n_batch in powers and settings.n_ubatch in powers, trial.params
        assert 16 <= settings.n_ubatch <= settings.n_batch <= 4096
        assert 1 <= settings.threads <= 4
        assert trial.user_attrs["args"][-6:] == settings.args()[-6:]
    # each trial measured three times, with its 95% interval around the mean
    values = study.trials[0].user_attrs["values"]
    low, high = study.trials[0].user_attrs["interval"]
    assert len(values) == 3 and low < study.trials[0].value < high


def test_a_profile_off_the_grid_is_still_the_first_trial(gemma, tmp_path: Path) -> None:
    args = [*ARGS, "-b", "3383", "-ub", "33", "-t", "1"]
    study, space, current = _run(gemma, tmp_path, _noisy(random.Random(2), lambda a: 10.0), 2, args)
    assert settings_of(study.trials[0], space) == current
    assert (current.n_batch, current.n_ubatch) == (3383, 33)


def test_apply_is_refused_when_the_gain_is_within_the_noise(gemma, tmp_path: Path) -> None:
    # every setting is the same 10 t/s; the best of 8 trials is only the luckiest draw
    study, space, current = _run(gemma, tmp_path, _noisy(random.Random(3), lambda a: 10.0), 8)
    best = best_trial(study)
    assert best is not None and best.number != 0 and best.value > study.trials[0].value
    verdict = apply_verdict(study, current, space)
    assert not verdict.apply
    assert verdict.reason.startswith("within the noise, profile kept")


def test_apply_is_done_when_a_trial_is_clearly_better(gemma, tmp_path: Path) -> None:
    # the profile's -b 2048 -ub 512 runs at 10 t/s, any other -b/-ub at 20 (noise: 1 t/s)
    def speed(args: list[str]) -> float:
        return 10.0 if args[-6:-2] == ["-b", "2048", "-ub", "512"] else 20.0

    study, space, current = _run(gemma, tmp_path, _noisy(random.Random(4), speed), 3)
    verdict = apply_verdict(study, current, space)
    assert verdict.apply and verdict.reason.startswith("better beyond the noise"), verdict
    assert settings_of(best_trial(study), space) != current


def test_one_measurement_per_trial_never_applies(gemma, tmp_path: Path) -> None:
    predictor = _predictor(gemma, 64 * 1024 * MIB)
    space, current, _ = tune_space(ARGS, predictor, max_threads=4)
    speeds = iter([10.0, 50.0])

    def measure(args: list[str], report_partial) -> TrialMeasurement:
        return TrialMeasurement(ok=True, decode_tps=next(speeds))

    study = _study(tmp_path)
    run_study(study, TuneObjective(ARGS, space, predictor, measure, Objective.DECODE), current, 2)
    assert study.trials[0].user_attrs["interval"] is None
    assert "noise is unknown" in apply_verdict(study, current, space).reason


def test_confidence_interval_is_mean_plus_minus_t_s_over_root_n() -> None:
    low, high = confidence_interval([9.0, 10.0, 11.0])  # s = 1, t(2) = 4.303
    assert (low, high) == pytest.approx((10 - 4.303 / 3**0.5, 10 + 4.303 / 3**0.5))
    assert confidence_interval([10.0]) is None


def test_a_resumed_study_keeps_its_choices_after_the_profile_changed(gemma, tmp_path) -> None:
    # the first run starts from -b 3383 -ub 33 (they join the grid); after --apply the profile
    # is on the grid, and Optuna refuses a parameter whose choices change within a study
    predictor = _predictor(gemma, 64 * 1024 * MIB)
    measure = _noisy(random.Random(5), lambda a: 10.0)
    study = _study(tmp_path)
    for args, n_trials in (([*ARGS, "-b", "3383", "-ub", "33"], 2), ([*ARGS, "-b", "1024"], 4)):
        space, current, _ = tune_space(args, predictor, max_threads=2)
        space = study_space(study, space)
        run_study(
            study,
            TuneObjective(args, space, predictor, measure, Objective.DECODE),
            current,
            n_trials,
        )
        assert 3383 in space.batch_choices
    assert len(finished_trials(study)) == 4


def test_a_study_from_before_the_grid_is_refused(gemma, tmp_path: Path) -> None:
    study = _study(tmp_path)
    study.optimize(
        lambda t: t.suggest_int("ubatch", 16, 2048) + t.suggest_int("batch", 16, 4096), 1
    )
    space, _, _ = tune_space(ARGS, _predictor(gemma, 64 * 1024 * MIB), max_threads=2)
    with pytest.raises(BadInput, match="not on the grid of powers of two; use another --study"):
        study_space(study, space)
