"""fit's memory model against llama-server on synthetic GGUFs of other architectures.

The tiny models come from ``solver.synthetic`` (each one loads in the real llama-server):
qwen3moe (routed experts), deepseek2 (MLA, shared experts, a leading dense layer),
gpt-oss (sliding window every other layer, attention sinks, biases), glm4moe (an MTP layer
llama.cpp skips), llama and qwen3 (dense, GQA). Two RPC servers stand in for two GPUs and
report exact bytes; the CPU's buffers are compared at the two decimals llama.cpp prints.
"""

from __future__ import annotations

import pytest

from solver.catalogue import catalogue_blueprint, catalogue_names
from solver.device_map import CpuFeatures
from solver.errors import BadInput
from solver.llama_args import parse_llama_args
from solver.memory import estimate_memory
from solver.sources import load_inventory
from solver.synthetic import miniature
from tests.gguf_factory import SyntheticFactory, synthetic_gguf  # noqa: F401 (fixture)
from tests.llama_harness import (
    HARNESS_ARGS,
    RpcServer,
    llama_bin_dir,
    rpc_pair,  # noqa: F401 (fixture)
    run_llama_server,
)
from tests.test_memory_llama import check_against_log, check_rpc_bytes

pytestmark = [pytest.mark.llama, pytest.mark.slow]

BIN = llama_bin_dir()
if BIN is None:
    pytest.skip("llama-server build not available", allow_module_level=True)


CASES = {
    ("qwen3moe", "split"): "-c 1024 -ngl 99 -ts 1,1",
    ("qwen3moe", "cpu-moe"): "-c 2048 -ngl 99 -ts 2,1 --cpu-moe",
    ("qwen3moe", "n-cpu-moe-no-mmap"): "-c 1024 -ngl 99 -ts 1,1 --n-cpu-moe 1 --load-mode none",
    ("qwen3moe", "exps-to-rpc1"): "-c 1024 -ngl 1 -ts 1,1 -ot exps=@1 -ctk q8_0 -fa on",
    ("deepseek2", "split"): "-c 1024 -ngl 99 -ts 1,1",
    ("deepseek2", "mla-q8-cpu-moe"): "-c 2048 -ngl 99 -ts 1,3 -ctk q8_0 -ctv q8_0 -fa on --cpu-moe",
    ("deepseek2", "fa-off-slots"): "-c 2048 -ngl 2 -ts 1,1 -fa off -np 2 --no-kv-unified",
    ("gpt-oss", "split"): "-c 1024 -ngl 99 -ts 1,1",
    ("gpt-oss", "swa-full-ub"): "-c 4096 -ngl 99 -ts 1,2 --swa-full -ub 128",
    ("gpt-oss", "slots-cpu-moe"): "-c 4096 -ngl 2 -ts 1,1 -np 3 --no-kv-unified --cpu-moe",
    ("glm4moe", "mtp-skipped"): "-c 1024 -ngl 99 -ts 1,1",
    ("glm4moe", "first-match"): r"-c 1024 -ngl 99 -ts 1,1 -ot blk\.1\.=CPU,blk\.=@0",
    ("llama", "split-q8"): "-c 1024 -ngl 99 -ts 3,1 -ctk q8_0 -ctv q8_0 -fa on",
    ("qwen3", "partial-nkvo"): "-c 1024 -ngl 2 -ts 1,1 -nkvo",
}


@pytest.mark.parametrize(("arch", "case"), list(CASES))
def test_synthetic_architecture(
    arch: str,
    case: str,
    synthetic_gguf: SyntheticFactory,  # noqa: F811
    rpc_pair: list[RpcServer],  # noqa: F811
) -> None:
    assert BIN is not None
    (path,) = synthetic_gguf(arch, quant="Q4_K_M")
    inventory = load_inventory(str(path))
    # "@i" stands for the buffer type of the i-th RPC server
    args = [
        part.replace("@0", f"RPC0[{rpc_pair[0].endpoint}]").replace(
            "@1", f"RPC0[{rpc_pair[1].endpoint}]"
        )
        for part in CASES[(arch, case)].split()
    ]
    log = run_llama_server(BIN, path, args, rpc=rpc_pair)
    full_args = [*HARNESS_ARGS, "--rpc", ",".join(s.endpoint for s in rpc_pair), *args]
    cpu = CpuFeatures.from_system_info(log.system_info)
    report = estimate_memory(inventory, parse_llama_args(full_args), cpu=cpu)
    check_against_log(report, log)
    check_rpc_bytes(report, log, rpc_pair)


REFUSED = {
    "mla-mixed-cache-types": ("deepseek2", "-c 1024 -ctk q8_0"),
    "quantized-v-without-fa": ("qwen3", "-c 1024 -ctv q8_0 -fa off"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_llama_refuses_what_fit_refuses(
    name: str,
    synthetic_gguf: SyntheticFactory,  # noqa: F811
) -> None:
    """llama_init_from_model rejects these contexts; fit says so instead of estimating."""
    assert BIN is not None
    arch, args = REFUSED[name]
    (path,) = synthetic_gguf(arch, quant="Q4_K_M")
    log = run_llama_server(BIN, path, args.split())
    assert "failed to create context" in log.text
    with pytest.raises(BadInput):
        estimate_memory(
            load_inventory(str(path)), parse_llama_args(args.split()), cpu=CpuFeatures()
        )


def catalogue_miniatures() -> list[tuple[str, str]]:
    """(model, quant) for every catalogue model, in its first listed quant."""
    chosen: dict[str, str] = {}
    for name in catalogue_names():
        model, _, quant = name.partition(":")
        if quant and model not in chosen:
            chosen[model] = quant
    return sorted(chosen.items())


MINIATURE_CASES = {
    "split": "-c 1024 -ngl 99 -ts 1,1",
    "partial-q8-cpu-moe": "-c 2048 -ngl 2 -ts 1,2 -ctk q8_0 -ctv q8_0 -fa on --cpu-moe",
}


@pytest.mark.parametrize("case", list(MINIATURE_CASES))
@pytest.mark.parametrize(("model", "quant"), catalogue_miniatures())
def test_catalogue_miniature(
    model: str,
    quant: str,
    case: str,
    synthetic_gguf: SyntheticFactory,  # noqa: F811
    rpc_pair: list[RpcServer],  # noqa: F811
) -> None:
    """Each catalogue model's structure (rope_freqs, MTP layers, tied heads, MXFP4 experts...)
    shrunk to a few MiB, against llama-server."""
    assert BIN is not None
    (path,) = synthetic_gguf(miniature(catalogue_blueprint(model)), quant=quant)
    inventory = load_inventory(str(path))
    args = MINIATURE_CASES[case].split()
    log = run_llama_server(BIN, path, args, rpc=rpc_pair)
    full_args = [*HARNESS_ARGS, "--rpc", ",".join(s.endpoint for s in rpc_pair), *args]
    cpu = CpuFeatures.from_system_info(log.system_info)
    report = estimate_memory(inventory, parse_llama_args(full_args), cpu=cpu)
    check_against_log(report, log)
    check_rpc_bytes(report, log, rpc_pair)


def test_split_gguf_maps_each_part(
    synthetic_gguf: SyntheticFactory,  # noqa: F811
    rpc_pair: list[RpcServer],  # noqa: F811
) -> None:
    """A 3-part split set: one CPU_Mapped buffer per part, each its own file range."""
    assert BIN is not None
    paths = synthetic_gguf("qwen3moe", quant="Q4_K_M", n_parts=3)
    inventory = load_inventory(str(paths[0]))
    args = ["-c", "1024", "-ngl", "1", "-ts", "1,1"]
    log = run_llama_server(BIN, paths[0], args, rpc=rpc_pair)
    full_args = [*HARNESS_ARGS, "--rpc", ",".join(s.endpoint for s in rpc_pair), *args]
    cpu = CpuFeatures.from_system_info(log.system_info)
    report = estimate_memory(inventory, parse_llama_args(full_args), cpu=cpu)
    assert [name for name, _ in log.model].count("CPU_Mapped") == 3
    check_against_log(report, log)
    check_rpc_bytes(report, log, rpc_pair)
