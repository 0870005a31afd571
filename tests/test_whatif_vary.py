"""``fit whatif --vary``: values out of range or not numbers are one clear line (exit 2), never
an OverflowError; RAM is held to the scenario format's own bounds."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cli import cli


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
