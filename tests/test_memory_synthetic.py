"""fit's memory model against llama-server on synthetic GGUFs of other architectures.

The tiny models come from ``solver.gguf.synthetic`` (each one loads in the real llama-server):
qwen3moe (routed experts), deepseek2 (MLA, shared experts, a leading dense layer), gpt-oss
(sliding window every other layer, attention sinks, biases), glm4moe (an MTP layer llama.cpp
skips), llama and qwen3 (dense, GQA), and every catalogue model shrunk to a miniature. The
launches are ``benchmarks.memory_fidelity.SYNTHETIC`` and ``MINIATURE``, on two RPC servers
that report exact bytes, and ``SYNTHETIC_CPU`` on the CPU alone (``check_case`` in conftest.py
asserts every target).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from profiles.fidelity import MEASURE_ARGS
from profiles.fidelity_cases import MINIATURE, SYNTHETIC, SYNTHETIC_CPU, Case
from profiles.server import RpcServers, ServerFailed
from profiles.server_log import BufferKind
from solver.errors import BadInput
from solver.gguf.sources import load_inventory
from solver.llama.args import parse_llama_args
from solver.llama.device_map import CpuFeatures
from solver.llama.memory import estimate_memory
from tests.gguf_factory import SyntheticFactory

pytestmark = [pytest.mark.llama, pytest.mark.slow]


@pytest.mark.parametrize(
    "case", [*SYNTHETIC, *SYNTHETIC_CPU], ids=[case.id for case in [*SYNTHETIC, *SYNTHETIC_CPU]]
)
def test_synthetic_architecture(case: Case, check_case) -> None:
    check_case(case)


@pytest.mark.parametrize("case", MINIATURE, ids=[case.id for case in MINIATURE])
def test_catalogue_miniature(case: Case, check_case) -> None:
    """Each catalogue model's structure (rope_freqs, MTP layers, tied heads, MXFP4 experts...)
    shrunk to a few MiB, against llama-server."""
    check_case(case)


REFUSED = {
    "mla-mixed-cache-types": ("deepseek2", "-c 1024 -ctk q8_0"),
    "quantized-v-without-fa": ("qwen3", "-c 1024 -ctv q8_0 -fa off"),
    "dsv4-mixed-cache-types": ("deepseek4", "-c 1024 -ctk q8_0 -fa on"),  # K-only, as MLA
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_llama_refuses_what_fit_refuses(
    name: str, synthetic_gguf: SyntheticFactory, run_llama
) -> None:
    """llama_init_from_model rejects these contexts; fit says so instead of estimating."""
    arch, args = REFUSED[name]
    (path,) = synthetic_gguf(arch, quant="Q4_K_M")
    with pytest.raises(ServerFailed) as refused:
        run_llama(path, *MEASURE_ARGS, *args.split())
    assert "failed to create context" in refused.value.log_path.read_text()
    with pytest.raises(BadInput):
        estimate_memory(
            load_inventory(str(path)), parse_llama_args(args.split()), cpu=CpuFeatures()
        )


def test_split_gguf_maps_each_part(
    synthetic_gguf: SyntheticFactory, measure_llama, shared_rpc_servers: RpcServers
) -> None:
    """A 3-part split set: one CPU_Mapped buffer per part, each its own file range."""
    paths = synthetic_gguf("qwen3moe", quant="Q4_K_M", n_parts=3)
    measured = measure_llama(
        Path(paths[0]), "-c", "1024", "-ngl", "1", "-ts", "1,1", rpc=shared_rpc_servers
    )
    mapped = [b for b in measured.run.buffers_of(BufferKind.MODEL) if b.buffer == "CPU_Mapped"]
    assert len(mapped) == 3
    assert not measured.fidelity.misses(), "\n".join(measured.fidelity.misses())
    assert set(measured.run.rpc_allocations) == {"RPC0", "RPC1"}
