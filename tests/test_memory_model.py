"""Memory-model behaviour that needs no llama-server: refusals and llama.cpp's split rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from solver.errors import BadInput
from solver.gguf.inventory import Recurrent
from solver.gguf.sources import load_inventory
from solver.llama.args import parse_llama_args
from solver.llama.device_map import CpuFeatures, DeviceKind, LlamaDevice, layer_split
from solver.llama.memory import estimate_memory

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
