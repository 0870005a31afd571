"""What a device's compute and output buffers depend on, measured with the memory model's replay.

For each model, a handful of plans on a rig of two RPC devices (CPU-backed, as the tests launch
them; their buffers are validated to the byte against llama-server): per device, the
combination of what it runs (``solver.placement.buffers``) and its compute + output MiB. The
findings are written down in ``solver/placement/buffers.py``.

    python -m benchmarks.buffer_combinations [--context 8192] [--ubatch 512] [MODEL ...]
"""

from __future__ import annotations

import argparse

from solver.gguf.sources import load_inventory
from solver.hardware.scenario import Gpu, GpuSpec, Hardware, Host
from solver.placement.buffers import describe, plan_combination
from solver.placement.cpsat import layer_units
from solver.placement.setting import SolveRequest, placement_problem, resolve_setting
from solver.placement.solve import SCENARIO_CPU, plan_report
from solver.plan.plan import Plan
from solver.plan.units import Unit
from solver.quantities import CPU, GIB, MIB

MODELS = ("gpt-oss-20b", "qwen3-30b-a3b", "gemma-3-27b", "llama-3.3-70b", "qwen3.6-35b-a3b")


def rpc_rig() -> Hardware:
    spec = GpuSpec(name="rpc-cpu", vram_bytes=64 * GIB, bandwidth_bytes_per_s=200e9,
                   fp16_flops=2e12, pcie_gen=4, pcie_lanes=16)  # fmt: skip
    gpus = tuple(
        Gpu(device=f"RPC{i}", spec=spec, pcie_gen=4, pcie_lanes=16, rpc_endpoint=f"h:{i}")
        for i in range(2)
    )
    host = Host(ram_bytes=256 * GIB, bandwidth_bytes_per_s=20e9, cores=2)
    return Hardware(name="rpc", gpus=gpus, host=host)


def plans(n: int) -> dict[str, Plan]:
    """Named plans over layers 0..n-1 on CPU, RPC0, RPC1 (the head is the last -ngl slot)."""

    def plan(rpc0: int, rpc1: int, head: str, **overrides: tuple[str, ...]) -> Plan:
        return Plan(gpus=("RPC0", "RPC1"), n_layers=n, gpu_layers=(rpc0, rpc1),
                    output_device=head, overrides=overrides)  # fmt: skip

    half = n // 2
    return {
        "all on the host": plan(0, 0, CPU),
        "head only on RPC0": plan(0, 0, "RPC0"),
        "1 layer + head on RPC0": plan(1, 0, "RPC0"),
        "2 layers + head on RPC0": plan(2, 0, "RPC0"),
        "half + head on RPC0": plan(half, 0, "RPC0"),
        "half on RPC0, head on RPC1": plan(half, 0, "RPC1"),
        "all on RPC0 + head": plan(n, 0, "RPC0"),
        "split, head on RPC1": plan(half, n - half, "RPC1"),
        "1 + rest, head on RPC1": plan(1, n - 2, "RPC1"),
        "split, experts on host": plan(half, n - half, "RPC1", experts=(CPU,) * n),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(MODELS))
    parser.add_argument("--context", type=int, default=8192)
    parser.add_argument("--ubatch", type=int, default=512)
    args = parser.parse_args(argv)
    hardware = rpc_rig()
    request = SolveRequest(contexts=(args.context,), n_ubatch=args.ubatch)
    for model in args.models:
        inventory = load_inventory(model)
        setting = resolve_setting(inventory, hardware, request, args.context, "f16")
        budgets = dict.fromkeys(hardware.device_names, 0)
        problem = placement_problem(setting, hardware, budgets, {}, request.objective)
        units = layer_units(problem)
        has_experts = any(Unit.EXPERTS in u for u in units)
        print(f"{model} ({inventory.architecture}, {len(units)} layers), compute + output MiB")
        for name, plan in plans(len(units)).items():
            if plan.overrides and not has_experts:
                continue
            report = plan_report(inventory, hardware, setting, plan, SCENARIO_CPU)
            cells = [
                f"{device} {describe(plan_combination(plan, device, units))} "
                f"{((d.compute or 0) + d.output) / MIB:.1f}"
                for device, d in report.devices.items()
            ]
            print(f"  {name:28} " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
