"""Launch llama-server with a profile's arguments, measure it, and say what it did.

One measuring launch (``measure_launch``):

1. Start llama-server on a free port (``profiles.server.LlamaServer``), wait for ``/health``.
2. Send the fixed prompts (``PROMPTS``): a warm-up that is not counted, then a short and a
   long prompt, each generating ``n_predict`` tokens with EOS ignored and the prompt cache
   off, so the server's own ``timings`` measure exactly that work.
3. Stop the server and parse its whole log (the exit-time memory breakdown included).
4. Predict memory for the exact arguments (``solver.placement.launch_cost.LaunchPredictor``) on the
   build that ran: its CPU features (from its ``system_info`` line) decide which weights are
   repacked. Arguments fit cannot model leave the prediction out, not the launch.
5. Price the measured requests with the cost model (per-request loads are what calibration
   fits to) and return a ``RunRecord``. A launch that fails is a record with ``ok=False`` and
   the log lines that say why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from profiles.calibration_store import coefficients_in_use, this_machine
from profiles.launch import ProfileLaunch, load_profile, measurable_args
from profiles.outcome import mark_tested
from profiles.runs import Prediction, RequestMeasurement, RunRecord, runs_folder, save_run
from profiles.server import CompletionTimings, LlamaServer, ServerFailed, complete
from profiles.server_log import RunReport, parse_server_log_file
from solver.errors import BadInput, CannotFit, OperationFailed
from solver.gguf.sources import load_inventory
from solver.llama.args import LaunchConfig
from solver.llama.memory import MemoryReport
from solver.llama.text import over_text
from solver.placement.launch_cost import LaunchPredictor
from solver.tune.tuner import Measure, PartialReport, TrialMeasurement


class PromptSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    text: str
    n_predict: int | None = None  # None: the measurement's n_predict
    counted: bool = True


# A fixed text, so every run of every profile measures the same work (about 330 tokens with
# gemma's tokenizer); short enough for a 512-token slot.
LONG_TEXT = " ".join(
    f"Step {i}: the river carries silt from the mountains to the delta, where it settles."
    for i in range(1, 21)
)
PROMPTS: tuple[PromptSpec, ...] = (
    PromptSpec(label="warm-up", text="Hello", n_predict=4, counted=False),
    PromptSpec(label="short", text="Write one sentence about the sea."),
    PromptSpec(label="long", text=LONG_TEXT + "\nSummarise the steps above:"),
)

Checkpoint = Callable[[RequestMeasurement], None]


class LaunchRequest(BaseModel):
    """What to launch and where its results belong."""

    model_config = ConfigDict(frozen=True)

    profile_id: str
    conf_path: Path
    model: Path
    args: tuple[str, ...]
    kind: str = "test"


def measure_launch(
    request: LaunchRequest,
    *,
    machine: str,
    predictor: LaunchPredictor | None = None,
    server: Path | str | None = None,
    n_predict: int = 32,
    prompts: Sequence[PromptSpec] = PROMPTS,
    progress: Callable[[str], None] | None = None,
    checkpoint: Checkpoint | None = None,
    startup_timeout_s: float = 600.0,
    env: dict[str, str] | None = None,
) -> RunRecord:
    """Steps 1-5 for one launch. ``checkpoint`` sees each counted request as it is measured
    and may raise to stop early (the server is stopped either way)."""
    started = dt.datetime.now(dt.UTC)
    args, notes = measurable_args(request.args)
    log_path = _log_path(request, started)
    server_process = LlamaServer(
        request.model,
        args,
        binary=server,
        log_path=log_path,
        startup_timeout_s=startup_timeout_s,
        progress=progress,
        env=env,
    )
    base = {
        "kind": request.kind,
        "profile": request.profile_id,
        "conf": str(request.conf_path),
        "machine_id": machine,
        "started": started,
        "model": str(request.model),
        "args": tuple(args),
        "binary": str(server_process.binary),
        "log_path": str(log_path),
        "notes": tuple(notes),
    }
    measured: list[tuple[str, CompletionTimings]] = []
    try:
        with server_process:
            for spec in prompts:
                if progress is not None:
                    progress(f"measuring: {spec.label} prompt")
                result = complete(
                    server_process.url,
                    spec.text,
                    n_predict=spec.n_predict or n_predict,
                    timeout_s=startup_timeout_s,
                )
                if spec.counted:
                    measured.append((spec.label, result.timings))
                    if checkpoint is not None:
                        checkpoint(RequestMeasurement(label=spec.label, timings=result.timings))
    except ServerFailed as failure:
        report = failure.report or _parsed(log_path)
        return RunRecord(
            **base,
            **_predicted(predictor, report, args, []),
            ok=False,
            failure=str(failure),
            report=report,
        )
    except OperationFailed as failure:  # the server died or erred while answering
        report = _parsed(log_path)
        return RunRecord(
            **base,
            **_predicted(predictor, report, args, measured),
            ok=False,
            failure=f"{failure} ({report.failure_reason() or 'see the log'}; log: {log_path})",
            report=report,
        )
    report = _parsed(log_path)
    fields = _predicted(predictor, report, args, measured)
    return RunRecord(
        **base,
        **fields,
        ok=True,
        report=report,
        decode_tps=_decode_tps(fields["requests"]),
        prompt_tps=_prompt_tps(fields["requests"]),
    )


def _predicted(
    predictor: LaunchPredictor | None,
    report: RunReport,
    args: Sequence[str],
    measured: Sequence[tuple[str, CompletionTimings]],
) -> dict[str, object]:
    """Step 1 and 5: the prediction for these arguments on the build that ran (its CPU
    features, from its ``system_info`` line, decide repacking), and the priced requests."""
    requests = [RequestMeasurement(label=label, timings=t) for label, t in measured]
    if predictor is None:
        return {"requests": tuple(requests), "prediction": None, "prediction_error": None}
    build = predictor.for_build(report.system_info)
    try:
        memory = build.memory(args)
    except BadInput as error:
        return {"requests": tuple(requests), "prediction": None, "prediction_error": str(error)}
    priced = tuple(_priced(build, memory, request) for request in requests)
    return {
        "requests": priced,
        "prediction": _prediction(build, memory, priced),
        "prediction_error": None,
    }


def _log_path(request: LaunchRequest, started: dt.datetime) -> Path:
    stamp = started.strftime("%Y%m%d-%H%M%S-%f")
    return runs_folder(request.conf_path) / "logs" / f"{request.profile_id}-{stamp}.log"


def _parsed(log_path: Path) -> RunReport:
    try:
        return parse_server_log_file(log_path)
    except OSError:
        return RunReport(loaded=False)


def _priced(
    predictor: LaunchPredictor,
    memory: tuple[LaunchConfig, MemoryReport],
    measurement: RequestMeasurement,
) -> RequestMeasurement:
    """The measurement with the cost model's loads at its own depth and prompt length."""
    config, report = memory
    timings = measurement.timings
    decode = predictor.cost(config, report, depth=measurement.decode_depth)
    prefill = predictor.cost(config, report, depth=timings.cache_n, prompt_tokens=timings.prompt_n)
    loads = decode.loads.model_copy(update={"flops_per_token": prefill.loads.flops_per_token})
    return measurement.model_copy(update={"decode_loads": loads})


def _decode_tps(measured: Sequence[RequestMeasurement]) -> float | None:
    tokens = sum(m.timings.predicted_n for m in measured)
    seconds = sum(m.timings.predicted_ms for m in measured) / 1000
    return tokens / seconds if seconds > 0 else None


def _longest_prompt(measured: Sequence[RequestMeasurement]) -> RequestMeasurement | None:
    return max(measured, key=lambda m: m.timings.prompt_n, default=None)


def _prompt_tps(measured: Sequence[RequestMeasurement]) -> float | None:
    longest = _longest_prompt(measured)
    return longest.timings.prompt_per_second if longest else None


def _prediction(
    predictor: LaunchPredictor,
    memory: tuple[LaunchConfig, MemoryReport],
    measured: Sequence[RequestMeasurement],
) -> Prediction:
    """Memory from the launch's arguments; speed for the requests actually measured (the
    token-weighted decode depth, the longest prompt)."""
    config, report = memory
    compute = None
    if report.compute_modelled:
        # the log's compute lines are the startup sizes (the peak is what a plan holds)
        compute = {name: device.compute_startup or 0 for name, device in report.devices.items()}
    memory_bytes = {
        name: device.total - (device.compute or 0) for name, device in report.devices.items()
    }
    speed: dict[str, object] = {}
    if measured:
        tokens = sum(m.timings.predicted_n for m in measured) or 1
        depth = sum(m.decode_depth * m.timings.predicted_n for m in measured) // tokens
        longest = _longest_prompt(measured)
        assert longest is not None
        decode = predictor.cost(config, report, depth=depth)
        prefill = predictor.cost(config, report, prompt_tokens=longest.timings.prompt_n)
        speed = {
            "decode_tps": decode.estimate.decode_tps,
            "prefill_tps": prefill.estimate.prefill_tps,
            "splits_per_token": decode.estimate.splits_per_token,
            "rate_sources": decode.rate_sources,
        }
    return Prediction(memory_bytes=memory_bytes, compute_bytes=compute, notes=report.notes, **speed)


def trial_measure(
    base: LaunchRequest,
    *,
    machine: str,
    predictor: LaunchPredictor,
    server: Path | str | None = None,
    n_predict: int = 16,
    progress: Callable[[str], None] | None = None,
) -> Measure:
    """``solver.tune.tuner``'s measuring step: launch with a trial's arguments, let the pruner see
    the short request first, store the run under runs/ like ``fit test`` does. ``progress``
    hears each launch's steps."""

    def measure(args: list[str], report_partial: PartialReport) -> TrialMeasurement:
        seen: list[RequestMeasurement] = []

        def checkpoint(measurement: RequestMeasurement) -> None:
            seen.append(measurement)
            if len(seen) == 1:  # the short request: the pruner's early look
                t = measurement.timings
                report_partial(t.predicted_per_second, t.prompt_per_second)

        request = base.model_copy(update={"args": tuple(args)})
        record = measure_launch(
            request,
            machine=machine,
            predictor=predictor,
            server=server,
            n_predict=n_predict,
            progress=progress,
            checkpoint=checkpoint,
        )
        run_file = save_run(base.conf_path, record)
        return TrialMeasurement(
            ok=record.ok,
            decode_tps=record.decode_tps,
            prompt_tps=record.prompt_tps,
            failure=record.failure,
            run_file=str(run_file),
        )

    return measure


# --- what `fit test` and `fit tune` share ------------------------------------------------------


class MeasuringSetup(BaseModel):
    """A profile ready to be measured on this machine, with the predictor its runs compare to."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    launch: ProfileLaunch
    machine: str = Field(description="this machine's id (solver.cost.calibrate.machine_id)")
    predictor: LaunchPredictor
    coefficients_note: str = Field(description="which cost coefficients predict, for the user")

    def request(self, *, kind: str = "test", args: Sequence[str] | None = None) -> LaunchRequest:
        """A launch of the profile (with ``args`` instead of its own, when given)."""
        launch = self.launch
        return LaunchRequest(
            profile_id=launch.profile_id,
            conf_path=launch.conf_path,
            model=launch.model,
            args=tuple(launch.args if args is None else args),
            kind=kind,
        )


def prepare_measuring(conf_path: Path, profile_id: str, *, use_calibration: bool) -> MeasuringSetup:
    """Read the profile, detect this machine, and build the predictor from the model's
    inventory and this machine's coefficients (calibrated unless ``use_calibration`` is off)."""
    launch = load_profile(conf_path, profile_id)
    hardware, machine = this_machine()
    coefficients, note = coefficients_in_use(machine, use_calibration=use_calibration)
    predictor = LaunchPredictor(load_inventory(str(launch.model)), hardware, coefficients)
    return MeasuringSetup(
        launch=launch, machine=machine, predictor=predictor, coefficients_note=note
    )


def refuse_unless_fits(setup: MeasuringSetup) -> None:
    """``fit check`` before a launch: ``CannotFit`` naming each device the profile's arguments
    overfill on this machine and by how much (the solver's budgets, ``LaunchPredictor
    .verdict``), so a launch fit predicts cannot fit fails in seconds, not after the load.
    Arguments fit cannot model are left to the launch (its run records why)."""
    launch = setup.launch
    try:
        _, report = setup.predictor.memory(launch.args)
    except BadInput:
        return
    verdict = setup.predictor.verdict(report)
    if not verdict.fits:
        raise CannotFit(
            f"[{launch.profile_id}] does not fit this machine: {over_text(verdict)}; not "
            "launched (`fit check` shows every buffer, --force launches it anyway)"
        )


def measure_profile(
    setup: MeasuringSetup,
    *,
    server: Path | str | None = None,
    n_predict: int = 32,
    startup_timeout_s: float = 600.0,
    progress: Callable[[str], None] | None = None,
    force: bool = False,
) -> tuple[RunRecord, Path]:
    """``fit test``: measure one launch of the profile, save the run under runs/, and when it
    ran, set the profile's SPEED and mark it tested. Returns the record and the run file.
    A launch ``refuse_unless_fits`` refuses is not started (nothing is saved) unless
    ``force``."""
    if not force:
        refuse_unless_fits(setup)
    record = measure_launch(
        setup.request(),
        machine=setup.machine,
        predictor=setup.predictor,
        server=server,
        n_predict=n_predict,
        progress=progress,
        startup_timeout_s=startup_timeout_s,
    )
    conf_path = setup.launch.conf_path
    run_file = save_run(conf_path, record)
    if record.ok:
        mark_tested(conf_path, setup.launch.profile_id, record)
    return record, run_file
