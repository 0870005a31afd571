"""Run the real llama-server and ggml-rpc-server safely, and talk to llama-server.

Every process fit starts here:

- gets an argument list, never a shell, and binds 127.0.0.1 on a port fit picked;
- writes stdout and stderr to one log file (``profiles.server_log`` reads it);
- runs in its own process group, so stopping it stops everything it started, and the
  terminal's Ctrl-C reaches fit alone, which then stops it;
- is stopped with SIGTERM, then SIGKILL after a grace period, and always reaped;
- dies with fit even when fit is SIGKILLed: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux.
  (The kernel ties that signal to the *thread* that started the child: start servers from a
  thread that outlives them, e.g. the main thread.)

While a server context is open in the main thread, SIGTERM to fit raises ``SystemExit`` so
that the ``with`` blocks unwind and stop their servers instead of orphaning them.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel, ConfigDict

from profiles.llama_build import find_llama_server, find_rpc_server, fit_cache_dir
from profiles.server_log import RunReport, parse_server_log, relevant_lines
from solver.errors import BadInput, OperationFailed

HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_LOG_VERBOSITY = "4"  # llama.cpp's own INFO lines (buffer sizes, graph) need -lv 4
_OWNED_FLAGS = ("--host", "--port")
_VERBOSITY_FLAGS = ("-lv", "--verbosity", "--log-verbosity", "-v", "--verbose", "--log-verbose")
_BIND_FAILURES = ("couldn't bind HTTP server socket", "Failed to create server socket")


class ServerFailed(OperationFailed):
    """A server exited or hung before it was ready; carries its parsed log."""

    def __init__(
        self,
        message: str,
        *,
        log_path: Path,
        report: RunReport | None,
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.log_path = log_path
        self.report = report
        self.exit_code = exit_code  # None when it was still running (a timeout)


# --- processes ------------------------------------------------------------------------------


def free_port(host: str = HOST) -> int:
    """A port nobody listens on right now (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """preexec_fn: ask the kernel to SIGKILL the child when fit goes away (Linux only)."""
    prctl = None
    with suppress(OSError, AttributeError):
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork, not in the child

    def preexec() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # fit died between fork and prctl
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def spawn(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> ServerProcess:
    """Start ``argv`` in its own process group with output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(os.getpid()),
                env=env,
            )
        except OSError as error:
            raise OperationFailed(f"cannot start {argv[0]}: {error}") from None
    return ServerProcess(process, log_path)


class ServerProcess:
    """A started child: exit checks that leave it unreaped, and a stop that always reaps.

    The child is only reaped in ``stop``: until then its process-group id cannot be reused,
    so signalling the group can never hit an unrelated process.
    """

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def exit_code(self) -> int | None:
        """The exit status if the child has exited (without reaping it), else None."""
        if self.process.returncode is not None:
            return self.process.returncode
        if not hasattr(os, "waitid"):  # macOS: no peeking, poll() reaps
            return self.process.poll()
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return self.process.wait()
        if info is None:
            return None
        return -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status

    def _wait_exited(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.exit_code() is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _signal_group(self, signum: int) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def stop(self, grace_s: float = 10.0) -> int:
        """SIGTERM the group, SIGKILL it after ``grace_s``, reap; returns the exit status."""
        if self.process.returncode is None:
            if self.exit_code() is None:
                self._signal_group(signal.SIGTERM)
                if not self._wait_exited(grace_s):
                    self._signal_group(signal.SIGKILL)
            # the leader is a zombie now, so the group id is still ours: clear stragglers
            self._signal_group(signal.SIGKILL)
        return self.process.wait()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def owns_port(pid: int, port: int) -> bool:
    """Whether ``pid`` listens on ``port``; without /proc, whether anything accepts there."""
    if Path("/proc/net/tcp").exists():
        return listens_on(pid, port)
    with suppress(OSError), socket.create_connection((HOST, port), timeout=1):
        return True
    return False


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` has a listening TCP socket on ``port`` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError), open(table) as rows:
            next(rows, None)
            for row in rows:
                fields = row.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{inode}]")
    if not inodes:
        return False
    fd_dir = Path(f"/proc/{pid}/fd")
    with suppress(OSError):
        for fd in fd_dir.iterdir():
            with suppress(OSError):
                if os.readlink(fd) in inodes:
                    return True
    return False


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while servers run, so ``with`` blocks stop them."""
    installed = False
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

        def raise_exit(signum: int, _frame: object) -> None:
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, raise_exit)
        installed = True
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


class _ProcessContext:
    """``with`` support shared by the server kinds: start on enter, always stop on exit.

    If starting fails or is interrupted (Ctrl-C), ``__exit__`` would not run, so ``__enter__``
    stops what it started itself before re-raising.
    """

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._signals = ExitStack()
        self._signals.enter_context(_sigterm_unwinds())
        try:
            self._start()
        except BaseException:
            self._leave()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()

    def _leave(self) -> None:
        try:
            self.stop()
        finally:
            self._signals.close()


def default_log_path(name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return fit_cache_dir() / "logs" / f"{name}-{stamp}-{os.getpid()}-{time.monotonic_ns()}.log"


# --- llama-server ---------------------------------------------------------------------------


class LlamaServer(_ProcessContext):
    """A llama-server on 127.0.0.1, ready (``/health`` == 200) inside the ``with`` block.

    ``args`` are llama-server flags (``-ngl``, ``-ts``, ``-ot``, ``-c``, ``--rpc`` ...) without
    ``--host``/``--port``, which fit owns. ``-lv 4`` is added unless a verbosity is given,
    because the buffer sizes ``report()`` reads are logged at that level.

    Example::

        with LlamaServer(model, ["-c", "2048", "--fit", "off"]) as server:
            timings = complete(server.url, "Hello", n_predict=16).timings
            report = server.report()
    """

    def __init__(
        self,
        model: Path | None,
        args: Sequence[str] = (),
        *,
        binary: Path | str | None = None,
        log_path: Path | None = None,
        startup_timeout_s: float = 600.0,
        stop_grace_s: float = 10.0,
        progress: Callable[[str], None] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        owned = [flag for flag in args if flag in _OWNED_FLAGS]
        if owned:
            raise BadInput(f"fit picks the host and port itself; remove {', '.join(owned)}")
        self.model = model
        self.args = list(args)
        self.binary = find_llama_server(binary).path
        self.log_path = log_path or default_log_path("llama-server")
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.progress = progress
        self.env = env
        self.port: int | None = None
        self._process: ServerProcess | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise OperationFailed("llama-server is not running")
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def has_exited(self) -> bool:
        """Whether the server that was started has exited since (it is not reaped here)."""
        return self._process is not None and self._process.exit_code() is not None

    def argv(self, port: int) -> list[str]:
        argv = [str(self.binary)]
        if self.model is not None:
            argv += ["-m", str(self.model)]
        argv += self.args
        if not any(flag in _VERBOSITY_FLAGS for flag in self.args):
            argv += ["-lv", _LOG_VERBOSITY]
        return [*argv, "--host", HOST, "--port", str(port)]

    def _start(self) -> None:
        self.start()

    def start(self) -> None:
        """Start and wait until ready; on any failure (Ctrl-C included) nothing is left."""
        for attempt in range(3):
            self.port = free_port()
            self._process = spawn(self.argv(self.port), self.log_path, self.env)
            try:
                self._wait_ready()
                return
            except ServerFailed as failure:
                self.stop()
                bind_lost = any(text in failure.log_path.read_text() for text in _BIND_FAILURES)
                if not bind_lost or attempt == 2:
                    raise
            except BaseException:
                self.stop()
                raise

    def _wait_ready(self) -> None:
        assert self._process is not None and self.port is not None
        deadline = time.monotonic() + self.startup_timeout_s
        last_line = ""
        while True:
            code = self._process.exit_code()
            if code is not None:
                raise self._failure(
                    f"llama-server exited with status {code} before it was ready", code
                )
            # a 200 from a port someone else grabbed in the meantime must not count
            if self._healthy() and owns_port(self._process.pid, self.port):
                return
            if time.monotonic() >= deadline:
                raise self._failure(
                    f"llama-server was not ready after {self.startup_timeout_s:.0f} s"
                )
            if self.progress is not None:
                lines = self._process.log_text().rstrip().splitlines()
                if lines and lines[-1] != last_line:
                    last_line = lines[-1]
                    self.progress(last_line)
            time.sleep(0.2)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except (OSError, ValueError):
            return False

    def _failure(self, what: str, exit_code: int | None = None) -> ServerFailed:
        assert self._process is not None
        text = self._process.log_text()
        report = parse_server_log(text)
        reason = report.failure_reason()
        lines = "\n".join(f"  {line}" for line in relevant_lines(text))
        because = f": {reason}" if reason else ""
        return ServerFailed(
            f"{what}{because} (log: {self.log_path})\n{lines}",
            log_path=self.log_path,
            report=report,
            exit_code=exit_code,
        )

    def report(self) -> RunReport:
        """The log so far, parsed (complete for startup once the server is ready)."""
        return parse_server_log(self.log_path.read_text(errors="replace"))

    def stop(self) -> int | None:
        """Stop the server (SIGTERM, then SIGKILL) and reap it; its exit status."""
        if self._process is None:
            return None
        process, self._process = self._process, None
        return process.stop(self.stop_grace_s)


# --- ggml-rpc-server ------------------------------------------------------------------------


class RpcServers(_ProcessContext):
    """``count`` ggml-rpc-server processes on 127.0.0.1, each one more llama.cpp device.

    Flags of the pinned ``tools/rpc/rpc-server.cpp``: ``-H`` host, ``-p`` port, ``-t``
    threads (default 1), ``-d`` devices, ``-c`` local tensor cache (off here: it writes under
    the user's cache folder and makes repeated runs differ). It has no memory-limit flag; an
    RPC server reports its backend's real free memory.

    Inside the block, ``endpoints`` are ``127.0.0.1:PORT`` in start order; pass ``rpc_arg`` as
    ``--rpc``. llama-server names them ``RPC0``, ``RPC1``... in that order, and their buffer
    types ``RPC0[127.0.0.1:PORT]`` (see ``profiles.server_log``): ``buffer_type(i)`` gives the
    name ``-ot`` needs.

    ``debug=True`` starts them with ``GGML_RPC_DEBUG=1``: their logs then carry the exact
    bytes of every buffer llama-server allocates on them (``run_until_ready`` attaches those
    of its run to the ``RunReport``). The servers take one client at a time and can serve
    many runs one after another.
    """

    def __init__(
        self,
        count: int = 2,
        *,
        binary: Path | str | None = None,
        threads: int | None = None,
        devices: Sequence[str] = (),
        cache: bool = False,
        log_dir: Path | None = None,
        startup_timeout_s: float = 30.0,
        stop_grace_s: float = 5.0,
        env: dict[str, str] | None = None,
        debug: bool = False,
    ) -> None:
        if count < 1:
            raise BadInput(f"RpcServers needs at least one server, got {count}")
        self.count = count
        self.binary = find_rpc_server(binary).path
        self.threads = threads
        self.devices = list(devices)
        self.cache = cache
        self.log_dir = log_dir
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.debug = debug
        self.env = {**(env or os.environ), "GGML_RPC_DEBUG": "1"} if debug else env
        self.endpoints: list[str] = []
        self._processes: list[ServerProcess] = []

    @property
    def rpc_arg(self) -> str:
        return ",".join(self.endpoints)

    def buffer_type(self, index: int, device_in_server: int = 0) -> str:
        """The ``-ot`` buffer-type name of server ``index``'s device ``device_in_server``."""
        return f"RPC{device_in_server}[{self.endpoints[index]}]"

    def argv(self, port: int) -> list[str]:
        argv = [str(self.binary), "-H", HOST, "-p", str(port)]
        if self.threads is not None:
            argv += ["-t", str(self.threads)]
        if self.devices:
            argv += ["-d", ",".join(self.devices)]
        if self.cache:
            argv.append("-c")
        return argv

    def _start(self) -> None:
        for index in range(self.count):
            self._start_one(index)

    def _log_path(self, index: int) -> Path:
        if self.log_dir is not None:
            return self.log_dir / f"rpc-server-{index}.log"
        return default_log_path(f"rpc-server-{index}")

    def _start_one(self, index: int) -> None:
        for attempt in range(3):
            port = free_port()
            process = spawn(self.argv(port), self._log_path(index), self.env)
            self._processes.append(process)
            deadline = time.monotonic() + self.startup_timeout_s
            while not owns_port(process.pid, port):
                code = process.exit_code()
                if code is not None or time.monotonic() >= deadline:
                    text = process.log_text()
                    if code is not None and attempt < 2 and any(b in text for b in _BIND_FAILURES):
                        break  # lost the port to someone else: try another
                    lines = "\n".join(f"  {line}" for line in relevant_lines(text))
                    state = f"exited with status {code}" if code is not None else "is not listening"
                    raise OperationFailed(
                        f"ggml-rpc-server on port {port} {state} (log: {process.log_path})\n{lines}"
                    )
                time.sleep(0.05)
            else:
                self.endpoints.append(f"{HOST}:{port}")
                return

    def log_offsets(self) -> list[int]:
        """Where each server's log ends now: pass to ``logs_since`` after a run."""
        return [process.log_path.stat().st_size for process in self._processes]

    def logs_since(self, offsets: Sequence[int]) -> dict[str, str]:
        """endpoint -> what each server logged after ``offsets``."""
        texts = {}
        for endpoint, process, offset in zip(self.endpoints, self._processes, offsets, strict=True):
            with process.log_path.open("rb") as log:
                log.seek(offset)
                texts[endpoint] = log.read().decode(errors="replace")
        return texts

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Wait until every server has let each client it accepted go (it prints and flushes
        both events: ``ggml_backend_rpc_start_server``), so a log read now is complete."""
        deadline = time.monotonic() + timeout_s
        for endpoint, process in zip(self.endpoints, self._processes, strict=True):
            while True:
                text = process.log_text()
                if text.count("Accepted client connection") == text.count(
                    "Client connection closed"
                ):
                    break
                code = process.exit_code()
                if code is not None or time.monotonic() >= deadline:
                    state = f"exited with status {code}" if code is not None else "stays busy"
                    raise OperationFailed(
                        f"ggml-rpc-server {endpoint} {state} (log: {process.log_path})"
                    )
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop every server (SIGTERM, then SIGKILL) and reap it."""
        processes, self._processes = self._processes, []
        self.endpoints = []
        for process in processes:
            process.stop(self.stop_grace_s)


def run_until_ready(
    model: Path | None,
    args: Sequence[str] = (),
    *,
    rpc: RpcServers | None = None,
    prompts: Sequence[int] = (),
    **server_options: Any,
) -> RunReport:
    """Start llama-server, wait until it is ready, serve ``prompts`` (one ``/completion`` of
    that many tokens each, in turn), stop it; its complete log, parsed.

    The log holds the shutdown too (the exit-time breakdown table, and at ``-lv 5`` the
    compute buffers to four decimals, at startup and as serving left them). With ``rpc``,
    ``--rpc`` naming its servers goes first (it must precede ``-ot``), and when they run with
    ``debug`` the exact bytes each of them allocated during this run are attached
    (``RunReport.rpc_allocations``). A launch that
    fails raises ``ServerFailed``. ``server_options`` go to ``LlamaServer``.
    """
    rpc_args = ["--rpc", rpc.rpc_arg] if rpc is not None else []
    server = LlamaServer(model, [*rpc_args, *args], **server_options)
    offsets = rpc.log_offsets() if rpc is not None else []
    try:
        with server:
            for n_tokens in prompts:
                complete(server.url, [PROMPT_TOKEN] * n_tokens, n_predict=1)
    finally:
        if rpc is not None:
            rpc.wait_idle()  # the next run must find them free, also after a failed one
    report = parse_server_log(server.log_path.read_text(errors="replace"))
    if rpc is not None and rpc.debug:
        report = report.with_rpc_debug_logs(rpc.logs_since(offsets))
    return report


# --- /completion client ---------------------------------------------------------------------


class CompletionTimings(BaseModel):
    """llama-server's ``timings`` object of one ``/completion`` (its own clock)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    prompt_n: int
    prompt_ms: float
    prompt_per_second: float
    predicted_n: int
    predicted_ms: float
    predicted_per_second: float
    cache_n: int = 0


class Completion(BaseModel):
    model_config = ConfigDict(frozen=True)

    content: str
    timings: CompletionTimings
    stop_type: str | None = None


# the token id ``run_until_ready`` fills its prompts with: an ordinary token of every model
# fit launches (gemma-3-270m and the synthetic vocabularies); a list of ids is tokenized as is
PROMPT_TOKEN = 100


def complete(
    base_url: str,
    prompt: str | Sequence[int],
    *,
    n_predict: int = 32,
    ignore_eos: bool = True,
    cache_prompt: bool = False,
    timeout_s: float = 600.0,
    extra: dict[str, object] | None = None,
) -> Completion:
    """POST ``/completion`` and return the text with the server's timings. ``prompt`` is
    text, or token ids (exactly that many tokens are evaluated).

    ``ignore_eos`` (default) makes the server generate exactly ``n_predict`` tokens and
    ``cache_prompt=False`` makes it evaluate the whole prompt, so timings measure speed.
    """
    body = {
        "prompt": prompt,
        "n_predict": n_predict,
        "ignore_eos": ignore_eos,
        "cache_prompt": cache_prompt,
        **(extra or {}),
    }
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/completion",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")[:300]
        raise OperationFailed(f"/completion answered {error.code}: {detail}") from None
    except (OSError, ValueError) as error:
        raise OperationFailed(f"/completion at {base_url} failed: {error}") from None
    if "timings" not in payload:
        raise OperationFailed(f"/completion answered without timings: {str(payload)[:300]}")
    return Completion(
        content=payload.get("content", ""),
        timings=CompletionTimings.model_validate(payload["timings"]),
        stop_type=payload.get("stop_type"),
    )
