"""``fit check``: a profile's or a command line's buffers against the rig's budget; the same
verdict in ``fit memory --hardware``; ``fit test`` refuses a profile the check says cannot fit.

The example workspace's models.conf (``tests/fixtures/models.conf`` is it, with the
gpt-oss-120b profile at ``-ts 3,2``) names model files that are not here: each is priced as
the catalogue entry its file name names.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli import cli
from profiles.checking import catalogue_stand_in
from profiles.models_conf import ModelsConf
from solver.errors import BadInput
from solver.quantities import GIB, MIB

FIXTURE_CONF = Path(__file__).parent / "fixtures" / "models.conf"
PROFILES = ("glm-flash-q8", "gpt-oss-120b", "qwen3-coder-30b", "qwen3-32b-q8", "bench-glm-flash-q8")
ISSUE_ARGS = (
    "-c", "131072", "-ngl", "99", "-ts", "3,2", "-fa", "on",
    "-ot", r"blk\.([0-9]|1[0-9]|2[0-3])\.ffn_.*_exps\.=CPU", "-b", "4096", "-ub", "4096",
)  # fmt: skip


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def workspace(tmp_path: Path, tensor_split: str) -> Path:
    """A copy of the example models.conf whose gpt-oss-120b profile has ``-ts tensor_split``."""
    conf_path = tmp_path / "models.conf"
    shutil.copyfile(FIXTURE_CONF, conf_path)
    conf = ModelsConf.read(conf_path)
    extra = conf.profile("gpt-oss-120b").get("EXTRA_ARGS") or ""
    conf.set_value("gpt-oss-120b", "EXTRA_ARGS", re.sub(r"-ts \S+", f"-ts {tensor_split}", extra))
    conf.write(backup=False)
    return conf_path


def _excess_mib(row: dict) -> int:
    return -(-(row["total"] - row["budget"]) // MIB)


# --- the example workspace ---------------------------------------------------------------------


def test_example_workspace_names_the_profile_the_device_and_the_excess(tmp_path: Path) -> None:
    conf = workspace(tmp_path, "3,2")

    result = invoke("check", "--conf", str(conf), "--hardware", "reference")

    assert result.exit_code == 1, result.output
    document = json.loads(
        invoke("check", "--conf", str(conf), "--hardware", "reference", "--json").stdout
    )
    checks = {c["profile"]: c for c in document["checks"]}
    assert list(checks) == list(PROFILES)
    over = {r["device"]: r for r in checks["gpt-oss-120b"]["verdict"]["devices"] if not r["fits"]}
    assert list(over) == ["CUDA1"]  # the 16 GB card
    assert over["CUDA1"]["memory"] == 16 * GIB and over["CUDA1"]["budget"] == 16 * GIB - 512 * MIB
    excess = _excess_mib(over["CUDA1"])
    assert excess > 0
    line = f"[gpt-oss-120b] does not fit: CUDA1 over by {excess} MiB"
    assert line in result.stdout
    assert f"[gpt-oss-120b] does not fit reference: CUDA1 over by {excess} MiB" in result.stderr
    for profile in PROFILES:
        if profile != "gpt-oss-120b":
            assert f"[{profile}] fits" in result.stdout
            assert checks[profile]["fits"] is True
    assert "5 profiles: 4 fit, 1 over budget ([gpt-oss-120b])" in result.stdout
    assert "Traceback" not in result.output


def test_example_workspace_as_shipped_fits(tmp_path: Path) -> None:
    """The example's own split (-ts 30,7) fits the reference rig: every profile passes."""
    result = invoke("check", "--conf", str(workspace(tmp_path, "30,7")), "--hardware", "reference")

    assert result.exit_code == 0, result.output
    assert all(f"[{profile}] fits" in result.stdout for profile in PROFILES)


def test_one_profile_is_checked_alone(tmp_path: Path) -> None:
    conf = str(workspace(tmp_path, "3,2"))

    fits = invoke("check", "qwen3-32b-q8", "--conf", conf, "--hardware", "reference")
    over = invoke("check", "gpt-oss-120b", "--conf", conf, "--hardware", "reference")

    assert fits.exit_code == 0 and "[qwen3-32b-q8] fits" in fits.stdout
    assert over.exit_code == 1 and "CUDA1 over by" in over.stdout
    assert "[glm-flash-q8]" not in over.stdout


def test_missing_model_files_are_priced_as_their_catalogue_entry(tmp_path: Path) -> None:
    result = invoke("check", "--conf", str(workspace(tmp_path, "30,7")), "--hardware", "reference")

    assert (
        "MODEL models/GPT-OSS-120B/MXFP4/gpt-oss-120b-mxfp4-00001-of-00003.gguf not found: "
        "priced as the catalogue's gpt-oss-120b:MXFP4" in result.stdout
    )
    assert "priced as the catalogue's qwen3-coder-30b-a3b:Q6_K (the catalogue has no Q6_K_XL" in (
        result.stdout
    )


def test_a_profile_that_cannot_be_priced_is_one_line(tmp_path: Path) -> None:
    conf_path = workspace(tmp_path, "30,7")
    conf = ModelsConf.read(conf_path)
    conf.set_value("qwen3-32b-q8", "MODEL", "models/mystery-7b-Q4_K_M.gguf")
    conf.write(backup=False)

    every = invoke("check", "--conf", str(conf_path), "--hardware", "reference")
    alone = invoke("check", "qwen3-32b-q8", "--conf", str(conf_path), "--hardware", "reference")

    assert every.exit_code == 2, every.output  # nothing over, but one launch unchecked
    assert "[qwen3-32b-q8] not checked: MODEL models/mystery-7b-Q4_K_M.gguf not found" in (
        every.stdout
    )
    assert "[gpt-oss-120b] fits" in every.stdout
    assert alone.exit_code == 2
    assert alone.stdout == ""
    assert alone.stderr.count("\n") == 1 and "names no catalogue model" in alone.stderr
    assert "Traceback" not in every.output + alone.output


def test_unknown_profile_and_conf_are_bad_input(tmp_path: Path) -> None:
    conf = str(workspace(tmp_path, "30,7"))
    assert invoke("check", "nope", "--conf", conf, "--hardware", "reference").exit_code == 2
    assert invoke("check", "--conf", str(tmp_path / "none.conf")).exit_code == 2


@pytest.mark.parametrize(
    ("filename", "name", "nearest_of"),
    [
        ("GLM-4.7-Flash-Q8_0.gguf", "glm-4.7-flash:Q8_0", None),
        ("gpt-oss-120b-mxfp4-00001-of-00003.gguf", "gpt-oss-120b:MXFP4", None),
        ("Qwen3-Coder-30B-A3B-Instruct-UD-Q6_K_XL.gguf", "qwen3-coder-30b-a3b:Q6_K", "Q6_K_XL"),
        ("Qwen3-32B-UD-Q4_K_XL.gguf", "qwen3-32b:Q4_K_M", "Q4_K_XL"),
        ("Llama-3.3-70B-Instruct-IQ4_XS.gguf", "llama-3.3-70b:IQ4_XS", None),
    ],
)
def test_catalogue_stand_in(filename: str, name: str, nearest_of: str | None) -> None:
    assert catalogue_stand_in(filename) == (name, nearest_of)


@pytest.mark.parametrize(
    ("filename", "reason"),
    [("gemma-3-27b-it-BF16.gguf", "no quant"), ("mystery-7b-Q4_K_M.gguf", "no catalogue model")],
)
def test_no_catalogue_stand_in(filename: str, reason: str) -> None:
    with pytest.raises(BadInput, match=reason):
        catalogue_stand_in(filename)


# --- a command line -----------------------------------------------------------------------------


def test_issue_command_shows_the_16gb_card_over_budget() -> None:
    """The issue's command: ``fit memory`` now says the 16 GB card is over and still exits 0;
    ``fit check`` with the same arguments is the gate (exit 1)."""
    head = ("gpt-oss-120b", "--hardware", "reference")

    text = invoke("memory", *head, "--", *ISSUE_ARGS)
    document = json.loads(invoke("memory", *head, "--json", "--", *ISSUE_ARGS).stdout)
    check = invoke("check", *head, "--", *ISSUE_ARGS)

    rows = {row["device"]: row for row in document["verdict"]["devices"]}
    assert document["verdict"]["fits"] is False
    assert [d for d, row in rows.items() if not row["fits"]] == ["CUDA1"]
    excess = _excess_mib(rows["CUDA1"])
    assert rows["CUDA1"]["total"] == document["devices"]["CUDA1"]["total"]
    assert text.exit_code == 0, text.output
    assert f"verdict: does not fit: CUDA1 over by {excess} MiB" in text.stdout
    assert check.exit_code == 1
    assert f"gpt-oss-120b does not fit: CUDA1 over by {excess} MiB" in check.stdout


def test_margin_and_reserve_move_the_budget() -> None:
    args = ("check", "gpt-oss-120b", "--hardware", "reference", "--json")
    roomy = ("--", "-c", "4096", "-ngl", "0")
    default = json.loads(invoke(*args, *roomy).stdout)
    tight = invoke(*args, "--ram-reserve", "60", *roomy)

    host = default["checks"][0]["verdict"]["devices"][-1]
    assert host["device"] == "CPU" and host["budget"] == 60 * GIB and host["fits"]
    assert tight.exit_code == 1
    assert json.loads(tight.stdout)["checks"][0]["verdict"]["devices"][-1]["budget"] == 4 * GIB


def test_memory_without_a_rig_has_no_verdict(gemma_gguf: Path) -> None:
    result = invoke("memory", str(gemma_gguf), "--json", "--", "-c", "1024")
    assert result.exit_code == 0 and "verdict" not in json.loads(result.stdout)


def test_model_form_needs_a_model() -> None:
    assert invoke("check", "--", "-c", "4096").exit_code == 2


# --- fit test ------------------------------------------------------------------------------------


def test_fit_test_refuses_a_profile_that_cannot_fit(gemma_gguf: Path, tmp_path: Path) -> None:
    """A context whose KV cache is far beyond this machine's RAM: refused before any launch
    (the server named does not even exist), one line naming the device and the excess."""
    conf = tmp_path / "models.conf"
    conf.write_text(
        f"[gemma]\nMODEL={gemma_gguf}\nCTX_SIZE={2**30}\nN_GPU_LAYERS=0\nFIT=off\n"
        "EXTRA_ARGS=-np 1 -t 1\n"
    )
    before = conf.read_bytes()

    result = invoke("test", "gemma", "--conf", str(conf), "--server", str(tmp_path / "no-server"))

    assert result.exit_code == 1, result.output
    assert re.search(r"\[gemma\] does not fit this machine: CPU over by \d+ MiB", result.stderr)
    assert "--force" in result.stderr and result.stderr.count("\n") == 1
    assert conf.read_bytes() == before
    assert not (tmp_path / "runs").exists()
