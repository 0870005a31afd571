"""`fit tune` with two workers on one study in a real PostgreSQL server, on RPC devices.

The fixture starts a throwaway cluster from Debian's PostgreSQL (``initdb`` in a temporary
folder, ``pg_ctl start`` on a free port, stopped and removed afterwards); the test is skipped
only when those binaries are absent (``.ci/run`` installs them). Each worker is its own
workspace with its own two ggml-rpc-servers, as two machines sharing one ``--storage`` would
be. Worker B is killed in the middle of a trial; worker A, which is still running, sees that
trial's heartbeat go stale, fails it and runs its retry.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from profiles.server import RpcServers
from solver.tune.tuner import finished_trials
from tests.conftest import SERVER_MARKER, reaped, wait_until_gone
from tests.workspace_support import (
    BASE_EXTRA,
    PROFILE,
    fit_process,
    wait_for_servers,
    write_conf,
)

pytestmark = [
    pytest.mark.llama,
    pytest.mark.slow,
    pytest.mark.usefixtures("isolated"),
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]
STUDY = "shared"
N_TRIALS = 6
TUNE = ("--trials", str(N_TRIALS), "--repeat", "1", "--n-predict", "8", "--heartbeat", "1")


def _postgres_bin() -> Path | None:
    """The folder of Debian's initdb/pg_ctl (not on PATH by default), newest version first."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda f: int(f.split("/")[-2]))
    return Path(folders[-1]) if folders else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL cluster of its own, trust authentication on 127.0.0.1; its URL."""
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    # initdb refuses to run as root: as root, the cluster belongs to Debian's postgres user
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="fit-pg-"))
    if as_user:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", _free_port()
    run = [*as_user, str(binaries / "initdb"), "-D", str(data), "-U", "fit", "--auth=trust",
           "--no-sync", "-E", "UTF8"]  # fmt: skip
    subprocess.run(run, check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-w"]
    subprocess.run([*pg_ctl, "-l", str(folder / "log"), "-o", options, "start"], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    try:
        yield f"postgresql+psycopg2://fit@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def _worker(folder: Path, model: Path, rpc: RpcServers, url: str, marker: str):
    """``fit tune`` in its own workspace on its own RPC servers, its servers marked."""
    folder.mkdir()
    conf = write_conf(folder, model, f"{BASE_EXTRA} --rpc {rpc.rpc_arg} -ts 1,1", ngl="99")
    env = {**os.environ, SERVER_MARKER: marker}
    args = ("tune", PROFILE, "--conf", str(conf), "--storage", url, "--study", STUDY, *TUNE)
    return fit_process(*args, env=env)


def _trial_numbers(output: str) -> set[int]:
    """The trials a worker reported finishing ("trial N: ...")."""
    return {int(number) for number in re.findall(r"^trial (\d+): ", output, re.M)}


def test_two_workers_share_a_study_and_retry_a_killed_workers_trial(
    gemma_gguf: Path, tmp_path: Path, rpc_server_bin: Path, server_marker: str, postgres_url: str
) -> None:
    started = time.monotonic()
    marker_a, marker_b = f"{server_marker}-a", f"{server_marker}-b"
    rpc_env = {**os.environ, SERVER_MARKER: server_marker}
    with (
        RpcServers(2, binary=rpc_server_bin, env=rpc_env) as rpc_a,
        RpcServers(2, binary=rpc_server_bin, env=rpc_env) as rpc_b,
        reaped(_worker(tmp_path / "a", gemma_gguf, rpc_a, postgres_url, marker_a)) as a,
    ):
        # B joins once A has made the study and claimed its first trial
        assert _wait(lambda: _trials(postgres_url)), "worker A made no trial"
        with reaped(_worker(tmp_path / "b", gemma_gguf, rpc_b, postgres_url, marker_b)) as b:
            assert b.stdout is not None
            b_lines = []
            for line in b.stdout:
                b_lines.append(line)
                if _trial_numbers(line):
                    break
            else:
                pytest.fail(f"worker B ended before finishing a trial: {''.join(b_lines)}")
            assert wait_for_servers(marker_b, b.pid), "worker B started no second trial"
            b.send_signal(signal.SIGKILL)
            b.wait(timeout=30)
        assert wait_until_gone(marker_b) == []  # its llama-server died with it
        a_output, _ = a.communicate(timeout=600)
        assert a.returncode == 0, a_output
    trials = _trials(postgres_url)
    by_a, by_b = _trial_numbers(a_output), _trial_numbers("".join(b_lines))
    seconds = time.monotonic() - started
    print(f"\nworker A ran trials {sorted(by_a)}, B {sorted(by_b)} (killed in the next); "
          f"{len(trials)} trials in PostgreSQL; {seconds:.0f} s")  # fmt: skip
    assert by_a and by_b and not by_a & by_b, (by_a, by_b)  # shared, none run by both
    killed = [t for t in trials if t.state is TrialState.FAIL]
    assert len(killed) == 1 and killed[0].number not in by_a | by_b
    retries = [
        t
        for t in trials
        if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed[0].number
    ]
    assert len(retries) == 1 and retries[0].params == killed[0].params  # fmt: skip
    assert retries[0].number in by_a  # the surviving worker ran it
    assert not any(t.state is TrialState.RUNNING for t in trials)
    study = optuna.load_study(study_name=STUDY, storage=postgres_url)
    assert len(finished_trials(study)) == N_TRIALS
    # every launch was made once, by the worker that owned its trial
    runs = [run for t in trials for run in t.user_attrs.get("run_files", [])]
    on_disk = sorted(str(p) for p in tmp_path.resolve().glob("[ab]/runs/*.json"))
    assert sorted(runs) == on_disk and len(set(runs)) == len(runs)
    for trial in trials:
        owner = tmp_path.resolve() / ("a" if trial.number in by_a else "b")
        runs_of = [Path(run).parent.parent for run in trial.user_attrs.get("run_files", [])]
        assert all(folder == owner for folder in runs_of), trial.number


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    try:
        study = optuna.load_study(study_name=STUDY, storage=url)
    except KeyError:  # not made yet
        return []
    return study.get_trials(deepcopy=False)


def _wait(condition, limit_s: float = 120) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False
