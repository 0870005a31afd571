"""`fit test` and `fit calibrate` with the real llama-server on the real gemma-3-270m.

Measured speeds are checked against llama-server's own log lines for the same requests, and
memory predictions against the buffer sizes it printed; the conf file against its own bytes.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from profiles.outcome import speed_text
from profiles.runs import RunRecord
from profiles.server import RpcServers
from profiles.server_log import parse_server_log_file
from solver.quantities import MIB
from tests.conftest import reaped, wait_until_gone
from tests.test_server import _cells_beyond_memory
from tests.workspace_support import (
    BASE_EXTRA,
    PROFILE,
    changed_lines,
    fit_process,
    invoke,
    json_of,
    wait_for_servers,
    write_conf,
)

pytestmark = [pytest.mark.llama, pytest.mark.slow, pytest.mark.usefixtures("isolated")]
# requests as llama-server logs them (tools/server/server-context.cpp: print_timings)
_EVAL = re.compile(r"\|\s+eval time =\s*([\d.]+) ms /\s*(\d+) tokens")


def _measured_by_the_log(record: RunRecord) -> float:
    """Decode t/s of the counted requests, from llama-server's own 'eval time' lines."""
    text = Path(record.log_path).read_text()
    evals = [(float(ms), int(n)) for ms, n in _EVAL.findall(text)]
    counted = evals[-len(record.requests) :]  # the warm-up request came first
    return sum(n for _, n in counted) / sum(ms for ms, _ in counted) * 1000


def _test(conf: Path, *extra: str):
    return invoke("test", PROFILE, "--conf", str(conf), "--n-predict", "8", "--json", *extra)


def _check_marked_tested(before: str, conf: Path, record: RunRecord) -> None:
    changes = changed_lines(before, conf.read_text())
    assert [old for old, _ in changes] == [
        "# NOT YET TESTED — run `fit test gemma` to measure it.\n",
        "SPEED=~150 t/s (estimated)\n",
    ]
    tested, speed = (new for _, new in changes)
    assert tested.startswith("# Tested ") and "by fit test" in tested
    assert speed == f"SPEED={speed_text(record.decode_tps)}\n"


def _check_memory(record: RunRecord) -> None:
    """fit's prediction against llama.cpp's own buffer lines (compute buffers aside)."""
    assert record.prediction is not None, record.prediction_error
    logged = parse_server_log_file(Path(record.log_path)).per_device()
    assert set(record.prediction.memory_bytes) == set(logged)
    for device, predicted in record.prediction.memory_bytes.items():
        seen = logged[device].total.approx_bytes - logged[device].compute.approx_bytes
        assert abs(predicted - seen) < MIB, (device, predicted, seen)


def test_cpu_profile_is_measured_and_marked_tested(gemma_gguf: Path, tmp_path: Path) -> None:
    conf = write_conf(tmp_path, gemma_gguf, BASE_EXTRA)
    before = conf.read_text()

    result = _test(conf)

    assert result.exit_code == 0, result.output
    payload = json_of(result)
    record = RunRecord.model_validate_json(Path(payload["run_file"]).read_text())
    assert record.ok and [r.label for r in record.requests] == ["short", "long"]
    assert record.decode_tps == pytest.approx(_measured_by_the_log(record), rel=1e-3)
    assert record.report is not None and record.report.context.n_ctx == 1024
    _check_marked_tested(before, conf, record)
    _check_memory(record)
    assert {row["what"].split()[0] for row in payload["comparison"]} >= {"CPU", "decode"}


@pytest.fixture
def rpc_pair(rpc_servers: RpcServers) -> RpcServers:
    return rpc_servers


def _rpc_extra(rpc: RpcServers) -> str:
    return (
        f"{BASE_EXTRA} --rpc {rpc.rpc_arg} -ts 1,1 "
        rf'-ot "blk\.1[0-7]\.ffn_(up|gate|down)\.weight=CPU,blk\.[0-4]\.attn_q\.weight='
        rf'{rpc.buffer_type(1)}"'
    )


def test_rpc_profile_is_measured_then_calibrated(
    gemma_gguf: Path, tmp_path: Path, rpc_pair: RpcServers
) -> None:
    conf = write_conf(tmp_path, gemma_gguf, _rpc_extra(rpc_pair), ngl="99")
    before = conf.read_text()

    result = _test(conf)

    assert result.exit_code == 0, result.output
    record = RunRecord.model_validate_json(Path(json_of(result)["run_file"]).read_text())
    assert record.decode_tps == pytest.approx(_measured_by_the_log(record), rel=1e-3)
    assert set(record.report.per_device()) == {"CPU", "RPC0", "RPC1"}
    _check_marked_tested(before, conf, record)
    _check_memory(record)
    assert record.prediction.rate_sources == dict.fromkeys(
        ("CPU", "RPC0", "RPC1"), "host rate (not calibrated)"
    )

    calibrated = invoke("calibrate", "--conf", str(conf), "--json")
    assert calibrated.exit_code == 0, calibrated.output
    fit = json_of(calibrated)
    assert fit["runs"] == 1 and fit["saved_to"] and Path(fit["saved_to"]).exists()
    assert fit["fitted"][0] == "bandwidth[host]"  # one run: one pooled bandwidth
    assert any("not fitted: per-device" in note for note in fit["notes"])

    again = _test(conf)
    assert again.exit_code == 0, again.output
    second = RunRecord.model_validate_json(Path(json_of(again)["run_file"]).read_text())
    assert set(second.prediction.rate_sources.values()) == {"calibrated"}
    text = invoke("solve", str(gemma_gguf), "--hardware", "detect", "--ctx", "1024")
    assert "cost coefficients: calibrated" in text.output


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (f"{BASE_EXTRA} --no-such-flag", "invalid argument: --no-such-flag"),
        (f"{BASE_EXTRA} --load-mode none -c {_cells_beyond_memory()}", "out of memory on CPU"),
    ],
    ids=["unknown-flag", "context-beyond-ram"],
)
def test_failed_launch_leaves_the_conf_alone(
    gemma_gguf: Path, tmp_path: Path, extra: str, reason: str
) -> None:
    conf = write_conf(tmp_path, gemma_gguf, extra)
    before = conf.read_bytes()

    # --force: the launch itself must fail (without it, `fit check` refuses the big context)
    result = invoke("test", PROFILE, "--conf", str(conf), "--force")

    assert result.exit_code == 1
    assert reason in result.output
    assert "is unchanged" in result.output
    assert conf.read_bytes() == before
    assert not conf.with_name("models.conf.bak").exists()
    saved = list((tmp_path / "runs").glob("*.json"))
    assert len(saved) == 1
    assert not RunRecord.model_validate_json(saved[0].read_text()).ok


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_no_server_outlives_fit_killed_during_launch(
    gemma_gguf: Path, tmp_path: Path, server_env: dict[str, str], server_marker: str, signum: int
) -> None:
    conf = write_conf(tmp_path, gemma_gguf, BASE_EXTRA)
    before = conf.read_bytes()
    with reaped(fit_process("test", PROFILE, "--conf", str(conf), env=server_env)) as fit:
        servers = wait_for_servers(server_marker, fit.pid)
        assert servers, "fit never started llama-server"
        fit.send_signal(signum)
        status = fit.wait(timeout=60)
    assert status != 0
    assert wait_until_gone(server_marker) == []
    assert conf.read_bytes() == before
