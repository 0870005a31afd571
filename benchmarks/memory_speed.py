"""How long one ``estimate_memory`` call takes on a DeepSeek-V3-sized inventory.

The solver evaluates many launch configurations per model, so one evaluation must stay in
the low milliseconds. The inventory is the catalogue's DeepSeek-V3 Q4_K_M (its real header:
61 layers, 3 dense, 256 routed + 1 shared expert, MLA). The baseline is a plain sum over the
tensor list, measured in the same run, so the ratio is comparable across machines.

    python -m benchmarks.memory_speed
"""

from __future__ import annotations

import statistics
import time

from solver.gguf.catalogue import load_catalogue_entry
from solver.llama.args import parse_llama_args
from solver.llama.device_map import CpuFeatures
from solver.llama.memory import estimate_memory


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
    inventory = load_catalogue_entry("deepseek-v3:Q4_K_M")
    cpu = CpuFeatures(avx2=True)
    rules = ",".join(f"blk\\.{i}\\.ffn_.*_exps=CPU" for i in range(3, 40))  # 37 rules
    configs = {
        "-ngl 99 -ts 3,2 (two GPUs)": "-c 32768 -ngl 99 -ts 3,2 -fa on",
        "--n-cpu-moe 40": "-c 32768 -ngl 99 -ts 3,2 --n-cpu-moe 40",
        "37 -ot rules": f"-c 32768 -ngl 99 -ts 3,2 -ot {rules}",
    }
    baseline = _time(lambda: sum(t.n_bytes for t in inventory.tensors), 200)
    print(f"inventory: {inventory.source}, {len(inventory.tensors)} tensors")
    print(f"baseline (sum of tensor bytes): {baseline * 1e3:.3f} ms")
    for label, args in configs.items():
        config = parse_llama_args(args.split())

        def evaluate(config=config) -> None:
            estimate_memory(inventory, config, ["CUDA0", "CUDA1"], cpu=cpu)

        seconds = _time(evaluate, 50)
        print(f"estimate_memory [{label}]: {seconds * 1e3:.3f} ms  ({seconds / baseline:.1f}x)")


if __name__ == "__main__":
    main()
