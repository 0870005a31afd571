"""Would llama.cpp load this model? Its hyperparameters and tensors, checked before anything
is built from them.

llama.cpp's loader creates every tensor of a model with the shape it expects from the
hyperparameters (``load_arch_tensors`` in ``src/models/<arch>.cpp``) and refuses the file when
a required one is absent ("missing tensor") or has another shape ("wrong shape"). fit used to
learn of such a file only when its graph builder met the hole (a traceback), or not at all (a
file with no tensors got a 13 MiB prediction; ``head_count_kv = 2^32-1`` a 38 PB KV cache).
``check_loadable`` applies the same rules to an ``Inventory`` when it is loaded:

1. hyperparameters within sane ranges (``_RANGES``) and consistent with each other (KV heads
   dividing query heads, leading dense layers within the model);
2. the tensors the architecture family's table requires (``FAMILIES``), each with the shape
   llama.cpp computes from n_embd, head counts and widths, FFN and expert widths, MLA ranks
   and SSM sizes. A table is data: per-layer roles (``Need``), llama.cpp's fused-or-separate
   choices (``Either``: QKV, gate+up experts) and the layer conditions each holds under
   (``_CONDITIONS``: dense or MoE layer, recurrent or attention layer, MTP layer, q-LoRA, MLA);
3. for an architecture without a table, what every llama.cpp model has: a token embedding
   ``n_embd`` wide, and tensors in every layer.

Dimensions are layer 0's, as ``LLAMA_LOAD_LOCALS`` takes them. Tensors the loader does not
create are not refused here. The first problem is raised as one ``BadInput`` line naming the
tensor, its shape and the one expected.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from gguf import MODEL_TENSOR as T
from gguf import TENSOR_NAMES, Keys

from solver.errors import BadInput
from solver.gguf.inventory import Inventory, Tensor
from solver.gguf.newer_names import Dsv4Keys, KpoolKeys, MsaTensors
from solver.gguf.newer_names import Dsv4Tensors as D4

# --- 1. hyperparameters ------------------------------------------------------------------------

# Ceilings well above every published model (the largest have n_embd 16384, 128 heads, head
# dims of 576, 10M-token contexts, 262k-token vocabularies, 53k-wide FFNs): a value beyond one
# is a damaged or hostile header, and would size buffers in petabytes.
MAX_EMBD = 1 << 17
MAX_HEADS = 1 << 12
MAX_HEAD_DIM = 1 << 14
MAX_CONTEXT = 1 << 24
MAX_VOCAB = 1 << 24
MAX_FFN = 1 << 20
MAX_RANK = 1 << 16
MAX_SSM = 1 << 20


def _recurrent(field: str) -> Callable[[Inventory], int]:
    return lambda inv: getattr(inv.recurrent, field) if inv.recurrent else 0


# (metadata it comes from, its value in the inventory, least, most)
_RANGES: tuple[tuple[str, Callable[[Inventory], int], int, int], ...] = (
    ("embedding_length", lambda inv: inv.n_embd, 1, MAX_EMBD),
    ("context_length", lambda inv: inv.context_length, 1, MAX_CONTEXT),
    ("the vocabulary size", lambda inv: inv.n_vocab, 0, MAX_VOCAB),
    ("attention.head_count", lambda inv: max(inv.attention.n_head, default=0), 0, MAX_HEADS),
    ("attention.head_count_kv", lambda inv: max(inv.attention.n_head_kv, default=0), 0, MAX_HEADS),
    ("attention.key_length", lambda inv: inv.attention.key_length, 0, MAX_HEAD_DIM),
    ("attention.value_length", lambda inv: inv.attention.value_length, 0, MAX_HEAD_DIM),
    ("rope.dimension_count", lambda inv: inv.attention.rope_dim, 0, MAX_HEAD_DIM),
    ("attention.sliding_window", lambda inv: inv.attention.sliding_window, 0, MAX_CONTEXT),
    ("attention.kv_lora_rank", lambda inv: inv.attention.kv_lora_rank, 0, MAX_RANK),
    ("attention.q_lora_rank", lambda inv: inv.attention.q_lora_rank, 0, MAX_RANK),
    ("attention.key_length_mla", lambda inv: inv.attention.key_length_mla, 0, MAX_HEAD_DIM),
    ("attention.value_length_mla", lambda inv: inv.attention.value_length_mla, 0, MAX_HEAD_DIM),
    ("feed_forward_length", lambda inv: max(inv.n_ff, default=0), 0, MAX_FFN),
    ("expert_feed_forward_length", lambda inv: inv.experts.feed_forward_length, 0, MAX_FFN),
    ("expert_shared_feed_forward_length",
     lambda inv: inv.experts.shared_feed_forward_length, 0, MAX_FFN),
    ("expert_shared_count", lambda inv: inv.experts.shared, 0, MAX_HEADS),
    ("ssm.conv_kernel", _recurrent("conv_kernel"), 0, MAX_HEADS),
    ("ssm.inner_size", _recurrent("inner_size"), 0, MAX_SSM),
    ("ssm.state_size", _recurrent("state_size"), 0, MAX_SSM),
    ("ssm.time_step_rank", _recurrent("time_step_rank"), 0, MAX_SSM),
    ("ssm.group_count", _recurrent("group_count"), 0, MAX_SSM),
)  # fmt: skip


def _check_hparams(inventory: Inventory, bad: Callable[[str], BadInput]) -> None:
    for what, value_of, least, most in _RANGES:
        value = value_of(inventory)
        if not least <= value <= most:
            raise bad(f"{what} {value} is outside [{least}, {most}]: a damaged header, not a model")
    attention = inventory.attention
    heads = zip(attention.n_head, attention.n_head_kv, strict=False)
    for il, (n_head, n_head_kv) in enumerate(heads):
        if n_head_kv > n_head or (n_head_kv and n_head % n_head_kv):
            raise bad(
                f"layer {il} has {n_head_kv} KV heads for {n_head} query heads; KV heads must "
                "divide the query heads"
            )
    if inventory.experts.leading_dense_layers > inventory.n_layers:
        raise bad(
            f"leading_dense_block_count {inventory.experts.leading_dense_layers} exceeds "
            f"block_count {inventory.n_layers}"
        )


# --- 2. the tables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """A tensor llama.cpp's loader creates, as its source writes it
    (``create_tensor(tn(LLM_TENSOR_ATTN_Q, "weight", i), {n_embd, n_embd_head_k * n_head}, 0)``
    is ``_w(T.ATTN_Q, "E", "H*HK")``): the tensor (gguf-py's ``MODEL_TENSOR``, whose name
    template is llama.cpp's), the suffix, the shape as dimension expressions over
    ``_dimensions`` (``"E"``, ``"H*HK"``, ``"2*E"``, ``"KVL+ROT"``, ``"ROT/2"``), the layer
    conditions it is created under (``_CONDITIONS``, all must hold) and whether the file may
    lack it (``TENSOR_NOT_REQUIRED``)."""

    tensor: T | str  # a str: a raw template of solver.gguf.newer_names
    shape: tuple[str, ...]
    when: tuple[str, ...] = ()
    suffix: str | None = "weight"
    optional: bool = False

    def name(self, layer: int | None) -> str:
        template = self.tensor if isinstance(self.tensor, str) else TENSOR_NAMES[self.tensor]
        base = template.format(bid=layer)
        return base if self.suffix is None else f"{base}.{self.suffix}"


@dataclass(frozen=True)
class Either:
    """llama.cpp's fused-or-separate choice (``create_tensor_qkv``,
    ``create_tensor_gate_up_exps``): the fused tensor when the file has it, else every one of
    ``separate``. On an MTP layer llama.cpp skips both (``TENSOR_SKIP``): neither is required."""

    fused: tuple[Need, ...]
    separate: tuple[Need, ...]
    when: tuple[str, ...] = ()


@dataclass(frozen=True)
class Family:
    """What one ``load_arch_tensors`` creates.

    ``all_layers``: the loop runs over MTP (NextN) layers too. ``mtp_probe``: without
    ``blk.{n_layer}.nextn.eh_proj.weight`` the MTP layers' tensors are optional (a file
    converted without them). (These loaders also take a file of the MTP head alone, without
    ``blk.0.attn_norm.weight``, as a draft model; fit plans a model's trunk, so it requires
    the trunk.)"""

    source: str
    globals: tuple[Need, ...]
    layer: tuple[Need | Either, ...]
    all_layers: bool = False
    mtp_probe: bool = False


def _w(tensor: T | str, *shape: str, when: tuple[str, ...] = (), optional: bool = False) -> Need:
    return Need(tensor, shape, when, "weight", optional)


def _b(tensor: T, *shape: str, when: tuple[str, ...] = (), optional: bool = False) -> Need:
    return Need(tensor, shape, when, "bias", optional)


def _qkv(q: str, k: str, v: str, when: tuple[str, ...] = ()) -> Either:
    """create_tensor_qkv: attn_qkv (E x q+k+v) or attn_q/k/v; biases optional either way."""
    fused = (_w(T.ATTN_QKV, "E", f"{q}+{k}+{v}"), _b(T.ATTN_QKV, f"{q}+{k}+{v}", optional=True))
    separate = (
        _w(T.ATTN_Q, "E", q),
        _w(T.ATTN_K, "E", k),
        _w(T.ATTN_V, "E", v),
        _b(T.ATTN_Q, q, optional=True),
        _b(T.ATTN_K, k, optional=True),
        _b(T.ATTN_V, v, optional=True),
    )
    return Either(fused, separate, when)


def _gate_up_exps(width: str, when: tuple[str, ...] = ()) -> Either:
    """create_tensor_gate_up_exps: ffn_gate_up_exps (E x 2w x X) or ffn_gate_exps + up."""
    return Either(
        (_w(T.FFN_GATE_UP_EXP, "E", f"2*{width}", "X"),),
        (_w(T.FFN_GATE_EXP, "E", width, "X"), _w(T.FFN_UP_EXP, "E", width, "X")),
        when,
    )


def _dense_ffn(when: tuple[str, ...] = (), biases: bool = False) -> tuple[Need, ...]:
    needs = (_w(T.FFN_GATE, "E", "F", when=when), _w(T.FFN_DOWN, "F", "E", when=when),
             _w(T.FFN_UP, "E", "F", when=when))  # fmt: skip
    if biases:
        needs += (_b(T.FFN_GATE, "F", when=when, optional=True),
                  _b(T.FFN_DOWN, "E", when=when, optional=True),
                  _b(T.FFN_UP, "F", when=when, optional=True))  # fmt: skip
    return needs


def _experts(width: str, when: tuple[str, ...] = ()) -> tuple[Need, ...]:
    return (
        _w(T.FFN_GATE_INP, "E", "X", when=when),
        _w(T.FFN_GATE_EXP, "E", width, "X", when=when),
        _w(T.FFN_DOWN_EXP, width, "E", "X", when=when),
        _w(T.FFN_UP_EXP, "E", width, "X", when=when),
    )


def _shared_experts(width: str, when: tuple[str, ...] = ()) -> tuple[Need, ...]:
    return (
        _w(T.FFN_GATE_SHEXP, "E", width, when=when),
        _w(T.FFN_DOWN_SHEXP, width, "E", when=when),
        _w(T.FFN_UP_SHEXP, "E", width, when=when),
    )


_EMBEDDING = (_w(T.TOKEN_EMBD, "E", "V"), _w(T.OUTPUT_NORM, "E"))
_GLOBALS = (*_EMBEDDING, _w(T.OUTPUT, "E", "V", optional=True))  # else token_embd, duplicated
_GLOBALS_OUTPUT = (*_EMBEDDING, _w(T.OUTPUT, "E", "V"))
_NEXTN = (
    _w(T.NEXTN_EH_PROJ, "2*E", "E", when=("mtp",)),
    _w(T.NEXTN_ENORM, "E", when=("mtp",)),
    _w(T.NEXTN_HNORM, "E", when=("mtp",)),
    _w(T.NEXTN_EMBED_TOKENS, "E", "V", when=("mtp",), optional=True),
    _w(T.NEXTN_SHARED_HEAD_HEAD, "E", "V", when=("mtp",), optional=True),
    _w(T.NEXTN_SHARED_HEAD_NORM, "E", when=("mtp",), optional=True),
)

_LLAMA = Family(
    "src/models/llama.cpp, mistral3.cpp",
    (
        *_GLOBALS,
        _w(T.ROPE_FREQS, "ROT/2", optional=True),
        _w(T.ROPE_FACTORS_LONG, "ROT/2", optional=True),
        _w(T.ROPE_FACTORS_SHORT, "ROT/2", optional=True),
    ),
    (
        _w(T.ATTN_NORM, "E"),
        _qkv("H*HK", "HKV*HK", "HKV*HV"),
        _w(T.ATTN_OUT, "H*HK", "E"),
        _b(T.ATTN_OUT, "E", optional=True),
        _w(T.FFN_NORM, "E"),
        *_dense_ffn(("dense",), biases=True),
        _w(T.FFN_GATE_INP, "E", "X", when=("moe",)),
        _w(T.FFN_GATE_EXP, "E", "F", "X", when=("moe",), optional=True),
        _w(T.FFN_DOWN_EXP, "F", "E", "X", when=("moe",)),
        _w(T.FFN_UP_EXP, "E", "F", "X", when=("moe",)),
        *_shared_experts("FSHEXP", ("moe", "shexp_width")),
    ),
)
_QWEN2 = Family(
    "src/models/qwen2.cpp",
    (*_GLOBALS, _b(T.OUTPUT, "V", optional=True)),
    (_w(T.ATTN_NORM, "E"), _qkv("E", "HKV*HV", "HKV*HV"), _w(T.ATTN_OUT, "E", "E"),
     _w(T.FFN_NORM, "E"), *_dense_ffn()),
)  # fmt: skip
# seed_oss: head_dim wide heads (not n_embd / n_head), Q/K/V biases optional, the FFN's
# pre-norm is attn_post_norm
_SEED_OSS = Family(
    "src/models/seed-oss.cpp",
    _GLOBALS,
    (_w(T.ATTN_NORM, "E"), _qkv("H*HK", "HKV*HK", "HKV*HK"), _w(T.ATTN_OUT, "H*HK", "E"),
     _w(T.ATTN_POST_NORM, "E"), *_dense_ffn()),
)  # fmt: skip
_SMOLLM3 = Family(
    "src/models/smollm3.cpp",
    _GLOBALS,
    (_w(T.ATTN_NORM, "E"), _qkv("H*HK", "HKV*HK", "HKV*HV"), _w(T.ATTN_OUT, "H*HK", "E"),
     _w(T.FFN_NORM, "E"), *_dense_ffn()),
)  # fmt: skip
# glm4: sandwich norms, gate and up fused into ffn_up (2 x n_ff); the NextN layers' tensors
# are TENSOR_SKIP (none required), so only the trunk is checked
_GLM4 = Family(
    "src/models/glm4.cpp",
    _GLOBALS,
    (_w(T.ATTN_NORM, "E"), _qkv("H*HK", "HKV*HK", "HKV*HV"), _w(T.ATTN_OUT, "H*HK", "E"),
     _w(T.ATTN_POST_NORM, "E"), _w(T.FFN_NORM, "E"), _w(T.FFN_DOWN, "F", "E"),
     _w(T.FFN_UP, "E", "2*F"), _w(T.FFN_POST_NORM, "E")),
)  # fmt: skip
# olmo2: no pre-norms, Q/K norms over the whole projection, post-norms, output required
_OLMO2 = Family(
    "src/models/olmo2.cpp",
    _GLOBALS_OUTPUT,
    (_qkv("E", "HKV*HK", "HKV*HK"), _w(T.ATTN_OUT, "E", "E"), _w(T.ATTN_Q_NORM, "E"),
     _w(T.ATTN_K_NORM, "HKV*HK"), _w(T.ATTN_POST_NORM, "E"), *_dense_ffn(),
     _w(T.FFN_POST_NORM, "E")),
)  # fmt: skip
# exaone4: no pre-norms, per-head Q/K norms, post-norms, llama3 rope factors optional; wo is
# n_embd x n_embd (heads x head width must be n_embd); the NextN layers' tensors are
# TENSOR_SKIP, so only the trunk is checked
_EXAONE4 = Family(
    "src/models/exaone4.cpp",
    (*_GLOBALS, _w(T.ROPE_FREQS, "ROT/2", optional=True)),
    (_qkv("H*HK", "HKV*HK", "HKV*HV"), _w(T.ATTN_OUT, "E", "E"), _w(T.ATTN_POST_NORM, "E"),
     _w(T.ATTN_Q_NORM, "HK"), _w(T.ATTN_K_NORM, "HK"), *_dense_ffn(), _w(T.FFN_POST_NORM, "E")),
)  # fmt: skip
# ernie4_5-moe: llama's attention (wo bias optional), a dense FFN on the leading layers, else
# experts (gate optional) with an optional selection bias and the shared expert when
# expert_shared_feed_forward_length is set
_ERNIE4_5_MOE = Family(
    "src/models/ernie4-5.cpp",
    _GLOBALS,
    (_w(T.ATTN_NORM, "E"), _qkv("H*HK", "HKV*HK", "HKV*HK"), _w(T.ATTN_OUT, "H*HK", "E"),
     _b(T.ATTN_OUT, "E", optional=True), _w(T.FFN_NORM, "E"),
     _w(T.FFN_GATE_INP, "E", "X", when=("moe",)),
     _b(T.FFN_EXP_PROBS_B, "X", when=("moe",), optional=True),
     _w(T.FFN_GATE_EXP, "E", "FE", "X", when=("moe",), optional=True),
     _w(T.FFN_DOWN_EXP, "FE", "E", "X", when=("moe",)),
     _w(T.FFN_UP_EXP, "E", "FE", "X", when=("moe",)),
     *_shared_experts("FSHEXP", ("moe", "shexp_width")), *_dense_ffn(("dense",))),
)  # fmt: skip
# cohere2: one LayerNorm (weight only) before attention and the FFN side by side; the output
# is token_embd, duplicated (the loader creates no output tensor)
_COHERE2 = Family(
    "src/models/cohere2.cpp",
    _EMBEDDING,
    (_w(T.ATTN_NORM, "E"), _qkv("E", "HKV*HK", "HKV*HK"), _w(T.ATTN_OUT, "E", "E"),
     *_dense_ffn()),
)  # fmt: skip
# dots1: multi-head (K and V n_head wide), per-head Q/K norms, a dense FFN on the leading
# layers, else experts with an optional selection bias and the shared experts; output required
_DOTS1 = Family(
    "src/models/dots1.cpp",
    _GLOBALS_OUTPUT,
    (_w(T.ATTN_NORM, "E"), _qkv("H*HK", "H*HK", "H*HK"), _w(T.ATTN_OUT, "H*HK", "E"),
     _w(T.ATTN_K_NORM, "HK"), _w(T.ATTN_Q_NORM, "HK"), _w(T.FFN_NORM, "E"),
     _b(T.FFN_EXP_PROBS_B, "X", when=("moe",), optional=True), *_experts("FE", ("moe",)),
     *_shared_experts("FE*S", ("moe",)), *_dense_ffn(("dense",))),
)  # fmt: skip
# bailingmoe2: the fused QKV (Q n_embd wide) with per-head Q/K norms, a dense FFN on the
# leading layers, else experts with an optional selection bias and the shared experts; output
# required; the NextN layers' tensors are TENSOR_SKIP, so only the trunk is checked
_BAILINGMOE2 = Family(
    "src/models/bailingmoe2.cpp",
    _GLOBALS_OUTPUT,
    (_w(T.ATTN_NORM, "E"), _w(T.ATTN_QKV, "E", "E+HKV*HK+HKV*HK"), _w(T.ATTN_OUT, "H*HK", "E"),
     _w(T.ATTN_Q_NORM, "HK"), _w(T.ATTN_K_NORM, "HK"), _w(T.FFN_NORM, "E"),
     _b(T.FFN_EXP_PROBS_B, "X", when=("moe",), optional=True), *_experts("FE", ("moe",)),
     *_shared_experts("FSHEXP_OR_FE*S", ("moe",)), *_dense_ffn(("dense",))),
)  # fmt: skip
# apertus: per-head Q/K norms (their biases optional, unused by the graph), an ungated FFN,
# rope factors optional (llama3's or LongRoPE's), output required
_APERTUS = Family(
    "src/models/apertus.cpp",
    (*_GLOBALS_OUTPUT, _w(T.ROPE_FREQS, "ROT/2", optional=True),
     _w(T.ROPE_FACTORS_LONG, "ROT/2", optional=True),
     _w(T.ROPE_FACTORS_SHORT, "ROT/2", optional=True)),
    (_w(T.ATTN_NORM, "E"), _qkv("H*HK", "HKV*HK", "HKV*HK"), _w(T.ATTN_OUT, "H*HK", "E"),
     _b(T.ATTN_OUT, "E", optional=True), _w(T.FFN_NORM, "E"), _w(T.FFN_DOWN, "F", "E"),
     _w(T.FFN_UP, "E", "F"), _w(T.ATTN_Q_NORM, "HK"), _b(T.ATTN_Q_NORM, "HK", optional=True),
     _w(T.ATTN_K_NORM, "HK"), _b(T.ATTN_K_NORM, "HK", optional=True)),
)  # fmt: skip
# hunyuan-moe: per-head Q/K norms, experts n_ff wide (the loader's feed_forward_length) on
# every layer beside a shared MLP (expert_shared_feed_forward_length, else n_ff)
_HUNYUAN_MOE = Family(
    "src/models/hunyuan-moe.cpp",
    _GLOBALS,
    (_w(T.ATTN_NORM, "E"), _qkv("H*HK", "HKV*HK", "HKV*HV"), _w(T.ATTN_OUT, "H*HK", "E"),
     _w(T.ATTN_K_NORM, "HK"), _w(T.ATTN_Q_NORM, "HK"), _w(T.FFN_NORM, "E"), *_experts("F"),
     *_shared_experts("FSHEXP_OR_F")),
)  # fmt: skip
# phi3: QKV fused by the converter (the loader takes either, neither required, but the graph
# needs one), gate and up fused in ffn_up (2 x n_ff), LongRoPE factors optional
_PHI3 = Family(
    "src/models/phi3.cpp",
    (*_GLOBALS, _w(T.ROPE_FACTORS_LONG, "ROT/2", optional=True),
     _w(T.ROPE_FACTORS_SHORT, "ROT/2", optional=True)),
    (_w(T.ATTN_NORM, "E"), _qkv("E", "HKV*HK", "HKV*HK"), _w(T.ATTN_OUT, "E", "E"),
     _w(T.FFN_NORM, "E"), _w(T.FFN_DOWN, "F", "E"), _w(T.FFN_UP, "E", "2*F")),
)  # fmt: skip
_QWEN2MOE = Family(
    "src/models/qwen2moe.cpp",
    _GLOBALS_OUTPUT,
    (_w(T.ATTN_NORM, "E"), _qkv("E", "HKV*HV", "HKV*HV"), _w(T.ATTN_OUT, "E", "E"),
     _w(T.FFN_NORM, "E"), *_experts("FE"), _w(T.FFN_GATE_INP_SHEXP, "E"),
     *_shared_experts("FSHEXP")),
)  # fmt: skip
_QWEN3_ATTENTION = (
    _w(T.ATTN_NORM, "E"),
    _qkv("H*HK", "HKV*HV", "HKV*HV"),
    _w(T.ATTN_OUT, "H*HK", "E"),
    _w(T.ATTN_K_NORM, "HK"),
    _w(T.ATTN_Q_NORM, "HK"),
    _w(T.FFN_NORM, "E"),
)
_QWEN3 = Family("src/models/qwen3.cpp", _GLOBALS, (*_QWEN3_ATTENTION, *_dense_ffn()))
_QWEN3MOE = Family("src/models/qwen3moe.cpp", _GLOBALS, (*_QWEN3_ATTENTION, *_experts("FE")))
# Qwen3-VL's text towers load qwen3's / qwen3moe's tensors, plus a reranker head (cls_out,
# optional, n_cls_out wide) on the dense one
_QWEN3VL = replace(_QWEN3, source="src/models/qwen3vl.cpp")
_QWEN3VLMOE = replace(_QWEN3MOE, source="src/models/qwen3vlmoe.cpp")
_GEMMA3 = Family(
    "src/models/gemma3.cpp",
    _GLOBALS,
    (
        _w(T.ATTN_NORM, "E"),
        _qkv("H*HK", "HKV*HK", "HKV*HV"),
        _w(T.ATTN_OUT, "H*HK", "E"),
        _w(T.ATTN_POST_NORM, "E"),
        _w(T.ATTN_K_NORM, "HK"),
        _w(T.ATTN_Q_NORM, "HK"),
        _w(T.FFN_NORM, "E"),
        *_dense_ffn(),
        _w(T.FFN_POST_NORM, "E"),
    ),
)
_GPT_OSS = Family(
    "src/models/openai-moe.cpp",
    _GLOBALS_OUTPUT,
    (
        _w(T.ATTN_NORM, "E"),
        _w(T.ATTN_POST_NORM, "E"),
        _qkv("H*ROT", "HKV*ROT", "HKV*ROT"),
        _w(T.ATTN_OUT, "H*ROT", "E"),
        _w(T.ATTN_SINKS, "H"),
        *_experts("FE"),
        _b(T.ATTN_OUT, "E"),
        _b(T.FFN_GATE_INP, "X"),
        _b(T.FFN_GATE_EXP, "FE", "X"),
        _b(T.FFN_DOWN_EXP, "E", "X"),
        _b(T.FFN_UP_EXP, "FE", "X"),
    ),
)
_DEEPSEEK2 = Family(
    "src/models/deepseek2.cpp",
    _GLOBALS,
    (
        _w(T.ATTN_NORM, "E"),
        _w(T.ATTN_Q_A_NORM, "QL", when=("q_lora",)),
        _w(T.ATTN_KV_A_NORM, "KVL"),
        _w(T.ATTN_Q_A, "E", "QL", when=("q_lora",)),
        _w(T.ATTN_Q_B, "QL", "H*KMLA", when=("q_lora",)),
        _w(T.ATTN_Q, "E", "H*KMLA", when=("no_q_lora",)),
        _w(T.ATTN_KV_A_MQA, "E", "KVL+ROT"),
        _w(T.ATTN_K_B, "KMLA-ROT", "KVL", "H", when=("mla",)),
        _w(T.ATTN_V_B, "KVL", "VMLA", "H", when=("mla",)),
        _w(T.ATTN_KV_B, "KVL", "H*KMLA-H*ROT+H*VMLA", when=("no_mla",)),
        _w(T.ATTN_OUT, "H*VMLA", "E"),
        _w(T.FFN_NORM, "E"),
        *_dense_ffn(("dense",)),
        _w(T.FFN_GATE_INP, "E", "X", when=("moe",)),
        _b(T.FFN_EXP_PROBS_B, "X", when=("moe",), optional=True),
        _w(T.FFN_DOWN_EXP, "FE", "E", "X", when=("moe",)),
        _gate_up_exps("FE", ("moe",)),
        *_shared_experts("FE*S", ("moe",)),
        *_NEXTN,
    ),
    all_layers=True,
    mtp_probe=True,
)


def _indexer(when: tuple[str, ...] = (), *, optional: bool = False) -> tuple[Need, ...]:
    """The DSA lightning indexer's tensors (deepseek32.cpp, glm-dsa.cpp, glm5-next.cpp)."""
    return (
        _w(T.INDEXER_K_NORM, "IK", when=when, optional=optional),
        _b(T.INDEXER_K_NORM, "IK", when=when, optional=optional),
        _w(T.INDEXER_PROJ, "E", "IH", when=when, optional=optional),
        _w(T.INDEXER_ATTN_K, "E", "IK", when=when, optional=optional),
        _w(T.INDEXER_ATTN_Q_B, "QL", "IH*IK", when=when, optional=optional),
    )


# deepseek32.cpp: deepseek2's layer with q compression and MLA required, plus the indexer
_DEEPSEEK32 = replace(
    _DEEPSEEK2,
    source="src/models/deepseek32.cpp",
    layer=(*_DEEPSEEK2.layer, *_indexer()),
)
# glm-dsa.cpp creates the indexer TENSOR_NOT_REQUIRED on every layer, but its graph runs it on
# the "full" layers (a file without it there crashes llama-server's first graph): required
# there, optional on the "shared" layers (loaded, but unused, when a file has them)
_GLM_DSA = replace(
    _DEEPSEEK2,
    source="src/models/glm-dsa.cpp",
    layer=(
        *_DEEPSEEK2.layer,
        *_indexer(("indexer_full",)),
        *_indexer(("indexer_shared",), optional=True),
    ),
)
_GLM4MOE = Family(
    "src/models/glm4-moe.cpp",
    _GLOBALS,
    (
        _w(T.ATTN_NORM, "E"),
        _qkv("H*HK", "HKV*HK", "HKV*HV"),
        _w(T.ATTN_OUT, "H*HK", "E"),
        _w(T.ATTN_Q_NORM, "HK", optional=True),
        _w(T.ATTN_K_NORM, "HK", optional=True),
        _w(T.ATTN_POST_NORM, "E"),
        _w(T.FFN_GATE_INP, "E", "X", when=("moe",)),
        _b(T.FFN_EXP_PROBS_B, "X", when=("moe",)),
        _w(T.FFN_GATE_EXP, "E", "FE", "X", when=("moe",)),
        _w(T.FFN_DOWN_EXP, "FE", "E", "X", when=("moe",)),
        _w(T.FFN_UP_EXP, "E", "FE", "X", when=("moe",)),
        *_shared_experts("FE*S", ("moe", "shexp_count")),
        *_dense_ffn(("dense",)),
        *_NEXTN,
    ),
    all_layers=True,
    mtp_probe=True,
)
# qwen35 / qwen35moe: gated full attention (Q twice as wide: query and gate) or a gated
# DeltaNet block, then the FFN; an MTP layer is a full-attention block with the NextN extras.
_GATED_ATTENTION = (
    _qkv("2*H*HK", "HKV*HK", "HKV*HV", ("attention",)),
    _w(T.ATTN_OUT, "H*HK", "E", when=("attention",)),
    _w(T.ATTN_Q_NORM, "HK", when=("attention",)),
    _w(T.ATTN_K_NORM, "HK", when=("attention",)),
)
# The loader takes the DeltaNet's attn_qkv and attn_gate as optional, but the graph multiplies
# by both unconditionally (qwen35.cpp, build_layer_attn_linear): without them llama-server
# crashes at its first graph, so they are required here.
_DELTA_NET = (
    _w(T.ATTN_QKV, "E", "2*DS*NG+DS*DT", when=("recurrent",)),
    _w(T.ATTN_GATE, "E", "DS*DT", when=("recurrent",)),
    _w(T.SSM_CONV1D, "DC", "2*DS*NG+DS*DT", when=("recurrent",)),
    _b(T.SSM_DT, "DT", when=("recurrent",)),
    Need(T.SSM_A, ("DT",), ("recurrent",), None),
    _w(T.SSM_BETA, "E", "DT", when=("recurrent",)),
    _w(T.SSM_ALPHA, "E", "DT", when=("recurrent",)),
    _w(T.SSM_NORM, "DS", when=("recurrent",)),
    _w(T.SSM_OUT, "DS*DT", "E", when=("recurrent",)),
)
_QWEN35_BLOCK = (_w(T.ATTN_NORM, "E"), _w(T.ATTN_POST_NORM, "E"), *_GATED_ATTENTION, *_DELTA_NET)
_QWEN35 = Family(
    "src/models/qwen35.cpp",
    _GLOBALS,
    (*_QWEN35_BLOCK, *_dense_ffn(), *_NEXTN),
    all_layers=True,
)
_QWEN35MOE = Family(
    "src/models/qwen35moe.cpp",
    _GLOBALS,
    (
        *_QWEN35_BLOCK,
        _w(T.FFN_GATE_INP, "E", "X"),
        _w(T.FFN_DOWN_EXP, "FE", "E", "X"),
        _gate_up_exps("FE"),
        _w(T.FFN_GATE_INP_SHEXP, "E"),
        *_shared_experts("FSHEXP_OR_F"),
        *_NEXTN,
    ),
    all_layers=True,
)

_QWEN35_DELTA_NET_ONLY = (T.ATTN_QKV, T.ATTN_GATE, T.SSM_BETA, T.SSM_ALPHA)
# qwen3next: qwen35moe's block, but the DeltaNet's input is attn_qkv + attn_gate or the legacy
# fused ssm_in (E x 2 key + 2 value widths), and beta/alpha are one ssm_ba (E x 2 value heads)
_QWEN3NEXT = Family(
    "src/models/qwen3next.cpp",
    _GLOBALS,
    (
        _w(T.ATTN_NORM, "E"),
        _w(T.ATTN_POST_NORM, "E"),
        *_GATED_ATTENTION,
        # the legacy ssm_in when the file has it, else both halves (the graph needs them)
        Either(
            (_w(T.SSM_IN, "E", "2*DS*NG+2*DS*DT"),),
            (_w(T.ATTN_QKV, "E", "2*DS*NG+DS*DT"), _w(T.ATTN_GATE, "E", "DS*DT")),
            ("recurrent",),
        ),
        *(n for n in _DELTA_NET if n.tensor not in _QWEN35_DELTA_NET_ONLY),
        _w(T.SSM_BETA_ALPHA, "E", "2*DT", when=("recurrent",)),
        _w(T.FFN_GATE_INP, "E", "X"),
        _w(T.FFN_DOWN_EXP, "FE", "E", "X"),
        _gate_up_exps("FE"),
        _w(T.FFN_GATE_INP_SHEXP, "E"),
        *_shared_experts("FSHEXP_OR_F"),
        *_NEXTN,
    ),
    all_layers=True,
)

# llama4: every interleave_moe_layer_step-th layer routes to experts plus a shared expert of the
# experts' width; the others have a dense FFN
_LLAMA4 = Family(
    "src/models/llama4.cpp",
    (*_GLOBALS, _w(T.ROPE_FREQS, "ROT/2", optional=True)),
    (
        _w(T.ATTN_NORM, "E"),
        _qkv("H*HK", "HKV*HK", "HKV*HV"),
        _w(T.ATTN_OUT, "H*HK", "E"),
        _w(T.FFN_NORM, "E"),
        *_experts("FE", ("moe_step",)),
        *_shared_experts("FE", ("moe_step",)),
        *_dense_ffn(("dense_step",)),
    ),
)

# nemotron_h_moe: per layer an RMS norm and one of a Mamba-2 mixer, attention (no RoPE) or
# routed up/down experts with a selection bias plus an up/down shared expert. The kind comes
# from the per-layer KV heads and FFN widths, so attention is sized by the attention layers'
# KV heads (HKVMAX; layer 0 is a Mamba layer with none). The conv bias is optional to the
# loader but the graph adds it unconditionally (without it llama-server crashes): required.
# A Mamba-2 mixer (nemotron-h.cpp, granite-hybrid.cpp) on the recurrent layers
_MAMBA2 = (
    _w(T.SSM_IN, "E", "2*DI+2*NG*DS+DT", when=("recurrent",)),
    _w(T.SSM_CONV1D, "DC", "DI+2*NG*DS", when=("recurrent",)),
    _b(T.SSM_CONV1D, "DI+2*NG*DS", when=("recurrent",)),
    _b(T.SSM_DT, "DT", when=("recurrent",)),
    Need(T.SSM_A, ("1", "DT"), ("recurrent",), None),
    Need(T.SSM_D, ("1", "DT"), ("recurrent",), None),
    _w(T.SSM_NORM, "DIG", "NG", when=("recurrent",)),
    _w(T.SSM_OUT, "DI", "E", when=("recurrent",)),
)
_NEMOTRON_H_MOE = Family(
    "src/models/nemotron-h.cpp",
    _GLOBALS,
    (
        _w(T.ATTN_NORM, "E"),
        *_MAMBA2,
        _qkv("H*HK", "HKVMAX*HK", "HKVMAX*HV", ("attention_layer",)),
        _w(T.ATTN_OUT, "H*HK", "E", when=("attention_layer",)),
        _b(T.ATTN_OUT, "E", when=("attention_layer",), optional=True),
        _w(T.FFN_GATE_INP, "E", "X", when=("ffn_layer",)),
        _b(T.FFN_EXP_PROBS_B, "X", when=("ffn_layer",)),
        _w(T.FFN_DOWN_EXP, "FE", "E", "X", when=("ffn_layer",)),
        _w(T.FFN_UP_EXP, "E", "FE", "X", when=("ffn_layer",)),
        _w(T.FFN_DOWN_SHEXP, "FSHEXP", "E", when=("ffn_layer",)),
        _w(T.FFN_UP_SHEXP, "E", "FSHEXP", when=("ffn_layer",)),
    ),
)


# gemma4: per layer kind (sliding / global) its own head width and KV heads; layers past
# n_layer_kv_from_start share KV (K optional); FFNs twice wide where the file says so; MoE
# layers (router present) with fused gate_up experts; per-layer embeddings when PLE > 0.
def _gemma4_attention(kind: str, head: str, kv: str) -> tuple[Need, ...]:
    return (
        _w(T.ATTN_Q, "E", f"H*{head}", when=(kind,)),
        _w(T.ATTN_K, "E", f"{kv}*{head}", when=(kind, "kv_own")),
        _w(T.ATTN_K, "E", f"{kv}*{head}", when=(kind, "kv_shared"), optional=True),
        _w(T.ATTN_V, "E", f"{kv}*{head}", when=(kind,), optional=True),
        _w(T.ATTN_OUT, f"H*{head}", "E", when=(kind,)),
        _w(T.ATTN_Q_NORM, head, when=(kind,)),
        _w(T.ATTN_K_NORM, head, when=(kind, "kv_own")),
        _w(T.ATTN_K_NORM, head, when=(kind, "kv_shared"), optional=True),
    )


_GEMMA4 = Family(
    "src/models/gemma4.cpp",
    (
        *_GLOBALS,
        _w(T.ROPE_FREQS, "HK/2"),
        _w(T.PER_LAYER_TOKEN_EMBD, "PLE*NL", "V", when=("ple",)),
        _w(T.PER_LAYER_MODEL_PROJ, "E", "PLE*NL", when=("ple",)),
        _w(T.PER_LAYER_PROJ_NORM, "PLE", when=("ple",)),
    ),
    (
        _w(T.ATTN_NORM, "E"),
        *_gemma4_attention("swa", "HKS", "HKV"),
        *_gemma4_attention("global", "HK", "HKVG"),
        _w(T.ATTN_POST_NORM, "E"),
        _w(T.LAYER_OUT_SCALE, "1", optional=True),
        _w(T.FFN_NORM, "E"),
        *_dense_ffn(("ffn_base",)),
        _w(T.FFN_GATE, "E", "2*F", when=("ffn_wide",)),
        _w(T.FFN_DOWN, "2*F", "E", when=("ffn_wide",)),
        _w(T.FFN_UP, "E", "2*F", when=("ffn_wide",)),
        _w(T.FFN_POST_NORM, "E"),
        _w(T.FFN_GATE_INP, "E", "X", when=("moe",), optional=True),
        Need(T.FFN_GATE_INP, ("E",), ("moe_router",), "scale", False),
        _w(T.FFN_PRE_NORM_2, "E", when=("moe_router",)),
        _w(T.FFN_POST_NORM_1, "E", when=("moe_router",)),
        _w(T.FFN_POST_NORM_2, "E", when=("moe_router",)),
        # the converter writes the experts' gate and up fused (the loader would take them
        # separate too; no published file has them so)
        _w(T.FFN_GATE_UP_EXP, "E", "2*FE", "X", when=("moe_router",)),
        _w(T.FFN_DOWN_EXP, "FE", "E", "X", when=("moe_router",)),
        Need(T.FFN_DOWN_EXP, ("X",), ("moe_router",), "scale", True),
        _w(T.PER_LAYER_INP_GATE, "E", "PLE", when=("ple",)),
        _w(T.PER_LAYER_PROJ, "PLE", "E", when=("ple",)),
        _w(T.PER_LAYER_POST_NORM, "E", when=("ple",)),
    ),
)

# minimax-m2: Q/K norms over the whole projection (all heads), experts n_ff wide (the loader's
# feed_forward_length, not the expert key) with a required selection bias, output required
_MINIMAX_M2 = Family(
    "src/models/minimax-m2.cpp",
    _GLOBALS_OUTPUT,
    (
        _w(T.ATTN_NORM, "E"),
        _qkv("H*HK", "HKV*HV", "HKV*HV"),
        _w(T.ATTN_OUT, "H*HK", "E"),
        _w(T.ATTN_Q_NORM, "H*HK"),
        _w(T.ATTN_K_NORM, "HKV*HK"),
        _w(T.FFN_NORM, "E"),
        *_experts("F"),
        _b(T.FFN_EXP_PROBS_B, "X"),
    ),
)

# minimax-m3: per-head Q/K norms, a dense FFN on the leading layers, else experts with a
# required selection bias, the shared expert and the MSA indexer's projections and norms
_MINIMAX_M3 = Family(
    "src/models/minimax-m3.cpp",
    _GLOBALS_OUTPUT,
    (
        _w(T.ATTN_NORM, "E"),
        _qkv("H*HK", "HKV*HV", "HKV*HV"),
        _w(T.ATTN_OUT, "H*HK", "E"),
        _w(T.ATTN_Q_NORM, "HK"),
        _w(T.ATTN_K_NORM, "HK"),
        _w(T.FFN_NORM, "E"),
        *_dense_ffn(("dense",)),
        *_experts("FE", ("moe",)),
        _b(T.FFN_EXP_PROBS_B, "X", when=("moe",)),
        *_shared_experts("FE*S", ("moe",)),
        _w(MsaTensors.INDEXER_Q_PROJ, "E", "IH*IK", when=("moe",)),
        _w(MsaTensors.INDEXER_K_PROJ, "E", "IK", when=("moe",)),
        _w(MsaTensors.INDEXER_Q_NORM, "IK", when=("moe",)),
        _w(T.INDEXER_K_NORM, "IK", when=("moe",)),
    ),
)


# lfm2, lfm2moe: the final norm named token_embd_norm (LLM_TENSOR_OUTPUT_NORM_LFM2); per layer
# the operator norm and a gated short convolution (recurrent: no KV heads) or attention with
# per-head Q/K norms, sized by the attention layers' KV heads (HKVMAX: layer 0 is a conv
# layer); the FFN norm, a dense FFN on the leading layers (lfm2: every layer), else experts
# with the required selection bias. The ColBERT projection (dense_2) is optional.
_LFM2 = Family(
    "src/models/lfm2.cpp, lfm2moe.cpp",
    (
        _w(T.TOKEN_EMBD, "E", "V"),
        _w(T.TOKEN_EMBD_NORM, "E"),
        _w(T.OUTPUT, "E", "V", optional=True),
    ),
    (
        _w(T.ATTN_NORM, "E"),
        _w(T.FFN_NORM, "E"),
        _w(T.SHORTCONV_CONV, "LC", "E", when=("recurrent",)),
        _w(T.SHORTCONV_INPROJ, "E", "3*E", when=("recurrent",)),
        _w(T.SHORTCONV_OUTPROJ, "E", "E", when=("recurrent",)),
        _w(T.ATTN_Q_NORM, "HK", when=("attention",)),
        _w(T.ATTN_K_NORM, "HK", when=("attention",)),
        _qkv("E", "HKVMAX*HK", "HKVMAX*HV", ("attention",)),
        _w(T.ATTN_OUT, "E", "E", when=("attention",)),
        *_dense_ffn(("dense",)),
        *_experts("FE", ("moe",)),
        _b(T.FFN_EXP_PROBS_B, "X", when=("moe",)),
    ),
)


# granitehybrid: per layer the attention norm and a Mamba-2 mixer or attention (sized by the
# attention layers' KV heads; the output bias optional), the FFN norm, then a dense FFN with
# optional biases, or (with experts) the router, experts n_ff wide (the gate optional) and,
# where the shared width is set, the shared expert. The conv bias is required as nemotron's.
_GRANITEHYBRID = Family(
    "src/models/granite-hybrid.cpp",
    _GLOBALS,
    (
        _w(T.ATTN_NORM, "E"),
        *_MAMBA2,
        _qkv("H*HK", "HKVMAX*HK", "HKVMAX*HV", ("attention",)),
        _w(T.ATTN_OUT, "H*HK", "E", when=("attention",)),
        _b(T.ATTN_OUT, "E", when=("attention",), optional=True),
        _w(T.FFN_NORM, "E"),
        *_dense_ffn(("no_experts",), biases=True),
        _w(T.FFN_GATE_INP, "E", "X", when=("experts",)),
        _w(T.FFN_GATE_EXP, "E", "F", "X", when=("experts",), optional=True),
        _w(T.FFN_DOWN_EXP, "F", "E", "X", when=("experts",)),
        _w(T.FFN_UP_EXP, "E", "F", "X", when=("experts",)),
        *_shared_experts("FSHEXP", ("experts", "shexp_width")),
    ),
)


def _kda(a_shape: tuple[str, ...]) -> tuple[Need | Either, ...]:
    """A KDA block (kimi-linear.cpp, glm5-next.cpp): Q/K/V with their own short convolutions,
    the low-rank forget gate with its dt bias and per-head decay A (``a_shape``), beta, the
    low-rank output gate, the gated norm, the output projection."""
    return (
        _w(T.SSM_CONV1D_Q, "DC", "1", "KDA*H", when=("recurrent",)),
        _w(T.SSM_CONV1D_K, "DC", "1", "KDA*H", when=("recurrent",)),
        _w(T.SSM_CONV1D_V, "DC", "1", "KDA*H", when=("recurrent",)),
        _qkv("KDA*H", "KDA*H", "KDA*H", ("recurrent",)),
        _w(T.SSM_F_A, "E", "KDA", when=("recurrent",)),
        _w(T.SSM_F_B, "KDA", "KDA*H", when=("recurrent",)),
        _w(T.SSM_BETA, "E", "H", when=("recurrent",)),
        Need(T.SSM_A, a_shape, ("recurrent",), None),
        _b(T.SSM_DT, "KDA*H", when=("recurrent",)),
        _w(T.SSM_G_A, "E", "KDA", when=("recurrent",)),
        _w(T.SSM_G_B, "KDA", "KDA*H", when=("recurrent",)),
        _w(T.SSM_NORM, "KDA", when=("recurrent",)),
        _w(T.ATTN_OUT, "KDA*H", "E", when=("recurrent",)),
    )


# kimi-linear: per layer a KDA block (recurrent: no KV heads) or an MLA block without RoPE,
# then a dense FFN on the leading layers, else experts with a required selection bias and the
# shared expert (optional to the loader, but the graph runs it unconditionally: required here)
_KIMI_MLA = (
    _w(T.ATTN_Q_A_NORM, "QL", when=("attention", "q_lora")),
    _w(T.ATTN_Q_A, "E", "QL", when=("attention", "q_lora")),
    _w(T.ATTN_Q_B, "QL", "H*KMLA", when=("attention", "q_lora")),
    _w(T.ATTN_Q, "E", "H*KMLA", when=("attention", "no_q_lora")),
    _w(T.ATTN_KV_A_NORM, "KVL", when=("attention",)),
    _w(T.ATTN_KV_A_MQA, "E", "KVL+ROT", when=("attention",)),
    Either(
        (_w(T.ATTN_KV_B, "KVL", "H*KMLA-H*ROT+H*VMLA"),),
        (_w(T.ATTN_K_B, "KMLA-ROT", "KVL", "H"), _w(T.ATTN_V_B, "KVL", "VMLA", "H")),
        ("attention",),
    ),
    _w(T.ATTN_OUT, "H*VMLA", "E", when=("attention",)),
)
_KIMI_LINEAR = Family(
    "src/models/kimi-linear.cpp",
    _GLOBALS_OUTPUT,
    (
        _w(T.ATTN_NORM, "E"),
        *_kda(("1", "H")),
        *_KIMI_MLA,
        _w(T.FFN_NORM, "E"),
        *_dense_ffn(("dense",)),
        *_experts("FE", ("moe",)),
        _b(T.FFN_EXP_PROBS_B, "X", when=("moe",)),
        *_shared_experts("FE*S", ("moe",)),
    ),
)

# deepseek4.cpp, glm5-next.cpp: a trunk layer's attention and FFN hyper-connection mixes
_HYPER_CONNECTIONS = (
    _w(D4.HC_ATTN_FN, "HCD", "HCM", when=("trunk",)), _w(D4.HC_ATTN_BASE, "HCM", when=("trunk",)),
    _w(D4.HC_ATTN_SCALE, "3", when=("trunk",)), _w(D4.HC_FFN_FN, "HCD", "HCM", when=("trunk",)),
    _w(D4.HC_FFN_BASE, "HCM", when=("trunk",)), _w(D4.HC_FFN_SCALE, "3", when=("trunk",)),
)  # fmt: skip

# deepseek4.cpp: sinks, compressed q, one KV head, the grouped low-rank output (attn_output_a
# as the file stores it: [H*HK/G, R*G]), both hyper-connection mixes, the layer's compressor
# and on ratio-4 layers the indexer, routing by hash table on the first layers, experts plus
# the shared one; the head's hyper-connection mix
_DEEPSEEK4 = Family(
    "src/models/deepseek4.cpp",
    (*_GLOBALS_OUTPUT, _w(D4.HC_HEAD_FN, "HCD", "HC"), _w(D4.HC_HEAD_BASE, "HC"),
     _w(D4.HC_HEAD_SCALE, "1")),
    (
        _w(T.ATTN_NORM, "E"), _w(T.ATTN_SINKS, "H"), _w(T.ATTN_Q_A, "E", "QL"),
        _w(T.ATTN_Q_A_NORM, "QL"), _w(T.ATTN_Q_B, "QL", "H*HK"), _w(D4.ATTN_KV, "E", "HK"),
        _w(T.ATTN_KV_A_NORM, "HK"), _w(D4.ATTN_OUT_A, "HKG", "OL*OG"),
        _w(D4.ATTN_OUT_B, "OG*OL", "E"),
        *_HYPER_CONNECTIONS,
        _w(D4.ATTN_COMPRESSOR_KV, "E", "2*HK", when=("csa",)),
        _w(D4.ATTN_COMPRESSOR_GATE, "E", "2*HK", when=("csa",)),
        _w(D4.ATTN_COMPRESSOR_APE, "2*HK", "4", when=("csa",)),
        _w(D4.ATTN_COMPRESSOR_KV, "E", "HK", when=("hca",)),
        _w(D4.ATTN_COMPRESSOR_GATE, "E", "HK", when=("hca",)),
        _w(D4.ATTN_COMPRESSOR_APE, "HK", "128", when=("hca",)),
        _w(D4.ATTN_COMPRESSOR_NORM, "HK", when=("compressed",)),
        _w(T.INDEXER_PROJ, "E", "IH", when=("csa",)),
        _w(T.INDEXER_ATTN_Q_B, "QL", "IH*IK", when=("csa",)),
        _w(D4.INDEXER_COMPRESSOR_KV, "E", "2*IK", when=("csa",)),
        _w(D4.INDEXER_COMPRESSOR_GATE, "E", "2*IK", when=("csa",)),
        _w(D4.INDEXER_COMPRESSOR_APE, "2*IK", "4", when=("csa",)),
        _w(D4.INDEXER_COMPRESSOR_NORM, "IK", when=("csa",)),
        _w(D4.FFN_GATE_TID2EID, "XU", "V", when=("hash",)),
        _b(T.FFN_EXP_PROBS_B, "X", when=("no_hash",)),
        _w(T.FFN_NORM, "E"), *_experts("FE"), *_shared_experts("FE*S"),
    ),
)  # fmt: skip

# step35: per-layer query heads (HG on full, HS on sliding layers), per-head Q/K norms and
# the head-wise gate, all optional. The loader takes the dense FFN, router, experts, selection
# bias and shared expert as optional too, and the graph runs experts where the router is,
# else the dense FFN: required here as the converter writes them (the router, experts and
# shared expert, which the graph adds unconditionally, on the trunk's layers after the
# leading_dense_block_count dense ones; the dense FFN on those and on the MTP blocks). Rope
# factors (n_rot_max / 2: half the sliding layers' whole head) optional. Its MTP layers load
# the optional tensors.
_STEP35_ATTENTION = tuple(
    item
    for kind, heads in (("global", "HG"), ("swa", "HS"))
    for item in (
        _qkv(f"{heads}*HK", "HKV*HK", "HKV*HV", (kind,)),
        _w(T.ATTN_OUT, f"{heads}*HV", "E", when=(kind,)),
        _w(T.ATTN_GATE, "E", heads, when=(kind,), optional=True),
    )
)
_STEP35 = Family(
    "src/models/step35.cpp",
    (*_GLOBALS_OUTPUT, _w(T.ROPE_FREQS, "HK/2", optional=True)),
    (
        _w(T.ATTN_NORM, "E"),
        _w(T.ATTN_Q_NORM, "HK", optional=True),
        _w(T.ATTN_K_NORM, "HK", optional=True),
        *_STEP35_ATTENTION,
        _w(T.FFN_NORM, "E"),
        *_dense_ffn(("no_trunk_moe",)),
        *_experts("FE", ("trunk_moe",)),
        _b(T.FFN_EXP_PROBS_B, "X", when=("trunk_moe",), optional=True),
        *_shared_experts("FSHEXP", ("trunk_moe",)),
        *_NEXTN,
    ),
    all_layers=True,
    mtp_probe=True,
)


def _kpool_indexer(when: str, *, optional: bool) -> tuple[Need, ...]:
    """glm5-next.cpp's k-pool indexer of an MLA layer (``when``): required where the layer's
    indexer is full, optional (TENSOR_NOT_REQUIRED) where it is shared."""
    cond = ("attention", when)
    return (
        *_indexer(cond, optional=optional),
        _w(D4.INDEXER_COMPRESSOR_GATE, "E", "IK", when=cond, optional=optional),
        _w(D4.INDEXER_COMPRESSOR_APE, "IK", "KP", when=cond, optional=optional),
    )


# glm5-next.cpp: trunk layers' hyper-connection mixes; a KDA block, or a NoPE MLA block (q
# compression and split k_b/v_b required) with the k-pool indexer; a dense FFN on the leading
# layers, else experts with the required selection bias and the shared expert; MTP extras
_GLM5_NEXT = Family(
    "src/models/glm5-next.cpp",
    _GLOBALS_OUTPUT,
    (
        _w(T.ATTN_NORM, "E"),
        _w(T.FFN_NORM, "E"),
        *_HYPER_CONNECTIONS,
        *_kda(("H",)),
        *(_w(t, *shape, when=("attention",)) for t, shape in (
            (T.ATTN_Q_A_NORM, ("QL",)), (T.ATTN_KV_A_NORM, ("KVL",)), (T.ATTN_Q_A, ("E", "QL")),
            (T.ATTN_Q_B, ("QL", "H*KMLA")), (T.ATTN_KV_A_MQA, ("E", "KVL+ROT")),
            (T.ATTN_K_B, ("KMLA-ROT", "KVL", "H")), (T.ATTN_V_B, ("KVL", "VMLA", "H")),
            (T.ATTN_OUT, ("H*VMLA", "E")),
        )),
        *_kpool_indexer("indexer_full", optional=False),
        *_kpool_indexer("indexer_shared", optional=True),
        *_dense_ffn(("dense",)),
        *_experts("FE", ("moe",)),
        _b(T.FFN_EXP_PROBS_B, "X", when=("moe",)),
        *_shared_experts("FE*S", ("moe",)),
        *_NEXTN,
    ),
    all_layers=True,
    mtp_probe=True,
)  # fmt: skip

# mimo2: Q/K/V with the KV heads of the layer's kind (full or sliding) and V's own width;
# sinks and every FFN tensor (dense, or experts with the selection bias) TENSOR_NOT_REQUIRED
# (the graph runs experts where the router is, else the dense FFN); MTP layers with the
# NextN extras and an optional layer_output_norm
_MIMO2 = Family(
    "src/models/mimo2.cpp",
    _GLOBALS_OUTPUT,
    (
        _qkv("H*HK", "HKVG*HK", "HKVG*HV", ("global",)),
        _qkv("H*HK", "HKVS*HK", "HKVS*HV", ("swa",)),
        _w(T.ATTN_OUT, "H*HV", "E"),
        _w(T.ATTN_NORM, "E"),
        _w(T.ATTN_SINKS, "H", optional=True),
        _w(T.FFN_NORM, "E"),
        *(replace(need, optional=True) for need in _dense_ffn()),
        *(replace(need, optional=True) for need in _experts("FE")),
        _b(T.FFN_EXP_PROBS_B, "X", optional=True),
        *_NEXTN,
        _w(T.LAYER_OUT_NORM, "E", when=("mtp",), optional=True),
    ),
    all_layers=True,
    mtp_probe=True,
)

FAMILIES: dict[str, Family] = {
    "llama": _LLAMA,
    "mistral3": _LLAMA,
    "qwen2": _QWEN2,
    "qwen2moe": _QWEN2MOE,
    "qwen3": _QWEN3,
    "qwen3moe": _QWEN3MOE,
    "gemma3": _GEMMA3,
    "gpt-oss": _GPT_OSS,
    "deepseek2": _DEEPSEEK2,
    "mistral4": _DEEPSEEK2,  # llama_model_mistral4 reuses deepseek2's load_arch_tensors
    "deepseek32": _DEEPSEEK32,
    "glm-dsa": _GLM_DSA,
    "glm4moe": _GLM4MOE,
    "qwen35": _QWEN35,
    "qwen35moe": _QWEN35MOE,
    "llama4": _LLAMA4,
    "gemma4": _GEMMA4,
    "qwen3next": _QWEN3NEXT,
    "nemotron_h_moe": _NEMOTRON_H_MOE,
    "minimax-m2": _MINIMAX_M2,
    "kimi-linear": _KIMI_LINEAR,
    "deepseek4": _DEEPSEEK4,
    "qwen3vl": _QWEN3VL,
    "qwen3vlmoe": _QWEN3VLMOE,
    "step35": _STEP35,
    "glm5-next": _GLM5_NEXT,
    "minimax-m3": _MINIMAX_M3,
    "mimo2": _MIMO2,
    "seed_oss": _SEED_OSS,
    "smollm3": _SMOLLM3,
    "glm4": _GLM4,
    "olmo2": _OLMO2,
    "lfm2": _LFM2,
    "lfm2moe": _LFM2,
    "exaone4": _EXAONE4,
    "granitehybrid": _GRANITEHYBRID,
    "ernie4_5-moe": _ERNIE4_5_MOE,
    "cohere2": _COHERE2,
    "dots1": _DOTS1,
    "bailingmoe2": _BAILINGMOE2,
    "apertus": _APERTUS,
    "hunyuan-moe": _HUNYUAN_MOE,
    "phi3": _PHI3,
}

# Without a table: architectures whose loader takes token_embd as optional, or of another width.
_EMBEDDING_OPTIONAL = frozenset({"codeshell", "dflash"})
_EMBEDDING_OTHER_WIDTH = frozenset({"eagle3", "wavtokenizer-dec"})


# --- dimensions and conditions -----------------------------------------------------------------


def _meta_int(inventory: Inventory, template: str, default: int = 0) -> int:
    value = inventory.metadata.get(template.format(arch=inventory.architecture), default)
    if isinstance(value, list):
        value = value[0] if value else default
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _dimensions(inventory: Inventory) -> dict[str, int]:
    """The symbols of ``Need`` shapes, as ``LLAMA_LOAD_LOCALS`` and the loaders compute them
    (layer 0's head counts and FFN width)."""
    att, experts, state = inventory.attention, inventory.experts, inventory.recurrent
    n_ff = _meta_int(inventory, Keys.LLM.FEED_FORWARD_LENGTH)
    n_ff_exp = experts.feed_forward_length or (n_ff // experts.used if experts.used else 0)
    n_ff_shexp = _meta_int(inventory, Keys.LLM.EXPERT_SHARED_FEED_FORWARD_LENGTH)
    return {
        "E": inventory.n_embd,
        "V": _vocab_rows(inventory),
        "H": att.n_head[0] if att.n_head else 0,
        "HKV": att.n_head_kv[0] if att.n_head_kv else 0,
        "HK": att.key_length,
        "HV": att.value_length,
        "ROT": att.rope_dim,
        "F": n_ff,
        "FE": n_ff_exp,
        "FSHEXP": n_ff_shexp,
        "FSHEXP_OR_F": n_ff_shexp or n_ff,
        "FSHEXP_OR_FE": n_ff_shexp or n_ff_exp,  # bailingmoe2's shared expert
        "X": experts.count,
        "S": experts.shared,
        "QL": att.q_lora_rank,
        "KVL": att.kv_lora_rank,
        "KMLA": att.key_length_mla,
        "VMLA": att.value_length_mla,
        "DS": state.state_size if state else 0,
        "NG": state.group_count if state else 0,
        "DT": state.time_step_rank if state else 0,
        "DC": state.conv_kernel if state else 0,
        # nemotron_h_moe: Mamba-2's inner width, its per-group width, attention's KV heads
        "DI": state.inner_size if state else 0,
        "DIG": state.inner_size // state.group_count if state and state.group_count else 0,
        "HKVMAX": max(att.n_head_kv, default=0),
        "KDA": state.kda_head_dim if state else 0,  # kimi-linear's KDA head width
        "LC": _meta_int(inventory, Keys.ShortConv.L_CACHE),  # lfm2's conv window
        # gemma4: the sliding layers' K head width, the first global layer's KV heads, the
        # per-layer-embedding width and the trunk layers it spans
        "HKS": _meta_int(inventory, Keys.Attention.KEY_LENGTH_SWA) or att.key_length,
        "HKVG": _first_global(att.n_head_kv, att.swa_layers),
        # step35: the query heads of the first full and of the first sliding layer
        "HG": _first_global(att.n_head, att.swa_layers),
        "HS": _first_sliding(att.n_head, att.swa_layers),
        # mimo2: the KV heads of the first sliding layer
        "HKVS": _first_sliding(att.n_head_kv, att.swa_layers),
        "PLE": _meta_int(inventory, Keys.LLM.EMBD_LENGTH_PER_LAYER_INP),
        "NL": inventory.n_layers - inventory.n_layers_nextn,
        # deepseek32: the lightning indexer's heads and head width
        "IH": _meta_int(inventory, Keys.Attention.Indexer.HEAD_COUNT),
        "IK": _meta_int(inventory, Keys.Attention.Indexer.KEY_LENGTH),
        "KP": _meta_int(inventory, KpoolKeys.KPOOL),  # glm5-next: tokens per indexer pool
        **_dsv4_dimensions(inventory, att.n_head[0] if att.n_head else 0, att.key_length),
    }


def _dsv4_dimensions(inventory: Inventory, n_head: int, head_k: int) -> dict[str, int]:
    """deepseek4's: hyper-connection streams, their width and mix width ((2 + HC) * HC), the
    output groups and their rank, a group's input width, the experts a token uses."""
    hc = _meta_int(inventory, Dsv4Keys.HC_COUNT)
    groups = _meta_int(inventory, Dsv4Keys.OUTPUT_GROUP_COUNT)
    return {
        "HC": hc,
        "HCD": hc * inventory.n_embd,
        "HCM": (2 + hc) * hc,
        "OG": groups,
        "OL": _meta_int(inventory, Dsv4Keys.OUTPUT_LORA_RANK),
        "HKG": n_head * head_k // groups if groups else 0,
        "XU": inventory.experts.used,
    }


def _first_global(values: Sequence[int], swa_layers: Sequence[bool]) -> int:
    """The value of the first layer that is not sliding-window (layer 0's without one)."""
    for value, swa in zip(values, swa_layers, strict=False):
        if not swa:
            return value
    return values[0] if values else 0


def _first_sliding(values: Sequence[int], swa_layers: Sequence[bool]) -> int:
    """The value of the first sliding-window layer (layer 0's without one)."""
    for value, swa in zip(values, swa_layers, strict=False):
        if swa:
            return value
    return values[0] if values else 0


def _vocab_rows(inventory: Inventory) -> int:
    """``vocab.n_tokens()``: the tokenizer's token count when the file has a vocabulary, else
    the inventory's vocabulary size."""
    tokens = inventory.metadata.get(Keys.Tokenizer.LIST)
    if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0:
        return tokens
    return inventory.n_vocab


def dimension_value(expression: str, dims: Mapping[str, int]) -> int:
    """``"2*H*HK+KVL-ROT"`` over ``dims``; ``/`` divides (integer) a term by a number."""
    total = 0
    for sign, term in _terms(expression):
        head, _, divisor = term.partition("/")
        factors = [int(f) if f.isdigit() else dims[f] for f in head.split("*")]
        total += sign * (math.prod(factors) // (int(divisor) if divisor else 1))
    return total


def _terms(expression: str) -> list[tuple[int, str]]:
    terms, sign, start = [], 1, 0
    for index, char in enumerate(expression + "+"):
        if char in "+-" and index > start:
            terms.append((sign, expression[start:index]))
            sign, start = (1 if char == "+" else -1), index + 1
    return terms


_CONDITIONS: dict[str, Callable[[Inventory, int, Mapping[str, int]], bool]] = {
    "mtp": lambda inv, il, d: il >= inv.n_layers - inv.n_layers_nextn,
    "moe": lambda inv, il, d: d["X"] > 0 and il >= inv.experts.leading_dense_layers,
    "dense": lambda inv, il, d: not (d["X"] > 0 and il >= inv.experts.leading_dense_layers),
    "shexp_width": lambda inv, il, d: d["FSHEXP"] > 0,
    "experts": lambda inv, il, d: d["X"] > 0,
    "no_experts": lambda inv, il, d: d["X"] == 0,
    "shexp_count": lambda inv, il, d: d["S"] > 0,
    "q_lora": lambda inv, il, d: d["QL"] > 0,
    "no_q_lora": lambda inv, il, d: d["QL"] == 0,
    "mla": lambda inv, il, d: d["KMLA"] > 0 and d["VMLA"] > 0,
    "no_mla": lambda inv, il, d: not (d["KMLA"] > 0 and d["VMLA"] > 0),
    "recurrent": lambda inv, il, d: _is_recurrent(inv, il),
    "attention": lambda inv, il, d: not _is_recurrent(inv, il),
    "swa": lambda inv, il, d: _is_swa(inv, il),
    "global": lambda inv, il, d: not _is_swa(inv, il),
    "kv_own": lambda inv, il, d: not 0 <= inv.attention.n_layer_kv_from_start <= il,
    "kv_shared": lambda inv, il, d: 0 <= inv.attention.n_layer_kv_from_start <= il,
    "ffn_base": lambda inv, il, d: _layer_n_ff(inv, il) != 2 * d["F"] or not d["F"],
    "ffn_wide": lambda inv, il, d: bool(d["F"]) and _layer_n_ff(inv, il) == 2 * d["F"],
    "moe_router": lambda inv, il, d: d["X"] > 0 and _has_router(inv, il),
    # step35: moe_layers_enum, the trunk after the leading dense layers (MTP blocks are dense)
    "trunk_moe": lambda inv, il, d: _is_trunk_moe(inv, il, d),
    "no_trunk_moe": lambda inv, il, d: not _is_trunk_moe(inv, il, d),
    "ple": lambda inv, il, d: d["PLE"] > 0,
    "moe_step": lambda inv, il, d: _is_step_moe(inv, il),
    "dense_step": lambda inv, il, d: not _is_step_moe(inv, il),
    # nemotron-h.cpp: not recurrent and no FFN width is attention, an FFN width is an FFN
    "attention_layer": lambda inv, il, d: not _is_recurrent(inv, il) and not _layer_ff(inv, il),
    "ffn_layer": lambda inv, il, d: _layer_ff(inv, il) > 0,
    # deepseek4: the layer's compression ratio, and the hash-routed first layers
    "compressed": lambda inv, il, d: _compress_ratio(inv, il) != 0,
    "csa": lambda inv, il, d: _compress_ratio(inv, il) == 4,
    "hca": lambda inv, il, d: _compress_ratio(inv, il) == 128,
    "hash": lambda inv, il, d: il < _meta_int(inv, Dsv4Keys.HASH_LAYER_COUNT),
    # glm5-next: hyper-connections on trunk layers; glm5-next, glm-dsa: a full indexer per
    # indexer.types (the MTP block's too), else the last full layer's top-k shared
    "trunk": lambda inv, il, d: il < inv.n_layers - inv.n_layers_nextn,
    "indexer_full": lambda inv, il, d: _full_indexer(inv, il),
    "indexer_shared": lambda inv, il, d: not _full_indexer(inv, il),
    "no_hash": lambda inv, il, d: il >= _meta_int(inv, Dsv4Keys.HASH_LAYER_COUNT),
}


def _full_indexer(inventory: Inventory, il: int) -> bool:
    """glm5-next, glm-dsa: ``is_indexer_full(il)`` (``Attention.indexer_full``), or an MTP
    layer (its block keeps a full indexer)."""
    full = inventory.attention.indexer_full
    return il >= len(full) or full[il]


def _is_trunk_moe(inventory: Inventory, il: int, dims: Mapping[str, int]) -> bool:
    n_layer = inventory.n_layers - inventory.n_layers_nextn
    return dims["X"] > 0 and inventory.experts.leading_dense_layers <= il < n_layer


def _compress_ratio(inventory: Inventory, il: int) -> int:
    """deepseek4: layer il's ``{arch}.attention.compress_ratios`` entry (0 when absent)."""
    value = inventory.metadata.get(Dsv4Keys.COMPRESS_RATIOS.format(arch=inventory.architecture))
    if isinstance(value, list) and il < len(value) and isinstance(value[il], int):
        return value[il]
    return 0


def _layer_ff(inventory: Inventory, il: int) -> int:
    """Layer il's ``feed_forward_length`` (an array or one value for every layer)."""
    key = Keys.LLM.FEED_FORWARD_LENGTH.format(arch=inventory.architecture)
    value = inventory.metadata.get(key, 0)
    if isinstance(value, list):
        value = value[il] if il < len(value) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _is_swa(inventory: Inventory, il: int) -> bool:
    layers = inventory.attention.swa_layers
    return il < len(layers) and layers[il]


def _layer_n_ff(inventory: Inventory, il: int) -> int:
    widths = inventory.n_ff
    return widths[il] if il < len(widths) else 0


def _has_router(inventory: Inventory, il: int) -> bool:
    """gemma4.cpp: a layer is MoE when the file has its router (TENSOR_NOT_REQUIRED)."""
    name = f"blk.{il}.ffn_gate_inp.weight"
    return any(t.name == name for t in inventory.tensors)


def _is_step_moe(inventory: Inventory, il: int) -> bool:
    """llama4.cpp: ``n_moe_layer_step > 0 && (i + 1) % n_moe_layer_step == 0``."""
    step = _meta_int(inventory, Keys.LLM.INTERLEAVE_MOE_LAYER_STEP)
    return step > 0 and (il + 1) % step == 0


def _is_recurrent(inventory: Inventory, il: int) -> bool:
    layers = inventory.recurrent.recurrent_layers if inventory.recurrent else ()
    return il < len(layers) and layers[il]


# --- checking ----------------------------------------------------------------------------------


def check_loadable(inventory: Inventory) -> None:
    """Raise ``BadInput`` (one line) if llama.cpp's loader would refuse ``inventory``, or if
    its hyperparameters are outside sane ranges; return quietly otherwise."""
    source = inventory.source

    def bad(problem: str) -> BadInput:
        return BadInput(f"{source}: {problem}")

    if not inventory.tensors:
        raise bad("holds no tensors (a vocabulary-only or damaged file?), not a model to run")
    _check_hparams(inventory, bad)
    family = FAMILIES.get(inventory.architecture)
    if family is None:
        _check_generic(inventory, bad)
        return
    problems = _Problems(inventory, family)
    problems.check()
    if problems.found:
        more = len(problems.found) - 1
        tail = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
        raise bad(
            f"{problems.found[0]}; llama.cpp's {inventory.architecture} loader "
            f"({family.source}) refuses this file{tail}"
        )


class _Problems:
    """Every problem of one model against its family's table, in llama.cpp's order."""

    def __init__(self, inventory: Inventory, family: Family) -> None:
        self.inventory = inventory
        self.family = family
        self.tensors: dict[str, Tensor] = {t.name: t for t in inventory.tensors}
        self.dims = _dimensions(inventory)
        self.found: list[str] = []

    def check(self) -> None:
        for need in self.family.globals:
            if all(_CONDITIONS[c](self.inventory, 0, self.dims) for c in need.when):
                self._need(need, None, required=not need.optional)
        inv, family = self.inventory, self.family
        n_layer = inv.n_layers - inv.n_layers_nextn
        probe = f"blk.{n_layer}.nextn.eh_proj.weight"
        mtp_optional = family.mtp_probe and probe not in self.tensors
        for il in range(inv.n_layers if family.all_layers else n_layer):
            optional = mtp_optional and il >= n_layer
            for item in family.layer:
                if not all(_CONDITIONS[c](inv, il, self.dims) for c in item.when):
                    continue
                if isinstance(item, Either):
                    self._either(item, il, optional or il >= n_layer)
                else:
                    self._need(item, il, required=not (item.optional or optional))

    def _either(self, item: Either, il: int, optional: bool) -> None:
        fused_present = item.fused[0].name(il) in self.tensors
        for need in item.fused if fused_present else item.separate:
            self._need(need, il, required=not (need.optional or optional or fused_present))

    def _need(self, need: Need, layer: int | None, *, required: bool) -> None:
        name = need.name(layer)
        tensor = self.tensors.get(name)
        if tensor is None:
            if required:
                self.found.append(f"tensor {name!r} is missing")
            return
        expected = tuple(dimension_value(dim, self.dims) for dim in need.shape)
        if _padded(tensor.shape) != _padded(expected):
            self.found.append(
                f"tensor {name!r} has shape {_shape(tensor.shape)}, but the hyperparameters "
                f"make it {_shape(expected)} ({_explain(need.shape, self.dims)})"
            )


def _padded(shape: Sequence[int]) -> tuple[int, ...]:
    """ggml_nelements-style comparison: trailing dimensions of 1 do not count."""
    return (*shape, *(1,) * (4 - len(shape)))


def _shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


_DIM_NAMES = {
    "E": "n_embd", "V": "n_vocab", "H": "n_head", "HKV": "n_head_kv", "HK": "head_k",
    "HV": "head_v", "ROT": "n_rot", "F": "n_ff", "FE": "n_ff_exp", "FSHEXP": "n_ff_shexp",
    "FSHEXP_OR_F": "n_ff_shexp", "FSHEXP_OR_FE": "n_ff_shexp",
    "X": "n_expert", "S": "n_expert_shared",
    "QL": "q_lora_rank", "KVL": "kv_lora_rank", "KMLA": "key_length_mla",
    "VMLA": "value_length_mla", "DS": "ssm_d_state", "NG": "ssm_n_group", "DT": "ssm_dt_rank",
    "DC": "ssm_d_conv", "KDA": "kda_head_dim",
    "HKS": "head_k_swa", "HKVG": "n_head_kv_global", "HKVS": "n_head_kv_swa",
    "PLE": "n_embd_per_layer", "NL": "n_layer", "HG": "n_head_full", "HS": "n_head_swa",
    "IH": "indexer_n_head", "IK": "indexer_head_size",
    "HC": "hc_mult", "HCD": "hc_mult*n_embd", "HCM": "hc_mix_dim", "OG": "o_groups",
    "OL": "o_lora_rank", "HKG": "n_head*head_k/o_groups", "XU": "n_expert_used",
    "KP": "indexer_kpool",
}  # fmt: skip


def _explain(shape: Sequence[str], dims: Mapping[str, int]) -> str:
    """The dimensions a shape used, with their values: ``n_embd 64, n_head 4, head_k 16``."""
    used: dict[str, int] = {}
    for expression in shape:
        for _, term in _terms(expression):
            for factor in term.partition("/")[0].split("*"):
                if not factor.isdigit():
                    used[_DIM_NAMES[factor]] = dims[factor]
    return ", ".join(f"{name} {value}" for name, value in used.items())


def _check_generic(inventory: Inventory, bad: Callable[[str], BadInput]) -> None:
    """What every llama.cpp model has: a token embedding n_embd wide (bar a few), and
    tensors in every layer."""
    arch = inventory.architecture
    tensors = {t.name: t for t in inventory.tensors}
    embedding = tensors.get("token_embd.weight")
    if embedding is None and arch not in _EMBEDDING_OPTIONAL:
        raise bad(f"tensor 'token_embd.weight' is missing; every {arch} model has one")
    if (
        embedding is not None
        and arch not in _EMBEDDING_OTHER_WIDTH
        and embedding.shape[0] != inventory.n_embd
    ):
        raise bad(
            f"tensor 'token_embd.weight' has shape {_shape(embedding.shape)}, but "
            f"embedding_length is {inventory.n_embd}"
        )
    filled = {t.layer for t in inventory.tensors if t.layer is not None}
    n_layer = inventory.n_layers - inventory.n_layers_nextn
    empty = [il for il in range(n_layer) if il not in filled]
    if empty:
        raise bad(
            f"layer {empty[0]} has no tensors, but block_count is {inventory.n_layers}"
            + (f" ({len(empty)} layers are empty)" if len(empty) > 1 else "")
        )
