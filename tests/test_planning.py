"""``profiles.planning`` and ``profiles.rigs``: every command gets its rig, and the CPU that
goes with it, from one place; ``detect`` brings this machine's CPU, a scenario none."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiles import planning
from profiles.planning import PlacementRequest, compare_rigs, predict_memory, solve_for_profile
from profiles.rigs import resolve_rig
from solver.llama.device_map import CpuFeatures
from solver.placement.solve import SolveRequest

# A CPU this test machine is unlikely to have, so that seeing it proves where it came from.
DETECTED = CpuFeatures(avx2=True, avx512=True, amx_int8=True, repack=False)


class _Stop(Exception):
    """Raised by a stand-in for the long work once it has seen its arguments."""


@pytest.fixture
def this_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CpuFeatures:
    """This machine's CPU reads as ``DETECTED``; its calibration folder is empty."""
    monkeypatch.setattr(CpuFeatures, "detect", staticmethod(lambda *_: DETECTED))
    monkeypatch.setenv("FIT_CONFIG_DIR", str(tmp_path / "config"))
    return DETECTED


@pytest.fixture
def solve_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The keyword arguments of each ``solve`` call; the call then stops the request."""
    calls: list[dict] = []

    def record(*_args: object, **kwargs: object) -> None:
        calls.append(kwargs)
        raise _Stop

    monkeypatch.setattr(planning, "solve", record)
    return calls


def test_detect_brings_this_machine_and_its_cpu(this_cpu: CpuFeatures) -> None:
    rig = resolve_rig("detect")
    assert rig.cpu == this_cpu and rig.is_this_machine
    assert rig.hardware.name == "detected"
    scenario = resolve_rig("reference")
    assert scenario.cpu is None and not scenario.is_this_machine  # the command's default CPU


def test_a_solve_on_detect_uses_the_detected_cpu(this_cpu: CpuFeatures, solve_calls) -> None:
    with pytest.raises(_Stop):
        solve_for_profile(PlacementRequest(model="gpt-oss-20b", rig="detect"))
    assert solve_calls[-1]["cpu"] == this_cpu
    assert solve_calls[-1]["coefficients"] is not None  # this machine's (here: the corpus fit)


def test_a_solve_on_a_scenario_keeps_the_generic_cpu(this_cpu: CpuFeatures, solve_calls) -> None:
    with pytest.raises(_Stop):
        solve_for_profile(PlacementRequest(model="gpt-oss-20b", rig="reference"))
    assert solve_calls[-1]["cpu"] is None  # solve's SCENARIO_CPU
    assert solve_calls[-1]["coefficients"] is None  # a calibration describes this machine only


def test_whatif_gives_each_rig_its_own_cpu(
    this_cpu: CpuFeatures, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict = {}

    def record(_inventory, scenarios, _request, _vary, **kwargs):
        seen.update(names=[h.name for h in scenarios], cpus=kwargs["cpus"])
        return []

    monkeypatch.setattr(planning, "what_if", record)
    compare_rigs("gpt-oss-20b", ["reference", "detect"], SolveRequest())
    assert seen == {"names": ["reference", "detected"], "cpus": [None, this_cpu]}


def test_memory_on_detect_uses_the_detected_cpu_unless_told(
    this_cpu: CpuFeatures, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpus: list = []

    def record(_inventory, _config, **kwargs):
        cpus.append(kwargs["cpu"])
        raise _Stop

    monkeypatch.setattr(planning, "estimate_memory", record)
    told = CpuFeatures.from_names("none")
    for rig, cpu in (("detect", None), ("detect", told), ("reference", None), (None, None)):
        with pytest.raises(_Stop):
            predict_memory("gpt-oss-20b", ["-c", "4096"], rig=rig, cpu=cpu)
    # None: estimate_memory's own default, this machine's CPU
    assert cpus == [this_cpu, told, None, None]


def test_the_detected_cpu_changes_what_is_repacked() -> None:
    """Why the CPU matters: AVX2 repacks Q4_K weights into an extra host buffer, no AVX2 not."""
    args = ["-c", "4096", "-ngl", "0"]
    with_avx2 = predict_memory("qwen3-30b-a3b:Q4_K_M", args, cpu=CpuFeatures(avx2=True))
    without = predict_memory("qwen3-30b-a3b:Q4_K_M", args, cpu=CpuFeatures())
    assert with_avx2.devices["CPU"].repack > 0 == without.devices["CPU"].repack
