"""solver.gguf.blueprint: metadata and validation, checked against a real converted GGUF."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from solver.errors import BadInput
from solver.gguf.blueprint import Arch, Blueprint, gguf_metadata, tensor_specs
from solver.gguf.quant_mix import parse_file_type, quantized_tensors
from solver.gguf.synthetic import tiny_blueprint
from tests.test_quant_mix import _gemma_270m_blueprint


def test_architecture_keys_match_the_real_gemma_270m_file(gemma_gguf: Path) -> None:
    reader = gguf.GGUFReader(gemma_gguf)
    blueprint = _gemma_270m_blueprint(reader).model_copy(
        update={"rope_theta": reader.fields["gemma3.rope.freq_base"].contents()}
    )
    mine = gguf_metadata(blueprint, parse_file_type("Q4_K_M"))
    real = {
        key: field.contents() for key, field in reader.fields.items() if key.startswith("gemma3.")
    }
    assert set(real) == {key for key in mine if key.startswith("gemma3.")}
    for key, value in real.items():
        assert mine[key] == pytest.approx(value, rel=1e-6), key
        types = reader.fields[key].types
        expected = gguf.GGUFValueType.FLOAT32 if isinstance(mine[key], float) else None
        assert expected is None or types[0] is expected, key


def test_deepseek2_mla_is_written_as_mqa() -> None:
    blueprint = Blueprint(
        architecture=Arch.DEEPSEEK2, name="mla", n_layer=2, n_embd=256, n_vocab=320,
        context_length=4096, n_head=4, n_head_kv=4, n_ff=512, n_expert=4, n_expert_used=2,
        n_ff_exp=256, kv_lora_rank=256, q_lora_rank=256, qk_nope_head_dim=64,
        qk_rope_head_dim=32, v_head_dim=64,
    )  # fmt: skip
    meta = gguf_metadata(blueprint, parse_file_type("Q8_0"))
    assert meta["deepseek2.attention.head_count_kv"] == 1
    assert meta["deepseek2.attention.key_length"] == 256 + 32
    assert meta["deepseek2.attention.key_length_mla"] == 64 + 32
    names = {spec.name for spec in tensor_specs(blueprint)}
    assert {"blk.0.attn_k_b.weight", "blk.0.attn_v_b.weight"} <= names
    assert "blk.0.attn_kv_b.weight" not in names


def test_deepseek32_adds_the_indexer_to_deepseek2() -> None:
    """deepseek32.cpp: deepseek2's MLA layer plus the lightning indexer's five tensors and
    its three keys; without q compression or indexer sizes the blueprint is refused."""
    v32 = tiny_blueprint("deepseek32")
    meta = gguf_metadata(v32, parse_file_type("Q4_K_M"))
    assert meta["deepseek32.attention.indexer.head_count"] == 4
    assert meta["deepseek32.attention.indexer.key_length"] == 64
    assert meta["deepseek32.attention.indexer.top_k"] == 64
    assert meta["deepseek32.attention.head_count_kv"] == 1
    v2 = v32.model_copy(update={"architecture": Arch.DEEPSEEK2})
    extra = {s.name for s in tensor_specs(v32)} - {s.name for s in tensor_specs(v2)}
    roles = ("k_norm.weight", "k_norm.bias", "proj.weight", "attn_k.weight", "attn_q_b.weight")
    assert extra == {f"blk.{il}.indexer.{r}" for il in range(v32.n_layer_all) for r in roles}
    with pytest.raises(BadInput, match="indexer"):
        v32.model_validate({**v32.model_dump(), "indexer_top_k": 0})


def test_glm_dsa_shared_layers_have_no_indexer() -> None:
    """glm-dsa.cpp: deepseek32's layers, the indexer's tensors only on the "full" layers
    (and the MTP block, which has no embedding or shared head: GLM-5.x checkpoints carry
    neither), the types written as conversion/glm.py writes indexer_types; a first layer that
    shares, or types not one per trunk layer, are refused."""
    glm = tiny_blueprint("glm-dsa")  # full, shared, shared; one MTP block
    meta = gguf_metadata(glm, parse_file_type("Q4_K_M"))
    assert meta["glm-dsa.attention.indexer.types"] == [True, False, False]
    v32 = glm.model_copy(update={"architecture": Arch.DEEPSEEK32, "indexer_types": ()})
    missing = {s.name for s in tensor_specs(v32)} - {s.name for s in tensor_specs(glm)}
    roles = ("k_norm.weight", "k_norm.bias", "proj.weight", "attn_k.weight", "attn_q_b.weight")
    mtp = {"blk.3.nextn.embed_tokens.weight", "blk.3.nextn.shared_head_head.weight"}
    assert missing == {f"blk.{il}.indexer.{r}" for il in (1, 2) for r in roles} | mtp
    for types in ((False, True, True), (True, False)):
        with pytest.raises(BadInput, match="indexer"):
            glm.model_validate({**glm.model_dump(), "indexer_types": types})
    untyped = glm.model_copy(update={"indexer_types": ()})
    assert "glm-dsa.attention.indexer.types" not in gguf_metadata(untyped, parse_file_type("Q8_0"))


def test_deepseek4_layers_follow_their_compression_and_routing() -> None:
    """deepseek4.cpp: a ratio-0 layer has no compressor, a ratio-128 one its own (one head
    wide, 128 position embeddings), a ratio-4 one a doubled compressor plus the indexer with
    its compressor; hash-routed layers a token-to-experts table instead of the selection bias;
    attn_output_a stored as the file holds it; the keys gguf-py lacks written raw."""
    v4 = tiny_blueprint("deepseek4")  # ratios 0, 4, 128, 4; layer 0 hash-routed
    specs = {s.name: s for s in tensor_specs(v4)}

    def roles(il: int) -> set[str]:
        return {n.split(".", 2)[2] for n in specs if n.startswith(f"blk.{il}.")}

    compressor = {"attn_compressor_kv.weight", "attn_compressor_norm.weight"}
    assert not roles(0) & compressor and compressor <= roles(1) & roles(2)
    assert "indexer_compressor_ape.weight" in roles(1) - roles(2)
    assert specs["blk.1.attn_compressor_ape.weight"].shape == (256, 4)
    assert specs["blk.2.attn_compressor_ape.weight"].shape == (128, 128)
    assert specs["blk.0.ffn_gate_tid2eid.weight"].source_type == "I32"
    assert "blk.0.exp_probs_b.bias" not in specs and "blk.1.exp_probs_b.bias" in specs
    assert specs["blk.0.attn_output_a.weight"].shape == (4 * 128 // 2, 128 * 2)
    meta = gguf_metadata(v4, parse_file_type("Q4_K_M"))
    assert meta["deepseek4.attention.compress_ratios"] == [0, 4, 128, 4]
    assert meta["deepseek4.expert_gating_func"] == 4  # sqrtsoftplus
    assert meta["deepseek4.embedding_length_out"] == 4 * 256
    with pytest.raises(BadInput, match="0, 4 or 128"):
        v4.model_validate({**v4.model_dump(), "compress_ratios": (0, 4, 64, 4)})
    with pytest.raises(BadInput, match="hc_mult 4"):
        v4.model_validate({**v4.model_dump(), "hc_mult": 2})


def test_glm5_next_layers_follow_their_kind_and_indexer() -> None:
    """glm5-next.cpp: KDA layers (A one row of heads) and NoPE MLA layers, the k-pool indexer
    only where the layer's indexer is full (and on the MTP layer), hyper-connection mixes on
    trunk layers only; llama-quantize keeps the small and sensitive weights as converted and
    the q projections at Q8_0 or better; the converter's keys gguf-py lacks written raw."""
    g5 = tiny_blueprint("glm5-next")  # KDA 0, 2; MLA 1 (full indexer), 3 (shared); MTP 4
    specs = {s.name: s for s in tensor_specs(g5)}

    def roles(il: int) -> set[str]:
        return {n.split(".", 2)[2] for n in specs if n.startswith(f"blk.{il}.")}

    pool = {"indexer_compressor_gate.weight", "indexer_compressor_ape.weight"}
    assert pool <= roles(1) and pool <= roles(4) and not pool & (roles(0) | roles(3))
    assert "attn_kv_a_mqa.weight" in roles(3) and "ssm_f_a.weight" in roles(2)
    assert "hc_attn_fn.weight" in roles(3) and "hc_attn_fn.weight" not in roles(4)
    assert specs["blk.0.ssm_a"].shape == (4,)
    assert specs["blk.1.attn_kv_a_mqa.weight"].shape == (256, 256)  # no rotary part
    assert specs["blk.1.indexer_compressor_ape.weight"].shape == (64, 4)
    assert all(s.skipped for n, s in specs.items() if n.startswith("blk.4."))
    meta = gguf_metadata(g5, parse_file_type("Q4_K_M"))
    assert meta["glm5-next.attention.head_count_kv"] == [0, 1, 0, 1, 1]
    assert meta["glm5-next.attention.indexer.kpool"] == 4
    assert meta["glm5-next.attention.indexer.types"] == [True, True, True, False]
    assert meta["glm5-next.hyper_connection.count"] == 4
    types = {t.name: t.type for t in quantized_tensors(g5, "Q4_K_M")}
    assert types["blk.1.indexer.attn_k.weight"] == types["blk.0.ssm_f_a.weight"] == "BF16"
    assert types["blk.1.attn_q_b.weight"] == "Q8_0"
    with pytest.raises(BadInput, match="kpool"):
        g5.model_validate({**g5.model_dump(), "indexer_kpool": 3})
    with pytest.raises(BadInput, match="first MLA layer"):
        g5.model_validate({**g5.model_dump(), "indexer_types": (True, False, True, True)})


def test_inconsistent_blueprints_are_bad_input() -> None:
    with pytest.raises(BadInput, match="n_expert"):
        Blueprint(architecture=Arch.QWEN3MOE, name="x", n_layer=1, n_embd=256, n_vocab=300,
                  context_length=512, n_head=4, n_head_kv=4)  # fmt: skip
    with pytest.raises(BadInput, match="multiple"):
        Blueprint(architecture=Arch.LLAMA, name="x", n_layer=1, n_embd=256, n_vocab=300,
                  context_length=512, n_head=6, n_head_kv=4, n_ff=512)  # fmt: skip
