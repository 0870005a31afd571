"""The compute-buffer model: its fast engine against its readable port, and its behaviour.

Against the real llama-server, the compute buffers (and everything else a launch allocates)
are checked in ``tests/test_memory_fidelity.py``, on the CI grid of
``benchmarks.memory_fidelity``: within 5% of every device's buffer (in practice within the
log's 4-decimal rounding, or to the byte on RPC devices) and the exact split counts.

``test_engine_matches_reference`` replays random placements (CPU, RPC and CUDA backends,
pipeline parallelism, op offload, quantized KV) through the compiled engine and through the
line-by-line ports of ggml's scheduler and allocator; they must agree to the byte, and on the
ops CUDA refuses (several synthetic models have heads no CUDA kernel takes) and where they run.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import solver.llama.compute_graph as package
import solver.llama.compute_graph.recipes as recipes
from profiles.fidelity_cases import (
    GEMMA,
    LLAMA_ROPE,
    SYNTHETIC_ARCHS,
    SYNTHETIC_LAYERS,
    model_blueprint,
)
from solver.errors import BadInput
from solver.gguf.inventory import Inventory, TensorGroup
from solver.gguf.sources import load_local_inventory
from solver.llama.compute_buffer import (
    ComputeNotModelled,
    cache_params,
    estimate_compute,
    reserve_ubatches,
)
from solver.llama.compute_graph import GraphModel, build_graph
from solver.llama.compute_graph.recipes import RECIPES
from solver.llama.workload import ComputeWorkload


def _synthetic(factory, model: str) -> Path:
    """The 6-layer synthetic model of an architecture (or of LLAMA_ROPE)."""
    found = model_blueprint(f"{model}/{SYNTHETIC_LAYERS}")
    assert found is not None
    return factory(*found)[0]


def _workload(**overrides) -> ComputeWorkload:
    base = dict(
        n_ctx=2048, n_ctx_seq=2048, n_batch=2048, n_ubatch=512, n_seq_max=1, n_stream=1,
        n_outputs_max=1, flash_attn=True, v_trans=False, kv_cells_swa=1024,
    )  # fmt: skip
    base.update(overrides)
    return ComputeWorkload(**base)


def _all_on(inv: Inventory, device: str) -> tuple[dict[str, str], list[str]]:
    return {t.name: device for t in inv.tensors}, [device] * inv.n_layers


# --- compiled engine vs readable port -----------------------------------------------------


def _random_placement(inv: Inventory, devices: list[str], rng: random.Random):
    """Layers split into contiguous ranges over the devices, random groups overridden."""
    gpus = [d for d in devices if d != "CPU"]
    cuts = sorted(rng.randint(0, inv.n_layers) for _ in gpus)
    layer = []
    for il in range(inv.n_layers):
        k = sum(il >= c for c in cuts)
        layer.append("CPU" if k == 0 else gpus[k - 1])
    out = rng.choice(devices)
    moved = {group: rng.random() < 0.3 for group in TensorGroup}
    placement = {}
    for t in inv.tensors:
        if t.layer is None:
            placement[t.name] = "CPU" if t.name == "token_embd.weight" else out
        elif moved[t.group] and rng.random() < 0.5:
            placement[t.name] = rng.choice(devices)
        else:
            placement[t.name] = layer[t.layer]
    placement.setdefault("output.weight", out)
    return placement, layer


def _random_workload(rng: random.Random) -> ComputeWorkload:
    flash = rng.random() < 0.5
    n_seq = rng.choice([1, 2, 4])
    unified = rng.random() < 0.5
    ubatch = rng.choice([16, 64, 512])
    ctx = rng.choice([512, 1024, 4096])
    per_seq = ctx if unified else max(256, ctx // n_seq)
    return _workload(
        n_ctx=ctx, n_ctx_seq=per_seq, n_batch=max(ubatch, 512), n_ubatch=ubatch,
        n_seq_max=n_seq, n_stream=1 if unified else n_seq, n_outputs_max=min(n_seq, ubatch),
        flash_attn=flash, v_trans=not flash, kv_unified=unified, kv_cells_swa=min(ctx, 512),
        pipeline_parallel=rng.random() < 0.3,
        type_k=rng.choice(["F16", "Q8_0"]) if flash else "F16",
    )  # fmt: skip


# the engine and the reference replay the same recipe: an architecture without one would be
# refused by both (tested in test_unmodelled_compute)
MODELLED_ARCHS = [arch for arch in SYNTHETIC_ARCHS if arch in RECIPES]


@pytest.mark.parametrize("arch", [GEMMA, *MODELLED_ARCHS, LLAMA_ROPE])
def test_engine_matches_reference(arch: str, gemma_gguf: Path, synthetic_gguf) -> None:
    path = gemma_gguf if arch == GEMMA else _synthetic(synthetic_gguf, arch)
    inv = load_local_inventory(path)
    rng = random.Random(arch)
    compared = 0
    for devices in (["CPU", "RPC0", "RPC1"], ["CPU", "CUDA0", "CUDA1"]):
        for _ in range(8):
            workload = _random_workload(rng)
            placement, layers = _random_placement(inv, devices, rng)
            try:
                fast = estimate_compute(inv, workload, placement, layers, devices)
            except ComputeNotModelled:
                # refused before either replay runs (a fused hyper-connection op llama.cpp's
                # probe would disable)
                continue
            compared += 1
            ref = estimate_compute(inv, workload, placement, layers, devices, reference=True)
            context = f"{arch} {devices} {workload}"
            assert fast.bytes_by_device == ref.bytes_by_device, context
            assert fast.pp_bytes_by_device == ref.pp_bytes_by_device, context
            assert (fast.graph_splits, fast.graph_splits_tg) == (
                ref.graph_splits,
                ref.graph_splits_tg,
            ), context
            assert fast.fallbacks == ref.fallbacks, context
            for dev, size in ref.tg_bytes_by_device.items():
                if fast.tg_exact:
                    assert fast.tg_bytes_by_device[dev] == size, context
                else:  # a bound, below the prompt graph
                    assert size <= fast.tg_bytes_by_device[dev] <= fast.pp_bytes_by_device[dev]
    assert compared >= 4  # of 16: enough placements compared


# --- behaviour ------------------------------------------------------------------------------


def test_bigger_ubatch_needs_more_and_flash_attention_less(gemma_gguf: Path) -> None:
    inv = load_local_inventory(gemma_gguf)
    placement, layers = _all_on(inv, "CPU")

    def cpu(**kw) -> int:
        return estimate_compute(inv, _workload(**kw), placement, layers, ["CPU"]).bytes_by_device[
            "CPU"
        ]

    assert cpu(n_ubatch=256) < cpu(n_ubatch=512) < cpu(n_ubatch=1024)
    assert cpu(flash_attn=True) < cpu(flash_attn=False, v_trans=True)


def test_split_count_follows_the_device_changes(synthetic_gguf) -> None:
    inv = load_local_inventory(_synthetic(synthetic_gguf, "qwen3moe"))
    placement, layers = _all_on(inv, "RPC0")
    placement["token_embd.weight"] = "CPU"
    devices = ["CPU", "RPC0"]
    base = estimate_compute(inv, _workload(), placement, layers, devices)
    for t in inv.tensors:
        if t.group == TensorGroup.FFN_EXPERTS:
            placement[t.name] = "CPU"
    moved = estimate_compute(inv, _workload(), placement, layers, devices)
    # the input embedding runs on the CPU, the rest on RPC0; moving every layer's experts
    # to the CPU adds a round trip per layer
    assert (base.graph_splits, base.graph_splits_tg) == (2, 2)
    assert moved.graph_splits == moved.graph_splits_tg == 2 + 2 * SYNTHETIC_LAYERS


def test_repeated_placement_is_cached_and_equal(gemma_gguf: Path) -> None:
    inv = load_local_inventory(gemma_gguf)
    placement, layers = _all_on(inv, "CPU")
    first = estimate_compute(inv, _workload(), placement, layers, ["CPU"])
    again = estimate_compute(inv, _workload(), dict(placement), list(layers), ["CPU"])
    assert again == first


def test_bad_placements_are_bad_input(gemma_gguf: Path) -> None:
    inv = load_local_inventory(gemma_gguf)
    placement, layers = _all_on(inv, "CPU")
    with pytest.raises(BadInput, match="CUDA3"):
        estimate_compute(inv, _workload(), {**placement, "output_norm.weight": "CUDA3"},
                         layers, ["CPU", "CUDA0"])  # fmt: skip
    missing = dict(placement)
    del missing["blk.3.ffn_up.weight"]
    with pytest.raises(BadInput, match=r"blk\.3\.ffn_up\.weight"):
        estimate_compute(inv, _workload(), missing, layers, ["CPU"])
    with pytest.raises(BadInput, match="layer_kv_devices"):
        estimate_compute(inv, _workload(), placement, layers[:3], ["CPU"])
    with pytest.raises(BadInput, match="KV cache type"):
        estimate_compute(inv, _workload(type_k="Q9_9"), placement, layers, ["CPU"])


def test_an_architecture_without_a_recipe_is_refused_not_priced_as_llama(synthetic_gguf) -> None:
    # the llama recipe on another architecture put its buffers 8-25 % low, silently
    inv = load_local_inventory(_synthetic(synthetic_gguf, "qwen3"))
    renamed = inv.model_copy(update={"architecture": "orion"})
    placement, layers = _all_on(renamed, "CPU")
    with pytest.raises(ComputeNotModelled, match=r"^orion: .*no compute-graph recipe") as refused:
        estimate_compute(renamed, _workload(), placement, layers, ["CPU"])
    assert refused.value.architecture == "orion"


def test_an_architecture_without_attention_weights_is_refused(synthetic_gguf) -> None:
    inv = load_local_inventory(_synthetic(synthetic_gguf, "qwen3"))
    stripped = inv.model_copy(
        update={
            "architecture": "mamba",
            "tensors": tuple(t for t in inv.tensors if not t.role.startswith("attn_")),
        }
    )
    placement, layers = _all_on(stripped, "CPU")
    with pytest.raises(BadInput, match="not modelled"):
        estimate_compute(stripped, _workload(), placement, layers, ["CPU"])


def test_cuda_offload_copies_cpu_experts_into_the_gpu_buffer(synthetic_gguf) -> None:
    """ggml-cuda offload_op: with experts on the CPU and a batch of >= 32 rows, the GPU runs
    the expert matmuls; the scheduler copies each expert tensor into the GPU's compute buffer
    and starts a split per copied weight. Without op offload (or with a small ubatch) the
    CPU runs them and the GPU buffer holds no weight."""
    inv = load_local_inventory(_synthetic(synthetic_gguf, "qwen3moe"))
    placement, layers = _all_on(inv, "CUDA0")
    placement["token_embd.weight"] = "CPU"
    experts = [t for t in inv.tensors if t.group == TensorGroup.FFN_EXPERTS]
    for t in experts:
        placement[t.name] = "CPU"
    devices = ["CPU", "CUDA0"]
    offload = estimate_compute(inv, _workload(n_ubatch=512), placement, layers, devices)
    no_offload = _workload(n_ubatch=512, op_offload=False)
    local = estimate_compute(inv, no_offload, placement, layers, devices)
    assert offload.bytes_by_device["CUDA0"] >= max(t.n_bytes for t in experts)
    assert offload.bytes_by_device["CUDA0"] > local.bytes_by_device["CUDA0"]
    assert offload.graph_splits > local.graph_splits
    # token generation (one row) is never offloaded
    assert offload.graph_splits_tg == local.graph_splits_tg == local.graph_splits


@pytest.mark.parametrize(("arch", "routes"), [("mimo2", "sigmoid"), ("glm4moe", "SOFT_MAX")])
def test_the_router_reads_the_gguf_gating_only_where_llama_cpp_does(
    arch: str, routes: str, synthetic_gguf
) -> None:
    """A GGUF naming softmax gating: mimo2.cpp passes sigmoid to build_moe_ffn whatever the
    file says (llama_model_mimo2 never reads expert_gating_func); glm4-moe.cpp reads it."""
    blueprint = model_blueprint(f"{arch}/{SYNTHETIC_LAYERS}")[0]
    (path,) = synthetic_gguf(blueprint.model_copy(update={"expert_gating": "softmax"}), "F16")
    inv = load_local_inventory(path)
    workload = _workload(n_ctx=256, n_ctx_seq=256, n_batch=256, n_ubatch=256, kv_cells_swa=256)
    pp, _ = reserve_ubatches(workload)
    graph = build_graph(GraphModel.of(inv), cache_params(workload), pp).graph
    routers = [
        n.params.get("unary", n.op) if n.op == "UNARY" else n.op
        for n in graph.nodes
        if n.src[0] is not None
        and n.src[0].op == "MUL_MAT"
        and (n.src[0].src[0].weight or "").endswith("ffn_gate_inp.weight")
    ]
    assert routers and set(routers) == {routes}


def test_the_docstrings_list_what_has_a_recipe_and_what_has_none() -> None:
    """compute_graph's docstring lists every recipe; recipes' table of popular architectures
    without one names none that has one (an architecture leaves it when it is modelled)."""
    listed = package.__doc__.split("Modelled, one recipe each")[1].split(".\n")[0]
    names = listed.split("docstring):")[1].replace("\n", " ")
    assert sorted(n.strip() for n in names.split(",")) == sorted(RECIPES)
    table = recipes.__doc__.split("==============  ===")[2]
    unmodelled = {line.split()[0] for line in table.splitlines() if line[:1].isalpha()}
    assert unmodelled and not unmodelled & set(RECIPES)
