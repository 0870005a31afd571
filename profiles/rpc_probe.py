"""Ask ggml-rpc-servers what they offer, and write them as a scenario's RPC devices.

The pinned llama.cpp's protocol (ggml/src/ggml-rpc/ggml-rpc.cpp, version 7.0.0; structs packed,
little-endian): a request is ``| cmd: u8 | size: u64 | payload |`` and an answer
``| size: u64 | payload |``. A connection opens with ``RPC_CMD_HELLO`` (14; 24 bytes of
transport capabilities, zero: plain TCP; answer major, minor, patch, padding and the server's
24 bytes). ``RPC_CMD_DEVICE_COUNT`` (15) answers a u32; ``RPC_CMD_GET_DEVICE_MEMORY`` (11)
takes a u32 device and answers free and total bytes (u64 each): the very call llama-server
makes (``ggml_backend_rpc_get_device_memory``) when it sizes its plan. The protocol carries no
device name, so the remote GPU's model is the user's to name (``--rpc-gpu``). The server
takes one client at a time: a probe closes its connection before the next one.

The round trip is measured here as the median time of repeated GET_DEVICE_MEMORY requests: a
command with a tiny payload that waits for its answer, as every synchronous RPC command does.
The link's bandwidth is not measured (it would take a remote buffer and a large transfer): the
user states it.
"""

from __future__ import annotations

import socket
import statistics
import struct
import time
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from solver.errors import BadInput, OperationFailed
from solver.hardware.scenario import (
    GB,
    RPC_ENDPOINT,
    Gpu,
    Hardware,
    NetworkLink,
    describe_hardware,
    find_gpu_spec,
)

RPC_CMD_GET_DEVICE_MEMORY = 11
RPC_CMD_HELLO = 14
RPC_CMD_DEVICE_COUNT = 15
RPC_PROTO_MAJOR_VERSION = 7  # ggml/include/ggml-rpc.h of the pinned llama.cpp
RPC_CONN_CAPS_SIZE = 24  # ggml/src/ggml-rpc/transport.h
ROUND_TRIPS = 21


class RpcDevice(BaseModel):
    """One device of a ggml-rpc-server as the server reports it."""

    model_config = ConfigDict(frozen=True)

    endpoint: str
    device: int
    free_bytes: int
    total_bytes: int
    round_trip_us: float


def probe(endpoint: str, timeout_s: float = 10.0) -> list[RpcDevice]:
    """Every device of the server at ``endpoint`` (host:port), with its memory and the
    measured round trip. ``OperationFailed`` when the server cannot be reached or answers
    something else than the protocol."""
    import re

    if not re.match(RPC_ENDPOINT, endpoint):
        raise BadInput(f"--rpc: {endpoint!r} is not host:port")
    host, port = endpoint.rsplit(":", 1)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return _probe(sock, endpoint)
    except (OSError, struct.error) as error:
        raise OperationFailed(f"ggml-rpc-server {endpoint}: {error}") from None


def _probe(sock: socket.socket, endpoint: str) -> list[RpcDevice]:
    answer = _call(sock, RPC_CMD_HELLO, bytes(RPC_CONN_CAPS_SIZE), 4 + RPC_CONN_CAPS_SIZE)
    major, minor, patch = answer[:3]
    if major != RPC_PROTO_MAJOR_VERSION:
        raise OperationFailed(
            f"ggml-rpc-server {endpoint} speaks RPC protocol {major}.{minor}.{patch}; the "
            f"pinned llama.cpp speaks {RPC_PROTO_MAJOR_VERSION}.x"
        )
    (count,) = struct.unpack("<I", _call(sock, RPC_CMD_DEVICE_COUNT, b"", 4))
    devices = []
    for device in range(count):
        request = struct.pack("<I", device)
        times = []
        for _ in range(ROUND_TRIPS):
            start = time.perf_counter()
            free, total = struct.unpack("<QQ", _call(sock, RPC_CMD_GET_DEVICE_MEMORY, request, 16))
            times.append(time.perf_counter() - start)
        devices.append(
            RpcDevice(
                endpoint=endpoint,
                device=device,
                free_bytes=free,
                total_bytes=total,
                round_trip_us=round(statistics.median(times) * 1e6, 1),
            )
        )
    return devices


def _call(sock: socket.socket, cmd: int, payload: bytes, answer_size: int) -> bytes:
    sock.sendall(struct.pack("<BQ", cmd, len(payload)) + payload)
    (size,) = struct.unpack("<Q", _receive(sock, 8))
    if size != answer_size:
        raise OperationFailed(f"RPC command {cmd}: answer of {size} bytes, not {answer_size}")
    return _receive(sock, answer_size)


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OperationFailed("the RPC server closed the connection")
        data += chunk
    return data


def rpc_rig(
    host_rig: Hardware,
    endpoints: Sequence[str],
    gpu_models: Sequence[str],
    link_gb_s: float,
) -> Hardware:
    """``host_rig``'s host with the RPC servers' devices as its GPUs, in ``--rpc`` order:
    memory as each server reports it, figures from the GPU table for ``gpu_models`` (one
    for all, or one per server), the network at ``link_gb_s`` with the measured round trip.
    Local GPUs are left out: fit plans RPC devices or local ones, not both."""
    if len(gpu_models) not in (1, len(endpoints)):
        raise BadInput(f"--rpc-gpu: give one model, or one per server ({len(endpoints)})")
    if not 0.001 <= link_gb_s <= 1000:
        raise BadInput(f"--link-gb-s {link_gb_s:g} is outside 0.001-1000 GB/s")
    if len(set(endpoints)) != len(endpoints):
        raise BadInput("--rpc: a server is listed twice")
    gpus, notes = [], list(host_rig.notes)
    for index, endpoint in enumerate(endpoints):
        devices = probe(endpoint)
        if len(devices) != 1:
            raise OperationFailed(
                f"ggml-rpc-server {endpoint} serves {len(devices)} devices; fit plans one "
                "device per server (start one server per GPU with -d)"
            )
        (device,) = devices
        spec = find_gpu_spec(gpu_models[index % len(gpu_models)], device.total_bytes)
        gpus.append(
            Gpu(
                device=f"RPC{index}",
                spec=spec.model_copy(update={"vram_bytes": device.total_bytes}),
                free_bytes=device.free_bytes,
                pcie_gen=spec.pcie_gen,
                pcie_lanes=spec.pcie_lanes,
                rpc_endpoint=endpoint,
                network=NetworkLink(
                    bytes_per_s=float(round(link_gb_s * GB)), round_trip_us=device.round_trip_us
                ),
            )
        )
    notes.append(
        "RPC devices: memory and round trip asked of each ggml-rpc-server; link_gb_s as "
        "given (--link-gb-s), model as named (--rpc-gpu)"
    )
    if host_rig.gpus:
        notes.append(f"local GPUs left out ({len(host_rig.gpus)}): fit plans RPC or local GPUs")
    rig = host_rig.model_copy(update={"gpus": tuple(gpus), "notes": tuple(notes)})
    return rig.model_copy(update={"description": describe_hardware(rig)})
