"""The compiled compute engine's caches, across many placements in one process.

``solver.ggml.engine`` memoises allocator segments across every placement a process
evaluates, and ``solver.llama.compute_buffer`` caches graphs per inventory: what they return must
never depend on what was evaluated before. ``test_placements_in_sequence_match_the_reference``
walks seeded random launches (-ngl, -ts, -ot moving FFN / experts / attention of random
layers, -ub, -fa) over RPC, CUDA and mixed rigs, through ``estimate_memory`` as the solver
calls it, without resetting any cache, and requires every result to equal, to the byte, the
readable ports of ggml's scheduler and allocator (``estimate_compute(..., reference=True)``)
on the same placement. ``test_a_reused_id_gets_its_own_graphs`` frees one inventory and
gives its id to another: the second must get its own graphs.
"""

from __future__ import annotations

import gc
import random
import weakref
from dataclasses import dataclass, replace

import pytest

from solver.errors import BadInput
from solver.gguf.inventory import Inventory
from solver.gguf.sources import load_local_inventory
from solver.gguf.synthetic import tiny_blueprint
from solver.llama.args import parse_llama_args
from solver.llama.compute_buffer import estimate_compute
from solver.llama.device_map import CpuFeatures
from solver.llama.memory import estimate_memory
from solver.llama.workload import ComputeWorkload

N_LAYER = 8
RPC = ("127.0.0.1:50001", "127.0.0.1:50002")
# rig -> (launch arguments, local CUDA devices, buffer types -ot may name besides CPU)
RIGS = {
    "rpc": (["--rpc", ",".join(RPC)], [], [f"RPC0[{e}]" for e in RPC]),
    "cuda": ([], ["CUDA0", "CUDA1"], ["CUDA0", "CUDA1"]),
    "mixed": (["--rpc", RPC[0]], ["CUDA0"], [f"RPC0[{RPC[0]}]", "CUDA0"]),
}
# A few workloads, so that many placements share each workload's memoised segments.
WORKLOADS = (
    ("-c", "1024", "-np", "1", "-ub", "512", "-fa", "on"),
    ("-c", "1024", "-np", "1", "-ub", "32", "-fa", "on"),
    ("-c", "1024", "-np", "1", "-ub", "512", "-fa", "off"),
    ("-c", "2048", "-np", "2", "-ub", "128", "-fa", "off"),
)
GROUPS = (r"ffn_(up|gate|down)", r"ffn_.*_exps", r"ffn_.*_shexp", r"ffn_.*", r"attn_.*",
          r"attn_(q|k|v)")  # fmt: skip
# dense, MoE, iSWA (gemma3), MLA with a leading dense layer and shared experts (deepseek2)
ARCHS = ("llama", "qwen3moe", "gemma3", "deepseek2")
STEPS = 150
_CPU = CpuFeatures(avx2=True)  # a fixed host: repacking moves weights, not compute buffers


@dataclass
class _Launch:
    rig: str
    workload: tuple[str, ...]
    ngl: int
    split: list[int]
    rules: list[str]

    def args(self) -> list[str]:
        args = [*RIGS[self.rig][0], *self.workload, "--fit", "off", "-ngl", str(self.ngl)]
        args += ["-ts", ",".join(map(str, self.split))]
        return [*args, "-ot", ",".join(self.rules)] if self.rules else args


def _rule(rng: random.Random, rig: str) -> str:
    """Tensors of a group in a few random layers, to the CPU or a device."""
    layers = "|".join(map(str, rng.sample(range(N_LAYER), rng.randint(1, 3))))
    target = rng.choice(["CPU", *RIGS[rig][2]])
    return rf"blk\.({layers})\.{rng.choice(GROUPS)}\.weight={target}"


def _split(rng: random.Random, rig: str) -> list[int]:
    split = [rng.randint(0, 5) for _ in RIGS[rig][2]]
    split[rng.randrange(len(split))] += 1  # not all zero: that split needs free memory
    return split


def _random_launch(rng: random.Random) -> _Launch:
    rig = rng.choice(sorted(RIGS))
    # -ngl beyond the layer count (with no -ot) turns pipeline parallelism on
    ngl = rng.choice([rng.randint(0, N_LAYER + 1), 99])
    rules = [_rule(rng, rig) for _ in range(rng.choice([0, 0, 1, 2]))]
    return _Launch(rig, rng.choice(WORKLOADS), ngl, _split(rng, rig), rules)


def _neighbour(rng: random.Random, launch: _Launch) -> _Launch:
    """One change, as a placement search makes them: a rule, the split, -ngl, -ub/-fa."""
    rig = launch.rig
    rules = list(launch.rules)
    change = rng.random()
    if change < 0.2 and rules:
        rules.pop(rng.randrange(len(rules)))
    elif change < 0.45:
        rules.append(_rule(rng, rig))
    elif change < 0.65:
        return replace(launch, split=_split(rng, rig))
    elif change < 0.9:
        return replace(launch, ngl=max(0, min(N_LAYER + 1, launch.ngl) + rng.choice([-2, -1, 1])))
    else:
        return replace(launch, workload=rng.choice(WORKLOADS))
    return replace(launch, rules=rules)


def _check_against_reference(inv: Inventory, args: list[str], gpus: list[str]) -> bool:
    """One launch through the memory model (cached engine) vs the readable ports."""
    try:
        report = estimate_memory(inv, parse_llama_args(args), gpus, cpu=_CPU, rpc_free_bytes=10**9)
    except BadInput:
        return False  # e.g. a split that leaves a device nothing: llama-server refuses too
    placement = report.placement
    call = (
        inv,
        report.workload,
        placement.tensor_devices,
        [device or "CPU" for device in placement.layer_kv_devices],
        [*placement.devices, "CPU"],
    )
    fast = estimate_compute(*call)  # the result the memory model just got
    ref = estimate_compute(*call, reference=True)
    context = f"{inv.architecture}: {' '.join(args)}"
    assert report.compute_buffers == ref.bytes_by_device, context
    assert report.graph_splits == ref.graph_splits, context
    assert fast.pp_bytes_by_device == ref.pp_bytes_by_device, context
    splits = (ref.graph_splits, ref.graph_splits_tg)
    assert (fast.graph_splits, fast.graph_splits_tg) == splits, context
    for device, size in ref.tg_bytes_by_device.items():
        if fast.tg_exact:
            assert fast.tg_bytes_by_device[device] == size, context
        else:  # a bound, below the prompt graph
            assert size <= fast.tg_bytes_by_device[device] <= fast.pp_bytes_by_device[device]
    return True


def test_placements_in_sequence_match_the_reference(synthetic_gguf) -> None:
    rng = random.Random(20240611)
    checked = 0
    for arch in ARCHS:
        blueprint = tiny_blueprint(arch).model_copy(
            update={"n_layer": N_LAYER, "name": f"memo-{arch}"}
        )
        inv = load_local_inventory(synthetic_gguf(blueprint)[0])
        launch = _random_launch(rng)
        for _ in range(STEPS):
            # a walk through neighbouring launches (as a search makes), restarting now and then
            launch = _random_launch(rng) if rng.random() < 0.1 else _neighbour(rng, launch)
            checked += _check_against_reference(inv, launch.args(), RIGS[launch.rig][1])
    assert checked > 0.8 * STEPS * len(ARCHS)  # the launches are mostly valid ones


# --- caches keyed by the inventory's identity ----------------------------------------------


def _all_on_cpu(inv: Inventory) -> tuple[dict[str, str], list[str], list[str]]:
    return {t.name: "CPU" for t in inv.tensors}, ["CPU"] * inv.n_layers, ["CPU"]


def test_a_reused_id_gets_its_own_graphs(synthetic_gguf) -> None:
    workload = ComputeWorkload(
        n_ctx=1024, n_ctx_seq=1024, n_batch=512, n_ubatch=512, n_seq_max=1, n_stream=1,
        n_outputs_max=1, flash_attn=True, v_trans=False, kv_cells_swa=1024,
    )  # fmt: skip
    llama = load_local_inventory(synthetic_gguf("llama")[0])
    gemma = load_local_inventory(synthetic_gguf("gemma3")[0])
    want = estimate_compute(gemma, workload, *_all_on_cpu(gemma))

    first = llama.model_copy()  # a distinct object the caches see for the first time
    first_id, first_ref = id(first), weakref.ref(first)
    estimate_compute(first, workload, *_all_on_cpu(first))
    del first
    gc.collect()
    assert first_ref() is None, "the compute caches keep a model alive"

    # CPython hands a freed object's memory to a later object of the same size: make
    # inventories until one gets the first one's id
    made = []
    for _ in range(200_000):
        second = gemma.model_copy()
        if id(second) == first_id:
            break
        made.append(second)
    else:
        pytest.fail("no inventory got the freed one's id")
    assert estimate_compute(second, workload, *_all_on_cpu(second)) == want
