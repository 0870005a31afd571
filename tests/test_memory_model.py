"""Memory-model behaviour that needs no llama-server: refusals and llama.cpp's split rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from solver.errors import BadInput
from solver.gguf.blueprint import gguf_metadata
from solver.gguf.hparams import build_inventory
from solver.gguf.inventory import Inventory, Recurrent
from solver.gguf.quant_mix import parse_file_type
from solver.gguf.sources import load_inventory, load_local_inventory
from solver.gguf.synthetic import tiny_blueprint
from solver.llama.args import parse_llama_args
from solver.llama.device_map import (
    CpuFeatures,
    DeviceKind,
    LlamaDevice,
    ModelTensors,
    Op,
    layer_split,
)
from solver.llama.hparams import model_hparams
from solver.llama.kv_cache import layer_kv_bytes
from solver.llama.memory import estimate_memory
from solver.llama.workload import resolve_workload

CPU = CpuFeatures()


@pytest.fixture(scope="module")
def gemma(gemma_gguf: Path):
    return load_inventory(str(gemma_gguf))


def test_unknown_architecture_is_refused(gemma) -> None:
    unknown = gemma.model_copy(update={"architecture": "not-a-llama-arch"})
    with pytest.raises(BadInput, match=r"llama\.cpp would refuse"):
        estimate_memory(unknown, parse_llama_args([]), cpu=CPU)


def test_unmodelled_recurrent_state_is_said_so(gemma) -> None:
    # kimi-k3 keeps full-rank-gated KDA state beside an MLA cache, which fit does not size
    hybrid = gemma.model_copy(
        update={"architecture": "kimi-k3", "recurrent": Recurrent(recurrent_layers=(True,))}
    )
    with pytest.raises(BadInput, match="state fit does not model"):
        estimate_memory(hybrid, parse_llama_args([]), cpu=CPU)


def test_ot_regex_only_python_knows_is_refused(gemma) -> None:
    # std::regex (ECMAScript) has no named groups (?P<...>): llama.cpp would throw
    config = parse_llama_args(["-ot", "(?P<x>blk)=CPU"])
    with pytest.raises(BadInput, match="ECMAScript"):
        estimate_memory(gemma, config, cpu=CPU)


def test_override_to_a_device_not_in_this_launch(gemma) -> None:
    config = parse_llama_args(["-ot", "blk=CUDA1"])
    with pytest.raises(BadInput, match="CUDA1"):
        estimate_memory(gemma, config, ["CUDA0"], cpu=CPU)


def _gpu(name: str, free: int | None = None) -> LlamaDevice:
    return LlamaDevice(name=name, kind=DeviceKind.CUDA, buffer_type=name, free_bytes=free)


def test_layer_split_follows_load_tensors() -> None:
    # n_layer = 4, -ngl 3: i_gpu_start = 2, the output head (index 4) is the last slot;
    # -ts 1,1 -> split points [0.5, 1.0], upper_bound of (il - 2) / 3
    assert layer_split(4, 3, [_gpu("CUDA0"), _gpu("CUDA1")], [1, 1]) == [-1, -1, 0, 0, 1]
    # -ngl 0 keeps everything, the output head included, on the CPU
    assert layer_split(4, 0, [_gpu("CUDA0")], []) == [-1] * 5
    # no -ts: proportional to free memory
    devices = [_gpu("CUDA0", 3 << 30), _gpu("CUDA1", 1 << 30)]
    assert layer_split(3, -1, devices, []) == [0, 0, 0, 1]


def _glm_dsa(**update: object) -> Inventory:
    """The header of the tiny glm-dsa (3 layers, indexers full, shared, shared), updated."""
    blueprint = tiny_blueprint("glm-dsa").model_copy(update=update)
    return build_inventory("glm-dsa.gguf", gguf_metadata(blueprint, parse_file_type("F16")), [])


def test_glm_dsa_indexer_types_decide_the_indexer_cache() -> None:
    """glm-dsa.cpp's is_indexer_full: the file's indexer types; without them every layer
    below GLM-5.2's 1M context (GLM-5, 5.1), else GLM-5.2's pattern (full at 0, 1, 2, then
    every fourth layer up to 78). The indexer K cache is on the full layers only."""
    assert _glm_dsa().attention.indexer_full == (True, False, False)
    untyped = {"n_layer": 84, "indexer_types": ()}
    assert _glm_dsa(**untyped).attention.indexer_full == (True,) * 84
    glm52 = model_hparams(_glm_dsa(**untyped, context_length=1 << 20))
    assert [il for il in range(84) if glm52.layer_has_indexer(il)] == [0, 1, *range(2, 78, 4)]
    assert not glm52.layer_has_indexer(84)  # the MTP block is not in the trunk's caches
    config = parse_llama_args(["-c", "1024", "--fit", "off"])
    workload = resolve_workload(config, glm52, ["CPU"] * 85, {})
    sizes = layer_kv_bytes(glm52, workload)
    assert sizes[1] - sizes[3] == 64 * 1024 * 2  # one F16 indexer head of 64 per cell


def test_glm_dsa_indexer_types_llama_cpp_refuses() -> None:
    with pytest.raises(BadInput, match="2 entries for 3 layers"):
        model_hparams(_glm_dsa(indexer_types=(True, False)))
    with pytest.raises(BadInput, match="layer 0's lightning indexer is shared"):
        model_hparams(_glm_dsa(indexer_types=(False, True, True)))


@pytest.mark.parametrize(("arch", "op"), [("deepseek4", Op.GET_ROWS), ("glm5-next", Op.OTHER)])
def test_indexer_compressor_ape_is_tagged_as_its_architecture_reads_it(
    arch: str, op: Op, synthetic_gguf
) -> None:
    """llama-arch.cpp's llm_tensor_info: blk.N.indexer_compressor_ape is GET_ROWS as
    deepseek4.cpp creates it (INDEXER_COMPRESSOR_APE), ADD as glm5-next.cpp does
    (INDEXER_KPOOL_APE); the op decides which devices may hold the weight."""
    (path,) = synthetic_gguf(arch)
    apes = [w for w in ModelTensors(load_local_inventory(path)).weights
            if w.name.endswith("indexer_compressor_ape.weight")]  # fmt: skip
    assert apes and {w.op for w in apes} == {op}
