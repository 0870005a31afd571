"""Scenario files: every bundled one loads, the reference rig is what the brief says, bad files
are BadInput naming the file and the key, and the writer round-trips."""

import re

import pytest

from solver.errors import BadInput
from solver.hardware.scenario import (
    GB,
    GIB,
    find_gpu_spec,
    hardware_from_scenario,
    hardware_to_toml,
    list_scenarios,
    load_hardware,
    pcie_bytes_per_s,
)


def test_at_least_six_bundled_scenarios():
    names = list_scenarios()
    assert len(names) >= 6
    for wanted in ["reference", "5090-4090", "2x3090", "reference-128gb", "single-4090"]:
        assert wanted in names


@pytest.mark.parametrize("name", list_scenarios())
def test_every_bundled_scenario_loads(name):
    hardware = load_hardware(name)
    assert hardware.name == name
    assert hardware.host.ram_bytes > 0 and hardware.host.bandwidth_bytes_per_s > 0
    assert [gpu.device for gpu in hardware.gpus] == [f"CUDA{i}" for i in range(len(hardware.gpus))]


@pytest.mark.parametrize("name", list_scenarios())
def test_writer_round_trips_every_bundled_scenario(name, tmp_path):
    hardware = load_hardware(name)
    path = tmp_path / f"{name}.toml"
    path.write_text(hardware_to_toml(hardware), encoding="utf-8")
    assert load_hardware(str(path)) == hardware


def test_reference_rig():
    rig = load_hardware("reference")
    first, second = rig.gpus
    assert (first.spec.name, first.pcie_gen, first.pcie_lanes) == ("RTX 4090", 4, 16)
    assert (second.spec.name, second.pcie_gen, second.pcie_lanes) == ("RTX 5070 Ti", 5, 8)
    assert first.spec.vram_bytes == 24 * GIB and second.spec.vram_bytes == 16 * GIB
    assert rig.host.ram_bytes == 64 * GIB
    assert rig.host.cores == 16
    # DDR5-6000 dual channel: 6000e6 transfers/s x 8 bytes x 2 channels
    assert rig.host.bandwidth_bytes_per_s == 96 * GB
    assert second.link_bytes_per_s == pcie_bytes_per_s(5, 8)
    assert rig.device_names == ["CPU", "CUDA0", "CUDA1"]


def test_what_ifs_differ_from_the_reference_where_they_say():
    reference = load_hardware("reference")
    assert load_hardware("reference-128gb").host.ram_bytes == 2 * reference.host.ram_bytes
    assert [gpu.spec.name for gpu in load_hardware("single-4090").gpus] == ["RTX 4090"]
    assert load_hardware("5090-4090").gpus[0].spec.name == "RTX 5090"


def test_file_path_and_overrides(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        "[host]\nram_gib = 32\ncores = 8\nbandwidth_gb_s = 60\n\n"
        '[[gpus]]\nmodel = "NVIDIA GeForce RTX 3090"\nvram_gib = 23.5\nfree_gib = 22\n'
        "bandwidth_gb_s = 900\n"
    )
    rig = load_hardware(str(path))
    assert rig.name == "mine"
    gpu = rig.gpus[0]
    assert gpu.spec.name == "RTX 3090"
    assert gpu.spec.vram_bytes == round(23.5 * GIB)
    assert gpu.free_bytes == 22 * GIB and gpu.memory_bytes == 22 * GIB
    assert gpu.spec.bandwidth_bytes_per_s == 900 * GB
    assert (gpu.pcie_gen, gpu.pcie_lanes) == (4, 16)  # the card's own link by default
    assert rig.host.bandwidth_bytes_per_s == 60 * GB


def test_custom_gpu_needs_every_figure():
    slot = {"model": "Mystery 1", "vram_gib": 20, "bandwidth_gb_s": 500, "fp16_tflops": 50}
    data = {"host": {"ram_gib": 8, "cores": 4, "bandwidth_gb_s": 40}, "gpus": [slot]}
    with pytest.raises(BadInput, match="also give pcie_gen, pcie_lanes"):
        hardware_from_scenario(data, source="x.toml", default_name="x")
    slot.update(pcie_gen=4, pcie_lanes=8)
    gpu = hardware_from_scenario(data, source="x.toml", default_name="x").gpus[0]
    assert gpu.spec.name == "Mystery 1" and gpu.spec.fp16_flops == 50e12


HOST = "[host]\nram_gib = 64\ncores = 16\nmt_per_s = 6000\nchannels = 2\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"missing table \[host\]"),
        ("[host]\ncores = 4\nbandwidth_gb_s = 10\n", r"host: missing key 'ram_gib'"),
        ("[host]\nram_gib = 8\ncores = 4\n", r"host: give bandwidth_gb_s, or both mt_per_s"),
        (HOST.replace("ram_gib", "ram_gb"), r"host: unknown key 'ram_gb'"),
        (HOST.replace("64", '"64"'), r"host: ram_gib must be int or float, got '64'"),
        (HOST.replace("cores = 16", "cores = 16.5"), r"host: cores must be int"),
        (HOST.replace("cores = 16", "cores = true"), r"host: cores must be int"),
        (HOST.replace("64", "0"), r"host: ram_gib = 0 is below"),
        (HOST + '[[gpus]]\nmodel = "RTX 9999"\n', r"gpus\[0\]: model: unknown GPU 'RTX 9999'"),
        (HOST + "[[gpus]]\npcie_gen = 4\n", r"gpus\[0\]: missing key 'model'"),
        (
            HOST + '[[gpus]]\nmodel = "RTX 4090"\npcie_gen = 9\n',
            r"gpus\[0\]: pcie_gen = 9 is above 6",
        ),
        (HOST + '[[gpus]]\nmodel = "RTX 4090"\nlanes = 8\n', r"gpus\[0\]: unknown key 'lanes'"),
        ("title = 1\n" + HOST, r"unknown key 'title'"),
        ("[host\n", r"not valid TOML"),
    ],
)
def test_bad_files_name_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(BadInput, match=message) as caught:
        load_hardware(str(path))
    assert str(caught.value).startswith(str(path))


def test_unknown_scenario_lists_the_bundled_ones():
    with pytest.raises(BadInput, match="reference"):
        load_hardware("no-such-rig")


def test_spec_override_keeps_table_provenance():
    rig = load_hardware("reference")
    assert rig.gpus[0].spec.source == find_gpu_spec("RTX 4090").source


def test_writer_round_trips_detected_style_gpus(tmp_path):
    from solver.hardware.scenario import Gpu, GpuSpec, Hardware, Host

    table_4090 = find_gpu_spec("RTX 4090")
    custom = GpuSpec(
        name="Prototype X",
        vram_bytes=20 * GIB,
        bandwidth_bytes_per_s=700e9,
        fp16_flops=90e12,
        pcie_gen=4,
        pcie_lanes=8,
        source="x",
    )
    rig = Hardware(
        name="detected",
        description="two cards",
        notes=("a note",),
        gpus=(
            Gpu(
                device="CUDA0",
                spec=table_4090.model_copy(update={"vram_bytes": 24_564 * 2**20}),
                free_bytes=23_000 * 2**20,
                pcie_gen=4,
                pcie_lanes=16,
            ),
            Gpu(device="CUDA1", spec=custom, pcie_gen=3, pcie_lanes=4),
        ),
        host=Host(
            ram_bytes=64_000_000 * 1024,
            available_bytes=50_000_000 * 1024,
            bandwidth_bytes_per_s=44_749_899_245.0,
            cores=8,
            threads=16,
            bandwidth_source="measured: test",
        ),
    )
    path = tmp_path / "rig.toml"
    path.write_text(hardware_to_toml(rig), encoding="utf-8")
    loaded = load_hardware(str(path))
    assert loaded.gpus[0] == rig.gpus[0]
    assert loaded.host == rig.host and loaded.notes == rig.notes
    assert loaded.gpus[1].spec.name == "Prototype X"
    assert loaded.gpus[1].spec.bandwidth_bytes_per_s == 700e9
    assert (loaded.gpus[1].pcie_gen, loaded.gpus[1].pcie_lanes) == (3, 4)


# --- hostile and extreme scenarios (issue 15) ------------------------------------------------

HOST_BW = "[host]\nram_gib = 64\ncores = 16\nbandwidth_gb_s = 80\n"
GPU = '[[gpus]]\nmodel = "RTX 4090"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HOST.replace("64", "1e308"), r"host: ram_gib = 1e\+308 is above 65536"),
        (HOST.replace("64", "2e-300"), r"host: ram_gib = 2e-300 is below 0.0009765625"),
        (HOST.replace("64", "-1"), r"host: ram_gib = -1 is below"),
        (HOST_BW.replace("80", "1e-300"), r"host: bandwidth_gb_s = 1e-300 is below 0.1"),
        (HOST.replace("cores = 16", f"cores = {2**63 - 1}"), r"host: cores = 9223372036854775807"),
        (HOST.replace("cores = 16", f"cores = {2**63}"), r"host: cores = 9223372036854775808"),
        (HOST.replace("6000", f"{2**63 - 1}"), r"host: mt_per_s = 9223372036854775807 is above"),
        (HOST.replace("channels = 2", "channels = 0"), r"host: channels = 0 is below 1"),
        (HOST.replace("64", "nan"), r"host: ram_gib must be a finite number, got nan"),
        (HOST.replace("64", "inf"), r"host: ram_gib must be a finite number, got inf"),
        (HOST.replace("64", "-inf"), r"host: ram_gib must be a finite number"),
        (HOST + "threads = 0\n", r"host: threads = 0 is below 1"),
        (HOST + GPU + "vram_gib = 1e308\n", r"gpus\[0\]: vram_gib = 1e\+308 is above 4096"),
        (HOST + GPU + "vram_gib = 1e-300\n", r"gpus\[0\]: vram_gib = 1e-300 is below"),
        (HOST + GPU + "bandwidth_gb_s = 1e-300\n", r"gpus\[0\]: bandwidth_gb_s = 1e-300"),
        (HOST + GPU + "fp16_tflops = 1e308\n", r"gpus\[0\]: fp16_tflops = 1e\+308 is above"),
        (HOST + GPU + f"pcie_lanes = {2**63 - 1}\n", r"gpus\[0\]: pcie_lanes = 92233720"),
        (HOST + GPU + "free_gib = 0\n", r"gpus\[0\]: free_gib must be positive, got 0"),
        ("price_usd = 1e308\n" + HOST, r"price_usd = 1e\+308 is above 1000000000"),
        (HOST + GPU * 16, r"16 GPUs, but fit plans at most 15: .*-ts.*16 or more"),
        ("x = " + "[" * 5000 + "]" * 5000 + "\n" + HOST, r"nested too deeply"),
        ("x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n" + HOST, r"nested too deeply"),
        ("notes = [[[[[[1]]]]]]\n" + HOST, r"notes\[0\] must be str, got \[\[\[\[\.\.\.\]\]\]\]"),
        (f'name = "{"x" * 5000}"\n' + HOST, r"name is longer than 4096"),
        ("notes = [" + '"n",' * 300 + "]\n" + HOST, r"notes is longer than 256"),
        ("host = 3\n", r"host must be a table, got 3"),
        ("gpus = [1]\n" + HOST, r"gpus\[0\] must be a table|gpus.*must be a table"),
    ],
)
def test_extreme_scenarios_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "extreme.toml"
    path.write_text(text)
    with pytest.raises(BadInput, match=message) as caught:
        load_hardware(str(path))
    assert str(caught.value).startswith(str(path))
    assert "\n" not in str(caught.value)


def test_a_huge_file_is_refused_unread(tmp_path):
    path = tmp_path / "huge.toml"
    path.write_text(HOST + "# " + "x" * (2 * 1024 * 1024) + "\n")
    with pytest.raises(BadInput, match="larger than 1024 KiB"):
        load_hardware(str(path))


def test_fifteen_gpus_are_accepted():
    data = {"host": {"ram_gib": 64, "cores": 16, "bandwidth_gb_s": 80}}
    data["gpus"] = [{"model": "RTX 4090"}] * 15
    rig = hardware_from_scenario(data, source="x.toml", default_name="x")
    assert rig.device_names[-1] == "CUDA14"


def _bounds(model: type, key: str) -> tuple[str, str]:
    """(least, most) of a scenario field as the README writes them."""
    least = most = ""
    for rule in model.model_fields[key].metadata:
        if getattr(rule, "gt", None) is not None:
            least = f"> {rule.gt:g}"
        if getattr(rule, "ge", None) is not None:
            least = f"{rule.ge:.12g}"
        if getattr(rule, "le", None) is not None:
            most = f"{rule.le:.12g}"
        if getattr(rule, "max_length", None) is not None:
            most = str(rule.max_length)
    return least, most


def test_readme_ranges_are_the_field_bounds():
    from solver.datafiles import data_path
    from solver.hardware.scenario import ScenarioFile, ScenarioGpu, ScenarioHost

    readme = data_path("hardware/README.md").read_text(encoding="utf-8")
    rows = dict(
        (key, (least.strip(), most.strip()))
        for key, least, most in re.findall(r"^\| `([\w.]+)` \| ([^|]+) \| ([^|]+) \|", readme, re.M)
    )
    expected = {}
    for prefix, model in (("host.", ScenarioHost), ("gpus.", ScenarioGpu), ("", ScenarioFile)):
        for key, field in model.model_fields.items():
            if field.annotation in (int, float, int | None, float | None):
                expected[prefix + key] = _bounds(model, key)
    assert rows == expected
    gpus = re.search(r"^\| `\[\[gpus\]\]` tables \| 0 \| (\d+) \|", readme, re.M)
    assert gpus and gpus.group(1) == _bounds(ScenarioFile, "gpus")[1]


def _scenario_text(host: dict, gpu: dict | None) -> str:
    lines = ["[host]", *(f"{k} = {v!r}" for k, v in host.items())]
    if gpu is not None:
        lines += ["[[gpus]]", 'model = "RTX 4090"', *(f"{k} = {v!r}" for k, v in gpu.items())]
    return "\n".join(lines) + "\n"


def _edge_cases() -> list[tuple[str, str]]:
    """A scenario at each end of each numeric key's range, the rest of the rig ordinary."""
    from solver.hardware.scenario import ScenarioGpu, ScenarioHost

    host = {"ram_gib": 64, "cores": 16, "mt_per_s": 6000, "channels": 2}
    cases = []
    for table, model in (("host", ScenarioHost), ("gpu", ScenarioGpu)):
        for key, field in model.model_fields.items():
            if field.annotation not in (int, float, int | None, float | None):
                continue
            integral = field.annotation in (int, int | None)
            least, most = _bounds(model, key)
            low = float(least[2:]) * 1.000001 if least.startswith(">") else float(least)
            for value in (
                int(low) if integral else low,
                int(float(most)) if integral else float(most),
            ):
                edited = dict(host)
                if table == "host":
                    if key == "bandwidth_gb_s":
                        del edited["mt_per_s"], edited["channels"]
                    edited[key] = value
                    text = _scenario_text(edited, {})
                else:
                    text = _scenario_text(host, {key: value})
                cases.append((f"{table}.{key}={value}", text))
    return cases


@pytest.mark.parametrize(("case", "text"), _edge_cases(), ids=[c for c, _ in _edge_cases()])
def test_every_range_edge_plans_without_a_traceback(tmp_path, case, text):
    """Accepted values at the limits reach the planner and come back as a plan or a one-line
    error: the limits are where nothing overflows, not arbitrary numbers."""
    from click.testing import CliRunner

    from cli import cli
    from tests.gguf_bytes import write_llama

    (model,) = write_llama(tmp_path / "tiny.gguf")
    rig = tmp_path / "edge.toml"
    rig.write_text(text)
    result = CliRunner().invoke(cli, ["solve", str(model), "--hardware", str(rig), "--ctx", "256"])
    assert result.exception is None or isinstance(result.exception, SystemExit), case
    assert result.exit_code in (0, 1, 2), result.output
    if result.exit_code:  # one error line; exit 1 (does not fit) also prints its report
        assert len(result.stderr.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize(
    "host", ["ram_gib = 65536", "bandwidth_gb_s = 0.1", "bandwidth_gb_s = 20000", "cores = 4096"]
)
def test_issue_model_on_extreme_rigs(tmp_path, host):
    """The issue's model (qwen3-30b-a3b) on the widest accepted hosts."""
    from click.testing import CliRunner

    from cli import cli

    lines = ["[host]", "ram_gib = 64", "cores = 16", "bandwidth_gb_s = 80", host]
    key = host.split(" = ")[0]
    text = "\n".join(line for line in lines if not line.startswith(f"{key} =") or line == host)
    rig = tmp_path / "edge.toml"
    rig.write_text(text + "\n" + GPU)
    args = ["solve", "qwen3-30b-a3b", "--hardware", str(rig), "--ctx", "4096", "--time-limit", "2"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
