"""``--hardware NAME`` for every command: the rig, the CPU that goes with it, and its id.

A scenario (bundled name or TOML file) describes GPUs and a host, not the host CPU's
instruction set, so a command given one uses its documented default CPU (``fit solve`` and
``fit whatif``: a generic AVX2 desktop; ``fit memory``: this machine). ``detect`` is this
machine: its own CPU decides which weights llama.cpp repacks, and its machine id selects the
calibration ``fit calibrate`` saved for it.

This lives above ``solver.hardware.detect.load_rig`` (which gives the ``Hardware`` alone)
because the CPU features are ``solver.llama``'s record, a layer above ``solver.hardware``.
``loopback_rpc_rig`` is the rig the tests and benchmarks that launch llama-server on local
``ggml-rpc-server`` devices describe those devices as.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from profiles.calibration_store import this_machine
from profiles.models_conf import write_atomic
from solver.hardware.detect import DETECT, DetectionReport, detect, load_rig
from solver.hardware.scenario import Gpu, GpuSpec, Hardware, Host, hardware_to_toml
from solver.llama.device_map import CpuFeatures
from solver.quantities import GIB


class Rig(BaseModel):
    """What ``--hardware NAME`` stands for."""

    model_config = ConfigDict(frozen=True)

    hardware: Hardware
    cpu: CpuFeatures | None = Field(
        default=None, description="the CPU deciding repacking; None: the command's default"
    )
    machine_id: str | None = Field(
        default=None, description="set for this machine only: whose calibration applies"
    )

    @property
    def is_this_machine(self) -> bool:
        return self.machine_id is not None


def resolve_rig(name: str) -> Rig:
    """A bundled scenario, a scenario TOML file, or ``detect`` for this machine (its GPUs,
    RAM and cores, its CPU's features and its machine id)."""
    if name != DETECT:
        return Rig(hardware=load_rig(name))
    hardware, machine = this_machine()
    return Rig(hardware=hardware, cpu=CpuFeatures.detect(), machine_id=machine)


class RpcRequest(BaseModel):
    """``fit hardware detect --rpc EP,... --rpc-gpu MODEL,... --link-gb-s X``."""

    model_config = ConfigDict(frozen=True)

    endpoints: tuple[str, ...]
    gpu_models: tuple[str, ...]
    link_gb_s: float


def detect_this_machine(
    *,
    save: Path | None = None,
    measure_bandwidth: bool = False,
    rpc: RpcRequest | None = None,
) -> DetectionReport:
    """``fit hardware detect``: this machine's rig, also written as a scenario TOML to ``save``
    (atomic, keeping a ``.bak``) when given. With ``rpc``, its GPUs are the devices of those
    ggml-rpc-servers (``profiles.rpc_probe``)."""
    report = detect(measure_bandwidth=measure_bandwidth)
    if rpc is not None:
        from profiles.rpc_probe import rpc_rig

        rig = rpc_rig(report.hardware, rpc.endpoints, rpc.gpu_models, rpc.link_gb_s)
        report = DetectionReport(hardware=rig)
    if save is not None:
        write_atomic(save, hardware_to_toml(report.hardware))
    return report


def loopback_rpc_rig(endpoints: Sequence[str], vram_bytes: int) -> Hardware:
    """``ggml-rpc-server`` devices on this machine described as a rig: each endpoint one GPU
    ``RPC<i>`` with ``vram_bytes`` of memory, as llama-server numbers them in ``--rpc`` order.

    Their speeds are a stated assumption, not a measurement (they are this CPU behind a
    socket): a 200 GB/s "GPU" beside a 20 GB/s, 2-core host, so that the cost model prefers
    weights on the devices as it would on a real rig. Tests and benchmarks that launch
    llama-server on RPC devices price plans under this one description.
    """
    spec = GpuSpec(
        name="rpc-cpu",
        vram_bytes=vram_bytes,
        bandwidth_bytes_per_s=200e9,
        fp16_flops=2e12,
        pcie_gen=4,
        pcie_lanes=16,
    )
    gpus = tuple(
        Gpu(device=f"RPC{i}", spec=spec, pcie_gen=4, pcie_lanes=16, rpc_endpoint=endpoint)
        for i, endpoint in enumerate(endpoints)
    )
    host = Host(ram_bytes=8 * GIB, bandwidth_bytes_per_s=20e9, cores=2)
    return Hardware(name="rpc-test", gpus=gpus, host=host)
