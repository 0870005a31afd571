"""`fit tune` with the real llama-server on the real gemma-3-270m: a study finishes, applies
its best trial byte-preservingly, and resumes after fit is killed in the middle of a trial."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from profiles.launch import load_profile
from profiles.server import RpcServers
from solver.tune.tuner import finished_trials
from tests.conftest import reaped, wait_until_gone
from tests.workspace_support import (
    BASE_EXTRA,
    PROFILE,
    REPO,
    changed_lines,
    fit_process,
    invoke,
    json_of,
    wait_for_servers,
    write_conf,
)

pytestmark = [
    pytest.mark.llama,
    pytest.mark.slow,
    pytest.mark.usefixtures("isolated"),
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]
TUNE = ("--trials", "4", "--repeat", "2", "--n-predict", "8", "--heartbeat", "1")


def _study(conf: Path) -> optuna.Study:
    url = f"sqlite:///{conf.parent / '.fit' / 'tune.db'}"
    return optuna.load_study(study_name=f"{PROFILE}-decode", storage=url)


def test_tune_with_two_rpc_devices_applies_its_best_trial_beyond_the_noise(
    gemma_gguf: Path, tmp_path: Path, rpc_servers: RpcServers
) -> None:
    extra = f"{BASE_EXTRA} --rpc {rpc_servers.rpc_arg} -ts 1,1"
    conf = write_conf(tmp_path, gemma_gguf, extra, ngl="99")
    before = conf.read_text()
    result = invoke("tune", PROFILE, "--conf", str(conf), *TUNE, "--apply", "--json")
    assert result.exit_code == 0, result.output

    payload = json_of(result)
    trials = {t["number"]: t for t in payload["trials"]}
    assert len(finished_trials(_study(conf))) == 4
    # the first trial is the profile as written: llama.cpp's defaults for -b/-ub, all layers
    assert trials[0]["params"] == {"ubatch": 512, "batch": 2048, "threads": 1,
                                   "gpu_layers": 19, "ts_0": 1.0, "ts_1": 1.0}  # fmt: skip
    best = trials[payload["best"]]
    assert best["state"] == "complete" and best["value"] == best["user_attrs"]["decode_tps"]
    assert best["value"] == max(t["value"] for t in trials.values() if t["state"] == "complete")
    assert len(best["user_attrs"]["values"]) == 2 and len(best["user_attrs"]["interval"]) == 2

    # written only when the best trial beats the profile's own settings beyond the noise
    verdict = payload["verdict"]
    if not verdict["apply"]:
        assert payload["applied_to"] is None and conf.read_text() == before, verdict
        return
    # the profile now launches exactly the best trial's arguments
    assert list(load_profile(conf, PROFILE).args) == _same_order(best["user_attrs"]["args"])
    changes = changed_lines(before, conf.read_text().replace(_tuned_comment(conf), ""))
    assert {old.split("=")[0] for old, _ in changes} <= {"N_GPU_LAYERS", "EXTRA_ARGS"}
    comment = _tuned_comment(conf)
    assert f"study {PROFILE}-decode, trial {payload['best']}" in comment
    assert f"decode {best['user_attrs']['decode_tps']:.1f} t/s" in comment


def _tuned_comment(conf: Path) -> str:
    return next(line for line in conf.read_text().splitlines(True) if "by fit tune" in line)


def _same_order(args: list[str]) -> list[str]:
    """Trial arguments put a tuned -ngl first; the profile keeps -c before it."""
    if args[:1] == ["-ngl"]:
        return [*args[2:4], *args[:2], *args[4:]]
    return args


def test_tune_resumes_after_being_killed_mid_trial(
    gemma_gguf: Path, tmp_path: Path, server_env: dict[str, str], server_marker: str
) -> None:
    conf = write_conf(tmp_path, gemma_gguf, BASE_EXTRA)
    args = ("tune", PROFILE, "--conf", str(conf), *TUNE)
    with reaped(fit_process(*args, env=server_env)) as fit:
        assert fit.stdout is not None
        for line in fit.stdout:
            if line.startswith("trial 0:"):
                break
        else:
            pytest.fail(f"tune ended before its first trial: {fit.wait()}")
        assert wait_for_servers(server_marker, fit.pid), "no second trial started"
        fit.send_signal(signal.SIGKILL)
        fit.wait(timeout=30)
    assert wait_until_gone(server_marker) == []  # its llama-server died with it

    killed = _study(conf).get_trials(deepcopy=False)
    first = killed[0]
    assert first.state is TrialState.COMPLETE
    assert [t.state for t in killed[1:]] == [TrialState.RUNNING]
    # the killed trial's last beat must be older than its grace (2 s) by SQLite's clock, which
    # counts whole seconds (CURRENT_TIMESTAMP): 3 s later the two differ by at least 3
    time.sleep(3)

    again = subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=REPO, env=server_env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr

    trials = _study(conf).get_trials(deepcopy=False)
    assert trials[0].params == first.params and trials[0].value == first.value
    assert trials[1].state is TrialState.FAIL  # the one fit was killed in
    retries = [t for t in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == 1]
    assert len(retries) == 1 and retries[0].params == trials[1].params
    assert len(finished_trials(_study(conf))) == 4
    assert not any(t.state is TrialState.RUNNING for t in trials)
