"""hf:// models through huggingface_hub against a local stand-in Hub: same inventory as the
local file, and only the header crosses the wire (header size + at most 1 MiB per file)."""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from gguf import GGUF_MAGIC, GGMLQuantizationType, GGUFWriter

from cli import cli
from solver.errors import BadInput
from solver.gguf.hub import HubFile, parse_hf_url
from solver.gguf.inventory import Inventory
from solver.gguf.reader import MAX_WINDOW, read_local_header
from solver.gguf.sources import load_inventory
from solver.quantities import MIB
from tests.fake_hub import COMMIT, FakeHub, use_hub
from tests.gguf_bytes import llama_metadata, write_llama

REPO = "someone/models-GGUF"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    with FakeHub() as server:
        use_hub(monkeypatch, server, tmp_path / "hf-home")
        yield server


def same_model(remote: Inventory, local: Inventory) -> None:
    differ = {"source", "files", "bytes_read"}
    assert remote.model_dump(exclude=differ) == local.model_dump(exclude=differ)


def assert_header_only(hub: FakeHub, path: str, header_size: int) -> None:
    sent = hub.bytes_sent[(REPO, path)]
    assert header_size <= sent <= header_size + MIB, (path, sent, header_size)


def test_remote_gemma_equals_local(hub: FakeHub, gemma_gguf: Path) -> None:
    hub.add(REPO, "gemma/gemma.gguf", gemma_gguf)
    remote = load_inventory(f"hf://{REPO}/gemma/gemma.gguf")
    local = load_inventory(str(gemma_gguf))
    same_model(remote, local)
    assert remote.files == (f"hf://{REPO}/gemma/gemma.gguf@{COMMIT}",)
    assert remote.bytes_read == hub.bytes_sent[(REPO, "gemma/gemma.gguf")]
    assert_header_only(hub, "gemma/gemma.gguf", local.header_bytes)


def test_remote_split_set_equals_local(hub: FakeHub, tmp_path: Path) -> None:
    parts = write_llama(tmp_path / "tiny.gguf", split_max_tensors=7, extra_tokens=20000)
    for part in parts:
        hub.add(REPO, part.name, part)
    remote = load_inventory(f"hf://{REPO}/{parts[2].name}")
    local = load_inventory(str(parts[0]))
    same_model(remote, local)
    assert len(remote.files) == 3
    for part in parts:
        header, _ = read_local_header(part)
        assert_header_only(hub, part.name, header.header_size)
    # Parts after the first are fetched at the commit the first one resolved to.
    later = [path for method, path, *_ in hub.requests if method == "HEAD"][1:]
    assert later and all(f"/resolve/{COMMIT}/" in path for path in later)


def write_sparse_model(path: Path, n_tokens: int, n_ff: int) -> None:
    """A complete one-layer Q4_K llama (n_embd 4096, an ``n_ff``-wide FFN, ``n_tokens``
    tokens) whose header is real and whose several GB of tensor data is a hole."""
    n_embd, q4k_block, q4k_bytes = 4096, 256, 144
    writer = GGUFWriter(path, "llama")
    llama_metadata(writer, n_layers=1, n_embd=n_embd)
    writer.add_feed_forward_length(n_ff)
    writer.add_token_list([f"token-{i:06d}" for i in range(n_tokens)])
    kv_width = n_embd // 2  # llama_metadata: 4 heads, 2 KV heads
    shapes = {  # ggml order: row length first
        "token_embd.weight": (n_embd, n_tokens),
        "output_norm.weight": (n_embd,),
        "output.weight": (n_embd, n_tokens),
        "blk.0.attn_norm.weight": (n_embd,),
        "blk.0.attn_q.weight": (n_embd, n_embd),
        "blk.0.attn_k.weight": (n_embd, kv_width),
        "blk.0.attn_v.weight": (n_embd, kv_width),
        "blk.0.attn_output.weight": (n_embd, n_embd),
        "blk.0.ffn_norm.weight": (n_embd,),
        "blk.0.ffn_gate.weight": (n_embd, n_ff),
        "blk.0.ffn_up.weight": (n_embd, n_ff),
        "blk.0.ffn_down.weight": (n_ff, n_embd),
    }
    for name, shape in shapes.items():
        if len(shape) == 1:
            writer.add_tensor_info(name, shape, np.dtype(np.float32), 4 * shape[0])
            continue
        nbytes = shape[0] * shape[1] // q4k_block * q4k_bytes
        writer.add_tensor_info(
            name, shape[::-1], np.dtype(np.float16), nbytes, GGMLQuantizationType.Q4_K
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    assert writer.fout is not None
    header_end = writer.fout[0].tell()
    writer.close()
    data_offset = -(-header_end // 32) * 32
    total = sum(-(-info.nbytes // 32) * 32 for info in writer.tensors[0].values())
    os.truncate(path, data_offset + total)


def test_large_remote_file_transfers_only_its_header(hub: FakeHub, tmp_path: Path) -> None:
    big = tmp_path / "big.gguf"
    write_sparse_model(big, n_tokens=150_000, n_ff=917_504)  # 3 x 2 GiB of FFN
    assert big.stat().st_size > 6 * 1024**3
    hub.add(REPO, "big.gguf", big)
    remote = load_inventory(f"hf://{REPO}/big.gguf")
    local = load_inventory(str(big))
    same_model(remote, local)
    assert local.header_bytes > 2 * MAX_WINDOW  # several range windows were needed
    assert_header_only(hub, "big.gguf", local.header_bytes)
    assert remote.file_bytes == big.stat().st_size


@pytest.mark.parametrize(
    "url",
    [f"hf://{REPO}/m.gguf@{COMMIT}", f"hf://{REPO}@main/m.gguf", f"hf://models/{REPO}/m.gguf"],
)
def test_revision_forms(hub: FakeHub, tmp_path: Path, url: str) -> None:
    (path,) = write_llama(tmp_path / "m.gguf")
    hub.add(REPO, "m.gguf", path)
    assert load_inventory(url).n_tensors == load_inventory(str(path)).n_tensors


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_unknown_revision_exits_2(hub: FakeHub, tmp_path: Path) -> None:
    (path,) = write_llama(tmp_path / "m.gguf")
    hub.add(REPO, "m.gguf", path)
    result = run_cli("inspect", f"hf://{REPO}/m.gguf@v9")
    assert result.exit_code == 2, result.output
    assert "revision 'v9' not found" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_missing_remote_file_exits_2(hub: FakeHub) -> None:
    result = run_cli("inspect", f"hf://{REPO}/absent.gguf")
    assert result.exit_code == 2, result.output
    assert "no such file in the repository" in result.output


def test_remote_split_set_with_missing_part_exits_2(hub: FakeHub, tmp_path: Path) -> None:
    parts = write_llama(tmp_path / "s.gguf", split_max_tensors=7)
    hub.add(REPO, parts[0].name, parts[0])
    result = run_cli("inspect", f"hf://{REPO}/{parts[0].name}")
    assert result.exit_code == 2, result.output
    assert parts[1].name in result.output


def test_server_ignoring_ranges_fails_without_downloading(hub: FakeHub, gemma_gguf: Path) -> None:
    hub.add(REPO, "gemma.gguf", gemma_gguf)
    hub.ignore_range = True
    result = run_cli("inspect", f"hf://{REPO}/gemma.gguf")
    assert result.exit_code == 1, result.output
    assert "ignores HTTP range requests" in result.output


def test_unreachable_hub_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    result = run_cli("inspect", f"hf://{REPO}/m.gguf")
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: hf://{REPO}/m.gguf")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("hf://a/b/c.gguf", HubFile("a/b", "c.gguf")),
        ("hf://a/b/dir/c.gguf@v1.0", HubFile("a/b", "dir/c.gguf", "v1.0")),
        ("hf://a/b@refs/pr/3/c.gguf", HubFile("a/b", "c.gguf", "refs/pr/3")),
        ("hf://a/b@v1/c.gguf@v2", None),
        ("hf://a/b/c.gguf@refs/pr/3", HubFile("a/b", "c.gguf", "refs/pr/3")),
        ("hf://datasets/a/b/c.gguf", HubFile("a/b", "c.gguf", None, "dataset")),
    ],
)
def test_parse_hf_url(url: str, expected: HubFile | None) -> None:
    if expected is None:
        with pytest.raises(BadInput):
            parse_hf_url(url)
        return
    assert parse_hf_url(url) == expected


@pytest.mark.parametrize(
    "url", ["hf://a/b", "hf://a/b/c.bin", "hf://a/b/c.gguf@", "hf://a//c.gguf"]
)
def test_bad_hf_urls(url: str) -> None:
    with pytest.raises(BadInput):
        parse_hf_url(url)


# --- misbehaving servers, hostile URLs, one-line failures (issue 15) -----------------------


def one_line(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_connection_dropped_mid_body_is_one_line(hub: FakeHub, gemma_gguf: Path) -> None:
    hub.add(REPO, "gemma.gguf", gemma_gguf)
    hub.drop_after = 5000
    started = time.monotonic()
    result = run_cli("inspect", f"hf://{REPO}/gemma.gguf")
    one_line(result, 1, "broke after 5000 of", "(3 tries)", "check the network and retry")
    assert time.monotonic() - started < 30


def test_slow_drip_stops_at_the_deadline(
    hub: FakeHub, gemma_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 byte/s never trips a per-read socket timeout; the overall deadline ends it."""
    hub.add(REPO, "gemma.gguf", gemma_gguf)
    hub.drip_bytes_per_s = 20
    monkeypatch.setenv("FIT_HUB_TIMEOUT_S", "2")
    started = time.monotonic()
    result = run_cli("inspect", f"hf://{REPO}/gemma.gguf")
    elapsed = time.monotonic() - started
    one_line(result, 1, "did not finish within 2 s", "FIT_HUB_TIMEOUT_S")
    assert elapsed < 10, elapsed


@pytest.mark.parametrize("value", ["0", "-1", "soon", "1e9"])
def test_bad_timeout_setting_is_bad_input(hub: FakeHub, monkeypatch, value: str) -> None:
    monkeypatch.setenv("FIT_HUB_TIMEOUT_S", value)
    one_line(run_cli("inspect", f"hf://{REPO}/m.gguf"), 2, "FIT_HUB_TIMEOUT_S")


@pytest.mark.parametrize(
    "url",
    [
        "hf://o/r/../../../../api/whoami-v2.gguf",
        "hf://o/r/./m.gguf",
        "hf://o/r/dir/../m.gguf",
        "hf://o/r@main/../../api/x.gguf",
        "hf://o/../api/x.gguf",
        "hf://../r/x.gguf",
        "hf://o/r/a\\..\\b.gguf",
        "hf://o/r/a\x00b.gguf",
        "hf://o--x/r/m.gguf",
    ],
)
def test_urls_leaving_the_repository_send_nothing(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_for_the_test")
    result = run_cli("inspect", url)
    one_line(result, 2)
    assert hub.requests == []


def test_the_token_only_goes_to_resolve_urls(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (path,) = write_llama(tmp_path / "m.gguf")
    hub.add(REPO, "m.gguf", path)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_for_the_test")
    assert load_inventory(f"hf://{REPO}/m.gguf").n_tensors > 0
    assert hub.requests
    for _method, request_path, _range, authorization in hub.requests:
        assert request_path.startswith(f"/{REPO}/resolve/")
        assert authorization == "Bearer hf_secret_token_for_the_test"


@pytest.mark.parametrize(
    ("status", "token", "code", "fragments"),
    [
        ((401, "", ""), None, 2, ("HTTP 401", "set HF_TOKEN or run `hf auth login`")),
        ((401, "", ""), "hf_x", 2, ("HTTP 401", "check that HF_TOKEN")),
        ((403, "GatedRepo", "gated"), None, 2, ("gated repository", "accept its conditions")),
        ((403, "", "forbidden"), "hf_x", 2, ("access denied (HTTP 403)",)),
        ((404, "RepoNotFound", ""), None, 2, ("repository not found, or private",)),
        ((429, "", "slow down"), None, 1, ("HTTP 429", "wait a few minutes")),
        ((503, "", ""), None, 1, ("HTTP 503", "retry later")),
    ],
)
def test_http_failures_say_what_to_do(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch, status, token, code, fragments
) -> None:
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    hub.status = status
    one_line(run_cli("inspect", f"hf://{REPO}/m.gguf"), code, *fragments)


def test_dns_failure_says_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://fit-test-host.invalid")
    one_line(run_cli("inspect", f"hf://{REPO}/m.gguf"), 1, "DNS lookup failed", "offline")


def test_refused_connection_names_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    one_line(run_cli("inspect", f"hf://{REPO}/m.gguf"), 1, "refused the connection", "HF_ENDPOINT")


def test_offline_mode_says_so(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    one_line(run_cli("inspect", f"hf://{REPO}/m.gguf"), 1, "HF_HUB_OFFLINE is set")


def test_huge_tensor_name_length_downloads_one_window(hub: FakeHub, tmp_path: Path) -> None:
    """Issue 15: a name length of 250,000,000 cost 249 MB over hf://; now one window."""
    length = 250_000_000
    path = tmp_path / "long-name.gguf"
    header = struct.pack("<IIQQ", GGUF_MAGIC, 3, 1, 0) + struct.pack("<Q", length) + b"x" * 64
    path.write_bytes(header)
    os.truncate(path, length + 4096)
    hub.add(REPO, "long-name.gguf", path)
    one_line(run_cli("inspect", f"hf://{REPO}/long-name.gguf"), 2, "250000000 bytes long")
    assert hub.bytes_sent[(REPO, "long-name.gguf")] <= MAX_WINDOW
