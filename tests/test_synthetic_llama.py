"""Synthetic GGUFs of every described architecture load and serve in the real llama-server.

This is the proof that ``solver.blueprint`` describes what llama.cpp expects: llama.cpp's
loader refuses a file with a missing required tensor, a tensor it did not create ("wrong number
of tensors"), a wrong shape or a wrongly typed key. Each tiny model must start, answer a
``/completion`` request, and report in its log the tensor count and mapped bytes we wrote.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import pytest

from solver.blueprint import Arch, Blueprint, tensor_specs
from solver.catalogue import catalogue_blueprint, catalogue_models
from solver.quant_mix import quantized_tensors
from solver.synthetic import miniature, tiny_blueprint, write_synthetic_gguf

ARCHS = [arch.value for arch in Arch]
MIB = 1024 * 1024

pytestmark = [pytest.mark.llama, pytest.mark.slow]


@pytest.fixture
def launch(llama_server_bin: Path):
    """``launch(model, log, timeout_s=180)``: the launcher below bound to the built server."""

    def start(model: Path, log: Path, timeout_s: float = 180.0):
        return _llama_server(llama_server_bin, model, log, timeout_s)

    return start


# --- a minimal private launcher (profiles/server.py is the real one) -------------------------


@dataclass
class _ServerRun:
    port: int
    process: subprocess.Popen
    log: Path
    ready: bool = False

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def complete(self, prompt: str, n_predict: int) -> dict:
        body = json.dumps({"prompt": prompt, "n_predict": n_predict, "ignore_eos": True})
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/completion",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=300) as reply:
            return json.loads(reply.read())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def _llama_server(
    binary: Path, model: Path, log: Path, timeout_s: float = 180.0
) -> Iterator[_ServerRun]:
    """Start llama-server on a free loopback port; wait for /health; always stop and reap it."""
    port = _free_port()
    args = [
        str(binary),
        "-m", str(model),
        "--no-warmup",
        "-c", "512",
        "--port", str(port),
        "--host", "127.0.0.1",
        "--fit", "off",  # one load only, so the log holds one set of buffer sizes
        "--no-repack",  # keep every weight in the mapped buffer the log reports
        "-v",
    ]  # fmt: skip
    with open(log, "wb") as sink:
        process = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)
    run = _ServerRun(port=port, process=process, log=log)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            if _healthy(port):
                run.ready = True
                break
            time.sleep(0.2)
        yield run
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- what llama.cpp's log says it loaded ----------------------------------------------------

_LOADED = re.compile(r"loaded meta data with (\d+) key-value pairs and (\d+) tensors")
_BUFFER = re.compile(r"load_tensors:\s+(\S+) model buffer size =\s+([\d.]+) MiB")


def _loaded_counts(log: str) -> tuple[int, float]:
    """(tensors in the model, MiB of model buffers) from the llama-server log."""
    loads = _LOADED.findall(log)
    assert loads, "no 'loaded meta data' line in the log"
    buffers = [float(size) for _, size in _BUFFER.findall(log)]
    assert buffers, "no 'model buffer size' line in the log"
    return int(loads[-1][1]), sum(buffers)


def _mapped_span_bytes(paths: list[Path], skipped: set[str]) -> int:
    """Bytes llama.cpp maps per file: first loaded tensor's start to last one's end."""
    total = 0
    for path in paths:
        reader = gguf.GGUFReader(path)
        loaded = [t for t in reader.tensors if t.name not in skipped]
        if loaded:
            first = min(int(t.data_offset) for t in loaded)
            last = max(int(t.data_offset) + int(t.n_bytes) for t in loaded)
            total += last - first
    return total


def _check_against_log(blueprint: Blueprint, quant: str, paths: list[Path], log: str) -> None:
    tensors = quantized_tensors(blueprint, quant)
    skipped = {t.name for t in tensors if t.skipped}
    n_tensors, buffer_mib = _loaded_counts(log)
    assert n_tensors == len(tensors)
    span = _mapped_span_bytes(paths, skipped)
    loaded_bytes = sum(t.n_bytes for t in tensors if not t.skipped)
    # the span is the tensors we wrote plus at most one alignment pad between neighbours
    assert loaded_bytes <= span <= loaded_bytes + gguf.GGUF_DEFAULT_ALIGNMENT * len(tensors)
    # the log prints MiB with two decimals: one rounding step per buffer
    assert abs(buffer_mib - span / MIB) <= 0.005 * len(paths) + 1e-9


# --- tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_model_loads_and_serves(launch, arch: str, synthetic_gguf, tmp_path: Path) -> None:
    paths = synthetic_gguf(arch, "Q4_K_M")
    with launch(paths[0], tmp_path / "server.log") as server:
        assert server.ready, server.log_text()[-3000:]
        reply = server.complete("hello there, tiny model", n_predict=4)
    assert reply["tokens_predicted"] == 4
    assert server.process.returncode is not None  # reaped
    _check_against_log(tiny_blueprint(arch), "Q4_K_M", paths, server.log_text())


def test_split_set_of_three_loads(launch, synthetic_gguf, tmp_path: Path) -> None:
    paths = synthetic_gguf("deepseek2", "Q4_K_M", n_parts=3)
    assert [p.name for p in paths] == [
        f"tiny-deepseek2-Q4_K_M-{i:05d}-of-00003.gguf" for i in (1, 2, 3)
    ]
    with launch(paths[0], tmp_path / "server.log") as server:
        assert server.ready, server.log_text()[-3000:]
        assert server.complete("split", n_predict=4)["tokens_predicted"] == 4
    log = server.log_text()
    assert len(_BUFFER.findall(log)) == 3  # one mapped buffer per part
    _check_against_log(tiny_blueprint("deepseek2"), "Q4_K_M", paths, log)


@pytest.mark.parametrize("model", catalogue_models())
def test_catalogue_blueprint_miniature_loads(
    launch,
    model: str,
    synthetic_gguf,
    tmp_path: Path,
) -> None:
    """Each catalogue blueprint, shrunk with every structural feature kept, serves."""
    blueprint = miniature(catalogue_blueprint(model))
    quant = "MXFP4" if blueprint.architecture is Arch.GPT_OSS else "Q4_K_M"
    paths = synthetic_gguf(blueprint, quant)
    with launch(paths[0], tmp_path / "server.log") as server:
        assert server.ready, server.log_text()[-3000:]
        assert server.complete("catalogue", n_predict=2)["tokens_predicted"] == 2
    _check_against_log(blueprint, quant, paths, server.log_text())


def test_split_parts_carry_keys_as_gguf_split_writes_them(synthetic_gguf) -> None:
    paths = synthetic_gguf("deepseek2", "Q4_K_M", n_parts=3)
    n_tensors = len(tensor_specs(tiny_blueprint("deepseek2")))
    split_keys = ["split.no", "split.count", "split.tensors.count"]
    for index, path in enumerate(paths):
        reader = gguf.GGUFReader(path)
        keys = [k for k in reader.fields if not k.startswith("GGUF.")]
        if index == 0:
            assert keys[0] == "general.architecture" and keys[-3:] == split_keys
        else:
            assert keys == split_keys  # metadata lives in the first part only
        types = [reader.fields[k].types[0] for k in split_keys]
        assert types == [gguf.GGUFValueType.UINT16, gguf.GGUFValueType.UINT16,
                         gguf.GGUFValueType.INT32]  # fmt: skip
        values = [reader.fields[k].contents() for k in split_keys]
        assert values == [index, 3, n_tensors]


# Per architecture, a tensor that only that architecture's loader insists on.
_ARCH_SPECIFIC_REQUIRED = {
    "llama": "blk.1.ffn_gate.weight",
    "qwen3": "blk.0.attn_q_norm.weight",
    "qwen3moe": "blk.1.ffn_gate_inp.weight",
    "gemma3": "blk.0.post_ffw_norm.weight",
    "deepseek2": "blk.1.ffn_gate_shexp.weight",
    "gpt-oss": "blk.0.attn_sinks.weight",
    "glm4moe": "blk.1.exp_probs_b.bias",
}


@pytest.mark.parametrize("arch", ARCHS)
def test_missing_required_tensor_is_refused(launch, arch: str, tmp_path: Path) -> None:
    blueprint = tiny_blueprint(arch)
    name = _ARCH_SPECIFIC_REQUIRED[arch]
    spec = next(s for s in tensor_specs(blueprint) if s.name == name)
    assert spec.required
    [path] = write_synthetic_gguf(blueprint, "Q4_K_M", tmp_path / "m.gguf", exclude={name})
    with launch(path, tmp_path / "server.log", timeout_s=60) as server:
        server.process.wait(timeout=60)
    assert not server.ready
    log = server.log_text()
    # llama_model_loader::check_tensor_dims or create_tensor, whichever meets it first
    assert f"tensor '{name}' not found" in log or f"missing tensor '{name}'" in log


@pytest.mark.parametrize("arch", ARCHS)
def test_optional_tensors_may_be_absent(launch, arch: str, tmp_path: Path) -> None:
    blueprint = tiny_blueprint(arch)
    optional = {s.name for s in tensor_specs(blueprint) if not s.required}
    [path] = write_synthetic_gguf(blueprint, "Q4_K_M", tmp_path / "m.gguf", exclude=optional)
    with launch(path, tmp_path / "server.log") as server:
        assert server.ready, server.log_text()[-3000:]


def test_unknown_architecture_is_refused(launch, tmp_path: Path) -> None:
    path = tmp_path / "unknown.gguf"
    writer = gguf.GGUFWriter(path, "fitnosucharch")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with launch(path, tmp_path / "server.log", timeout_s=60) as server:
        server.process.wait(timeout=60)
    assert not server.ready
    assert server.process.returncode != 0
    assert "unknown model architecture: 'fitnosucharch'" in server.log_text()
