"""Recurrent state (llama_memory_recurrent) against llama-server, on a tiny Mamba GGUF.

The file is written here with gguf-py's GGUFWriter (solver.synthetic has no recurrent
architectures): the tensor list of ``src/models/mamba.cpp``, zero weights, a small SPM vocab.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from solver.device_map import CpuFeatures
from solver.llama_args import parse_llama_args
from solver.memory import estimate_memory
from solver.sources import load_inventory
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
N_EMBD, N_LAYER, D_CONV, D_STATE, DT_RANK = 128, 4, 4, 16, 8
D_INNER = 2 * N_EMBD  # mamba.cpp: only an expansion factor of 2 is supported


def _spm_vocab(writer: gguf.GGUFWriter) -> int:
    tokens = ["<unk>", "<s>", "</s>", *[f"<0x{b:02X}>" for b in range(256)]]
    tokens += [f"\u2581w{i}" for i in range(61)]
    types = [2, 3, 3] + [6] * 256 + [1] * 61  # unknown, control, byte, normal
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    return len(tokens)


def write_mamba(path: Path) -> Path:
    writer = gguf.GGUFWriter(path, "mamba")
    n_vocab = _spm_vocab(writer)
    writer.add_context_length(4096)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(0)
    writer.add_head_count(0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_ssm_conv_kernel(D_CONV)
    writer.add_ssm_inner_size(D_INNER)
    writer.add_ssm_state_size(D_STATE)
    writer.add_ssm_time_step_rank(DT_RANK)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    def add(name: str, *ggml_shape: int, dtype=np.float32) -> None:
        writer.add_tensor(name, np.zeros(tuple(reversed(ggml_shape)), dtype=dtype))

    add("token_embd.weight", N_EMBD, n_vocab, dtype=np.float16)
    add("output_norm.weight", N_EMBD)
    for i in range(N_LAYER):
        b = f"blk.{i}"
        add(f"{b}.attn_norm.weight", N_EMBD)
        add(f"{b}.ssm_in.weight", N_EMBD, 2 * D_INNER, dtype=np.float16)
        add(f"{b}.ssm_conv1d.weight", D_CONV, D_INNER)
        add(f"{b}.ssm_conv1d.bias", D_INNER)
        add(f"{b}.ssm_x.weight", D_INNER, DT_RANK + 2 * D_STATE, dtype=np.float16)
        add(f"{b}.ssm_dt.weight", DT_RANK, D_INNER, dtype=np.float16)
        add(f"{b}.ssm_dt.bias", D_INNER)
        add(f"{b}.ssm_a", D_STATE, D_INNER)
        add(f"{b}.ssm_d", D_INNER)
        add(f"{b}.ssm_out.weight", D_INNER, N_EMBD, dtype=np.float16)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


CASES = {
    "cpu-4-slots": "-c 1024 -ngl 0",
    "rpc-split": "-c 1024 -ngl 99 -ts 1,1 -np 3 --no-kv-unified",
    "rpc-nkvo": "-c 2048 -ngl 99 -ts 1,2 -nkvo",
}


@pytest.mark.skipif(BIN is None, reason="llama-server build not available")
@pytest.mark.parametrize("name", list(CASES))
def test_mamba_recurrent_state(
    name: str,
    tmp_path_factory: pytest.TempPathFactory,
    rpc_pair: list[RpcServer],  # noqa: F811
) -> None:
    assert BIN is not None
    path = write_mamba(tmp_path_factory.mktemp("mamba") / "mamba.gguf")
    args = CASES[name].split()
    log = run_llama_server(BIN, path, args, rpc=rpc_pair)
    assert any(True for _ in log.kv), log.text[-2000:]  # RS buffer lines were printed
    full_args = [*HARNESS_ARGS, "--rpc", ",".join(s.endpoint for s in rpc_pair), *args]
    cpu = CpuFeatures.from_system_info(log.system_info)
    report = estimate_memory(load_inventory(str(path)), parse_llama_args(full_args), cpu=cpu)
    check_against_log(report, log)
    check_rpc_bytes(report, log, rpc_pair)
