"""Compute and output buffers as functions of the plan: what the CP-SAT model assumes per device.

What a device's buffers depend on (``solver.llama.compute_buffer`` replays llama.cpp's
``sched_reserve``: the scheduler cuts the graph into splits, ``ggml_gallocr`` sizes one buffer
per backend as the peak of the tensors alive on it at once):

- whether the device runs any layer: one layer's intermediates (attention scores without
  flash attention grow with the context, FFN activations with ``n_ff`` x ubatch) plus the
  copies of the inputs of the splits that run on it (the residual stream, positions, KQ
  masks of n_kv x ubatch);
- which units it runs (dense FFN; routed experts, ``n_ff_exp`` x ``n_expert_used`` x ubatch;
  shared experts): a device with only some layers' experts runs just their FFN splits;
- whether it holds the output head: its logits are for one output row at reserve time, so the
  head alone is small (0.5-1 MiB; 12-34 MiB where the final norm's inputs are copied too);
- whether every layer is offloaded: llama.cpp then pins each layer's ``norm`` and ``l_last``
  to the layer's device (``graph_get_cb`` in ``src/llama-context.cpp``), and the devices'
  buffers roughly double; on several GPUs without any ``-ot`` it also pipelines (four
  copies of each split's inputs): RPC0 of a 9-slot ``-ts 5,4`` plan 19.98 MiB in the real
  log, 7.35 MiB with one ``-ot`` (the fit-params benchmark);
- how many layers, barely: a second layer adds what the first one's outputs keep alive, more
  add nothing (the allocator reuses freed memory);
- ubatch, context, flash attention, KV types: fixed within a setting (constants here);
- on CUDA with ubatch >= 32, the first GPU also copies the CPU-held weights of the ops it
  offloads (``offload_op``) into its compute buffer, so it grows with what the CPU holds;
- the host's output buffer (``output_reserve``): ``n_vocab`` x ``n_seq_max`` floats in host
  memory, constant, counted with the CPU's buffers.

Measured with the replay (``python -m benchmarks.buffer_combinations``: two RPC devices,
``-c 8192 -ub 512 -fa on``; compute + output MiB of RPC0, with the head unless said):

====================================  ===========  =============  ===========  ===========
plan                                  gpt-oss-20b  qwen3-30b-a3b  gemma-3-27b  llama-3.3-70b
====================================  ===========  =============  ===========  ===========
all on the host (the CPU's buffers)   105.2        96.6           189.0        256.5
the head only                         33.8         0.7            1.0          0.5
1 layer                               81.1         48.0           38.5         72.0
2 layers / half the layers            104.4        88.0 / 100.0   148.5/156.5  208.0
half, the head on RPC1 (RPC1)         0.8          0.6            1.0          0.5
all layers (full offload)             195.0        168.1          329.6        456.1
split in two, full offload (RPC1)     144.3        132.0          235.1        312.0
split in two, experts on the host     53.8         56.0           -            -
====================================  ===========  =============  ===========  ===========

(qwen3.6-35b-a3b, a qwen35moe hybrid: head 12.0, 1 layer 68.0, 2 or more 76.0, full offload
152.1, experts on the host 76.1.) So a GPU's buffer is far from "the largest one seen", which
is what every GPU was charged before: 0.5 MiB for a head after another GPU's layers, half as
much without the experts, twice as much under a full offload.

The model: per device, a few features of the plan (``FEATURES``: runs layers, holds the head,
each movable unit it holds, for a device with any of those whether every layer is offloaded
and whether llama.cpp pipelines, and for the op-offload GPU whether the host runs layers and
routed experts) form its
*combination*; the CP-SAT model has one exact literal per feature and a
bound ``buffer[k] >= assumed(k, combination)`` enforced by exactly that combination
(``cpsat._add_buffers``). ``assumed`` is learned from replays (``BufferBook``): before any
solve, from a few reference plans (``solve._reference_plans``); a combination's first replay
sets it, down or up from the default; later replays can only raise it (the largest replay seen
with that combination). A combination never replayed gets the largest value seen on a device
of its kind (the host, or any GPU): the old charge. Within a combination buffers still vary (1
layer against 2, how many experts the CPU keeps under CUDA's op offload), so an assumption is
exact for the plans replayed with it and at least as large as each of them; the plan
``solve`` returns is replayed itself, and the report gives both numbers per device.

Termination (``solve.solve_setting``): a round ends the loop when its plan fits and none of
the buffers its replay gave is smaller than assumed; the plan is then optimal, up to the
reported gap, for the model solved and also for that model updated with what the replay
taught (which only lost plans). Otherwise the round learns a combination's first replay
(finitely many combinations), raises one (to the value of a replayed plan: finitely many), or
cuts a budget a plan overfilled; ``MAX_ROUNDS`` caps the rounds, and a plan that already fit
is then returned, said so. The report's gap is the CP-SAT proof against the model of the round
that solved the plan; each device's ``runs`` and ``assumed_buffers`` say what that model
assumed beside what the replay gave.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from solver.cost.model import MOVABLE
from solver.llama.compute_buffer import OP_OFFLOAD_MIN_BATCH, device_kind
from solver.llama.workload import ComputeWorkload
from solver.plan.plan import Plan
from solver.plan.units import Unit
from solver.quantities import CPU

LAYERS = "layers"
OUTPUT = "output"
FULL_OFFLOAD = "full_offload"
PIPELINE = "pipeline"  # full offload on several GPUs without -ot: llama.cpp pipelines
HOST = "host_"  # prefix: what the host runs, a feature of the op-offload GPU only
FEATURES: tuple[str, ...] = (
    LAYERS, OUTPUT, *MOVABLE, FULL_OFFLOAD, PIPELINE, HOST + LAYERS,
    *(HOST + g for g in MOVABLE),
)  # fmt: skip

Combination = tuple[str, ...]  # the features a device has, in ``FEATURES`` order


def own_features(units: Sequence[Unit]) -> tuple[str, ...]:
    """A device's own features in a model whose layers have these movable units."""
    return (LAYERS, OUTPUT, *(g for g in MOVABLE if g in units))


# The host's units whose copies the op-offload GPU's combination tells apart (with its layers):
# the routed experts, by far the largest; each more feature multiplies that GPU's bounds.
HOST_UNITS = (Unit.EXPERTS,)


def combination(
    own: Sequence[str], full_offload: bool, host: Sequence[str] = (), pipeline: bool = False
) -> Combination:
    """The combination of a device with ``own`` features: ``full_offload`` (and, for a full
    offload, ``pipeline``) only counts for a device that runs something (an idle one has no
    buffer whatever the others do); ``host``, the host's layers and ``HOST_UNITS`` it holds,
    counts for the op-offload GPU whatever it runs."""
    present = {*own, *host}
    if own and full_offload:
        present.add(FULL_OFFLOAD)
        if pipeline:
            present.add(PIPELINE)
    return tuple(f for f in FEATURES if f in present)


def pipelines(plan: Plan) -> bool:
    """Whether llama.cpp pipelines the plan (``llama_context``: several devices, every layer
    and the head offloaded, no tensor overrides; ``workload._pipeline_parallel``): four
    copies of each split input, so larger compute buffers."""
    moved = any(d is not None for devices in plan.overrides.values() for d in devices)
    return len(plan.gpus) > 1 and plan.n_cpu_layers == 0 and not moved


def plan_combinations(
    plan: Plan, devices: Sequence[str], layer_units: Sequence[Sequence[Unit]], offload: str | None
) -> dict[str, Combination]:
    """What each device runs under ``plan`` (one pass over the layers: the baselines price
    thousands of plans); ``layer_units[il]``: the movable units of layer il; ``offload``: the
    GPU that copies the host's weights for its ops (``offload_device``)."""
    runs: dict[str, set[str]] = {device: set() for device in devices}
    layer_devices = plan.layer_devices
    for device in set(layer_devices):
        runs.setdefault(device, set()).add(LAYERS)
    runs.setdefault(plan.output_device, set()).add(OUTPUT)
    for g in MOVABLE:
        moved = plan.overrides.get(g)
        for il, units in enumerate(layer_units):
            if g in units:
                target = moved[il] if moved is not None else None
                runs.setdefault(target or layer_devices[il], set()).add(g)
    full, pipelined = plan.n_cpu_layers == 0, pipelines(plan)
    host = [HOST + f for f in (LAYERS, *HOST_UNITS) if f in runs.get(CPU, ())]
    combos = {}
    for device in devices:
        copied = host if device == offload else ()
        combos[device] = combination(tuple(runs[device]), full, copied, pipelined)
    return combos


def plan_combination(
    plan: Plan, device: str, layer_units: Sequence[Sequence[Unit]], offload: str | None = None
) -> Combination:
    """What ``device`` runs under ``plan`` (``plan_combinations`` for one device)."""
    return plan_combinations(plan, (CPU, device), layer_units, offload)[device]


def offload_device(devices: Sequence[str], workload: ComputeWorkload) -> str | None:
    """The GPU that runs the host weights' ops of a prompt batch, copying the weights into its
    compute buffer: the first CUDA device when ``--op-offload`` is on and the reserve batch
    has at least ``OP_OFFLOAD_MIN_BATCH`` tokens (``compute_buffer``); None otherwise."""
    if not workload.op_offload or min(workload.n_ctx, workload.n_ubatch) < OP_OFFLOAD_MIN_BATCH:
        return None
    return next((d for d in devices if device_kind(d) == "CUDA"), None)


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
    offload: str | None = Field(
        default=None, description="the op-offload GPU, whose combinations include the host's"
    )

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

    def __init__(self, devices: Sequence[str], offload: str | None = None) -> None:
        self.devices = tuple(devices)
        self.offload = offload
        self.observed: dict[str, dict[Combination, int]] = {d: {} for d in self.devices}

    def table(self) -> BufferTable:
        """The current assumptions; an unreplayed combination gets the largest buffer seen on
        a device of its kind (the host, or any GPU)."""
        host = max(self.observed.get(CPU, {}).values(), default=0)
        gpus = [v for d in self.devices if d != CPU for v in self.observed[d].values()]
        gpu = max(gpus, default=0)
        default = {d: host if d == CPU else gpu for d in self.devices}
        assumed = {d: dict(sorted(self.observed[d].items())) for d in self.devices}
        return BufferTable(assumed=assumed, default=default, offload=self.offload)

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
