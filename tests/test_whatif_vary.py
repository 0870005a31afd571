"""``fit whatif --vary``: values out of range or not numbers are one clear line (exit 2), never
an OverflowError; RAM is held to the scenario format's own bounds."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cli import cli
from solver.gguf.synthetic import tiny_blueprint


@pytest.mark.parametrize(
    ("vary", "says"),
    [
        ("ram=1e308", "must be between"),
        ("ram=nan", "must be between"),
        ("ram=inf", "must be between"),
        ("ctx=-5", "must be between"),
        ("parallel=0", "must be between"),
        ("ubatch=abc", "not a number"),
    ],
)
def test_bad_vary_values_are_one_line(vary: str, says: str) -> None:
    args = ["whatif", "gpt-oss-20b", "--hardware", "reference", "--no-max-context", "--vary", vary]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in result.output


def test_a_model_whose_heads_refuse_q8_0_gets_suggestions_not_a_kv_error(
    synthetic_gguf, tmp_path
) -> None:
    """q8_0 KV is not a valid suggestion for 16-wide heads (llama.cpp refuses it); the
    explanation skips that probe instead of failing the whole command with its error."""
    (model,) = synthetic_gguf(tiny_blueprint("llama").model_copy(update={"head_dim": 16}))
    rig = tmp_path / "rig.toml"
    rig.write_text(
        'name = "tiny"\ndescription = "8 MiB of RAM, no GPU"\n'
        "[host]\nram_gib = 0.0078125\ncores = 1\nbandwidth_gb_s = 50\n"
    )
    args = ["solve", str(model), "--hardware", str(rig), "--ctx", "32768", "--ram-reserve", "0"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "does not divide" not in result.output
    assert "a context of" in result.stdout
