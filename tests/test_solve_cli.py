"""``fit solve`` and ``fit whatif`` through the command line, as a person runs them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from profiles.models_conf import UNTESTED_MARK, ModelsConf
from solver.llama.args import parse_llama_args

FIXTURE_CONF = Path(__file__).parent / "fixtures" / "models.conf"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_json_has_the_documented_shape_and_args_llama_accepts() -> None:
    code, out = run("solve", "gpt-oss-120b", "--ctx", "8192", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["status"] in ("optimal", "feasible")
    assert doc["strategy"] in ("A", "B", "C", "D")
    assert doc["estimate"]["decode_tps"] > 0 and doc["estimate"]["prefill_tps"] > 0
    for name, device in doc["devices"].items():
        assert set(device) >= {"weights", "kv", "compute", "total", "capacity"}, name
        assert device["resident"] <= device["budget"] <= device["capacity"], name
        assert device["resident"] <= device["total"], name
    assert {"CPU", "CUDA0", "CUDA1"} <= set(doc["devices"])
    config = parse_llama_args(doc["args"], gpu_buffers=["CUDA0", "CUDA1"])
    assert config.fit is False and config.n_ctx == 8192


def test_human_output_names_strategy_devices_and_command() -> None:
    code, out = run("solve", "qwen3-30b-a3b:Q4_K_M", "--ctx", "8192", "--baselines")
    assert code == 0, out
    assert "strategy " in out and "llama-server " in out and "--fit off" in out
    assert "llama --fit" in out  # the baselines, priced on the same model
    for device in ("CPU", "CUDA0", "CUDA1"):
        assert f"\n{device} " in out


def test_a_model_that_cannot_fit_says_what_is_missing() -> None:
    result = CliRunner().invoke(cli, ["solve", "qwen3-235b-a22b:Q8_0", "--hardware", "reference"])
    assert result.exit_code == 1, result.output
    assert "GiB short" in result.output and "quant of at most" in result.output
    assert "does not fit" in result.output
    assert "Traceback" not in result.output


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["solve", str(tmp_path / "missing.gguf")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["solve", "gpt-oss-20b", "--kv", "q7_0"])
    assert result.exit_code == 2 and "q7_0" in result.output


def test_write_profile_adds_before_the_bench_divider_and_keeps_every_other_byte(
    tmp_path: Path,
) -> None:
    conf = tmp_path / "models.conf"
    shutil.copy(FIXTURE_CONF, conf)
    before = conf.read_bytes()
    code, out = run(
        "solve", "gpt-oss-20b", "--ctx", "16384", "--write-profile", "gpt-oss-20b",
        "--conf", str(conf), "--model-path", "models/GPT-OSS-20B/MXFP4/gpt-oss-20b.gguf",
    )  # fmt: skip
    assert code == 0, out
    after = conf.read_bytes()
    # inserted after the last production profile, before "# --- Bench profiles"
    split, added = before.index(b"\n# --- Bench profiles"), len(after) - len(before)
    assert after[:split] == before[:split] and after[split + added :] == before[split:]
    assert after[split : split + added].startswith(b"\n# ")
    profile = ModelsConf.read(conf).profile("gpt-oss-20b")
    values = profile.values
    assert values["SPEED"].startswith("~") and values["SPEED"].endswith("t/s (estimated)")
    assert values["FIT"] == "off" and values["CTX_SIZE"] == "16384"
    assert any(UNTESTED_MARK in line for line in profile.comments)
    assert any(line.startswith("# Strategy ") for line in profile.comments)
    assert (tmp_path / "models.conf.bak").read_bytes() == before


def test_a_tested_profile_is_not_replaced_without_force(tmp_path: Path) -> None:
    conf = tmp_path / "models.conf"
    shutil.copy(FIXTURE_CONF, conf)
    before = conf.read_bytes()
    args = ["solve", "qwen3-30b-a3b:Q8_0", "--write-profile", "qwen3-coder-30b", "--conf",
            str(conf), "--model-path", "models/x.gguf"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert conf.read_bytes() == before
    result = CliRunner().invoke(cli, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert ModelsConf.read(conf).profile("qwen3-coder-30b").values["MODEL"] == "models/x.gguf"


@pytest.mark.slow
def test_whatif_table_target_and_plot(tmp_path: Path) -> None:
    plot = tmp_path / "whatif.png"
    code, out = run(
        "whatif", "gpt-oss-20b", "--hardware", "reference", "--hardware", "single-4090",
        "--ctx", "8192", "--target-tps", "1", "--no-max-context", "--plot", str(plot),
        "--json",
    )  # fmt: skip
    assert code == 0, out
    doc = json.loads(out)
    assert [row["scenario"] for row in doc["rows"]] == ["reference", "single-4090"]
    assert all(row["fits"] for row in doc["rows"])
    assert doc["cheapest"]["scenario"] == "single-4090"  # the cheaper rig reaches 1 t/s
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_whatif_varies_ram_and_finds_the_largest_context() -> None:
    code, out = run(
        "whatif", "qwen3-30b-a3b:Q8_0", "--hardware", "single-4090", "--vary", "ram=8,64",
        "--ctx", "8192", "--json",
    )  # fmt: skip
    assert code == 0, out
    rows = json.loads(out)["rows"]
    assert [row["variation"] for row in rows] == ["ram=8", "ram=64"]
    # 30 GiB of weights: 8 GiB of RAM (4 kept for the OS) plus a 24 GB card is too little.
    assert rows[0]["fits"] is False and rows[1]["fits"] is True
    assert rows[1]["max_context"] and rows[1]["max_context"] % 1024 == 0


def test_whatif_rejects_an_unknown_knob() -> None:
    result = CliRunner().invoke(cli, ["whatif", "gpt-oss-20b", "--hardware", "reference",
                                      "--vary", "colour=red"])  # fmt: skip
    assert result.exit_code == 2 and "--vary" in result.output


def test_a_rig_without_gpus_runs_everything_on_the_cpu(tmp_path: Path) -> None:
    rig = tmp_path / "cpu-only.toml"
    rig.write_text('name = "cpu-only"\n[host]\nram_gib = 64\ncores = 8\nmt_per_s = 4800\n'
                   "channels = 2\n")  # fmt: skip
    code, out = run("solve", "gpt-oss-20b", "--hardware", str(rig), "--baselines", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["strategy"] == "CPU" and set(doc["devices"]) == {"CPU"}
    assert "-ngl" in doc["args"] and doc["args"][doc["args"].index("-ngl") + 1] == "0"


def test_the_round_trip_check_catches_arguments_that_disagree_with_the_plan() -> None:
    from solver.gguf.sources import load_inventory
    from solver.hardware.scenario import load_hardware
    from solver.llama.args import parse_llama_args
    from solver.llama.memory import estimate_memory
    from solver.placement.solve import PlacementMismatch, SolveRequest, check_round_trip, solve
    from solver.plan.plan import Plan
    from solver.plan.units import Unit

    inventory = load_inventory("gpt-oss-20b")
    hardware = load_hardware("reference")
    report = solve(inventory, hardware, SolveRequest(contexts=(8192,)))
    plan = report.plan
    assert plan is not None
    memory = estimate_memory(inventory, parse_llama_args(list(report.args)), hardware=hardware)
    check_round_trip(inventory, plan, memory)  # the plan's own arguments agree
    elsewhere = "CPU" if plan.unit_device(3, Unit.EXPERTS) != "CPU" else plan.gpus[0]
    moved = tuple(elsewhere if il == 3 else None for il in range(plan.n_layers))
    other = Plan(**{**plan.model_dump(), "overrides": {Unit.EXPERTS: moved}})
    with pytest.raises(PlacementMismatch, match=re.escape("blk.3.ffn")):
        check_round_trip(inventory, other, memory)


def test_host_budget_counts_its_own_weights_not_the_mapped_span() -> None:
    from solver.gguf.sources import load_inventory
    from solver.hardware.scenario import load_hardware
    from solver.llama.args import parse_llama_args
    from solver.llama.memory import estimate_memory
    from solver.placement.solve import resident_bytes

    inventory = load_inventory("qwen3-30b-a3b:Q4_K_M")
    args = ["-c", "4096", "-ngl", "49", "-ot", r"blk\.(1[0-9])\.ffn_.*_exps\.=CPU", "--fit", "off"]
    config = parse_llama_args(args, gpu_buffers=["CUDA0", "CUDA1"])
    report = estimate_memory(inventory, config, hardware=load_hardware("reference"))
    host = report.devices["CPU"]
    on_host = sum(
        t.n_bytes for t in inventory.tensors if report.placement.tensor_devices[t.name] == "CPU"
    )
    resident = resident_bytes(inventory, report)["CPU"]
    # The mapping spans from token_embd to layer 19's experts, GPU tensors in between included.
    assert host.weights > on_host
    assert resident == host.total - host.weights + on_host
    assert resident_bytes(inventory, report)["CUDA0"] == report.devices["CUDA0"].total


# --- --write-profile is checked before the solve -------------------------------------------


@pytest.fixture
def no_solve(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything reaches the (long) solve."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        pytest.fail("the solve ran although the input was already known to be bad")

    monkeypatch.setattr("profiles.planning.solve", refuse)


def _one_line_exit_2(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    if "--json" in args:  # only the error object: nothing was solved
        error = json.loads(result.stdout)
        assert list(error) == ["error"] and error["error"]["kind"] == "bad_input", error
        return error["error"]["message"]
    assert result.output.strip().count("\n") == 0, result.output
    assert "{" not in result.output  # no JSON: not solved
    return result.output


def test_write_profile_of_a_catalogue_model_needs_a_model_path(tmp_path: Path, no_solve) -> None:
    conf = tmp_path / "models.conf"
    out = _one_line_exit_2(
        ["solve", "gpt-oss-120b", "--write-profile", "x", "--conf", str(conf), "--json"]
    )
    assert "--model-path" in out
    assert not conf.exists()


def test_a_tested_profile_is_refused_before_solving(tmp_path: Path, no_solve) -> None:
    conf = tmp_path / "models.conf"
    shutil.copy(FIXTURE_CONF, conf)
    before = conf.read_bytes()
    out = _one_line_exit_2(
        ["solve", "gpt-oss-20b", "--write-profile", "qwen3-coder-30b", "--conf", str(conf),
         "--model-path", "models/x.gguf", "--json"]
    )  # fmt: skip
    assert "--force" in out and conf.read_bytes() == before


@pytest.mark.parametrize(
    ("conf_text", "profile_id", "extra", "expected"),
    [
        ("[a]\nnot a key line\n", "x", [], "line 2"),  # malformed conf file
        (None, "bad id!", [], "profile id"),
        (None, "x", ["--name", "two\nlines"], "one line"),
    ],
)
def test_a_profile_that_could_not_be_written_is_refused_before_solving(
    tmp_path: Path, no_solve, conf_text: str | None, profile_id: str, extra: list[str],
    expected: str,
) -> None:  # fmt: skip
    conf = tmp_path / "models.conf"
    if conf_text is not None:
        conf.write_text(conf_text)
    args = ["solve", "gpt-oss-20b", "--write-profile", profile_id, "--conf", str(conf),
            "--model-path", "models/x.gguf", *extra]  # fmt: skip
    assert expected in _one_line_exit_2(args)


def test_a_conf_in_a_missing_folder_is_refused_before_solving(tmp_path: Path, no_solve) -> None:
    conf = tmp_path / "nowhere" / "models.conf"
    args = ["solve", "gpt-oss-20b", "--write-profile", "x", "--conf", str(conf),
            "--model-path", "models/x.gguf"]  # fmt: skip
    assert "does not exist" in _one_line_exit_2(args)
