"""RPC devices in scenarios: the TOML keys, `fit hardware detect --rpc`, and a plan for them
launched on two real ggml-rpc-servers.

The slow test is the issue's path end to end, through the CLI: detect two local servers into a
scenario, solve a model for it, then (with less memory free on each device, so that the plan
has to split) launch the printed arguments on the real llama-server and read per device what
it allocated.
"""

from __future__ import annotations

import json
import tomllib

import pytest
from click.testing import CliRunner

from cli import cli
from solver.errors import BadInput
from solver.gguf.sources import load_inventory
from solver.gguf.synthetic import tiny_blueprint
from solver.hardware.scenario import hardware_from_scenario, hardware_to_toml
from solver.quantities import GIB

HOST = {"ram_gib": 64, "cores": 16, "bandwidth_gb_s": 80}


def _rpc(endpoint: str, **extra: object) -> dict[str, object]:
    return {"model": "RTX 3090", "rpc": endpoint, "link_gb_s": 0.125, "latency_us": 200, **extra}


def _rig(gpus: list[dict[str, object]]):
    return hardware_from_scenario({"host": HOST, "gpus": gpus}, source="r.toml", default_name="r")


def test_rpc_devices_get_llama_cpp_names_and_their_link():
    rig = _rig([_rpc("10.0.0.2:50052"), _rpc("10.0.0.3:50052", latency_us=35.5)])
    assert rig.device_names == ["CPU", "RPC0", "RPC1"]  # llama.cpp's names, in --rpc order
    assert [g.rpc_endpoint for g in rig.gpus] == ["10.0.0.2:50052", "10.0.0.3:50052"]
    assert rig.gpus[1].link_bytes_per_s == 0.125e9
    assert rig.gpus[1].network is not None and rig.gpus[1].network.round_trip_s == 35.5e-6
    again = tomllib.loads(hardware_to_toml(rig))
    assert hardware_from_scenario(again, source="x", default_name="x") == rig


def test_a_custom_rpc_gpu_needs_no_pcie_slot():
    (gpu,) = _rig([_rpc("h:1", model="mystery", vram_gib=8, bandwidth_gb_s=400,
                        fp16_tflops=20)]).gpus  # fmt: skip
    assert gpu.link_bytes_per_s == 0.125e9 and not gpu.integrated


@pytest.mark.parametrize(
    ("gpus", "message"),
    [
        ([_rpc("h:1"), {"model": "RTX 3090"}], r"gpus\[1\]: mix of local and RPC GPUs"),
        ([{"model": "RTX 3090", "link_gb_s": 1.25}], r"link_gb_s is the network link .* rpc"),
        ([_rpc("h:1", latency_us=None)], "needs its network link: give latency_us"),
        ([_rpc("h:1"), _rpc("h:1")], "listed twice"),
        ([_rpc("h:1,h:2")], "rpc must be host:port"),
        ([_rpc("h")], "rpc must be host:port"),
        ([_rpc("h:1", link_gb_s=0.0)], "link_gb_s = 0.0 is below 0.001"),
        ([_rpc("h:1", latency_us=1e9)], "latency_us = 1000000000.0 is above"),
    ],
)
def test_bad_rpc_tables_name_the_key(gpus, message):
    gpus = [{k: v for k, v in gpu.items() if v is not None} for gpu in gpus]
    with pytest.raises(BadInput, match=message):
        _rig(gpus)


def test_detect_rpc_options_go_together():
    result = CliRunner().invoke(cli, ["hardware", "detect", "--rpc", "127.0.0.1:1"])
    assert result.exit_code == 2 and "go together" in result.output


def test_detect_an_unreachable_server_is_one_line():
    args = ["hardware", "detect", "--rpc", "127.0.0.1:9", "--rpc-gpu", "RTX 3090",
            "--link-gb-s", "1.25"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "ggml-rpc-server 127.0.0.1:9" in result.output


# --- the real servers ---------------------------------------------------------------------

DENSE = tiny_blueprint("llama").model_copy(
    update={"name": "fit-dense", "n_layer": 8, "n_embd": 512, "n_head": 8, "n_head_kv": 4,
            "n_ff": 1536}
)  # fmt: skip


def _fit(*args: str) -> dict:
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.llama
@pytest.mark.slow
def test_detected_rpc_rig_solved_and_launched(tmp_path, synthetic_gguf, rpc_servers, run_llama):
    scenario = tmp_path / "cluster.toml"
    detected = _fit("hardware", "detect", "--rpc", rpc_servers.rpc_arg, "--rpc-gpu", "RTX 3090",
                    "--link-gb-s", "1.25", "--save", str(scenario))  # fmt: skip
    gpus = tomllib.loads(scenario.read_text())["gpus"]
    assert [g["rpc"] for g in gpus] == list(rpc_servers.endpoints)
    assert [g["device"] for g in detected["hardware"]["gpus"]] == ["RPC0", "RPC1"]
    assert all(g["free_gib"] > 0 and 0 < g["latency_us"] < 1e6 for g in gpus)

    (model,) = synthetic_gguf(DENSE)
    options = ["--ctx", "1024", "--margin", "0", "--ram-reserve", "0"]
    roomy = _fit("solve", str(model), "--hardware", str(scenario), *options)
    assert roomy["args"][:2] == ["--rpc", rpc_servers.rpc_arg]
    # Each device gets room for its buffers and 30% of the weights: the plan must use all three.
    devices = [d for name, d in roomy["devices"].items() if name != "CPU"]
    room = max(d["compute"] + d["output"] for d in devices) + sum(d["kv"] for d in devices)
    room += load_inventory(str(model)).total_bytes * 3 // 10
    text = scenario.read_text()
    for gpu in gpus:
        text = text.replace(f"free_gib = {gpu['free_gib']!r}", f"free_gib = {room / GIB!r}")
    scenario.write_text(text)
    plan = _fit("solve", str(model), "--hardware", str(scenario), *options)
    used = [name for name, d in plan["devices"].items() if d["weights"]]
    assert used == ["CPU", "RPC0", "RPC1"], plan["args"]

    measured = run_llama(model, *plan["args"], "--no-warmup", "-t", "2").per_device()
    for device, planned in plan["devices"].items():
        logged = measured[device]
        assert logged.model.contains(planned["weights"] + planned["repack"]), (device, logged)
        total = logged.total.approx_bytes
        assert abs(planned["total"] - total) <= 0.01 * total, (device, planned, logged)
