"""Test support for the compute-buffer model: a parser of llama-server's startup log and a
runner that starts the real llama-server (and RPC servers).

Private to the tests and benchmarks of ``solver.compute_buffer`` until the shared log parser
(``profiles.server_log``) and launcher (``profiles.server``) land on main. Everything
the tests compare against comes from llama-server's own log: the compute buffer sizes, the
split counts, the context parameters it resolved, the device of every layer and every
overridden tensor.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from profiles.llama_build import find_llama_server, find_rpc_server
from solver.errors import OperationFailed
from solver.inventory import Inventory
from solver.sources import load_local_inventory
from solver.workload import ComputeWorkload


@cache
def binaries() -> tuple[Path, Path] | None:
    """llama-server and ggml-rpc-server as fit finds them ($LLAMA_SERVER, fit's build cache...)."""
    try:
        return find_llama_server().path, find_rpc_server().path
    except OperationFailed:
        return None


def llama_available() -> bool:
    return binaries() is not None


# --- llama-server log ----------------------------------------------------------------------

_MIB = 1024 * 1024
_RE_EXACT = re.compile(r"~llama_context:\s+(\S+) compute buffer size is\s+([\d.]+) MiB")
_RE_SIZE = re.compile(r"sched_reserve:\s+(\S+) compute buffer size =\s+([\d.]+) MiB")
_RE_SPLITS = re.compile(
    r"sched_reserve: graph(?: \(pp bs=(\d+), tg bs=(\d+)\))?: nodes = .*?"
    r"splits = (\d+)(?: / (\d+))?"
)
_RE_CTX = re.compile(r"llama_context: (\w+)\s+= (\S+)")
_RE_LAYER = re.compile(r"load_tensors: layer\s+(\d+) assigned to device (\S+),")
_RE_OVERRIDE = re.compile(r"tensor (\S+) \(.*\) buffer type overridden to (\S+)")
_RE_KV = re.compile(
    r"llama_kv_cache: size = .*\(\s*(\d+) cells,\s*(\d+) layers,\s*(\d+)/(\d+) seqs\)"
    r", K \((\w+)\).*V \((\w+)\)"
)
_RE_FA = re.compile(r"resolve_fused_ops: Flash Attention (enabled|not supported)")
_RE_RPC_DEV = re.compile(r"common_param:\s+- (RPC\d+)\s+: (\S+)")
_RE_PIPE = re.compile(r"pipeline parallelism enabled")


@dataclass
class ServerLog:
    """What one llama-server start said about its context and compute buffers."""

    buffers_mib: dict[str, float] = field(default_factory=dict)  # buffer name -> MiB
    exact: bool = False  # 4-decimal sizes from ~llama_context (else 2 decimals)
    splits_pp: int = 0
    splits_tg: int = 0
    ctx: dict[str, str] = field(default_factory=dict)
    layer_devices: dict[int, str] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    kv_caches: list[tuple[int, int, int, int]] = field(default_factory=list)
    flash_attn: bool | None = None
    rpc_endpoints: dict[str, str] = field(default_factory=dict)  # endpoint -> RPCn
    pipeline_parallel: bool = False
    kv_types: tuple[str, str] = ("F16", "F16")

    def device_bytes(self) -> dict[str, int]:
        """Buffer sizes by device name (CPU, RPC0, ...), in bytes (rounded from MiB)."""
        out = {}
        for name, mib in self.buffers_mib.items():
            out[self.device_of_buffer(name)] = round(mib * _MIB)
        return out

    def device_of_buffer(self, name: str) -> str:
        m = re.match(r"RPC\d+\[(.+)\]", name)
        if m:
            return self.rpc_endpoints[m.group(1)]
        if name in ("CUDA_Host", "CPU"):
            return "CPU"
        return name

    @property
    def resolution_bytes(self) -> int:
        """Half the last printed digit: the uncertainty of the logged size."""
        return int((0.00005 if self.exact else 0.005) * _MIB)


def parse_log(text: str) -> ServerLog:
    log = ServerLog()
    exact = {}
    for line in text.splitlines():
        if m := _RE_EXACT.search(line):
            exact[m.group(1)] = float(m.group(2))
        elif m := _RE_SIZE.search(line):
            log.buffers_mib[m.group(1)] = float(m.group(2))
        elif m := _RE_SPLITS.search(line):
            log.splits_pp = int(m.group(3))
            log.splits_tg = int(m.group(4) or m.group(3))
        elif m := _RE_LAYER.search(line):
            log.layer_devices[int(m.group(1))] = m.group(2)
        elif m := _RE_OVERRIDE.search(line):
            log.overrides[m.group(1)] = m.group(2)
        elif m := _RE_KV.search(line):
            log.kv_caches.append(tuple(int(x) for x in m.groups()[:4]))
            log.kv_types = (m.group(5).upper(), m.group(6).upper())
        elif m := _RE_FA.search(line):
            log.flash_attn = m.group(1) == "enabled"
        elif m := _RE_RPC_DEV.search(line):
            log.rpc_endpoints[m.group(2)] = m.group(1)
        elif _RE_PIPE.search(line):
            log.pipeline_parallel = True
        elif m := _RE_CTX.search(line):
            log.ctx.setdefault(m.group(1), m.group(2))
    if exact:
        log.exact = True
        log.buffers_mib.update({k: v for k, v in exact.items() if v > 0})
    return log


# --- running llama-server -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def rpc_servers(n: int) -> Iterator[list[str]]:
    """Start n ggml-rpc-server processes on 127.0.0.1; yields their host:port endpoints."""
    procs: list[subprocess.Popen] = []
    endpoints: list[str] = []
    try:
        for _ in range(n):
            port = free_port()
            procs.append(
                subprocess.Popen(
                    [str(binaries()[1]), "-H", "127.0.0.1", "-p", str(port)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            endpoints.append(f"127.0.0.1:{port}")
        for ep in endpoints:
            host, port = ep.split(":")
            deadline = time.monotonic() + 20
            while True:
                try:
                    with socket.create_connection((host, int(port)), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        yield endpoints
    finally:
        for p in procs:
            _stop(p)


def run_server(model: Path, args: Sequence[str], timeout: float = 240) -> str:
    """Start llama-server until it listens (or exits), stop it, return its log.

    ``-v`` makes the context's destructor print each compute buffer with 4 decimals.
    ``--no-repack`` keeps CPU weights in plain buffers (a build with AMX enabled crashes in
    its repacked matmul on this machine's Xeon; fit's own build disables AMX).
    """
    port = free_port()
    cmd = [
        str(binaries()[0]), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
        "--no-warmup", "--fit", "off", "--no-repack", "-v", *args,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "all slots are idle" in line:
                break
            if time.monotonic() > deadline:
                break
        _stop(proc)
        rest = proc.stdout.read()
        lines.append(rest)
    finally:
        _stop(proc)
    return "".join(lines)


# --- the ground truth a log gives ---------------------------------------------------------


def workload_from_log(log: ServerLog, inv: Inventory, offload_kqv: bool = True) -> ComputeWorkload:
    """ComputeWorkload as llama-server resolved it (read from its own log)."""
    c = log.ctx
    n_seq = int(c["n_seq_max"])
    unified = c["kv_unified"] == "true"
    fa_mode = c["flash_attn"]
    fa = log.flash_attn if log.flash_attn is not None else fa_mode in ("on", "enabled")
    swa_cells = 0
    base_cells = int(c["n_ctx_seq"])
    if inv.attention.swa_layers and any(inv.attention.swa_layers) and len(log.kv_caches) >= 2:
        swa_cells = log.kv_caches[1][0]
        base_cells = log.kv_caches[0][0]
    return ComputeWorkload(
        n_ctx=int(c["n_ctx"]),
        n_ctx_seq=base_cells,
        n_batch=int(c["n_batch"]),
        n_ubatch=int(c["n_ubatch"]),
        n_seq_max=n_seq,
        n_stream=1 if unified else n_seq,
        n_outputs_max=int(c["n_outputs_max"]),
        flash_attn=fa,
        flash_attn_mode="auto" if fa_mode == "auto" else ("on" if fa else "off"),
        v_trans=fa_mode in ("disabled", "off"),
        type_k=log.kv_types[0],
        type_v=log.kv_types[1],
        kv_unified=unified,
        kv_cells_swa=swa_cells,
        offload_kqv=offload_kqv,
        pipeline_parallel=log.pipeline_parallel,
    )


def placement_from_log(
    log: ServerLog, inv: Inventory, offload_kqv: bool = True
) -> tuple[dict[str, str], list[str], list[str]]:
    """tensor -> device, per-layer KV device and the device list, as llama-server placed them."""
    n_layer = inv.n_layers
    layer_dev = [log.layer_devices.get(il, "CPU") for il in range(n_layer)]
    out_dev = log.layer_devices.get(n_layer, "CPU")
    devices: dict[str, str] = {}
    for t in inv.tensors:
        if t.layer is not None:
            dev = layer_dev[t.layer]
        elif t.name == "token_embd.weight":
            dev = "CPU"
        else:
            dev = out_dev
        devices[t.name] = dev
    if "output.weight" not in devices:
        devices["output.weight"] = out_dev
    for name, buft in log.overrides.items():
        devices[name] = "CPU" if buft.startswith("CPU") else log.device_of_buffer(buft)
    all_devices = ["CPU", *sorted(set(log.rpc_endpoints.values()))]
    kv_dev = layer_dev if offload_kqv else ["CPU"] * n_layer
    return devices, kv_dev, all_devices


def inventory(path: Path) -> Inventory:
    return load_local_inventory(path)
