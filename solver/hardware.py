"""The hardware a placement runs on: GPUs, host memory, the links between them.

A ``Hardware`` is what the memory limits and the cost model read. It comes from a scenario
file in ``data/hardware/`` (or one a user writes for a what-if) or from detection on this
machine (``solver.hardware_detect``). Units are in the field names: bytes, bytes/s, FLOP/s.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

GIB = 1024**3
GB = 1000**3


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


class Gpu(BaseModel):
    """A GPU in a rig, as llama.cpp's CUDA backend numbers it (``CUDA0``, ``CUDA1``...)."""

    model_config = ConfigDict(frozen=True)

    device: str = Field(description="llama.cpp device name, e.g. CUDA0")
    spec: GpuSpec
    free_bytes: int | None = Field(default=None, description="free VRAM when detected")
    pcie_gen: int = Field(description="PCIe generation of the slot actually used")
    pcie_lanes: int = Field(description="lanes of the slot actually used")

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


class Hardware(BaseModel):
    """A rig: GPUs in llama.cpp device order, plus the host."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    gpus: tuple[Gpu, ...] = ()
    host: Host

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
