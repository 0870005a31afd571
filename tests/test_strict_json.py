"""Every JSON file fit writes is JSON: no ``Infinity`` or ``NaN``, which ``json.dumps``
writes by default and strict parsers refuse; and what fit writes, fit reads back."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from profiles import calibration_store
from profiles.calibration_store import calibration_path, load_calibration, save_calibration
from profiles.runs import Prediction, RunRecord, load_runs, save_run
from solver.cost.calibrate import Calibration, CalibrationRun, calibrate
from tests.test_calibrate import HOST_ONLY, _distinct_runs


def strict(text: str) -> object:
    """``json.loads`` that refuses ``Infinity``, ``-Infinity`` and ``NaN``."""

    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def infinities(value: object, path: str = "") -> list[str]:
    """Where ``value`` (a model dump) holds an infinite float."""
    if isinstance(value, float) and math.isinf(value):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in infinities(v, f"{path}.{k}")]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in infinities(v, f"{path}[{i}]")]
    return []


@pytest.fixture
def calibration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Calibration:
    """A calibration of a host-only rig: the CPU's link rate and decode FLOP/s are infinite."""
    monkeypatch.setenv("FIT_CONFIG_DIR", str(tmp_path / "config"))
    result = calibrate(_distinct_runs(8), HOST_ONLY, machine="m")
    assert infinities(result.model_dump()), "nothing infinite: the test would prove nothing"
    return result


def test_the_calibration_file_is_strict_json_and_reads_back(calibration: Calibration) -> None:
    path = save_calibration(calibration)
    document = strict(path.read_text())
    assert document["coefficients"]["measured"]["CPU"]["link_bytes_per_s"] is None
    assert load_calibration("m") == calibration


def test_a_calibration_file_from_before_reads_as_it_did(calibration: Calibration) -> None:
    """Files written before held ``Infinity`` (``json.dumps`` of the Python dump)."""
    path = calibration_path("m")
    path.parent.mkdir(parents=True)
    old = json.dumps(calibration.model_dump(mode="python"), indent=1, default=str)
    assert "Infinity" in old
    path.write_text(old + "\n")
    assert load_calibration("m") == calibration


def test_a_null_stays_none_where_the_field_may_be_none(calibration: Calibration) -> None:
    """Only a plain float field reads null as infinity; an optional one keeps None."""
    cpu = calibration.coefficients.measured["CPU"]
    assert cpu.float_flops is None
    path = save_calibration(calibration)
    assert strict(path.read_text())["coefficients"]["measured"]["CPU"][
        "float_flops"
    ] is None  # fmt: skip
    assert load_calibration("m").coefficients.measured["CPU"].float_flops is None


def test_a_run_record_is_strict_json_and_reads_back(tmp_path: Path) -> None:
    record = RunRecord(
        kind="test", profile="p", conf="c", machine_id="m", started="2026-01-02T00:00:00",
        model="m", args=("-c", "4096"), binary="b", log_path="l", ok=True, decode_tps=12.5,
        prompt_tps=300, prediction=Prediction(memory_bytes={"CPU": 1}, compute_bytes=None,
                                              decode_tps=10.0, prefill_tps=None),
    )  # fmt: skip
    path = save_run(tmp_path / "models.conf", record)
    strict(path.read_text())
    (loaded,), skipped = load_runs([path.parent])
    assert loaded == record and skipped == []


def test_calibrate_json_on_stdout_is_strict(
    calibration: Calibration, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = CalibrationRun(calibration=calibration, left_out=0, skipped=(), saved_to=None)
    monkeypatch.setattr(calibration_store, "calibrate_this_machine", lambda *_a, **_k: run)
    result = CliRunner().invoke(cli, ["calibrate", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    document = strict(result.stdout)
    assert document["coefficients"]["measured"]["CPU"]["link_bytes_per_s"] is None


def test_a_saved_scenario_is_toml(tmp_path: Path) -> None:
    """``hardware detect --save`` writes TOML (whose ``inf`` is valid, unlike JSON's)."""
    path = tmp_path / "rig.toml"
    result = CliRunner().invoke(cli, ["hardware", "detect", "--save", str(path)])
    assert result.exit_code == 0, result.output
    assert tomllib.loads(path.read_text())
