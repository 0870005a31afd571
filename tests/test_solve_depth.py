"""``fit solve --depth`` and the corpus interval on every speed ``fit solve`` and ``fit whatif``
print (issue 12)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli import cli
from solver.cost.fidelity import corpus_intervals


def _solve(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["solve", "gpt-oss-20b", "--ctx", "32768", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_depth_prices_decode_deeper_and_shows_empty_and_full_cache() -> None:
    shallow, deep = _solve(), _solve("--depth", "16384")
    assert shallow["estimate"]["depth"] == 0 and deep["estimate"]["depth"] == 16384
    assert deep["estimate"]["decode_tps"] < shallow["estimate"]["decode_tps"]
    at = shallow["estimate"]["decode_at_depth"]
    assert set(at) == {"0", "32768"}
    assert at["32768"] < at["0"] == shallow["estimate"]["decode_tps"]


def test_solve_estimate_carries_the_corpus_interval() -> None:
    estimate = _solve()["estimate"]
    low, high = estimate["decode_interval"]
    assert low < estimate["decode_tps"] < high
    assert estimate["interval"]["decode_rows"] == corpus_intervals().decode.rows
    result = CliRunner().invoke(cli, ["solve", "gpt-oss-20b", "--ctx", "32768"])
    assert result.exit_code == 0, result.output
    assert "p10-p90" in result.output and "public llama.cpp measurements" in result.output
    assert "full context (32768 tokens)" in result.output


def test_depth_must_be_below_the_context() -> None:
    result = CliRunner().invoke(cli, ["solve", "gpt-oss-20b", "--ctx", "8192", "--depth", "8192"])
    assert result.exit_code == 2
    assert "--depth" in result.output and "8192" in result.output


def test_whatif_rows_carry_the_interval() -> None:
    args = ["whatif", "gpt-oss-20b", "--hardware", "reference", "--no-max-context"]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    row = document["rows"][0]
    assert row["decode_interval"][0] < row["decode_tps"] < row["decode_interval"][1]
    assert document["interval"]["percentiles"] == [10, 90]
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 0, text.output
    assert "p10-p90" in text.output


# --- fit solve --compare ---------------------------------------------------------------------


def test_compare_prices_the_users_command_beside_the_plan() -> None:
    args = ["solve", "qwen3-30b-a3b:Q4_K_M", "--hardware", "5090-4090", "--ctx", "32768"]
    mine = "-c 32768 -ngl 99 --n-cpu-moe 24 -fa on"
    result = CliRunner().invoke(cli, [*args, "--json", "--compare", mine])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    compare = document["compare"]
    assert compare["args"] == mine.split() and compare["fits"] is True
    # the plan keeps every expert on a GPU: faster than 24 layers' experts on the CPU
    assert compare["decode_ratio"] > 1
    assert compare["plan_estimate"]["decode_tps"] == document["estimate"]["decode_tps"]
    low, high = compare["estimate"]["decode_interval"]
    assert low < compare["estimate"]["decode_tps"] < high
    text = CliRunner().invoke(cli, [*args, "--compare", mine])
    assert text.exit_code == 0, text.output
    assert "your command" in text.output and "x yours" in text.output


def test_compare_with_bad_arguments_is_one_line_before_solving() -> None:
    for bad, says in (("-ngl lots", "-ngl"), ("--no-such-flag", "--no-such-flag"),
                      ("-m x.gguf -ngl 99", "without -m"), ("'-c", "--compare")):  # fmt: skip
        result = CliRunner().invoke(cli, ["solve", "gpt-oss-20b", "--compare", bad])
        assert result.exit_code == 2, result.output
        assert says in result.output
        assert len(result.output.strip().splitlines()) == 1
