"""RPC devices in scenarios: the TOML keys, `fit hardware detect --rpc`, and a plan for them
launched on two real ggml-rpc-servers.

The slow test is the issue's path end to end, through the CLI: detect two local servers into a
scenario, solve a model for it, then (with less memory free on each device, so that the plan
has to split) launch the printed arguments on the real llama-server and read per device what
it allocated.
"""

from __future__ import annotations

import json
import re
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
    again = tomllib.loads(hardware_to_toml(rig))  # a custom spec's source names the file
    assert hardware_from_scenario(again, source="r.toml", default_name="x") == rig


def test_a_custom_rpc_gpu_needs_no_pcie_slot():
    (gpu,) = _rig([_rpc("h:1", model="mystery", vram_gib=8, bandwidth_gb_s=400,
                        fp16_tflops=20)]).gpus  # fmt: skip
    assert gpu.link_bytes_per_s == 0.125e9 and not gpu.integrated
    rig = _rig([_rpc("h:1", model="mystery", vram_gib=8, bandwidth_gb_s=400, fp16_tflops=20)])
    again = tomllib.loads(hardware_to_toml(rig))  # a custom spec's source names the file
    assert hardware_from_scenario(again, source="r.toml", default_name="x") == rig


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
    # Each device gets room for its buffers and 30% of the weights, the network is made
    # nearly free and the host's memory slow (a split still costs the scheduler's fitted
    # latency, more than this tiny model's layers on a CPU at its real bandwidth): the plan
    # must use all three devices.
    devices = [d for name, d in roomy["devices"].items() if name != "CPU"]
    room = max(d["compute"] + d["output"] for d in devices) + sum(d["kv"] for d in devices)
    room += load_inventory(str(model)).total_bytes * 3 // 10
    text = scenario.read_text().replace("link_gb_s = 1.25", "link_gb_s = 1000.0")
    for gpu in gpus:
        text = text.replace(f"free_gib = {gpu['free_gib']!r}", f"free_gib = {room / GIB!r}")
        text = text.replace(f"latency_us = {gpu['latency_us']!r}", "latency_us = 0.1")
    text = re.sub(r"\n(mt_per_s|channels|bandwidth_gb_s|bandwidth_source) = [^\n]*", "", text)
    text = re.sub(r"(\ncores = \d+)", r"\1\nbandwidth_gb_s = 0.5", text, count=1)
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


# --- the network in the cost model -----------------------------------------------------------


GBE = {"link_gb_s": 0.125, "latency_us": 300}  # 1 GbE and a LAN's round trip


def _two_gpus(**link: object) -> str:
    """Two RTX 3060 (12 GB) on a DDR5 desktop: local, or (``link`` given) RPC devices."""
    text = '[host]\nram_gib = 64\ncores = 16\nmemory = "DDR5"\nmt_per_s = 6000\nchannels = 2\n'
    for index in (1, 2):
        text += '[[gpus]]\nmodel = "RTX 3060"\n'
        if link:
            text += f'rpc = "10.0.0.{index}:50052"\n'
        text += "".join(f"{key} = {value}\n" for key, value in link.items())
    return text


def _tables(rig_text: str, n_ubatch: int):
    import numpy as np

    from solver.cost.model import Workload, build_cost_tables
    from solver.plan.units import LayerTable, Unit

    stored = np.full((2, len(Unit)), 100 * 2**20, dtype=np.int64)
    table = LayerTable(
        units=tuple(Unit), stored=stored, read_per_token=stored.astype(float), params=stored,
        pinned=np.zeros(2, dtype=np.int64), pinned_params=np.zeros(2, dtype=np.int64),
        global_bytes={"token_embd.weight": 2**20},
    )  # fmt: skip
    workload = Workload(
        n_embd=2048, kv_bytes_per_position=(4096, 4096),
        attention_flops_per_position=(8192.0, 8192.0), n_ubatch=n_ubatch,
    )  # fmt: skip
    rig = hardware_from_scenario(tomllib.loads(rig_text), source="r", default_name="r")
    return build_cost_tables(table, rig, workload)


def test_a_split_over_the_network_costs_a_round_trip_and_the_activations_at_link_speed():
    from solver.cost.model import CostCoefficients

    pcie = _tables(_two_gpus(), 512)
    gbe = _tables(_two_gpus(**GBE), 512)
    latency = CostCoefficients().split_latency_s
    # decode: one f32 row of n_embd each way (2 x 8 KiB at 0.125 GB/s) plus the round trip
    assert gbe.split_decode == pytest.approx(latency + 300e-6 + 2 * 2048 * 4 / 0.125e9)
    assert gbe.split_prefill == pytest.approx(latency + 300e-6 + 2 * 512 * 2048 * 4 / 0.125e9)
    print(f"\nsplit cost, decode: PCIe 4.0 x16 {pcie.split_decode * 1e6:.1f} us, "
          f"1 GbE {gbe.split_decode * 1e6:.1f} us; per 512-token ubatch: "
          f"{pcie.split_prefill * 1e3:.3f} ms vs {gbe.split_prefill * 1e3:.3f} ms")  # fmt: skip
    # beyond the scheduler's own latency (the same on both rigs), the network's share dwarfs PCIe's
    assert gbe.split_decode - latency > 10 * (pcie.split_decode - latency)


def test_rpc_devices_take_no_host_weights_in_prefill():
    """ggml-rpc has no offload_op: the CPU's matmuls stay on the CPU, at its own rate; on a
    local rig they stream over PCIe to the first GPU (the cheaper of the two here)."""
    pcie = _tables(_two_gpus(), 512)
    gbe = _tables(_two_gpus(**GBE), 512)
    cpu = pcie.devices.index("CPU")
    assert (gbe.prefill[:, :, cpu] != pcie.prefill[:, :, cpu]).all()
    assert (gbe.prefill[:, :, 1:] == pcie.prefill[:, :, 1:]).all()  # the GPUs' own work


def test_the_plan_over_1_gbe_has_fewer_splits_than_over_pcie(tmp_path):
    """Qwen3-30B-A3B Q8_0 (30 GiB) on two 12 GB cards: over PCIe the fastest plan keeps the
    experts of some layers in RAM (two splits each); over 1 GbE each split costs a round trip
    and two activation transfers, so whole layers go to the CPU instead."""
    plans = {}
    for name, link in (("pcie", {}), ("1gbe", GBE)):
        rig = tmp_path / f"{name}.toml"
        rig.write_text(_two_gpus(**link))
        plans[name] = _fit("solve", "qwen3-30b-a3b:Q8_0", "--hardware", str(rig), "--ctx", "32768")
    splits = {name: plan["graph_splits"] for name, plan in plans.items()}
    tps = {name: round(plan["estimate"]["decode_tps"], 1) for name, plan in plans.items()}
    print(f"\ngraph splits {splits}, decode t/s {tps}")
    assert splits["1gbe"] < splits["pcie"], plans["1gbe"]["args"]
    assert plans["1gbe"]["args"][:2] == ["--rpc", "10.0.0.1:50052,10.0.0.2:50052"]
