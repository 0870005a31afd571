"""Hyperparameters: the real gemma file, and metadata shaped like each architecture family.

Expected per-layer patterns are the formulas of the pinned llama.cpp's load_arch_hparams
(cited per test), written out independently of fit's table.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from solver.errors import BadInput
from solver.gguf.hparams import build_inventory, file_type_label, llama_architectures
from solver.gguf.inventory import Inventory, make_tensor
from solver.gguf.reader import read_local_header


def model(arch: str, n_layers: int = 8, tensors=(), **keys: Any) -> Inventory:
    """Build an inventory from ``{arch}.<key>`` metadata; dots are written as '__'."""
    metadata: dict[str, Any] = {
        "general.architecture": arch,
        f"{arch}.block_count": n_layers,
        f"{arch}.embedding_length": 512,
        f"{arch}.context_length": 4096,
        f"{arch}.attention.head_count": 8,
    }
    for key, value in keys.items():
        full = key.replace("__", ".")
        metadata[full if full.startswith(("general.", "tokenizer.")) else f"{arch}.{full}"] = value
    return build_inventory(f"{arch}.gguf", metadata, list(tensors))


def bad(fragment: str, arch: str, **kw: Any) -> None:
    with pytest.raises(BadInput) as caught:
        model(arch, **kw)
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(f"{arch}.gguf: ")


# --- the real file ---------------------------------------------------------------------------


def test_gemma_hyperparameters_equal_its_metadata(gemma_gguf: Path) -> None:
    header, _ = read_local_header(gemma_gguf)
    md = header.metadata
    tensors = [make_tensor(t.name, t.type, t.shape, t.n_bytes) for t in header.tensors]
    inv = build_inventory(str(gemma_gguf), md, tensors)
    assert inv.architecture == md["general.architecture"] == "gemma3"
    assert inv.n_layers == md["gemma3.block_count"]
    assert inv.n_embd == md["gemma3.embedding_length"]
    assert inv.context_length == md["gemma3.context_length"]
    assert set(inv.n_ff) == {md["gemma3.feed_forward_length"]}
    assert set(inv.attention.n_head) == {md["gemma3.attention.head_count"]}
    assert set(inv.attention.n_head_kv) == {md["gemma3.attention.head_count_kv"]}
    assert inv.attention.key_length == md["gemma3.attention.key_length"]
    assert inv.attention.value_length == md["gemma3.attention.value_length"]
    assert inv.attention.sliding_window == md["gemma3.attention.sliding_window"]
    assert inv.n_vocab == md["tokenizer.ggml.tokens"]
    assert inv.file_type == "Q4_K_M"
    assert inv.n_params == sum(math.prod(t.shape) for t in header.tensors)
    assert inv.total_bytes == sum(t.n_bytes for t in header.tensors)
    # gemma3.cpp: load_swa_pattern(ml, 6) -> every 6th layer is full attention.
    assert inv.attention.swa_layers == tuple(il % 6 < 5 for il in range(inv.n_layers))


# --- architecture gate -----------------------------------------------------------------------


def test_unknown_architecture_is_bad_input() -> None:
    bad("architecture 'nosuchnet' is not one the pinned llama.cpp knows", "nosuchnet")


def test_mmproj_is_bad_input() -> None:
    bad("multimodal projector", "clip")


def test_architecture_list_matches_the_pinned_source(llama_cpp_source: Path) -> None:
    text = (llama_cpp_source / "src" / "llama-arch.cpp").read_text()
    table = re.search(r"LLM_ARCH_NAMES = \{(.*?)\n\};", text, re.S)
    assert table is not None
    names = set(re.findall(r'\{\s*LLM_ARCH_\w+\s*,\s*"([^"]+)"\s*\}', table.group(1)))
    assert llama_architectures() == names - {"(unknown)"}
    bundled = json.loads(Path("data/llama_archs.json").read_text())["names"]
    assert set(bundled) == names


# --- generic keys ----------------------------------------------------------------------------


def test_missing_block_count_is_bad_input() -> None:
    with pytest.raises(BadInput, match=re.escape("missing metadata key 'llama.block_count'")):
        build_inventory("m.gguf", {"general.architecture": "llama"}, [])


def test_per_layer_array_of_wrong_length_is_bad_input() -> None:
    bad("has 3 entries for 8 layers", "llama", attention__head_count_kv=[1, 2, 3])


def test_string_where_a_number_belongs_is_bad_input() -> None:
    bad("should be an unsigned integer", "llama", feed_forward_length="big")


def test_defaults_follow_load_hparams() -> None:
    inv = model("llama")
    # llama-model.cpp: n_head_kv defaults to n_head, head size to n_embd / n_head.
    assert inv.attention.n_head_kv == (8,) * 8
    assert inv.attention.key_length == inv.attention.value_length == 512 // 8
    assert inv.attention.rope_dim == 64
    assert inv.attention.swa_type == "none" and inv.attention.swa_layers == ()
    assert inv.recurrent is None and inv.experts.count == 0


def test_per_layer_head_counts() -> None:
    inv = model("llama", n_layers=4, attention__head_count_kv=[8, 0, 4, 8])
    assert inv.attention.n_head_kv == (8, 0, 4, 8)


def test_vocab_size_sources() -> None:
    assert model("llama", vocab_size=1000).n_vocab == 1000
    assert model("llama", tokenizer__ggml__tokens=32000).n_vocab == 32000
    embd = make_tensor("token_embd.weight", "F16", (512, 777), 512 * 777 * 2)
    assert model("llama", tensors=[embd]).n_vocab == 777


def test_tensor_beyond_block_count_is_bad_input() -> None:
    stray = make_tensor("blk.9.attn_q.weight", "F32", (4, 4), 64)
    bad("belongs to layer 9 but block_count is 8", "llama", tensors=[stray])


@pytest.mark.parametrize(
    ("value", "label"),
    [(0, "F32"), (1, "F16"), (15, "Q4_K_M"), (38, "MXFP4_MOE"), (41, "Q2_0"), (1024, "")],
)
def test_file_type_label(value: int, label: str) -> None:
    assert file_type_label(value) == label


# --- mixture of experts, MLA -----------------------------------------------------------------


def deepseek_tensors(n_layers: int, dense: int) -> list:
    tensors = []
    for il in range(n_layers):
        if il < dense:
            tensors.append(make_tensor(f"blk.{il}.ffn_up.weight", "F16", (64, 128), 16384))
        else:
            tensors.append(make_tensor(f"blk.{il}.ffn_up_exps.weight", "F16", (64, 32, 8), 32768))
            tensors.append(make_tensor(f"blk.{il}.ffn_up_shexp.weight", "F16", (64, 32), 4096))
    return tensors


def test_deepseek2_moe_and_mla() -> None:
    inv = model(
        "deepseek2",
        n_layers=6,
        tensors=deepseek_tensors(6, 2),
        feed_forward_length=18432,
        expert_count=256,
        expert_used_count=8,
        expert_shared_count=1,
        leading_dense_block_count=2,
        expert_feed_forward_length=2048,
        attention__kv_lora_rank=512,
        attention__q_lora_rank=1536,
        attention__key_length=576,
        attention__value_length=512,
        attention__key_length_mla=192,
        attention__value_length_mla=128,
        rope__dimension_count=64,
        attention__head_count_kv=1,
    )
    assert inv.experts.model_dump() == {
        "count": 256,
        "used": 8,
        "shared": 1,
        "leading_dense_layers": 2,
        "feed_forward_length": 2048,
        "shared_feed_forward_length": 2048,  # deepseek2.cpp: n_ff_exp * n_expert_shared
    }
    att = inv.attention
    assert (att.kv_lora_rank, att.q_lora_rank, att.rope_dim) == (512, 1536, 64)
    assert (att.key_length, att.value_length) == (576, 512)
    assert (att.key_length_mla, att.value_length_mla) == (192, 128)
    assert inv.n_ff == (18432, 18432, 0, 0, 0, 0)  # dense FFN only where dense tensors are


def test_shared_expert_count_defaults_to_one_when_tensors_show_one() -> None:
    inv = model("qwen2moe", n_layers=2, tensors=deepseek_tensors(2, 0), expert_count=60,
                expert_used_count=4)  # fmt: skip
    assert inv.experts.shared == 1


def test_hunyuan_dense_single_expert_is_no_expert() -> None:
    # llama-model.cpp load_hparams: HUNYUAN_VL/HUNYUAN_DENSE with n_expert <= 1 -> 0.
    inv = model("hunyuan-dense", expert_count=1, expert_used_count=1)
    assert (inv.experts.count, inv.experts.used) == (0, 0)


def test_more_experts_used_than_exist_is_bad_input() -> None:
    bad("exceeds expert_count", "qwen3moe", expert_count=4, expert_used_count=8)


def test_nextn_layers_are_counted_and_excluded_from_patterns() -> None:
    # glm4moe-style MTP: block_count includes the nextn block (llama-hparams.cpp n_layer()).
    inv = model("qwen35", n_layers=9, nextn_predict_layers=1, ssm__conv_kernel=4)
    assert inv.n_layers == 9 and inv.n_layers_nextn == 1
    assert inv.recurrent is not None
    # qwen35.cpp: recurrent iff il < n_layer() and (il + 1) % 4 != 0; the MTP block is not.
    expected = tuple(il < 8 and (il + 1) % 4 != 0 for il in range(9))
    assert inv.recurrent.recurrent_layers == expected


# --- sliding window --------------------------------------------------------------------------


def test_gpt_oss_alternates() -> None:
    inv = model("gpt-oss", n_layers=6, attention__sliding_window=128)
    # openai-moe.cpp: load_swa_pattern(ml, 2) -> il % 2 < 1.
    assert inv.attention.swa_layers == (True, False) * 3
    assert inv.attention.sliding_window == 128


def test_gemma3_without_window_has_no_swa() -> None:
    assert model("gemma3").attention.swa_type == "none"


def test_gemma2_default_window() -> None:
    inv = model("gemma2", n_layers=4)
    assert inv.attention.sliding_window == 4096  # gemma2.cpp default
    assert inv.attention.swa_layers == (True, False, True, False)


def test_llama4_chunked_unless_window_zero() -> None:
    inv = model("llama4", n_layers=8)
    assert inv.attention.swa_type == "chunked" and inv.attention.sliding_window == 8192
    assert inv.attention.swa_layers == tuple(il % 4 < 3 for il in range(8))
    assert model("llama4", attention__sliding_window=0).attention.swa_type == "none"


def test_dense_first_pattern() -> None:
    inv = model("cohere2moe", n_layers=8, attention__sliding_window=4096)
    # cohere2moe.cpp: load_swa_pattern(ml, 4, true) -> full attention where il % 4 == 0.
    assert inv.attention.swa_layers == tuple(il % 4 != 0 for il in range(8))


def test_pattern_key_overrides_default() -> None:
    inv = model("gemma3", n_layers=6, attention__sliding_window=512,
                attention__sliding_window_pattern=3)  # fmt: skip
    assert inv.attention.swa_layers == (True, True, False) * 2
    flags = [True, False, False, True, True, False]
    inv = model("gemma3", n_layers=6, attention__sliding_window=512,
                attention__sliding_window_pattern=flags)  # fmt: skip
    assert inv.attention.swa_layers == tuple(flags)


def test_pattern_array_architectures_need_the_array() -> None:
    bad("attention.sliding_window_pattern", "gemma4", attention__sliding_window=512)


def test_phi3_ignores_its_window() -> None:
    assert model("phi3", attention__sliding_window=2047).attention.swa_type == "none"


def test_kv_shared_layers() -> None:
    flags = [True] * 8
    inv = model("gemma4", attention__sliding_window=512, attention__sliding_window_pattern=flags,
                attention__shared_kv_layers=3)  # fmt: skip
    assert inv.attention.n_layer_kv_from_start == 5
    assert model("gemma3n", attention__sliding_window=512).attention.n_layer_kv_from_start == 20


# --- recurrent and hybrid --------------------------------------------------------------------


def test_mamba_is_all_recurrent_without_attention() -> None:
    inv = model("mamba", attention__head_count=0, ssm__conv_kernel=4, ssm__inner_size=1536,
                ssm__state_size=16, ssm__time_step_rank=48)  # fmt: skip
    assert inv.recurrent is not None
    assert inv.recurrent.recurrent_layers == (True,) * 8
    assert (inv.recurrent.conv_kernel, inv.recurrent.inner_size) == (4, 1536)
    assert inv.attention.key_length == 0


def test_jamba_recurrent_where_no_kv_heads() -> None:
    kv = [0, 0, 0, 8, 0, 0, 0, 8]
    inv = model("jamba", attention__head_count_kv=kv, ssm__conv_kernel=4)
    assert inv.recurrent is not None
    assert inv.recurrent.recurrent_layers == tuple(n == 0 for n in kv)


def test_nemotron_h_recurrent_needs_no_ffn_too() -> None:
    kv = [0, 0, 8, 0]
    ff = [0, 4096, 0, 0]
    inv = model("nemotron_h", n_layers=4, attention__head_count_kv=kv, feed_forward_length=ff)
    assert inv.recurrent is not None
    assert inv.recurrent.recurrent_layers == (True, False, False, True)


def test_explicit_recurrent_layers_array() -> None:
    flags = [True, False, True, False]
    inv = model("qwen3next", n_layers=4, attention__recurrent_layers=flags)
    assert inv.recurrent is not None and inv.recurrent.recurrent_layers == tuple(flags)


def test_minimax_default_interval() -> None:
    inv = model("minimax-01", n_layers=16)
    assert inv.recurrent is not None
    assert inv.recurrent.recurrent_layers == tuple((il + 1) % 8 != 0 for il in range(16))


def test_lfm2_attention_layers_use_the_window() -> None:
    kv = [0, 0, 8, 0, 8, 0]
    inv = model("lfm2", n_layers=6, attention__head_count_kv=kv, attention__sliding_window=512)
    assert inv.attention.swa_layers == tuple(n > 0 for n in kv)
    assert model("lfm2", n_layers=6, attention__head_count_kv=kv).attention.swa_type == "none"
