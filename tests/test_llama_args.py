"""llama-server's command line as common/arg.cpp of the pinned llama.cpp reads it.

Expected values are the C++ handlers' behaviour (cited per test) or the real binary's own
answer where it is built.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from solver.errors import BadInput
from solver.llama.args import (
    LLM_FFN_EXPS_REGEX,
    LaunchConfig,
    TensorOverride,
    parse_llama_args,
    render_llama_args,
)
from solver.llama.options import OptionKind, option_kind, server_options


def test_defaults_of_this_version() -> None:
    # common.h + server example: ctx 0 (from model), batch 2048, ubatch 512, np -1 (auto),
    # fa auto, --fit on, mmap (load mode auto), repack on, ngl -1 (auto = all)
    config = parse_llama_args([])
    assert (config.n_ctx, config.n_batch, config.n_ubatch, config.n_parallel) == (0, 2048, 512, -1)
    assert config.flash_attn == "auto" and config.fit and config.use_mmap and config.repack
    assert config.n_gpu_layers == -1 and config.cache_type_k == config.cache_type_v == "F16"


def test_aliases_and_underscores() -> None:
    # "--" options have '_' replaced by '-' before lookup
    a = parse_llama_args(["--ctx_size", "4096", "--n-gpu-layers", "12", "--flash_attn", "on"])
    b = parse_llama_args(["-c", "4096", "-ngl", "12", "-fa", "on"])
    assert a == b


def test_ngl_named_values() -> None:
    assert parse_llama_args(["-ngl", "auto"]).n_gpu_layers == -1
    assert parse_llama_args(["-ngl", "all"]).n_gpu_layers == -2
    assert parse_llama_args(["-ngl", "99"]).n_gpu_layers == 99


def test_stoi_semantics() -> None:
    # std::stoi: leading blanks and sign accepted, trailing junk ignored, no digits throws
    assert parse_llama_args(["-c", " +4096tokens"]).n_ctx == 4096
    with pytest.raises(BadInput):
        parse_llama_args(["-c", "lots"])


def test_ctx_zero_disables_fit_context_reduction() -> None:
    assert parse_llama_args(["-c", "0"]).fit_min_ctx == 2**32 - 1


def test_override_rules_keep_order_and_split_on_commas() -> None:
    config = parse_llama_args(["-ot", "a=CPU,b=CUDA1", "--cpu-moe", "-ot", "c=CUDA0"])
    assert config.overrides == (
        TensorOverride(pattern="a", buffer_type="CPU"),
        TensorOverride(pattern="b", buffer_type="CUDA1"),
        TensorOverride(pattern=LLM_FFN_EXPS_REGEX, buffer_type="CPU"),
        TensorOverride(pattern="c", buffer_type="CUDA0"),
    )


def test_n_cpu_moe_rules() -> None:
    # llm_add_n_cpu_ffn_overrides: "blk\\.%d" + LLM_FFN_EXPS_REGEX for the first N layers
    config = parse_llama_args(["--n-cpu-moe", "2"])
    assert [r.pattern for r in config.overrides] == [
        r"blk\.0\.ffn_(up|down|gate|gate_up)_(ch|)exps",
        r"blk\.1\.ffn_(up|down|gate|gate_up)_(ch|)exps",
    ]
    with pytest.raises(BadInput):
        parse_llama_args(["--n-cpu-moe", "-1"])


def test_override_buffer_must_be_known_when_read() -> None:
    # parse_tensor_buffer_overrides only knows devices registered so far
    with pytest.raises(BadInput, match="unknown buffer type"):
        parse_llama_args(["-ot", "x=RPC0[127.0.0.1:5000]", "--rpc", "127.0.0.1:5000"])
    config = parse_llama_args(["--rpc", "127.0.0.1:5000", "-ot", "x=RPC0[127.0.0.1:5000]"])
    assert config.overrides[0].buffer_type == "RPC0[127.0.0.1:5000]"
    with pytest.raises(BadInput, match="unknown buffer type"):
        parse_llama_args(["-ot", "x=CUDA2"], gpu_buffers=["CUDA0", "CUDA1"])
    with pytest.raises(BadInput, match="invalid value"):
        parse_llama_args(["-ot", "no-equals-sign"])


def test_tensor_split_separators() -> None:
    # regex [,/]+ splits; std::stof per part
    assert parse_llama_args(["-ts", "3,1/2"]).tensor_split == (3.0, 1.0, 2.0)
    assert parse_llama_args(["-ts", "0.75,0.25"]).tensor_split == (0.75, 0.25)


def test_cache_types_are_lower_case_ggml_names() -> None:
    assert parse_llama_args(["-ctk", "q8_0", "-ctv", "iq4_nl"]).cache_type_v == "IQ4_NL"
    with pytest.raises(BadInput, match="Unsupported cache type"):
        parse_llama_args(["-ctk", "Q8_0"])
    with pytest.raises(BadInput, match="Unsupported cache type"):
        parse_llama_args(["-ctk", "q4_k"])


def test_boolean_pairs() -> None:
    config = parse_llama_args(["-nkvo", "--no-repack", "-kvu", "--no-op-offload"])
    assert not config.kv_offload and not config.repack and config.kv_unified
    assert not config.op_offload
    assert parse_llama_args(["-nkvo", "-kvo"]).kv_offload


def test_invalid_values() -> None:
    for args in (["-np", "0"], ["-fa", "yes"], ["--fit", "auto"], ["-sm", "rows"], ["-c"]):
        with pytest.raises(BadInput):
            parse_llama_args(args)


def test_unknown_and_unmodelled_arguments_are_errors() -> None:
    with pytest.raises(BadInput, match="invalid argument"):
        parse_llama_args(["--definitely-not-an-option"])
    with pytest.raises(BadInput, match="--load-mode none"):
        parse_llama_args(["--no-mmap"])
    with pytest.raises(BadInput, match="does not model"):
        parse_llama_args(["--lora", "adapter.gguf"])
    with pytest.raises(BadInput, match="does not model"):
        parse_llama_args(["-md", "draft.gguf"])


def test_ignored_arguments_are_kept_for_rendering() -> None:
    args = ["--host", "0.0.0.0", "--port", "8080", "--jinja", "--temp", "0.6", "-t", "8"]
    config = parse_llama_args(args)
    assert config == LaunchConfig(passthrough=tuple(args))


def test_render_round_trip() -> None:
    args = [
        "--rpc", "127.0.0.1:5000", "-c", "8192", "-b", "1024", "-ub", "256", "-np", "2",
        "-kvu", "--swa-full", "-fa", "on", "-ctk", "q8_0", "-ctv", "q5_1", "-nkvo",
        "--no-repack", "--load-mode", "none", "-ngl", "all", "-ts", "3,1", "-sm", "layer",
        "-ot", r"blk\.(1[0-9])\.ffn_.*_exps=CPU", "--n-cpu-moe", "1", "--fit", "off",
        "--jinja",
    ]  # fmt: skip
    config = parse_llama_args(args)
    assert parse_llama_args(render_llama_args(config)) == config


def test_render_refuses_comma_patterns() -> None:
    config = LaunchConfig(overrides=(TensorOverride(pattern="a{1,2}", buffer_type="CPU"),))
    with pytest.raises(BadInput, match="comma"):
        render_llama_args(config)


def test_every_option_is_classified() -> None:
    kinds = {option_kind(option) for option in server_options().values()}
    assert OptionKind.MEMORY in kinds and OptionKind.IGNORED in kinds
    assert server_options()["-ngl"].n_values == 1
    assert server_options()["-nkvo"].n_values == 0
    assert server_options()["--control-vector-layer-range"].n_values == 2


@pytest.mark.llama
def test_option_table_matches_the_built_binary(llama_server_bin: Path) -> None:
    """data/llama_server_help.txt is the pinned build's own --help."""
    help_text = subprocess.run(
        [str(llama_server_bin), "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    from importlib import resources

    stored = resources.files("data").joinpath("llama_server_help.txt").read_text()
    option_lines = [line for line in help_text.splitlines() if line.startswith("-")]
    stored_lines = [line for line in stored.splitlines() if line.startswith("-")]
    assert option_lines == stored_lines


@pytest.mark.llama
@pytest.mark.parametrize("args", [["--no-mmap"], ["--definitely-not-an-option"], ["-ctk", "Q8_0"]])
def test_llama_server_rejects_what_fit_rejects(args: list[str], llama_server_bin: Path) -> None:
    result = subprocess.run(
        [str(llama_server_bin), *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    with pytest.raises(BadInput):
        parse_llama_args(args)
