"""Recurrent state (llama_memory_recurrent) against llama-server, on a tiny Mamba GGUF.

The file is written here with gguf-py's GGUFWriter (solver.gguf.synthetic has no recurrent
architectures): the tensor list of ``src/models/mamba.cpp``, zero weights, a small SPM vocab.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from profiles.server import RpcServers
from profiles.server_log import BufferKind

pytestmark = [pytest.mark.llama, pytest.mark.slow]

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


@pytest.mark.parametrize("name", list(CASES))
def test_mamba_recurrent_state(
    name: str, tmp_path: Path, measure_llama, shared_rpc_servers: RpcServers
) -> None:
    """RS buffers (and weights, output) exact; a recurrent model has no compute recipe."""
    path = write_mamba(tmp_path / "mamba.gguf")
    measured = measure_llama(path, *CASES[name].split(), rpc=shared_rpc_servers)
    assert measured.run.buffers_of(BufferKind.RS), "no RS buffer lines in the log"
    assert not measured.memory.compute_modelled
    assert not measured.fidelity.misses(), "\n".join(measured.fidelity.misses())
    rs_devices = {b.device for b in measured.run.buffers_of(BufferKind.RS)}
    rpc_rows = {r.device for r in measured.fidelity.rows if r.component == "kv"} - {"CPU"}
    assert rpc_rows == rs_devices - {"CPU"} <= set(measured.run.rpc_allocations)
