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

from pydantic import BaseModel, ConfigDict, Field

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
    pcie_gen: int
    pcie_lanes: int
    source: str = ""
    aliases: tuple[str, ...] = Field(default=(), description="other names, e.g. NVML's")
    architecture: str = ""
    fp16_basis: str = Field(default="", description="'published' or how it was derived")
    checked_via: str = Field(default="", description="pages the figures were checked on")
    note: str = ""


class Gpu(BaseModel):
    """A GPU in a rig, as llama.cpp's CUDA backend numbers it (``CUDA0``, ``CUDA1``...)."""

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

    @property
    def memory_bytes(self) -> int:
        return self.spec.vram_bytes if self.free_bytes is None else self.free_bytes

    @property
    def link_bytes_per_s(self) -> float:
        """Usable host<->device bandwidth of the slot (one direction)."""
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
    pcie_gen = number("pcie_gen", int)
    if pcie_gen not in _PCIE_LANE_BYTES_PER_S:
        raise BadInput(f"{where}: pcie_gen {pcie_gen} is not a PCIe generation")
    return GpuSpec(
        name=row["name"].strip(),
        vram_bytes=round(number("vram_gib") * GIB),
        bandwidth_bytes_per_s=number("bandwidth_gb_s") * GB,
        fp16_flops=number("fp16_tensor_tflops") * 1e12,
        pcie_gen=pcie_gen,
        pcie_lanes=number("pcie_lanes", int),
        source=row["source"].strip(),
        aliases=_split_aliases(row["aliases"]),
        architecture=row["architecture"].strip(),
        fp16_basis=row["fp16_basis"].strip(),
        checked_via=row["checked_via"].strip(),
        note=row["note"].strip(),
    )


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

_TOP_KEYS = {
    "name": str,
    "description": str,
    "notes": list,
    "price_usd": (int, float),
    "host": dict,
    "gpus": list,
}
_HOST_KEYS: dict[str, tuple[type, ...]] = {
    "ram_gib": (int, float),
    "available_gib": (int, float),
    "cores": (int,),
    "threads": (int,),
    "memory": (str,),
    "mt_per_s": (int,),
    "channels": (int,),
    "bandwidth_gb_s": (int, float),
    "bandwidth_source": (str,),
}
_GPU_KEYS: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "vram_gib": (int, float),
    "free_gib": (int, float),
    "bandwidth_gb_s": (int, float),
    "fp16_tflops": (int, float),
    "pcie_gen": (int,),
    "pcie_lanes": (int,),
}


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
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise BadInput(f"{path}: not valid TOML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"{path}: cannot read: {error}") from None
    return hardware_from_scenario(data, source=str(path), default_name=path.stem)


def _check_keys(table: dict[str, Any], allowed: dict[str, Any], where: str) -> None:
    for key, value in table.items():
        if key not in allowed:
            raise BadInput(f"{where}: unknown key {key!r} (known: {', '.join(allowed)})")
        kinds = allowed[key] if isinstance(allowed[key], tuple) else (allowed[key],)
        # bool is an int in Python; a scenario never means true/false as a number
        if isinstance(value, bool) or not isinstance(value, kinds):
            wanted = " or ".join(kind.__name__ for kind in kinds)
            raise BadInput(f"{where}: {key} must be {wanted}, got {value!r}")


def _positive(table: dict[str, Any], key: str, where: str, *, required: bool) -> Any:
    if key not in table:
        if required:
            raise BadInput(f"{where}: missing key {key!r}")
        return None
    value = table[key]
    if not value > 0 or not math.isfinite(value):
        raise BadInput(f"{where}: {key} must be positive, got {value!r}")
    return value


def hardware_from_scenario(data: dict[str, Any], *, source: str, default_name: str) -> Hardware:
    """Validate a parsed scenario; every error names ``source`` and the offending key."""
    _check_keys(data, _TOP_KEYS, source)
    if "host" not in data:
        raise BadInput(f"{source}: missing table [host]")
    notes = tuple(data.get("notes", ()))
    if not all(isinstance(note, str) for note in notes):
        raise BadInput(f"{source}: notes must be a list of strings")
    gpus = []
    for index, slot in enumerate(data.get("gpus", [])):
        where = f"{source}: gpus[{index}]"
        if not isinstance(slot, dict):
            raise BadInput(f"{where}: must be a table ([[gpus]])")
        gpus.append(_gpu_from_slot(slot, f"CUDA{index}", where))
    return Hardware(
        name=data.get("name", default_name),
        description=data.get("description", ""),
        gpus=tuple(gpus),
        host=_host_from_table(data["host"], f"{source}: host"),
        notes=notes,
        price_usd=_positive(data, "price_usd", source, required=False),
    )


def _host_from_table(table: dict[str, Any], where: str) -> Host:
    _check_keys(table, _HOST_KEYS, where)
    ram_gib = _positive(table, "ram_gib", where, required=True)
    available_gib = _positive(table, "available_gib", where, required=False)
    cores = _positive(table, "cores", where, required=True)
    threads = _positive(table, "threads", where, required=False)
    mt_per_s = _positive(table, "mt_per_s", where, required=False)
    channels = _positive(table, "channels", where, required=False)
    explicit = _positive(table, "bandwidth_gb_s", where, required=False)
    memory = table.get("memory", "")
    if explicit is not None:
        bandwidth = float(round(explicit * GB))
        origin = table.get("bandwidth_source", "given in the scenario (bandwidth_gb_s)")
    elif mt_per_s is not None and channels is not None:
        bandwidth = dram_bandwidth_bytes_per_s(mt_per_s, channels)
        origin = table.get("bandwidth_source", "spec: mt_per_s x 8 bytes x channels")
    else:
        raise BadInput(f"{where}: give bandwidth_gb_s, or both mt_per_s and channels")
    kind = f"{memory or 'DRAM'}-{mt_per_s} x{channels} channels" if mt_per_s and channels else ""
    return Host(
        ram_bytes=round(ram_gib * GIB),
        available_bytes=None if available_gib is None else round(available_gib * GIB),
        bandwidth_bytes_per_s=bandwidth,
        cores=cores,
        threads=threads,
        memory_kind=kind or memory,
        dram_type=memory,
        dram_mt_per_s=mt_per_s,
        dram_channels=channels,
        bandwidth_source=origin,
    )


def _gpu_from_slot(slot: dict[str, Any], device: str, where: str) -> Gpu:
    _check_keys(slot, _GPU_KEYS, where)
    if "model" not in slot:
        raise BadInput(f"{where}: missing key 'model'")
    vram_gib = _positive(slot, "vram_gib", where, required=False)
    try:
        spec = find_gpu_spec(slot["model"], None if vram_gib is None else round(vram_gib * GIB))
    except BadInput as error:
        spec = _custom_spec(slot, where, error)
    overrides: dict[str, Any] = {}
    if vram_gib is not None:
        overrides["vram_bytes"] = round(vram_gib * GIB)
    if (bandwidth := _positive(slot, "bandwidth_gb_s", where, required=False)) is not None:
        overrides["bandwidth_bytes_per_s"] = float(round(bandwidth * GB))
    if (tflops := _positive(slot, "fp16_tflops", where, required=False)) is not None:
        overrides["fp16_flops"] = float(round(tflops * 1e12))
    pcie_gen = _positive(slot, "pcie_gen", where, required=False) or spec.pcie_gen
    if pcie_gen not in _PCIE_LANE_BYTES_PER_S:
        raise BadInput(f"{where}: pcie_gen {pcie_gen} is not a PCIe generation (1-6)")
    free_gib = _positive(slot, "free_gib", where, required=False)
    return Gpu(
        device=device,
        spec=spec.model_copy(update=overrides) if overrides else spec,
        free_bytes=None if free_gib is None else round(free_gib * GIB),
        pcie_gen=pcie_gen,
        pcie_lanes=_positive(slot, "pcie_lanes", where, required=False) or spec.pcie_lanes,
    )


_CUSTOM_KEYS = ("vram_gib", "bandwidth_gb_s", "fp16_tflops", "pcie_gen", "pcie_lanes")


def _custom_spec(slot: dict[str, Any], where: str, unknown: BadInput) -> GpuSpec:
    """A GPU that is not in the table is accepted only when the slot gives every figure."""
    missing = [key for key in _CUSTOM_KEYS if key not in slot]
    if missing:
        raise BadInput(
            f"{where}: model: {unknown}; to describe a GPU that is not in the table, "
            f"also give {', '.join(missing)}"
        )
    return GpuSpec(
        name=slot["model"],
        vram_bytes=round(_positive(slot, "vram_gib", where, required=True) * GIB),
        bandwidth_bytes_per_s=float(
            round(_positive(slot, "bandwidth_gb_s", where, required=True) * GB)
        ),
        fp16_flops=float(round(_positive(slot, "fp16_tflops", where, required=True) * 1e12)),
        pcie_gen=slot["pcie_gen"],
        pcie_lanes=slot["pcie_lanes"],
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
        lines += [f"pcie_gen = {gpu.pcie_gen}", f"pcie_lanes = {gpu.pcie_lanes}"]
    return "\n".join(lines) + "\n"


def _toml_str(text: str) -> str:
    """A TOML basic string (JSON escaping is a valid subset of TOML's)."""
    import json

    return json.dumps(text, ensure_ascii=False)


def describe_hardware(hardware: Hardware) -> str:
    """One line: each GPU with VRAM and link, then RAM, DRAM bandwidth and cores."""
    gpus = " + ".join(
        f"{gpu.spec.name} {gpu.spec.vram_bytes / GIB:.0f} GiB PCIe{gpu.pcie_gen} x{gpu.pcie_lanes}"
        for gpu in hardware.gpus
    )
    host = hardware.host
    cpu = (
        f"{host.ram_bytes / GIB:.0f} GiB RAM {host.bandwidth_bytes_per_s / GB:.1f} GB/s, "
        f"{host.cores} cores"
    )
    return f"{gpus or 'no GPU'} | {cpu}"
