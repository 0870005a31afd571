"""Run the real llama-server (and two RPC servers) and read what it allocated.

A minimal private log parser until ``profiles/server_log`` lands on main. It reads the
buffer lines llama.cpp prints at ``-lv 4`` (MiB with two decimals) and, from RPC servers run
with ``GGML_RPC_DEBUG=1``, the exact byte size of every buffer they allocated: the first
allocations are model buffers, a KV buffer is cleared right after it is allocated, and what
comes after the KV buffers is the compute buffer.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

MIB = 1024 * 1024

# memory-relevant arguments every run gets before the test's own (later values win)
HARNESS_ARGS = ["--fit", "off"]

_CANDIDATE_BIN_DIRS = [
    os.environ.get("FIT_LLAMA_BIN", ""),
    "/tmp/llb/bin",
    str(Path.home() / ".cache" / "fit" / "llama" / "bin"),
]


def llama_bin_dir() -> Path | None:
    for candidate in _CANDIDATE_BIN_DIRS:
        if candidate and (Path(candidate) / "llama-server").exists():
            status = Path(candidate).parent / "status"
            if status.exists() and not status.read_text().startswith("done 0"):
                continue
            return Path(candidate)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_BUFFER = re.compile(
    r"(load_tensors|llama_kv_cache|llama_memory_recurrent|llama_context|sched_reserve):\s+(\S+)\s+"
    r"(model|KV|RS|output|compute) buffer size =\s+([\d.]+) MiB"
)
_SPLITS = re.compile(r"sched_reserve: graph.*splits = (\d+)(?: / (\d+))?")
_CONTEXT = re.compile(r"llama_context: (n_\w+|kv_unified|flash_attn)\s+= (\S+)")


@dataclass
class RpcAllocations:
    model: list[int] = field(default_factory=list)
    kv: list[int] = field(default_factory=list)
    compute: list[int] = field(default_factory=list)


@dataclass
class ServerLog:
    text: str
    model: list[tuple[str, float]] = field(default_factory=list)
    kv: list[tuple[str, float]] = field(default_factory=list)
    output: list[tuple[str, float]] = field(default_factory=list)
    compute: list[tuple[str, float]] = field(default_factory=list)
    splits: tuple[int, int] | None = None
    context: dict[str, str] = field(default_factory=dict)
    system_info: str = ""
    rpc: dict[str, RpcAllocations] = field(default_factory=dict)

    def mib(self, kind: str, buffer_type: str) -> float:
        """Sum of the printed MiB of one kind of buffer of one buffer type."""
        return round(sum(v for name, v in getattr(self, kind) if name == buffer_type), 2)


def parse_server_log(text: str) -> ServerLog:
    log = ServerLog(text=text)
    for match in _BUFFER.finditer(text):
        kind = {"model": "model", "KV": "kv", "RS": "kv", "output": "output", "compute": "compute"}[
            match.group(3)
        ]
        getattr(log, kind).append((match.group(2), float(match.group(4))))
    splits = _SPLITS.search(text)
    if splits:
        log.splits = (int(splits.group(1)), int(splits.group(2) or splits.group(1)))
    for match in _CONTEXT.finditer(text):
        log.context.setdefault(match.group(1), match.group(2))
    info = re.search(r"system_info: .*", text)
    log.system_info = info.group(0) if info else ""
    return log


def parse_rpc_debug(text: str) -> RpcAllocations:
    """Classify a GGML_RPC_DEBUG log's buffer allocations into model, KV and compute.

    load_tensors allocates every model buffer before it loads the first weight
    (``set_tensor``); a KV buffer is cleared right after it is allocated; the rest are
    compute buffers.
    """
    events = re.findall(
        r"\[(alloc_buffer|buffer_clear|set_tensor)\][^\n]*?(?:size: (\d+) -> )?"
        r"remote_ptr: (\w+)|\[(set_tensor)\]",
        text,
    )
    result = RpcAllocations()
    loading_started = False
    for index, (event, size, ptr, set_tensor) in enumerate(events):
        if set_tensor or event == "set_tensor":
            loading_started = True
            continue
        if event != "alloc_buffer":
            continue
        following = events[index + 1] if index + 1 < len(events) else None
        if following is not None and following[0] == "buffer_clear" and following[2] == ptr:
            result.kv.append(int(size))
        elif not loading_started:
            result.model.append(int(size))
        else:
            result.compute.append(int(size))
    return result


class RpcServer:
    """One ggml-rpc-server on 127.0.0.1 with debug logging to a file."""

    def __init__(self, bin_dir: Path, log_path: Path) -> None:
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
        env = dict(os.environ, GGML_RPC_DEBUG="1")
        self.process = subprocess.Popen(
            [str(bin_dir / "ggml-rpc-server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("ggml-rpc-server did not start")

    def log_size(self) -> int:
        self._log.flush()
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        self._log.flush()
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def run_llama_server(
    bin_dir: Path,
    model: Path,
    args: list[str],
    rpc: list[RpcServer] | None = None,
    timeout: float = 90,
) -> ServerLog:
    """Start llama-server, wait until its graphs are reserved, stop it, parse what it said."""
    rpc = rpc or []
    offsets = [server.log_size() for server in rpc]
    rpc_args = ["--rpc", ",".join(s.endpoint for s in rpc)] if rpc else []
    command = [
        str(bin_dir / "llama-server"),
        "-m",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(free_port()),
        "--no-warmup",
        *HARNESS_ARGS,
        "-lv",
        "4",
        "-t",
        "1",
        *rpc_args,
        *args,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), False)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            data = process.stdout.read()
            if data:
                chunks.append(data)
                if b"listening on" in b"".join(chunks[-2:]):
                    break
            elif process.poll() is not None:
                break
            else:
                time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        rest = process.stdout.read()
        if rest:
            chunks.append(rest)
        process.stdout.close()
    log = parse_server_log(b"".join(chunks).decode("utf-8", "replace"))
    for server, offset in zip(rpc, offsets, strict=True):
        # an RPC server serves one client at a time: wait until it has let this one go
        deadline = time.monotonic() + 30
        while "Client connection closed" not in server.log_since(offset):
            if time.monotonic() > deadline:
                raise RuntimeError(f"RPC server {server.endpoint} still busy")
            time.sleep(0.05)
        log.rpc[server.endpoint] = parse_rpc_debug(server.log_since(offset))
    return log


@pytest.fixture(scope="module")
def rpc_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RpcServer]]:
    """Two RPC servers for a test module (import the fixture into the module to use it)."""
    bin_dir = llama_bin_dir()
    if bin_dir is None:
        pytest.skip("llama-server build not available")
    logs = tmp_path_factory.mktemp("rpc")
    servers = [RpcServer(bin_dir, logs / f"rpc{i}.log") for i in range(2)]
    yield servers
    for server in servers:
        server.stop()
