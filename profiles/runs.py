"""Measured launches, stored as JSON under the workspace's ``runs/`` folder.

A ``RunRecord`` is one launch of llama-server by ``fit test`` or a ``fit tune`` trial: the
exact arguments, the parsed log (``RunReport``), the server's own timings per prompt, what fit
predicted beforehand, and the cost model's per-device loads for each measured request — the
features ``solver.cost.calibrate`` regresses measured time against. Records name the machine they
ran on, so calibration only ever uses this machine's runs.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from profiles.models_conf import write_atomic
from profiles.server import CompletionTimings
from profiles.server_log import RunReport
from solver.cost.calibrate import PrefillSample, RunSamples, TokenSample
from solver.cost.model import DeviceLoads

RUNS_FOLDER = "runs"
RECORD_VERSION = 1


class RequestMeasurement(BaseModel):
    """One ``/completion`` request: its server timings and the cost model's loads for it."""

    model_config = ConfigDict(frozen=True)

    label: str
    timings: CompletionTimings
    decode_loads: DeviceLoads | None = Field(
        default=None, description="per-device loads at this request's decoding depth"
    )

    @property
    def decode_depth(self) -> int:
        """Positions in the cache, on average, while this request generated."""
        return self.timings.prompt_n + self.timings.cache_n + self.timings.predicted_n // 2


class Prediction(BaseModel):
    """What fit predicted for the launch before (memory) and for the measured load (speed)."""

    model_config = ConfigDict(frozen=True)

    memory_bytes: dict[str, int] = Field(description="per device, compute buffers excluded")
    compute_bytes: dict[str, int] | None = Field(description="None when not modelled")
    decode_tps: float | None = None
    prefill_tps: float | None = None
    splits_per_token: int | None = None
    rate_sources: dict[str, str] = Field(default_factory=dict)
    notes: tuple[str, ...] = ()


class RunRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int = RECORD_VERSION
    kind: str = Field(description="'test' or 'tune'")
    profile: str
    conf: str
    machine_id: str
    started: dt.datetime
    model: str
    args: tuple[str, ...] = Field(description="llama-server arguments after -m MODEL")
    binary: str
    log_path: str
    ok: bool
    failure: str | None = None
    requests: tuple[RequestMeasurement, ...] = ()
    decode_tps: float | None = Field(default=None, description="all generated / their time")
    prompt_tps: float | None = Field(default=None, description="of the longest prompt")
    prediction: Prediction | None = None
    prediction_error: str | None = Field(default=None, description="why nothing was predicted")
    report: RunReport | None = None
    notes: tuple[str, ...] = ()

    def samples(self) -> RunSamples:
        """This run's rows for calibration (only requests with loads and time)."""
        decode, prefill = [], []
        for request in self.requests:
            loads, t = request.decode_loads, request.timings
            if loads is None:
                continue
            if t.predicted_n > 0 and t.predicted_ms > 0:
                decode.append(
                    TokenSample(
                        tokens=t.predicted_n,
                        seconds=t.predicted_ms / 1000,
                        bytes_read=loads.bytes_read,
                        splits=loads.splits,
                        layers=loads.layers,
                        moe_layers=loads.moe_layers,
                    )
                )
            if t.prompt_n > 0 and t.prompt_ms > 0:
                prefill.append(
                    PrefillSample(
                        tokens=t.prompt_n,
                        seconds=t.prompt_ms / 1000,
                        flops_per_token=loads.flops_per_token,
                    )
                )
        return RunSamples(run=self.run_id, decode=tuple(decode), prefill=tuple(prefill))

    @property
    def run_id(self) -> str:
        return f"{self.profile}@{self.started.strftime('%Y%m%d-%H%M%S.%f')}"


# What a measurement can hold: llama-server times to the microsecond, and a token reads or
# computes at most 1e18 bytes or FLOPs. Beyond these a record is not a measurement, and its
# rows would overflow calibration's least squares (issue 15's fuzz suite: predicted_ms = 2e-300
# ended `fit calibrate` in an SVD traceback).
MEASURED_MS = (1e-3, 1e9)
MEASURED_TOKENS = 10**9
MEASURED_LOAD = 1e18


def implausible(record: RunRecord) -> str | None:
    """Why the record's numbers cannot be a measurement, or None."""
    for request in record.requests:
        timings, loads = request.timings, request.decode_loads
        where = f"request {request.label!r}"
        for name in ("prompt_ms", "predicted_ms"):
            value = getattr(timings, name)
            if value and not MEASURED_MS[0] <= value <= MEASURED_MS[1]:
                return f"{where}: {name} = {value:g} is outside {MEASURED_MS}"
        for name in ("prompt_n", "predicted_n", "cache_n"):
            if not 0 <= getattr(timings, name) <= MEASURED_TOKENS:
                return f"{where}: {name} = {getattr(timings, name)} is out of range"
        if loads is not None:
            values = [*loads.bytes_read.values(), *loads.flops_per_token.values(), loads.splits]
            if not all(0 <= value <= MEASURED_LOAD for value in values):
                return f"{where}: a load is negative, not a number or above {MEASURED_LOAD:g}"
    return None


def runs_folder(conf_path: Path) -> Path:
    return conf_path.resolve().parent / RUNS_FOLDER


def save_run(conf_path: Path, record: RunRecord) -> Path:
    """Write the record atomically as ``runs/<profile>-<time>-<kind>.json``."""
    stamp = record.started.strftime("%Y%m%d-%H%M%S-%f")
    path = runs_folder(conf_path) / f"{record.profile}-{stamp}-{record.kind}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, record.model_dump_json(indent=1, by_alias=True) + "\n", backup=False)
    return path


def load_runs(folders: Iterable[Path]) -> tuple[list[RunRecord], list[str]]:
    """Every readable record in the folders, oldest first, and a line per file skipped."""
    records, skipped = [], []
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            try:
                record = RunRecord.model_validate(json.loads(path.read_text()))
            # RecursionError: json's decoder on nesting deeper than the interpreter's stack
            except (OSError, ValueError, ValidationError, RecursionError) as error:
                skipped.append(f"{path}: not a run record ({str(error).splitlines()[0]})")
                continue
            problem = implausible(record)
            if problem is None:
                records.append(record)
            else:
                skipped.append(f"{path}: not a measurement ({problem})")
    records.sort(key=lambda record: _aware(record.started))
    return records, skipped


def _aware(moment: dt.datetime) -> dt.datetime:
    """A naive time (what fit writes) as UTC, so that records with an offset (or a number,
    which pydantic reads as a UTC time) sort among the others instead of failing to compare."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
