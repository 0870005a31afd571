"""Price every row of the public speed corpus as the exact command it ran.

In: ``SpeedRow`` records (``solver.cost.corpus``) and cost coefficients. Out: ``PricedRow``
(fit's decode and prefill estimate beside the measured speeds) or ``Unpriced`` (the reason fit
cannot price the row). Nothing is priced with a stand-in: a row whose GPU is not in
``data/gpus.csv``, whose model has no catalogue entry, whose source leaves a placement flag
open or that split each matmul over several GPUs (``-sm row``) is set aside with that reason.

A row becomes a rig and a llama-server command line:

- GPUs: ``gpu_count`` devices of the row's ``gpu`` (several different names are joined with
  ``;`` and taken in that order), figures from ``data/gpus.csv``; the PCIe link from
  ``pcie_link`` when the row gives it, else the card's own.
- Host: DRAM from ``ram_type`` / ``ram_speed_mts`` / ``ram_channels`` and cores from
  ``cpu_cores`` (``threads`` when ``-t`` was set). What a row leaves open takes ``HOST_DEFAULTS``.
  On a unified-memory rig (Apple silicon, Strix Halo, DGX Spark) CPU and GPU read the same
  memory, so the host's bandwidth is the GPU's.
- Arguments: ``-ngl``, ``--n-cpu-moe``, ``-ot``, ``-ts``, ``-sm``, ``-fa``, ``-b``, ``-ub``,
  ``-ctk``/``-ctv`` and ``--no-mmap`` (``--load-mode none`` in the pinned server) as the row
  gives them, else the tool's defaults (llama-bench: ``-ngl 99 -fa 0``); one sequence
  (``-np 1``), no ``--fit`` (llama-bench never fits; a llama-server row that fitted states its
  outcome or is marked ``flags_complete = no``), a context of the test's size.
- Depth: llama-bench's ``tgN`` test at ``-d D`` decodes from position D to D+N, so decode is
  priced at the mean position D + N/2; ``ppN`` prefills N tokens in ubatches of ``-ub`` after
  D cached positions, priced as one ubatch of min(ub, N) tokens at the mean position of the
  prompt. A llama-server request prefills its prompt from 0 and decodes after it; a row that
  does not give its prompt's length has its decode priced, not its prefill.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache

from pydantic import BaseModel, ConfigDict, Field

from solver.cost.corpus import Offload, SpeedRow, Split
from solver.cost.corpus_fit import DecodeObservation, DeviceUse, PrefillObservation
from solver.cost.model import CostCoefficients, flops_group
from solver.errors import BadInput
from solver.gguf.catalogue import load_catalogue_entry
from solver.gguf.inventory import Inventory
from solver.hardware.scenario import (
    Gpu,
    GpuSpec,
    Hardware,
    Host,
    dram_bandwidth_bytes_per_s,
    find_gpu_spec,
)
from solver.llama.args import LaunchConfig
from solver.llama.memory import MemoryReport
from solver.placement.launch_cost import LaunchCost, LaunchPredictor
from solver.quantities import CPU, GIB

UNIFIED = "unified"


class HostDefaults(BaseModel):
    """What a row's host takes when the source does not say (documented in the report)."""

    model_config = ConfigDict(frozen=True)

    dram_type: str = "DDR5"
    mt_per_s: dict[str, int] = Field(
        default_factory=lambda: {"DDR4": 3200, "DDR5": 5600, "LPDDR5X": 8000},
        description="JEDEC speed most desktop kits of that type run at",
    )
    channels: int = 2  # desktop boards
    cores: int = 8
    ram_gib: float = 64.0


HOST_DEFAULTS = HostDefaults()


class Unpriced(BaseModel):
    """A corpus row fit does not price, and why."""

    model_config = ConfigDict(frozen=True)

    row: int = Field(description="0-based index in the corpus")
    reason: str
    detail: str = ""


class RowWork(BaseModel):
    """The two measurements of a row as fit prices them."""

    model_config = ConfigDict(frozen=True)

    decode_depth: int = Field(description="mean cached positions while decoding")
    prefill_ubatch: int = Field(description="tokens of the ubatch priced")
    prompt_tokens: int = Field(description="tokens of the prompt (its ubatches may pipeline)")
    prefill_depth: int = Field(description="cached positions before the mean ubatch")


class PricedRow(BaseModel):
    """fit's estimate of one corpus row beside what the source measured."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    row: int
    split: Split
    source_url: str
    label: str = Field(description="a short description of the configuration")
    configuration: str = Field(
        description="rig, model, arguments and test sizes: equal for rows fit cannot tell apart"
    )
    measured_decode_tps: float | None
    measured_prefill_tps: float | None
    decode: LaunchCost | None = Field(description="priced when the row measured decode")
    prefill: LaunchCost | None = Field(description="priced when the row measured prefill")
    hardware: Hardware

    @property
    def decode_tps(self) -> float | None:
        return None if self.decode is None else self.decode.estimate.decode_tps

    @property
    def prefill_tps(self) -> float | None:
        return None if self.prefill is None else self.prefill.estimate.prefill_tps


class RowLaunch(BaseModel):
    """A priceable row as a rig, a model and a command line; ``predictor`` prices it."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    hardware: Hardware
    entry: str
    args: tuple[str, ...]
    work: RowWork


# --- the rig ---------------------------------------------------------------------------------


def row_gpu_names(row: SpeedRow) -> list[str]:
    """The GPU of every device the row ran on, in device order."""
    names = [name.strip() for name in row.gpu.split(";") if name.strip()]
    if len(names) == 1:
        return names * row.gpu_count
    return names


def _pcie_link(text: str | None) -> tuple[int, int] | None:
    """``"4.0 x16"`` -> (4, 16); None when the row gives no (readable) link."""
    match = re.match(r"\s*(\d)(?:\.\d)?\s*x\s*(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def row_gpus(row: SpeedRow) -> tuple[Gpu, ...]:
    """The row's GPUs from the spec table; ``BadInput`` names one that is not in it."""
    link = _pcie_link(row.pcie_link)
    gpus = []
    for index, name in enumerate(row_gpu_names(row)):
        spec = find_gpu_spec(name)
        gen, lanes = link or (spec.pcie_gen, spec.pcie_lanes)
        gpus.append(
            Gpu(
                device=f"CUDA{index}", spec=_unified_vram(spec, row), pcie_gen=gen, pcie_lanes=lanes
            )
        )
    return tuple(gpus)


def _unified_vram(spec: GpuSpec, row: SpeedRow) -> GpuSpec:
    """On a unified-memory rig the GPU's memory is the machine's (the row's ``ram_gb``)."""
    if row.ram_type != UNIFIED or row.ram_gb is None:
        return spec
    return spec.model_copy(update={"vram_bytes": round(row.ram_gb * GIB)})


def row_host(row: SpeedRow, gpus: Sequence[Gpu]) -> Host:
    """The row's host: its DRAM and cores where given, ``HOST_DEFAULTS`` otherwise."""
    cores = row.threads or row.cpu_cores or HOST_DEFAULTS.cores
    ram_bytes = round((row.ram_gb or HOST_DEFAULTS.ram_gib) * GIB)
    if row.ram_type == UNIFIED and gpus:
        return Host(
            ram_bytes=ram_bytes,
            bandwidth_bytes_per_s=gpus[0].spec.bandwidth_bytes_per_s,
            cores=cores,
            dram_type=UNIFIED,
            bandwidth_source="unified memory: the GPU's bandwidth",
        )
    dram = row.ram_type or HOST_DEFAULTS.dram_type
    mt_per_s = row.ram_speed_mts or HOST_DEFAULTS.mt_per_s.get(dram, 4800)
    channels = row.ram_channels or HOST_DEFAULTS.channels
    given = row.ram_type and row.ram_speed_mts and row.ram_channels
    return Host(
        ram_bytes=ram_bytes,
        bandwidth_bytes_per_s=dram_bandwidth_bytes_per_s(mt_per_s, channels),
        cores=cores,
        threads=row.cpu_threads,
        memory_kind=f"{dram}-{mt_per_s} x{channels} channels",
        dram_type=dram,
        dram_mt_per_s=mt_per_s,
        dram_channels=channels,
        bandwidth_source="spec: the row's DRAM" if given else "partly HOST_DEFAULTS",
    )


def row_hardware(row: SpeedRow) -> Hardware:
    gpus = row_gpus(row)
    return Hardware(name=f"corpus: {row.gpu} x{row.gpu_count}", gpus=gpus, host=row_host(row, gpus))


# --- the command ------------------------------------------------------------------------------


def _flash_attn(row: SpeedRow) -> str:
    value = (row.flash_attn or "").lower()
    if value in ("1", "on", "true"):
        return "on"
    if value in ("0", "off", "false"):
        return "off"
    if value == "auto":
        return "auto"
    # llama-bench's default was -fa 0 (later builds: auto, which turns FA on where supported)
    return "off" if row.tool == "llama-bench" else "auto"


def _context(row: SpeedRow) -> int:
    """The context the test needed (the server rows' own -c when given in other_flags)."""
    match = re.search(r"(?:--ctx-size|-c)\s+(\d+)", row.other_flags or "")
    if match and int(match.group(1)) > 0:
        return int(match.group(1))
    tokens = (row.depth or 0) + (row.n_prompt or 0) + (row.n_gen or 0)
    return max(tokens, 4096 if row.tool != "llama-bench" else 512)


def row_args(row: SpeedRow) -> list[str]:
    """The row's llama-server arguments (see the module docstring for the defaults)."""
    args = ["-c", str(_context(row)), "-np", "1", "--fit", "off"]
    args += ["-ngl", str(row.ngl if row.ngl is not None else 99)]
    if row.n_cpu_moe:
        args += ["--n-cpu-moe", str(row.n_cpu_moe)]
    if row.override_tensor:
        args += ["-ot", row.override_tensor]
    if row.tensor_split:
        args += ["-ts", row.tensor_split.replace("/", ",")]
    if row.split_mode:
        args += ["-sm", row.split_mode]
    args += ["-fa", _flash_attn(row)]
    ubatch = row.ubatch or 512
    args += ["-b", str(max(row.batch or 2048, ubatch)), "-ub", str(ubatch)]
    if row.cache_type_k:
        args += ["-ctk", row.cache_type_k]
    if row.cache_type_v:
        args += ["-ctv", row.cache_type_v]
    if row.mmap == 0:
        args += ["--load-mode", "none"]
    return args


def row_work(row: SpeedRow) -> RowWork:
    """Where decode and prefill are priced (module docstring, 'Depth')."""
    ubatch = row.ubatch or 512
    n_prompt = row.n_prompt or 0
    depth = row.depth or 0
    prefill_ubatch = max(1, min(ubatch, n_prompt or ubatch))
    if row.tool == "llama-bench":
        decode_depth = depth + (row.n_gen or 0) // 2
    else:
        decode_depth = n_prompt + (row.n_gen or 0) // 2
    return RowWork(
        decode_depth=decode_depth,
        prefill_ubatch=prefill_ubatch,
        prompt_tokens=n_prompt or prefill_ubatch,
        prefill_depth=depth + max(0, n_prompt - prefill_ubatch) // 2,
    )


# --- pricing ----------------------------------------------------------------------------------


def row_launch(index: int, row: SpeedRow) -> RowLaunch | Unpriced:
    """The row as a rig, model and command, or why fit cannot price it."""
    if not row.catalogue_entry:
        return Unpriced(row=index, reason="model not in fit's catalogue", detail=row.hf_model)
    if row.flags_complete != "yes":
        return Unpriced(
            row=index, reason="flags incomplete (the source leaves one open)", detail=row.gpu
        )
    if row.offload is Offload.CPU_ONLY:
        return Unpriced(row=index, reason="CPU-only run", detail=row.cpu or "")
    if row.split_mode in ("row", "tensor") and row.gpu_count > 1:
        # each matmul split over the GPUs: fit's cost model prices layer split (-sm layer) only
        return Unpriced(
            row=index, reason=f"split mode {row.split_mode} (fit prices -sm layer)", detail=row.gpu
        )
    try:
        hardware = row_hardware(row)
    except BadInput:
        missing = [name for name in row_gpu_names(row) if not _known_gpu(name)]
        return Unpriced(
            row=index, reason="GPU not in data/gpus.csv", detail=", ".join(sorted(set(missing)))
        )
    return RowLaunch(
        hardware=hardware,
        entry=row.catalogue_entry,
        args=tuple(row_args(row)),
        work=row_work(row),
    )


def _known_gpu(name: str) -> bool:
    try:
        find_gpu_spec(name)
    except BadInput:
        return False
    return True


@cache
def _inventory(entry: str) -> Inventory:
    return load_catalogue_entry(entry)


@cache
def _launch_memory(
    entry: str, hardware_json: str, args: tuple[str, ...]
) -> tuple[LaunchConfig, MemoryReport]:
    """The launch's memory report, once per distinct launch: rows of one command at several
    depths or test sizes share it, and the coefficients a row is priced with do not change it."""
    hardware = Hardware.model_validate_json(hardware_json)
    return LaunchPredictor(_inventory(entry), hardware).memory(args)


def price_launch_row(
    index: int, row: SpeedRow, launch: RowLaunch, coefficients: CostCoefficients
) -> PricedRow:
    """fit's decode and prefill estimate of a row's launch."""
    predictor = LaunchPredictor(_inventory(launch.entry), launch.hardware, coefficients)
    config, report = _launch_memory(launch.entry, launch.hardware.model_dump_json(), launch.args)
    work = launch.work
    decode = None
    if row.decode_tps is not None:
        decode = predictor.cost(config, report, depth=work.decode_depth)
    prefill = None
    # a prompt of unknown length is not priced: its ubatch size (and whether its weights stream
    # to the GPU at all, below op_offload_min_batch tokens) would be a guess
    if row.prefill_tps is not None and row.n_prompt:
        prefill = predictor.cost(
            config, report, depth=work.prefill_depth, prompt_tokens=work.prompt_tokens
        )
    return PricedRow(
        row=index,
        split=row.split,
        source_url=row.source_url,
        label=row_label(row),
        configuration=launch_key(launch),
        measured_decode_tps=row.decode_tps,
        measured_prefill_tps=row.prefill_tps,
        decode=decode,
        prefill=prefill,
        hardware=launch.hardware,
    )


def launch_key(launch: RowLaunch) -> str:
    """What fit sees of a row: rows with equal keys differ only in what fit does not model."""
    gpus = ",".join(f"{g.spec.name}@{g.pcie_gen}x{g.pcie_lanes}" for g in launch.hardware.gpus)
    return " | ".join(
        [gpus, launch.hardware.host.model_dump_json(), launch.entry, " ".join(launch.args),
         launch.work.model_dump_json()]
    )  # fmt: skip


def row_label(row: SpeedRow) -> str:
    """``gpt-oss-120b:MXFP4 on RTX 4070 x1, --n-cpu-moe 31, d=0``: enough to find the row."""
    flags = []
    if row.ngl is not None and row.ngl < 99:
        flags.append(f"-ngl {row.ngl}")
    if row.n_cpu_moe:
        flags.append(f"--n-cpu-moe {row.n_cpu_moe}")
    if row.override_tensor:
        flags.append("-ot ...")
    if row.flash_attn:
        flags.append(f"-fa {row.flash_attn}")
    if row.ubatch:
        flags.append(f"-ub {row.ubatch}")
    size = f"pp{row.n_prompt or 0}/tg{row.n_gen or 0}@d{row.depth or 0}"
    backend = f" {row.backend}" if row.backend else ""
    head = f"{row.catalogue_entry} on {row.gpu} x{row.gpu_count}{backend}"
    return ", ".join([head, *flags, size])


class CorpusPricing(BaseModel):
    """Every corpus row either priced or set aside with its reason."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    priced: tuple[PricedRow, ...]
    unpriced: tuple[Unpriced, ...]

    def reasons(self) -> dict[str, list[Unpriced]]:
        """Set-aside rows grouped by reason, most common first."""
        groups: dict[str, list[Unpriced]] = {}
        for item in self.unpriced:
            groups.setdefault(item.reason, []).append(item)
        return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))


def corpus_launches(rows: Iterable[SpeedRow]) -> list[tuple[int, SpeedRow, RowLaunch | Unpriced]]:
    """Every row with its launch or the reason it has none."""
    return [(index, row, row_launch(index, row)) for index, row in enumerate(rows)]


def price_corpus(
    rows: Sequence[SpeedRow], coefficients: CostCoefficients | None = None
) -> CorpusPricing:
    """Price every row that can be priced (``coefficients``: fit's defaults when None)."""
    coefficients = coefficients or CostCoefficients()
    priced, unpriced = [], []
    for index, row, launch in corpus_launches(rows):
        if isinstance(launch, Unpriced):
            unpriced.append(launch)
        else:
            priced.append(price_launch_row(index, row, launch, coefficients))
    return CorpusPricing(priced=tuple(priced), unpriced=tuple(unpriced))


# --- what the corpus fit regresses -------------------------------------------------------------


def _gpus_by_device(hardware: Hardware) -> dict[str, Gpu]:
    return {gpu.device: gpu for gpu in hardware.gpus}


def decode_observation(row: PricedRow) -> DecodeObservation | None:
    """The row's decode loads in the terms ``solver.cost.corpus_fit`` fits (None: no decode)."""
    if row.decode is None or row.measured_decode_tps is None:
        return None
    loads, host = row.decode.loads, row.hardware.host
    gpus = _gpus_by_device(row.hardware)
    uses, kv_seconds = [], 0.0
    for device, read in loads.bytes_read.items():
        kv = loads.kv_read.get(device, 0.0)
        peak = (
            gpus[device].spec.bandwidth_bytes_per_s
            if device in gpus
            else (host.bandwidth_bytes_per_s)
        )
        kv_seconds += kv / peak
        if device in gpus:
            gpu = gpus[device]
            uses.append(_device_use(gpu, weight_seconds=(read - kv) / peak))
    on_gpu = [d for d in gpus]
    cpu_read = loads.bytes_read.get(CPU, 0.0) - loads.kv_read.get(CPU, 0.0)
    return DecodeObservation(
        source=row.source_url,
        seconds=1.0 / row.measured_decode_tps,
        gpus=tuple(uses),
        dram=host.dram_type,
        cpu_bytes_seconds=cpu_read / host.bandwidth_bytes_per_s,
        cpu_flops_per_thread=loads.decode_flops.get(CPU, 0.0) / host.cores,
        kv_seconds=kv_seconds,
        flash_attn=row.decode.flash_attn,
        gpu_layers=sum(loads.layers.get(d, 0) for d in on_gpu),
        gpu_moe_layers=sum(loads.moe_layers.get(d, 0) for d in on_gpu),
        cpu_layers=loads.layers.get(CPU, 0),
        cpu_moe_layers=loads.moe_layers.get(CPU, 0),
        splits=loads.splits,
        fixed_seconds=loads.splits * row.decode.split_transfer_s,
    )


def _device_use(gpu: Gpu, **values: float) -> DeviceUse:
    return DeviceUse(
        name=gpu.spec.name,
        architecture=gpu.spec.architecture,
        flops_group=flops_group(gpu),
        bandwidth=gpu.spec.bandwidth_bytes_per_s,
        **values,
    )


def prefill_observation(
    row: PricedRow, coefficients: CostCoefficients
) -> PrefillObservation | None:
    """The row's prefill loads in the fit's terms; ``coefficients`` price the CPU's own compute
    (when nothing streams to a GPU), which the corpus cannot fit."""
    if row.prefill is None or row.measured_prefill_tps is None:
        return None
    cost, hardware = row.prefill, row.hardware
    loads, n = cost.loads, cost.n_ubatch
    gpus = _gpus_by_device(hardware)

    def ran(gpu: Gpu, device: str, **values: float) -> DeviceUse:
        """What ``device``'s share of the ubatch costs at ``gpu``'s spec FLOP/s."""
        per_second = n / gpu.spec.fp16_flops
        return _device_use(
            gpu,
            weight_seconds=0.0,
            work_seconds=loads.flops_per_token.get(device, 0.0) * per_second,
            attention_seconds=loads.attention_flops_per_token.get(device, 0.0) * per_second,
            float_work_seconds=loads.float_flops_per_token.get(device, 0.0) * per_second,
            expert_seconds=loads.expert_flops_per_token.get(device, 0.0) * per_second,
            **values,
        )

    uses = [
        ran(gpu, device, stored_bytes=loads.bytes_stored.get(device, 0.0))
        for device, gpu in gpus.items()
        if device in loads.bytes_stored
    ]
    cpu_stored = loads.bytes_stored.get(CPU, 0.0)
    cpu_work = loads.flops_per_token.get(CPU, 0.0) * n
    link_seconds, host_gpu, cpu_seconds = 0.0, None, 0.0
    if hardware.gpus and n >= coefficients.op_offload_min_batch and cpu_stored:
        first = hardware.gpus[0]
        link_seconds = cpu_stored / first.link_bytes_per_s
        host_gpu = ran(first, CPU)
    elif cpu_stored:
        host = hardware.host
        bandwidth = host.bandwidth_bytes_per_s * coefficients.host_bandwidth_efficiency(
            host.dram_type
        )
        cpu_seconds = max(
            cpu_work / (host.cores * coefficients.cpu_flops_per_core), cpu_stored / bandwidth
        )
    return PrefillObservation(
        source=row.source_url,
        seconds=n / row.measured_prefill_tps,
        gpus=tuple(uses),
        host_weight_link_seconds=link_seconds,
        host_work_gpu=host_gpu,
        cpu_seconds=cpu_seconds,
        flash_attn=cost.flash_attn,
        ubatches=cost.prefill_ubatches if cost.pipeline_parallel else 1,
        stages=len([d for d in gpus if loads.layers.get(d)]),
        splits=loads.splits,
        fixed_seconds=loads.splits * n * cost.split_transfer_s,
    )
