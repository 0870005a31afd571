"""How long one ``estimate_memory`` call takes on a DeepSeek-V3-sized inventory.

The solver evaluates many launch configurations per model, so one evaluation must stay in
the low milliseconds. The inventory is built here from DeepSeek-V3's published shapes (61
layers, 3 dense, 256 routed + 1 shared expert, MLA, one MTP layer; Q4_K/Q6_K-like types):
only the header matters, no file is written. The baseline is a plain sum over the tensor
list, measured in the same run, so the ratio is comparable across machines.

    python -m benchmarks.memory_speed
"""

from __future__ import annotations

import statistics
import time

from solver.device_map import CpuFeatures
from solver.ggml_types import n_bytes
from solver.inventory import Attention, Experts, Inventory, make_tensor
from solver.llama_args import parse_llama_args
from solver.memory import estimate_memory

N_LAYER, N_NEXTN, N_DENSE = 61, 1, 3
N_EMBD, N_VOCAB, N_HEAD = 7168, 129280, 128
N_FF, N_FF_EXP, N_EXPERT = 18432, 2048, 256
Q_LORA, KV_LORA, ROPE, NOPE, V_HEAD = 1536, 512, 64, 128, 128


def deepseek_v3_inventory() -> Inventory:
    tensors = []

    def add(name: str, type_name: str, *shape: int) -> None:
        tensors.append(make_tensor(name, type_name, shape, n_bytes(type_name, shape)))

    add("token_embd.weight", "Q4_K", N_EMBD, N_VOCAB)
    add("output_norm.weight", "F32", N_EMBD)
    add("output.weight", "Q6_K", N_EMBD, N_VOCAB)
    for i in range(N_LAYER + N_NEXTN):
        b = f"blk.{i}"
        add(f"{b}.attn_norm.weight", "F32", N_EMBD)
        add(f"{b}.attn_q_a_norm.weight", "F32", Q_LORA)
        add(f"{b}.attn_kv_a_norm.weight", "F32", KV_LORA)
        add(f"{b}.attn_q_a.weight", "Q4_K", N_EMBD, Q_LORA)
        add(f"{b}.attn_q_b.weight", "Q4_K", Q_LORA, N_HEAD * (NOPE + ROPE))
        add(f"{b}.attn_kv_a_mqa.weight", "Q4_K", N_EMBD, KV_LORA + ROPE)
        add(f"{b}.attn_k_b.weight", "Q8_0", NOPE, KV_LORA, N_HEAD)
        add(f"{b}.attn_v_b.weight", "Q8_0", KV_LORA, V_HEAD, N_HEAD)
        add(f"{b}.attn_output.weight", "Q4_K", N_HEAD * V_HEAD, N_EMBD)
        add(f"{b}.ffn_norm.weight", "F32", N_EMBD)
        if i < N_DENSE:
            add(f"{b}.ffn_gate.weight", "Q4_K", N_EMBD, N_FF)
            add(f"{b}.ffn_up.weight", "Q4_K", N_EMBD, N_FF)
            add(f"{b}.ffn_down.weight", "Q6_K", N_FF, N_EMBD)
            continue
        add(f"{b}.ffn_gate_inp.weight", "F32", N_EMBD, N_EXPERT)
        add(f"{b}.exp_probs_b.bias", "F32", N_EXPERT)
        add(f"{b}.ffn_gate_exps.weight", "Q4_K", N_EMBD, N_FF_EXP, N_EXPERT)
        add(f"{b}.ffn_up_exps.weight", "Q4_K", N_EMBD, N_FF_EXP, N_EXPERT)
        add(f"{b}.ffn_down_exps.weight", "Q6_K", N_FF_EXP, N_EMBD, N_EXPERT)
        add(f"{b}.ffn_gate_shexp.weight", "Q4_K", N_EMBD, N_FF_EXP)
        add(f"{b}.ffn_up_shexp.weight", "Q4_K", N_EMBD, N_FF_EXP)
        add(f"{b}.ffn_down_shexp.weight", "Q6_K", N_FF_EXP, N_EMBD)
        if i >= N_LAYER:
            add(f"{b}.nextn.eh_proj.weight", "Q4_K", 2 * N_EMBD, N_EMBD)
            add(f"{b}.nextn.enorm.weight", "F32", N_EMBD)
            add(f"{b}.nextn.hnorm.weight", "F32", N_EMBD)
            add(f"{b}.nextn.shared_head_norm.weight", "F32", N_EMBD)
    n_layers = N_LAYER + N_NEXTN
    return Inventory(
        source="benchmark:deepseek-v3",
        architecture="deepseek2",
        n_layers=n_layers,
        n_embd=N_EMBD,
        n_vocab=N_VOCAB,
        context_length=163840,
        n_ff=(N_FF,) * N_DENSE + (0,) * (n_layers - N_DENSE),
        attention=Attention(
            n_head=(N_HEAD,) * n_layers,
            n_head_kv=(1,) * n_layers,
            key_length=KV_LORA + ROPE,
            value_length=KV_LORA,
            kv_lora_rank=KV_LORA,
            q_lora_rank=Q_LORA,
            rope_dim=ROPE,
            key_length_mla=NOPE + ROPE,
            value_length_mla=V_HEAD,
        ),
        experts=Experts(count=N_EXPERT, used=8, shared=1, leading_dense_layers=N_DENSE),
        metadata={
            "deepseek2.nextn_predict_layers": N_NEXTN,
            "deepseek2.attention.key_length_mla": NOPE + ROPE,
            "deepseek2.attention.value_length_mla": V_HEAD,
        },
        tensors=tuple(tensors),
    )


def _time(function, repeats: int) -> float:
    """Median seconds per call over ``repeats`` calls (after one warm-up)."""
    function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    inventory = deepseek_v3_inventory()
    cpu = CpuFeatures(avx2=True)
    rules = ",".join(f"blk\\.{i}\\.ffn_.*_exps=CPU" for i in range(3, 40))
    configs = {
        "-ngl 99 -ts 3,2 (two GPUs)": "-c 32768 -ngl 99 -ts 3,2 -fa on",
        "--n-cpu-moe 40": "-c 32768 -ngl 99 -ts 3,2 --n-cpu-moe 40",
        "37 -ot rules": f"-c 32768 -ngl 99 -ts 3,2 -ot {rules}",
    }
    baseline = _time(lambda: sum(t.n_bytes for t in inventory.tensors), 200)
    print(f"inventory: {len(inventory.tensors)} tensors, DeepSeek-V3 shapes")
    print(f"baseline (sum of tensor bytes): {baseline * 1e3:.3f} ms")
    for label, args in configs.items():
        config = parse_llama_args(args.split())

        def evaluate(config=config) -> None:
            estimate_memory(inventory, config, ["CUDA0", "CUDA1"], cpu=cpu)

        seconds = _time(evaluate, 50)
        print(f"estimate_memory [{label}]: {seconds * 1e3:.3f} ms  ({seconds / baseline:.1f}x)")


if __name__ == "__main__":
    main()
