"""Fit the cost model's coefficients to this machine's measured runs.

The model being fitted is ``solver.cost.model``'s, term for term:

    decode seconds per token = sum_d bytes_read[d] / bandwidth_d + splits * split_latency
                               + token_overhead
    prompt seconds per token = sum_d flops_per_token[d] / flops_d

Each measured ``/completion`` request is one row (``TokenSample``/``PrefillSample``: the cost
model's per-device loads for that request and the server's own timing). The unknowns are
1/bandwidth per device, the split latency and the per-token overhead, all non-negative, so the
fit is a non-negative least squares over the rows, on relative error (each row divided by its
measured time, so fast and slow runs count alike). The fixed costs per layer and per expert
block of the coefficients it starts from (the corpus fit, ``data/cost_coefficients.json``) are
kept, not refitted: a machine's runs cannot tell them from bandwidth.

The starting coefficients are a prior, not a guess to discard: every fitted unknown has a
pseudo-row pulling it toward its starting value, worth ``PRIOR_RUNS`` runs (each run's rows
together weigh one run, however many requests it made). One or two runs therefore move the
coefficients part of the way (a run that says "twice as slow" moves a bandwidth by about a
fifth); tens of runs outweigh the prior and the fit lands on what this machine measures.

Steps:

1. Group devices. Per device if the runs can tell them apart; otherwise one bandwidth for all
   host-backed devices (the CPU and RPC servers, which on a test machine run on the same
   cores and memory), one per GPU.
2. Pick the richest model the runs can determine on their own (the prior aside): per-device
   bandwidths + split latency + overhead; pooled bandwidths + split + overhead; pooled +
   overhead; pooled bandwidth alone.
   A model needs at least as many distinct runs as unknowns and a full-rank design; a model
   whose fit puts a bandwidth at infinity (coefficient 0) is not determined either. Parameters
   not fitted keep their previous values, and the result says which were fitted.
3. Solve the NNLS, with the prior's pseudo-rows, exactly by trying every active set (at most
   a handful of unknowns).
4. Prefill: one throughput per group from prompts of at least ``MIN_PREFILL_TOKENS`` (shorter
   ones measure latency, not throughput).
5. Report the mean relative error on the stored runs before (the coefficients given) and after.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import platform
import re
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from solver.cost.model import CostCoefficients, DeviceRates, device_rates
from solver.errors import OperationFailed
from solver.hardware.scenario import Hardware
from solver.quantities import CPU

MIN_PREFILL_TOKENS = 32
# The prior (the coefficients calibration starts from) weighs as much as this many runs.
PRIOR_RUNS = 4.0
CONDITION_FLOOR = 1e-2  # smallest / largest singular value of the normalised design
HOST_GROUP = "host"


class TokenSample(BaseModel):
    """One request's generation: ``tokens`` decoded in ``seconds`` with these loads."""

    model_config = ConfigDict(frozen=True)

    tokens: int
    seconds: float
    bytes_read: dict[str, float] = Field(description="per device, bytes per decoded token")
    splits: int
    layers: dict[str, int] = Field(default_factory=dict, description="layers run per device")
    moe_layers: dict[str, int] = Field(
        default_factory=dict, description="routed-expert blocks run per device"
    )


class PrefillSample(BaseModel):
    model_config = ConfigDict(frozen=True)

    tokens: int
    seconds: float
    flops_per_token: dict[str, float]


class RunSamples(BaseModel):
    """The rows of one launch (its requests share a placement)."""

    model_config = ConfigDict(frozen=True)

    run: str
    decode: tuple[TokenSample, ...] = ()
    prefill: tuple[PrefillSample, ...] = ()


class FitErrors(BaseModel):
    """Mean |estimate - measured| / measured of seconds per token over the rows."""

    model_config = ConfigDict(frozen=True)

    decode_before: float | None = None
    decode_after: float | None = None
    prefill_before: float | None = None
    prefill_after: float | None = None


class Calibration(BaseModel):
    """Fitted coefficients of one machine and how well they explain its runs."""

    model_config = ConfigDict(frozen=True)

    machine_id: str
    created: dt.datetime
    runs: int
    decode_rows: int
    prefill_rows: int
    grouping: dict[str, str] = Field(description="device -> the rate group it was fitted in")
    fitted: tuple[str, ...] = Field(description="parameters fitted; others kept their values")
    coefficients: CostCoefficients
    errors: FitErrors
    notes: tuple[str, ...] = ()

    def to_file_text(self) -> str:
        """The calibration file's text: strict JSON. JSON has no Infinity, so a rate that is
        infinite (the CPU's link to itself, an unbounded decode FLOP/s) is written as null,
        which ``from_file_data`` reads back as infinity."""
        return self.model_dump_json(indent=1) + "\n"

    @classmethod
    def from_file_data(cls, data: Any) -> Calibration:
        """A calibration file's parsed JSON: this version's (infinite rates as null) or an
        older one's (``Infinity``, which Python's ``json`` reads). Raises ``ValueError``."""
        return cls.model_validate(_nulls_as_infinity(cls, data))


def _nulls_as_infinity(model: type[BaseModel], data: Any) -> Any:
    """``data`` for ``model`` with a null restored to +infinity wherever the field is a plain
    ``float`` (which cannot be None); walks nested models, dicts, lists and tuples by the
    fields' annotations, so new coefficient fields need nothing here."""
    if not isinstance(data, dict):
        return data
    restored = dict(data)
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key in restored:
            restored[key] = _restore(field.annotation, restored[key])
    return restored


def _restore(annotation: Any, value: Any) -> Any:
    if value is None:
        return float("inf") if annotation is float else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _nulls_as_infinity(annotation, value)
    arguments = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is dict and isinstance(value, dict) and len(arguments) == 2:
        return {key: _restore(arguments[1], item) for key, item in value.items()}
    if origin in (list, tuple) and isinstance(value, list) and arguments:
        return [_restore(arguments[0], item) for item in value]
    if origin in (typing.Union, types.UnionType) and isinstance(value, dict):
        models = [a for a in arguments if isinstance(a, type) and issubclass(a, BaseModel)]
        return _nulls_as_infinity(models[0], value) if len(models) == 1 else value
    return value


class CalibrationRun(BaseModel):
    """What ``fit calibrate`` did: the fit, the runs it left out, and where it was saved."""

    model_config = ConfigDict(frozen=True)

    calibration: Calibration
    left_out: int = Field(description="runs of other machines or failed launches")
    skipped: tuple[str, ...] = Field(description="run files that could not be read, and why")
    saved_to: Path | None = Field(description="None when not saved (a dry run)")

    def to_json(self) -> dict[str, Any]:
        """The ``fit calibrate --json`` document: the calibration, ``saved_to``, ``skipped``."""
        payload = self.calibration.model_dump(mode="json")
        payload["saved_to"] = None if self.saved_to is None else str(self.saved_to)
        payload["skipped"] = list(self.skipped)
        return payload


# --- step 1 and 2: groups and candidate models ------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    grouping: dict[str, str]
    fit_split: bool
    fit_overhead: bool

    @property
    def groups(self) -> list[str]:
        return sorted(set(self.grouping.values()))

    @property
    def unknowns(self) -> int:
        return len(self.groups) + self.fit_split + self.fit_overhead


def _is_host_backed(device: str, hardware: Hardware) -> bool:
    return device == CPU or (device.startswith("RPC") and device not in hardware.device_names)


def candidate_models(devices: Sequence[str], hardware: Hardware) -> list[_Model]:
    """Models from richest to simplest (step 2)."""
    own = {d: d for d in devices}
    pooled = {d: HOST_GROUP if _is_host_backed(d, hardware) else d for d in devices}
    return [
        _Model(name="per-device bandwidth, split latency, overhead", grouping=own,
               fit_split=True, fit_overhead=True),
        _Model(name="pooled host bandwidth, split latency, overhead", grouping=pooled,
               fit_split=True, fit_overhead=True),
        _Model(name="pooled host bandwidth, overhead", grouping=pooled,
               fit_split=False, fit_overhead=True),
        _Model(name="pooled host bandwidth", grouping=pooled,
               fit_split=False, fit_overhead=False),
    ]  # fmt: skip


# --- step 3: non-negative least squares ---------------------------------------------------------


def nnls(matrix: np.ndarray, target: np.ndarray) -> np.ndarray:
    """min ||A x - b|| with x >= 0, exactly: the best non-negative least-squares solution over
    every set of free columns (KKT: the optimum is an unconstrained fit on its support)."""
    n = matrix.shape[1]
    scale = np.linalg.norm(matrix, axis=0)
    scale[scale == 0] = 1.0
    scaled = matrix / scale
    best, best_residual = np.zeros(n), float(np.linalg.norm(target))
    for size in range(1, n + 1):
        for support in itertools.combinations(range(n), size):
            columns = list(support)
            solution, *_ = np.linalg.lstsq(scaled[:, columns], target, rcond=None)
            if np.any(solution < 0):
                continue
            x = np.zeros(n)
            x[columns] = solution
            residual = float(np.linalg.norm(scaled @ x - target))
            if residual < best_residual - 1e-15:
                best, best_residual = x, residual
    return best / scale


def _fixed_seconds(row: TokenSample, rates: dict[str, DeviceRates]) -> float:
    """The prior's fixed costs of the layers and expert blocks a token runs (kept as they are)."""
    return sum(rates[d].layer_s * n for d, n in row.layers.items() if d in rates) + sum(
        rates[d].moe_layer_s * n for d, n in row.moe_layers.items() if d in rates
    )


def _decode_design(
    rows: Sequence[TokenSample],
    model: _Model,
    base: CostCoefficients,
    rates: dict[str, DeviceRates] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to relative error; fixed terms moved to the target."""
    groups = model.groups
    matrix, target = [], []
    for row in rows:
        measured = row.seconds / row.tokens
        features = [0.0] * len(groups)
        for device, n_bytes in row.bytes_read.items():
            features[groups.index(model.grouping[device])] += n_bytes
        fixed = _fixed_seconds(row, rates) if rates is not None else 0.0
        if model.fit_split:
            features.append(float(row.splits))
        else:
            fixed += row.splits * base.split_latency_s
        if model.fit_overhead:
            features.append(1.0)
        else:
            fixed += base.token_overhead_s
        matrix.append(np.array(features) / measured)
        target.append((measured - fixed) / measured)
    return np.array(matrix), np.array(target)


def _undetermined(runs: Sequence[RunSamples], model: _Model, base: CostCoefficients) -> str | None:
    """Why the runs cannot determine this model's unknowns, or None when they can."""
    with_rows = [run for run in runs if run.decode]
    if len(with_rows) < model.unknowns:
        return f"{len(with_rows)} run(s) for {model.unknowns} unknowns"
    rows = [row for run in with_rows for row in run.decode]
    matrix, _ = _decode_design(rows, model, base)
    scale = np.linalg.norm(matrix, axis=0)
    if np.any(scale == 0):
        return "a term is zero in every run (e.g. no graph splits, or a device never used)"
    singular = np.linalg.svd(matrix / scale, compute_uv=False)
    # nearly parallel columns (e.g. runs of one model all read the same bytes, so bandwidth
    # and overhead trade off freely) are not determined, however exact the arithmetic
    if singular[-1] < CONDITION_FLOOR * singular[0]:
        return "the runs cannot tell its terms apart (they vary together across the runs)"
    return None


# --- the fit --------------------------------------------------------------------------------------


def _host_rates(hardware: Hardware, base: CostCoefficients, devices: Sequence[str]) -> dict:
    """Rates before calibration: the rig's, and the host's for devices it does not list."""
    rates = device_rates(hardware, base)
    return {device: rates.get(device, rates[CPU]) for device in devices}


def decode_estimate(
    row: TokenSample, rates: dict[str, DeviceRates], coefficients: CostCoefficients
) -> float:
    """Seconds per token the cost model gives this row's loads."""
    seconds = sum(b / rates[d].bandwidth_bytes_per_s for d, b in row.bytes_read.items())
    seconds += _fixed_seconds(row, rates)
    return seconds + row.splits * coefficients.split_latency_s + coefficients.token_overhead_s


def _prior_design(
    runs: Sequence[RunSamples],
    model: _Model,
    base: CostCoefficients,
    before: dict[str, DeviceRates],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs' rows (each run weighing one) and the prior's pseudo-rows, row-weighted for
    least squares: (matrix, target, weights)."""
    rows, weights = [], []
    for run in runs:
        rows += run.decode
        weights += [1.0 / len(run.decode)] * len(run.decode)
    matrix, target = _decode_design(rows, model, base, before)
    prior = [
        float(np.mean([1.0 / before[d].bandwidth_bytes_per_s for d, g in model.grouping.items()
                       if g == group]))
        for group in model.groups
    ]  # fmt: skip
    prior += [base.split_latency_s] * model.fit_split + [base.token_overhead_s] * model.fit_overhead
    # A pseudo-run per unknown, as loaded as the runs' mean: its residual is the relative time
    # an average run would change by if the unknown moved from its prior value.
    typical = np.average(matrix, axis=0, weights=weights)
    prior_rows = np.diag(typical)
    matrix = np.vstack([matrix, prior_rows])
    target = np.concatenate([target, typical * np.array(prior)])
    weights += [PRIOR_RUNS] * len(prior)
    return matrix, target, np.array(weights)


def prefill_estimate(row: PrefillSample, rates: dict[str, DeviceRates]) -> float:
    return sum(f / rates[d].flops for d, f in row.flops_per_token.items())


def _mean_error(pairs: list[tuple[float, float]]) -> float | None:
    if not pairs:
        return None
    return float(np.mean([abs(estimate - measured) / measured for estimate, measured in pairs]))


def calibrate(
    runs: Sequence[RunSamples],
    hardware: Hardware,
    *,
    machine: str,
    base: CostCoefficients | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> Calibration:
    """Fit coefficients to ``runs`` (steps 1-5); ``base`` supplies what is not fitted."""
    base = base or CostCoefficients()
    decode_rows = [row for run in runs for row in run.decode]
    prefill_rows = [row for run in runs for row in run.prefill if row.tokens >= MIN_PREFILL_TOKENS]
    if not decode_rows:
        raise OperationFailed(
            "no measured runs to calibrate from: run `fit test PROFILE` (or `fit tune`) first"
        )
    devices = sorted({d for row in decode_rows for d in row.bytes_read}
                     | {d for row in prefill_rows for d in row.flops_per_token})  # fmt: skip
    before = _host_rates(hardware, base, devices)
    notes = []

    chosen, solution = None, None
    for model in candidate_models(devices, hardware):
        why = _undetermined(runs, model, base)
        if why is not None:
            notes.append(f"not fitted: {model.name}: {why}")
            continue
        matrix, target, weights = _prior_design(
            [run for run in runs if run.decode], model, base, before
        )
        root = np.sqrt(weights)
        x = nnls(matrix * root[:, None], target * root)
        if np.all(x[: len(model.groups)] > 0):
            chosen, solution = model, x
            break
        notes.append(f"{model.name}: a bandwidth came out unbounded; fitting fewer parameters")
    if chosen is None or solution is None:
        raise OperationFailed(
            f"{len(runs)} run(s) cannot determine even one bandwidth; measure more profiles"
        )

    groups = chosen.groups
    bandwidth = {group: 1.0 / solution[i] for i, group in enumerate(groups)}
    k = len(groups)
    split = float(solution[k]) if chosen.fit_split else base.split_latency_s
    overhead = (
        float(solution[k + chosen.fit_split]) if chosen.fit_overhead else base.token_overhead_s
    )

    flops = _fit_prefill(runs, chosen.grouping, before, notes)
    measured = dict(base.measured)
    for device in devices:
        group = chosen.grouping[device]
        # the prior's other terms of the device (fixed costs, peaks) stay as they were
        measured[device] = before[device].model_copy(
            update={
                "bandwidth_bytes_per_s": bandwidth[group],
                "flops": flops.get(group, before[device].flops),
                # a calibrated throughput covers every matmul, float weights included
                "float_flops": None if group in flops else before[device].float_flops,
            }
        )
    coefficients = base.model_copy(
        update={"split_latency_s": split, "token_overhead_s": overhead, "measured": measured}
    )
    fitted = [f"bandwidth[{group}]" for group in groups]
    fitted += ["split_latency_s"] * chosen.fit_split + ["token_overhead_s"] * chosen.fit_overhead
    fitted += [f"flops[{group}]" for group in sorted(flops)]

    errors = FitErrors(
        decode_before=_mean_error(
            [(decode_estimate(r, before, base), r.seconds / r.tokens) for r in decode_rows]
        ),
        decode_after=_mean_error(
            [
                (decode_estimate(r, measured, coefficients), r.seconds / r.tokens)
                for r in decode_rows
            ]
        ),
        prefill_before=_mean_error(
            [(prefill_estimate(r, before), r.seconds / r.tokens) for r in prefill_rows]
        ),
        prefill_after=_mean_error(
            [(prefill_estimate(r, measured), r.seconds / r.tokens) for r in prefill_rows]
        ),
    )
    return Calibration(
        machine_id=machine,
        created=now(),
        runs=len([run for run in runs if run.decode]),
        decode_rows=len(decode_rows),
        prefill_rows=len(prefill_rows),
        grouping=chosen.grouping,
        fitted=tuple(fitted),
        coefficients=coefficients,
        errors=errors,
        notes=(f"model: {chosen.name}", *notes),
    )


def _fit_prefill(
    runs: Sequence[RunSamples],
    grouping: dict[str, str],
    before: dict[str, DeviceRates],
    notes: list[str],
) -> dict[str, float]:
    """Step 4: FLOP/s per group from prompts long enough to measure throughput, pulled toward
    the prior's FLOP/s like the decode unknowns (each run weighs one, the prior PRIOR_RUNS)."""
    rows, weights = [], []
    for run in runs:
        long = [row for row in run.prefill if row.tokens >= MIN_PREFILL_TOKENS]
        rows += long
        weights += [1.0 / len(long)] * len(long) if long else []
    if not rows:
        notes.append(f"no prompt of {MIN_PREFILL_TOKENS}+ tokens: prefill throughput not fitted")
        return {}
    used = sorted({grouping[d] for row in rows for d in row.flops_per_token})
    matrix = np.array(
        [
            [sum(f for d, f in row.flops_per_token.items() if grouping[d] == g) for g in used]
            for row in rows
        ]
    )
    measured = np.array([row.seconds / row.tokens for row in rows])
    prior = [
        float(np.mean([1.0 / before[d].flops for d, g in grouping.items() if g == group]))
        for group in used
    ]
    relative = matrix / measured[:, None]
    typical = np.average(relative, axis=0, weights=weights)  # a pseudo-run, as for decode
    design = np.vstack([relative, np.diag(typical)])
    target = np.concatenate([np.ones(len(rows)), typical * np.array(prior)])
    root = np.sqrt(np.array(weights + [PRIOR_RUNS] * len(used)))
    x = nnls(design * root[:, None], target * root)
    return {group: 1.0 / x[i] for i, group in enumerate(used) if x[i] > 0}


# --- this machine ----------------------------------------------


def _cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
    except OSError:
        match = None
    return match.group(1).strip() if match else platform.processor() or platform.machine()


def machine_id(gpu_names: Sequence[str]) -> str:
    """``<hostname>-<hash of hostname, CPU model and GPU names>``: stable for one machine,
    different when its GPUs change."""
    host = platform.node() or "unknown-host"
    identity = "\n".join([host, _cpu_model(), *gpu_names])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    safe_host = re.sub(r"[^A-Za-z0-9._-]", "_", host)
    return f"{safe_host}-{digest}"
