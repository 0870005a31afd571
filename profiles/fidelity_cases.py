"""The launch grids fit's memory model is checked on against the real llama-server.

A ``Case`` is one llama-server command line on one model: the real gemma-3-270m, a synthetic
GGUF of an architecture (``solver.gguf.synthetic``), or a catalogue model shrunk to a
miniature; on the CPU alone or with two ``ggml-rpc-server`` devices. ``CI_GRID`` is what
``tests/test_memory_fidelity.py`` asserts; ``GEMMA_CPU``, ``GEMMA_RPC``, ``SYNTHETIC``,
``SYNTHETIC_CPU`` and ``MINIATURE`` are the launches of ``tests/test_memory_llama.py`` and
``tests/test_memory_synthetic.py``; ``benchmarks/memory_fidelity.py`` runs them all
(``all_cases()``) and reports the worst rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from profiles.server import RpcServers
from solver.gguf.blueprint import Blueprint, RopeScaling
from solver.gguf.catalogue import catalogue_blueprint, catalogue_names
from solver.gguf.synthetic import miniature, tiny_blueprint

GEMMA = "gemma-3-270m"
SYNTHETIC_ARCHS = (
    "llama", "qwen3", "qwen3moe", "gemma3", "deepseek2", "gpt-oss", "glm4moe", "qwen35moe",
    "qwen35", "qwen3next", "nemotron_h_moe",
)  # fmt: skip
# llama4: three chunked layers with RoPE, then a global one without (plus the temperature scale)
SYNTHETIC_ARCHS += ("llama4",)
# gemma4 (E2B-like: per-layer embeddings, layers sharing KV, K as V on global layers)
SYNTHETIC_ARCHS += ("gemma4",)
# minimax-m2: Q/K normed over all heads, half-rotary heads, sigmoid routing with selection bias
SYNTHETIC_ARCHS += ("minimax-m2",)
# mistral4: deepseek2's MLA graph, fused gate_up experts, yarn rope, every layer MoE
SYNTHETIC_ARCHS += ("mistral4",)
# deepseek32: deepseek2's MLA over the lightning indexer's top-k cells (its own K cache)
SYNTHETIC_ARCHS += ("deepseek32",)
# glm-dsa: deepseek32's DSA with "shared" indexer layers (no indexer, no indexer cache)
SYNTHETIC_ARCHS += ("glm-dsa",)
# kimi-linear: KDA layers with conv and delta-rule state between MLA layers without RoPE
SYNTHETIC_ARCHS += ("kimi-linear",)
# deepseek4: hyper-connections, a raw sliding-window cache beside K caches of 4- and 128-fold
# compressed positions, the indexer's, and their compressors' states
SYNTHETIC_ARCHS += ("deepseek4",)
# qwen3vl / qwen3vlmoe: IMRoPE positions, input rows 4 x n_embd wide, 3 deepstack layers
SYNTHETIC_ARCHS += ("qwen3vl", "qwen3vlmoe")
# step35: full (0, 4) and sliding layers of two head counts, the head-wise attention gate,
# rope factors on full layers only, a shared expert; MTP-layer tensors loaded though unused
SYNTHETIC_ARCHS += ("step35",)
# glm5-next: KDA state, the NoPE MLA cache and the k-pool indexer's cache on its full-indexer
# layers, hyper-connections
SYNTHETIC_ARCHS += ("glm5-next",)
# minimax-m3: MSA block-sparse attention with its indexer's own K/V cache past a dense layer
# (flash attention and one sequence or per-sequence streams; dense attention otherwise)
SYNTHETIC_ARCHS += ("minimax-m3",)
# mimo2: full and sliding layers with their own KV heads, V narrower than K, sinks, value scale
SYNTHETIC_ARCHS += ("mimo2",)
# seed_oss: heads wider than n_embd / n_head, Q/K/V biases, attn_post_norm as the FFN norm
SYNTHETIC_ARCHS += ("seed_oss",)
# smollm3: llama without RoPE on layers 3, 7, ... (tied embeddings)
SYNTHETIC_ARCHS += ("smollm3",)
# glm4: sandwich norms, gate and up fused (one GLU over ffn_up's halves), half-rotary heads
SYNTHETIC_ARCHS += ("glm4",)
# olmo2 (OLMo 3's layout): post-norms only, full-width Q/K norms, sliding windows but every 4th
SYNTHETIC_ARCHS += ("olmo2",)
# lfm2 / lfm2moe: gated short convolutions with their conv state between attention layers
SYNTHETIC_ARCHS += ("lfm2", "lfm2moe")
# exaone4 (the 1.2B's layout): post-norms only, per-head Q/K norms before RoPE, rope factors
SYNTHETIC_ARCHS += ("exaone4",)
# granitehybrid: Mamba-2 layers, NoPE attention, experts plus a shared expert, Granite's scales
SYNTHETIC_ARCHS += ("granitehybrid",)
# ernie4_5-moe: a dense first layer, softmax experts with the selection bias, a shared expert
SYNTHETIC_ARCHS += ("ernie4_5-moe",)
# cohere2: parallel attention and FFN after a LayerNorm, NoPE global layers, scaled logits
SYNTHETIC_ARCHS += ("cohere2",)
# dots1: multi-head attention with Q/K norms, a dense first layer, sigmoid experts and a shared
SYNTHETIC_ARCHS += ("dots1",)
# bailingmoe2: the fused QKV with Q/K norms, a dense first layer, sigmoid experts and a shared
SYNTHETIC_ARCHS += ("bailingmoe2",)
# apertus: per-head Q/K norms before RoPE, rope factors, an ungated xIELU FFN
SYNTHETIC_ARCHS += ("apertus",)
# hunyuan-moe: Q/K norms after RoPE, experts beside a shared MLP built first
SYNTHETIC_ARCHS += ("hunyuan-moe",)
# phi3: fused QKV and gate/up, LongRoPE factors duplicated on every layer's device
SYNTHETIC_ARCHS += ("phi3",)
SYNTHETIC_LAYERS = 6
LLAMA_ROPE = "llama-rope"  # llama with llama3 rope scaling: a rope_freqs tensor
GLM4_MROPE = "glm4-mrope"  # glm4 with M-RoPE sections, as GLM-4.1V's text tower
OLMO2_FULL = "olmo2-full"  # olmo2 without sliding windows, as OLMo 2
EXAONE4_SWA = "exaone4-swa"  # exaone4 with sliding windows (64 layers), as the 32B
# granitehybrid as Bamba converts: attention with RoPE (rope.scaling.finetuned), a dense FFN
GRANITE_BAMBA = "granitehybrid-bamba"
MINI = "mini:"  # "mini:<catalogue model>:<quant>": the catalogue blueprint as a miniature


@dataclass(frozen=True)
class Case:
    """One launch. ``model``: GEMMA; an architecture (the 2-layer ``tiny_blueprint``);
    ``<arch>/N`` or ``llama-rope/6`` (N layers); or ``mini:<catalogue model>:<quant>``.
    ``@0``/``@1`` in ``args`` stand for the buffer type of the first/second RPC server.
    ``prompt``: tokens of one prompt the server serves before it stops (0: none), its
    compute buffers then held to fit's peak (``profiles.fidelity``)."""

    model: str
    args: tuple[str, ...]
    rpc: bool = False
    name: str = ""
    prompt: int = 0

    @property
    def id(self) -> str:
        where = "rpc" if self.rpc else "cpu"
        served = f":served {self.prompt}" if self.prompt else ""
        return f"{self.model}:{self.name or ' '.join(self.args)}{served}:{where}"

    @property
    def prompts(self) -> tuple[int, ...]:
        return (self.prompt,) if self.prompt else ()

    def argv(self, rpc: RpcServers | None) -> list[str]:
        """The llama-server arguments, RPC buffer types filled in."""
        if rpc is None:
            return list(self.args)
        names = {f"@{index}": rpc.buffer_type(index) for index in range(rpc.count)}
        out = []
        for arg in self.args:
            for placeholder, buffer_type in names.items():
                arg = arg.replace(placeholder, buffer_type)
            out.append(arg)
        return out


def model_blueprint(model: str) -> tuple[Blueprint, str] | None:
    """(blueprint, quant) of a synthetic case model; None for the real gemma-3-270m."""
    if model == GEMMA:
        return None
    if model.startswith(MINI):
        name, _, quant = model.removeprefix(MINI).partition(":")
        return miniature(catalogue_blueprint(name)), quant
    arch, _, layers = model.partition("/")
    variant_of = {
        LLAMA_ROPE: "llama",
        GLM4_MROPE: "glm4",
        OLMO2_FULL: "olmo2",
        EXAONE4_SWA: "exaone4",
        GRANITE_BAMBA: "granitehybrid",
    }
    blueprint = tiny_blueprint(variant_of.get(arch, arch))
    update: dict[str, object] = {}
    if layers:
        # a tiny blueprint named apart from its architecture keeps that name: llama-vocab.cpp
        # reads it (phi3's must not contain "phi3")
        renamed = blueprint.name != f"tiny-{blueprint.architecture.value}"
        stem = blueprint.name.removeprefix("tiny-") if renamed else arch
        update = {"n_layer": int(layers), "name": f"fidelity-{stem}-{layers}l"}
        if blueprint.layer_pattern:  # nemotron_h_moe: the tiny pattern repeated
            update["layer_pattern"] = (blueprint.layer_pattern * int(layers))[: int(layers)]
        if blueprint.compress_ratios:  # deepseek4: the tiny ratios repeated
            update["compress_ratios"] = (blueprint.compress_ratios * int(layers))[: int(layers)]
        if blueprint.indexer_types:  # glm5-next, glm-dsa: the tiny full/shared indexers repeated
            update["indexer_types"] = (blueprint.indexer_types * int(layers))[: int(layers)]
        if blueprint.swa_layer_pattern:  # mimo2: the tiny pattern repeated
            pattern = blueprint.swa_layer_pattern
            update["swa_layer_pattern"] = (pattern * int(layers))[: int(layers)]
    if arch == LLAMA_ROPE:
        update["rope_scaling"] = RopeScaling(
            type="llama3", factor=8.0, original_context_length=2048
        )
    if arch == GLM4_MROPE:  # the 16 rotary pairs split as GLM-4.1V's [8, 12, 12, 0] of 32
        update["rope_sections"] = (4, 6, 6, 0)
    if arch == OLMO2_FULL:
        update["sliding_window"] = 0
    if arch == EXAONE4_SWA:
        update["sliding_window"] = 128
    if arch == GRANITE_BAMBA:
        update |= {"use_rope": True, "n_expert": 0, "n_expert_used": 0, "n_ff": 512,
                   "n_ff_exp": 0, "n_ff_shexp": 0}  # fmt: skip
    return blueprint.model_copy(update=update), "Q4_K_M"


# --- the cases ------------------------------------------------------------------------------


def _ci_grid() -> list[Case]:
    """CPU and RPC placements of gemma and of 6-layer synthetic models of every architecture:
    FA on/off, quantized KV, -ub/-b, slots, -nkvo, -ot of FFN and experts, rope_freqs."""
    six = f"/{SYNTHETIC_LAYERS}"
    split = "-ngl 99 -ts 1,1"
    rows = [
        (GEMMA, False, "-c 1024 -np 1"),
        (GEMMA, False, "-c 4096 -np 1 -fa off"),
        (GEMMA, False, "-c 2048 -ub 128 -b 256 -np 1"),
        (GEMMA, False, "-c 4096 -np 4"),
        (GEMMA, False, "-c 4096 -np 2 -fa off -ub 64"),
        (GEMMA, False, "-c 2048 -np 1 -ctk q8_0 -ctv q8_0 -fa on"),
        (GEMMA, False, "-c 8192 -np 1 -ub 1024 -b 2048"),
        (GEMMA, True, "-c 1024 -np 1 -ngl 10 -ts 1,1"),
        (GEMMA, True, f"-c 2048 -np 1 {split}"),
        (GEMMA, True, f"-c 2048 -np 1 {split} -fa off"),
        (GEMMA, True, r"-c 2048 -np 1 -ngl 12 -ts 1,2 -ot blk\.1[45]\.ffn_.*=CPU"),
        (GEMMA, True, "-c 2048 -np 2 -ngl 99 -ts 3,1 -nkvo"),
        (GEMMA, True, f"-c 4096 -np 4 {split} -ctk q8_0"),
    ]
    for arch in SYNTHETIC_ARCHS:
        rows += [
            (arch + six, False, "-c 1024 -np 1"),
            (arch + six, True, f"-c 4096 -np 1 {split} -fa off"),
            # every routed expert on the CPU
            (arch + six, True, "-c 2048 -np 2 -ngl 5 -ts 2,1 -ot exps=CPU -ub 256"),
        ]
    rows += [
        (LLAMA_ROPE + six, True, "-c 2048 -np 1 -ngl 4 -ts 1,1"),
        (LLAMA_ROPE + six, True, f"-c 2048 -np 1 {split}"),
        (LLAMA_ROPE + six, True, rf"-c 2048 {split} -ot blk\.2\.ffn_.*=CPU"),
        ("deepseek2" + six, True, f"-c 4096 -np 1 {split} -ctk q8_0 -ctv q8_0 -fa on"),
        ("deepseek2" + six, True, rf"-c 2048 {split} -ot blk\.[34]\.ffn_.*_exps=CPU -ub 1024"),
        ("gpt-oss" + six, True, "-c 4096 -np 4 -ngl 99 -ts 2,1"),
        ("qwen3moe" + six, True, "-c 8192 -np 3 -ngl 4 -ts 1,1 -fa off -ub 128"),
        ("gemma3" + six, True, "-c 4096 -np 2 -kvu -ngl 99 -ts 1,3 -ctk q4_0 -ctv q4_0"),
    ]
    return [Case(model, tuple(args.split()), rpc=rpc) for model, rpc, args in rows]


def _named(model: str, cases: dict[str, str], rpc: bool) -> list[Case]:
    return [Case(model, tuple(args.split()), rpc=rpc, name=name) for name, args in cases.items()]


CI_GRID = _ci_grid()

_GEMMA_CPU = {
    "defaults": "-c 1024",
    "padded-ctx": "-c 3000 -b 256 -ub 128",
    "slots-not-unified": "-c 4096 -np 3 --no-kv-unified",
    "slots-unified": "-c 2048 -np 2 -kvu",
    "q8-kv-fa": "-c 2048 -ctk q8_0 -ctv q8_0 -fa on",
    "fa-off-q4k": "-c 1024 -fa off -ctk q4_0",
    "swa-full": "-c 2048 --swa-full",
    "no-mmap": "-c 1024 --load-mode none",
    "ot-to-cpu-no-mmap": r"-c 1024 --load-mode none -ot blk\.1[0-7]\.=CPU",
    # MEASURE_ARGS pass --fit off first; a later --fit on wins (the last value is used)
    "ctx-from-model-fit-on": "--fit on",
    "ctx-from-model-fit-on-streams": "--fit on -np 2 --no-kv-unified",
    "ctx-from-model-fit-off-streams": "-np 2 --no-kv-unified",
    "per-slot-pool": "--kv-unified-per-slot 1000 -np 3",
}
_GEMMA_RPC = {
    "ngl10-even": "-c 1024 -ngl 10 -ts 1,1",
    "all-3to1-q8": "-c 2048 -ngl all -ts 3,1 -ctk q8_0 -fa on",
    "ot-ffn-cpu-nkvo": r"-c 1024 -ngl 99 -ts 1,2 -ot blk\.1[0-7]\.ffn_.*=CPU -nkvo",
    "no-mmap-slots": "-c 2048 -ngl 12 -ts 2,1 --load-mode none -np 3 --no-kv-unified",
    "sm-none-mg1": "-c 1024 -ngl 99 -sm none -mg 1",
    "ub-swa-full": "-c 4096 -ngl 7 -ts 1,3 -ub 256 --swa-full",
    "token-embd-to-rpc1": "-c 1024 -ngl 5 -ts 1,1 -ot token_embd=@1",
}
GEMMA_CPU = _named(GEMMA, _GEMMA_CPU, rpc=False)
GEMMA_RPC = _named(GEMMA, _GEMMA_RPC, rpc=True)

SYNTHETIC = [
    case
    for arch, cases in {
        "qwen3moe": {
            "split": "-c 1024 -ngl 99 -ts 1,1",
            "cpu-moe": "-c 2048 -ngl 99 -ts 2,1 --cpu-moe",
            "n-cpu-moe-no-mmap": "-c 1024 -ngl 99 -ts 1,1 --n-cpu-moe 1 --load-mode none",
            "exps-to-rpc1": "-c 1024 -ngl 1 -ts 1,1 -ot exps=@1 -ctk q8_0 -fa on",
        },
        "deepseek2": {
            "split": "-c 1024 -ngl 99 -ts 1,1",
            "mla-q8-cpu-moe": "-c 2048 -ngl 99 -ts 1,3 -ctk q8_0 -ctv q8_0 -fa on --cpu-moe",
            "fa-off-slots": "-c 2048 -ngl 2 -ts 1,1 -fa off -np 2 --no-kv-unified",
        },
        # an MTP layer (skipped, but for its exp_probs_b), the indexer cache beside MLA's
        "deepseek32/6": {
            "split": "-c 1024 -ngl 99 -ts 1,1",
            "q8-cpu-moe": "-c 2048 -ngl 99 -ts 1,3 -ctk q8_0 -ctv q8_0 -fa on --cpu-moe",
            "fa-off-slots": "-c 2048 -ngl 3 -ts 1,1 -fa off -np 2 --no-kv-unified",
            "nkvo-ub": "-c 4096 -np 2 -ngl 99 -ts 2,1 -nkvo -ub 128",
        },
        # indexers full, shared, shared, full, shared, shared: a shared layer on another device
        # than the full layer whose top-k it reads (-ts 1,3, -ngl 3), on the host's (-nkvo)
        "glm-dsa/6": {
            "split": "-c 1024 -ngl 99 -ts 1,1",
            "q8-cpu-moe": "-c 2048 -ngl 99 -ts 1,3 -ctk q8_0 -ctv q8_0 -fa on --cpu-moe",
            "fa-off-slots": "-c 2048 -ngl 3 -ts 1,1 -fa off -np 2 --no-kv-unified",
            "nkvo-ub": "-c 4096 -np 2 -ngl 99 -ts 2,1 -nkvo -ub 128",
        },
        # ratios 0, 4, 128, 4, 0, 4: every DSV4 cache and state, split at different layers
        "deepseek4/6": {
            "split": "-c 1024 -ngl 99 -ts 1,1",
            "q8-cpu-moe": "-c 2048 -ngl 99 -ts 1,3 -ctk q8_0 -ctv q8_0 -fa on --cpu-moe",
            "fa-off-slots": "-c 2048 -ngl 3 -ts 1,1 -fa off -np 2 --no-kv-unified",
            "nkvo-ub-swa-full": "-c 4096 -np 2 -ngl 99 -ts 2,1 -nkvo -ub 128 --swa-full",
            "slots-unified": "-c 8192 -np 3 -kvu -ngl 4 -ts 1,2",
            # a ubatch under 32 tokens (the graph pins norms to their layers' devices), the
            # compressors and the indexer of two ratio-4 layers on the CPU
            "ub16-cpu-compressors": r"-c 2048 -np 2 -ngl 99 -ts 1,1 -ub 16 "
            r"-ot blk\.[13]\.(attn_compressor|indexer).*=CPU",
            # the soft-max attention of every layer on the CPU beside its KV (-nkvo)
            "nkvo-fa-off": "-c 2048 -np 1 -ngl 99 -ts 2,1 -nkvo -fa off",
        },
        "gpt-oss": {
            "split": "-c 1024 -ngl 99 -ts 1,1",
            "swa-full-ub": "-c 4096 -ngl 99 -ts 1,2 --swa-full -ub 128",
            "slots-cpu-moe": "-c 4096 -ngl 2 -ts 1,1 -np 3 --no-kv-unified --cpu-moe",
        },
        "glm4moe": {
            "mtp-skipped": "-c 1024 -ngl 99 -ts 1,1",
            "first-match": r"-c 1024 -ngl 99 -ts 1,1 -ot blk\.1\.=CPU,blk\.=@0",
        },
        "gemma4/6": {
            "split-fa-off": "-c 4096 -np 2 -ngl 99 -ts 1,1 -fa off",
            "partial-q8": "-c 2048 -np 2 -ngl 4 -ts 2,1 -ctk q8_0 -ctv q8_0 -fa on",
            "swa-full-nkvo": "-c 4096 -ngl 99 -ts 1,2 --swa-full -nkvo",
        },
        # gemma4 dense (31B's layout): global layers with their own KV heads and K as V
        "mini:gemma-4-31b:Q4_K_M": {
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,1 -fa off",
            "swa-full-ub": "-c 4096 -ngl 99 -ts 1,2 --swa-full -ub 128",
            "partial-nkvo": "-c 2048 -np 2 -ngl 3 -ts 1,1 -nkvo",
            "ffn-cpu-q4": r"-c 2048 -ngl 99 -ts 2,1 -ot blk\.[12]\.ffn_.*=CPU -ctk q4_0 -ctv q4_0",
        },
        # global no-rope layers 3 and 7 among chunked ones; dense and MoE layers alternating
        "llama4/8": {
            "split": "-c 1024 -ngl 99 -ts 1,1",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,1 -fa off",
            "swa-full-ub": "-c 4096 -ngl 99 -ts 1,2 --swa-full -ub 128",
            "cpu-moe-q8": "-c 2048 -ngl 99 -ts 2,1 --cpu-moe -ctk q8_0 -ctv q8_0 -fa on",
            "partial-nkvo": "-c 2048 -np 2 -ngl 5 -ts 1,1 -nkvo",
        },
        # two full-attention layers (3, 7) among DeltaNet layers with recurrent state
        "qwen35moe/8": {
            "split": "-c 1024 -ngl 99 -ts 1,1",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,1 -fa off",
            "exps-cpu-ub": "-c 2048 -np 2 -ngl 5 -ts 2,1 -ot exps=CPU -ub 256",
            "nkvo": "-c 2048 -np 2 -ngl 99 -ts 1,1 -nkvo",
            "cpu-moe": "-c 2048 -ngl 99 -ts 2,1 --cpu-moe",
        },
        "qwen35/8": {"partial-q8-fa": "-c 4096 -np 3 -ngl 4 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on"},
        "llama": {"split-q8": "-c 1024 -ngl 99 -ts 3,1 -ctk q8_0 -ctv q8_0 -fa on"},
        "qwen3": {"partial-nkvo": "-c 1024 -ngl 2 -ts 1,1 -nkvo"},
        # qwen3next: qwen35moe's layer pattern, ssm_ba and the repeated Q/K key heads
        "qwen3next/8": {
            "split": "-c 1024 -ngl 99 -ts 1,1",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,1 -fa off",
            "exps-cpu-ub": "-c 2048 -np 2 -ngl 5 -ts 2,1 -ot exps=CPU -ub 256",
            "nkvo-q8": "-c 2048 -np 2 -ngl 99 -ts 1,1 -nkvo -ctk q8_0 -ctv q8_0 -fa on",
        },
        "minimax-m2/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "cpu-moe-ub": "-c 2048 -ngl 99 -ts 2,1 --cpu-moe -ub 128",
            "partial-nkvo": "-c 2048 -np 2 -ngl 5 -ts 1,1 -nkvo",
        },
        # minimax-m3: MSA on 7 layers past the dense first one, with FA on and one sequence
        # or per-sequence streams (a batch graph per stream, a gathering decode graph; -ub 4
        # with 4 streams: one token each, the decode path in both), dense under a unified
        # cache with several sequences
        "minimax-m3/8": {
            "split-q8": "-c 2048 -np 1 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "slots-unified-dense": "-c 4096 -np 4 -kvu -ngl 99 -ts 1,2",
            "cpu-moe-ub": "-c 2048 -np 1 -ngl 99 -ts 2,1 --cpu-moe -ub 128",
            "partial-nkvo-streams": "-c 3072 -np 3 --no-kv-unified -ngl 5 -ts 1,1 -nkvo",
            "ub4-streams": "-c 2048 -np 4 --no-kv-unified -ngl 99 -ts 1,1 -ub 4 -b 4",
        },
        "mistral4/8": {
            "split": "-c 1024 -ngl 99 -ts 1,1",
            "mla-q8-cpu-moe": "-c 2048 -ngl 99 -ts 1,3 -ctk q8_0 -ctv q8_0 -fa on --cpu-moe",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,1 -fa off",
            "partial-nkvo-ub": "-c 2048 -np 2 -ngl 5 -ts 2,1 -nkvo -ub 128",
        },
        # kimi-linear: KDA (0-2, 4-6) and MLA (3, 7) layers, a dense first layer
        "kimi-linear/8": {
            "split": "-c 1024 -ngl 99 -ts 1,1",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,1 -fa off",
            "exps-cpu-ub": "-c 2048 -np 2 -ngl 5 -ts 2,1 -ot exps=CPU -ub 256",
            "nkvo-q8": "-c 2048 -np 2 -ngl 99 -ts 1,1 -nkvo -ctk q8_0 -ctv q8_0 -fa on",
        },
        # qwen3vl: deepstack slices added after layers 0-2, split across devices at 2 / 5
        "qwen3vl/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "partial-nkvo-ub": "-c 2048 -np 2 -ngl 6 -ts 1,1 -nkvo -ub 128",
            "ffn-cpu": r"-c 2048 -ngl 99 -ts 2,1 -ot blk\.[12]\.ffn_.*=CPU",
        },
        "qwen3vlmoe/8": {
            "split": "-c 1024 -ngl 99 -ts 1,1",
            "cpu-moe-q8": "-c 2048 -ngl 99 -ts 2,1 --cpu-moe -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,1 -fa off",
            "partial-nkvo-ub": "-c 2048 -np 2 -ngl 7 -ts 1,2 -nkvo -ub 128",
        },
        # mimo2: full layers 0 and 4 among sliding ones, a dense layer 0, an MTP layer
        "mimo2/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "swa-full-ub": "-c 4096 -ngl 99 -ts 2,1 --swa-full -ub 128",
            "cpu-moe-nkvo": "-c 2048 -np 2 -ngl 6 -ts 1,1 --cpu-moe -nkvo",
        },
        # seed_oss: dense, 128-wide heads of a 256-wide model, biased Q/K/V
        "seed_oss/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "partial-nkvo-ub": "-c 2048 -np 2 -ngl 5 -ts 2,1 -nkvo -ub 128",
            "ffn-cpu": r"-c 2048 -ngl 99 -ts 1,1 -ot blk\.[23]\.ffn_.*=CPU",
        },
        # smollm3: no RoPE on layers 3 and 7, the tied embedding's output copy placed by -ngl
        "smollm3/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "partial-nkvo-ub": "-c 2048 -np 2 -ngl 4 -ts 2,1 -nkvo -ub 128",
            "nope-layers-cpu": r"-c 2048 -ngl 99 -ts 1,1 -ot blk\.[37]\.=CPU",
        },
        # glm4: post-norms pinned to their layers (one-token graphs, full offload)
        "glm4/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "partial-nkvo-ub": "-c 2048 -np 2 -ngl 5 -ts 2,1 -nkvo -ub 128",
            "ffn-cpu": r"-c 2048 -ngl 99 -ts 1,1 -ot blk\.[25]\.ffn_.*=CPU",
            "post-norms-cpu-ub16": r"-c 2048 -ngl 99 -ts 1,1 -ub 16 -ot blk\.[25]\.post_.*=CPU",
        },
        # glm4 with M-RoPE sections: four positions a token
        "glm4-mrope/6": {
            "split": "-c 2048 -ngl 99 -ts 1,1",
            "partial-fa-off-slots": "-c 4096 -np 3 -ngl 3 -ts 1,2 -fa off",
        },
        # olmo2 (OLMo 3): full attention on layers 3 and 7, sliding windows elsewhere
        "olmo2/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "swa-full-ub": "-c 4096 -ngl 99 -ts 2,1 --swa-full -ub 128",
            "partial-nkvo": "-c 2048 -np 2 -ngl 5 -ts 1,1 -nkvo",
            # no attn_norm: the layer's device (the pins' target) is another norm's
            "full-nkvo": "-c 2048 -np 2 -ngl 99 -ts 1,1 -nkvo",
        },
        # exaone4 as the 1.2B: rope factors on every layer
        "exaone4/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "partial-nkvo-ub": "-c 2048 -np 2 -ngl 5 -ts 2,1 -nkvo -ub 128",
            "full-nkvo": "-c 2048 -np 2 -ngl 99 -ts 1,1 -nkvo",
        },
        # exaone4 as the 32B: 64 layers, sliding windows on three in four, NoPE global layers
        "exaone4-swa/64": {
            "cpu": "-c 1024",
            "split": "-c 2048 -ngl 99 -ts 1,1",
            "partial-fa-off-slots": "-c 4096 -np 3 -ngl 40 -ts 1,2 -fa off",
            "swa-full-ub": "-c 2048 -ngl 99 -ts 2,1 --swa-full -ub 128",
        },
        # cohere2: global layers 3 and 7 without RoPE among sliding ones
        "cohere2/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "swa-full-ub": "-c 4096 -ngl 99 -ts 2,1 --swa-full -ub 128",
            "partial-nkvo": "-c 2048 -np 2 -ngl 5 -ts 1,1 -nkvo",
        },
        "hunyuan-moe/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "cpu-moe-ub": "-c 2048 -ngl 99 -ts 2,1 --cpu-moe -ub 128",
            "partial-nkvo": "-c 2048 -np 2 -ngl 5 -ts 1,1 -nkvo",
        },
        "apertus/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "partial-nkvo-ub": "-c 2048 -np 2 -ngl 5 -ts 2,1 -nkvo -ub 128",
            "ffn-cpu": r"-c 2048 -ngl 99 -ts 1,1 -ot blk\.[25]\.ffn_.*=CPU",
        },
        "bailingmoe2/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "cpu-moe-ub": "-c 2048 -ngl 99 -ts 2,1 --cpu-moe -ub 128",
            "partial-nkvo": "-c 2048 -np 2 -ngl 5 -ts 1,1 -nkvo",
            "exps-cpu": r"-c 2048 -ngl 99 -ts 1,1 -ot blk\.[25]\.ffn_.*_exps=CPU",
        },
        "dots1/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "cpu-moe-ub": "-c 2048 -ngl 99 -ts 2,1 --cpu-moe -ub 128",
            "partial-nkvo": "-c 2048 -np 2 -ngl 5 -ts 1,1 -nkvo",
        },
        "ernie4_5-moe/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "cpu-moe-ub": "-c 2048 -ngl 99 -ts 2,1 --cpu-moe -ub 128",
            "partial-nkvo": "-c 2048 -np 2 -ngl 5 -ts 1,1 -nkvo",
        },
        # phi3: the long factors past the original 2048 positions, the short ones within
        "phi3/8": {
            "split-q8-long": "-c 4096 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "partial-nkvo-ub": "-c 2048 -np 2 -ngl 5 -ts 2,1 -nkvo -ub 128",
            "ffn-cpu": r"-c 2048 -ngl 99 -ts 1,1 -ot blk\.[25]\.ffn_.*=CPU",
        },
        # olmo2 as OLMo 2: one cache, no window
        "olmo2-full/6": {
            "split": "-c 2048 -ngl 99 -ts 1,1",
            "partial-fa-off-slots": "-c 4096 -np 3 -ngl 3 -ts 1,2 -fa off",
            "ffn-cpu-q8": r"-c 2048 -ngl 99 -ts 2,1 -ot blk\.[14]\.ffn_.*=CPU -ctk q8_0 -ctv q8_0",
        },
        # step35: full attention on layers 0 and 4, sliding (twice the heads) elsewhere
        "step35/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "cpu-moe-ub": "-c 2048 -ngl 99 -ts 2,1 --cpu-moe -ub 128",
            "partial-nkvo": "-c 2048 -np 2 -ngl 5 -ts 1,1 -nkvo",
        },
        # glm5-next: KDA (0, 2, 4-7) and MLA (1: full indexer, 3: shared) layers, a dense
        # first layer, an MTP layer
        "glm5-next/8": {
            "split": "-c 1024 -ngl 99 -ts 1,1",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,1 -fa off",
            "exps-cpu-ub": "-c 2048 -np 2 -ngl 5 -ts 2,1 -ot exps=CPU -ub 256",
            "nkvo-q8": "-c 2048 -np 2 -ngl 99 -ts 1,1 -nkvo -ctk q8_0 -ctv q8_0 -fa on",
            # layers 0-1 on the CPU: llama.cpp's probe disables the fused hyper-connection
            # post (layer 1's is scheduled on RPC0)
            "split-at-mla": "-c 2048 -np 1 -ngl 7 -ts 1,2 --no-kv-unified",
            # -ub 16 or less: the indexer's selected latents gathered (both reserve graphs),
            # -ub 17: the scatter path's mask
            "ub1-gather-nkvo": "-c 2048 -np 1 -ngl 99 -ts 1,1 -ub 1 -nkvo",
            "ub4-gather-slots": "-c 4096 -np 3 -ngl 99 -ts 1,2 -ub 4 --no-kv-unified",
            "ub16-gather-partial": "-c 2048 -np 2 -ngl 6 -ts 2,1 -ub 16 -fa off",
            "ub17-scatter": "-c 2048 -np 2 -ngl 99 -ts 1,1 -ub 17",
        },
        # lfm2: short-convolution layers (0, 1, 3, 4, 6, 7) and attention layers (2, 5)
        "lfm2/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "partial-nkvo-ub": "-c 2048 -np 2 -ngl 5 -ts 1,1 -nkvo -ub 128",
            "ffn-cpu": r"-c 2048 -ngl 99 -ts 2,1 -ot blk\.[12]\.ffn_.*=CPU",
            # -fa auto with the KV cache on the CPU: llama.cpp's probe finds flash attention
            # scheduled on the CPU, not on its layer's device, and turns it off
            "nkvo-fa-auto": "-c 2048 -np 1 -ngl 99 -ts 1,1 -nkvo",
        },
        # granitehybrid: Mamba-2 layers (0, 1, 3-5, 7) and NoPE attention layers (2, 6)
        "granitehybrid/8": {
            "split-q8": "-c 2048 -ngl 99 -ts 1,1 -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,2 -fa off",
            "cpu-moe-ub": "-c 2048 -np 2 -ngl 99 -ts 2,1 --cpu-moe -ub 128",
            "partial-nkvo": "-c 2048 -np 2 -ngl 5 -ts 1,1 -nkvo",
        },
        # granitehybrid as Bamba: RoPE on the attention layers (2, 5), dense FFNs
        f"{GRANITE_BAMBA}/6": {
            "split": "-c 1024 -ngl 99 -ts 1,1",
            "partial-fa-off-slots": "-c 4096 -np 3 -ngl 3 -ts 1,2 -fa off",
            "ffn-cpu-ub": r"-c 2048 -ngl 99 -ts 2,1 -ot blk\.[25]\.ffn_.*=CPU -ub 128",
        },
        # lfm2moe: lfm2's pattern, a dense first layer, then sigmoid-routed experts
        "lfm2moe/8": {
            "split": "-c 1024 -ngl 99 -ts 1,1",
            "cpu-moe-q8": "-c 2048 -ngl 99 -ts 2,1 --cpu-moe -ctk q8_0 -ctv q8_0 -fa on",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,1 -fa off",
            "partial-nkvo-ub": "-c 2048 -np 2 -ngl 6 -ts 1,2 -nkvo -ub 128",
        },
        # nemotron_h_moe: Mamba-2 (0, 4), MoE (1, 3, 5, 7) and attention (2, 6) layers
        "nemotron_h_moe/8": {
            "split": "-c 1024 -ngl 99 -ts 1,1",
            "fa-off-slots": "-c 4096 -np 4 -ngl 99 -ts 1,1 -fa off",
            "exps-cpu-ub": "-c 2048 -np 2 -ngl 5 -ts 2,1 -ot exps=CPU -ub 256",
            "nkvo-q8": "-c 2048 -np 2 -ngl 99 -ts 1,1 -nkvo -ctk q8_0 -ctv q8_0 -fa on",
            "nkvo-fa-off": "-c 2048 -np 1 -ngl 99 -ts 1,1 -nkvo -fa off",
        },
    }.items()
    for case in _named(arch, cases, rpc=True)
]


# the same launches on the CPU alone (one compute buffer, no splits to place)
SYNTHETIC_CPU = _named(
    "glm5-next/8",
    {
        "ub1-gather": "-c 1024 -np 1 -ub 1",
        "ub4-gather-q8": "-c 2048 -np 2 -ub 4 -ctk q8_0 -ctv q8_0 -fa on",
        "ub16-gather-slots": "-c 4096 -np 3 -ub 16 --no-kv-unified",
        "ub17-scatter": "-c 2048 -np 1 -ub 17 -fa off",
    },
    rpc=False,
)
# Served launches: one prompt of n_ctx - 1 tokens, then the compute buffers as serving left
# them against fit's peak. minimax-m3's MSA graphs span the positions cached (256 at
# startup); with -ub 341 the prompt's last ubatch is a whole one at a full context, the case
# fit's peak prices, so the peak is reached exactly; with two per-sequence streams one
# sequence's ubatch outgrows the two-stream reserve graph; a unified cache of two sequences
# runs dense attention (no growth). The default -ub 512 case's last ubatch has 511 tokens.
SERVED_GROWTH = [
    Case("minimax-m3/8", tuple(args.split()), rpc=rpc, name=name, prompt=prompt)
    for name, rpc, args, prompt in (
        ("full-ubatch", False, "-c 1024 -np 1 -b 341 -ub 341", 1023),
        ("split-full-ubatch", True, "-c 1024 -np 1 -ngl 99 -ts 1,1 -b 341 -ub 341", 1023),
        ("streams-one-seq", True, "-c 2048 -np 2 --no-kv-unified -ngl 99 -ts 1,1 -b 341 -ub 341",
         1023),
        ("unified-dense", True, "-c 2048 -np 2 -kvu -ngl 99 -ts 1,1", 1023),
    )
]  # fmt: skip
# every synthetic architecture served to a full -c 1024, one sequence and two streams (the
# survey that found minimax-m3's the only buffers that grow while serving), and glm5-next's
# gathering indexer (-ub 16)
SERVED = [
    *SERVED_GROWTH,
    Case("minimax-m3/8", ("-c", "1024", "-np", "1"), name="ub512", prompt=1023),
    Case("glm5-next/8", ("-c", "1024", "-np", "1", "-ub", "16"), name="gather", prompt=1023),
    *(
        Case(f"{arch}/{SYNTHETIC_LAYERS}", tuple(args.split()), name=name, prompt=1023)
        for arch in SYNTHETIC_ARCHS
        for name, args in (("full", "-c 1024 -np 1"), ("streams", "-c 2048 -np 2 --no-kv-unified"))
    ),
]


def catalogue_miniatures() -> list[str]:
    """``mini:<model>:<quant>`` for every catalogue model, in its first listed quant."""
    chosen: dict[str, str] = {}
    for name in catalogue_names():
        model, _, quant = name.partition(":")
        if quant and model not in chosen:
            chosen[model] = quant
    return [f"{MINI}{model}:{quant}" for model, quant in sorted(chosen.items())]


MINIATURE_LAUNCHES = {
    "split": "-c 1024 -ngl 99 -ts 1,1",
    "partial-q8-cpu-moe": "-c 2048 -ngl 2 -ts 1,2 -ctk q8_0 -ctv q8_0 -fa on --cpu-moe",
}
MINIATURE = [
    case for model in catalogue_miniatures() for case in _named(model, MINIATURE_LAUNCHES, rpc=True)
]


def all_cases() -> list[Case]:
    return [*CI_GRID, *GEMMA_CPU, *GEMMA_RPC, *SYNTHETIC, *SYNTHETIC_CPU, *MINIATURE, *SERVED]
