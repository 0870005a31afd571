"""``fit memory`` on a CUDA rig names the ops CUDA refuses and prices their CPU fallback.

fit prices CUDA without a GPU, from the pinned source: these plans are source-derived and
not validated against a GPU (none here). The graphs are the real recipes' on real and
miniature models; the refusals are ``solver.ggml.cuda_ops``'s transcription of
``ggml_backend_cuda_device_supports_op``.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli import cli
from solver.gguf.catalogue import catalogue_blueprint, load_catalogue_entry
from solver.gguf.synthetic import miniature

ALL_ON_GPU = ["-c", "4096", "-ngl", "99", "--fit", "off"]
Q8_CACHE = ["-ctk", "q8_0", "-ctv", "q8_0"]


def _memory(model: str, *llama_args: str, as_json: bool = True) -> dict | str:
    args = ["memory", model, "--hardware", "single-4090", *(["--json"] if as_json else [])]
    result = CliRunner().invoke(cli, [*args, "--", *llama_args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output) if as_json else result.output


def test_deepseek4_miniature_runs_its_indexer_on_the_cpu(synthetic_gguf) -> None:
    """The miniature's lightning indexer has 64-wide heads, and lightning-indexer.cu:726 takes
    128-wide ones only: each of its two indexer layers runs that node on the CPU, two splits
    more each (2 all on the GPU: the CPU's inputs, then CUDA0). The q8_0 caches' CONCAT
    (dim 2) stays on CUDA: ggml-cuda.cu:5513 takes quantized tensors contiguous over dims
    0-2, which the raw and compressed K views are."""
    (path,) = synthetic_gguf(miniature(catalogue_blueprint("deepseek-v4-flash")))
    document = _memory(str(path), *ALL_ON_GPU, *Q8_CACHE)
    assert document["op_fallbacks"] == [{"op": "LIGHTNING_INDEXER", "device": "CPU", "nodes": 2}]
    assert document["graph_splits"] == 2 + 2 * 2
    text = _memory(str(path), *ALL_ON_GPU, *Q8_CACHE, as_json=False)
    assert "2 LIGHTNING_INDEXER nodes on CPU" in text and "not validated on a GPU" in text
    assert "not their time" in text  # the speed estimate does not price the fallback


def test_deepseek_v4_flash_itself_runs_every_op_on_the_gpu() -> None:
    """DeepSeek-V4-Flash's own indexer (64 heads of 128) and its q8_0 caches: no fallback."""
    document = _memory("deepseek-v4-flash", *ALL_ON_GPU, *Q8_CACHE)
    assert document["op_fallbacks"] == [] and document["graph_splits"] == 2


def test_mistral_small_4_runs_its_expert_down_projection_on_the_cpu() -> None:
    """llama-graph.cpp asks F32 precision of mistral4's down-projection input
    (ggml_prec_set_src), which ggml-cuda.cu:5325 refuses: each of the 36 MoE layers runs that
    MUL_MAT_ID on the CPU, two splits more each, and the CPU copies the layer's expert
    weights out of CUDA0 into its compute buffer (one layer's at a time)."""
    document = _memory("mistral-small-4-119b", *ALL_ON_GPU)
    assert document["op_fallbacks"] == [{"op": "MUL_MAT_ID", "device": "CPU", "nodes": 36}]
    assert document["graph_splits"] == 2 + 2 * 36
    inventory = load_catalogue_entry("mistral-small-4-119b")
    down = next(t for t in inventory.tensors if t.name == "blk.1.ffn_down_exps.weight")
    assert document["devices"]["CPU"]["compute"] > down.n_bytes


def test_fit_solve_names_the_fallback_in_its_plan() -> None:
    """The plan fit solve prints carries the memory report's note (split count included)."""
    args = ["solve", "mistral-small-4-119b", "--hardware", "2x3090", "--ctx", "8192"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "36 MUL_MAT_ID nodes on CPU" in result.output
