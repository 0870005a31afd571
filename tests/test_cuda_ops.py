"""ggml-cuda's supports_op (``solver.ggml.cuda_ops``): cases read off the pinned source.

Each case names the line of ``ggml/src/ggml-cuda/ggml-cuda.cu`` (or ``fattn.cu``,
``lightning-indexer.cu``) it comes from, and pairs what the source accepts with what it
refuses, so a rule that is missing, too loose or too strict fails. No GPU here: these check
the transcription, not the hardware.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from solver.ggml import cuda_ops
from solver.ggml import ops as g
from solver.ggml.cuda_ops import supports_op

T = g.T


def _t(type_name: str, *ne: int) -> g.Tensor:
    return g.new_tensor(T[type_name], *ne)


def _w(type_name: str, *ne: int) -> g.Tensor:
    return g.weight("w", T[type_name], ne)


def _gapped(type_name: str, ne0: int, ne1: int, ne2: int) -> g.Tensor:
    """A view of every other row block: dims 0-1 packed, dim 2 strided past them."""
    base = _t(type_name, ne0, ne1, 2 * ne2)
    nb1 = g.row_size(T[type_name], ne0)
    return g.view_3d(base, ne0, ne1, ne2, nb1, 2 * nb1 * ne1, 0)


# --- CONCAT (ggml-cuda.cu:5513) ---------------------------------------------------------


def test_concat_of_quantized_caches_needs_them_contiguous_to_dim_2() -> None:
    """deepseek4's join of raw and compressed q8_0 K (dim 2): runs on CUDA while both are
    contiguous over dims 0-2; a row-strided one is refused; dim 3 wants full contiguity."""
    a, b = _t("Q8_0", 128, 1, 768, 4), _t("Q8_0", 128, 1, 256, 4)
    assert supports_op(g.concat(a, b, 2))
    assert not supports_op(g.concat(_gapped("Q8_0", 128, 2, 8), _t("Q8_0", 128, 2, 8), 2))
    strided_3 = g.view_4d(_t("Q8_0", 128, 1, 8, 8), 128, 1, 8, 4, 136, 136, 2 * 136 * 8, 0)
    assert supports_op(g.concat(strided_3, _t("Q8_0", 128, 1, 8, 4), 2))
    assert not supports_op(g.concat(strided_3, _t("Q8_0", 128, 1, 8, 4), 3))


def test_concat_types_must_agree_and_plain_ones_need_a_power_of_two_element() -> None:
    assert not supports_op(g.concat(_t("Q8_0", 64, 4), _t("Q4_0", 64, 4), 1))
    assert supports_op(g.concat(_gapped("F16", 64, 2, 4), _t("F16", 64, 2, 4), 2))
    assert supports_op(g.concat(_t("I32", 8), _t("I32", 8), 0))


# --- matrix products (ggml-cuda.cu:5318) -----------------------------------------------------


def test_mul_mat_types_and_f16_activations() -> None:
    assert supports_op(g.mul_mat(_w("Q4_K", 256, 64), _t("F32", 256, 8)))
    assert not supports_op(g.mul_mat(_w("TQ1_0", 256, 64), _t("F32", 256, 8)))
    # an F16 src1 only against an F16 src0 (or the Hadamard FWHT path)
    assert supports_op(g.mul_mat(_w("F16", 64, 64), _t("F16", 64, 8)))
    assert not supports_op(g.mul_mat(_w("Q8_0", 64, 64), _t("F16", 64, 8)))
    rotation = g.mul_mat(_t("F32", 64, 64), _t("F16", 64, 8))
    assert not supports_op(rotation)
    rotation.params = {"hint": "hadamard"}  # fwht.cu:101 (the result has src1's shape)
    assert supports_op(rotation)
    # a transposed src0 (nb[0] != element size) is refused
    assert not supports_op(g.mul_mat(g.transpose(_t("F32", 64, 32)), _t("F32", 64, 8)))


def test_mul_mat_id_with_f32_precision_of_its_input_is_refused() -> None:
    """mistral4's expert down-projection: ggml_prec_set_src(.., GGML_PREC_F32, 1) sets
    op_params[3], which ggml-cuda.cu:5325 refuses."""
    experts, x, ids = _w("Q4_K", 256, 64, 8), _t("F32", 256, 2, 4), _t("I32", 2, 4)
    down = g.mul_mat_id(experts, x, ids)
    assert supports_op(down)
    down.params = {"prec_src1": "f32"}
    assert not supports_op(down)


# --- rows, copies, element-wise ---------------------------------------------------------------


def test_get_rows_and_set_rows_types() -> None:
    ids = _t("I32", 4)
    assert supports_op(g.get_rows(_w("Q6_K", 256, 32), ids))  # ggml-cuda.cu:5380
    assert not supports_op(g.get_rows(_w("TQ2_0", 256, 32), ids))
    assert supports_op(g.get_rows(_w("IQ4_NL", 512, 32), ids))  # 32-value sub-blocks:
    assert not supports_op(g.get_rows(_w("IQ4_NL", 96, 32), ids))  # rows of QK_K only
    rows, idx = _t("F32", 128, 4), _t("I64", 4)
    assert supports_op(g.set_rows(_t("Q8_0", 128, 64), rows, idx))  # ggml-cuda.cu:5421
    assert not supports_op(g.set_rows(_t("Q4_K", 256, 64), _t("F32", 256, 4), idx))
    assert supports_op(g.set_rows(_t("F16", 128, 64), _t("F16", 128, 4), idx))
    assert not supports_op(g.set_rows(_t("F32", 128, 64), _t("F16", 128, 4), idx))
    assert not supports_op(g.set_rows(_t("F16", 128, 64), rows, _t("F32", 4)))


def test_cpy_pairs() -> None:
    """ggml-cuda.cu:5442: float to float, F32 to and from the legacy quants, same types."""
    assert supports_op(g.cpy(_t("F32", 64, 4), _t("Q8_0", 64, 4)))
    assert supports_op(g.cpy(_t("F32", 64, 4), _t("IQ4_NL", 64, 4)))
    assert not supports_op(g.cpy(_t("IQ4_NL", 64, 4), _t("F32", 64, 4)))
    assert not supports_op(g.cpy(_t("F32", 256, 4), _t("Q4_K", 256, 4)))
    assert supports_op(g.cpy(_t("Q4_K", 256, 4), _t("Q4_K", 256, 4)))
    assert not supports_op(g.cpy(_gapped("Q4_K", 256, 2, 2), _t("Q4_K", 256, 2, 2)))
    assert supports_op(g.cast(_t("F32", 64, 4), T.BF16))


def test_binary_ops_and_scale_types() -> None:
    """ggml-cuda.cu:5591 (ADD/SUB/MUL/DIV) and 5589 (SCALE)."""
    assert supports_op(g.add(_t("F32", 8, 2), _t("F16", 8, 2)))
    assert supports_op(g.mul(_t("BF16", 8, 2), _t("F32", 8, 2)))
    assert not supports_op(g.mul(_t("F32", 8, 2), _t("BF16", 8, 2)))
    assert not supports_op(g.div(_t("I32", 8, 2), _t("I32", 8, 2)))
    assert supports_op(g.scale(_t("F32", 8)))
    assert not supports_op(g.scale(_t("F16", 8)))


def test_unary_and_glu_need_contiguous_sources() -> None:
    """ggml-cuda.cu:5266 / 5300."""
    x = _t("F32", 64, 8)
    assert supports_op(g.unary(x, "silu"))
    assert not supports_op(g.unary(g.transpose(x), "silu"))
    assert not supports_op(g.unary(x, "not-an-op"))
    assert not supports_op(g.unary(_t("BF16", 64, 8), "xielu"))
    assert supports_op(g.glu_split(x, x, "swiglu"))
    assert not supports_op(g.glu_split(_t("BF16", 64, 8), _t("BF16", 64, 8), "swiglu_oai"))
    # contiguous past dim 1: a row-strided view is fine, an element-strided one is not
    rows = g.view_2d(_t("F32", 128, 8), 64, 8, 512, 0)
    assert supports_op(g.glu_split(rows, rows, "geglu"))
    assert not supports_op(g.glu_split(g.transpose(x), g.transpose(x), "geglu"))


def test_norms_rope_repeat_sum_rows() -> None:
    x = _t("F32", 64, 8, 4)
    assert supports_op(g.rms_norm(g.view_2d(x, 32, 8, 256, 0)))  # ggml-cuda.cu:5568
    assert not supports_op(g.rms_norm(g.transpose(_t("F32", 64, 8))))
    pos = _t("I32", 4)
    assert supports_op(g.rope(g.permute(x, 0, 2, 1, 3), pos))  # ggml-cuda.cu:5640:
    assert not supports_op(g.rope(g.transpose(_t("F32", 64, 8)), pos))  # nb[0] packed
    assert not supports_op(g.rope_back(g.permute(x, 0, 1, 3, 2), pos))  # contiguous_2
    assert supports_op(g.repeat_4d(_t("F16", 4), 4, 2, 1, 1))  # ggml-cuda.cu:5505
    assert not supports_op(g.repeat_4d(_t("BF16", 4), 4, 2, 1, 1))
    assert supports_op(g.sum_rows(x))  # ggml-cuda.cu:5684
    assert not supports_op(g.sum_rows(_t("F16", 64, 8)))


def test_top_k_and_argsort_take_any_row_with_cub() -> None:
    """ggml-cuda.cu:5665 / 5671 under GGML_CUDA_USE_CUB (CUDA >= 11.7, cuda_ops.BUILD):
    rows past the non-CUB TOP_K limit of 1024 still run on CUDA."""
    scores = _t("F32", 65536, 4)
    assert supports_op(g.top_k(scores, 2048))
    assert supports_op(g.argsort(scores))
    assert "11.7" in cuda_ops.BUILD["cuda_toolkit"]


# --- state-space ops ----------------------------------------------------------------------------


def test_ssm_conv_and_ssm_scan_shapes() -> None:
    kernel = _w("F32", 4, 256)
    assert supports_op(g.ssm_conv(_t("F32", 3 + 8, 256, 1), kernel))  # ggml-cuda.cu:5620
    assert not supports_op(g.ssm_conv(_t("F32", 3 + 8, 192, 1), _w("F32", 4, 192)))

    def scan(d_state: int, head_dim: int, n_head: int, a_ne0: int, n_snap: int = 1):
        s = _t("F32", d_state, head_dim, n_head, 1)
        x = _t("F32", head_dim, n_head, 8, 1)
        dt, a = _t("F32", n_head, 8, 1), _t("F32", a_ne0, n_head)
        b = c = _t("F32", d_state, 1, 8, 1)
        return g.ssm_scan(s, x, dt, a, b, c, _t("I32", 1), n_snap)

    assert supports_op(scan(128, 64, 8, 1))  # ggml-cuda.cu:5602: Mamba2
    assert not supports_op(scan(64, 64, 8, 1))
    assert not supports_op(scan(128, 24, 8, 1))
    assert supports_op(scan(16, 1, 128, 16))  # Mamba1
    assert not supports_op(scan(16, 1, 128, 16, n_snap=2))


# --- attention and the fused DeepSeek ops --------------------------------------------------------


def _fa(head_k: int, head_v: int, n_head: int, n_head_kv: int, n_kv: int, kv: str = "F16",
        mask: bool = True, mask_planes: int = 1) -> g.Tensor:  # fmt: skip
    q = g.permute(_t("F32", head_k, n_head, 8, 1), 0, 2, 1, 3)
    k = g.permute(_t(kv, head_k, n_head_kv, n_kv, 1), 0, 2, 1, 3)
    v = g.permute(_t(kv, head_v, n_head_kv, n_kv, 1), 0, 2, 1, 3)
    m = _t("F16", n_kv, 8, mask_planes, 1) if mask else None
    return g.flash_attn_ext(q, k, v, m)


def test_flash_attention_heads_types_and_mask() -> None:
    """fattn.cu:541-631: compiled head sizes (the wide ones only with the GQA optimisation:
    a mask and K cells in multiples of 256), kernel K/V types, a one-plane mask."""
    assert supports_op(_fa(128, 128, 8, 8, 300))
    assert supports_op(_fa(128, 128, 8, 2, 1024, kv="Q8_0"))
    assert not supports_op(_fa(128, 128, 8, 2, 1024, kv="Q4_K"))
    assert not supports_op(_fa(128, 64, 8, 8, 1024))
    assert not supports_op(_fa(48, 48, 8, 8, 1024))
    assert not supports_op(_fa(128, 128, 8, 8, 1024, mask_planes=2))
    assert supports_op(_fa(576, 512, 16, 1, 1024))
    assert not supports_op(_fa(576, 512, 16, 1, 1000))  # K not padded to 256 cells
    assert not supports_op(_fa(576, 512, 16, 1, 1024, mask=False))
    assert not supports_op(_fa(512, 512, 16, 16, 1024))  # no GQA
    assert supports_op(_fa(192, 128, 16, 2, 1024))
    assert not supports_op(_fa(192, 128, 12, 2, 1024))  # GQA ratio 6, not a multiple of 8


def test_lightning_indexer_heads_and_cache_type() -> None:
    """lightning-indexer.cu:726: 128-wide heads, 64/32/4 of them, a K type with a kernel."""

    def lid(head: int, n_head: int, k_type: str):
        q = _t("F32", head, n_head, 8, 1)
        k = _t(k_type, head, 1, 1024, 1)
        return g.lightning_indexer(q, k, _t("F32", n_head, 8, 1, 1), _t("F16", 1024, 8, 1, 1))

    assert supports_op(lid(128, 64, "F16"))
    assert supports_op(lid(128, 4, "Q8_0"))
    assert not supports_op(lid(64, 64, "F16"))
    assert not supports_op(lid(128, 16, "F16"))
    assert not supports_op(lid(128, 64, "Q4_K"))


def test_dsv4_hyper_connection_ops_are_f32_only() -> None:
    """ggml-cuda.cu:5703-5712."""
    x, w = _t("F32", 64, 4, 8), _t("F32", 4, 8)
    assert supports_op(g.dsv4_hc_pre(x, w))
    assert not supports_op(g.dsv4_hc_pre(_t("F16", 64, 4, 8), w))
    mixes = _t("F32", 24, 8)
    assert supports_op(g.dsv4_hc_comb(mixes, _w("F32", 3), _w("F32", 24)))
    assert not supports_op(g.dsv4_hc_comb(mixes, _w("F16", 3), _w("F32", 24)))
    out = _t("F32", 64, 8)
    assert supports_op(g.dsv4_hc_post(out, x, _t("F32", 4, 8), None))
    assert not supports_op(g.dsv4_hc_post(out, x, _t("F32", 4, 8), _t("F16", 4, 4, 8)))


# --- coverage --------------------------------------------------------------------------------


def test_every_op_fit_builds_has_a_rule_and_others_are_refused_loudly() -> None:
    """Every op name solver.ggml.ops (or a recipe) can give a tensor has a transcribed rule;
    an op without one raises instead of being taken as supported."""
    op_name = re.compile(r'"([A-Z][A-Z0-9_]+)"')
    built = set(op_name.findall(Path(g.__file__).read_text()))  # every literal there is an op
    recipes = Path(g.__file__).parents[1] / "llama" / "compute_graph"
    for path in sorted(recipes.glob("*.py")):  # ops a recipe makes itself
        for line in path.read_text().splitlines():
            if "Tensor(" in line:
                built |= set(op_name.findall(line))
    assert {"CONCAT", "TOP_K", "GATED_DELTA_NET", "DSV4_HC_POST", "ROPE_BACK"} <= built
    for op in sorted(built):
        assert op in cuda_ops._ALWAYS or op in cuda_ops._RULES, op
    with pytest.raises(ValueError, match="CONV_3D"):
        supports_op(g.Tensor(T.F32, (4,), "CONV_3D", ()))
