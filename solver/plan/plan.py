"""A placement in exactly the terms llama-server can express.

``-ngl N`` puts the last N "slots" on GPUs, where slots are the repeating layers followed by
the output head (so any offload takes the head along); ``-ts`` splits those slots into
contiguous per-GPU ranges in device order; ``-ot`` rules move units of single layers elsewhere.
A ``Plan`` stores the decision in that form, so rendering it to arguments is mechanical and
nothing the solver plans is inexpressible.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from solver.plan.units import Unit
from solver.quantities import CPU


class Plan(BaseModel):
    """Where every layer, unit and the output head live."""

    model_config = ConfigDict(frozen=True)

    gpus: tuple[str, ...] = Field(description="GPU device names in llama.cpp order")
    n_layers: int
    gpu_layers: tuple[int, ...] = Field(description="repeating layers per GPU, in order")
    output_device: str = Field(
        default=CPU,
        description="CPU, or the GPU holding the output head: the last GPU holding layers "
        "or one after it in device order",
    )
    overrides: dict[Unit, tuple[str | None, ...]] = Field(
        default_factory=dict,
        description="per unit, per layer: device the unit is moved to, None = follows layer",
    )

    @model_validator(mode="after")
    def _check_shape(self) -> Plan:
        if len(self.gpu_layers) != len(self.gpus):
            raise ValueError("gpu_layers needs one count per GPU")
        if any(count < 0 for count in self.gpu_layers) or sum(self.gpu_layers) > self.n_layers:
            raise ValueError("GPU layer counts must be >= 0 and sum to at most n_layers")
        if self.output_device == CPU and any(self.gpu_layers):
            # -ngl N puts the last N slots on GPUs and the head is the very last slot.
            raise ValueError("with layers on a GPU the output head is on a GPU too")
        if self.output_device != CPU:
            # The head is the last -ngl slot: on the last GPU holding layers or a later one.
            holding = [i for i, count in enumerate(self.gpu_layers) if count]
            allowed = self.gpus[holding[-1] if holding else 0 :]
            if self.output_device not in allowed:
                raise ValueError(
                    f"the output head cannot be on {self.output_device}: it is the last -ngl "
                    f"slot, so it goes to {' or '.join(allowed) or 'the CPU'}"
                )
        for unit, devices in self.overrides.items():
            if len(devices) != self.n_layers:
                raise ValueError(f"overrides for {unit} need one entry per layer")
        return self

    @property
    def n_cpu_layers(self) -> int:
        return self.n_layers - sum(self.gpu_layers)

    @property
    def n_gpu_layers(self) -> int:
        """The ``-ngl`` value: GPU slots, counting the output head as one."""
        return sum(self.gpu_layers) + int(self.output_on_gpu)

    @property
    def output_on_gpu(self) -> bool:
        return self.output_device != CPU

    @cached_property
    def layer_devices(self) -> tuple[str, ...]:
        """Device of each repeating layer (its norms, router and KV cache live there)."""
        devices = [CPU] * self.n_cpu_layers
        for gpu, count in zip(self.gpus, self.gpu_layers, strict=True):
            devices.extend([gpu] * count)
        return tuple(devices)

    def unit_device(self, layer: int, unit: Unit) -> str:
        moved = self.overrides.get(unit)
        if moved is not None and moved[layer] is not None:
            return moved[layer]
        return self.layer_devices[layer]

    def tensor_split(self) -> tuple[int, ...]:
        """``-ts`` as integer slot counts per GPU (the output head counted where it lands)."""
        counts = list(self.gpu_layers)
        if self.output_on_gpu:
            index = self.gpus.index(self.output_device)
            counts[index] += 1
        return tuple(counts)

    @property
    def devices_used(self) -> tuple[str, ...]:
        used = {*self.layer_devices, self.output_device}
        for devices in self.overrides.values():
            used.update(d for d in devices if d is not None)
        return tuple(d for d in (CPU, *self.gpus) if d in used)


def split_slots(proportions: tuple[float, ...], n_slots: int) -> tuple[int, ...]:
    """Slots per GPU that llama.cpp gives ``-ts proportions`` for ``n_slots`` GPU slots.

    Mirrors ``llama_model::load_tensors`` (src/llama-model.cpp): cumulative split points in
    float32, normalised, then slot i goes to the first GPU whose point exceeds i / n_slots.
    """
    points = np.cumsum(np.asarray(proportions, dtype=np.float32), dtype=np.float32)
    points = (points / points[-1]).astype(np.float32)
    counts = [0] * len(proportions)
    for slot in range(n_slots):
        position = np.float32(slot) / np.float32(n_slots)
        gpu = int(np.searchsorted(points, position, side="right"))
        counts[min(gpu, len(counts) - 1)] += 1
    return tuple(counts)
