"""Compute and output buffers as functions of the plan: what the CP-SAT model assumes per device.

What a device's buffers depend on (``solver.llama.compute_buffer`` replays llama.cpp's
``sched_reserve``: the scheduler cuts the graph into splits, ``ggml_gallocr`` sizes one buffer
per backend as the peak of the tensors alive on it; read the replay for the details):

- whether the device runs any layer (its attention, norms, KV): the peak of one layer's
  intermediates (attention scores without flash attention grow with the context, FFN
  activations with ``n_ff`` x ubatch) plus the copies of the split inputs that end on it
  (the residual stream, positions, KQ masks: n_kv x ubatch);
- which units it runs besides (dense FFN, routed experts: ``n_ff_exp`` x ``n_expert_used`` x
  ubatch, shared experts): a device holding only some layers' experts runs their FFN splits;
- whether it holds the output head: the logits, ``n_vocab`` x outputs, and the final norm;
- whether every layer is offloaded (llama.cpp then pins the layers' nodes to their devices
  and the first GPU runs the input layer's ops too; ``_pins`` in ``compute_buffer``);
- ubatch, context, flash attention, KV types: fixed for a setting, so constants here;
- how many layers it runs, barely: the allocator reuses freed memory, so a second layer adds
  what the first one's outputs keep alive and further layers add nothing (a plateau);
- on CUDA with ubatch >= 32, the first GPU also copies the CPU-held weights of the ops it
  offloads (``offload_op``) into its compute buffer: more experts on the CPU, more buffer;
- the host's output buffer (``output_reserve``): ``n_vocab`` x ``n_seq_max`` floats in host
  memory, counted here with the CPU's buffers, constant for a setting.

Measured with the replay (RPC devices, ``-c 8192 -ub 512 -fa on``, compute MiB per device;
``python /tmp`` scripts not kept, the numbers below are what they printed):

==============================  =====  ===================================================
model / plan                     CPU    GPUs
==============================  =====  ===================================================
gpt-oss-20b, all on the host     104.4  0 / 0
head only on RPC0                104.4  33.8 / 0
1 layer on RPC0 (+ head)         104.4  81.1 / 0
2..12 layers on RPC0 (+ head)    104.4  104.4 / 0
all 24 on RPC0 (full offload)     91.4  195.0 / 0
12 + 12, head on RPC1             91.4  195.0 / 144.3
1 + 12, head on RPC1             104.4  81.1 / 87.6
12 + 12, RPC1's experts on CPU    87.5  98.8 / 50.5
==============================  =====  ===================================================

So a GPU's buffer is far from "the largest one seen": 0.8 MiB for a head after other GPUs'
layers, 50 MiB for attention without experts, 195 MiB for the first GPU of a full offload.

The model: per device a few features of the plan (``FEATURES``: runs layers, holds the
head, each movable unit it holds, and for a device with any of those whether every layer is
offloaded) form its *combination*; the CP-SAT model has one exact literal per feature and a
bound ``buffer[k] >= assumed(k, combination)`` enforced by exactly that combination.
``assumed`` is learned from replays (``BufferBook``): a combination's first replay sets it
(down or up from the default), later ones can only raise it (the largest replay seen with
that combination). A combination never replayed gets the device kind's largest value seen, as
before. Within a combination buffers still vary (1 layer vs 2, how many experts stay on the
CPU under CUDA's op offload), so the assumption is exact for the plans replayed and an upper
bound of them; the plan the solver returns is always replayed itself (``solve``), and the
report says what was assumed beside what came out.

Termination (``BufferBook.learn``): per (device, combination) the assumption moves down at
most once and then only up, to values of replayed plans; a round either ends the loop or
replays a combination for the first time or raises one, or cuts a budget, so the loop is
finite; ``solve.MAX_ROUNDS`` caps it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from solver.cost.model import MOVABLE
from solver.plan.plan import Plan
from solver.plan.units import Unit
from solver.quantities import CPU

LAYERS = "layers"
OUTPUT = "output"
FULL_OFFLOAD = "full_offload"
FEATURES: tuple[str, ...] = (LAYERS, OUTPUT, *MOVABLE, FULL_OFFLOAD)

Combination = tuple[str, ...]  # the features a device has, in ``FEATURES`` order


def own_features(units: Sequence[Unit]) -> tuple[str, ...]:
    """A device's own features in a model whose layers have these movable units."""
    return (LAYERS, OUTPUT, *(g for g in MOVABLE if g in units))


def combination(own: Sequence[str], full_offload: bool) -> Combination:
    """The combination of a device with ``own`` features: ``full_offload`` only counts for a
    device that runs something (an idle one has no buffer whatever the others do)."""
    present = set(own)
    if present and full_offload:
        present.add(FULL_OFFLOAD)
    return tuple(f for f in FEATURES if f in present)


def plan_combination(plan: Plan, device: str, layer_units: Sequence[Sequence[Unit]]) -> Combination:
    """What ``device`` runs under ``plan``; ``layer_units[il]``: the movable units of layer il."""
    own = []
    if device in plan.layer_devices:
        own.append(LAYERS)
    if plan.output_device == device:
        own.append(OUTPUT)
    for g in MOVABLE:
        if any(g in units and plan.unit_device(il, g) == device for il, units in
               enumerate(layer_units)):  # fmt: skip
            own.append(g)
    return combination(own, plan.n_cpu_layers == 0)


def describe(combo: Combination) -> str:
    """A combination as the report prints it: ``layers+experts+output``, or ``nothing``."""
    return "+".join(combo) or "nothing"


class BufferTable(BaseModel):
    """Per device, the compute + output buffer bytes the model assumes for each combination."""

    model_config = ConfigDict(frozen=True)

    assumed: dict[str, dict[Combination, int]] = Field(
        description="device -> combination -> bytes, learned from replays"
    )
    default: dict[str, int] = Field(description="device -> bytes for a combination not replayed")

    def bytes_for(self, device: str, combo: Combination) -> int:
        return self.assumed.get(device, {}).get(combo, self.default.get(device, 0))

    def known(self, device: str, combo: Combination) -> bool:
        return combo in self.assumed.get(device, {})


class Learned(BaseModel):
    """One change of an assumption: the device, its combination, before and after (bytes)."""

    model_config = ConfigDict(frozen=True)

    device: str
    combo: Combination
    before: int
    after: int


class BufferBook:
    """The assumptions, learned from replays (the rule in the module docstring)."""

    def __init__(self, devices: Sequence[str]) -> None:
        self.devices = tuple(devices)
        self.observed: dict[str, dict[Combination, int]] = {d: {} for d in self.devices}

    def table(self) -> BufferTable:
        """The current assumptions; an unreplayed combination gets the largest buffer seen on
        a device of its kind (the host, or any GPU)."""
        host = max(self.observed.get(CPU, {}).values(), default=0)
        gpus = [v for d in self.devices if d != CPU for v in self.observed[d].values()]
        gpu = max(gpus, default=0)
        default = {d: host if d == CPU else gpu for d in self.devices}
        assumed = {d: dict(sorted(self.observed[d].items())) for d in self.devices}
        return BufferTable(assumed=assumed, default=default)

    def learn(self, device: str, combo: Combination, nbytes: int) -> Learned | None:
        """Record a replay; the change of the assumption, if any."""
        table = self.table()
        before = table.bytes_for(device, combo)
        seen = self.observed[device]
        after = max(seen[combo], nbytes) if combo in seen else nbytes
        seen[combo] = after
        if after == before:
            return None
        return Learned(device=device, combo=combo, before=before, after=after)
