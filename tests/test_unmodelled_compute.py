"""A model whose compute buffers fit does not model: said plainly, never priced as llama.

The model is a synthetic ERNIE 4.5 (``ernie4_5``): llama.cpp loads it (``src/models/ernie4-5.cpp``:
llama's tensors and hyperparameter keys, no rope factors) and fit has no compute-graph recipe
for it. The blueprint factory has no ``ernie4_5``, so the file is the tiny llama blueprint's,
rewritten with that architecture name (``general.architecture`` and the ``llama.*`` keys);
its tensors are unchanged. ``test_llama_server_loads_it`` shows the real server takes it.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import pytest
from click.testing import CliRunner

from cli import cli
from solver.gguf.sources import load_local_inventory
from solver.gguf.synthetic import tiny_blueprint, write_synthetic_gguf
from solver.llama.args import parse_llama_args
from solver.llama.device_map import CpuFeatures
from solver.llama.memory import estimate_memory

ARCH = "ernie4_5"  # in data/llama_archs.json; not in solver.llama.compute_graph's RECIPES


def renamed_architecture(source: Path, target: Path, arch: str) -> Path:
    """A copy of the GGUF ``source`` whose architecture is ``arch``: the same tensors and
    metadata, the architecture's own keys (``<old arch>.*``) renamed to ``<arch>.*``."""
    reader = gguf.GGUFReader(source)
    old = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(target, arch)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == gguf.Keys.General.ARCHITECTURE:
            continue  # the header, and the key GGUFWriter wrote first
        name = field.name
        if name.startswith(f"{old}."):
            name = f"{arch}.{name.removeprefix(f'{old}.')}"
        sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), field.types[0], sub_type=sub_type)
    for tensor in reader.tensors:
        writer.add_tensor_info(
            tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes,
            raw_dtype=tensor.tensor_type,
        )  # fmt: skip
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data)
    writer.close()
    return target


@pytest.fixture(scope="module")
def unmodelled_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("unmodelled")
    [llama] = write_synthetic_gguf(tiny_blueprint("llama"), "Q8_0", folder / "llama.gguf")
    return renamed_architecture(llama, folder / f"tiny-{ARCH}.gguf", ARCH)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_the_renamed_file_is_that_architecture_with_the_same_tensors(unmodelled_gguf) -> None:
    inventory = load_local_inventory(unmodelled_gguf)
    llama = load_local_inventory(unmodelled_gguf.with_name("llama.gguf"))
    assert inventory.architecture == ARCH and llama.architecture == "llama"
    assert [(t.name, t.shape, t.n_bytes) for t in inventory.tensors] == [
        (t.name, t.shape, t.n_bytes) for t in llama.tensors
    ]
    assert inventory.n_embd == llama.n_embd and inventory.n_layers == llama.n_layers


def test_memory_is_exact_but_compute_not_modelled(unmodelled_gguf) -> None:
    """Weights, KV and output as for the same tensors under llama; compute never llama's."""
    config = parse_llama_args(["-c", "1024", "-ngl", "0"])
    cpu = CpuFeatures()
    report = estimate_memory(load_local_inventory(unmodelled_gguf), config, cpu=cpu)
    llama = load_local_inventory(unmodelled_gguf.with_name("llama.gguf"))
    same = estimate_memory(llama, config, cpu=cpu).devices["CPU"]
    device = report.devices["CPU"]
    assert not report.compute_modelled and device.compute is None
    assert (device.weights, device.kv, device.output) == (same.weights, same.kv, same.output)
    assert device.total == same.total - (same.compute or 0)
    assert report.unmodelled is not None and report.unmodelled.architecture == ARCH

    margin = estimate_memory(
        load_local_inventory(unmodelled_gguf), config, cpu=cpu, unmodelled_margin=2**30
    )
    assert margin.devices["CPU"].compute == 2**30
    assert margin.devices["CPU"].total == device.total + 2**30


def test_fit_memory_says_compute_is_not_modelled(unmodelled_gguf) -> None:
    code, out = invoke("memory", str(unmodelled_gguf), "--", "-c", "1024", "-ngl", "0")
    assert code == 0, out
    [line] = [line for line in out.splitlines() if "not modelled (" in line]
    assert line.startswith(f"note: compute buffers and graph splits of {ARCH}: not modelled")
    assert "no compute-graph recipe" in line and "--unmodelled-margin" in line
    assert "graph splits: n/m" in out

    code, out = invoke("memory", str(unmodelled_gguf), "--json", "--", "-c", "1024")
    doc = json.loads(out)
    assert code == 0 and doc["compute_modelled"] is False
    assert doc["devices"]["CPU"]["compute"] is None
    assert doc["unmodelled"]["architecture"] == ARCH and doc["unmodelled"]["margin_gib"] is None


def test_fit_memory_with_a_margin_counts_it(unmodelled_gguf) -> None:
    args = ("memory", str(unmodelled_gguf), "--unmodelled-margin", "1")
    code, out = invoke(*args, "--json", "--", "-c", "1024", "-ngl", "0")
    assert code == 0, out
    doc = json.loads(out)
    cpu = doc["devices"]["CPU"]
    assert cpu["compute"] == 2**30
    assert cpu["total"] == cpu["weights"] + cpu["repack"] + cpu["kv"] + cpu["output"] + 2**30
    assert doc["unmodelled"] == {
        "architecture": ARCH,
        "reason": "fit has no compute-graph recipe for this architecture",
        "margin_gib": 1.0,
    }
    code, out = invoke(*args, "--", "-c", "1024", "-ngl", "0")
    assert code == 0 and "1024.00*" in out and "* = assumed margin" in out
    assert "a margin of 1 GiB per device that runs layers is assumed" in out


def test_fit_solve_refuses_and_names_the_architecture(unmodelled_gguf) -> None:
    result = CliRunner().invoke(cli, ["solve", str(unmodelled_gguf), "--ctx", "2048"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"Error: {ARCH}: compute buffers not modelled")
    assert "--unmodelled-margin GIB" in line


def test_fit_solve_with_a_margin_plans_and_says_so(unmodelled_gguf) -> None:
    args = ("solve", str(unmodelled_gguf), "--ctx", "2048", "--unmodelled-margin", "1")
    code, out = invoke(*args, "--json", "--time-limit", "2")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["status"] in ("optimal", "feasible") and doc["args"]
    assert doc["unmodelled"]["architecture"] == ARCH and doc["unmodelled"]["margin_gib"] == 1.0
    assert any("a margin of 1 GiB per device" in note for note in doc["notes"])
    runs_layers = [d for d in doc["devices"].values() if d["weights"] and d["kv"]]
    assert runs_layers and all(d["compute"] == 2**30 for d in runs_layers)

    code, out = invoke(*args, "--time-limit", "2")
    assert code == 0, out
    assert "llama-server " in out
    assert f"note: compute buffers and graph splits of {ARCH}: not modelled" in out
    assert "a margin of 1 GiB per device that runs layers is assumed" in out


def test_fit_whatif_refuses_or_repeats_the_margin(unmodelled_gguf) -> None:
    args = ("whatif", str(unmodelled_gguf), "--hardware", "reference", "--no-max-context")
    result = CliRunner().invoke(cli, [*args, "--ctx", "2048"])
    assert result.exit_code == 2 and ARCH in result.output, result.output
    code, out = invoke(*args, "--ctx", "2048", "--unmodelled-margin", "1", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["rows"][0]["fits"] and doc["unmodelled"]["margin_gib"] == 1.0
    assert "unmodelled" not in doc["rows"][0]


@pytest.mark.llama
def test_llama_server_loads_it(unmodelled_gguf: Path, run_llama) -> None:
    """The architecture is one the pinned llama.cpp really runs, not a made-up name."""
    report = run_llama(unmodelled_gguf, "-c", "1024", "-ngl", "0")
    assert report.loaded


def test_fit_solve_on_a_gpu_rig_refuses_and_plans_with_a_margin(unmodelled_gguf) -> None:
    """On the reference rig (two GPUs) as on the default one: exit 2 naming the architecture,
    and with a margin a plan whose GPUs that run layers carry it as their compute buffer."""
    args = ("solve", str(unmodelled_gguf), "--hardware", "reference", "--ctx", "4096",
            "--time-limit", "2")  # fmt: skip
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 2 and f"{ARCH}: compute buffers not modelled" in result.output
    code, out = invoke(*args, "--unmodelled-margin", "0.5", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["status"] in ("optimal", "feasible") and doc["unmodelled"]["margin_gib"] == 0.5
    runs_layers = [d for d in doc["devices"].values() if d["weights"] and d["kv"]]
    assert runs_layers and all(d["compute"] == 2**29 for d in runs_layers)
