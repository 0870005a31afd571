"""Synthetic GGUF files: a blueprint's exact header with placeholder weights.

``write_synthetic_gguf`` writes what a converted-then-quantized model of the blueprint would
look like to llama.cpp: the full metadata, a tokenizer llama.cpp accepts, and every tensor with
its real name, type and shape. The weights are zeros. With ``sparse=True`` only the header is
written and the file is extended with ``truncate()``, so a 400 GB DeepSeek-V3 costs a few MB
of disk (the holes read back as zeros, which llama.cpp loads like any other weights).

Split sets follow ``tools/gguf-split/gguf-split.cpp``: ``NAME-0000k-of-0000N.gguf`` (the
format of ``llama_split_path``), every metadata key in the first part only, and each part
ending its key/value list with ``split.no`` (u16), ``split.count`` (u16) and
``split.tensors.count`` (i32, tensors of the whole set).
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from solver.datafiles import read_data_text
from solver.errors import BadInput
from solver.gguf.blueprint import (
    TOKENIZER_ARRAY_KEYS,
    Arch,
    Blueprint,
    MetadataValue,
    gguf_metadata,
)
from solver.gguf.quant_mix import QuantizedTensor, parse_file_type, quantized_tensors

K = gguf.Keys
VT = gguf.GGUFValueType
ALIGNMENT = gguf.GGUF_DEFAULT_ALIGNMENT
_ZERO_CHUNK = bytes(1 << 20)


class VocabArrays(BaseModel):
    """The tokenizer arrays and special ids written into a synthetic file."""

    model_config = ConfigDict(frozen=True)

    tokens: tuple[str, ...]
    token_types: tuple[int, ...]
    scores: tuple[float, ...] = ()
    merges: tuple[str, ...] = ()
    special_ids: dict[str, int]


def _gpt2_byte_chars() -> list[str]:
    """GPT-2's bytes_to_unicode: every byte as a printable character (byte-level BPE)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


_MERGE_LEFT = "Ġethaoinsr"
_MERGE_RIGHT = "ethaoinsrl"


def build_vocab(bp: Blueprint) -> VocabArrays:
    """A vocabulary of exactly ``bp.n_vocab`` tokens that llama.cpp's tokenizer accepts.

    gpt2 (byte-level BPE): the 256 byte characters, a few merges, padding tokens and control
    tokens at the blueprint's bos/eos ids. llama (SentencePiece): gemma's control tokens
    (pad 0, eos 1, bos 2, unk 3), the 256 ``<0xXX>`` byte tokens, a few pieces, padding.
    """
    if bp.tokenizer.model == "gpt2":
        return _gpt2_vocab(bp)
    return _spm_vocab(bp)


def _special_positions(bp: Blueprint, defaults: dict[str, int]) -> dict[str, int]:
    ids = dict(defaults)
    if bp.tokenizer.bos_token_id is not None:
        ids["bos"] = bp.tokenizer.bos_token_id
    if bp.tokenizer.eos_token_id is not None:
        ids["eos"] = bp.tokenizer.eos_token_id
    for role, index in ids.items():
        if not 0 <= index < bp.n_vocab:
            raise BadInput(f"{bp.name}: {role} token id {index} outside a {bp.n_vocab} vocab")
    return ids


def _gpt2_vocab(bp: Blueprint) -> VocabArrays:
    n_vocab = bp.n_vocab
    ids = _special_positions(bp, {"bos": n_vocab - 2, "eos": n_vocab - 1})
    tokens = _gpt2_byte_chars()
    types = [int(gguf.TokenType.NORMAL)] * 256
    merges: list[str] = []
    room = n_vocab - 256 - len(set(ids.values()))
    if room < 0:
        raise BadInput(f"{bp.name}: a gpt2 vocab needs at least 258 tokens, got {n_vocab}")
    for left in _MERGE_LEFT:
        for right in _MERGE_RIGHT:
            if len(merges) >= min(room, 1000):
                break
            merges.append(f"{left} {right}")
            tokens.append(left + right)
            types.append(int(gguf.TokenType.NORMAL))
    while len(tokens) < n_vocab:
        tokens.append(f"[PAD{len(tokens)}]")
        types.append(int(gguf.TokenType.UNUSED))
    for role, index in ids.items():
        # texts llama-vocab.cpp recognises as end-of-generation / start tokens
        tokens[index] = {"bos": "<|startoftext|>", "eos": "<|endoftext|>"}[role]
        types[index] = int(gguf.TokenType.CONTROL)
    _check_unique(bp, tokens)
    return VocabArrays(
        tokens=tuple(tokens), token_types=tuple(types), merges=tuple(merges), special_ids=ids
    )


def _spm_vocab(bp: Blueprint) -> VocabArrays:
    n_vocab = bp.n_vocab
    if n_vocab < 4 + 256 + 1:
        raise BadInput(f"{bp.name}: a SentencePiece vocab needs at least 261 tokens")
    ids = _special_positions(bp, {"pad": 0, "eos": 1, "bos": 2, "unk": 3})
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>"]
    types = [int(gguf.TokenType.CONTROL)] * 3 + [int(gguf.TokenType.UNKNOWN)]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [int(gguf.TokenType.BYTE)] * 256
    pieces = ["▁", *(f"▁{c}" for c in "etaoinsrhl"), *"etaoinsrhl"]
    for piece in pieces[: n_vocab - len(tokens)]:
        tokens.append(piece)
        types.append(int(gguf.TokenType.NORMAL))
    while len(tokens) < n_vocab:
        tokens.append(f"<unused{len(tokens)}>")
        types.append(int(gguf.TokenType.UNUSED))
    for role in ("bos", "eos"):
        index = ids[role]
        if index > 3:
            tokens[index] = f"<{role}{index}>"
            types[index] = int(gguf.TokenType.CONTROL)
    scores = [0.0 if t != int(gguf.TokenType.NORMAL) else -float(i) for i, t in enumerate(types)]
    _check_unique(bp, tokens)
    return VocabArrays(
        tokens=tuple(tokens), token_types=tuple(types), scores=tuple(scores), special_ids=ids
    )


def _check_unique(bp: Blueprint, tokens: list[str]) -> None:
    if len(set(tokens)) != len(tokens):
        raise BadInput(f"{bp.name}: synthetic vocab has duplicate tokens")


def synthetic_metadata(bp: Blueprint, file_type: str) -> dict[str, MetadataValue]:
    """``gguf_metadata`` with the tokenizer arrays filled in from ``build_vocab``."""
    meta = gguf_metadata(bp, parse_file_type(file_type))
    vocab = build_vocab(bp)
    arrays: dict[str, list] = {
        K.Tokenizer.LIST: list(vocab.tokens),
        K.Tokenizer.TOKEN_TYPE: list(vocab.token_types),
    }
    if vocab.scores:
        arrays[K.Tokenizer.SCORES] = list(vocab.scores)
    if vocab.merges:
        arrays[K.Tokenizer.MERGES] = list(vocab.merges)
    for key in TOKENIZER_ARRAY_KEYS:
        meta.pop(key, None)
    # keep the converter's order: arrays right after the tokenizer model keys
    ordered: dict[str, MetadataValue] = {}
    for key, value in meta.items():
        ordered[key] = value
        if key == K.Tokenizer.PRE:
            ordered.update(arrays)
    special_keys = {
        "bos": K.Tokenizer.BOS_ID,
        "eos": K.Tokenizer.EOS_ID,
        "unk": K.Tokenizer.UNK_ID,
        "pad": K.Tokenizer.PAD_ID,
    }
    for role, index in vocab.special_ids.items():
        ordered[special_keys[role]] = index
    if bp.tokenizer.model == "llama":
        ordered[K.Tokenizer.ADD_BOS] = True
        ordered[K.Tokenizer.ADD_PREFIX] = False
    return ordered


def _value_type(key: str, value: MetadataValue) -> tuple[VT, VT | None]:
    """GGUF value type of a metadata value, as the loader's typed get_key expects it."""
    if isinstance(value, bool):
        return VT.BOOL, None
    if isinstance(value, int):
        return VT.UINT32, None
    if isinstance(value, float):
        return VT.FLOAT32, None
    if isinstance(value, str):
        return VT.STRING, None
    if isinstance(value, list):
        if key == K.Tokenizer.TOKEN_TYPE:
            return VT.ARRAY, VT.INT32
        if key == K.Tokenizer.SCORES:
            return VT.ARRAY, VT.FLOAT32
        sample = value[0] if value else ""
        if isinstance(sample, bool):  # glm5-next's, glm-dsa's indexer types (gguf-py's BOOL)
            return VT.ARRAY, VT.BOOL
        if isinstance(sample, str):
            return VT.ARRAY, VT.STRING
        return VT.ARRAY, (VT.FLOAT32 if isinstance(sample, float) else VT.UINT32)
    raise BadInput(f"metadata {key}: unsupported value {value!r}")


def split_path(path: Path, part: int, n_parts: int) -> Path:
    """``llama_split_path``: ``PREFIX-%05d-of-%05d.gguf`` with a 1-based part number."""
    prefix = str(path)
    if prefix.endswith(".gguf"):
        prefix = prefix[: -len(".gguf")]
    return Path(f"{prefix}-{part + 1:05d}-of-{n_parts:05d}.gguf")


def _padded(n_bytes: int) -> int:
    return (n_bytes + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def _split_tensors(tensors: Sequence[QuantizedTensor], n_parts: int) -> list[list[QuantizedTensor]]:
    """Contiguous groups of about equal bytes (gguf-split keeps the tensor order)."""
    if not 1 <= n_parts <= len(tensors):
        raise BadInput(f"cannot split {len(tensors)} tensors into {n_parts} parts")
    total = sum(_padded(t.n_bytes) for t in tensors)
    parts: list[list[QuantizedTensor]] = [[]]
    done = 0
    for index, tensor in enumerate(tensors):
        remaining_tensors = len(tensors) - index
        remaining_parts = n_parts - len(parts)
        boundary = total * len(parts) / n_parts
        must_split = remaining_tensors == remaining_parts
        if parts[-1] and remaining_parts > 0 and (done >= boundary or must_split):
            parts.append([])
        parts[-1].append(tensor)
        done += _padded(tensor.n_bytes)
    return parts


def write_synthetic_gguf(
    blueprint: Blueprint,
    quant: str,
    path: Path | str,
    *,
    n_parts: int = 1,
    sparse: bool = False,
    exclude: Collection[str] = (),
) -> list[Path]:
    """Write ``blueprint`` quantized as ``quant`` to ``path`` (or a split set); return the files.

    Zero weights: llama.cpp loads and runs them (every quant type decodes an all-zero block to
    zeros). ``sparse=True`` writes only headers and extends each file with ``truncate()``.
    ``exclude`` leaves named tensors out (to check which ones llama.cpp insists on).
    """
    path = Path(path)
    metadata = synthetic_metadata(blueprint, quant)
    tensors = [t for t in quantized_tensors(blueprint, quant) if t.name not in exclude]
    groups = _split_tensors(tensors, n_parts)
    paths = [path] if n_parts == 1 else [split_path(path, i, n_parts) for i in range(n_parts)]
    for part, (part_path, group) in enumerate(zip(paths, groups, strict=True)):
        part_metadata: dict[str, MetadataValue] = metadata if part == 0 else {}
        if n_parts > 1:
            part_metadata = {
                **part_metadata,
                K.Split.LLM_KV_SPLIT_NO: part,
                K.Split.LLM_KV_SPLIT_COUNT: n_parts,
                K.Split.LLM_KV_SPLIT_TENSORS_COUNT: len(tensors),
            }
        _write_part(blueprint, part_path, part_metadata, group, sparse=sparse)
    return paths


_SPLIT_TYPES = {
    K.Split.LLM_KV_SPLIT_NO: VT.UINT16,
    K.Split.LLM_KV_SPLIT_COUNT: VT.UINT16,
    K.Split.LLM_KV_SPLIT_TENSORS_COUNT: VT.INT32,
}


def _write_part(
    bp: Blueprint,
    path: Path,
    metadata: dict[str, MetadataValue],
    tensors: Sequence[QuantizedTensor],
    *,
    sparse: bool,
) -> None:
    """Header through gguf.GGUFWriter, then the data area: zeros written or left as holes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    writer = gguf.GGUFWriter(tmp, bp.architecture.value)
    if K.General.ARCHITECTURE not in metadata:
        # gguf-split: parts after the first carry only the split keys
        writer.kv_data[0].pop(K.General.ARCHITECTURE, None)
    for key, value in metadata.items():
        if key == K.General.ARCHITECTURE:
            continue  # GGUFWriter already wrote it first
        if key in _SPLIT_TYPES:
            writer.add_key_value(key, value, _SPLIT_TYPES[key])
            continue
        vtype, sub_type = _value_type(key, value)
        writer.add_key_value(key, value, vtype, sub_type=sub_type)
    for tensor in tensors:
        qtype = gguf.GGMLQuantizationType[tensor.type]
        # GGUFWriter takes the numpy (row-major) shape, ggml order reversed; with raw_dtype
        # set and a non-uint8 dtype it keeps that shape as the element shape
        writer.add_tensor_info(
            tensor.name,
            tuple(reversed(tensor.shape)),
            np.dtype(np.float32),
            tensor.n_bytes,
            raw_dtype=qtype,
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()

    data_bytes = sum(_padded(t.n_bytes) for t in tensors)
    with open(tmp, "r+b") as fh:
        fh.seek(0, os.SEEK_END)
        data_start = _padded(fh.tell())
        end = data_start + data_bytes
        if sparse:
            fh.truncate(end)
        else:
            fh.truncate(data_start)
            fh.seek(data_start)
            remaining = data_bytes
            while remaining:
                chunk = min(remaining, len(_ZERO_CHUNK))
                fh.write(_ZERO_CHUNK[:chunk])
                remaining -= chunk
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# --- tiny blueprints: every architecture small enough to load in seconds -------------------

TINY_BLUEPRINTS_FILE = "tiny_blueprints.toml"


def miniature(bp: Blueprint) -> Blueprint:
    """``bp`` shrunk to tiny sizes with every structural feature kept.

    Same architecture, tied/untied output, biases, q/k norms, shared experts, leading dense
    layers, NextN layers, MLA with or without q compression, sliding window, rope scaling: the
    tensor list has the same names per layer kind, only dimensions and counts shrink. Loading
    the miniature in llama-server checks the full-size blueprint's tensor set.
    """
    n_layer = _mini_layer_count(bp)
    return bp.model_copy(
        update={
            **_mini_sizes(bp, n_layer),
            **_mini_architecture(bp),
            "tokenizer": bp.tokenizer.model_copy(
                update={"bos_token_id": None, "eos_token_id": None, "n_merges": None}
            ),
            **_mini_expert_groups(bp),
        }
    )


def _mini_layer_count(bp: Blueprint) -> int:
    """Enough layers for every layer kind: past the dense ones, a full period of each
    architecture's pattern, up to its first layer of a later kind."""
    n_layer = max(2, bp.leading_dense_layers + 1)
    if bp.is_gated_delta_net:
        # keep the layer pattern: at least one full-attention layer after the DeltaNet ones
        n_layer = max(n_layer, bp.full_attention_interval)
    if bp.architecture is Arch.GEMMA4:
        # two periods: the layers that share KV start after a global layer (llama.cpp's reuse)
        n_layer = max(n_layer, 2 * min(bp.gemma4_swa_period, 3))
    if bp.architecture is Arch.LLAMA4:
        # three chunked layers, then a full-attention layer without RoPE (llama4.cpp)
        n_layer = max(n_layer, 4)
    if bp.is_qwen3vl:
        # the deepstack slices are added after full-width layers: one more layer than them
        n_layer = max(n_layer, bp.n_deepstack_layers + 1)
    if bp.architecture is Arch.KIMI_LINEAR:
        # up to the first MLA layer (Kimi Linear's fourth): KDA layers before it
        n_layer = max(n_layer, min(bp.full_attention_layers))
    if not all(bp.indexer_types):
        # up to the first layer that shares its indexer selection (GLM-5.2's IndexShare)
        n_layer = max(n_layer, bp.indexer_types.index(False) + 1)
    return n_layer


def _mini_sizes(bp: Blueprint, n_layer: int) -> dict[str, object]:
    """The sizes every architecture shrinks the same way: 256 wide, 4 heads (2 KV heads
    unless multi-head), at most 8 experts; a size the model lacks stays absent."""
    n_head = 4
    mha = bp.n_head_kv == bp.n_head
    n_expert = min(bp.n_expert, 8)
    return {
        "name": f"mini-{bp.name}",
        "n_layer": n_layer,
        "n_embd": 256,
        "n_vocab": 320,
        "context_length": 4096,
        "n_head": n_head,
        "n_head_kv": n_head if mha else 2,
        "head_dim": 64 if bp.head_dim is not None else None,
        "rope_dim": 32 if bp.rope_dim is not None else None,
        "n_ff": 512 if bp.n_ff else 0,
        "n_expert": n_expert,
        "n_expert_used": min(bp.n_expert_used, 2),
        "n_ff_exp": 256 if bp.n_ff_exp else 0,
        "leading_dense_layers": min(bp.leading_dense_layers, 1),
        "q_lora_rank": 256 if bp.q_lora_rank else 0,
        "kv_lora_rank": 256 if bp.kv_lora_rank else 0,
        "qk_nope_head_dim": 64 if bp.qk_nope_head_dim else 0,
        "qk_rope_head_dim": 32 if bp.qk_rope_head_dim else 0,
        "v_head_dim": 64 if bp.v_head_dim else 0,
        # minimax-m3's MSA asserts one indexer head per KV head
        "indexer_n_head": (2 if bp.architecture is Arch.MINIMAX_M3 else 4)
        if bp.indexer_n_head
        else 0,
        "indexer_head_size": 64 if bp.indexer_head_size else 0,
        # top-k kept: above the miniature's cache sizes it picks every cell (n_top_k = n_kv)
        "indexer_top_k": bp.indexer_top_k,
        "indexer_types": bp.indexer_types[:n_layer],
        "sliding_window": min(bp.sliding_window, 128),
    }


def _mini_architecture(bp: Blueprint) -> dict[str, object]:
    """Each architecture's own parts shrunk (its tiny blueprint's where they must agree)."""
    return {
        **_mini_gated_delta_net(bp),
        **_mini_nemotron_h(bp),
        **_mini_gemma4(bp),
        **_mini_deepseek4(bp),
        **_mini_mimo2(bp),
        **_mini_lfm2(bp),
        **_mini_granitehybrid(bp),
        # minimax-m2.cpp sizes its experts by feed_forward_length: both stay one width
        **({"n_ff": 256} if bp.architecture is Arch.MINIMAX_M2 else {}),
        # seed_oss: heads twice n_embd / n_head wide, as the real model's (the tiny one's)
        **({"head_dim": 128} if bp.architecture is Arch.SEED_OSS else {}),
        # step35: twice the full layers' query heads on sliding ones (as the tiny model)
        **({"n_head_swa": 8, "n_ff_shexp": 256} if bp.architecture is Arch.STEP35 else {}),
        "kda_head_dim": 64 if bp.kda_head_dim else 0,
        # qwen3vl: MRoPE sections within the 64-wide head (the tiny model's)
        **(
            {"rope_sections": tiny_blueprint(bp.architecture).rope_sections}
            if bp.is_qwen3vl
            else {}
        ),
    }


def _mini_expert_groups(bp: Blueprint) -> dict[str, object]:
    """Keep "grouped routing" when the model has it; llama.cpp wants used < groups."""
    if bp.expert_groups is None:
        return {}
    grouped = bp.expert_groups > 1
    return {"expert_groups": 2 if grouped else 1, "expert_groups_used": 1}


def _mini_deepseek4(bp: Blueprint) -> dict[str, object]:
    """DeepSeek V4 shrunk as its tiny blueprint is: one layer of each compression (none, 4
    with the indexer, 128) and one more at 4, a hash-routed first layer, one KV head of 128
    (64 rotary), the low-rank output in 2 groups."""
    if bp.architecture is not Arch.DEEPSEEK4:
        return {}
    return {
        "n_layer": 4,
        "n_head_kv": 1,
        "head_dim": 128,
        "rope_dim": 64,
        "compress_ratios": (0, 4, 128, 4),
        "hash_layers": min(bp.hash_layers, 1),
        "o_groups": 2,
        "o_lora_rank": 128,
        "indexer_top_k": 64,
    }


def _mini_mimo2(bp: Blueprint) -> dict[str, object]:
    """MiMo-V2 shrunk as its tiny blueprint is: the first four layers of the pattern (a full
    one, then sliding ones), more KV heads on the sliding layers, V heads narrower than the
    96-wide Q/K heads (a third rotary)."""
    if bp.architecture is not Arch.MIMO2:
        return {}
    return {
        "n_layer": 4,
        "swa_layer_pattern": bp.swa_layer_pattern[:4],
        "n_head_kv_swa": 4,
        "head_dim": 96,
        "v_head_dim": 64,
        "rope_dim": 32,
    }


def _mini_lfm2(bp: Blueprint) -> dict[str, object]:
    """LFM2's layers up to its first attention layer (two short convolutions, then attention
    in LFM2-8B-A1B), the pattern cut to them."""
    if not bp.is_lfm2:
        return {}
    n_layer = max(2, min(bp.leading_dense_layers, 1) + 1, bp.layer_pattern.index("*") + 1)
    return {"n_layer": n_layer, "layer_pattern": bp.layer_pattern[:n_layer]}


def _mini_granitehybrid(bp: Blueprint) -> dict[str, object]:
    """granitehybrid shrunk to its tiny blueprint's layout (Mamba-2, Mamba-2, attention,
    Mamba-2) and Mamba-2 sizes (inner 2 x n_embd, as its loader asserts), experts as wide as
    feed_forward_length; the model's own multipliers kept."""
    if bp.architecture is not Arch.GRANITEHYBRID:
        return {}
    tiny = tiny_blueprint(Arch.GRANITEHYBRID)
    fields = ("n_layer", "layer_pattern", "ssm_d_conv", "ssm_d_state", "ssm_n_group",
              "ssm_dt_rank", "mamba_head_dim", "n_ff", "n_ff_exp", "n_ff_shexp")  # fmt: skip
    return {name: getattr(tiny, name) for name in fields}


def _mini_gemma4(bp: Blueprint) -> dict[str, object]:
    """Gemma 4 shrunk: a global layer every third (the last one too), a period of layers
    sharing KV when the model has them, both head widths, the per-layer-embedding width."""
    if bp.architecture is not Arch.GEMMA4:
        return {}
    return {
        # 64 / 128 wide heads: a quantized KV cache rotates 64-wide blocks (Hadamard), which
        # narrower heads than the real 256 / 512 would not hold
        "head_dim": 128,
        "gemma4_head_dim_swa": 64,
        "gemma4_n_head_kv_full": 1 if bp.gemma4_n_head_kv_full else 0,
        "gemma4_swa_period": min(bp.gemma4_swa_period, 3),
        "gemma4_kv_shared_layers": min(bp.gemma4_kv_shared_layers, 3),
        "gemma4_n_embd_per_layer": 32 if bp.gemma4_n_embd_per_layer else 0,
    }


def _mini_gated_delta_net(bp: Blueprint) -> dict[str, object]:
    """The DeltaNet sizes shrunk with the value/key head ratio kept (qwen35: 32/16 -> 8/4),
    the shared expert one expert wide and the MRoPE sections within the rotary half."""
    if not bp.is_gated_delta_net:
        return {}
    ratio = bp.ssm_dt_rank // bp.ssm_n_group
    return {
        "ssm_d_state": 64,
        "ssm_n_group": 4,
        "ssm_dt_rank": 4 * ratio,
        "n_ff_shexp": 256 if bp.n_ff_shexp else 0,
        "rope_dim": 16,
        "rope_sections": (
            tiny_blueprint(Arch.QWEN35).rope_sections if bp.rope_sections is not None else None
        ),
    }


def _mini_nemotron_h(bp: Blueprint) -> dict[str, object]:
    """nemotron_h_moe: one layer of each kind (Mamba-2, MoE, attention, MoE) and the tiny
    Mamba-2 sizes; the shared expert twice an expert's width (Nano: 3712 / 1856)."""
    if bp.architecture is not Arch.NEMOTRON_H_MOE:
        return {}
    tiny = tiny_blueprint(Arch.NEMOTRON_H_MOE)
    return {k: getattr(tiny, k) for k in _tiny_table().fragment["nemotron_h"] if k != "n_expert"}


class _TinyArch(BaseModel):
    """One ``[arch.NAME]`` table: the fragments it uses, in order, then its own settings."""

    model_config = ConfigDict(frozen=True, extra="allow")

    use: tuple[str, ...] = ()


class _TinyTable(BaseModel):
    """``data/tiny_blueprints.toml``: the settings every tiny model shares, named fragments
    several architectures share, and every architecture's own settings (Blueprint fields)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    common: dict[str, Any]
    fragment: dict[str, dict[str, Any]]
    arch: dict[Arch, _TinyArch]

    @model_validator(mode="after")
    def _complete(self) -> _TinyTable:
        if missing := set(Arch) - set(self.arch):
            raise ValueError(f"no tiny settings for {sorted(missing)}")
        used = {name for entry in self.arch.values() for name in entry.use}
        if unknown := used - set(self.fragment):
            raise ValueError(f"unknown fragments {sorted(unknown)}")
        settings = [self.common, *self.fragment.values()]
        settings += [entry.model_extra or {} for entry in self.arch.values()]
        if unknown := {key for table in settings for key in table} - set(Blueprint.model_fields):
            raise ValueError(f"not Blueprint fields: {sorted(unknown)}")
        return self


@functools.cache
def _tiny_table() -> _TinyTable:
    return _TinyTable.model_validate(tomllib.loads(read_data_text(TINY_BLUEPRINTS_FILE)))


def tiny_blueprint(arch: Arch | str) -> Blueprint:
    """A small model of ``arch`` with the architecture's distinctive parts (256 wide, 2 to 6
    layers; the settings are ``data/tiny_blueprints.toml``'s)."""
    arch = Arch(arch)
    table = _tiny_table()
    entry = table.arch[arch]
    settings = dict(table.common)
    for name in entry.use:
        settings.update(table.fragment[name])
    settings.update(entry.model_extra or {})
    settings.setdefault("name", f"tiny-{arch.value}")
    return Blueprint(architecture=arch, **settings)
