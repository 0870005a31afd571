"""`fit hardware show` and `fit hardware gpus` through click, as a user runs them."""

import json

from click.testing import CliRunner

from cli import cli
from solver.hardware.scenario import list_scenarios, load_gpu_specs


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_show_without_argument_lists_every_scenario():
    result = run("hardware", "show")
    assert result.exit_code == 0, result.output
    for name in list_scenarios():
        assert name in result.output
    listed = json.loads(run("hardware", "show", "--json").output)
    assert [row["name"] for row in listed] == list_scenarios()


def test_show_reference_as_text_and_json():
    text = run("hardware", "show", "reference")
    assert text.exit_code == 0 and "RTX 5070 Ti" in text.output and "5.0 x8" in text.output
    payload = json.loads(run("hardware", "show", "reference", "--json").output)
    assert [gpu["device"] for gpu in payload["gpus"]] == ["CUDA0", "CUDA1"]


def test_bad_scenario_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[host]\nram_gib = 64\ncores = 16\nchannels = 2\nmt_per_s = "fast"\n')
    result = CliRunner().invoke(cli, ["hardware", "show", str(bad)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0
    assert str(bad) in result.output and "mt_per_s" in result.output
    assert "Traceback" not in result.output


def test_gpus_lists_the_table():
    text = run("hardware", "gpus")
    assert text.exit_code == 0 and "RTX 4090" in text.output
    payload = json.loads(run("hardware", "gpus", "--json").output)
    assert len(payload) == len(load_gpu_specs())
    assert all(row["source"] for row in payload)


def test_help_has_examples():
    for command in ("detect", "show", "gpus"):
        result = run("hardware", command, "--help")
        assert result.exit_code == 0 and "Example" in result.output
