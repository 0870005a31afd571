"""The model catalogue: every entry loads, is current, and agrees with published numbers.

That each architecture's tensor list is what llama.cpp expects is proven elsewhere: miniatures
of these very blueprints load in the real llama-server (tests/test_synthetic_llama.py), and
their quant mixes match llama.cpp's own snapshots (tests/test_quant_mix.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from solver.errors import BadInput
from solver.gguf.catalogue import (
    CATALOGUE_DIR,
    catalogue_models,
    catalogue_names,
    load_catalogue_entry,
)
from solver.gguf.catalogue_build import write_catalogue
from solver.gguf.catalogue_sources import SOURCES
from solver.gguf.inventory import TensorGroup

BRIEFED_MODELS = {
    "gpt-oss-120b", "gpt-oss-20b", "qwen3-30b-a3b", "qwen3-235b-a22b", "qwen3-32b",
    "glm-4.5-air", "llama-3.3-70b", "gemma-3-27b", "deepseek-v3",
}  # fmt: skip


def _entry(model: str) -> dict:
    return json.loads((CATALOGUE_DIR / f"{model}.json").read_text())


def test_catalogue_holds_the_briefed_models() -> None:
    assert set(catalogue_models()) >= BRIEFED_MODELS


@pytest.mark.parametrize("name", catalogue_names())
def test_every_entry_loads(name: str) -> None:
    inventory = load_catalogue_entry(name)
    model, _, quant = name.partition(":")
    entry = _entry(model)
    quant = quant or entry["default_quant"]
    assert inventory.file_type == quant
    assert inventory.n_tensors == entry["quants"][quant]["n_tensors"] == len(entry["tensors"])
    assert inventory.total_bytes == entry["quants"][quant]["total_bytes"]
    assert inventory.architecture == entry["blueprint"]["architecture"]
    assert inventory.n_layers == entry["metadata"][f"{inventory.architecture}.block_count"]
    groups = inventory.bytes_by_group()
    assert groups[TensorGroup.TOKEN_EMBD] > 0 and groups[TensorGroup.ATTENTION] > 0


def test_bare_name_means_default_quant() -> None:
    assert load_catalogue_entry("gpt-oss-120b").file_type == "MXFP4"
    assert load_catalogue_entry("Qwen3-30B-A3B:q8_0").file_type == "Q8_0"


def test_unknown_names_are_bad_input() -> None:
    with pytest.raises(BadInput, match="no catalogue entry"):
        load_catalogue_entry("not-a-model")
    with pytest.raises(BadInput, match="no quant"):
        load_catalogue_entry("gpt-oss-20b:Q4_K_M")


def _published() -> list[tuple[str, str, dict]]:
    rows = []
    for model in catalogue_models():
        for quant, entry in _entry(model)["quants"].items():
            if entry["published"]:
                rows.append((model, quant, entry))
    return rows


@pytest.mark.parametrize("model,quant,entry", _published(), ids=lambda v: str(v)[:20])
def test_totals_agree_with_published_file_sizes(model: str, quant: str, entry: dict) -> None:
    # listings round to 0.01 GB and include the header (tokenizer, ~5 MB) unless the entry
    # knows it from a file with the same tokenizer; the one known layout change (deepseek's
    # attn_kv_b split into k_b/v_b) moves 0.1 %
    published = entry["published"]["bytes"] - entry["published"].get("header_bytes", 0)
    assert abs(entry["total_bytes"] - published) / published < 0.002


@pytest.mark.parametrize(
    "name,params,tolerance",
    [
        ("deepseek-v3", 671e9, 0.5e9),  # DeepSeek-V3 README: 671B total (main model)
        # DeepSeek-V3.2's safetensors as listed (llmrun.dev): 685.4B, MTP layer and indexer in
        ("deepseek-v3.2", 685.4e9, 0.05e9),
        ("gpt-oss-120b", 116.83e9, 0.01e9),  # llama-bench of ggml-org's file: 116.83 B
        ("qwen3-30b-a3b", 30.5e9, 0.05e9),  # Qwen3 model card: 30.5B in total
        ("glm-4.5-air", 110.47e9, 0.01e9),  # BF16 205.811 GiB at 16.004 BPW (ubergarm README)
        # unsloth's Qwen3.5-35B-A3B GGUF: 34.7B parameters (ggml-org/Llama-macOS#63 table)
        ("qwen3.5-35b-a3b", 34.7e9, 0.05e9),
        # llama.cpp's log of Unsloth's Qwen3.5-122B-A10B upload: 122.11 B parameters
        ("qwen3.5-122b-a10b", 122.11e9, 0.005e9),
        # Nemotron 3 Nano 30B-A3B model listings: 31.6B parameters
        ("nemotron-3-nano-30b-a3b", 31.6e9, 0.05e9),
        # MiniMax-M2 model card: "230 billion total parameters" (rounded; no MTP modules)
        ("minimax-m2", 230e9, 1.5e9),
        # Mistral-Small-4-119B-2603: 119B (its name and card; the vision tower not counted)
        ("mistral-small-4-119b", 119e9, 0.5e9),
        # DeepSeek-V4-Flash model card: 284B total parameters (its MTP layer not converted)
        ("deepseek-v4-flash", 284e9, 0.5e9),
        # Step-3.5-Flash's safetensors as listed (llmrun.dev): 199.4B, its 3 MTP layers in
        ("step-3.5-flash", 199.4e9, 0.05e9),
        # GLM-5.1's safetensors list (a public model report): 753,864,139,008, MTP layer in
        ("glm-5.1", 753_864_139_008, 0),
        # Hugging Face's size label for zai-org/GLM-5: 754B (safetensors, MTP layer in)
        ("glm-5", 754e9, 0.5e9),
        # GLM-5.2: "753 billion total parameters" (its shared-indexer layers carry no indexer)
        ("glm-5.2", 753e9, 0.5e9),
        # llama.cpp's log of bartowski's GLM-Z1-32B-0414 IQ4_XS: model params = 32.566 B
        ("glm-4-32b-0414", 32.566e9, 0.0005e9),
        # LiquidAI's LFM2-8B-A1B card: 8.3B total parameters (rounded)
        ("lfm2-8b-a1b", 8.3e9, 0.05e9),
        # LFM2-350M: 350M in its name (354.48 M)
        ("lfm2-350m", 350e6, 5e6),
        # Granite 4.0 H Tiny's card: 7B total parameters (rounded)
        ("granite-4.0-h-tiny", 7e9, 0.1e9),
        # EXAONE 4.0: 32B and 1.2B in their names (32.00 B, 1.28 B)
        ("exaone-4.0-32b", 32e9, 0.1e9),
        ("exaone-4.0-1.2b", 1.2e9, 0.1e9),
        # ERNIE-4.5-21B-A3B: "21.8B in all" (a public KV planner's count of its config)
        ("ernie-4.5-21b-a3b", 21.8e9, 0.05e9),
        # llama.cpp's log of a Command A fine-tune's Q4_K_M: model params = 111.058 B
        ("command-a-03-2025", 111.058e9, 0.0005e9),
        # Ling-mini-2.0: 16B total in its card (16.26 B)
        ("ling-mini-2.0", 16e9, 0.3e9),
        # dots.llm1's card: 142B total parameters (rounded)
        ("dots-llm1-inst", 142e9, 1e9),
        # Apertus-8B: 8B in its name (8.05 B)
        ("apertus-8b", 8e9, 0.1e9),
        # SmolLM3-3B: 3B in its name and card (3.08 B, tied embeddings counted once)
        ("smollm3-3b", 3e9, 0.1e9),
        # Seed-OSS-36B's safetensors index (a public transformers audit): 36,151,104,512
        ("seed-oss-36b", 36_151_104_512, 0),
        # MiniMax-M3 model card: "~428B parameters" (rounded, the multimodal checkpoint; the
        # text model is 426.17 B)
        ("minimax-m3", 428e9, 2e9),
    ],
)
def test_parameter_counts_match_published(name: str, params: float, tolerance: float) -> None:
    assert abs(load_catalogue_entry(name).n_params - params) <= tolerance


def test_mimo_v2_flash_trunk_matches_the_card() -> None:
    """MiMo-V2-Flash's card: 309B total parameters, the trunk without the 3 MTP layers the
    pinned converter appends (blk.48-50)."""
    inventory = load_catalogue_entry("mimo-v2-flash")
    mtp = sum(
        t.n_elements
        for t in inventory.tensors
        if t.name.startswith(("blk.48.", "blk.49.", "blk.50."))
    )
    assert mtp > 0 and abs(inventory.n_params - mtp - 309e9) <= 0.5e9


def test_files_are_current(tmp_path: Path) -> None:
    """The stored files are exactly what the generator writes today (apart from the date)."""
    for source, path in zip(SOURCES, write_catalogue(SOURCES, tmp_path), strict=True):
        stored = _entry(source.name)
        fresh = json.loads(path.read_text())
        fresh["provenance"]["generated"] = stored["provenance"]["generated"]
        assert fresh == stored, f"{source.name}: run python -m solver.gguf.catalogue_sources"


def test_catalogue_is_compact() -> None:
    total = sum(p.stat().st_size for p in CATALOGUE_DIR.glob("*.json"))
    assert total < 5 * 1024 * 1024


def test_inventory_hyperparameters_follow_llama_cpp() -> None:
    deepseek = load_catalogue_entry("deepseek-v3")
    assert deepseek.n_ff[:3] == (18432,) * 3 and set(deepseek.n_ff[3:]) == {0}
    assert deepseek.experts.leading_dense_layers == 3
    assert deepseek.attention.kv_lora_rank == 512
    assert deepseek.attention.key_length == 576  # MLA stored as MQA: kv_lora_rank + rope dims
    gemma = load_catalogue_entry("gemma-3-27b")
    # gemma3: 5 sliding-window layers then one global (llama_hparams::set_swa_pattern(6))
    assert gemma.attention.swa_layers[:6] == (True, True, True, True, True, False)
    gpt_oss = load_catalogue_entry("gpt-oss-20b")
    assert gpt_oss.attention.swa_layers[:2] == (True, False)
    glm = load_catalogue_entry("glm-4.5-air")
    assert glm.n_layers == 47 and glm.metadata["glm4moe.nextn_predict_layers"] == 1
