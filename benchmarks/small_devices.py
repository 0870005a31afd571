"""Small models on small devices: what ``fit solve`` puts on two RPC devices whose compute
buffers are comparable to their budget (issue 11's case).

Synthetic 8-layer, 512-wide models (Q4_K_M, a 32K vocabulary, 27-41 MiB) of four
architectures on two CPU-backed RPC devices of a few tens of MiB each, -c 4096 -ub 512 -fa on,
no margin. Per (architecture, budget): the weights the plan puts on the devices, each device's
total against its budget (the memory model's replay of the printed arguments; the RPC launch
of ``tests/test_solve_buffers.py`` checks the same numbers against the servers), the estimated
decode t/s and the verification rounds. Nothing is launched; no RPC server is contacted.

    python -m benchmarks.small_devices [--budgets 30,40,60]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from profiles.rigs import loopback_rpc_rig
from solver.gguf.sources import load_inventory
from solver.gguf.synthetic import tiny_blueprint, write_synthetic_gguf
from solver.placement.solve import SolveRequest, solve
from solver.quantities import CPU, MIB

ENDPOINTS = ("127.0.0.1:50052", "127.0.0.1:50053")  # never contacted
ARCHS = ("llama", "qwen3moe", "gemma3", "gpt-oss")
REQUEST = SolveRequest(
    contexts=(4096,), n_ubatch=512, gpu_margin_bytes=0, ram_reserve_bytes=0, flash_attn="on"
)


def model(arch: str, folder: Path) -> Path:
    updates: dict[str, object] = {"name": f"small-{arch}", "n_layer": 8, "n_embd": 512,
                                  "n_head": 8, "n_head_kv": 4, "n_vocab": 32000}  # fmt: skip
    blueprint = tiny_blueprint(arch)
    if blueprint.n_ff:
        updates["n_ff"] = 1536
    path = folder / f"small-{arch}.gguf"
    write_synthetic_gguf(blueprint.model_copy(update=updates), "Q4_K_M", path, sparse=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="30,40,60", help="MiB per device, comma-separated")
    args = parser.parse_args(argv)
    budgets = [int(b) for b in args.budgets.split(",")]
    print(f"{'model':10} {'budget':>6} {'on devices':>10} {'RPC0':>11} {'RPC1':>11} "
          f"{'decode t/s':>10} {'rounds':>6}  arguments")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        for arch in ARCHS:
            inventory = load_inventory(str(model(arch, Path(folder))))
            for budget in budgets:
                report = solve(inventory, loopback_rpc_rig(ENDPOINTS, budget * MIB), REQUEST)
                devices = {n: d for n, d in report.devices.items() if n != CPU}
                placed = sum(d.weights for d in devices.values()) / MIB
                used = [f"{d.total / MIB:.1f}/{budget}" for d in devices.values()]
                tps = f"{report.decode_tps:.0f}" if report.decode_tps else "-"
                placement = " ".join(report.args[report.args.index("-np") + 2 :])
                print(f"{arch:10} {budget:>6} {placed:>10.1f} {used[0]:>11} {used[1]:>11} "
                      f"{tps:>10} {report.rounds:>6}  {placement}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
