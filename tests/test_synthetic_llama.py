"""Synthetic GGUFs of every described architecture load and serve in the real llama-server.

This is the proof that ``solver.gguf.blueprint`` describes what llama.cpp expects: llama.cpp's
loader refuses a file with a missing required tensor, a tensor it did not create ("wrong number
of tensors"), a wrong shape or a wrongly typed key. Each tiny model must start, answer a
``/completion`` request, and report in its log the tensor count and mapped bytes we wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import gguf
import numpy as np
import pytest

from profiles.server import LlamaServer, ServerFailed, complete
from profiles.server_log import BufferKind, LoggedSize, RunReport
from solver.gguf.blueprint import Arch, Blueprint, tensor_specs
from solver.gguf.catalogue import catalogue_blueprint, catalogue_models
from solver.gguf.quant_mix import quantized_tensors
from solver.gguf.synthetic import miniature, tiny_blueprint, write_synthetic_gguf

ARCHS = [arch.value for arch in Arch]

pytestmark = [pytest.mark.llama, pytest.mark.slow]

# one load only (no --fit), so the log holds one set of buffer sizes; every weight in the
# mapped buffers the log reports (no repacking)
SERVE_ARGS = ["--no-warmup", "-c", "512", "--fit", "off", "--no-repack", "-t", "1"]


@pytest.fixture
def serve(
    llama_server_bin: Path, server_env: dict[str, str], tmp_path: Path
) -> Callable[..., object]:
    """``with serve(model) as server:`` a ready llama-server (``profiles.server``) on a tiny
    model; on exit it is stopped and reaped. A model it refuses raises ``ServerFailed``."""

    @contextmanager
    def start(model: Path, startup_timeout_s: float = 180.0) -> Iterator[LlamaServer]:
        server = LlamaServer(
            model,
            SERVE_ARGS,
            binary=llama_server_bin,
            env=server_env,
            log_path=tmp_path / "server.log",
            startup_timeout_s=startup_timeout_s,
        )
        with server:
            yield server
        assert server.pid is None  # stopped and reaped

    return start


def _mapped_span_bytes(paths: list[Path], skipped: set[str]) -> tuple[int, int]:
    """Bytes llama.cpp maps per file (first loaded tensor's start to last one's end), and of
    those the skipped tensors' (a loader may load one tensor of an MTP layer: deepseek32)."""
    total = inside = 0
    for path in paths:
        reader = gguf.GGUFReader(path)
        loaded = [t for t in reader.tensors if t.name not in skipped]
        if loaded:
            first = min(int(t.data_offset) for t in loaded)
            last = max(int(t.data_offset) + int(t.n_bytes) for t in loaded)
            total += last - first
            inside += sum(
                int(t.n_bytes)
                for t in reader.tensors
                if t.name in skipped and first <= int(t.data_offset) < last
            )
    return total, inside


def _check_against_log(
    blueprint: Blueprint, quant: str, paths: list[Path], report: RunReport
) -> None:
    """The log's tensor count and model buffers (MiB, two decimals) against what we wrote."""
    tensors = quantized_tensors(blueprint, quant)
    skipped = {t.name for t in tensors if t.skipped}
    assert report.model_tensors == len(tensors)
    buffers = report.buffers_of(BufferKind.MODEL)
    assert buffers, "no 'model buffer size' line in the log"
    span, skipped_inside = _mapped_span_bytes(paths, skipped)
    loaded_bytes = sum(t.n_bytes for t in tensors if not t.skipped) + skipped_inside
    # the span is the tensors we wrote plus at most one alignment pad between neighbours
    assert loaded_bytes <= span <= loaded_bytes + gguf.GGUF_DEFAULT_ALIGNMENT * len(tensors)
    # each buffer's size is known to its two printed decimals
    assert sum((b.size for b in buffers), LoggedSize.exact(0)).contains(span)


# --- tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_model_loads_and_serves(serve, arch: str, synthetic_gguf) -> None:
    paths = synthetic_gguf(arch, "Q4_K_M")
    with serve(paths[0]) as server:
        reply = complete(server.url, "hello there, tiny model", n_predict=4)
    assert reply.timings.predicted_n == 4
    _check_against_log(tiny_blueprint(arch), "Q4_K_M", paths, server.report())


def test_split_set_of_three_loads(serve, synthetic_gguf) -> None:
    paths = synthetic_gguf("deepseek2", "Q4_K_M", n_parts=3)
    assert [p.name for p in paths] == [
        f"tiny-deepseek2-Q4_K_M-{i:05d}-of-00003.gguf" for i in (1, 2, 3)
    ]
    with serve(paths[0]) as server:
        assert complete(server.url, "split", n_predict=4).timings.predicted_n == 4
    report = server.report()
    assert len(report.buffers_of(BufferKind.MODEL)) == 3  # one mapped buffer per part
    _check_against_log(tiny_blueprint("deepseek2"), "Q4_K_M", paths, report)


@pytest.mark.parametrize("model", catalogue_models())
def test_catalogue_blueprint_miniature_loads(serve, model: str, synthetic_gguf) -> None:
    """Each catalogue blueprint, shrunk with every structural feature kept, serves."""
    blueprint = miniature(catalogue_blueprint(model))
    quant = "MXFP4" if blueprint.architecture is Arch.GPT_OSS else "Q4_K_M"
    paths = synthetic_gguf(blueprint, quant)
    with serve(paths[0]) as server:
        assert complete(server.url, "catalogue", n_predict=2).timings.predicted_n == 2
    _check_against_log(blueprint, quant, paths, server.report())


def test_split_parts_carry_keys_as_gguf_split_writes_them(synthetic_gguf) -> None:
    paths = synthetic_gguf("deepseek2", "Q4_K_M", n_parts=3)
    n_tensors = len(tensor_specs(tiny_blueprint("deepseek2")))
    split_keys = ["split.no", "split.count", "split.tensors.count"]
    for index, path in enumerate(paths):
        reader = gguf.GGUFReader(path)
        keys = [k for k in reader.fields if not k.startswith("GGUF.")]
        if index == 0:
            assert keys[0] == "general.architecture" and keys[-3:] == split_keys
        else:
            assert keys == split_keys  # metadata lives in the first part only
        types = [reader.fields[k].types[0] for k in split_keys]
        assert types == [gguf.GGUFValueType.UINT16, gguf.GGUFValueType.UINT16,
                         gguf.GGUFValueType.INT32]  # fmt: skip
        values = [reader.fields[k].contents() for k in split_keys]
        assert values == [index, 3, n_tensors]


# Per architecture, a tensor that only that architecture's loader insists on.
_ARCH_SPECIFIC_REQUIRED = {
    "llama": "blk.1.ffn_gate.weight",
    "qwen3": "blk.0.attn_q_norm.weight",
    "qwen3moe": "blk.1.ffn_gate_inp.weight",
    "gemma3": "blk.0.post_ffw_norm.weight",
    "deepseek2": "blk.1.ffn_gate_shexp.weight",
    "deepseek32": "blk.0.indexer.attn_k.weight",
    "glm-dsa": "blk.0.attn_q_a.weight",  # its indexer is TENSOR_NOT_REQUIRED
    "gpt-oss": "blk.0.attn_sinks.weight",
    "glm4moe": "blk.1.exp_probs_b.bias",
    "qwen35": "blk.0.ssm_beta.weight",
    "qwen35moe": "blk.1.ffn_gate_inp_shexp.weight",
    "llama4": "blk.1.ffn_gate_shexp.weight",
    "gemma4": "blk.0.inp_gate.weight",
    "qwen3next": "blk.0.ssm_ba.weight",
    "nemotron_h_moe": "blk.0.ssm_d",
    "minimax-m2": "blk.1.attn_k_norm.weight",
    "mistral4": "blk.0.attn_q_a_norm.weight",
    "kimi-linear": "blk.0.ssm_f_b.weight",
    "deepseek4": "blk.1.indexer_compressor_ape.weight",
    "qwen3vl": "blk.3.attn_k_norm.weight",
    "qwen3vlmoe": "blk.2.ffn_gate_inp.weight",
    "step35": "output.weight",
    "glm5-next": "blk.1.indexer_compressor_gate.weight",
    "minimax-m3": "blk.1.indexer.q_norm.weight",
    "mimo2": "blk.1.attn_v.weight",
    "seed_oss": "blk.1.post_attention_norm.weight",
    "smollm3": "blk.1.ffn_norm.weight",
    "glm4": "blk.1.post_ffw_norm.weight",
    "olmo2": "output.weight",
    "lfm2": "blk.0.shortconv.conv.weight",
    "lfm2moe": "blk.2.exp_probs_b.bias",
    "exaone4": "blk.1.post_ffw_norm.weight",
    "granitehybrid": "blk.0.ssm_norm.weight",
    "ernie4_5-moe": "blk.1.ffn_up_shexp.weight",
    "cohere2": "blk.1.attn_norm.weight",
    "dots1": "blk.1.ffn_gate_shexp.weight",
    "bailingmoe2": "blk.0.attn_qkv.weight",
    "apertus": "blk.1.attn_q_norm.weight",
    "hunyuan-moe": "blk.1.ffn_up_shexp.weight",
    "phi3": "blk.1.ffn_up.weight",
}


@pytest.mark.parametrize("arch", ARCHS)
def test_missing_required_tensor_is_refused(serve, arch: str, tmp_path: Path) -> None:
    blueprint = tiny_blueprint(arch)
    name = _ARCH_SPECIFIC_REQUIRED[arch]
    spec = next(s for s in tensor_specs(blueprint) if s.name == name)
    assert spec.required
    [path] = write_synthetic_gguf(blueprint, "Q4_K_M", tmp_path / "m.gguf", exclude={name})
    with pytest.raises(ServerFailed) as refused, serve(path, startup_timeout_s=60):
        pass
    assert refused.value.exit_code is not None  # it exited, it did not hang
    log = refused.value.log_path.read_text()
    # llama_model_loader::check_tensor_dims or create_tensor, whichever meets it first
    assert f"tensor '{name}' not found" in log or f"missing tensor '{name}'" in log


@pytest.mark.parametrize("arch", ARCHS)
def test_optional_tensors_may_be_absent(serve, arch: str, tmp_path: Path) -> None:
    blueprint = tiny_blueprint(arch)
    optional = {s.name for s in tensor_specs(blueprint) if not s.required}
    [path] = write_synthetic_gguf(blueprint, "Q4_K_M", tmp_path / "m.gguf", exclude=optional)
    with serve(path) as server:
        assert server.report().loaded


def test_unknown_architecture_is_refused(serve, tmp_path: Path) -> None:
    path = tmp_path / "unknown.gguf"
    writer = gguf.GGUFWriter(path, "fitnosucharch")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ServerFailed) as refused, serve(path, startup_timeout_s=60):
        pass
    assert refused.value.exit_code not in (None, 0)
    assert "unknown model architecture: 'fitnosucharch'" in refused.value.log_path.read_text()
