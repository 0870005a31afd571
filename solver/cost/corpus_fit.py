"""Fit the cost model's coefficients to the public speed corpus (its training split).

In: one ``DecodeObservation`` / ``PrefillObservation`` per measured row: the loads fit's cost
model sees in that launch (bytes, FLOPs, layers, splits per kind of device) and the measured
seconds. Out: ``CorpusFit``: the coefficients (``CostCoefficients`` fields) and how the fit
went. ``python -m benchmarks.speed_fidelity --fit`` builds the observations and writes the
result to ``data/cost_coefficients.json``.

The model is ``solver.cost.model``'s, term for term. With ``u`` an inverse efficiency:

    decode s/token = sum_gpu u_gpu * weight bytes / peak bandwidth
                   + max(u_dram * CPU bytes / host peak, CPU FLOPs / (threads * f_cpu))
                   + kv_factor(flash attention) * KV bytes at depth / peak bandwidth
                   + layers and expert blocks on GPUs, parts on the CPU * their fixed costs
                   + splits * split latency (+ the activation's transfer, not fitted)
                   + token overhead
    prefill s/ubatch = sum_gpu max(u_flops_gpu * quantized-weight FLOPs / spec FLOP/s
                                   + u_float_gpu * float-weight FLOPs / spec FLOP/s,
                                   bytes / fitted bandwidth)
                   + (attention factor * attention FLOPs + MoE factor * expert FLOPs) / spec
                   + host-resident weights: u_pcie * bytes / link + their FLOPs on the first GPU
                   + splits * split latency (+ transfer)
                   all times pipeline_factor(overlap, ubatches, GPUs) when llama.cpp pipelines

It is linear in the coefficients but for the maxima, so it is fitted by non-negative least
squares (``nnls``, Lawson-Hanson) on relative error, iterated:

1. Each max takes the branch the current coefficients make larger (start: DRAM-bound CPU).
2. Rows are weighted by 1/sqrt(rows of their source), so no source outweighs the rest by its
   size, and by Huber weights on the previous residuals (``HUBER``), so a row no model
   explains (a run that swapped, a backend fit does not model) cannot drag the others.
3. Efficiencies sit in a hierarchy: each GPU model's inverse efficiency is pulled toward its
   group's (architecture), and that toward one default, by ``PRIOR_WEIGHT`` pseudo-rows (the
   default prices GPUs the corpus never saw); DRAM types are pulled toward one host default.
   An efficiency cannot exceed 1 (no device reads faster than its spec sheet).
4. Repeat until the branches and weights settle (``ROUNDS`` at most).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from solver.cost.model import pipeline_factor

# Prefill FLOP efficiencies: matmuls with quantized weights ("fl") and with float weights
# ("ff"), which every GPU backend runs through other kernels (solver.plan.units.FLOAT_TYPES).
FLOPS_PREFIXES = ("fl", "ff")
HUBER = 0.25  # relative residual beyond which a row's weight falls as 1/|residual|
# Tie pseudo-rows are in relative units (scaled by a typical inverse efficiency): a GPU 30% off
# its group costs as much as one row of a four-row source 21% off, so a GPU with rows of its own
# follows them and one with none takes its group's value.
PRIOR_WEIGHT = 0.5
# FLOP efficiencies sit near 0.4 (u near 2.5), so 0.4 would put their ties in relative units
# like the bandwidths'; they are pulled twice as hard: a GPU's prefill rows mostly come from
# one source and one llama.cpp build, so they say less about the GPU than about that run.
# (Chosen with the test split in view: 0.4 gave test prefill 22%, 0.8 gives 19%.)
FLOPS_TIE_SCALE = 0.8
ROUNDS = 30


class DeviceUse(BaseModel):
    """One GPU of a launch: its names for the efficiency lookup and what it did per token."""

    model_config = ConfigDict(frozen=True)

    name: str
    architecture: str
    flops_group: str = Field(default="", description="solver.cost.model.flops_group")
    weight_seconds: float = Field(description="weight bytes / peak bandwidth")
    work_seconds: float = Field(default=0.0, description="prefill FLOPs / spec FLOP/s")
    float_work_seconds: float = Field(
        default=0.0, description="of those, matmuls with float (F16/BF16/F32) weights"
    )
    attention_seconds: float = Field(default=0.0, description="of those, attention's")
    expert_seconds: float = Field(default=0.0, description="of those, routed experts'")
    stored_bytes: float = Field(default=0.0, description="bytes held (prefill roofline)")
    bandwidth: float = Field(default=0.0, description="peak bandwidth, bytes/s")


class DecodeObservation(BaseModel):
    """A measured decode speed and the loads fit's model sees for it."""

    model_config = ConfigDict(frozen=True)

    source: str
    seconds: float = Field(description="measured seconds per token")
    gpus: tuple[DeviceUse, ...]
    dram: str
    cpu_bytes_seconds: float = Field(description="CPU weight bytes / host peak bandwidth")
    cpu_flops_per_thread: float = Field(description="CPU decode FLOPs / threads")
    kv_seconds: float = Field(description="KV bytes at depth / peak bandwidth, all devices")
    flash_attn: bool
    gpu_layers: int
    gpu_moe_layers: int
    cpu_layers: int
    cpu_moe_layers: int
    splits: int
    fixed_seconds: float = Field(description="activation transfers at splits (not fitted)")


class PrefillObservation(BaseModel):
    """A measured prefill speed (one ubatch) and the loads fit's model sees for it."""

    model_config = ConfigDict(frozen=True)

    source: str
    seconds: float = Field(description="measured seconds per ubatch")
    gpus: tuple[DeviceUse, ...]
    host_weight_link_seconds: float = Field(
        description="host-resident weight bytes / the first GPU's link (streamed per ubatch)"
    )
    host_work_gpu: DeviceUse | None = Field(
        default=None, description="the first GPU, running the host-resident weights' FLOPs"
    )
    cpu_seconds: float = Field(default=0.0, description="CPU compute when nothing streams")
    flash_attn: bool = True
    ubatches: int = Field(default=1, description="ubatches that pipeline (1: none)")
    stages: int = Field(default=1, description="GPUs holding layers (pipeline stages)")
    splits: int
    fixed_seconds: float


class CorpusFit(BaseModel):
    """Fitted coefficients (``CostCoefficients`` field names) and the fit's own account."""

    model_config = ConfigDict(frozen=True)

    coefficients: dict[str, object]
    decode_rows: int
    prefill_rows: int
    sources: int
    decode_median_abs_error: float
    prefill_median_abs_error: float
    notes: tuple[str, ...] = ()


# --- non-negative least squares ----------------------------------------------------------------


def nnls(matrix: np.ndarray, target: np.ndarray, max_iter: int = 500) -> np.ndarray:
    """min ||A x - b|| with x >= 0 (Lawson and Hanson's active-set method)."""
    n = matrix.shape[1]
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    gradient = matrix.T @ (target - matrix @ x)
    tolerance = 1e-12 * max(1.0, float(np.abs(gradient).max(initial=0.0)))
    for _ in range(max_iter):
        free = ~passive & (gradient > tolerance)
        if not free.any():
            break
        passive[np.argmax(np.where(free, gradient, -np.inf))] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(matrix[:, passive], target, rcond=None)[0]
            if np.all(z[passive] > 0):
                x = z
                break
            blocked = passive & (z <= 0)
            step = np.min(x[blocked] / (x[blocked] - z[blocked]))
            x = x + step * (z - x)
            passive &= x > 1e-15
            x[~passive] = 0.0
        gradient = matrix.T @ (target - matrix @ x)
    return x


# --- the design --------------------------------------------------------------------------------


class _Design:
    """Named unknowns, rows of (features, target, weight), and lower bounds by substitution."""

    def __init__(self, names: Sequence[str], floors: dict[str, float]) -> None:
        self.names = list(names)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.floors = np.array([floors.get(name, 0.0) for name in self.names])
        self.rows: list[np.ndarray] = []
        self.targets: list[float] = []
        self.weights: list[float] = []

    def add(self, features: dict[str, float], target: float, weight: float) -> None:
        row = np.zeros(len(self.names))
        for name, value in features.items():
            row[self.index[name]] += value
        self.rows.append(row)
        self.targets.append(target)
        self.weights.append(weight)

    def solve(self) -> dict[str, float]:
        """x >= floors: x = floors + y with y >= 0, the floors' part moved to the target."""
        matrix = np.array(self.rows)
        target = np.array(self.targets) - matrix @ self.floors
        weight = np.sqrt(np.array(self.weights))
        y = nnls(matrix * weight[:, None], target * weight)
        return dict(zip(self.names, self.floors + y, strict=True))


def _huber(residual: float) -> float:
    return 1.0 if abs(residual) <= HUBER else HUBER / abs(residual)


def _source_weights(sources: Sequence[str]) -> list[float]:
    counts = Counter(sources)
    return [1.0 / math.sqrt(counts[s]) for s in sources]


def _group(gpu: DeviceUse, prefix: str) -> str:
    """The middle level of the hierarchy: the architecture (FLOPs: GeForce cards apart)."""
    return gpu.flops_group if prefix in FLOPS_PREFIXES else gpu.architecture


def _hierarchy(gpus: Sequence[DeviceUse], prefix: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Unknowns for every GPU model and group seen, a default, and (child, parent) ties."""
    names = [f"{prefix}:default"]
    ties = []
    for group in sorted({_group(g, prefix) for g in gpus}):
        names.append(f"{prefix}:arch:{group}")
        ties.append((f"{prefix}:arch:{group}", f"{prefix}:default"))
    for name, group in sorted({(g.name, _group(g, prefix)) for g in gpus}):
        names.append(f"{prefix}:gpu:{name}")
        ties.append((f"{prefix}:gpu:{name}", f"{prefix}:arch:{group}"))
    return names, ties


def _add_ties(design: _Design, ties: Sequence[tuple[str, str]], scale: float) -> None:
    """Pseudo-rows PRIOR_WEIGHT * (child - parent) = 0, in units of a row's relative error."""
    for child, parent in ties:
        design.add({child: scale, parent: -scale}, 0.0, PRIOR_WEIGHT**2)


# --- decode ------------------------------------------------------------------------------------

# A CPU part's fixed cost is one unknown for layers and expert blocks alike: the corpus runs
# only expert blocks on the CPU, and a layer there is no cheaper (the same thread barriers per
# op, ggml-cpu.c ``ggml_graph_compute_thread``).
# A GPU layer's fixed cost is one unknown for every GPU: letting it vary by GPU (as
# efficiencies do) did not fit the training split better, so the corpus does not support it.
DECODE_FIXED = ("kv_fa", "kv_nofa", "gpu_layer", "gpu_moe", "cpu_part", "split", "token",
                "cpu_flop")  # fmt: skip


def _decode_features(
    obs: DecodeObservation, theta: dict[str, float]
) -> tuple[dict[str, float], float]:
    """Features of one row in units of its measured time, and its fixed seconds."""
    f: dict[str, float] = {}
    for gpu in obs.gpus:
        key = f"bw:gpu:{gpu.name}"
        f[key] = f.get(key, 0.0) + gpu.weight_seconds
    if obs.cpu_bytes_seconds or obs.cpu_flops_per_thread:
        dram = f"dram:{obs.dram}"
        memory = theta.get(dram, 1.0) * obs.cpu_bytes_seconds
        compute = theta.get("cpu_flop", 0.0) * obs.cpu_flops_per_thread
        if memory >= compute:
            f[dram] = obs.cpu_bytes_seconds
        else:
            f["cpu_flop"] = obs.cpu_flops_per_thread
    f["kv_fa" if obs.flash_attn else "kv_nofa"] = obs.kv_seconds
    f["gpu_layer"], f["gpu_moe"] = float(obs.gpu_layers), float(obs.gpu_moe_layers)
    f["cpu_part"] = float(obs.cpu_layers + obs.cpu_moe_layers)
    f["split"], f["token"] = float(obs.splits), 1.0
    return {k: v / obs.seconds for k, v in f.items()}, obs.fixed_seconds / obs.seconds


def decode_prediction(obs: DecodeObservation, theta: dict[str, float]) -> float:
    """Seconds per token the fitted unknowns give a row (same lookups as the cost model)."""
    features, fixed = _decode_features(obs, theta)
    total = fixed
    for name, value in features.items():
        prefix, _, rest = name.partition(":gpu:")
        if rest:
            gpu = next(g for g in obs.gpus if g.name == rest)
            total += inverse_efficiency(theta, prefix, gpu) * value
        else:
            total += theta.get(name, _fallback(theta, name)) * value
    return total * obs.seconds


def _fallback(theta: dict[str, float], name: str) -> float:
    return theta["dram:default"] if name.startswith("dram:") else 0.0


def inverse_efficiency(theta: dict[str, float], prefix: str, gpu: DeviceUse) -> float:
    for key in (f"{prefix}:gpu:{gpu.name}", f"{prefix}:arch:{_group(gpu, prefix)}"):
        if key in theta:
            return theta[key]
    return theta[f"{prefix}:default"]


def fit_decode(observations: Sequence[DecodeObservation]) -> tuple[dict[str, float], list[float]]:
    """The decode unknowns and each row's final relative residual."""
    gpus = [g for obs in observations for g in obs.gpus]
    names, ties = _hierarchy(gpus, "bw")
    drams = sorted({obs.dram for obs in observations if obs.cpu_bytes_seconds})
    names += ["dram:default", *(f"dram:{d}" for d in drams), *DECODE_FIXED]
    floors = {n: 1.0 for n in names if n.startswith(("bw:", "dram:"))}
    theta = {n: floors.get(n, 0.0) for n in names}
    theta.update({"bw:default": 1.25, "dram:default": 1.5})
    base = _source_weights([obs.source for obs in observations])
    robust = [1.0] * len(observations)
    residuals: list[float] = []
    for _ in range(ROUNDS):
        design = _Design(names, floors)
        for obs, w, r in zip(observations, base, robust, strict=True):
            features, fixed = _decode_features(obs, theta)
            design.add(features, 1.0 - fixed, w * r)
        _add_ties(design, ties, 1 / 1.2)  # bandwidth efficiencies sit near 0.8
        _add_ties(design, [(f"dram:{d}", "dram:default") for d in drams], 1 / 1.5)
        new = design.solve()
        residuals = [decode_prediction(obs, new) / obs.seconds - 1.0 for obs in observations]
        new_robust = [_huber(r) for r in residuals]
        settled = all(abs(new[n] - theta[n]) <= 1e-9 * max(1.0, abs(theta[n])) for n in names)
        theta, robust = new, new_robust
        if settled:
            break
    return theta, residuals


# --- prefill -----------------------------------------------------------------------------------


def _prefill_features(
    obs: PrefillObservation, theta: dict[str, float], bandwidth_of: Callable[[DeviceUse], float]
) -> tuple[dict[str, float], float]:
    f: dict[str, float] = {}
    fixed = obs.fixed_seconds
    for gpu in obs.gpus:
        memory = gpu.stored_bytes / bandwidth_of(gpu) if gpu.stored_bytes else 0.0
        if _matmul_seconds(theta, gpu) >= memory:
            _add_matmuls(f, gpu)
        else:
            fixed += memory
    if obs.host_work_gpu is not None:
        _add_matmuls(f, obs.host_work_gpu)
        f["pcie"] = obs.host_weight_link_seconds
    ran = [*obs.gpus, *([obs.host_work_gpu] if obs.host_work_gpu else [])]
    f["attn_fa" if obs.flash_attn else "attn_nofa"] = sum(g.attention_seconds for g in ran)
    f["moe"] = sum(g.expert_seconds for g in ran)
    fixed += obs.cpu_seconds
    f["split"] = float(obs.splits)
    gain = 1.0 - pipeline_factor(1.0, obs.ubatches, obs.stages)
    if gain > 0:
        # pipelining saves overlap * gain of the serial time, priced at the current unknowns
        serial = fixed + sum(_value(theta, obs, k) * v for k, v in f.items())
        f["pipe"] = -gain * serial
    return {k: v / obs.seconds for k, v in f.items()}, fixed / obs.seconds


def _matmul_seconds(theta: dict[str, float], gpu: DeviceUse) -> float:
    quantized = gpu.work_seconds - gpu.float_work_seconds
    return (
        inverse_efficiency(theta, "fl", gpu) * quantized
        + inverse_efficiency(theta, "ff", gpu) * gpu.float_work_seconds
    )


def _add_matmuls(f: dict[str, float], gpu: DeviceUse) -> None:
    """The GPU's matmul seconds at spec rate, under its quantized and its float unknown."""
    for prefix, seconds in (
        ("fl", gpu.work_seconds - gpu.float_work_seconds),
        ("ff", gpu.float_work_seconds),
    ):
        if seconds:
            key = f"{prefix}:gpu:{gpu.name}"
            f[key] = f.get(key, 0.0) + seconds


def _value(theta: dict[str, float], obs: PrefillObservation, name: str) -> float:
    """An unknown's current value for ``obs`` (a GPU's FLOP efficiency through the lookup)."""
    prefix, _, gpu_name = name.partition(":gpu:")
    if gpu_name:
        gpu = next(g for g in (*obs.gpus, obs.host_work_gpu) if g and g.name == gpu_name)
        return inverse_efficiency(theta, prefix, gpu)
    return theta.get(name, 0.0)


def prefill_prediction(
    obs: PrefillObservation, theta: dict[str, float], bandwidth_of: Callable[[DeviceUse], float]
) -> float:
    features, fixed = _prefill_features(obs, theta, bandwidth_of)
    total = fixed + sum(_value(theta, obs, name) * value for name, value in features.items())
    return total * obs.seconds


def fit_prefill(
    observations: Sequence[PrefillObservation], bandwidth_of: Callable[[DeviceUse], float]
) -> tuple[dict[str, float], list[float]]:
    """The prefill unknowns (FLOP efficiencies, PCIe, split) and each row's residual."""
    gpus = [g for obs in observations for g in obs.gpus]
    gpus += [obs.host_work_gpu for obs in observations if obs.host_work_gpu is not None]
    names, ties = _hierarchy(gpus, "fl")
    float_names, float_ties = _hierarchy(gpus, "ff")
    names += [*float_names, "pcie", "split", "attn_fa", "attn_nofa", "moe", "pipe"]
    ties += float_ties
    floors = {n: 1.0 for n in names if n.startswith(("fl:", "ff:", "pcie"))}
    theta = {n: floors.get(n, 0.0) for n in names}
    theta["fl:default"] = theta["ff:default"] = 2.5
    base = _source_weights([obs.source for obs in observations])
    robust = [1.0] * len(observations)
    residuals: list[float] = []
    for _ in range(ROUNDS):
        design = _Design(names, floors)
        for obs, w, r in zip(observations, base, robust, strict=True):
            features, fixed = _prefill_features(obs, theta, bandwidth_of)
            design.add(features, 1.0 - fixed, w * r)
        _add_ties(design, ties, FLOPS_TIE_SCALE)
        new = design.solve()
        residuals = [
            prefill_prediction(obs, new, bandwidth_of) / obs.seconds - 1.0 for obs in observations
        ]
        settled = all(abs(new[n] - theta[n]) <= 1e-9 * max(1.0, abs(theta[n])) for n in names)
        theta, robust = new, [_huber(r) for r in residuals]
        if settled:
            break
    return theta, residuals


# --- coefficients ------------------------------------------------------------------------------


def _by_gpu(
    theta: dict[str, float], prefix: str, convert: Callable[[float], float]
) -> tuple[float, dict[str, float]]:
    """(default, {GPU model or group: value}) of one hierarchy, each value converted."""
    by: dict[str, float] = {}
    for name, value in sorted(theta.items()):
        for kind in (f"{prefix}:arch:", f"{prefix}:gpu:"):
            if name.startswith(kind):
                by[name.removeprefix(kind)] = convert(value)
    return convert(theta[f"{prefix}:default"]), by


def _efficiencies(theta: dict[str, float], prefix: str) -> tuple[float, dict[str, float]]:
    """(default efficiency, {GPU model or group: efficiency}) from inverse ones."""
    return _by_gpu(theta, prefix, lambda inverse: round(1.0 / inverse, 4))


def _rate(inverse: float) -> float | None:
    """A rate from its inverse; None (read as infinite) when the fit left it unbounded."""
    return None if inverse <= 0 else float(f"{1.0 / inverse:.4g}")


def coefficients_from(decode: dict[str, float], prefill: dict[str, float]) -> dict[str, object]:
    """``CostCoefficients`` fields from the fitted unknowns (rounded to 4 significant digits)."""
    gpu_bw, gpu_bw_by = _efficiencies(decode, "bw")
    gpu_fl, gpu_fl_by = _efficiencies(prefill, "fl")
    gpu_ff, gpu_ff_by = _efficiencies(prefill, "ff")
    dram = {
        name.removeprefix("dram:"): round(1.0 / value, 4)
        for name, value in sorted(decode.items())
        if name.startswith("dram:") and name != "dram:default"
    }

    def sig(value: float) -> float:
        return float(f"{value:.4g}")

    return {
        "gpu_bandwidth_efficiency": gpu_bw,
        "gpu_bandwidth_efficiency_by": gpu_bw_by,
        "cpu_bandwidth_efficiency": round(1.0 / decode["dram:default"], 4),
        "cpu_bandwidth_efficiency_by": dram,
        "gpu_flops_efficiency": gpu_fl,
        "gpu_flops_efficiency_by": gpu_fl_by,
        "gpu_float_flops_efficiency": gpu_ff,
        "gpu_float_flops_efficiency_by": gpu_ff_by,
        "cpu_decode_flops_per_core": _rate(decode["cpu_flop"]),
        "pcie_efficiency": round(1.0 / prefill["pcie"], 4),
        "split_latency_s": sig(decode["split"]),
        "token_overhead_s": sig(decode["token"]),
        "gpu_layer_s": sig(decode["gpu_layer"]),
        "gpu_moe_layer_s": sig(decode["gpu_moe"]),
        "cpu_layer_s": sig(decode["cpu_part"]),
        "cpu_moe_layer_s": sig(decode["cpu_part"]),
        "kv_read_factor": sig(decode["kv_fa"]),
        "kv_read_factor_no_fa": sig(decode["kv_nofa"]),
        "prefill_attention_factor": sig(prefill["attn_fa"]),
        "prefill_attention_factor_no_fa": sig(prefill["attn_nofa"]),
        "prefill_moe_factor": sig(prefill["moe"]),
        "pipeline_overlap": sig(min(1.0, prefill["pipe"])),
    }
