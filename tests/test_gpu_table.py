"""The GPU spec table: integrity of the CSV itself, and lookups by the names NVML reports."""

import csv

import pytest

from solver.errors import BadInput
from solver.hardware.scenario import GPU_TABLE, find_gpu_spec, load_gpu_specs, normalize_gpu_name
from solver.quantities import GB, GIB


def raw_rows() -> list[dict[str, str]]:
    with GPU_TABLE.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_table_has_enough_rows_each_with_a_source():
    rows = raw_rows()
    assert len(rows) >= 30
    for row in rows:
        assert row["source"].strip(), row["name"]
        assert row["fp16_basis"].strip(), row["name"]


@pytest.mark.parametrize("column", ["vram_gib", "bandwidth_gb_s", "fp16_tensor_tflops"])
def test_numbers_are_positive(column):
    for row in raw_rows():
        assert float(row[column]) > 0, (row["name"], column)


def test_pcie_columns_are_real_links():
    for row in raw_rows():
        if not row["pcie_gen"] and not row["pcie_lanes"]:
            # an integrated GPU has no PCIe link, and its row says so
            assert row["note"].startswith("integrated"), row["name"]
            continue
        assert int(row["pcie_gen"]) in {3, 4, 5}, row["name"]
        assert int(row["pcie_lanes"]) in {4, 8, 16}, row["name"]


def test_integrated_gpu_copies_at_its_memory_bandwidth():
    from solver.hardware.scenario import Gpu

    spec = find_gpu_spec("Radeon 8060S")
    gpu = Gpu(device="CUDA0", spec=spec, pcie_gen=spec.pcie_gen, pcie_lanes=spec.pcie_lanes)
    assert gpu.integrated and gpu.link_bytes_per_s == spec.bandwidth_bytes_per_s


def test_names_are_unique_even_after_normalizing():
    names = [normalize_gpu_name(row["name"]) for row in raw_rows()]
    assert len(names) == len(set(names))


def test_loader_converts_units_from_the_csv():
    rows = {row["name"]: row for row in raw_rows()}
    for spec in load_gpu_specs():
        row = rows[spec.name]
        assert spec.vram_bytes == round(float(row["vram_gib"]) * GIB)
        assert spec.bandwidth_bytes_per_s == float(row["bandwidth_gb_s"]) * GB
        assert spec.fp16_flops == float(row["fp16_tensor_tflops"]) * 1e12


def test_the_briefs_models_are_present():
    for name in [
        "RTX 3060 12GB", "RTX 3090", "RTX 3090 Ti", "RTX 4060 Ti 16GB", "RTX 4070 Ti SUPER",
        "RTX 4080 SUPER", "RTX 4090", "RTX 5060 Ti 16GB", "RTX 5070", "RTX 5070 Ti", "RTX 5080",
        "RTX 5090", "RTX A4000", "RTX A5000", "RTX A6000", "RTX 5000 Ada", "RTX 6000 Ada",
        "RTX PRO 6000 Blackwell", "Tesla P40", "A100 PCIe 40GB", "A100 SXM4 80GB", "L4",
        "L40S", "H100 PCIe",
    ]:  # fmt: skip
        assert find_gpu_spec(name).name == name


@pytest.mark.parametrize(
    ("nvml_name", "expected"),
    [
        ("NVIDIA GeForce RTX 4090", "RTX 4090"),
        ("NVIDIA GeForce RTX 5070 Ti", "RTX 5070 Ti"),
        ("NVIDIA GeForce RTX 4080 SUPER", "RTX 4080 SUPER"),
        ("NVIDIA RTX A6000", "RTX A6000"),
        ("NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada"),
        ("Tesla P40", "Tesla P40"),
        ("Tesla V100-PCIE-32GB", "V100 PCIe 32GB"),
        ("NVIDIA A100-SXM4-80GB", "A100 SXM4 80GB"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("nvidia geforce rtx 3090", "RTX 3090"),
        ("4090", "RTX 4090"),
    ],
)
def test_lookup_by_nvml_name(nvml_name, expected):
    assert find_gpu_spec(nvml_name).name == expected


def test_shared_nvml_name_is_resolved_by_vram():
    # NVML reports a bit less than the marketed capacity
    assert find_gpu_spec("NVIDIA GeForce RTX 4060 Ti", 16_380 * 2**20).name == "RTX 4060 Ti 16GB"
    assert find_gpu_spec("NVIDIA GeForce RTX 4060 Ti", 8_188 * 2**20).name == "RTX 4060 Ti 8GB"
    with pytest.raises(BadInput, match="ambiguous"):
        find_gpu_spec("NVIDIA GeForce RTX 4060 Ti")


def test_unknown_gpu_is_bad_input():
    with pytest.raises(BadInput, match="unknown GPU 'RTX 9090'"):
        find_gpu_spec("RTX 9090")


def test_bad_table_names_file_and_row(tmp_path):
    table = tmp_path / "gpus.csv"
    text = GPU_TABLE.read_text(encoding="utf-8").splitlines()
    text[3] = text[3].replace(",Ampere,24,", ",Ampere,-24,", 1)
    table.write_text("\n".join(text) + "\n", encoding="utf-8")
    with pytest.raises(BadInput, match=r"gpus\.csv: row 4 \(RTX 3090\): vram_gib must be positive"):
        load_gpu_specs(table)
