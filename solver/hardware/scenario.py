"""The hardware a placement runs on: GPUs, host memory, the links between them.

A ``Hardware`` is what the memory limits and the cost model read. It comes from a scenario
file in ``data/hardware/`` (or one a user writes for a what-if) or from detection on this
machine (``solver.hardware.detect``). Units are in the field names: bytes, bytes/s, FLOP/s.

Three things live here: the models, the GPU spec table (``data/gpus.csv``, looked up by name
or NVML alias) and the scenario format (``data/hardware/*.toml``, described for users in
``data/hardware/README.md``). Every problem with a table row or a scenario file is a
``BadInput`` that names the file and the row or key.
"""

from __future__ import annotations

import math
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from solver.datafiles import data_path
from solver.errors import BadInput
from solver.quantities import GB, GIB


class GpuSpec(BaseModel):
    """One row of the GPU spec table ``data/gpus.csv``."""

    model_config = ConfigDict(frozen=True)

    name: str
    vram_bytes: int
    bandwidth_bytes_per_s: float = Field(description="peak memory bandwidth")
    fp16_flops: float = Field(description="dense FP16 tensor throughput, FP32 accumulate")
    pcie_gen: int = Field(description="0 for an integrated GPU (no PCIe link)")
    pcie_lanes: int = Field(description="0 for an integrated GPU")
    source: str = ""
    aliases: tuple[str, ...] = Field(default=(), description="other names, e.g. NVML's")
    architecture: str = ""
    fp16_basis: str = Field(default="", description="'published' or how it was derived")
    checked_via: str = Field(default="", description="pages the figures were checked on")
    note: str = ""


class NetworkLink(BaseModel):
    """The network between llama-server and a ggml-rpc-server: every byte an RPC device sends
    or receives (activations at splits, weights while loading) crosses it, and every command
    that waits for an answer costs a round trip."""

    model_config = ConfigDict(frozen=True)

    bytes_per_s: float = Field(description="one-direction payload rate")
    round_trip_us: float = Field(description="round-trip time of one small request, µs")

    @property
    def round_trip_s(self) -> float:
        return self.round_trip_us / 1e6


class Gpu(BaseModel):
    """A GPU in a rig, as llama.cpp numbers it: ``CUDA0, CUDA1...`` for local GPUs,
    ``RPC0, RPC1...`` for devices reached over ggml-rpc (in ``--rpc`` order)."""

    model_config = ConfigDict(frozen=True)

    device: str = Field(description="llama.cpp device name, e.g. CUDA0")
    spec: GpuSpec
    free_bytes: int | None = Field(default=None, description="free VRAM when detected")
    pcie_gen: int = Field(description="PCIe generation of the slot actually used")
    pcie_lanes: int = Field(description="lanes of the slot actually used")
    rpc_endpoint: str | None = Field(
        default=None,
        description="host:port of a ggml-rpc-server when this device is reached over RPC "
        "(llama.cpp then names it RPC<n> and its buffers RPC0[host:port])",
    )
    network: NetworkLink | None = Field(
        default=None, description="the link to an RPC device; None for a local GPU"
    )

    @property
    def memory_bytes(self) -> int:
        return self.spec.vram_bytes if self.free_bytes is None else self.free_bytes

    @property
    def integrated(self) -> bool:
        """An integrated GPU (Apple silicon, Strix Halo, GB10) shares the host's memory."""
        return self.pcie_gen == 0 and self.network is None

    @property
    def link_bytes_per_s(self) -> float:
        """Usable host<->device bandwidth of the slot (one direction). An integrated GPU has no
        slot: a host<->device copy is a copy within the one memory, at its bandwidth. An RPC
        device's link is the network to its server."""
        if self.network is not None:
            return self.network.bytes_per_s
        if self.integrated:
            return self.spec.bandwidth_bytes_per_s
        return pcie_bytes_per_s(self.pcie_gen, self.pcie_lanes)


class Host(BaseModel):
    """System RAM and CPU: where tensors not offloaded live and run."""

    model_config = ConfigDict(frozen=True)

    ram_bytes: int
    available_bytes: int | None = None
    bandwidth_bytes_per_s: float = Field(description="effective DRAM bandwidth")
    cores: int
    threads: int | None = None
    memory_kind: str = Field(default="", description="e.g. DDR5-6000 dual channel")
    dram_type: str = Field(default="", description="e.g. DDR5, as a scenario names it")
    dram_mt_per_s: int | None = Field(default=None, description="DRAM transfer rate, MT/s")
    dram_channels: int | None = Field(default=None, description="populated 64-bit channels")
    bandwidth_source: str = Field(
        default="", description="where bandwidth_bytes_per_s came from: spec, measured, default"
    )


class Hardware(BaseModel):
    """A rig: GPUs in llama.cpp device order, plus the host."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    gpus: tuple[Gpu, ...] = ()
    host: Host
    notes: tuple[str, ...] = Field(default=(), description="what detection could not tell")
    price_usd: float | None = Field(
        default=None, description="what the rig costs, as its scenario states (for what-ifs)"
    )

    @property
    def device_names(self) -> list[str]:
        """Devices in placement order: CPU first, then GPUs as llama.cpp numbers them."""
        return ["CPU", *(gpu.device for gpu in self.gpus)]


# PCIe payload bandwidth per lane in bytes/s after encoding overhead (gen 1-2: 8b/10b,
# gen 3+: 128b/130b); usable throughput is lower still, which calibration measures.
_PCIE_LANE_BYTES_PER_S = {
    1: 0.25e9,
    2: 0.5e9,
    3: 0.985e9,
    4: 1.969e9,
    5: 3.938e9,
    6: 7.563e9,
}


def pcie_bytes_per_s(gen: int, lanes: int) -> float:
    """Theoretical one-direction PCIe bandwidth of a link."""
    return _PCIE_LANE_BYTES_PER_S[gen] * lanes


def dram_bandwidth_bytes_per_s(mt_per_s: int, channels: int) -> float:
    """Theoretical peak DRAM bandwidth: transfers/s x 8 bytes per 64-bit channel x channels.

    No efficiency factor is applied here: ``solver.cost.model`` derates host bandwidth with its own
    ``cpu_bandwidth_efficiency`` (and calibration replaces that with a measured one).
    """
    return float(mt_per_s * 1_000_000 * 8 * channels)


# --- the GPU spec table ---------------------------------------------------------------------

GPU_TABLE = data_path("gpus.csv")
SCENARIO_DIR = data_path("hardware")

GPU_TABLE_COLUMNS = (
    "name",
    "aliases",
    "architecture",
    "vram_gib",
    "bandwidth_gb_s",
    "fp16_tensor_tflops",
    "fp16_basis",
    "pcie_gen",
    "pcie_lanes",
    "source",
    "checked_via",
    "note",
)

# Words that vendors and NVML put around a model name; lookups ignore them so that
# "NVIDIA GeForce RTX 4090", "RTX 4090" and "4090" all find the same row.
_NOISE_WORDS = frozenset({"nvidia", "geforce", "tesla", "quadro", "rtx"})


def normalize_gpu_name(name: str) -> str:
    """Lookup key of a GPU name: lower case, no vendor words, '16 GB' written '16gb'."""
    text = re.sub(r"[-_/(),]+", " ", name.lower())
    text = re.sub(r"(\d+)\s+gb\b", r"\1gb", text)
    return " ".join(word for word in text.split() if word not in _NOISE_WORDS)


def _split_aliases(cell: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in cell.split(";") if part.strip())


@cache
def load_gpu_specs(path: Path = GPU_TABLE) -> tuple[GpuSpec, ...]:
    """Every row of the GPU spec table, validated; units are converted to bytes and FLOP/s."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as error:
        raise BadInput(f"{path}: cannot read the GPU table: {error}") from None
    missing = [column for column in GPU_TABLE_COLUMNS if column not in frame.columns]
    if missing:
        raise BadInput(f"{path}: missing column(s) {', '.join(missing)}")
    specs: list[GpuSpec] = []
    seen: dict[str, str] = {}
    for index, row in enumerate(frame.to_dict("records")):
        where = f"{path}: row {index + 2} ({row['name'] or 'no name'})"  # header is line 1
        spec = _spec_from_row(row, where)
        key = normalize_gpu_name(spec.name)
        if key in seen:
            raise BadInput(f"{where}: name duplicates {seen[key]!r}")
        seen[key] = spec.name
        specs.append(spec)
    return tuple(specs)


def _spec_from_row(row: dict[str, str], where: str) -> GpuSpec:
    def number(column: str, kind: type = float) -> Any:
        text = row[column].strip()
        try:
            value = kind(text)
        except ValueError:
            raise BadInput(f"{where}: {column} is {text!r}, not a number") from None
        if not value > 0 or not math.isfinite(value):
            raise BadInput(f"{where}: {column} must be positive, got {text!r}")
        return value

    for column in ("name", "source", "fp16_basis"):
        if not row[column].strip():
            raise BadInput(f"{where}: {column} is empty")
    pcie_gen, pcie_lanes = _pcie_columns(row, number, where)
    return GpuSpec(
        name=row["name"].strip(),
        vram_bytes=round(number("vram_gib") * GIB),
        bandwidth_bytes_per_s=number("bandwidth_gb_s") * GB,
        fp16_flops=number("fp16_tensor_tflops") * 1e12,
        pcie_gen=pcie_gen,
        pcie_lanes=pcie_lanes,
        source=row["source"].strip(),
        aliases=_split_aliases(row["aliases"]),
        architecture=row["architecture"].strip(),
        fp16_basis=row["fp16_basis"].strip(),
        checked_via=row["checked_via"].strip(),
        note=row["note"].strip(),
    )


def _pcie_columns(row: dict[str, str], number: Any, where: str) -> tuple[int, int]:
    """The card's PCIe generation and lanes; both empty for an integrated GPU, as (0, 0)."""
    if not row["pcie_gen"].strip() and not row["pcie_lanes"].strip():
        return 0, 0
    pcie_gen = number("pcie_gen", int)
    if pcie_gen not in _PCIE_LANE_BYTES_PER_S:
        raise BadInput(f"{where}: pcie_gen {pcie_gen} is not a PCIe generation")
    return pcie_gen, number("pcie_lanes", int)


def find_gpu_spec(
    name: str, vram_bytes: int | None = None, specs: tuple[GpuSpec, ...] | None = None
) -> GpuSpec:
    """The table row for a model name or alias, case-insensitive, vendor words ignored.

    Some NVML names cover two rows (RTX 4060 Ti 8 GB and 16 GB); ``vram_bytes`` (e.g. NVML's
    total) then picks the row whose capacity is closest. Raises ``BadInput`` when nothing
    matches or the match stays ambiguous.
    """
    specs = load_gpu_specs() if specs is None else specs
    key = normalize_gpu_name(name)
    exact = [spec for spec in specs if normalize_gpu_name(spec.name) == key]
    if exact:
        return exact[0]
    matches = [spec for spec in specs if key in {normalize_gpu_name(a) for a in spec.aliases}]
    if not matches:
        raise BadInput(f"unknown GPU {name!r}: not in {GPU_TABLE.name} (see `fit hardware gpus`)")
    if len(matches) > 1 and vram_bytes is not None:
        return min(matches, key=lambda spec: abs(spec.vram_bytes - vram_bytes))
    if len(matches) > 1:
        names = ", ".join(spec.name for spec in matches)
        raise BadInput(f"GPU {name!r} is ambiguous ({names}): name the exact model")
    return matches[0]


# --- scenario files -----------------------------------------------------------------------

# Physical limits of a scenario's numbers (data/hardware/README.md, "Ranges"). Generous
# ceilings above the largest machines sold, and floors below the slowest parts still in use:
# a value beyond them is a typo or a probe, and would overflow the byte counts, the costs or
# CP-SAT's 64-bit integers further on.
MIN_RAM_GIB, MAX_RAM_GIB = 1 / 1024, 65536  # 1 MiB; the largest single systems ship 32-48 TB
MAX_CORES = 4096
MAX_THREADS = 16384
MIN_MT_PER_S, MAX_MT_PER_S = 100, 20000  # DDR5 MRDIMM 8800, LPDDR5X 10700
MAX_CHANNELS = 64  # two-socket EPYC 9005: 24
MIN_HOST_GB_S, MAX_HOST_GB_S = 0.1, 20000.0  # MI300A's unified HBM: 5300
MIN_VRAM_GIB, MAX_VRAM_GIB = 1 / 1024, 4096  # 1 MiB; B300: 288 GB
MIN_GPU_GB_S, MAX_GPU_GB_S = 1.0, 100000.0  # B300: 8000
MIN_TFLOPS, MAX_TFLOPS = 0.01, 100000.0  # B300 dense FP16: 2250
MAX_PCIE_LANES = 32
MIN_LINK_GB_S, MAX_LINK_GB_S = 0.001, 1000.0  # 10 Mbit/s Ethernet: 0.00125; 800G IB: 100
MIN_LATENCY_US, MAX_LATENCY_US = 0.1, 1e7  # RDMA: ~2 us; loopback TCP: ~20 us; 10 s
# host:port as llama-server's --rpc takes it (ggml-rpc.cpp parse_endpoint splits at the last
# ':'); no comma, which separates servers in --rpc
RPC_ENDPOINT = r"^[A-Za-z0-9._\-\[\]:]{1,255}:[0-9]{1,5}$"
MAX_PRICE_USD = 1e9
MAX_TEXT = 4096  # characters of a name, description, note or memory label
MAX_NOTES = 256
MAX_SCENARIO_BYTES = 1024 * 1024  # scenario files are a few hundred bytes
# fit renders a multi-GPU plan as -ts with one value per GPU, and llama-server's arg.cpp
# refuses a --tensor-split of llama_max_devices() = 16 or more values.
MAX_GPUS = 15


class _Table(BaseModel):
    """A table of a scenario file: exactly its keys, each of exactly its type (TOML's int is
    accepted where a float is meant; a bool never is) and inside its range."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ScenarioHost(_Table):
    """``[host]`` as a scenario writes it; units are in the key names."""

    ram_gib: float = Field(ge=MIN_RAM_GIB, le=MAX_RAM_GIB, allow_inf_nan=False)
    available_gib: float | None = Field(default=None, gt=0, le=MAX_RAM_GIB, allow_inf_nan=False)
    cores: int = Field(ge=1, le=MAX_CORES)
    threads: int | None = Field(default=None, ge=1, le=MAX_THREADS)
    memory: str = Field(default="", max_length=MAX_TEXT)
    mt_per_s: int | None = Field(default=None, ge=MIN_MT_PER_S, le=MAX_MT_PER_S)
    channels: int | None = Field(default=None, ge=1, le=MAX_CHANNELS)
    bandwidth_gb_s: float | None = Field(
        default=None, ge=MIN_HOST_GB_S, le=MAX_HOST_GB_S, allow_inf_nan=False
    )
    bandwidth_source: str | None = Field(default=None, max_length=MAX_TEXT)


class ScenarioGpu(_Table):
    """One ``[[gpus]]`` table; every figure but ``model`` overrides the GPU table's."""

    model: str = Field(max_length=MAX_TEXT)
    vram_gib: float | None = Field(
        default=None, ge=MIN_VRAM_GIB, le=MAX_VRAM_GIB, allow_inf_nan=False
    )
    free_gib: float | None = Field(default=None, gt=0, le=MAX_VRAM_GIB, allow_inf_nan=False)
    bandwidth_gb_s: float | None = Field(
        default=None, ge=MIN_GPU_GB_S, le=MAX_GPU_GB_S, allow_inf_nan=False
    )
    fp16_tflops: float | None = Field(
        default=None, ge=MIN_TFLOPS, le=MAX_TFLOPS, allow_inf_nan=False
    )
    pcie_gen: int | None = Field(
        default=None, ge=min(_PCIE_LANE_BYTES_PER_S), le=max(_PCIE_LANE_BYTES_PER_S)
    )
    pcie_lanes: int | None = Field(default=None, ge=1, le=MAX_PCIE_LANES)
    rpc: str | None = Field(default=None, pattern=RPC_ENDPOINT)
    link_gb_s: float | None = Field(
        default=None, ge=MIN_LINK_GB_S, le=MAX_LINK_GB_S, allow_inf_nan=False
    )
    latency_us: float | None = Field(
        default=None, ge=MIN_LATENCY_US, le=MAX_LATENCY_US, allow_inf_nan=False
    )


class ScenarioFile(_Table):
    """A whole scenario file."""

    name: str | None = Field(default=None, max_length=MAX_TEXT)
    description: str = Field(default="", max_length=MAX_TEXT)
    notes: list[str] = Field(default=[], max_length=MAX_NOTES)
    price_usd: float | None = Field(default=None, gt=0, le=MAX_PRICE_USD, allow_inf_nan=False)
    host: ScenarioHost
    gpus: list[ScenarioGpu] = Field(default=[], max_length=MAX_GPUS)


def list_scenarios(directory: Path = SCENARIO_DIR) -> list[str]:
    """Names of the bundled scenarios (file stems in data/hardware), sorted."""
    return sorted(path.stem for path in directory.glob("*.toml"))


def scenario_path(name_or_path: str) -> Path:
    """A scenario name from data/hardware, or a path to a TOML file."""
    bundled = SCENARIO_DIR / f"{name_or_path}.toml"
    if "/" not in name_or_path and not name_or_path.endswith(".toml") and bundled.exists():
        return bundled
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    known = ", ".join(list_scenarios())
    raise BadInput(f"no scenario {name_or_path!r}: not a file, nor one of: {known}")


def load_hardware(name_or_path: str) -> Hardware:
    """Read a scenario (bundled name or file path) into a ``Hardware``."""
    path = scenario_path(name_or_path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SCENARIO_BYTES + 1)
        if len(raw) > MAX_SCENARIO_BYTES:
            raise BadInput(f"{path}: larger than {MAX_SCENARIO_BYTES // 1024} KiB; not a scenario")
        data = tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise BadInput(f"{path}: not valid TOML: {error}") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively
        raise BadInput(f"{path}: not valid TOML: arrays or tables nested too deeply") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"{path}: cannot read: {error}") from None
    return hardware_from_scenario(data, source=str(path), default_name=path.stem)


def _validated(data: dict[str, Any], source: str) -> ScenarioFile:
    """``data`` as a ``ScenarioFile``, or ``BadInput`` naming the first offending key."""
    if not isinstance(data, dict):
        raise BadInput(f"{source}: a scenario is a TOML table")
    try:
        return ScenarioFile.model_validate(data)
    except RecursionError:
        raise BadInput(f"{source}: values nested too deeply") from None
    except ValidationError as error:
        raise BadInput(_first_problem(error, source)) from None


_RANGES = " (ranges: data/hardware/README.md)"

# pydantic error types -> what the value should have been
_WANTED = {
    "int_type": "int",
    "int_from_float": "int",
    "float_type": "int or float",
    "string_type": "str",
    "list_type": "list",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dict_type": "a table",
}


def _first_problem(error: ValidationError, source: str) -> str:
    """One line for the first thing wrong: the file, the table and the key, and why. An
    unknown key comes first (``ram_gb`` is a typo of the missing ``ram_gib``), a missing one
    last."""
    rank = {"extra_forbidden": 0, "missing": 2}
    problem = min(error.errors(), key=lambda item: rank.get(item["type"], 1))
    loc = list(problem["loc"])
    where, key = _location(loc, source)
    kind, value, ctx = problem["type"], problem.get("input"), problem.get("ctx") or {}
    shown = _short_repr(value)
    if kind == "missing":
        return (
            f"{source}: missing table [host]"
            if loc == ["host"]
            else f"{where}: missing key {key!r}"
        )
    if kind == "extra_forbidden":
        known = _known_keys(loc)
        return f"{where}: unknown key {key!r} (known: {', '.join(known)})"
    if kind in _WANTED:
        return f"{where}: {key} must be {_WANTED[kind]}, got {shown}"
    if kind == "finite_number":
        return f"{where}: {key} must be a finite number, got {shown}"
    if kind == "greater_than" and ctx.get("gt") == 0:
        return f"{where}: {key} must be positive, got {shown}"
    if kind in ("greater_than", "greater_than_equal"):
        return f"{where}: {key} = {shown} is below {_limit(ctx)}, the least fit accepts{_RANGES}"
    if kind in ("less_than_equal", "less_than"):
        return f"{where}: {key} = {shown} is above {_limit(ctx)}, the most fit accepts{_RANGES}"
    if kind == "too_long" and loc == ["gpus"]:
        return (
            f"{source}: {ctx.get('actual_length')} GPUs, but fit plans at most {MAX_GPUS}: its "
            f"plans give -ts one value per GPU, and llama-server refuses 16 or more"
        )
    if kind == "string_pattern_mismatch" and key == "rpc":
        return f"{where}: rpc must be host:port (a ggml-rpc-server), got {shown}"
    if kind in ("too_long", "string_too_long"):
        return f"{where}: {key} is longer than {ctx.get('max_length')}"
    return f"{where}: {key}: {problem['msg']}"


def _location(loc: list[Any], source: str) -> tuple[str, str]:
    """``(where, key)``: ``source: host`` / ``source: gpus[2]`` / ``source`` and the key."""
    if not loc:
        return source, ""
    if loc[0] == "gpus" and len(loc) >= 3 and isinstance(loc[1], int):
        return f"{source}: gpus[{loc[1]}]", str(loc[2])
    if loc[0] == "host" and len(loc) >= 2:
        return f"{source}: host", str(loc[1])
    if loc[0] == "notes" and len(loc) >= 2:
        return source, f"notes[{loc[1]}]"
    return source, str(loc[0])


def _known_keys(loc: list[Any]) -> list[str]:
    model: type[BaseModel] = ScenarioFile
    if loc[0] == "host" and len(loc) > 1:
        model = ScenarioHost
    elif loc[0] == "gpus" and len(loc) > 2:
        model = ScenarioGpu
    return list(model.model_fields)


def _limit(ctx: dict[str, Any]) -> str:
    value = next(iter(ctx.values()), "?")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.12g}"
    return str(value)


def _short_repr(value: object, limit: int = 60) -> str:
    """A value for a message: repr, cut; nesting beyond a few levels is elided."""
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 3, limit, limit
    shown = short.repr(value)
    return shown if len(shown) <= limit else shown[:limit] + "..."


def hardware_from_scenario(data: dict[str, Any], *, source: str, default_name: str) -> Hardware:
    """Validate a parsed scenario; every error names ``source`` and the offending key."""
    scenario = _validated(data, source)
    _check_rpc_slots(scenario.gpus, source)
    gpus = tuple(
        _gpu_from_slot(slot, f"{'RPC' if slot.rpc else 'CUDA'}{index}", f"{source}: gpus[{index}]")
        for index, slot in enumerate(scenario.gpus)
    )
    return Hardware(
        name=default_name if scenario.name is None else scenario.name,
        description=scenario.description,
        gpus=gpus,
        host=_host_from_table(scenario.host, f"{source}: host"),
        notes=tuple(scenario.notes),
        price_usd=scenario.price_usd,
    )


def _check_rpc_slots(slots: list[ScenarioGpu], source: str) -> None:
    """RPC devices: all or none of the GPUs (fit renders one ``--rpc`` list and no local
    device then), each server once (fit plans one device per ggml-rpc-server), and each with
    its network link."""
    seen: set[str] = set()
    for index, slot in enumerate(slots):
        where = f"{source}: gpus[{index}]"
        if bool(slot.rpc) != bool(slots[0].rpc):
            raise BadInput(f"{where}: mix of local and RPC GPUs; fit plans one or the other")
        if slot.rpc is None:
            extra = [k for k in ("link_gb_s", "latency_us") if getattr(slot, k) is not None]
            if extra:
                raise BadInput(
                    f"{where}: {extra[0]} is the network link of an RPC device; "
                    'give rpc = "host:port" too'
                )
            continue
        missing = [k for k in ("link_gb_s", "latency_us") if getattr(slot, k) is None]
        if missing:
            raise BadInput(
                f"{where}: an RPC device needs its network link: give {' and '.join(missing)}"
            )
        if slot.rpc in seen:
            raise BadInput(
                f"{where}: rpc {slot.rpc!r} is listed twice; fit plans one device "
                "per ggml-rpc-server"
            )
        seen.add(slot.rpc)


def _host_from_table(table: ScenarioHost, where: str) -> Host:
    mt_per_s, channels = table.mt_per_s, table.channels
    if table.bandwidth_gb_s is not None:
        bandwidth = float(round(table.bandwidth_gb_s * GB))
        origin = table.bandwidth_source or "given in the scenario (bandwidth_gb_s)"
    elif mt_per_s is not None and channels is not None:
        bandwidth = dram_bandwidth_bytes_per_s(mt_per_s, channels)
        origin = table.bandwidth_source or "spec: mt_per_s x 8 bytes x channels"
    else:
        raise BadInput(f"{where}: give bandwidth_gb_s, or both mt_per_s and channels")
    memory = table.memory
    kind = f"{memory or 'DRAM'}-{mt_per_s} x{channels} channels" if mt_per_s and channels else ""
    return Host(
        ram_bytes=round(table.ram_gib * GIB),
        available_bytes=None if table.available_gib is None else round(table.available_gib * GIB),
        bandwidth_bytes_per_s=bandwidth,
        cores=table.cores,
        threads=table.threads,
        memory_kind=kind or memory,
        dram_type=memory,
        dram_mt_per_s=mt_per_s,
        dram_channels=channels,
        bandwidth_source=origin,
    )


def _gpu_from_slot(slot: ScenarioGpu, device: str, where: str) -> Gpu:
    vram_gib = slot.vram_gib
    try:
        spec = find_gpu_spec(slot.model, None if vram_gib is None else round(vram_gib * GIB))
    except BadInput as error:
        spec = _custom_spec(slot, where, error)
    overrides: dict[str, Any] = {}
    if vram_gib is not None:
        overrides["vram_bytes"] = round(vram_gib * GIB)
    if slot.bandwidth_gb_s is not None:
        overrides["bandwidth_bytes_per_s"] = float(round(slot.bandwidth_gb_s * GB))
    if slot.fp16_tflops is not None:
        overrides["fp16_flops"] = float(round(slot.fp16_tflops * 1e12))
    network = None
    if slot.rpc is not None:
        assert slot.link_gb_s is not None and slot.latency_us is not None  # _check_rpc_slots
        network = NetworkLink(
            bytes_per_s=float(round(slot.link_gb_s * GB)), round_trip_us=slot.latency_us
        )
    return Gpu(
        device=device,
        spec=spec.model_copy(update=overrides) if overrides else spec,
        free_bytes=None if slot.free_gib is None else round(slot.free_gib * GIB),
        pcie_gen=slot.pcie_gen or spec.pcie_gen,
        pcie_lanes=slot.pcie_lanes or spec.pcie_lanes,
        rpc_endpoint=slot.rpc,
        network=network,
    )


_CUSTOM_KEYS = ("vram_gib", "bandwidth_gb_s", "fp16_tflops", "pcie_gen", "pcie_lanes")


def _custom_spec(slot: ScenarioGpu, where: str, unknown: BadInput) -> GpuSpec:
    """A GPU that is not in the table is accepted only when the slot gives every figure; an
    RPC device's own PCIe slot does not matter to the plan (its link is the network)."""
    keys = _CUSTOM_KEYS[:3] if slot.rpc else _CUSTOM_KEYS
    missing = [key for key in keys if getattr(slot, key) is None]
    if missing:
        raise BadInput(
            f"{where}: model: {unknown}; to describe a GPU that is not in the table, "
            f"also give {', '.join(missing)}"
        )
    assert slot.vram_gib and slot.bandwidth_gb_s and slot.fp16_tflops  # checked just above
    return GpuSpec(
        name=slot.model,
        vram_bytes=round(slot.vram_gib * GIB),
        bandwidth_bytes_per_s=float(round(slot.bandwidth_gb_s * GB)),
        fp16_flops=float(round(slot.fp16_tflops * 1e12)),
        pcie_gen=slot.pcie_gen or 0,
        pcie_lanes=slot.pcie_lanes or 0,
        source=f"{where} (not in {GPU_TABLE.name})",
        fp16_basis="given in the scenario",
    )


def _table_spec(spec: GpuSpec) -> GpuSpec | None:
    try:
        return find_gpu_spec(spec.name, spec.vram_bytes)
    except BadInput:
        return None


def hardware_to_toml(hardware: Hardware) -> str:
    """A scenario file that ``load_hardware`` reads back into an equal ``Hardware``.

    Figures that come from the spec table are not repeated; what differs from the table
    (a detected VRAM total, a slot's link) is written as an override.
    """
    lines = [f"name = {_toml_str(hardware.name)}"]
    if hardware.description:
        lines.append(f"description = {_toml_str(hardware.description)}")
    if hardware.notes:
        lines.append("notes = [")
        lines += [f"  {_toml_str(note)}," for note in hardware.notes]
        lines.append("]")
    if hardware.price_usd is not None:
        lines.append(f"price_usd = {hardware.price_usd!r}")
    host = hardware.host
    lines += ["", "[host]", f"ram_gib = {host.ram_bytes / GIB!r}"]
    if host.available_bytes is not None:
        lines.append(f"available_gib = {host.available_bytes / GIB!r}")
    lines.append(f"cores = {host.cores}")
    if host.threads is not None:
        lines.append(f"threads = {host.threads}")
    if host.dram_type:
        lines.append(f"memory = {_toml_str(host.dram_type)}")
    spec_bandwidth = None
    if host.dram_mt_per_s and host.dram_channels:
        lines += [f"mt_per_s = {host.dram_mt_per_s}", f"channels = {host.dram_channels}"]
        spec_bandwidth = dram_bandwidth_bytes_per_s(host.dram_mt_per_s, host.dram_channels)
    if host.bandwidth_bytes_per_s != spec_bandwidth:
        lines.append(f"bandwidth_gb_s = {host.bandwidth_bytes_per_s / GB!r}")
    if host.bandwidth_source:
        lines.append(f"bandwidth_source = {_toml_str(host.bandwidth_source)}")
    for gpu in hardware.gpus:
        lines += ["", "[[gpus]]", f"model = {_toml_str(gpu.spec.name)}"]
        table = _table_spec(gpu.spec)  # None: a custom GPU, every figure is written
        if table is None or gpu.spec.vram_bytes != table.vram_bytes:
            lines.append(f"vram_gib = {gpu.spec.vram_bytes / GIB!r}")
        if gpu.free_bytes is not None:
            lines.append(f"free_gib = {gpu.free_bytes / GIB!r}")
        if table is None or gpu.spec.bandwidth_bytes_per_s != table.bandwidth_bytes_per_s:
            lines.append(f"bandwidth_gb_s = {gpu.spec.bandwidth_bytes_per_s / GB!r}")
        if table is None or gpu.spec.fp16_flops != table.fp16_flops:
            lines.append(f"fp16_tflops = {gpu.spec.fp16_flops / 1e12!r}")
        if gpu.network is not None:
            lines += [
                f"rpc = {_toml_str(gpu.rpc_endpoint or '')}",
                f"link_gb_s = {gpu.network.bytes_per_s / GB!r}",
                f"latency_us = {gpu.network.round_trip_us!r}",
            ]
        elif not gpu.integrated:  # an integrated GPU keeps the table's "no link"
            lines += [f"pcie_gen = {gpu.pcie_gen}", f"pcie_lanes = {gpu.pcie_lanes}"]
    return "\n".join(lines) + "\n"


def _toml_str(text: str) -> str:
    """A TOML basic string (JSON escaping is a valid subset of TOML's)."""
    import json

    return json.dumps(text, ensure_ascii=False)


def _link_text(gpu: Gpu) -> str:
    if gpu.network is not None:
        return f"RPC {gpu.rpc_endpoint} {gpu.network.bytes_per_s / GB:.3g} GB/s"
    return "integrated" if gpu.integrated else f"PCIe{gpu.pcie_gen} x{gpu.pcie_lanes}"


def describe_hardware(hardware: Hardware) -> str:
    """One line: each GPU with VRAM and link, then RAM, DRAM bandwidth and cores."""
    gpus = " + ".join(
        f"{gpu.spec.name} {gpu.spec.vram_bytes / GIB:.0f} GiB {_link_text(gpu)}"
        for gpu in hardware.gpus
    )
    host = hardware.host
    cpu = (
        f"{host.ram_bytes / GIB:.0f} GiB RAM {host.bandwidth_bytes_per_s / GB:.1f} GB/s, "
        f"{host.cores} cores"
    )
    return f"{gpus or 'no GPU'} | {cpu}"
