"""ggml-cuda's ``supports_op``: which ops of fit's graphs the CUDA backend refuses.

``ggml_backend_sched`` runs an op a backend refuses elsewhere (the CPU, in practice), which
adds graph splits, copies and host compute buffer. ``supports_op`` transcribes
``ggml_backend_cuda_device_supports_op`` (``ggml/src/ggml-cuda/ggml-cuda.cu`` of the pinned
llama.cpp, line 5252) for every op ``solver.ggml.ops`` can build; each rule names its source.
An op fit's graphs cannot contain is refused with ``ValueError`` rather than guessed.

The device-independent part only: the rule that an op reading a pre-allocated tensor of
another CUDA device is refused ("check if all the sources are allocated on this device") needs
the placement, so the scheduler applies it (``solver.ggml.sched``, ``solver.ggml.engine``).

Build assumptions (``BUILD``), the one place they are stated: the pinned source compiled
with ``-DGGML_CUDA=ON`` and nothing else (what ``fit llama build --cuda`` passes, and the
release CUDA builds), CUDA toolkit >= 11.7 and not HIP/MUSA. Then ``GGML_CUDA_USE_CUB`` is
defined (``common.cuh``: ``!GGML_USE_HIP && CUDART_VERSION >= 11070``), so TOP_K and
ARGSORT take any row length, and ``FLASH_ATTN_AVAILABLE`` is defined (no ``GGML_CUDA_NO_FA``).
No fit graph sets ALiBi, so flash attention's ``max_bias`` is 0.

NOT validated against a GPU (none here): transcribed from source, like the rest of fit's CUDA
model. A supported op is also assumed to be run by the kernel the source names; kernel
choice (which only sizes F16 copies) is ``solver.llama.compute_buffer``'s.
"""

from __future__ import annotations

from solver.ggml import ops as g
from solver.ggml.ops import Tensor

BUILD = {
    "cmake": "-DGGML_CUDA=ON",
    "cuda_toolkit": ">= 11.7 (GGML_CUDA_USE_CUB)",
    "flash_attn": "FLASH_ATTN_AVAILABLE (no GGML_CUDA_NO_FA)",
    "alibi_max_bias": 0.0,
}

QK_K = 256  # ggml-common.h
FATTN_KQ_STRIDE = 256  # ggml-cuda/fattn-common.cuh


def _types(*names: str) -> frozenset[int]:
    """Type ids by name; a name gguf-py does not know (Q2_0) cannot occur in a graph."""
    return frozenset(int(g.T[n]) for n in names if n in g.T.__members__)


F32, F16, BF16, I32, I64 = (int(g.T[n]) for n in ("F32", "F16", "BF16", "I32", "I64"))
_FLOATS = frozenset({F32, F16, BF16})

# ggml-cuda.cu:5345, MUL_MAT / MUL_MAT_ID: src0 types with a kernel
_MUL_MAT_SRC0 = _types(
    "F32", "F16", "Q1_0", "Q2_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "MXFP4", "NVFP4",
    "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ1_M", "IQ1_S", "IQ2_S", "IQ2_XS",
    "IQ2_XXS", "IQ3_S", "IQ3_XXS", "IQ4_NL", "IQ4_XS", "BF16",
)  # fmt: skip
# ggml-cuda.cu:5380, GET_ROWS: src0 types (IQ4_NL and MXFP4 only with rows of QK_K multiples)
_GET_ROWS_SRC0 = _types(
    "F16", "F32", "BF16", "I32", "Q1_0", "Q2_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
    "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S",
    "IQ1_S", "IQ1_M", "IQ4_XS",
)  # fmt: skip
_GET_ROWS_QK_K = _types("IQ4_NL", "MXFP4")
# ggml-cuda.cu:5421, SET_ROWS: destination types written from F32
_SET_ROWS_DST = _types("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "IQ4_NL")
# ggml-cuda.cu:5442, CPY: (src0, src1) pairs beyond F32/F16/BF16 among themselves
_CPY_PAIRS = frozenset(
    (int(g.T[a]), int(g.T[b]))
    for a, b in (
        ("F32", "Q8_0"), ("Q8_0", "F32"), ("F32", "Q4_0"), ("Q4_0", "F32"),
        ("F32", "Q4_1"), ("Q4_1", "F32"), ("F32", "Q5_0"), ("Q5_0", "F32"),
        ("F32", "Q5_1"), ("Q5_1", "F32"), ("F32", "IQ4_NL"), ("F32", "I32"),
        ("I32", "F32"), ("I32", "I32"),
    )
)  # fmt: skip
# ggml-cuda.cu:5266 / 5300: the unary and GLU ops with a kernel
_UNARY = frozenset(
    {"abs", "sgn", "neg", "step", "gelu", "silu", "relu", "sigmoid", "hardsigmoid",
     "hardswish", "gelu_erf", "gelu_quick", "tanh", "exp", "expm1", "softplus", "elu",
     "xielu", "floor", "ceil", "round", "trunc"}
)  # fmt: skip
_GLU = frozenset(
    {"reglu", "geglu", "swiglu", "swiglu_oai", "geglu_erf", "geglu_quick", "swiglu_clamp"}
)
# fattn.cu:525, ggml_cuda_fattn_kv_type_supported
_FATTN_KV = _types("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0")
# lightning-indexer.cu:765: K cache types with a kernel
_LID_K = _types("F32", "BF16", "F16", "Q8_0", "Q5_1", "Q5_0", "Q4_1", "Q4_0")

# ggml-cuda.cu:5498 (DUP), 5575 (NONE..LOG), 5624-5628 (CONT, SOFT_MAX), 5657-5701
# (POOL_2D, PAD, ARANGE, GATED_DELTA_NET) and 5719 (FILL): no type or layout condition
_ALWAYS = frozenset(
    {"NONE", "RESHAPE", "VIEW", "PERMUTE", "TRANSPOSE", "ADD_ID", "SQR", "SQRT", "CLAMP",
     "DUP", "CONT", "SOFT_MAX", "PAD", "ARANGE", "POOL_2D", "GATED_DELTA_NET", "FILL",
     "TOP_K", "ARGSORT"}
)  # fmt: skip
# TOP_K (ggml-cuda.cu:5665) and ARGSORT (5671) are true under GGML_CUDA_USE_CUB (BUILD);
# without CUB TOP_K takes rows of at most 1024 and ARGSORT rows whose power-of-two padding
# fits the shared memory per block.


def supports_op(t: Tensor) -> bool:
    """ggml_backend_cuda_device_supports_op for ``t`` (sources on this device)."""
    if t.op in _ALWAYS:
        return True
    rule = _RULES.get(t.op)
    if rule is None:
        raise ValueError(f"no CUDA supports_op rule transcribed for op {t.op}")
    return rule(t)


def _src(t: Tensor, i: int) -> Tensor:
    s = t.src[i]
    assert s is not None
    return s


def _unary(t: Tensor) -> bool:
    """ggml-cuda.cu:5266: a kernel for the unary op, on a contiguous source (no BF16 XIELU)."""
    kind = (t.params or {}).get("unary")
    if kind not in _UNARY:
        return False
    if _src(t, 0).type == BF16 and kind == "xielu":
        return False
    return g.is_contiguous_m_n(_src(t, 0), 0, 4)


def _glu(t: Tensor) -> bool:
    """ggml-cuda.cu:5300: a kernel for the GLU op, its source contiguous past dim 1 (no BF16
    SWIGLU_OAI / SWIGLU_CLAMP)."""
    kind = (t.params or {}).get("glu")
    if kind not in _GLU:
        return False
    if _src(t, 0).type == BF16 and kind in ("swiglu_oai", "swiglu_clamp"):
        return False
    return g.is_contiguous_m_n(_src(t, 0), 1, 4)


def _mul_mat(t: Tensor) -> bool:
    """ggml-cuda.cu:5318, MUL_MAT / MUL_MAT_ID."""
    a, b = _src(t, 0), _src(t, 1)
    if a.nb[0] != g.type_size(a.type)[1] or b.nb[0] != g.type_size(b.type)[1]:
        return False
    if b.type == F16 and a.type != F16 and not _use_fwht(t):
        return False
    # op_params[3] is src1's precision (ggml_prec_set_src(.., GGML_PREC_F32, 1): mistral4)
    if t.op == "MUL_MAT_ID" and (t.params or {}).get("prec_src1") == "f32":
        return False
    return a.type in _MUL_MAT_SRC0


def _use_fwht(t: Tensor) -> bool:
    """fwht.cu:101, ggml_cuda_op_mul_mat_use_fwht: a Hadamard rotation of an F32/F16 input."""
    a, b = _src(t, 0), _src(t, 1)
    return (
        t.op == "MUL_MAT"
        and (t.params or {}).get("hint") == "hadamard"
        and a.type == F32
        and t.type == F32
        and b.type in (F32, F16)
        and g.is_contiguous_m_n(b, 0, 4)
        and g.is_contiguous_m_n(t, 0, 4)
        and b.ne == t.ne
    )


def _get_rows(t: Tensor) -> bool:
    """ggml-cuda.cu:5380."""
    src0 = _src(t, 0)
    if src0.type in _GET_ROWS_QK_K:
        return src0.ne[0] % QK_K == 0
    return src0.type in _GET_ROWS_SRC0


def _set_rows(t: Tensor) -> bool:
    """ggml-cuda.cu:5421: F32 rows into the listed types (or F16 into F16), I32/I64 ids."""
    src0, ids = _src(t, 0), _src(t, 1)
    rows_ok = (t.type in _SET_ROWS_DST and src0.type == F32) or (t.type == F16 == src0.type)
    return rows_ok and ids.type in (I64, I32)


def _cpy(t: Tensor) -> bool:
    """ggml-cuda.cu:5442."""
    a, b = _src(t, 0), _src(t, 1)
    if a.type in _FLOATS and b.type in _FLOATS:
        return True
    if (a.type, b.type) in _CPY_PAIRS:
        return True
    return a.type == b.type and g.is_contiguous_m_n(a, 0, 4) and g.is_contiguous_m_n(b, 0, 4)


def _concat(t: Tensor) -> bool:
    """ggml-cuda.cu:5513: equal types; a quantized pair must be contiguous (dim 3) or
    contiguous over dims 0-2 (other dims) with whole blocks per row; else elements of 1, 2,
    4 or 8 bytes."""
    a, b = _src(t, 0), _src(t, 1)
    if not (a.type == b.type == t.type):
        return False
    block, size = g.type_size(a.type)
    if g.is_quantized(a.type):
        dim = t.params["dim"] if t.params else 0
        upto = 4 if dim == 3 else 3
        contiguous = g.is_contiguous_m_n(a, 0, upto) and g.is_contiguous_m_n(b, 0, upto)
        return contiguous and a.ne[0] % block == 0 and b.ne[0] % block == 0
    return block == 1 and size in (1, 2, 4, 8)


def _binary(t: Tensor) -> bool:
    """ggml-cuda.cu:5591, ADD/SUB/MUL/DIV: BF16 only as BF16 (+ BF16 or F32) -> BF16, else
    F32/F16 throughout."""
    a, b = _src(t, 0), _src(t, 1)
    if BF16 in (a.type, b.type, t.type):
        return a.type == BF16 and t.type == BF16 and b.type in (BF16, F32)
    return a.type in (F32, F16) and b.type in (F32, F16) and t.type in (F32, F16)


def _ssm_scan(t: Tensor) -> bool:
    """ggml-cuda.cu:5602: Mamba2 (A has one element per head) with d_state 96/128/256 and
    head_dim % 16; Mamba1 with one snapshot, d_state 16, d_head 1, n_head % 128, one group."""
    s = _src(t, 0)
    if _src(t, 3).ne[0] == 1:
        return s.ne[0] in (96, 128, 256) and s.ne[1] % 16 == 0
    if (t.params or {}).get("n_snap", 1) > 1:
        return False
    return s.ne[0] == 16 and s.ne[1] == 1 and s.ne[2] % 128 == 0 and _src(t, 4).ne[1] == 1


def _rope(t: Tensor) -> bool:
    """ggml-cuda.cu:5640, ROPE / ROPE_BACK: packed elements, contiguous past dim 2."""
    a = _src(t, 0)
    return a.nb[0] == g.type_size(a.type)[1] and g.is_contiguous_m_n(a, 2, 4)


def _f32_only(*slots: int):
    """DSV4_HC_* (ggml-cuda.cu:5703-5712): F32 sources (an absent optional one passes) and
    result."""

    def rule(t: Tensor) -> bool:
        srcs = [t.src[i] if i < len(t.src) else None for i in slots]
        return t.type == F32 and all(s is None or s.type == F32 for s in srcs)

    return rule


def _flash_attn(t: Tensor) -> bool:
    """fattn.cu:541, ggml_cuda_get_best_fattn_kernel != NONE: a compiled head size (the wide
    ones only with the GQA optimisation), K/V types with a kernel, a mask of one plane."""
    q, k, v, mask = _src(t, 0), _src(t, 1), _src(t, 2), t.src[3]
    gqa_ratio = q.ne[2] // k.ne[2]
    gqa_opt = _gqa_opt_applies(q, k, v, mask, gqa_ratio)
    dk, dv = k.ne[0], v.ne[0]
    if dk in (40, 64, 72, 80, 96, 128, 112, 256):
        heads_ok = dv == dk
    elif dk == 192:
        heads_ok = dv == 128 and gqa_opt and gqa_ratio % 8 == 0
    elif dk == 320:
        heads_ok = dv == 256 and gqa_opt and gqa_ratio % 32 == 0
    elif dk == 512:
        heads_ok = dv == dk and gqa_opt
    elif dk == 576:
        heads_ok = dv == 512 and gqa_opt
    else:
        heads_ok = False
    if not heads_ok or k.type not in _FATTN_KV or v.type not in _FATTN_KV:
        return False
    return mask is None or mask.ne[2] == 1


def _gqa_opt_applies(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, gqa_ratio: int) -> bool:
    """fattn.cu:561: GQA >= 2, a mask, no ALiBi (BUILD), K padded to FATTN_KQ_STRIDE cells,
    and 16-byte strides of every non-quantized tensor."""
    if not (gqa_ratio >= 2 and mask is not None and k.ne[1] % FATTN_KQ_STRIDE == 0):
        return False
    for x in (q, k, v, mask):
        if not g.is_quantized(x.type) and any(nb % 16 for nb in x.nb[1:]):
            return False
    return True


def _lightning_indexer(t: Tensor) -> bool:
    """lightning-indexer.cu:726: 128-wide heads, 64/32/4 of them, 16-byte strides of a
    non-quantized q and k, a K type with a kernel."""
    q, k = _src(t, 0), _src(t, 1)
    if q.ne[0] != 128 or q.ne[1] not in (64, 32, 4):
        return False
    for x in (q, k):
        if not g.is_quantized(x.type) and any(nb % 16 for nb in x.nb[1:]):
            return False
    return k.type in _LID_K


_RULES = {
    "UNARY": _unary,
    "GLU": _glu,
    "MUL_MAT": _mul_mat,
    "MUL_MAT_ID": _mul_mat,
    "GET_ROWS": _get_rows,
    "SET_ROWS": _set_rows,
    "CPY": _cpy,
    # ggml-cuda.cu:5505, REPEAT: the kernel implements F32/F16 only
    "REPEAT": lambda t: _src(t, 0).type in (F32, F16),
    "CONCAT": _concat,
    # ggml-cuda.cu:5568, NORM / RMS_NORM (/ L2_NORM): packed rows
    "NORM": lambda t: g.is_contiguous_rows(_src(t, 0)),
    "RMS_NORM": lambda t: g.is_contiguous_rows(_src(t, 0)),
    # ggml-cuda.cu:5589, SCALE: F32 or BF16, kept
    "SCALE": lambda t: _src(t, 0).type in (F32, BF16) and t.type == _src(t, 0).type,
    "ADD": _binary,
    "SUB": _binary,
    "MUL": _binary,
    "DIV": _binary,
    "SSM_SCAN": _ssm_scan,
    # ggml-cuda.cu:5620, SSM_CONV: "assumes d_inner % threads == 0"
    "SSM_CONV": lambda t: _src(t, 0).ne[1] % 128 == 0,
    "ROPE": _rope,
    "ROPE_BACK": _rope,
    # ggml-cuda.cu:5684, SUM_ROWS: F32 -> F32, packed rows
    "SUM_ROWS": lambda t: (
        _src(t, 0).type == F32 and t.type == F32 and g.is_contiguous_rows(_src(t, 0))
    ),
    "DSV4_HC_COMB": _f32_only(0, 1, 2),
    "DSV4_HC_PRE": _f32_only(0, 1),
    "DSV4_HC_POST": _f32_only(0, 1, 2, 3),
    "FLASH_ATTN_EXT": _flash_attn,  # ggml-cuda.cu:5713
    "LIGHTNING_INDEXER": _lightning_indexer,  # ggml-cuda.cu:5725
}


__all__ = ["BUILD", "supports_op"]
