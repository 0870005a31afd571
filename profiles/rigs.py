"""``--hardware NAME`` for every command: the rig, the CPU that goes with it, and its id.

A scenario (bundled name or TOML file) describes GPUs and a host, not the host CPU's
instruction set, so a command given one uses its documented default CPU (``fit solve`` and
``fit whatif``: a generic AVX2 desktop; ``fit memory``: this machine). ``detect`` is this
machine: its own CPU decides which weights llama.cpp repacks, and its machine id selects the
calibration ``fit calibrate`` saved for it.

This lives above ``solver.hardware.detect.load_rig`` (which gives the ``Hardware`` alone)
because the CPU features are ``solver.llama``'s record, a layer above ``solver.hardware``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from profiles.calibration_store import this_machine
from profiles.models_conf import write_atomic
from solver.hardware.detect import DETECT, DetectionReport, detect, load_rig
from solver.hardware.scenario import Hardware, hardware_to_toml
from solver.llama.device_map import CpuFeatures


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
