"""Issue 15's fuzz suite: thousands of mutated user files through the real CLI, each ending
with exit 0 and a sane answer or exit 1/2 and exactly one line, never a traceback, within
10 s; a sample through real processes under memory limits, each under 1 GiB peak RSS.

The generators, the judge and the counts are ``tests.fuzz_harness`` (``python -m
benchmarks.fuzz_inputs`` runs them at larger counts and prints the table). A failure names
the case (``kind#N (mutations): fit ARGS``); the same seed and N give the same input.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz_harness import (
    CASE_LIMIT_S,
    CI_COUNTS,
    RSS_LIMIT,
    Bases,
    Outcome,
    build_bases,
    cases,
    run_case,
    subprocess_sample,
)

SUBPROCESS_PER_KIND = 3


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Bases:
    return build_bases(tmp_path_factory.mktemp("fuzz-bases"))


def _report(outcomes: list[Outcome]) -> str:
    bad = [o for o in outcomes if o.problem]
    lines = [f"{len(bad)} of {len(outcomes)} cases broke the property:"]
    lines += [f"  {o.case.label}: {o.problem}: {o.stderr.strip()[-200:]!r}" for o in bad[:10]]
    return "\n".join(lines)


@pytest.mark.parametrize("kind", list(CI_COUNTS))
def test_every_mutated_input_ends_cleanly(bases: Bases, kind: str, tmp_path: Path) -> None:
    outcomes = [run_case(case, tmp_path) for case in cases(bases, kind, CI_COUNTS[kind])]
    assert not any(o.problem for o in outcomes), _report(outcomes)
    assert max(o.seconds for o in outcomes) < CASE_LIMIT_S
    exits = {o.exit_code for o in outcomes}
    # the mutations reach both sides: some inputs still work, some are refused (a damaged run
    # record is skipped with a note, never refused: the other records still calibrate)
    assert 0 in exits, kind
    assert kind == "runs" or 2 in exits, kind


def test_a_sample_in_real_processes_is_bounded_in_memory(bases: Bases, tmp_path: Path) -> None:
    """The heaviest-looking cases (huge lengths, deep nesting, huge lines) first: a GGUF
    length of 2^64-1 or 250,000,000 must be refused before anything is allocated for it."""
    sample = list(subprocess_sample(bases, CI_COUNTS, SUBPROCESS_PER_KIND))
    assert len(sample) == SUBPROCESS_PER_KIND * len(CI_COUNTS)
    outcomes = [run_case(case, tmp_path, in_subprocess=True) for case in sample]
    assert not any(o.problem for o in outcomes), _report(outcomes)
    assert all(o.rss_bytes is not None and 0 < o.rss_bytes < RSS_LIMIT for o in outcomes)


def test_deeply_nested_json_is_refused_or_skipped_in_one_line(tmp_path: Path) -> None:
    """The defect this suite found: ``json.loads`` raises RecursionError (not ValueError) on
    nesting deeper than the stack; a calibration file or run record nested so crashed
    ``fit calibrate`` with a traceback."""
    from click.testing import CliRunner

    from cli import cli
    from profiles.calibration_store import calibration_path, this_machine

    deep = "[" * 100_000 + "]" * 100_000
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "deep.json").write_text(deep)
    env = {"FIT_CONFIG_DIR": str(tmp_path / "config")}
    argv = ["calibrate", "--runs", str(runs), "--dry-run"]
    result = CliRunner().invoke(cli, argv, env=env)
    assert result.exit_code == 1 and result.exception is not None
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.startswith("Error: no measured runs"), result.stderr

    _, machine = this_machine()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIT_CONFIG_DIR", env["FIT_CONFIG_DIR"])
        path = calibration_path(machine)
    path.parent.mkdir(parents=True)
    path.write_text(deep)
    result = CliRunner().invoke(cli, argv, env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "not a fit calibration" in result.stderr


def _calibrate_with(tmp_path: Path, record: bytes) -> object:
    """``fit calibrate --dry-run`` on six good records of this machine and ``record``."""
    from click.testing import CliRunner

    from cli import cli
    from profiles.calibration_store import this_machine
    from tests.fuzz_harness import run_record

    _, machine = this_machine()
    runs = tmp_path / "runs"
    runs.mkdir()
    for i in range(6):
        (runs / f"{i}.json").write_bytes(run_record(machine, i))
    (runs / "odd.json").write_bytes(record)
    argv = ["calibrate", "--runs", str(runs), "--dry-run"]
    return CliRunner().invoke(cli, argv, env={"FIT_CONFIG_DIR": str(tmp_path / "config")})


def test_a_record_with_an_absurd_time_is_skipped_not_a_traceback(tmp_path: Path) -> None:
    """Found by the larger sweep (runs#331 at --scale 4): ``predicted_ms = 2e-300`` overflowed
    calibration's least squares into ``LinAlgError: SVD did not converge``."""
    from profiles.calibration_store import this_machine
    from tests.fuzz_harness import run_record

    _, machine = this_machine()
    record = run_record(machine, 4).replace(b'"predicted_ms": ', b'"predicted_ms": 2e-300, "x": ')
    result = _calibrate_with(tmp_path, record)
    assert result.exit_code == 0 and result.exception is None, result.output
    assert "6 runs" in result.stdout and "odd.json: not a measurement" in result.output


def test_a_record_with_a_numeric_start_time_sorts_among_the_others(tmp_path: Path) -> None:
    """Found by the larger sweep (runs#556): ``"started": 0`` is a UTC time to pydantic, and
    sorting it among fit's naive times raised TypeError."""
    from profiles.calibration_store import this_machine
    from tests.fuzz_harness import run_record

    _, machine = this_machine()
    record = run_record(machine, 6).replace(b'"2026-01-07T00:00:00"', b"0")
    result = _calibrate_with(tmp_path, record)
    assert result.exit_code == 0 and result.exception is None, result.output
    assert "7 runs" in result.stdout


def test_dry_run_does_not_print_a_conf_escape_sequence(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cli import cli

    conf = tmp_path / "models.conf"
    text = Path(__file__).with_name("fixtures").joinpath("models.conf").read_text()
    conf.write_text(text.replace("FIT=off", "FIT=\x1b]0;title\x07", 1))
    result = CliRunner().invoke(cli, ["start", "glm-flash-q8", "--dry-run", "--conf", str(conf)])
    assert "\x1b" not in result.output
    assert result.exit_code == 2 and "must be on or off" in result.output
