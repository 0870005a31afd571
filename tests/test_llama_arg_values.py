"""Values of llama-server arguments, checked as the pinned llama-server checks them.

Three layers, each against the pinned build (the ``llama``-marked tests ask the real binary):
``common/arg.cpp``'s parsing (``std::stoi``/``stoull``/``stof``, the handlers' ranges and
allowed values), values it lets through that the server cannot start with, and the options
it knows but fit does not model (a different message from options it does not know).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from solver.errors import BadInput
from solver.llama.args import parse_llama_args, render_llama_args
from solver.llama.options import (
    IGNORED_INT_OPTIONS,
    MEMORY_OPTIONS,
    RETIRED_SPELLINGS,
    OptionKind,
    option_kind,
    server_options,
    unmodelled_effect,
)

# Refused while common/arg.cpp parses the command line ("error while handling argument").
REFUSED_BY_THE_PARSER = [
    (["-c", "2147483648"], "out of range"),  # std::stoi
    (["-t", "abc"], "not an integer"),  # an ignored option's value is still an int
    (["--prio", "5"], "invalid value"),  # GGML_SCHED_PRIO_LOW..REALTIME
    (["--sleep-idle-seconds", "0"], "invalid value"),
    (["--repeat-last-n", "-1"], "invalid value"),
    (["-ts", "1e39"], "out of range"),  # std::stof: beyond float
    (["-ts", "1e-39"], "out of range"),  # std::stof: underflow
    (["--fit-target", "99999999999999999999"], "out of range"),  # std::stoull
    (["-np", "0"], "n_parallel"),
    (["--n-cpu-moe", "-1"], "invalid value"),
]
# Let through by the parser, fatal when the server starts (measured on the pinned build).
REFUSED_AT_STARTUP = [
    (["-c", "-5", "-ngl", "99"], "-5 is not a context size"),  # GGML_ASSERT(n_outputs >= 1)
    (["-c", "1"], "context of 1 token"),  # get_sub_batch
    (["-b", "3"], "4 server slots"),  # GGML_ASSERT(n_outputs_max <= cparams.n_outputs_max)
    (["-b", "1", "-np", "1"], "below 2 tokens"),  # get_sub_batch
    (["-b", "0"], "batch of 0 tokens"),
    (["-np", "257", "-b", "512"], "LLAMA_MAX_SEQ"),  # n_seq_max must be <= 256
]
# Let through and run by the server, but only as an unsigned wrap-around or an undefined
# split: refused by fit, with what llama-server would make of it.
REFUSED_AS_ACCIDENTS = [
    (["-ub", "-5"], "-ub 0 says"),
    (["--fit-ctx", "-5"], "4294967291"),
    (["--fit-target", "-5"], "18446744073709551611"),
    (["-ts", "inf"], "finite"),
    (["-ts", "1,-1"], "add up to 0"),
]
ACCEPTED = [
    ["-c", "2"], ["-c", "0"], ["-b", "4"], ["-b", "2", "-np", "2"], ["-ub", "0"], ["-ub", "1"],
    ["-np", "-5"], ["-np", "256", "-b", "256"], ["--kv-unified-per-slot", "-5"],
    ["--fit-target", "5000000000"], ["-ts", "0x1p1,1"], ["-ts", "-1,3"], ["-ngl", "-7"],
    ["-t", "-1"], ["--prio", "-1"], ["--sleep-idle-seconds", "-1"], ["-c", " +4096tokens"],
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    REFUSED_BY_THE_PARSER + REFUSED_AT_STARTUP + REFUSED_AS_ACCIDENTS,
    ids=lambda x: " ".join(x) if isinstance(x, list) else "",
)
def test_refused_values_are_one_clear_line(args: list[str], message: str) -> None:
    with pytest.raises(BadInput, match=re.escape(message)) as refused:
        parse_llama_args(args)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("args", ACCEPTED, ids=" ".join)
def test_accepted_values_parse_and_render_back(args: list[str]) -> None:
    config = parse_llama_args(args)
    assert parse_llama_args(render_llama_args(config)) == config


def test_the_issue_example_exits_2_with_one_line() -> None:
    args = ["memory", "qwen3-30b-a3b", "--", "-c", "-5", "-ngl", "99"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.strip().count("\n") == 0
    assert "-5 is not a context size" in result.stderr and "n_ctx=0" not in result.output
    as_json = CliRunner().invoke(cli, [*args[:2], "--json", *args[2:]])
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["error"]["kind"] == "bad_input"


def test_a_flag_this_version_does_not_have_names_its_replacement() -> None:
    """``--mlock`` is not an option of the pinned llama-server (``--load-mode`` replaced it):
    refused as llama-server refuses it, without blaming llama-server for fit's refusal."""
    result = CliRunner().invoke(cli, ["memory", "qwen3-30b-a3b", "--", "--mlock"])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "--load-mode mlock" in line and not line.startswith("Error: llama-server")
    assert "has no --mlock" in line
    for spelling in RETIRED_SPELLINGS:
        assert spelling not in server_options()


def test_a_valid_option_fit_does_not_model_says_what_fit_would_need() -> None:
    result = CliRunner().invoke(cli, ["memory", "qwen3-30b-a3b", "--", "--lora", "a.gguf"])
    assert result.exit_code == 2
    assert "--lora is a valid llama-server option that fit does not model (it loads" in (
        result.stderr
    )
    assert "fit would need" in result.stderr


def test_every_unmodelled_option_says_what_it_changes() -> None:
    for option in server_options().values():
        if option_kind(option) is OptionKind.UNMODELLED:
            assert unmodelled_effect(option) is not None, option.key


def test_integer_tables_name_real_options() -> None:
    keys = {option.key for option in server_options().values()}
    for key in IGNORED_INT_OPTIONS:
        assert key in keys and option_kind(server_options()[key]) is OptionKind.IGNORED, key


def _int_handler_keys(arg_cpp: str) -> set[str]:
    """Keys of the server's options whose handler takes an ``int`` in ``common/arg.cpp``."""
    table = server_options()
    keys = set()
    for match in re.finditer(r"common_arg\(\s*\{([^}]*)\}", arg_cpp):
        handler = arg_cpp.find("[](common_params", match.end())
        signature = arg_cpp[handler : arg_cpp.find(")", handler)]
        names = [n for n in re.findall(r'"([^"]+)"', match.group(1)) if n in table]
        if re.search(r",\s*int\s+\w+$", signature) and names:
            keys.add(table[names[0]].key)
    return keys


def test_every_int_option_is_checked_as_an_int(llama_cpp_source: Path) -> None:
    """Each server option ``arg.cpp`` reads with ``std::stoi`` is either interpreted (memory),
    in the ignored-int table, or refused anyway (unmodelled)."""
    arg_cpp = (llama_cpp_source / "common" / "arg.cpp").read_text()
    int_keys = _int_handler_keys(arg_cpp)
    assert "--ctx-size" in int_keys and "--threads" in int_keys
    for key in int_keys:
        kind = option_kind(server_options()[key])
        if kind is OptionKind.IGNORED:
            assert key in IGNORED_INT_OPTIONS, key
        else:
            assert key in MEMORY_OPTIONS or kind is OptionKind.UNMODELLED, key


# --- the real binary ------------------------------------------------------------------------


def _parser_verdict(binary: Path, args: list[str]) -> str:
    """``refused`` when llama-server's argument parser refuses ``args``, else ``parsed`` (it
    went on to load the model, which does not exist)."""
    result = subprocess.run(
        [str(binary), "-m", "/nonexistent/model.gguf", "--port", "1", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    output = result.stdout + result.stderr
    if "error while handling argument" in output or "invalid argument" in output:
        return "refused"
    assert "failed to load model" in output, output[-2000:]
    return "parsed"


@pytest.mark.llama
@pytest.mark.parametrize(("args", "_message"), REFUSED_BY_THE_PARSER, ids=str)
def test_the_binary_refuses_what_fit_says_its_parser_refuses(
    args: list[str], _message: str, llama_server_bin: Path
) -> None:
    assert _parser_verdict(llama_server_bin, args) == "refused"


@pytest.mark.llama
@pytest.mark.parametrize(("args", "_message"), REFUSED_AT_STARTUP + REFUSED_AS_ACCIDENTS, ids=str)
def test_the_binary_parses_what_fit_refuses_for_other_reasons(
    args: list[str], _message: str, llama_server_bin: Path
) -> None:
    assert _parser_verdict(llama_server_bin, args) == "parsed"


@pytest.mark.llama
@pytest.mark.parametrize("spelling", sorted(RETIRED_SPELLINGS))
def test_the_binary_has_no_retired_spelling(spelling: str, llama_server_bin: Path) -> None:
    assert _parser_verdict(llama_server_bin, [spelling]) == "refused"


STARTS = [["-c", "2"], ["-b", "4"], ["-b", "2", "-np", "2"], ["-ub", "0"], ["-np", "-5"]]
DOES_NOT_START = [["-c", "-5"], ["-c", "1"], ["-b", "3"], ["-b", "1", "-np", "1"],
                  ["-np", "257", "-b", "512"]]  # fmt: skip


@pytest.mark.llama
@pytest.mark.parametrize(
    ("args", "starts"),
    [(args, True) for args in STARTS] + [(args, False) for args in DOES_NOT_START],
    ids=str,
)
def test_startup_rules_match_the_binary(
    args: list[str], starts: bool, run_llama, synthetic_gguf
) -> None:
    """The startup rules fit applies are the pinned server's own: what fit refuses does not
    start, the edge values fit accepts do."""
    from profiles.server import ServerFailed

    (model,) = synthetic_gguf("llama")
    if starts:
        parse_llama_args(args)
        run_llama(model, *args, "--fit", "off")
    else:
        with pytest.raises(BadInput):
            parse_llama_args(args)
        with pytest.raises(ServerFailed):
            run_llama(model, *args, "--fit", "off")
