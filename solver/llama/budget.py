"""A ``MemoryReport`` held against a rig's memory budgets: per device, fits or over by how much.

The budgets come from the caller, as ``solver.placement.setting.capacities`` gives them (per
device: its memory, and what a launch may use after the GPU margin or the RAM reserve); here
is only the comparison, the one ``fit check``, ``fit memory --hardware``, ``fit test`` and the
tuner's pruning all read. Each rig GPU is held against its own budget; every other device (the
CPU, and RPC devices that are not rig GPUs) holds its buffers in this machine's RAM, so they
share the host's budget as one row.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from solver.llama.memory import DeviceMemory, MemoryReport
from solver.quantities import CPU, MIB


class DeviceBudget(BaseModel):
    """One rig GPU, or the host's share (the CPU and the devices it backs), against its budget."""

    model_config = ConfigDict(frozen=True)

    device: str = Field(description="the GPU, or the host row's members joined by '+'")
    members: tuple[str, ...] = Field(description="the report's devices this row sums")
    weights: int = Field(description="model buffers, repacked ones included")
    kv: int
    compute: int | None = Field(description="None: not modelled and left out of the total")
    output: int
    total: int
    memory: int = Field(description="the device's memory (the host's RAM for the host row)")
    budget: int = Field(description="what a launch may use: memory minus margin or reserve")
    host: bool = Field(default=False, description="the host's row: RAM shared by its members")

    @property
    def over(self) -> int:
        """Bytes beyond the budget (0 when it fits)."""
        return max(self.total - self.budget, 0)

    @property
    def fits(self) -> bool:
        return self.over == 0

    def to_json(self) -> dict[str, object]:
        return {
            **self.model_dump(mode="json"),
            "over": self.over,
            "fits": self.fits,
        }


class BudgetVerdict(BaseModel):
    """A launch against the rig's budgets: GPU rows in the report's order, then the host's."""

    model_config = ConfigDict(frozen=True)

    devices: tuple[DeviceBudget, ...]
    compute_modelled: bool = Field(
        description="False: some compute buffers are not modelled and the totals leave them out"
    )

    @property
    def fits(self) -> bool:
        return all(row.fits for row in self.devices)

    @property
    def over(self) -> tuple[DeviceBudget, ...]:
        """The rows over budget, GPUs first."""
        return tuple(row for row in self.devices if not row.fits)

    def to_json(self) -> dict[str, object]:
        return {
            "fits": self.fits,
            "compute_modelled": self.compute_modelled,
            "devices": [row.to_json() for row in self.devices],
        }


def budget_verdict(
    report: MemoryReport, capacities: Mapping[str, tuple[int, int]]
) -> BudgetVerdict:
    """``report``'s devices against ``capacities`` (device -> (memory, budget); ``CPU`` is the
    host's RAM, every other key a rig GPU). A rig GPU the report does not use is left out."""
    gpu_rows = []
    host: list[tuple[str, DeviceMemory]] = []
    for name, device in report.devices.items():
        if name != CPU and name in capacities:
            memory, budget = capacities[name]
            gpu_rows.append(_row(name, [(name, device)], memory, budget, host=False))
        else:
            host.append((name, device))
    memory, budget = capacities[CPU]
    host_row = _row("+".join(name for name, _ in host) or CPU, host, memory, budget, host=True)
    modelled = all(device.compute is not None for device in report.devices.values())
    return BudgetVerdict(devices=(*gpu_rows, host_row), compute_modelled=modelled)


def _row(
    label: str, devices: list[tuple[str, DeviceMemory]], memory: int, budget: int, *, host: bool
) -> DeviceBudget:
    """One budget row summing ``devices``' buffers (a compute buffer not modelled on any of
    them leaves the row's compute unknown; the totals already leave it out)."""
    computes = [d.compute for _, d in devices]
    return DeviceBudget(
        device=label,
        members=tuple(name for name, _ in devices),
        weights=sum(d.weights + d.repack for _, d in devices),
        kv=sum(d.kv for _, d in devices),
        compute=None if any(c is None for c in computes) else sum(c or 0 for c in computes),
        output=sum(d.output for _, d in devices),
        total=sum(d.total for _, d in devices),
        memory=memory,
        budget=budget,
        host=host,
    )


def over_mib(row: DeviceBudget) -> int:
    """The excess in whole MiB, rounded up: a row 1 byte over is over by 1 MiB, never by 0."""
    return -(-row.over // MIB)
