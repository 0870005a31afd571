"""Tune the knobs the solver cannot see by measuring them: Optuna over real launches.

Search space (``TuneSpace``), each only where it applies to the profile:

- ``-ub`` (16..2048) and ``-b`` (16..4096) on powers of two, the values llama.cpp users pick,
  plus the profile's own value; ``-ub`` above ``-b`` is ``-b``, as llama.cpp clamps it;
- ``-t`` threads, 1..the machine's physical cores (llama.cpp's own default);
- ``-ngl`` 0..n_layer+1 when the launch has offload devices (GPUs or RPC servers);
- ``-ts`` one weight in [0, 1] per offload device when there are two or more;
- ``--n-cpu-moe`` 0..n_layer for MoE models whose profile has no other expert overrides.

A trial (``TuneObjective``):

1. Suggest settings (the first trial of a new study is the profile's current settings, via
   ``study.enqueue_trial``) and render them into the profile's arguments.
2. Check memory with ``solver.llama.memory`` against the solver's budgets; a candidate that cannot
   fit is pruned without a launch, and says why.
3. Launch and measure (``measure``, injected: only the CLI layer touches processes). The short
   request is reported to the pruner first (``trial.report``), so a slow candidate stops before
   the long one; a failed launch (OOM, crash) is a failed trial.
4. Step 3 is repeated ``repetitions`` times (each a launch of its own); the value is the mean
   of the measured decode t/s, prompt t/s, or their geometric mean (``mix``), and the trial
   keeps each measurement and the 95% confidence interval of the mean (mean ± t·s/√n).

``apply_verdict`` decides whether the best trial may replace the profile's settings: only when
its interval lies wholly above the interval of the profile's own settings (the first trial),
i.e. the two 95% intervals do not overlap. That is stricter than a Welch test at 5% (it asks
more than the difference's own interval excluding zero), which suits a best-of-many pick whose
mean is biased upwards by the picking.

Storage is any Optuna RDB URL (SQLite in the workspace by default) with a heartbeat: a trial
left RUNNING by a killed process (it beats once before launching anything, then every
``heartbeat`` seconds) goes stale after ``grace`` seconds, is failed, and
``RetryHeartbeatStaleTrialCallback`` queues it again, so ``fit tune`` resumes where it was
killed and several machines can share one study.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat  # public: fail_stale_trials' home
from optuna.trial import FrozenTrial, TrialState
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import ArgumentError

from solver.cost.model import Objective
from solver.errors import BadInput, OperationFailed
from solver.llama.arg_edit import last_value, option_values, without_options
from solver.placement.launch_cost import LaunchPredictor

BATCH_MAX = 4096
UBATCH_RANGE = (16, 2048)
UBATCH_GRID = tuple(2**k for k in range(4, 12))  # 16..2048
BATCH_GRID = tuple(2**k for k in range(4, 13))  # 16..4096
# Student's t, two-sided 95%, by degrees of freedom; above 30 the value at 30 (a little wide)
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip
TUNED_KEYS = ("--batch-size", "--ubatch-size", "--threads", "--gpu-layers", "--tensor-split",
              "--n-cpu-moe")  # fmt: skip
EXPERT_KEYS = ("--override-tensor", "--cpu-moe", "--n-cpu-moe")
DEFAULT_BATCH, DEFAULT_UBATCH = 2048, 512  # common/common.h
MAX_RETRY = 2
DEFAULT_REPETITIONS = 3  # launches per trial for fit tune: the least that gives an interval


class TuneSettings(BaseModel):
    """One candidate; None means the knob is not tuned for this profile."""

    model_config = ConfigDict(frozen=True)

    n_batch: int
    n_ubatch: int
    threads: int
    n_gpu_layers: int | None = None
    tensor_split: tuple[float, ...] | None = None
    n_cpu_moe: int | None = None

    def args(self) -> list[str]:
        """The llama-server flags for these settings."""
        out = ["-b", str(self.n_batch), "-ub", str(self.n_ubatch), "-t", str(self.threads)]
        if self.tensor_split is not None:
            out += ["-ts", ",".join(f"{share:.3g}" for share in self.tensor_split)]
        if self.n_cpu_moe is not None:
            out += ["--n-cpu-moe", str(self.n_cpu_moe)]
        return out

    def replaced_keys(self) -> set[str]:
        """Options these settings set, so earlier values of them must go."""
        keys = set(TUNED_KEYS)
        if self.n_gpu_layers is None:
            keys.discard("--gpu-layers")
        if self.tensor_split is None:
            keys.discard("--tensor-split")
        if self.n_cpu_moe is None:
            keys.discard("--n-cpu-moe")
        return keys

    def params(self) -> dict[str, float | int]:
        """The Optuna parameters that reproduce these settings."""
        params: dict[str, float | int] = {
            "ubatch": self.n_ubatch,
            "batch": self.n_batch,
            "threads": self.threads,
        }
        if self.n_gpu_layers is not None:
            params["gpu_layers"] = self.n_gpu_layers
        for i, share in enumerate(self.tensor_split or ()):
            params[f"ts_{i}"] = share
        if self.n_cpu_moe is not None:
            params["n_cpu_moe"] = self.n_cpu_moe
        return params


class TuneSpace(BaseModel):
    """What may vary for one profile on one machine."""

    model_config = ConfigDict(frozen=True)

    max_threads: int
    ubatch_choices: tuple[int, ...] = Field(default=UBATCH_GRID, description="-ub candidates")
    batch_choices: tuple[int, ...] = Field(default=BATCH_GRID, description="-b candidates")
    gpu_slots: int | None = Field(description="n_layer + 1 if -ngl is tuned")
    split_devices: tuple[str, ...] = Field(description="offload devices, if -ts is tuned")
    expert_layers: int | None = Field(description="n_layer if --n-cpu-moe is tuned")

    def suggest(self, trial: optuna.Trial) -> TuneSettings:
        ubatch = trial.suggest_categorical("ubatch", self.ubatch_choices)
        batch = trial.suggest_categorical("batch", self.batch_choices)
        threads = trial.suggest_int("threads", 1, self.max_threads)
        gpu_layers = None
        if self.gpu_slots is not None:
            gpu_layers = trial.suggest_int("gpu_layers", 0, self.gpu_slots)
        split = None
        if self.split_devices:
            split = tuple(
                trial.suggest_float(f"ts_{i}", 0.0, 1.0) for i in range(len(self.split_devices))
            )
        n_cpu_moe = None
        if self.expert_layers is not None:
            n_cpu_moe = trial.suggest_int("n_cpu_moe", 0, self.expert_layers)
        return TuneSettings(
            n_batch=batch,
            n_ubatch=min(ubatch, batch),  # llama.cpp clamps -ub to -b
            threads=threads,
            n_gpu_layers=gpu_layers,
            tensor_split=split,
            n_cpu_moe=n_cpu_moe,
        )


class TrialMeasurement(BaseModel):
    """What a measuring launch tells the tuner."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    decode_tps: float | None = None
    prompt_tps: float | None = None
    failure: str | None = None
    run_file: str | None = None


# measure(args, report_partial) -> TrialMeasurement; report_partial(decode, prompt) may raise
# optuna.TrialPruned to stop the launch after its short request
PartialReport = Callable[[float | None, float | None], None]
Measure = Callable[[list[str], PartialReport], TrialMeasurement]


class TrialFailed(OperationFailed):
    """A launch that failed: the trial is FAIL, the study goes on."""


def objective_value(objective: Objective, decode: float | None, prompt: float | None) -> float:
    if objective is Objective.DECODE and decode is not None:
        return decode
    if objective is Objective.PREFILL and prompt is not None:
        return prompt
    if objective is Objective.BALANCED and decode and prompt:
        return math.sqrt(decode * prompt)
    raise TrialFailed(f"the launch measured no {objective.value} speed")


# --- the space and the starting point of a profile ---------------------------------------------


def tune_space(
    args: Sequence[str], predictor: LaunchPredictor, *, max_threads: int | None = None
) -> tuple[TuneSpace, TuneSettings, list[str]]:
    """The space for a profile's arguments, its current settings, and notes on what is not
    tuned and why. Arguments fit cannot model cannot be tuned (their memory is unknown)."""
    try:
        config, report = predictor.memory(args)
    except BadInput as error:
        raise BadInput(f"cannot tune these arguments: {error}") from None
    notes = []
    inventory = predictor.inventory
    offload = tuple(report.placement.devices)
    slots = inventory.n_layers + 1
    tunes_layers = bool(offload) and config.split_mode == "layer"
    split_devices = offload if tunes_layers and len(offload) >= 2 else ()
    expert_rules = [k for k in EXPERT_KEYS if option_values(args, k)]
    tunes_experts = inventory.is_moe and expert_rules in ([], ["--n-cpu-moe"])
    if inventory.is_moe and not tunes_experts:
        notes.append("--n-cpu-moe is not tuned: the profile places experts with -ot/--cpu-moe")
    if not offload:
        notes.append("-ngl and -ts are not tuned: the launch has no offload device")
    cpus = max_threads or _physical_cores() or os.cpu_count() or 1
    free = {gpu.device: gpu.memory_bytes for gpu in predictor.hardware.gpus}
    current = TuneSettings(
        n_batch=config.n_batch,
        n_ubatch=min(config.n_ubatch, config.n_batch),
        threads=_current_threads(args, cpus),
        n_gpu_layers=_current_layers(config.n_gpu_layers, slots) if tunes_layers else None,
        tensor_split=_current_split(config.tensor_split, free, split_devices, notes)
        if split_devices
        else None,
        n_cpu_moe=_current_n_cpu_moe(args) if tunes_experts else None,
    )
    space = TuneSpace(
        max_threads=max(cpus, current.threads),
        gpu_slots=slots if tunes_layers else None,
        split_devices=split_devices,
        expert_layers=inventory.n_layers if tunes_experts else None,
    )
    current = _clamped(current, space)
    # the profile's own -b/-ub join the grid, so its settings can be the first trial
    space = space.model_copy(
        update={
            "ubatch_choices": tuple(sorted({*UBATCH_GRID, current.n_ubatch})),
            "batch_choices": tuple(sorted({*BATCH_GRID, current.n_batch})),
        }
    )
    return space, current, notes


def _current_threads(args: Sequence[str], cpus: int) -> int:
    value = last_value(args, "--threads")
    try:
        threads = int(value) if value is not None else -1
    except ValueError:
        threads = -1
    # llama.cpp's -1 is cpu_get_num_math(): the physical cores; without them, all CPUs
    return threads if threads > 0 else _physical_cores() or cpus


def _physical_cores() -> int | None:
    from solver.hardware.detect import cpu_counts

    try:
        return cpu_counts()[0]
    except (OSError, ValueError):
        return None


def _current_layers(n_gpu_layers: int, slots: int) -> int:
    return slots if n_gpu_layers < 0 or n_gpu_layers > slots else n_gpu_layers


def _current_split(
    split: tuple[float, ...], free: dict[str, int], devices: tuple[str, ...], notes: list[str]
) -> tuple[float, ...]:
    """-ts as shares of its largest entry; without -ts, llama.cpp splits by free memory."""
    if not split or not any(split):
        if all(device in free for device in devices):
            split = tuple(float(free[device]) for device in devices)
        else:
            notes.append("no -ts, and RPC devices' free memory is unknown: starting from equal")
            split = (1.0,) * len(devices)
    split = tuple(split) + (0.0,) * (len(devices) - len(split))
    top = max(split)
    return tuple(round(share / top, 4) for share in split[: len(devices)])


def _current_n_cpu_moe(args: Sequence[str]) -> int:
    value = last_value(args, "--n-cpu-moe")
    return int(value) if value and value.isdigit() else 0


def _clamped(settings: TuneSettings, space: TuneSpace) -> TuneSettings:
    """The current settings inside the space's ranges (Optuna rejects values outside)."""
    ubatch = min(max(settings.n_ubatch, UBATCH_RANGE[0]), UBATCH_RANGE[1])
    return settings.model_copy(
        update={
            "n_ubatch": ubatch,
            "n_batch": min(max(settings.n_batch, ubatch), BATCH_MAX),
            "threads": min(max(settings.threads, 1), space.max_threads),
        }
    )


def tuned_args(args: Sequence[str], settings: TuneSettings) -> list[str]:
    """The profile's arguments with the tuned options replaced by ``settings``.

    ``-ngl`` is rendered only when tuned; every other argument keeps its place.
    """
    rest = without_options(args, settings.replaced_keys())
    ngl = [] if settings.n_gpu_layers is None else ["-ngl", str(settings.n_gpu_layers)]
    return [*ngl, *rest, *settings.args()]


# --- the objective -----------------------------------------------------------------------------


class TuneObjective:
    """Steps 1-4 of a trial (see the module docstring)."""

    def __init__(
        self,
        args: Sequence[str],
        space: TuneSpace,
        predictor: LaunchPredictor,
        measure: Measure,
        objective: Objective,
        repetitions: int = 1,
    ) -> None:
        self.args = list(args)
        self.space = space
        self.predictor = predictor
        self.measure = measure
        self.objective = objective
        self.repetitions = max(1, repetitions)

    def __call__(self, trial: optuna.Trial) -> float:
        _beat(trial)
        settings = self.space.suggest(trial)
        args = tuned_args(self.args, settings)
        trial.set_user_attr("args", args)
        reason = self._cannot_fit(settings, args)
        if reason:
            trial.set_user_attr("pruned_reason", reason)
            raise optuna.TrialPruned(reason)

        def report_partial(decode: float | None, prompt: float | None) -> None:
            try:
                value = objective_value(self.objective, decode, prompt)
            except TrialFailed:
                return
            trial.report(value, step=0)
            if trial.should_prune():
                reason = f"short request at {value:.1f} t/s, below the median of earlier trials"
                trial.set_user_attr("pruned_reason", reason)
                raise optuna.TrialPruned(reason)

        values: list[float] = []
        decodes: list[float | None] = []
        prompts: list[float | None] = []
        runs: list[str | None] = []
        for repetition in range(self.repetitions):
            # only the first launch's short request goes to the pruner: one step per trial
            result = self.measure(args, report_partial if repetition == 0 else _ignore_partial)
            runs.append(result.run_file)
            trial.set_user_attr("run_file", result.run_file)
            trial.set_user_attr("run_files", runs)
            if not result.ok:
                trial.set_user_attr("failure", result.failure)
                raise TrialFailed(result.failure or "the launch failed")
            values.append(objective_value(self.objective, result.decode_tps, result.prompt_tps))
            decodes.append(result.decode_tps)
            prompts.append(result.prompt_tps)
        interval = confidence_interval(values)
        trial.set_user_attr("values", values)
        trial.set_user_attr("interval", None if interval is None else list(interval))
        trial.set_user_attr("decode_tps", _mean_or_none(decodes))
        trial.set_user_attr("prompt_tps", _mean_or_none(prompts))
        return _mean(values)

    def _cannot_fit(self, settings: TuneSettings, args: list[str]) -> str | None:
        if settings.tensor_split is not None and not any(settings.tensor_split):
            return "-ts gives every device a zero share"
        try:
            _, report = self.predictor.memory(args)
        except BadInput as error:
            return str(error)
        problems = self.predictor.shortfalls(report)
        return "does not fit: " + "; ".join(problems) if problems else None


def _ignore_partial(decode: float | None, prompt: float | None) -> None:
    """A repeated launch's short request: the pruner already saw the first one."""


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return _mean(known) if len(known) == len(values) and known else None


def confidence_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """The 95% confidence interval of the mean, mean ± t·s/√n with Student's t at n-1 degrees
    of freedom; None for fewer than two values (their noise is unknown)."""
    n = len(values)
    if n < 2:
        return None
    mean = _mean(values)
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T_975[min(n - 1, len(T_975)) - 1] * s / math.sqrt(n)
    return (mean - half, mean + half)


# --- the study -----------------------------------------------------------------------------------


def open_study(
    url: str,
    name: str,
    *,
    objective: Objective,
    heartbeat_s: float = 10.0,
) -> optuna.Study:
    """Create or load the study, with heartbeat and retry of trials whose process died."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with _quiet_optuna():
        try:
            storage = RDBStorage(
                url,
                heartbeat_interval=max(1, round(heartbeat_s)),
                grace_period=max(2, round(2 * heartbeat_s)),
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRY
                ),
            )
        except (
            ImportError,
            ValueError,
            ArgumentError,  # an unknown dialect, e.g. a typo in the URL's scheme
            optuna.exceptions.StorageInternalError,
        ) as error:
            raise BadInput(f"cannot open tuning storage {url}: {error}") from None
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(n_startup_trials=4),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
        load_if_exists=True,
    )
    stored = study.user_attrs.get("objective")
    if stored is None:
        study.set_user_attr("objective", objective.value)
    elif stored != objective.value:
        raise BadInput(
            f"study {name} optimises {stored}, not {objective.value}; use another --study"
        )
    return study


def _beat(trial: optuna.Trial) -> None:
    """Record the trial's heartbeat now, before anything is launched.

    Optuna's heartbeat thread writes its first beat alongside the trial, and it counts a
    RUNNING trial without any beat as alive for ever: a worker killed before that first write
    (easily, on a loaded machine) would leave its trial RUNNING in every later run. With a
    beat written first, a trial whose worker died is stale once ``grace`` has passed."""
    storage = trial.storage  # the RDBStorage, wrapped in Optuna's cache
    if isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval() is not None:
        storage.record_heartbeat(trial._trial_id)  # Optuna names a trial's row id nowhere else


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Heartbeats and their retry callback are marked experimental; fit relies on them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def study_space(study: optuna.Study, space: TuneSpace) -> TuneSpace:
    """The space with the -b/-ub choices the study started with: Optuna refuses a parameter
    whose choices change within a study, and the profile's own values, part of the choices,
    change when ``--apply`` writes a trial. A study from before the grid is refused."""
    for trial in study.get_trials(deepcopy=False):
        ubatch, batch = trial.distributions.get("ubatch"), trial.distributions.get("batch")
        if ubatch is None or batch is None:
            continue
        if not isinstance(ubatch, CategoricalDistribution) or not isinstance(
            batch, CategoricalDistribution
        ):
            raise BadInput(
                f"study {study.study_name} was made by an earlier fit tune whose -b/-ub were "
                "not on the grid of powers of two; use another --study"
            )
        return space.model_copy(
            update={
                "ubatch_choices": tuple(int(c) for c in ubatch.choices),
                "batch_choices": tuple(int(c) for c in batch.choices),
            }
        )
    return space


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that count towards ``--trials``: complete, pruned, or failed and not retried."""
    trials = study.get_trials(deepcopy=False)
    with _quiet_optuna():
        retried = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials}
    return [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state is TrialState.FAIL and t.number not in retried)
    ]


def run_study(
    study: optuna.Study,
    objective: TuneObjective,
    current: TuneSettings,
    n_trials: int,
    *,
    on_trial: Callable[[FrozenTrial], None] | None = None,
) -> None:
    """Run trials until ``n_trials`` have finished (a resumed study counts its earlier ones)."""
    if not study.get_trials(deepcopy=False):
        # workers starting together on a new study: the profile's own settings once
        study.enqueue_trial(current.params(), skip_if_exists=True)
    callbacks = [] if on_trial is None else [lambda _study, trial: on_trial(trial)]
    while True:
        with _quiet_optuna():
            optuna.storages.fail_stale_trials(study)  # a killed run's trial: failed, requeued
            if len(finished_trials(study)) >= n_trials:
                return
            study.optimize(objective, n_trials=1, catch=(TrialFailed,), callbacks=callbacks)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    complete = [t for t in study.get_trials(deepcopy=False) if t.state is TrialState.COMPLETE]
    return max(complete, key=lambda t: t.value or 0.0, default=None)


def settings_of(trial: FrozenTrial, space: TuneSpace) -> TuneSettings:
    """A trial's parameters as settings (the space decides which knobs exist)."""
    p = trial.params
    split = None
    if space.split_devices:
        split = tuple(float(p[f"ts_{i}"]) for i in range(len(space.split_devices)))
    return TuneSettings(
        n_batch=int(p["batch"]),
        n_ubatch=min(int(p["ubatch"]), int(p["batch"])),
        threads=int(p["threads"]),
        n_gpu_layers=int(p["gpu_layers"]) if "gpu_layers" in p else None,
        tensor_split=split,
        n_cpu_moe=int(p["n_cpu_moe"]) if "n_cpu_moe" in p else None,
    )


class ApplyVerdict(BaseModel):
    """Whether the best trial may replace the profile's settings, and why."""

    model_config = ConfigDict(frozen=True)

    apply: bool
    reason: str


def apply_verdict(study: optuna.Study, current: TuneSettings, space: TuneSpace) -> ApplyVerdict:
    """Apply only an improvement outside the noise: the best trial's 95% interval wholly above
    that of the profile's own settings (no overlap; see the module docstring)."""
    best = best_trial(study)
    if best is None:
        return ApplyVerdict(apply=False, reason="no trial completed")
    trials = study.get_trials(deepcopy=False)
    own = next(
        (t for t in trials if t.state is TrialState.COMPLETE and settings_of(t, space) == current),
        None,
    )
    if own is None:
        return ApplyVerdict(
            apply=False,
            reason="the profile's own settings have no complete measurement to compare with; "
            "profile kept",
        )
    if settings_of(best, space) == current:
        return ApplyVerdict(
            apply=False, reason="the profile's own settings measured best; profile kept"
        )
    best_ci, own_ci = best.user_attrs.get("interval"), own.user_attrs.get("interval")
    if best_ci is None or own_ci is None:
        return ApplyVerdict(
            apply=False,
            reason="one measurement per trial, so the noise is unknown: profile kept "
            "(measure each trial at least twice, --repeat 2 or more)",
        )
    compared = (
        f"trial {best.number} {_interval_text(best.value, best_ci)} against the profile's "
        f"trial {own.number} {_interval_text(own.value, own_ci)} (95% intervals)"
    )
    if best_ci[0] > own_ci[1]:
        return ApplyVerdict(apply=True, reason=f"better beyond the noise: {compared}")
    return ApplyVerdict(apply=False, reason=f"within the noise, profile kept: {compared} overlap")


def _interval_text(mean: float | None, interval: Sequence[float]) -> str:
    return f"{mean or 0.0:.1f} t/s [{interval[0]:.1f}, {interval[1]:.1f}]"


class TuneOutcome(BaseModel):
    """A study after ``fit tune``: its trials, the best one, and where it was applied."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    study: str
    storage: str = Field(description="the Optuna RDB URL")
    objective: Objective
    trials: tuple[FrozenTrial, ...] = Field(description="every trial of the study, in order")
    best: FrozenTrial | None = Field(description="the complete trial of the highest value")
    applied_to: Path | None = Field(default=None, description="models.conf it was written to")
    verdict: ApplyVerdict | None = Field(default=None, description="with --apply: why or why not")
