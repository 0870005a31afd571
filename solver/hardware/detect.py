"""This machine's hardware: GPUs through NVML, RAM from /proc/meminfo, cores from sysfs.

GPU order. llama.cpp names GPUs ``CUDA0, CUDA1, ...`` in the CUDA runtime's order. NVML numbers
GPUs by PCI bus id, but CUDA's default order (``CUDA_DEVICE_ORDER=FASTEST_FIRST``) puts the
fastest GPU first, and ``CUDA_VISIBLE_DEVICES`` filters and reorders; so NVML's index is not
llama.cpp's. Detection therefore asks the CUDA driver itself (``libcuda.so.1``, installed with
the driver, through ctypes: ``cuDeviceGet`` + ``cuDeviceGetPCIBusId``) for the PCI bus id of
each CUDA ordinal, in the environment fit runs in, and matches NVML devices by bus id. Only if
the driver library cannot be loaded does it fall back to PCI bus order (what
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` gives), applying ``CUDA_VISIBLE_DEVICES`` itself, and says so
in the notes.

PCIe link. A GPU drops its link to a lower generation when idle, so the current generation
understates the slot. ``Gpu.pcie_gen``/``pcie_lanes`` take NVML's "maximum possible with this
device and system" (``nvmlDeviceGetMaxPcieLinkGeneration``/``Width``, the lower of card and
slot); the current values are kept in ``DetectedGpu`` for display.

Host DRAM bandwidth cannot be read without root tools, so it is a documented default
(``DEFAULT_HOST_BANDWIDTH``) unless ``measure_bandwidth`` asks for a short copy benchmark,
which is labelled ``measured``.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
import warnings
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from solver.errors import BadInput
from solver.hardware.scenario import (
    GIB,
    Gpu,
    GpuSpec,
    Hardware,
    Host,
    describe_hardware,
    dram_bandwidth_bytes_per_s,
    find_gpu_spec,
    load_hardware,
)

# DDR5-4800 is JEDEC's base DDR5 speed; two channels is every desktop board's minimum.
DEFAULT_HOST_BANDWIDTH = dram_bandwidth_bytes_per_s(4800, 2)
DEFAULT_BANDWIDTH_SOURCE = (
    "default: DDR5-4800 dual channel assumed, not detected; "
    "set memory, mt_per_s and channels to your DIMMs"
)


class DetectedGpu(BaseModel):
    """What NVML (and the CUDA driver) report for one GPU, before the spec-table lookup."""

    model_config = ConfigDict(frozen=True)

    cuda_index: int
    nvml_index: int
    name: str
    uuid: str
    pci_bus_id: str
    total_bytes: int
    free_bytes: int
    pcie_gen_current: int
    pcie_lanes_current: int
    pcie_gen_max: int
    pcie_lanes_max: int


class DetectionReport(BaseModel):
    """The detected rig plus the raw per-GPU facts behind it."""

    model_config = ConfigDict(frozen=True)

    hardware: Hardware
    gpus: tuple[DetectedGpu, ...] = ()


def detect_hardware(*, measure_bandwidth: bool = False) -> Hardware:
    """This machine as a ``Hardware``; a machine without NVIDIA GPUs gets none and a note."""
    return detect(measure_bandwidth=measure_bandwidth).hardware


DETECT = "detect"


def load_rig(name: str) -> Hardware:
    """``--hardware NAME``: a bundled scenario, a scenario TOML file, or ``detect`` for this
    machine. The CLI's commands call it through ``profiles.rigs.resolve_rig``, which adds the
    CPU features (a ``solver.llama`` record) and machine id that go with the rig."""
    return detect_hardware() if name == DETECT else load_hardware(name)


def detect(*, measure_bandwidth: bool = False) -> DetectionReport:
    """Detect GPUs, RAM and cores; nothing here raises for a missing GPU or driver."""
    detected, notes = detect_gpus()
    gpus = []
    for gpu in detected:
        spec, note = _spec_for(gpu)
        if note:
            notes.append(note)
        gpus.append(
            Gpu(
                device=f"CUDA{gpu.cuda_index}",
                spec=spec,
                free_bytes=gpu.free_bytes,
                pcie_gen=gpu.pcie_gen_max,
                pcie_lanes=gpu.pcie_lanes_max,
            )
        )
    host = detect_host(measure_bandwidth=measure_bandwidth)
    hardware = Hardware(name="detected", gpus=tuple(gpus), host=host, notes=tuple(notes))
    described = hardware.model_copy(update={"description": describe_hardware(hardware)})
    return DetectionReport(hardware=described, gpus=tuple(detected))


def _spec_for(gpu: DetectedGpu) -> tuple[GpuSpec, str]:
    """The table row for a detected GPU with NVML's exact VRAM total, or a stub and a note."""
    try:
        spec = find_gpu_spec(gpu.name, gpu.total_bytes)
    except BadInput:
        stub = GpuSpec(
            name=gpu.name,
            vram_bytes=gpu.total_bytes,
            bandwidth_bytes_per_s=0.0,
            fp16_flops=0.0,
            pcie_gen=gpu.pcie_gen_max,
            pcie_lanes=gpu.pcie_lanes_max,
            source="detected by NVML; not in data/gpus.csv",
        )
        note = (
            f"{gpu.name} is not in data/gpus.csv: its bandwidth and FLOP/s are unknown (0); "
            "add a row, or set bandwidth_gb_s and fp16_tflops in the saved scenario"
        )
        return stub, note
    return spec.model_copy(update={"vram_bytes": gpu.total_bytes}), ""


# --- GPUs -------------------------------------------------------------------------------------


def _import_pynvml():
    # The 'pynvml' distribution warns on import that it wraps nvidia-ml-py; the API is the same.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import pynvml
    return pynvml


def detect_gpus() -> tuple[list[DetectedGpu], list[str]]:
    """NVIDIA GPUs in CUDA order, and notes on anything that could not be determined."""
    pynvml = _import_pynvml()
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        reason = f"{type(error).__name__}: {error}"
        return [], [f"no NVIDIA GPU detected: NVML could not start ({reason})"]
    try:
        by_bus = {}
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            gpu = _nvml_facts(pynvml, handle, index)
            by_bus[parse_pci_bus_id(gpu["pci_bus_id"])] = gpu
    finally:
        pynvml.nvmlShutdown()
    if not by_bus:
        return [], ["no NVIDIA GPU detected: NVML found no devices"]
    order, notes = cuda_bus_order(list(by_bus.values()))
    if len(order) < len(by_bus):
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
        notes.append(
            f"CUDA sees {len(order)} of the {len(by_bus)} GPUs NVML reports "
            f"(CUDA_VISIBLE_DEVICES={hidden!r}); only those are listed"
        )
    detected = [
        DetectedGpu(cuda_index=cuda_index, **by_bus[bus]) for cuda_index, bus in enumerate(order)
    ]
    return detected, notes


def _nvml_facts(pynvml, handle, index: int) -> dict:
    def text(value) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    return {
        "nvml_index": index,
        "name": text(pynvml.nvmlDeviceGetName(handle)),
        "uuid": text(pynvml.nvmlDeviceGetUUID(handle)),
        "pci_bus_id": text(pynvml.nvmlDeviceGetPciInfo(handle).busId),
        "total_bytes": int(memory.total),
        "free_bytes": int(memory.free),
        "pcie_gen_current": int(pynvml.nvmlDeviceGetCurrPcieLinkGeneration(handle)),
        "pcie_lanes_current": int(pynvml.nvmlDeviceGetCurrPcieLinkWidth(handle)),
        "pcie_gen_max": int(pynvml.nvmlDeviceGetMaxPcieLinkGeneration(handle)),
        "pcie_lanes_max": int(pynvml.nvmlDeviceGetMaxPcieLinkWidth(handle)),
    }


def parse_pci_bus_id(bus_id: str) -> tuple[int, int, int, int]:
    """'00000000:01:00.0' (NVML) or '0000:01:00.0' (CUDA) -> (domain, bus, device, function)."""
    try:
        domain, bus, rest = bus_id.strip().lower().split(":")
        device, function = rest.split(".")
        return int(domain, 16), int(bus, 16), int(device, 16), int(function, 16)
    except ValueError:
        raise BadInput(f"unreadable PCI bus id {bus_id!r}") from None


def cuda_bus_order(gpus: list[dict]) -> tuple[list[tuple[int, int, int, int]], list[str]]:
    """PCI bus ids in CUDA ordinal order: from the CUDA driver, else PCI order (with a note)."""
    from_driver = _cuda_driver_bus_ids()
    known = {parse_pci_bus_id(gpu["pci_bus_id"]) for gpu in gpus}
    if from_driver is not None and set(from_driver) <= known:
        return from_driver, []
    notes = [
        "CUDA driver library not usable: GPUs listed in PCI bus order, which is CUDA's order "
        "only with CUDA_DEVICE_ORDER=PCI_BUS_ID"
    ]
    by_bus = sorted(gpus, key=lambda gpu: parse_pci_bus_id(gpu["pci_bus_id"]))
    visible = apply_cuda_visible_devices(
        [gpu["uuid"] for gpu in by_bus], os.environ.get("CUDA_VISIBLE_DEVICES")
    )
    uuid_to_bus = {gpu["uuid"]: parse_pci_bus_id(gpu["pci_bus_id"]) for gpu in gpus}
    return [uuid_to_bus[uuid] for uuid in visible], notes


def apply_cuda_visible_devices(uuids: list[str], value: str | None) -> list[str]:
    """The devices CUDA_VISIBLE_DEVICES leaves visible, in its order.

    Entries are ordinals or UUID prefixes ('GPU-8f3a...'); like CUDA, parsing stops at the
    first entry that names no device, and an unset variable leaves every device visible.
    """
    if value is None:
        return list(uuids)
    visible: list[str] = []
    for entry in (part.strip() for part in value.split(",")):
        match = None
        if entry.isdigit() and int(entry) < len(uuids):
            match = uuids[int(entry)]
        elif entry.startswith("GPU-"):
            found = [uuid for uuid in uuids if uuid.startswith(entry)]
            match = found[0] if len(found) == 1 else None
        if match is None or match in visible:
            break
        visible.append(match)
    return visible


def _cuda_driver_bus_ids() -> list[tuple[int, int, int, int]] | None:
    """PCI bus id of each CUDA ordinal as the driver numbers them, or None if unavailable."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    if cuda.cuInit(0) != 0:
        return None
    count = ctypes.c_int()
    if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return None
    bus_ids = []
    for ordinal in range(count.value):
        device = ctypes.c_int()
        buffer = ctypes.create_string_buffer(64)
        if cuda.cuDeviceGet(ctypes.byref(device), ordinal) != 0:
            return None
        if cuda.cuDeviceGetPCIBusId(buffer, len(buffer), device) != 0:
            return None
        bus_ids.append(parse_pci_bus_id(buffer.value.decode()))
    return bus_ids


# --- host -------------------------------------------------------------------------------------


def detect_host(*, measure_bandwidth: bool = False) -> Host:
    """RAM total and available, physical and logical cores, DRAM bandwidth (see module doc)."""
    total, available = read_meminfo()
    physical, logical = cpu_counts()
    if measure_bandwidth:
        bandwidth = measure_host_bandwidth(threads=physical)
        source = f"measured: numpy copy on {physical} threads, read+write bytes (STREAM copy)"
    else:
        bandwidth, source = DEFAULT_HOST_BANDWIDTH, DEFAULT_BANDWIDTH_SOURCE
    return Host(
        ram_bytes=total,
        available_bytes=available,
        bandwidth_bytes_per_s=bandwidth,
        cores=physical,
        threads=logical,
        bandwidth_source=source,
    )


def read_meminfo(path: Path = Path("/proc/meminfo")) -> tuple[int, int | None]:
    """MemTotal and MemAvailable in bytes (the file counts kB, which are KiB)."""
    fields: dict[str, int] = {}
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(":")
            parts = value.split()
            if parts and parts[0].isdigit():
                fields[key] = int(parts[0]) * 1024
    except OSError:
        pass
    if "MemTotal" in fields:
        return fields["MemTotal"], fields.get("MemAvailable")
    # Not Linux, or /proc is hidden: the page count is the portable fallback.
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), None


def cpu_counts(sys_cpu: Path = Path("/sys/devices/system/cpu")) -> tuple[int, int]:
    """(physical cores, logical CPUs) usable by this process.

    Physical cores are distinct (package, core) pairs among the CPUs this process may run on,
    read from sysfs topology; without sysfs they equal the logical count.
    """
    usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    logical = len(usable) or os.cpu_count() or 1
    cores = set()
    for cpu in usable:
        topology = sys_cpu / f"cpu{cpu}" / "topology"
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return logical, logical
        cores.add((package, core))
    return (len(cores) or logical), logical


def measure_host_bandwidth(
    *, threads: int, seconds: float = 0.5, budget_bytes: int = 1 * GIB
) -> float:
    """Aggregate copy bandwidth in bytes/s: each thread copies its own buffers for ``seconds``.

    Counts read + write bytes per copy (the STREAM 'copy' convention). numpy releases the GIL
    while copying, so threads run in parallel. Buffers total ``budget_bytes`` so that they
    exceed any last-level cache.
    """
    import numpy as np

    threads = max(1, threads)
    size = max(budget_bytes // (2 * threads), 1 << 20)
    moved = [0] * threads
    start_barrier = threading.Barrier(threads + 1)

    def worker(slot: int) -> None:
        source = np.ones(size, dtype=np.uint8)
        target = np.empty_like(source)
        np.copyto(target, source)  # first touch, outside the timed part
        start_barrier.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            np.copyto(target, source)
            moved[slot] += 2 * size

    workers = [threading.Thread(target=worker, args=(slot,)) for slot in range(threads)]
    for thread in workers:
        thread.start()
    start_barrier.wait()  # every buffer is allocated and touched: the clock starts now
    began = time.perf_counter()
    for thread in workers:
        thread.join()
    return float(round(sum(moved) / (time.perf_counter() - began)))
