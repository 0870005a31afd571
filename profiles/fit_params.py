"""llama.cpp's own fitter as a user runs it: ``llama-fit-params`` and the arguments it prints.

What budget ``llama-fit-params`` fits each device to, read from the pinned ``common/fit.cpp``
(``common_params_fit_impl``), so that fit can be given the very same one:

1. Per device, ``free`` is what ``ggml_backend_dev_memory`` reports, measured once with the
   initial arguments (``dmds_full[id].free``). An RPC device asks its server; a
   ``ggml-rpc-server`` backed by the CPU reports the machine's total physical memory as free
   (``ggml-cpu.cpp``, ``ggml_backend_cpu_device_get_memory``: ``sysconf(_SC_PHYS_PAGES) *
   sysconf(_SC_PAGE_SIZE)``, "assume that all of it is free").
2. The target of device ``id`` is ``free - margin[id]``, the margin being ``-fitt`` MiB
   (``--fit-target``, one value for every device; default 1024).
3. A trial placement is kept only while each device's projected model + context + compute
   bytes (``llama_get_memory_breakdown``, host buffers excluded) is at most its target when
   it fills whole layers, strictly below it when it tries part of one more layer.

So a per-device budget of B bytes is asked of llama-fit-params as ``-fitt ceil((free - B) /
MiB)`` (``FitTarget``); the budget it then fits to is ``free - fitt * MiB`` bytes, at most
1 MiB under B, and that exact number is what fit is given as each device's memory with a
zero margin. The server's own report of ``free`` (its ``GGML_RPC_DEBUG`` log line
``free_mem: N``) is read back by ``reported_free_bytes`` to check step 1.

``run_fit_params`` runs the binary (``fit llama build`` builds it) with the caller's
workload arguments and the margin, and returns the arguments it printed (its stdout's last
line, ``-c N -ngl N [-ts a,b] [-ot "..."]``) split as a shell would.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from profiles.llama_build import find_fit_params
from profiles.server import RpcServers
from profiles.server_log import relevant_lines
from solver.errors import OperationFailed
from solver.quantities import MIB

# ggml-rpc.cpp, rpc_server::get_device_memory (LOG_DBG under GGML_RPC_DEBUG=1)
_FREE_MEM = re.compile(r"\[get_device_memory\] device: (\d+), free_mem: (\d+), total_mem: (\d+)")


class FitTarget(BaseModel):
    """A per-device budget as llama-fit-params is told it (``-fitt``) and fits to."""

    model_config = ConfigDict(frozen=True)

    free_bytes: int = Field(description="what each device reports as free")
    margin_mib: int = Field(ge=0, description="-fitt: MiB to leave free on each device")

    @property
    def budget_bytes(self) -> int:
        """The most a device may hold: fit.cpp's target, ``free - margin``."""
        return self.free_bytes - self.margin_mib * MIB


def host_physical_bytes() -> int:
    """What a CPU-backed ggml device reports as free: this machine's physical memory."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def fit_target(budget_bytes: int, free_bytes: int | None = None) -> FitTarget:
    """The ``-fitt`` that leaves each device at most ``budget_bytes`` (1 MiB granularity)."""
    free = host_physical_bytes() if free_bytes is None else free_bytes
    if not 0 < budget_bytes <= free:
        raise OperationFailed(f"a budget of {budget_bytes} bytes is not within 0..{free}")
    return FitTarget(free_bytes=free, margin_mib=-(-(free - budget_bytes) // MIB))


def reported_free_bytes(rpc_logs: Mapping[str, str]) -> dict[str, int]:
    """endpoint -> the free memory its device 0 last reported (``GGML_RPC_DEBUG`` logs)."""
    found = {}
    for endpoint, text in rpc_logs.items():
        reports = [int(m[2]) for m in _FREE_MEM.finditer(text) if m[1] == "0"]
        if reports:
            found[endpoint] = reports[-1]
    return found


class FitParamsRun(BaseModel):
    """One llama-fit-params run: its command and the llama-server arguments it printed."""

    model_config = ConfigDict(frozen=True)

    argv: tuple[str, ...]
    args: tuple[str, ...] = Field(description="the printed arguments, split as a shell would")
    log: str = Field(description="what it wrote to stderr")


def parse_fit_params_output(stdout: str) -> tuple[str, ...]:
    """The arguments of llama-fit-params' stdout: its last line, ``-c N -ngl N ...``
    (``tools/fit-params/fit-params.cpp`` quotes the ``-ot`` list)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines or not lines[-1].startswith("-c "):
        raise OperationFailed(f"llama-fit-params printed no arguments: {stdout[-200:]!r}")
    return tuple(shlex.split(lines[-1]))


def run_fit_params(
    model: Path,
    args: Sequence[str],
    target: FitTarget,
    *,
    rpc: RpcServers | None = None,
    binary: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 600.0,
) -> FitParamsRun:
    """Run llama-fit-params on ``model`` with ``args`` (workload arguments such as ``-c``,
    ``-ub``, ``-fa``; never ``-ngl``/``-ts``/``-ot``, which make it refuse) on ``rpc``'s
    devices with ``target``'s margin. A failure to fit raises ``OperationFailed``."""
    rpc_args = ["--rpc", rpc.rpc_arg] if rpc is not None else []
    argv = [
        str(find_fit_params(binary).path), "-m", str(model), *rpc_args, *args,
        "-fitt", str(target.margin_mib),
    ]  # fmt: skip
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, errors="replace", timeout=timeout_s,
            env=dict(env) if env is not None else None, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"llama-fit-params ran over {timeout_s:.0f} s") from None
    finally:
        if rpc is not None:
            rpc.wait_idle()  # the next client must find the servers free
    if done.returncode != 0:
        lines = "\n".join(f"  {line}" for line in relevant_lines(done.stderr))
        raise OperationFailed(f"llama-fit-params exited with status {done.returncode}\n{lines}")
    return FitParamsRun(
        argv=tuple(argv), args=parse_fit_params_output(done.stdout), log=done.stderr
    )
