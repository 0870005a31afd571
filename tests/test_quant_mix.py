"""solver.gguf.quant_mix against llama.cpp's own answers.

Two references, neither produced by fit:
* the real gemma-3-270m Q4_K_M GGUF (every tensor's name, order, type, shape and bytes);
* llama.cpp's type-selection snapshots (``tests/snapshots/*.schema`` of the pinned source,
  written by ``test-quant-type-selection`` from real published GGUFs): for every file type, the
  type ``llama_tensor_get_type`` gives each quantizable tensor.
"""

from __future__ import annotations

import re
from pathlib import Path

import gguf
import pytest

from solver.errors import BadInput
from solver.gguf.blueprint import Arch, Blueprint, Tokenizer, tensor_specs
from solver.gguf.catalogue import catalogue_blueprint
from solver.gguf.quant_mix import (
    FILE_TYPES,
    NamedMix,
    allows_quantization,
    parse_file_type,
    quantized_tensors,
    tensor_nbytes,
    tensor_types,
)


def _gemma_270m_blueprint(reader: gguf.GGUFReader) -> Blueprint:
    """The blueprint, from the real file's own metadata."""

    def value(key: str):
        return reader.fields[key].contents()

    return Blueprint(
        architecture=Arch.GEMMA3,
        name=value("general.name"),
        n_layer=value("gemma3.block_count"),
        n_embd=value("gemma3.embedding_length"),
        n_vocab=len(reader.fields["tokenizer.ggml.tokens"].data),
        context_length=value("gemma3.context_length"),
        n_head=value("gemma3.attention.head_count"),
        n_head_kv=value("gemma3.attention.head_count_kv"),
        head_dim=value("gemma3.attention.key_length"),
        n_ff=value("gemma3.feed_forward_length"),
        sliding_window=value("gemma3.attention.sliding_window"),
        tied_embeddings="output.weight" not in {t.name for t in reader.tensors},
        qk_norm=True,
        tokenizer=Tokenizer(model="llama"),
    )


def test_real_gemma_270m_q4_k_m_tensor_by_tensor(gemma_gguf: Path) -> None:
    reader = gguf.GGUFReader(gemma_gguf)
    assert reader.fields["general.file_type"].contents() == int(parse_file_type("Q4_K_M"))
    mine = [
        (t.name, t.type, t.shape, t.n_bytes)
        for t in quantized_tensors(_gemma_270m_blueprint(reader), "Q4_K_M")
    ]
    real = [
        (t.name, t.tensor_type.name, tuple(int(d) for d in t.shape), int(t.n_bytes))
        for t in reader.tensors
    ]
    assert mine == real  # 640-wide rows: Q4_K falls back to Q5_0, Q6_K to Q8_0


# --- llama.cpp's snapshots ---------------------------------------------------------------------


def _parse_schema(path: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """``[FTYPE] default`` sections with ``tensor type`` lines for tensors off the default."""
    sections: dict[str, tuple[str, dict[str, str]]] = {}
    overrides: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        header = re.fullmatch(r"\[(\w+)\] (\w+)", line)
        if header:
            overrides = {}
            sections[header.group(1)] = (header.group(2).upper(), overrides)
            continue
        name, type_name = line.rsplit(" ", 1)
        overrides[name] = type_name.upper()
    return sections


def _snapshot_models() -> list[tuple[str, Blueprint]]:
    """Models llama.cpp snapshots, as blueprints (catalogue entries where shapes agree)."""
    qwen3 = {"architecture": Arch.QWEN3, "context_length": 40960, "qk_norm": True}
    return [
        ("gpt-oss-120b.schema", catalogue_blueprint("gpt-oss-120b")),
        # Llama 3.1 70B and 3.3 70B share every shape
        ("meta-llama-3.1-70b-instruct.schema", catalogue_blueprint("llama-3.3-70b")),
        # DeepSeek-V3.1 has DeepSeek-V3's shapes
        ("deepseek-v3.1.schema", catalogue_blueprint("deepseek-v3")),
        # Qwen3-14B config.json (citsjtu2020/LLM-Prof sglang/Model_Config.md)
        (
            "qwen3-14b.schema",
            Blueprint(
                name="Qwen3-14B",
                n_layer=40,
                n_embd=5120,
                n_vocab=151936,
                n_head=40,
                n_head_kv=8,
                head_dim=128,
                n_ff=17408,
                **qwen3,
            ),
        ),
        # Qwen3-0.6B as the snapshot header gives it; ggml-org's file carries output.weight
        (
            "qwen3-0.6b.schema",
            Blueprint(
                name="Qwen3-0.6B",
                n_layer=28,
                n_embd=1024,
                n_vocab=151936,
                n_head=16,
                n_head_kv=8,
                head_dim=128,
                n_ff=3072,
                **qwen3,
            ),
        ),
        # gemma-3-4b-it (text config quoted in public code): tied embeddings
        (
            "gemma-3-4b-it.schema",
            Blueprint(
                architecture=Arch.GEMMA3,
                name="gemma-3-4b-it",
                n_layer=34,
                n_embd=2560,
                n_vocab=262144,
                context_length=131072,
                n_head=8,
                n_head_kv=4,
                head_dim=256,
                n_ff=10240,
                qk_norm=True,
                tied_embeddings=True,
                sliding_window=1024,
                tokenizer=Tokenizer(model="llama"),
            ),
        ),
        # GLM-4.6V's language model has GLM-4.5-Air's shapes, without the NextN layer
        (
            "glm-4.6v.schema",
            catalogue_blueprint("glm-4.5-air").model_copy(update={"nextn_layers": 0}),
        ),
    ]


_SNAPSHOT_MODELS = _snapshot_models()


@pytest.mark.parametrize(
    "schema,blueprint", _SNAPSHOT_MODELS, ids=[schema for schema, _ in _SNAPSHOT_MODELS]
)
def test_matches_llama_cpp_type_selection_snapshot(
    schema: str, blueprint: Blueprint, llama_cpp_source: Path
) -> None:
    snapshots = llama_cpp_source / "tests" / "snapshots"
    sections = _parse_schema(snapshots / schema)
    assert set(sections) - set(FILE_TYPES) <= {"NVFP4"}  # every other file type is compared
    specs = tensor_specs(blueprint)
    quantizable = [i for i, spec in enumerate(specs) if allows_quantization(spec)]
    names = {specs[i].name for i in quantizable}
    compared = 0
    for label, (default, overrides) in sections.items():
        if label not in FILE_TYPES:
            continue
        assert set(overrides) <= names, f"[{label}] tensors we do not describe"
        types = tensor_types(blueprint, specs, label)
        mismatches = [
            (specs[i].name, types[i], overrides.get(specs[i].name, default))
            for i in quantizable
            if types[i] != overrides.get(specs[i].name, default)
        ]
        assert not mismatches, f"[{label}] {mismatches[:5]}"
        compared += 1
    assert compared >= 30


# --- sizes and rules -------------------------------------------------------------------------


def test_nbytes_follow_ggml_block_sizes() -> None:
    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q4_K]
    assert tensor_nbytes("Q4_K", (4096, 11008)) == 4096 * 11008 // block * size
    with pytest.raises(BadInput):
        tensor_nbytes("Q4_K", (640, 8))  # 640 is not a multiple of 256


def test_unknown_file_type_is_bad_input() -> None:
    with pytest.raises(BadInput, match="Q9_K"):
        parse_file_type("Q9_K")


def test_one_dimensional_and_router_tensors_stay_f32() -> None:
    blueprint = catalogue_blueprint("qwen3-30b-a3b")
    for tensor in quantized_tensors(blueprint, "Q2_K"):
        if len(tensor.shape) == 1 or "ffn_gate_inp" in tensor.name:
            assert tensor.type == "F32", tensor.name


# --- named mixes: llama_tensor_get_type with --tensor-type rules and --pure ---------------------


def _dense_llama(n_layer: int = 8) -> Blueprint:
    return Blueprint(
        architecture=Arch.LLAMA, name="dense", n_layer=n_layer, n_embd=256, n_vocab=512,
        context_length=4096, n_head=4, n_head_kv=4, n_ff=512,
    )  # fmt: skip


def _types_by_name(blueprint: Blueprint, quant: str | NamedMix) -> dict[str, str]:
    specs = tensor_specs(blueprint)
    return dict(zip((s.name for s in specs), tensor_types(blueprint, specs, quant), strict=True))


def test_a_named_tensor_skips_the_mix_and_its_counter() -> None:
    """The manual override returns before llama_tensor_get_type_impl, so the attn_v counter
    does not advance for it: layer 1's attn_v is priced as the first one (use_more_bits)."""
    bp = _dense_llama()
    standard = _types_by_name(bp, "Q4_K_M")
    wv = [standard[f"blk.{i}.attn_v.weight"] for i in range(8)]
    assert wv == ["Q6_K", "Q4_K", "Q4_K", "Q6_K", "Q4_K", "Q4_K", "Q6_K", "Q6_K"]
    rule = NamedMix(label="X", file_type="Q4_K_M", tensor_types=((r"blk\.0\.attn_v", "Q8_0"),),
                    source="test")  # fmt: skip
    named = _types_by_name(bp, rule)
    assert [named[f"blk.{i}.attn_v.weight"] for i in range(8)] == [
        "Q8_0", "Q6_K", "Q4_K", "Q4_K", "Q6_K", "Q4_K", "Q4_K", "Q6_K",
    ]  # fmt: skip
    unchanged = {n: t for n, t in named.items() if "attn_v" not in n}
    assert unchanged == {n: t for n, t in standard.items() if "attn_v" not in n}


def test_pure_rules_first_match_and_what_llama_quantize_leaves_alone() -> None:
    bp = _dense_llama(2)
    mix = NamedMix(
        label="P", file_type="Q4_0", pure=True,
        tensor_types=(("attn_", "Q8_0"), ("attn_q", "Q2_K"), ("norm", "Q8_0")),
        stored_types=(("ffn_norm", "F16"),), source="test",
    )  # fmt: skip
    types = _types_by_name(bp, mix)
    assert types["blk.0.attn_q.weight"] == "Q8_0"  # the first matching rule wins
    assert types["blk.1.ffn_down.weight"] == "Q4_0"  # unnamed: --pure gives the default type
    assert types["output.weight"] == "Q4_0"  # no Q6_K for the output under --pure
    # norms are not quantized: --tensor-type never reaches them, the converter's type does
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert types["blk.0.ffn_norm.weight"] == "F16"


def test_named_mix_types_are_checked() -> None:
    with pytest.raises(BadInput, match="Q9_K"):
        NamedMix(label="B", file_type="Q4_0", tensor_types=(("x", "Q9_K"),), source="test")
    with pytest.raises(BadInput, match="Q9_K_M"):
        NamedMix(label="B", file_type="Q9_K_M", source="test")
